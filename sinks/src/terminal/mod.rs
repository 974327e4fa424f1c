//! One readable line per warning:
//!
//! ```text
//! 2026-07-15 10:00 +08:00  ORANGE II  pm25-1h  Orange warning (II) upgraded for hourly PM2.5 in grid cq-yb-g03, Longxi, Yubei  162.3 > 150 µg/m³  [09:00–10:00]
//! 2026-07-15 10:00 +08:00  ORANGE II  pm25-1h  渝北区龙溪街道3号网格升级PM2.5小时浓度橙色预警（II级）  162.3 > 150µg/m³  [09:00–10:00]
//! ```
//!
//! In the sink's language (the alert's headline in it); an alert without
//! texts in that language gets the plain English line of its fields.

pub mod config;
pub use config::TerminalConfig;

use std::io::Write;

use crate::alert::{AlertMessage, fmt_number, fmt_value};
use crate::error::SinkError;

/// Writes warnings as text lines, coloured by grade when asked to.
pub struct TerminalSink {
    out: Box<dyn Write + Send>,
    colour: bool,
    language: Option<String>,
    /// The built-in words of `language` (its units), looked up once.
    vocabulary: Option<Box<yujing_rules::Language>>,
}

impl TerminalSink {
    pub fn new(out: Box<dyn Write + Send>, colour: bool) -> Self {
        TerminalSink {
            out,
            colour,
            language: None,
            vocabulary: None,
        }
    }

    /// Lines in `language` (the alerts' texts in it).
    pub fn with_language(mut self, language: String) -> Self {
        self.vocabulary = yujing_rules::Language::builtin(&language).map(Box::new);
        self.language = Some(language);
        self
    }

    /// Standard output, coloured when it is a terminal and `NO_COLOR` is unset.
    pub fn stdout() -> Self {
        use std::io::IsTerminal;
        let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        Self::new(Box::new(std::io::stdout()), colour)
    }

    pub fn deliver(&mut self, alerts: &[AlertMessage]) -> Result<(), SinkError> {
        for a in alerts.iter() {
            writeln!(
                self.out,
                "{}",
                line_in(
                    a,
                    self.colour,
                    self.language.as_deref(),
                    self.vocabulary.as_deref()
                )
            )?;
        }
        self.out.flush()?;
        Ok(())
    }

    pub fn flush(&mut self) -> Result<(), SinkError> {
        Ok(self.out.flush()?)
    }
}

fn ansi(grade: Option<&str>) -> &'static str {
    match grade {
        Some("blue") => "\x1b[1;37;44m",
        Some("yellow") => "\x1b[1;30;43m",
        Some("orange") => "\x1b[1;30;48;5;208m",
        Some("red") => "\x1b[1;37;41m",
        _ => "\x1b[1;30;42m",
    }
}

/// The text of one line (without newline), in `language` when the alert
/// has texts in it; units in `vocabulary`'s words when given.
pub fn line_in(
    a: &AlertMessage,
    colour: bool,
    language: Option<&str>,
    vocabulary: Option<&yujing_rules::Language>,
) -> String {
    let Some(text) = language.and_then(|l| a.texts.get(l)) else {
        return line(a, colour);
    };
    let unit = vocabulary.map_or_else(
        || format!(" {}", a.rule.unit),
        |lang| lang.unit(&a.rule.unit),
    );
    let sym = if a.direction == "below" { "<" } else { ">" };
    let measure = match (a.value, a.threshold, &a.grade) {
        (Some(v), Some(t), Some(_)) => {
            format!("{} {sym} {}{unit}", fmt_value(v, Some(t)), fmt_number(t))
        }
        (Some(v), _, None) => format!("{}{unit}", fmt_number(v)),
        _ => "-".to_owned(),
    };
    format!(
        "{} {}  {}  {}  {measure}  {}{}",
        when(a),
        badge(a, colour),
        a.rule.id,
        text.headline,
        span(a),
        if a.correction { "  (corrected)" } else { "" },
    )
}

fn when(a: &AlertMessage) -> String {
    // "2026-07-15T10:00:00+08:00" → "2026-07-15 10:00 +08:00"
    match (a.event_time.get(..16), a.event_time.get(19..)) {
        (Some(t), Some(off)) => format!("{} {}", t.replacen('T', " ", 1), off),
        _ => a.event_time.clone(),
    }
}

fn badge(a: &AlertMessage, colour: bool) -> String {
    let badge = match (&a.grade, &a.level) {
        (Some(g), Some(l)) => format!("{} {l}", g.to_uppercase()),
        _ => "CLEAR".to_owned(),
    };
    if colour {
        format!("{} {badge:<10} \x1b[0m", ansi(a.grade.as_deref()))
    } else {
        format!(" {badge:<10} ")
    }
}

/// "[08:00–09:00]", or with dates when the window spans days.
fn span(a: &AlertMessage) -> String {
    match (
        a.window.start.get(5..10),
        a.window.start.get(11..16),
        a.window.end.get(5..10),
        a.window.end.get(11..16),
    ) {
        (Some(sd), Some(st), Some(ed), Some(et)) if a.rule.window_seconds >= 86_400 => {
            format!("[{sd} {st}–{ed} {et}]")
        }
        (_, Some(st), _, Some(et)) => format!("[{st}–{et}]"),
        _ => String::new(),
    }
}

/// The plain English line of the alert's fields (without newline).
pub fn line(a: &AlertMessage, colour: bool) -> String {
    let when = when(a);
    let badge = badge(a, colour);
    let unit = if a.rule.unit.is_empty() {
        String::new()
    } else {
        format!(" {}", a.rule.unit)
    };
    let sym = if a.direction == "below" { "<" } else { ">" };
    let measure = match (a.value, a.threshold, &a.grade) {
        (Some(v), Some(t), Some(_)) => {
            format!("{} {sym} {}{unit}", fmt_value(v, Some(t)), fmt_number(t))
        }
        (Some(v), _, None) => format!(
            "{}{unit}, was {}",
            fmt_number(v),
            a.previous_grade.as_deref().unwrap_or("-")
        ),
        _ => format!(
            "no data, was {}",
            a.previous_grade.as_deref().unwrap_or("-")
        ),
    };
    let span = span(a);
    let corrected = if a.correction { "  (corrected)" } else { "" };
    format!(
        "{when} {badge} {:<12}  {}  {}  {} {} {measure}  {span}{corrected}",
        a.transition,
        a.rule.id,
        a.area_label(),
        a.rule.aggregate,
        a.rule.metric,
    )
}
