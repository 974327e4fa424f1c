//! History to replay: reading messages as JSONL, or CSV exports with a
//! column mapping (a historian's wide table, NAB's `timestamp,value`).
//!
//! Everything is read into one compact, time-sorted list of readings, so a
//! backtest feeds the engine in event-time order however many files the
//! history comes in.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::{FixedOffset, NaiveDate, NaiveDateTime, TimeZone};
use yujing_ingest::{Reading, decode_readings};

use super::BacktestError;

/// How to read CSV files.
#[derive(Debug, Clone, Default)]
pub struct CsvMapping {
    /// One timestamp column (`timestamp`), or year, month, day and hour
    /// columns (and optionally minute).
    pub time: TimeColumns,
    /// Column holding the sensor id; without it each file is one sensor
    /// named after the file (`speed_6005.csv` → `speed_6005`), or `sensor_id`.
    pub sensor_column: Option<String>,
    pub sensor_id: Option<String>,
    /// Column → metric, with a factor (`CO=co*0.001`).
    pub metrics: Vec<MetricColumn>,
    /// Cells that mean "no value" besides the empty cell (`NA`, `NaN`).
    pub missing: Vec<String>,
}

#[derive(Debug, Clone)]
pub enum TimeColumns {
    One(String),
    Parts(Vec<String>),
}

impl Default for TimeColumns {
    fn default() -> Self {
        TimeColumns::One("timestamp".into())
    }
}

