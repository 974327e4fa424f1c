//! Labelled events: NAB's `combined_windows.json` (`{"dir/file.csv":
//! [[start, end], …]}`) or CSV `series,start,end`. Series are sensor ids;
//! a NAB key names its file, whose stem is the sensor id a CSV input gets.

use std::path::{Path, PathBuf};

use chrono::FixedOffset;

use super::BacktestError;
use super::input::{file_stem, parse_time};
use super::score::Event;

/// Events, and the series the file labels (a NAB file lists series
/// without events too).
pub fn load(path: &Path, offset: FixedOffset) -> Result<(Vec<Event>, Vec<String>), BacktestError> {
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
        for (n, record) in reader.records().enumerate() {
            let record = record.map_err(|e| bad(e.to_string()))?;
            let [name, start, end] = [0, 1, 2].map(|i| record.get(i).unwrap_or("").trim());
            if name.is_empty() {
                return Err(bad(format!("line {}: expected series,start,end", n + 2)));
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
    Ok((events, series))
}
