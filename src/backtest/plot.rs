//! One SVG picture per series: its values (the range per pixel column and
//! the mean), each grade's threshold, warnings shaded by grade, labelled
//! events hatched. Plain SVG, no plotting library: a browser or the
//! Markdown viewer of a code review shows it.

use std::fmt::Write;

use yujing_rules::Grade;

use super::score::{Episode, Event};

const WIDTH: f64 = 1000.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 10.0;
const TOP: f64 = 24.0;
const BOTTOM: f64 = 28.0;

pub fn grade_colour(g: Grade) -> &'static str {
    match g {
        Grade::Blue => "#1f6fd1",
        Grade::Yellow => "#e0b000",
        Grade::Orange => "#f07f00",
        Grade::Red => "#d0201a",
    }
}

/// What to draw for one series.
pub struct SeriesPlot<'a> {
    pub title: String,
    /// (time, value), sorted by time.
    pub values: Vec<(i64, f64)>,
    /// Thresholds of the rules on this series' metric: (rule, grade, value).
    pub thresholds: Vec<(String, Grade, f64)>,
    pub episodes: Vec<&'a Episode>,
    pub events: Vec<&'a Event>,
    /// Where still-active episodes end.
    pub data_end_ms: i64,
    /// Local time of the time axis.
    pub utc_offset_ms: i64,
}

