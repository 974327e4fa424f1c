//! Labelled events: NAB's `combined_windows.json` (`{"dir/file.csv":
//! [[start, end], …]}`) or CSV `series,start,end`. Series are sensor ids;
//! a NAB key names its file, whose stem is the sensor id a CSV input gets.
//!
//! A CSV with `outcome` and `rule` columns (`yujing feedback export`)
//! holds responders' verdicts: `confirmed` rows are the events, and
//! `confirmed` and `false_alarm` rows are the verdicts each rule is scored
//! against.

use std::path::{Path, PathBuf};

use chrono::FixedOffset;

use super::BacktestError;
use super::input::{file_stem, parse_time};
use super::score::Event;
use super::verdicts::Verdict;

/// What a labels file holds.
pub struct Labels {
    pub events: Vec<Event>,
    /// The series the file labels (a NAB file lists series without events
    /// too).
    pub series: Vec<String>,
    /// Responders' verdicts (an exported verdicts file).
    pub verdicts: Vec<Verdict>,
}

pub fn load(path: &Path, offset: FixedOffset) -> Result<Labels, BacktestError> {
    let bad = |message: String| BacktestError::Events {
        path: path.to_owned(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| BacktestError::Read {
        path: path.to_owned(),
        source: e,
    })?;
    let time = |s: &str| parse_time(&[s], offset).map_err(bad);
    let mut events = Vec::new();
    let mut series = Vec::new();
    let mut verdicts = Vec::new();
    if path.extension().and_then(|e| e.to_str()) == Some("json") {
        let map: std::collections::BTreeMap<String, Vec<(String, String)>> =
            serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        for (key, windows) in map {
            let name = file_stem(&PathBuf::from(&key));
            for (start, end) in windows {
                events.push(Event {
                    series: name.clone(),
                    start_ms: time(&start)?,
                    end_ms: time(&end)?,
                });
            }
            series.push(name);
        }
    } else {
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let headers = reader.headers().map_err(|e| bad(e.to_string()))?.clone();
        let column = |name: &str| headers.iter().position(|h| h.trim() == name);
        let judged = column("outcome").zip(column("rule"));
        for (n, record) in reader.records().enumerate() {
            let record = record.map_err(|e| bad(e.to_string()))?;
            let [name, start, end] = [0, 1, 2].map(|i| record.get(i).unwrap_or("").trim());
            if name.is_empty() {
                return Err(bad(format!("line {}: expected series,start,end", n + 2)));
            }
            if let Some((outcome, rule)) = judged {
                let cell = |i: usize| record.get(i).unwrap_or("").trim();
                let confirmed = match cell(outcome) {
                    "confirmed" => true,
                    "false_alarm" => false,
                    // A sensor fault or duplicate says nothing of the rule.
                    _ => continue,
                };
                verdicts.push(Verdict {
                    series: name.to_owned(),
                    start_ms: time(start)?,
                    end_ms: time(end)?,
                    rule: cell(rule).to_owned(),
                    confirmed,
                });
                if !series.iter().any(|s| s == name) {
                    series.push(name.to_owned());
                }
                if !confirmed {
                    continue;
                }
            }
            events.push(Event {
                series: name.to_owned(),
                start_ms: time(start)?,
                end_ms: time(end)?,
            });
            if !series.iter().any(|s| s == name) {
                series.push(name.to_owned());
            }
        }
    }
    if let Some(e) = events.iter().find(|e| e.end_ms < e.start_ms) {
        return Err(bad(format!("event on {} ends before it starts", e.series)));
    }
    Ok(Labels {
        events,
        series,
        verdicts,
    })
}
