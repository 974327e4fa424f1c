//! `{{ value }}` templates in rule labels and annotations.
//!
//! A template is plain text with `{{ name }}` placeholders; the names are
//! fixed (see [`VARIABLES`]) and checked when the rules load, so a typo is
//! a load error, not an empty field in a red warning.

/// Names a template may use.
pub const VARIABLES: &[&str] = &[
    "value",
    "threshold",
    "grade",
    "level",
    "previous_grade",
    "transition",
    "rule",
    "metric",
    "unit",
    "aggregate",
    "window",
    "group",
    "group.by",
    "group.key",
    "group.grid",
    "group.street",
    "group.district",
    "sensors",
    "readings",
    "crossing",
    "primary",
    "observed",
    "expected",
];

/// More names a text template (a rule's `text:` or a language's default
/// templates) may use; see [`crate::language`].
pub const TEXT_VARIABLES: &[&str] = &["area", "event", "signal", "compared", "horizon"];

/// Placeholders of a label or annotation template, in order, or why it is
/// malformed.
pub fn placeholders(template: &str) -> Result<Vec<&str>, String> {
    placeholders_among(template, &[VARIABLES])
}

/// Placeholders of a text template, in order, or why it is malformed.
pub fn text_placeholders(template: &str) -> Result<Vec<&str>, String> {
    placeholders_among(template, &[VARIABLES, TEXT_VARIABLES])
}

fn placeholders_among<'a>(template: &'a str, known: &[&[&str]]) -> Result<Vec<&'a str>, String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| format!("`{{{{` without a closing `}}}}` in {template:?}"))?;
        let name = after[..close].trim();
        if !known.iter().any(|k| k.contains(&name)) {
            return Err(format!(
                "unknown template variable `{name}`; known: {}",
                known.concat().join(", ")
            ));
        }
        out.push(name);
        rest = &after[close + 2..];
    }
    Ok(out)
}

/// Expand `template`; `lookup` gives each variable's text (empty when it
/// has none, e.g. `threshold` of a resolved warning).
pub fn render(template: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        match after.find("}}") {
            Some(close) => {
                out.push_str(&lookup(after[..close].trim()).unwrap_or_default());
                rest = &after[close + 2..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_and_renders() {
        let t = "PM2.5 {{ value }} over {{threshold}} in {{ group.district }}";
        assert_eq!(
            placeholders(t).unwrap(),
            ["value", "threshold", "group.district"]
        );
        let out = render(t, |n| match n {
            "value" => Some("160".into()),
            "threshold" => Some("150".into()),
            _ => None,
        });
        assert_eq!(out, "PM2.5 160 over 150 in ");
        assert!(placeholders("{{ valeu }}").unwrap_err().contains("valeu"));
        assert!(placeholders("x {{ value").unwrap_err().contains("closing"));
        assert_eq!(render("no placeholders", |_| None), "no placeholders");
    }
}