impl SeriesPlot<'_> {
    pub fn svg(&self) -> String {
        let (Some(&(t0, _)), Some(&(t1, _))) = (self.values.first(), self.values.last()) else {
            return String::new();
        };
        let t1 = t1.max(t0 + 1);
        let mut lo = self
            .values
            .iter()
            .map(|v| v.1)
            .fold(f64::INFINITY, f64::min);
        let mut hi = self
            .values
            .iter()
            .map(|v| v.1)
            .fold(f64::NEG_INFINITY, f64::max);
        for (_, _, t) in &self.thresholds {
            lo = lo.min(*t);
            hi = hi.max(*t);
        }
        if hi - lo < 1e-9 {
            hi = lo + 1.0;
        }
        let pad = (hi - lo) * 0.05;
        // Values that cannot be negative keep zero as the floor.
        let (lo, hi) = (
            if lo >= 0.0 {
                (lo - pad).max(0.0)
            } else {
                lo - pad
            },
            hi + pad,
        );
        let plot_w = WIDTH - LEFT - RIGHT;
        let plot_h = HEIGHT - TOP - BOTTOM;
        let x = |t: i64| LEFT + (t - t0) as f64 / (t1 - t0) as f64 * plot_w;
        let y = |v: f64| TOP + (hi - v) / (hi - lo) * plot_h;
        let mut s = String::new();
        let _ = write!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11">"#
        );
        s.push_str(r##"<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><line x1="0" y1="0" x2="0" y2="6" stroke="#555" stroke-width="1.5"/></pattern></defs>"##);
        let _ = write!(
            s,
            r##"<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#fff"/><text x="{LEFT}" y="15" font-size="13">{}</text>"##,
            escape(&self.title)
        );
        // Events: hatched bands over the whole height.
        for e in &self.events {
            let (a, b) = (x(e.start_ms.max(t0)), x(e.end_ms.min(t1)));
            if b > a {
                let _ = write!(
                    s,
                    r#"<rect x="{a:.1}" y="{TOP}" width="{:.1}" height="{plot_h}" fill="url(#hatch)" opacity="0.35"><title>labelled event</title></rect>"#,
                    b - a
                );
            }
        }
        // Warnings: one band per grade step, under the values.
        for e in &self.episodes {
            for (from, until, g) in e.steps(self.data_end_ms) {
                let (a, b) = (x(from.max(t0)), x(until.min(t1)));
                let _ = write!(
                    s,
                    r#"<rect x="{a:.1}" y="{TOP}" width="{:.1}" height="{plot_h}" fill="{}" opacity="0.22"><title>{} {}</title></rect>"#,
                    (b - a).max(1.0),
                    grade_colour(g),
                    escape(&e.rule),
                    g.as_str()
                );
            }
        }
        // Values: min-max envelope and mean per pixel column.
        let columns = plot_w as usize;
        let mut buckets: Vec<Option<(f64, f64, f64, u32)>> = vec![None; columns + 1];
        for &(t, v) in &self.values {
            let c = ((x(t) - LEFT) as usize).min(columns);
            let b = buckets[c].get_or_insert((v, v, 0.0, 0));
            b.0 = b.0.min(v);
            b.1 = b.1.max(v);
            b.2 += v;
            b.3 += 1;
        }
        let filled: Vec<(f64, (f64, f64, f64, u32))> = buckets
            .iter()
            .enumerate()
            .filter_map(|(c, b)| b.map(|b| (LEFT + c as f64, b)))
            .collect();
        let mut envelope = String::new();
        for (px, b) in &filled {
            let _ = write!(envelope, "{px:.1},{:.1} ", y(b.1));
        }
        for (px, b) in filled.iter().rev() {
            let _ = write!(envelope, "{px:.1},{:.1} ", y(b.0));
        }
        let _ = write!(
            s,
            r##"<polygon points="{envelope}" fill="#888" opacity="0.35"/>"##
        );
        let mean: String = filled
            .iter()
            .map(|(px, b)| format!("{px:.1},{:.1}", y(b.2 / f64::from(b.3))))
            .collect::<Vec<_>>()
            .join(" ");
        let _ = write!(
            s,
            r##"<polyline points="{mean}" fill="none" stroke="#222" stroke-width="1"/>"##
        );
        for (rule, g, t) in &self.thresholds {
            let _ = write!(
                s,
                r#"<line x1="{LEFT}" x2="{:.1}" y1="{yy:.1}" y2="{yy:.1}" stroke="{}" stroke-dasharray="6 3"><title>{} {} {t}</title></line>"#,
                WIDTH - RIGHT,
                grade_colour(*g),
                escape(rule),
                g.as_str(),
                yy = y(*t)
            );
        }
        // Axes: value range left, time range below.
        let _ = write!(
            s,
            r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT - 4.0,
            TOP + 10.0,
            short(hi),
            LEFT - 4.0,
            TOP + plot_h,
            short(lo)
        );
        // Six time ticks, local time; hours shown when the span is short.
        let times = yujing_sinks::TimeFormat::new(self.utc_offset_ms);
        let format = if t1 - t0 < 3 * 86_400_000 {
            "%m-%d %H:%M"
        } else {
            "%Y-%m-%d"
        };
        for i in 0..=5 {
            let t = t0 + (t1 - t0) * i / 5;
            let label = times.datetime(t).format(format).to_string();
            let anchor = match i {
                0 => "start",
                5 => "end",
                _ => "middle",
            };
            let _ = write!(
                s,
                r##"<line x1="{xx:.1}" x2="{xx:.1}" y1="{:.1}" y2="{:.1}" stroke="#999"/><text x="{xx:.1}" y="{:.1}" text-anchor="{anchor}">{label}</text>"##,
                TOP + plot_h,
                TOP + plot_h + 4.0,
                HEIGHT - 8.0,
                xx = x(t)
            );
        }
        // Legend: grade colours, top right.
        let mut lx = WIDTH - RIGHT - 4.0 * 62.0;
        for g in Grade::ALL {
            let _ = write!(
                s,
                r#"<rect x="{lx:.1}" y="6" width="10" height="10" fill="{}" opacity="0.5"/><text x="{:.1}" y="15">{}</text>"#,
                grade_colour(g),
                lx + 13.0,
                g.as_str()
            );
            lx += 62.0;
        }
        s.push_str("</svg>");
        s.push('\n');
        s
    }
}

fn short(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