impl TimeColumns {
    /// `timestamp`, or `year,month,day,hour[,minute]`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let parts: Vec<String> = text.split(',').map(|s| s.trim().to_owned()).collect();
        match parts.len() {
            1 => Ok(TimeColumns::One(parts[0].clone())),
            4 | 5 => Ok(TimeColumns::Parts(parts)),
            _ => Err(format!(
                "time columns `{text}`: give one timestamp column, or year,month,day,hour[,minute]"
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct MetricColumn {
    pub column: String,
    pub metric: String,
    pub factor: f64,
}

impl MetricColumn {
    /// `PM2.5=pm25`, `CO=co*0.001`, or `value` (metric named as the column).
    pub fn parse_list(text: &str) -> Result<Vec<Self>, String> {
        text.split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|item| {
                let (column, target) = item.split_once('=').unwrap_or((item, item));
                let (metric, factor) = match target.split_once('*') {
                    Some((m, f)) => (
                        m,
                        f.trim()
                            .parse::<f64>()
                            .map_err(|_| format!("metric `{item}`: `{f}` is not a number"))?,
                    ),
                    None => (target, 1.0),
                };
                Ok(MetricColumn {
                    column: column.trim().to_owned(),
                    metric: metric.trim().to_owned(),
                    factor,
                })
            })
            .collect()
    }
}

/// A time span `[from, to)` in epoch milliseconds; either end open.
pub type Span = (Option<i64>, Option<i64>);

/// One reading, with its sensor and metric interned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub ts_ms: i64,
    pub sensor: u32,
    pub metric: u16,
    pub value: f64,
}

/// Readings of all input files, sorted by event time.
#[derive(Debug, Default)]
pub struct History {
    pub sensors: Vec<String>,
    pub metrics: Vec<String>,
    pub points: Vec<Point>,
    /// Files read.
    pub files: usize,
    /// Input lines or cells skipped, with the first few reasons.
    pub skipped: u64,
    pub skip_examples: Vec<String>,
    sensor_ids: HashMap<String, u32>,
    metric_ids: HashMap<String, u16>,
}

impl History {
    fn sensor(&mut self, id: &str) -> u32 {
        if let Some(&i) = self.sensor_ids.get(id) {
            return i;
        }
        let i = self.sensors.len() as u32;
        self.sensors.push(id.to_owned());
        self.sensor_ids.insert(id.to_owned(), i);
        i
    }

    fn metric(&mut self, name: &str) -> u16 {
        if let Some(&i) = self.metric_ids.get(name) {
            return i;
        }
        let i = self.metrics.len() as u16;
        self.metrics.push(name.to_owned());
        self.metric_ids.insert(name.to_owned(), i);
        i
    }

    fn push(&mut self, r: &Reading) {
        let sensor = self.sensor(&r.sensor_id);
        let metric = self.metric(&r.metric);
        self.points.push(Point {
            ts_ms: r.ts_ms,
            sensor,
            metric,
            value: r.value,
        });
    }

    fn skip(&mut self, why: String) {
        self.skipped += 1;
        if self.skip_examples.len() < 5 {
            self.skip_examples.push(why);
        }
    }

    /// The index of sensor `id` in `sensors`.
    pub fn sensor_index(&self, id: &str) -> Option<usize> {
        self.sensor_ids.get(id).map(|&i| i as usize)
    }

    /// The reading as the engine takes it.
    pub fn reading(&self, p: &Point) -> Reading {
        Reading {
            sensor_id: self.sensors[p.sensor as usize].clone(),
            ts_ms: p.ts_ms,
            metric: self.metrics[p.metric as usize].clone(),
            value: p.value,
        }
    }

    /// Load `paths` (files, or directories of `.jsonl`/`.csv` files).
    /// Naive CSV times are local at `utc_offset_ms`.
    pub fn load(
        paths: &[PathBuf],
        csv: &CsvMapping,
        utc_offset_ms: i64,
    ) -> Result<Self, BacktestError> {
        let mut history = History::default();
        for path in expand(paths)? {
            history.files += 1;
            let text = std::fs::read_to_string(&path).map_err(|e| BacktestError::Read {
                path: path.clone(),
                source: e,
            })?;
            match path.extension().and_then(|e| e.to_str()) {
                Some("csv") => history.load_csv(&path, &text, csv, utc_offset_ms)?,
                _ => history.load_jsonl(&path, &text),
            }
        }
        history
            .points
            .sort_by_key(|p| (p.ts_ms, p.sensor, p.metric));
        Ok(history)
    }

    fn load_jsonl(&mut self, path: &Path, text: &str) {
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match decode_readings(line.as_bytes()) {
                Ok(readings) => readings.iter().for_each(|r| self.push(r)),
                Err(e) => self.skip(format!("{}:{}: {e}", path.display(), n + 1)),
            }
        }
    }

    fn load_csv(
        &mut self,
        path: &Path,
        text: &str,
        map: &CsvMapping,
        utc_offset_ms: i64,
    ) -> Result<(), BacktestError> {
        let bad = |message: String| BacktestError::Csv {
            path: path.to_owned(),
            message,
        };
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .from_reader(text.as_bytes());
        let headers = reader.headers().map_err(|e| bad(e.to_string()))?.clone();
        let index = |name: &str| {
            headers
                .iter()
                .position(|h| h == name)
                .ok_or_else(|| bad(format!("no column `{name}` (columns: {})", join(&headers))))
        };
        let time: Vec<usize> = match &map.time {
            TimeColumns::One(c) => vec![index(c)?],
            TimeColumns::Parts(cs) => cs.iter().map(|c| index(c)).collect::<Result<_, _>>()?,
        };
        let sensor_col = map.sensor_column.as_deref().map(index).transpose()?;
        let fixed = map.sensor_id.clone().unwrap_or_else(|| file_stem(path));
        let metrics: Vec<(usize, u16, f64)> = if map.metrics.is_empty() {
            vec![(index("value")?, self.metric("value"), 1.0)]
        } else {
            let mut out = Vec::new();
            for m in &map.metrics {
                out.push((index(&m.column)?, self.metric(&m.metric), m.factor));
            }
            out
        };
        let offset = yujing_sinks::TimeFormat::new(utc_offset_ms).offset();
        for (n, record) in reader.records().enumerate() {
            let line = n + 2;
            let record = match record {
                Ok(r) => r,
                Err(e) => {
                    self.skip(format!("{}:{line}: {e}", path.display()));
                    continue;
                }
            };
            let cells: Vec<&str> = time.iter().map(|&i| record.get(i).unwrap_or("")).collect();
            let ts_ms = match parse_time(&cells, offset) {
                Ok(ts) => ts,
                Err(e) => {
                    self.skip(format!("{}:{line}: {e}", path.display()));
                    continue;
                }
            };
            let sensor = match sensor_col {
                Some(i) => {
                    let id = record.get(i).unwrap_or("").to_owned();
                    self.sensor(&id)
                }
                None => self.sensor(&fixed),
            };
            for &(i, metric, factor) in &metrics {
                let cell = record.get(i).unwrap_or("").trim();
                if cell.is_empty() || map.missing.iter().any(|m| m == cell) {
                    continue;
                }
                match cell.parse::<f64>() {
                    Ok(v) if v.is_finite() => self.points.push(Point {
                        ts_ms,
                        sensor,
                        metric,
                        value: v * factor,
                    }),
                    _ => self.skip(format!(
                        "{}:{line}: `{cell}` in column {} is not a number",
                        path.display(),
                        headers.get(i).unwrap_or("?")
                    )),
                }
            }
        }
        Ok(())
    }

    /// Keep only the readings in `span`.
    pub fn restrict(&mut self, (from, to): Span) {
        if from.is_some() || to.is_some() {
            self.points
                .retain(|p| from.is_none_or(|f| p.ts_ms >= f) && to.is_none_or(|t| p.ts_ms < t));
        }
    }

    /// First and last reading time per sensor.
    pub fn spans(&self) -> Vec<Option<(i64, i64)>> {
        let mut out = vec![None; self.sensors.len()];
        for p in &self.points {
            let span: &mut Option<(i64, i64)> = &mut out[p.sensor as usize];
            *span = Some(span.map_or((p.ts_ms, p.ts_ms), |(a, b)| {
                (a.min(p.ts_ms), b.max(p.ts_ms))
            }));
        }
        out
    }
}

fn join(headers: &csv::StringRecord) -> String {
    headers.iter().collect::<Vec<_>>().join(", ")
}

/// `realTraffic/speed_6005.csv` → `speed_6005`.
pub fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Files to read: the given files, and the `.csv`/`.jsonl` files of the
/// given directories, in name order.
fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, BacktestError> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            let entries = std::fs::read_dir(path).map_err(|e| BacktestError::Read {
                path: path.clone(),
                source: e,
            })?;
            let mut files: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    matches!(
                        p.extension().and_then(|e| e.to_str()),
                        Some("csv" | "jsonl" | "json")
                    )
                })
                .collect();
            files.sort();
            out.extend(files);
        } else {
            out.push(path.clone());
        }
    }
    if out.is_empty() {
        return Err(BacktestError::NoInput);
    }
    Ok(out)
}

