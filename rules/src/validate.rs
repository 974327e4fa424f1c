//! From a rule's keys to a [`Rule`], recording every problem found.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_yaml_ng::Value;
use yujing_ingest::{AreaLevel, SessionSpec};

use crate::grade::{Direction, Grade};
use crate::load::Fields;
use crate::model::{
    Aggregate, Category, DEFAULT_TOLERATE_MISSING, Level, Quality, Quorum, Rule, RuleText,
    WindowSpec,
};
use crate::template;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Thresholds {
    blue: Option<f64>,
    yellow: Option<f64>,
    orange: Option<f64>,
    red: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Predict {
    horizon: String,
}

/// Validate one rule's keys; `None` if anything is wrong (the problems are
/// in `f.problems`).
pub(crate) fn validate(f: &mut Fields<'_>, group: &str) -> Option<Rule> {
    let before = f.problems.len();
    let id: String = f.get("id").unwrap_or_default();
    let id_ok = !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !id_ok && f.problems.len() == before {
        f.fail(
            "id",
            "every rule needs an `id` of letters, digits, '-', '_' or '.'".into(),
        );
    }
    let (description, descriptions) = descriptions(f);
    let category = f.get("category").unwrap_or(Category::Env);
    let metric: String = f.get("metric").unwrap_or_default();
    if metric.trim().is_empty() && !f.problems.iter().any(|p| p.1 == "metric") {
        f.fail("metric", "every rule needs a `metric`".into());
    }
    let unit = f.get("unit").unwrap_or_default();
    let window = match f.raw("window") {
        Some(v) => window_spec(&v).map_err(|m| f.fail("window", m)).ok(),
        None => {
            f.fail(
                "id",
                "every rule needs a `window` (e.g. `window: 10m`)".into(),
            );
            None
        }
    };
    let aggregate = f.get("aggregate").unwrap_or(Aggregate::Avg);
    let group_by = f.group_by();

    let (direction, key) = match (f.has("above"), f.has("below")) {
        (true, false) => (Direction::Above, "above"),
        (false, true) => (Direction::Below, "below"),
        (true, true) => {
            f.fail("below", "give either `above` or `below`, not both".into());
            (Direction::Above, "above")
        }
        (false, false) => {
            f.fail(
                "id",
                "rule has no thresholds: add `above:` or `below:`".into(),
            );
            (Direction::Above, "above")
        }
    };
    let thresholds = f
        .get::<Thresholds>(key)
        .map(|t| thresholds(f, key, direction, t));
    let thresholds = thresholds.unwrap_or_default();

    let pending = pending(f, &thresholds);
    let clear = clear(f, direction, &thresholds);
    let levels: Vec<Level> = thresholds
        .iter()
        .map(|&(grade, threshold)| Level {
            grade,
            threshold,
            clear: clear.get(&grade).copied().unwrap_or(threshold),
            pending_ms: pending.get(&grade).copied().unwrap_or(0),
        })
        .collect();

    let tolerate_missing = f
        .get("tolerate_missing")
        .unwrap_or(DEFAULT_TOLERATE_MISSING);
    let keep_firing_for_ms = duration(f, "keep_firing_for").unwrap_or(0);
    let de_escalate_after_ms = duration(f, "de_escalate_after").unwrap_or(0);
    let allowed_lateness_ms = duration(f, "allowed_lateness");

    let predict_horizon_ms = f.get::<Predict>("predict").and_then(|p| {
        parse_duration("predict horizon", &Value::from(p.horizon))
            .map_err(|m| f.fail("predict", m))
            .ok()
    });
    if predict_horizon_ms.is_some() && f.has("aggregate") {
        f.fail(
            "aggregate",
            "a `predict` rule grades the trend line of the readings; remove `aggregate`".into(),
        );
    }
    if predict_horizon_ms == Some(0) {
        f.fail("predict", "predict horizon must be more than 0".into());
    }

    let mut quorum = Quorum::default();
    if let Some(n) = f.get::<u32>("min_sensors") {
        if n == 0 {
            f.fail("min_sensors", "min_sensors must be at least 1".into());
        }
        quorum.min_sensors = n;
    }
    if let Some(x) = f.get::<f64>("min_fraction") {
        if !(x > 0.0 && x <= 1.0) {
            f.fail(
                "min_fraction",
                format!("min_fraction {x} must be in (0, 1]"),
            );
        }
        quorum.min_fraction = x;
    }
    if quorum.is_set() && group_by == AreaLevel::Sensor {
        let key = if f.has("min_sensors") {
            "min_sensors"
        } else {
            "min_fraction"
        };
        f.fail(
            key,
            "a quorum needs an area: set `group_by` to grid, street or district".into(),
        );
    }

    let quality = quality(f, group_by, predict_horizon_ms.is_some() || quorum.is_set());
    let category = match (quality, category) {
        (Some(_), Category::Env) if !f.has("category") => Category::Data,
        (Some(_), Category::Data) => Category::Data,
        (Some(_), other) => {
            f.fail(
                "category",
                format!("a data-quality rule has category `data`, not `{}`: sensor faults are graded apart from the environment", other.as_str()),
            );
            other
        }
        (None, c) => c,
    };

    if metric == crate::model::AQI_METRIC {
        if window.is_some_and(|(w, s)| s.is_none() && w != WindowSpec::tumbling(3_600_000)) {
            f.fail(
                "window",
                "`metric: aqi` is the hourly AQI of HJ 633-2012: use `window: 1h` (the 8h and 24h moving means are taken care of)".into(),
            );
        }
        if f.has("aggregate")
            || predict_horizon_ms.is_some()
            || quorum.is_set()
            || quality.is_some()
        {
            f.fail(
                "metric",
                "`metric: aqi` is graded as computed: drop aggregate, predict, quality, min_sensors and min_fraction".into(),
            );
        }
    }

    let metrics: Vec<String> = f.get("metrics").unwrap_or_default();
    let sql: Option<String> = f.get("sql");
    match &sql {
        Some(query) => {
            if f.has("aggregate")
                || predict_horizon_ms.is_some()
                || quorum.is_set()
                || quality.is_some()
            {
                f.fail(
                    "sql",
                    "a SQL rule computes its own value: drop aggregate, predict, quality, min_sensors and min_fraction".into(),
                );
            }
            if let Err(e) = crate::sql::check(query) {
                f.fail("sql", e);
            }
        }
        None if !metrics.is_empty() => {
            f.fail(
                "metrics",
                "`metrics` lists what a `sql` query reads; this rule has none".into(),
            );
        }
        None => {}
    }

    if window.is_some_and(|(_, s)| s.is_some()) {
        if aggregate.percentile().is_some() {
            f.fail(
                "aggregate",
                "percentiles are not kept for session windows; use a fixed window".into(),
            );
        }
        if metric == crate::model::AQI_METRIC || quality == Some(Quality::Silent) {
            f.fail(
                "window",
                "the hourly AQI and silence checks need fixed windows".into(),
            );
        }
    }

    let baseline = baseline(f, window.map(|(w, _)| w.slide_ms), direction);
    if baseline.is_some() {
        let conflicting = predict_horizon_ms.is_some()
            || quorum.is_set()
            || quality.is_some()
            || sql.is_some()
            || metric == crate::model::AQI_METRIC
            || window.is_some_and(|(_, s)| s.is_some());
        if conflicting {
            f.fail(
                "baseline",
                "a baseline rule grades a plain window aggregate on fixed windows: drop predict, quality, sql, min_sensors and min_fraction".into(),
            );
        }
    }

    let labels = templates(f, "labels");
    let annotations = templates(f, "annotations");
    let texts = texts(f);
    let tune = match f.raw("tune") {
        Some(v) => crate::tune::parse(&v).unwrap_or_else(|problems| {
            for (key, message) in problems {
                f.fail(&key, message);
            }
            Vec::new()
        }),
        None => Vec::new(),
    };

    if f.problems.len() > before {
        return None;
    }
    Some(Rule {
        id,
        group: group.to_owned(),
        description,
        category,
        metric,
        unit,
        window: window?.0,
        session: window?.1,
        aggregate,
        group_by,
        direction,
        levels,
        tolerate_missing,
        keep_firing_for_ms,
        de_escalate_after_ms,
        predict_horizon_ms,
        quorum,
        quality,
        sql,
        metrics,
        labels,
        annotations,
        allowed_lateness_ms,
        baseline,
        descriptions,
        texts,
        tune,
    })
}

/// `description: text`, or one per language (`{zh-CN: …, en: …}`; the
/// English one, else the first, is the rule's plain description).
fn descriptions(f: &mut Fields<'_>) -> (String, BTreeMap<String, String>) {
    match f.raw("description") {
        None => (String::new(), BTreeMap::new()),
        Some(Value::Mapping(_)) => {
            let map: BTreeMap<String, String> = f.get("description").unwrap_or_default();
            let plain = map
                .get("en")
                .or_else(|| map.values().next())
                .cloned()
                .unwrap_or_default();
            (plain, map)
        }
        Some(_) => (f.get("description").unwrap_or_default(), BTreeMap::new()),
    }
}

/// `text:` per language: headline, summary and instruction templates,
/// each placeholder checked.
fn texts(f: &mut Fields<'_>) -> BTreeMap<String, RuleText> {
    let texts: BTreeMap<String, RuleText> = f.get("text").unwrap_or_default();
    for (lang, text) in &texts {
        let phrases = [("headline", &text.headline), ("summary", &text.summary)];
        // A plain string serves several kinds: check it once.
        let mut all: std::collections::BTreeSet<(String, &str)> = phrases
            .iter()
            .flat_map(|(name, p)| p.templates().map(move |(_, t)| (name.to_string(), t)))
            .collect();
        all.extend(
            text.instruction
                .0
                .values()
                .map(|t| ("instruction".to_owned(), t.as_str())),
        );
        for (name, t) in all {
            if let Err(m) = template::text_placeholders(t) {
                f.fail(
                    &format!("text.{lang}.{name}"),
                    format!("text.{lang}.{name}: {m}"),
                );
            }
        }
    }
    texts
}

/// `baseline: {method, history, …}`: levels are then deviation multiples,
/// given as `above:` whichever side is graded.
fn baseline(
    f: &mut Fields<'_>,
    slide_ms: Option<i64>,
    direction: Direction,
) -> Option<crate::baseline::Baseline> {
    let value = f.raw("baseline")?;
    let parsed = crate::baseline::parse(value, slide_ms.unwrap_or(0))
        .map_err(|(key, m)| f.fail_within("baseline", key, m))
        .ok()?;
    if direction == Direction::Below {
        f.fail(
            "below",
            "a baseline rule's levels are deviation multiples: give them as `above:` and pick the side with `baseline: {side: below}`".into(),
        );
    }
    Some(parsed)
}

/// `quality: silent|stuck|out_of_range|outlier|flat_line` (with `range:
/// [low, high]` for out_of_range, `tolerance` for flat_line).
fn quality(f: &mut Fields<'_>, group_by: AreaLevel, trend_or_quorum: bool) -> Option<Quality> {
    let range: Option<Vec<f64>> = f.get("range");
    let tolerance: Option<f64> = f.get("tolerance");
    let Some(name) = f.get::<String>("quality") else {
        if range.is_some() {
            f.fail("range", "`range` belongs to `quality: out_of_range`".into());
        }
        return None;
    };
    let q = match name.as_str() {
        "silent" => Quality::Silent,
        "stuck" => Quality::Stuck,
        "outlier" => Quality::Outlier,
        "flat_line" => match tolerance {
            Some(t) if !(t >= 0.0 && t.is_finite()) => {
                f.fail("tolerance", "tolerance must be 0 or more".into());
                return None;
            }
            t => Quality::FlatLine {
                tolerance: t.unwrap_or(0.0),
            },
        },
        "out_of_range" => match range.as_deref() {
            Some(&[low, high]) if low < high => Quality::OutOfRange { low, high },
            Some(_) => {
                f.fail(
                    "range",
                    "range must be `[low, high]` with low < high".into(),
                );
                return None;
            }
            None => {
                f.fail("quality", "out_of_range needs `range: [low, high]`".into());
                return None;
            }
        },
        other => {
            f.fail(
                "quality",
                format!("unknown quality check `{other}`; expected silent, stuck, flat_line, out_of_range or outlier"),
            );
            return None;
        }
    };
    if range.is_some() && !matches!(q, Quality::OutOfRange { .. }) {
        f.fail("range", "`range` belongs to `quality: out_of_range`".into());
    }
    if tolerance.is_some() && !matches!(q, Quality::FlatLine { .. }) {
        f.fail(
            "tolerance",
            "`tolerance` belongs to `quality: flat_line`".into(),
        );
    }
    if group_by != AreaLevel::Sensor {
        f.fail(
            "quality",
            "a data-quality rule grades each sensor: use `group_by: sensor`".into(),
        );
    }
    if f.has("aggregate") {
        f.fail(
            "aggregate",
            "a data-quality rule grades its check's value; remove `aggregate`".into(),
        );
    }
    if trend_or_quorum {
        f.fail(
            "quality",
            "a data-quality rule cannot also `predict` or need a quorum".into(),
        );
    }
    Some(q)
}

fn thresholds(
    f: &mut Fields<'_>,
    key: &str,
    direction: Direction,
    t: Thresholds,
) -> Vec<(Grade, f64)> {
    let out: Vec<(Grade, f64)> = [
        (Grade::Blue, t.blue),
        (Grade::Yellow, t.yellow),
        (Grade::Orange, t.orange),
        (Grade::Red, t.red),
    ]
    .into_iter()
    .filter_map(|(g, t)| t.map(|t| (g, t)))
    .collect();
    if out.is_empty() {
        f.fail(
            key,
            format!("`{key}` names no grade: give at least one of blue, yellow, orange, red"),
        );
    }
    if let Some((g, t)) = out.iter().find(|(_, t)| !t.is_finite()) {
        f.fail(key, format!("{g} threshold {t} is not a finite number"));
    }
    for pair in out.windows(2) {
        let ((g1, t1), (g2, t2)) = (pair[0], pair[1]);
        if !direction.crosses(t2, t1) {
            f.fail(
                key,
                format!(
                    "{g2} threshold {t2} must be {key} {g1} threshold {t1}: a more serious grade needs a more extreme value"
                ),
            );
        }
    }
    out
}

/// `for: 20m` (every grade) or `for: {blue: 30m, red: 0s}`.
fn pending(f: &mut Fields<'_>, thresholds: &[(Grade, f64)]) -> BTreeMap<Grade, i64> {
    let mut out = BTreeMap::new();
    let Some(value) = f.raw("for") else {
        return out;
    };
    match value {
        Value::Mapping(map) => {
            for (k, v) in map {
                let grade = grade_key(f, "for", &k, thresholds);
                match parse_duration("for", &v) {
                    Ok(ms) => {
                        if let Some(g) = grade {
                            out.insert(g, ms);
                        }
                    }
                    Err(m) => f.fail("for", m),
                }
            }
        }
        v => match parse_duration("for", &v) {
            Ok(ms) => {
                for (g, _) in thresholds {
                    out.insert(*g, ms);
                }
            }
            Err(m) => f.fail("for", m),
        },
    }
    out
}

/// Hysteresis: `clear: {orange: 140}` per grade and/or `clear_margin: 10`
/// (or `"5%"` of each threshold) for the others.
fn clear(
    f: &mut Fields<'_>,
    direction: Direction,
    thresholds: &[(Grade, f64)],
) -> BTreeMap<Grade, f64> {
    let mut out = BTreeMap::new();
    if let Some(margin) = f.raw("clear_margin") {
        let parsed = match &margin {
            Value::Number(n) => n.as_f64().map(|m| (m, false)),
            Value::String(s) => s
                .trim()
                .strip_suffix('%')
                .and_then(|p| p.trim().parse::<f64>().ok())
                .map(|p| (p / 100.0, true)),
            _ => None,
        };
        match parsed {
            Some((m, _)) if !(m >= 0.0 && m.is_finite()) => {
                f.fail("clear_margin", "clear_margin must not be negative".into())
            }
            Some((m, relative)) => {
                for &(g, t) in thresholds {
                    let m = if relative { m * t.abs() } else { m };
                    let c = match direction {
                        Direction::Above => t - m,
                        Direction::Below => t + m,
                    };
                    out.insert(g, c);
                }
            }
            None => f.fail(
                "clear_margin",
                "clear_margin must be a number (in the rule's unit) or a percentage like \"5%\""
                    .into(),
            ),
        }
    }
    if let Some(Value::Mapping(map)) = f.raw("clear") {
        for (k, v) in map {
            let grade = grade_key(f, "clear", &k, thresholds);
            let Some(c) = v.as_f64() else {
                f.fail("clear", format!("clear threshold {v:?} is not a number"));
                continue;
            };
            if let Some(g) = grade {
                out.insert(g, c);
            }
        }
    } else if f.has("clear") {
        f.fail(
            "clear",
            "clear must map grades to clear thresholds, e.g. `clear: {orange: 140}`".into(),
        );
    }
    for &(g, t) in thresholds {
        if let Some(&c) = out.get(&g)
            && direction.crosses(c, t)
        {
            let word = if direction == Direction::Above {
                "at or below"
            } else {
                "at or above"
            };
            f.fail(
                if f.has("clear") { "clear" } else { "clear_margin" },
                format!("{g} clear threshold {c} must be {word} its threshold {t}: a warning cannot clear at a more extreme value than it was raised"),
            );
        }
    }
    out
}

fn grade_key(
    f: &mut Fields<'_>,
    key: &str,
    k: &Value,
    thresholds: &[(Grade, f64)],
) -> Option<Grade> {
    let grade = k
        .as_str()
        .and_then(|s| Grade::ALL.into_iter().find(|g| g.as_str() == s));
    match grade {
        None => {
            f.fail(
                key,
                format!(
                    "{key}: `{}` is not a grade (blue, yellow, orange, red)",
                    k.as_str().unwrap_or("?")
                ),
            );
            None
        }
        Some(g) if !thresholds.iter().any(|(t, _)| *t == g) => {
            f.fail(key, format!("{key}: the rule has no {g} threshold"));
            None
        }
        g => g,
    }
}

fn templates(f: &mut Fields<'_>, key: &str) -> BTreeMap<String, String> {
    let map: BTreeMap<String, String> = f.get(key).unwrap_or_default();
    for (name, text) in &map {
        if let Err(m) = template::placeholders(text) {
            f.fail(key, format!("{key}.{name}: {m}"));
        }
    }
    map
}

fn duration(f: &mut Fields<'_>, key: &str) -> Option<i64> {
    let value = f.raw(key)?;
    parse_duration(key, &value).map_err(|m| f.fail(key, m)).ok()
}

/// `20m`, `1h 30m`, or `0`.
pub(crate) fn parse_duration(key: &str, value: &Value) -> Result<i64, String> {
    match value {
        Value::Number(n) if n.as_f64() == Some(0.0) => Ok(0),
        Value::String(s) => humantime::parse_duration(s.trim())
            .map(|d| d.as_millis() as i64)
            .map_err(|e| format!("{key} {s:?} is not a duration ({e}); write e.g. 20m, 1h, 1d")),
        other => Err(format!(
            "{key} must be a duration like 20m, not {}",
            serde_yaml_ng::to_string(other).unwrap_or_default().trim()
        )),
    }
}

fn window_ms(key: &str, value: &Value) -> Result<i64, String> {
    let ms = parse_duration(key, value)?;
    if ms < 1_000 {
        return Err(format!("{key} must be at least 1s"));
    }
    Ok(ms)
}

/// `window: 1h`, `window: {size: 24h, slide: 1h}` or, for session
/// windows, `window: {gap: 15m, max: 6h}` (max defaults to 24h).
fn window_spec(value: &Value) -> Result<(WindowSpec, Option<SessionSpec>), String> {
    let (size_ms, slide_ms) = match value {
        Value::Mapping(keys) => {
            let get = |k: &str| keys.get(k);
            if get("gap").is_some() || get("max").is_some() {
                if let Some(k) = keys
                    .keys()
                    .find(|k| !matches!(k.as_str(), Some("gap" | "max")))
                {
                    return Err(format!(
                        "unknown session window key `{}`, expected `gap` and `max`",
                        k.as_str().unwrap_or("?")
                    ));
                }
                let gap = window_ms(
                    "window gap",
                    get("gap").ok_or("a session window needs a `gap`")?,
                )?;
                let max = match get("max") {
                    Some(m) => window_ms("window max", m)?,
                    None => 24 * 3_600_000,
                };
                if max <= gap {
                    return Err(format!(
                        "a session's `max` ({max} ms) must be longer than its `gap` ({gap} ms)"
                    ));
                }
                let spec = SessionSpec {
                    gap_ms: gap,
                    max_ms: max,
                };
                return Ok((WindowSpec::tumbling(max), Some(spec)));
            }
            if let Some(k) = keys
                .keys()
                .find(|k| !matches!(k.as_str(), Some("size" | "slide")))
            {
                return Err(format!(
                    "unknown window key `{}`, expected `size` and `slide`",
                    k.as_str().unwrap_or("?")
                ));
            }
            let size = window_ms("window size", get("size").ok_or("window needs a `size`")?)?;
            let slide = match get("slide") {
                Some(s) => window_ms("window slide", s)?,
                None => size,
            };
            (size, slide)
        }
        v => {
            let size = window_ms("window", v)?;
            (size, size)
        }
    };
    if slide_ms > size_ms || size_ms % slide_ms != 0 {
        return Err(format!(
            "window size must be a whole multiple of its slide (size {size_ms} ms, slide {slide_ms} ms)"
        ));
    }
    Ok((WindowSpec { size_ms, slide_ms }, None))
}
