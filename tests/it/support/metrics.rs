//! Prometheus text: checked and read, and waited on.

use std::collections::HashMap;
use std::time::Duration;

/// Check Prometheus text exposition format (0.0.4) line by line and return
/// the samples as `name{labels}` → value (labels in the order printed).
pub fn parse_prometheus_text(text: &str) -> Result<HashMap<String, f64>, String> {
    let mut samples = HashMap::new();
    let mut typed = std::collections::HashSet::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("HELP"), Some(name), Some(_)) if valid_name(name) => {}
                (Some("TYPE"), Some(name), Some(kind))
                    if valid_name(name)
                        && ["counter", "gauge", "histogram", "summary", "untyped"]
                            .contains(&kind) =>
                {
                    typed.insert(name.to_owned());
                }
                _ => return Err(format!("line {n}: bad comment {line:?}")),
            }
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .ok_or(format!("line {n}: no value: {line:?}"))?;
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .map_err(|_| format!("line {n}: bad value {v:?}"))?,
        };
        let name = series.split('{').next().unwrap();
        if !valid_name(name) {
            return Err(format!("line {n}: bad metric name {name:?}"));
        }
        let labels = &series[name.len()..];
        if !labels.is_empty() {
            let inner = labels
                .strip_prefix('{')
                .and_then(|l| l.strip_suffix('}'))
                .ok_or(format!("line {n}: bad labels {labels:?}"))?;
            for pair in inner.split("\",").filter(|p| !p.is_empty()) {
                let (k, _) = pair
                    .split_once("=\"")
                    .ok_or(format!("line {n}: bad label {pair:?}"))?;
                if !valid_name(k) || k.contains(':') {
                    return Err(format!("line {n}: bad label name {k:?}"));
                }
            }
        }
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|b| typed.contains(*b)))
            .unwrap_or(name);
        if !typed.contains(base) {
            return Err(format!("line {n}: sample {name} has no # TYPE line"));
        }
        samples.insert(series.to_owned(), value);
    }
    Ok(samples)
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

#[test]
fn prometheus_text_checker_rejects_garbage() {
    assert!(parse_prometheus_text("# TYPE a counter\na 1\n").is_ok());
    assert!(
        parse_prometheus_text("a 1\n").is_err(),
        "sample without TYPE"
    );
    assert!(parse_prometheus_text("# TYPE a counter\na one\n").is_err());
    assert!(parse_prometheus_text("# TYPE 1a counter\n").is_err());
    assert!(parse_prometheus_text("# TYPE a counter\na{x=\"1\" 1\n").is_err());
}

/// The sum of `name`'s series whose labels include every `labels` pair
/// (all of them when `labels` is empty); `name` may also be a whole series
/// as printed, `name{label="value"}`.
pub fn sample(samples: &HashMap<String, f64>, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(k, _)| *k == name || k.split('{').next() == Some(name))
        .filter(|(k, _)| {
            labels
                .iter()
                .all(|(l, v)| k.contains(&format!("{l}=\"{v}\"")))
        })
        .map(|(_, v)| *v)
        .sum()
}

/// `GET /metrics` on `port`, checked and parsed (empty while yujing does
/// not answer yet).
pub async fn scrape(port: u16) -> HashMap<String, f64> {
    let Ok(resp) = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await else {
        return HashMap::new();
    };
    let text = resp.text().await.unwrap_or_default();
    parse_prometheus_text(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// [`sample`] of the text of one scrape.
pub fn metric(text: &str, name: &str) -> f64 {
    sample(&parse_prometheus_text(text).unwrap(), name, &[])
}

/// Wait (up to 60 s) until [`sample`] of `name` on `port` reaches
/// `at_least`.
pub async fn wait_for_metric(port: u16, name: &str, labels: &[(&str, &str)], at_least: f64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let v = sample(&scrape(port).await, name, labels);
        if v >= at_least {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name}{labels:?} stayed at {v}, waiting for {at_least}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