/// One timestamp cell (RFC 3339, epoch milliseconds, or a naive local
/// `YYYY-MM-DD HH:MM[:SS[.fff]]`), or year, month, day, hour[, minute].
pub fn parse_time(cells: &[&str], offset: FixedOffset) -> Result<i64, String> {
    let local = |naive: NaiveDateTime| {
        offset
            .from_local_datetime(&naive)
            .single()
            .map(|t| t.timestamp_millis())
            .ok_or_else(|| format!("no such local time {naive}"))
    };
    if let [cell] = cells {
        let cell = cell.trim();
        if let Ok(t) = chrono::DateTime::parse_from_rfc3339(cell) {
            return Ok(t.timestamp_millis());
        }
        if let Ok(ms) = cell.parse::<i64>() {
            return Ok(ms);
        }
        for format in [
            "%Y-%m-%d %H:%M:%S%.f",
            "%Y-%m-%dT%H:%M:%S%.f",
            "%Y-%m-%d %H:%M",
        ] {
            if let Ok(naive) = NaiveDateTime::parse_from_str(cell, format) {
                return local(naive);
            }
        }
        return Err(format!("`{cell}` is not a time"));
    }
    let part = |i: usize| -> Result<u32, String> {
        let c = cells.get(i).map_or("0", |c| c.trim());
        c.parse::<u32>()
            .map_err(|_| format!("`{c}` is not a whole number"))
    };
    let year = part(0)? as i32;
    let date = NaiveDate::from_ymd_opt(year, part(1)?, part(2)?)
        .ok_or_else(|| format!("no such date {}-{}-{}", cells[0], cells[1], cells[2]))?;
    let minute = if cells.len() > 4 { part(4)? } else { 0 };
    let time = date
        .and_hms_opt(part(3)?, minute, 0)
        .ok_or_else(|| format!("no such time {}:{minute}", cells[3]))?;
    local(time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_columns_with_names_and_factors() {
        assert_eq!(
            MetricColumn::parse_list("PM2.5=pm25,CO=co*0.001,value").unwrap(),
            vec![
                MetricColumn {
                    column: "PM2.5".into(),
                    metric: "pm25".into(),
                    factor: 1.0
                },
                MetricColumn {
                    column: "CO".into(),
                    metric: "co".into(),
                    factor: 0.001
                },
                MetricColumn {
                    column: "value".into(),
                    metric: "value".into(),
                    factor: 1.0
                },
            ]
        );
        assert!(MetricColumn::parse_list("CO=co*x").is_err());
    }

    #[test]
    fn times_in_every_supported_shape() {
        let cst = FixedOffset::east_opt(8 * 3600).unwrap();
        let t = 1_388_505_600_000; // 2014-01-01T00:00:00+08:00
        assert_eq!(parse_time(&["2014-01-01 00:00:00"], cst), Ok(t));
        assert_eq!(parse_time(&["2014-01-01 00:00:00.000000"], cst), Ok(t));
        assert_eq!(parse_time(&["2013-12-31T16:00:00Z"], cst), Ok(t));
        assert_eq!(parse_time(&["1388505600000"], cst), Ok(t));
        assert_eq!(parse_time(&["2014", "1", "1", "0"], cst), Ok(t));
        assert_eq!(
            parse_time(&["2014", "1", "1", "1", "30"], cst),
            Ok(t + 5_400_000)
        );
        assert!(parse_time(&["2014", "2", "30", "0"], cst).is_err());
        assert!(parse_time(&["yesterday"], cst).is_err());
    }
}
