//! What the engine needs from the configuration, parsed once into types:
//! the time zone windows align to, and the watermark's and intake's
//! tolerances in milliseconds.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

/// A fixed offset from UTC, named as the operator wrote it: an IANA zone
/// without daylight saving time (`Asia/Shanghai`) or an offset (`+08:00`).
/// Windows align to local boundaries, so a zone with daylight saving time
/// (whose hours would repeat) is refused.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct TimeZone {
    name: String,
    offset_ms: i64,
}

impl TimeZone {
    /// Parse an IANA zone name or `+HH:MM`/`-HH:MM`/`Z`/`UTC`.
    pub fn parse(name: &str) -> Result<Self, String> {
        let offset_ms = if name.starts_with(['+', '-']) || name == "Z" || name == "UTC" {
            parse_offset(name)?
        } else {
            zone_offset(name)?
        };
        Ok(TimeZone {
            name: name.to_owned(),
            offset_ms,
        })
    }

    /// Milliseconds east of UTC.
    pub fn utc_offset_ms(&self) -> i64 {
        self.offset_ms
    }

    /// The name as written in the configuration.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Default for TimeZone {
    /// Beijing time, the city's.
    fn default() -> Self {
        TimeZone {
            name: "Asia/Shanghai".into(),
            offset_ms: 8 * 3_600_000,
        }
    }
}

impl TryFrom<String> for TimeZone {
    type Error = String;
    fn try_from(name: String) -> Result<Self, String> {
        TimeZone::parse(&name)
    }
}

impl fmt::Display for TimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

fn zone_offset(name: &str) -> Result<i64, String> {
    use chrono::{Offset, TimeZone as _};
    let tz: chrono_tz::Tz = name.parse().map_err(|_| {
        format!(
            "time_zone {name:?} is not an IANA zone name (e.g. Asia/Shanghai) nor an offset (e.g. +08:00)"
        )
    })?;
    let offset_at = |month| {
        let t = chrono::NaiveDate::from_ymd_opt(2026, month, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .expect("valid date");
        tz.offset_from_utc_datetime(&t).fix().local_minus_utc() as i64 * 1000
    };
    let (winter, summer) = (offset_at(1), offset_at(7));
    if winter != summer {
        return Err(format!(
            "time_zone {name:?} observes daylight saving time; windows need a fixed offset: give one, e.g. {}",
            format_offset(winter)
        ));
    }
    Ok(winter)
}

fn format_offset(ms: i64) -> String {
    let minutes = ms.abs() / 60_000;
    let sign = if ms < 0 { '-' } else { '+' };
    format!("{sign}{:02}:{:02}", minutes / 60, minutes % 60)
}

/// `+HH:MM`, `-HH:MM`, `Z` or `UTC` in milliseconds east of UTC.
pub fn parse_offset(text: &str) -> Result<i64, String> {
    if text == "Z" || text == "UTC" {
        return Ok(0);
    }
    let bad = || format!("time_zone {text:?}: write an offset as +HH:MM, e.g. +08:00");
    let (sign, rest) = match text.as_bytes().first() {
        Some(b'+') => (1, &text[1..]),
        Some(b'-') => (-1, &text[1..]),
        _ => return Err(bad()),
    };
    let (h, m) = rest.split_once(':').ok_or_else(bad)?;
    let h: i64 = h.parse().map_err(|_| bad())?;
    let m: i64 = m.parse().map_err(|_| bad())?;
    if h > 14 || m > 59 {
        return Err(bad());
    }
    Ok(sign * (h * 3600 + m * 60) * 1000)
}

/// The engine's settings: how readings are admitted and when windows close.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineSettings {
    /// Windows align to this zone's local boundaries.
    pub time_zone: TimeZone,
    /// The watermark trails the latest event time by this much.
    pub allowed_delay: Duration,
    /// Windows stay open to corrections this long after the watermark
    /// passed them (rules may override it).
    pub allowed_lateness: Duration,
    /// Readings stamped further ahead of now are refused.
    pub max_future_skew: Duration,
    /// A partition silent this long stops holding the watermark back.
    pub idle_timeout: Option<Duration>,
    /// Readings stamped further before now are refused.
    pub max_age: Option<Duration>,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            time_zone: TimeZone::default(),
            allowed_delay: Duration::from_secs(30),
            allowed_lateness: Duration::ZERO,
            max_future_skew: Duration::from_secs(300),
            idle_timeout: Some(Duration::from_secs(120)),
            max_age: Some(Duration::from_secs(7 * 24 * 3600)),
        }
    }
}

pub(crate) fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_zones() {
        let tz = |name: &str| TimeZone::parse(name).map(|t| t.utc_offset_ms());
        assert_eq!(tz("Asia/Shanghai"), Ok(8 * 3_600_000));
        assert_eq!(tz("Asia/Kolkata"), Ok(5 * 3_600_000 + 30 * 60_000));
        assert_eq!(tz("+08:00"), Ok(8 * 3_600_000));
        let dst = tz("Europe/Berlin").unwrap_err();
        assert!(
            dst.contains("daylight saving") && dst.contains("+01:00"),
            "{dst}"
        );
        assert!(tz("Mars/Olympus").unwrap_err().contains("IANA"));
        assert_eq!(TimeZone::default().utc_offset_ms(), 8 * 3_600_000);
        assert_eq!(
            TimeZone::default(),
            TimeZone::parse("Asia/Shanghai").unwrap()
        );
    }

    #[test]
    fn offsets() {
        assert_eq!(parse_offset("+08:00"), Ok(8 * 3_600_000));
        assert_eq!(parse_offset("-05:30"), Ok(-(5 * 3_600_000 + 30 * 60_000)));
        assert_eq!(parse_offset("Z"), Ok(0));
        assert!(parse_offset("8").is_err());
        assert!(parse_offset("+25:00").is_err());
    }
}
