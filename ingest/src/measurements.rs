//! What sensors measure: the metric names a deployment knows, their units
//! and physical ranges, from a YAML file ops teams keep next to the rules.
//!
//! ```yaml
//! measurements:
//!   pm25: { unit: ug/m3, range: [0, 2000], description: PM2.5 mass concentration }
//!   level_m: { unit: m, range: [-5, 50], error_codes: [-9999], max_change_per_minute: 0.5 }
//! ```
//!
//! `yujing rules check --measurements FILE` refuses rules on metrics not
//! listed; `yujing run` sends to the dead-letter topic, instead of
//! averaging it in, a reading
//! - outside its metric's range (reason `out_of_range`);
//! - equal to one of the metric's `error_codes`, the values a logger sends
//!   for "no measurement" (reason `error_code`);
//! - further from the sensor's previous reading than the metric can change
//!   in that time, `max_change_per_minute` (reason `spike`). A step that
//!   holds (the next reading agrees with the refused one) is a new level,
//!   not a spike: it is taken from there on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::IngestError;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Measurement {
    #[serde(default)]
    pub unit: String,
    /// Physically possible values, inclusive: `[low, high]`.
    #[serde(default)]
    pub range: Option<[f64; 2]>,
    #[serde(default)]
    pub description: String,
    /// Values a logger sends for "no measurement" (e.g. -9999).
    #[serde(default)]
    pub error_codes: Vec<f64>,
    /// The most the metric can physically change per minute.
    #[serde(default)]
    pub max_change_per_minute: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    measurements: BTreeMap<String, Measurement>,
}

/// The known metrics, by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Measurements {
    pub path: PathBuf,
    pub metrics: BTreeMap<String, Measurement>,
}

impl Measurements {
    pub fn load(path: &Path) -> Result<Self, IngestError> {
        let text = std::fs::read_to_string(path).map_err(|source| IngestError::MeasurementsIo {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parse measurements text; `path` is only used in messages.
    pub fn parse(path: &Path, text: &str) -> Result<Self, IngestError> {
        let err = |message: String| IngestError::MeasurementsFormat {
            path: path.to_owned(),
            message,
        };
        let file: File = serde_yaml_ng::from_str(text).map_err(|e| {
            let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
            let message = e.to_string();
            let message = message
                .rfind(" at line ")
                .map_or(message.as_str(), |i| &message[..i])
                .to_owned();
            err(format!("{line}:{column}: {message}"))
        })?;
        for (name, m) in &file.measurements {
            if let Some([low, high]) = m.range
                && low.partial_cmp(&high) != Some(std::cmp::Ordering::Less)
            {
                return Err(err(format!(
                    "1:1: {name}: range [{low}, {high}] needs low < high"
                )));
            }
            if let Some(rate) = m.max_change_per_minute
                && !(rate > 0.0 && rate.is_finite())
            {
                return Err(err(format!(
                    "1:1: {name}: max_change_per_minute {rate} must be more than 0"
                )));
            }
        }
        Ok(Measurements {
            path: path.to_owned(),
            metrics: file.measurements,
        })
    }

    pub fn names(&self) -> Vec<String> {
        self.metrics.keys().cloned().collect()
    }

    /// The "no measurement" codes of a metric.
    pub fn error_codes(&self, metric: &str) -> &[f64] {
        self.metrics
            .get(metric)
            .map_or(&[], |m| m.error_codes.as_slice())
    }

    /// The most a metric can change per minute, if known.
    pub fn max_change_per_minute(&self, metric: &str) -> Option<f64> {
        self.metrics
            .get(metric)
            .and_then(|m| m.max_change_per_minute)
    }

    /// The physical range of a metric, if known.
    pub fn range(&self, metric: &str) -> Option<(f64, f64)> {
        self.metrics
            .get(metric)
            .and_then(|m| m.range)
            .map(|[l, h]| (l, h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_names_units_and_ranges() {
        let m = Measurements::parse(
            Path::new("m.yaml"),
            "measurements:\n  pm25: { unit: ug/m3, range: [0, 2000] }\n  level_m: { unit: m }\n",
        )
        .unwrap();
        assert_eq!(m.names(), ["level_m", "pm25"]);
        assert_eq!(m.range("pm25"), Some((0.0, 2000.0)));
        assert_eq!(m.range("level_m"), None);
        let e = Measurements::parse(
            Path::new("m.yaml"),
            "measurements:\n  pm25: { unit: ug/m3, rang: [0, 1] }\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("m.yaml") && e.contains("2:") && e.contains("rang"),
            "{e}"
        );
        let e = Measurements::parse(
            Path::new("m.yaml"),
            "measurements:\n  pm25: { range: [5, 1] }\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("low < high"), "{e}");
    }
}
