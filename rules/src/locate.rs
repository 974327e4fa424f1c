//! Where a key sits in a rules file. Serde does not keep the positions of
//! values, so problems found after parsing are placed by searching the
//! text: rules are short, a linear scan is fine.

/// Line and column (1-based) of `key:` inside the list item whose
/// `anchor:` is `value` (a rule's `id`, a group's `name`), falling back to
/// the anchor's line, then to the top of the file.
pub fn locate_in_item(text: &str, anchor: &str, value: &str, key: &str) -> (usize, usize) {
    let lines: Vec<&str> = text.lines().collect();
    let anchor_prefix = format!("{anchor}:");
    let is_anchor = |l: &str| {
        let t = l.trim_start().trim_start_matches("- ").trim_start();
        t.strip_prefix(&anchor_prefix)
            .map(|v| {
                strip_comment(v)
                    .trim()
                    .trim_matches(|c| c == '"' || c == '\'')
                    == value
            })
            .unwrap_or(false)
    };
    let Some(start) = lines.iter().position(|l| is_anchor(l)) else {
        return (1, 1);
    };
    let anchor_col = lines[start].find(&anchor_prefix).unwrap_or(0);
    // The item starts at the `- ` at or above the anchor line.
    let item_start = (0..=start)
        .rev()
        .find(|&i| lines[i].trim_start().starts_with("- "))
        .unwrap_or(start);
    let item_indent = indent(lines[item_start]);
    // A dotted key (`text.en.headline`) is found part by part, each after
    // the one before it; a remainder may also be one key with dots in it
    // (`tune: {above.blue: …}`).
    let item = (item_start, item_indent);
    let parts: Vec<&str> = key.split('.').collect();
    let mut found: Option<(usize, usize)> = None;
    for (n, part) in parts.iter().enumerate() {
        let from = found.map_or((item_start, 0), |(l, c)| (l, c + 1));
        let rest = parts[n..].join(".");
        if n + 1 < parts.len()
            && let Some(h) = find_in_item(&lines, item, from, &rest)
        {
            found = Some(h);
            break;
        }
        match find_in_item(&lines, item, from, part) {
            Some(h) => found = Some(h),
            None => break,
        }
    }
    match found {
        Some((line, col)) => (line + 1, col + 1),
        None => (start + 1, anchor_col + 1),
    }
}

/// The first `key:` of the item starting at `item_start` (indented
/// `item_indent`), at or after `(from_line, from_col)`.
fn find_in_item(
    lines: &[&str],
    (item_start, item_indent): (usize, usize),
    (from_line, from_col): (usize, usize),
    key: &str,
) -> Option<(usize, usize)> {
    let key_prefix = format!("{key}:");
    for (i, line) in lines.iter().enumerate().skip(from_line) {
        if i > item_start && line.trim_start().starts_with("- ") && indent(line) <= item_indent {
            break;
        }
        if i > item_start && !line.trim().is_empty() && indent(line) < item_indent {
            break;
        }
        // A key may also sit in a flow mapping: `above: { blue: 75, purple: 1 }`.
        let skip = if i == from_line { from_col } else { 0 };
        if let Some(col) = line
            .get(skip..)
            .and_then(|rest| find_key(rest, &key_prefix))
        {
            return Some((i, skip + col));
        }
    }
    None
}

/// Line and column of a top-level `key:`.
pub fn locate_top_key(text: &str, key: &str) -> (usize, usize) {
    let prefix = format!("{key}:");
    text.lines()
        .position(|l| l.starts_with(&prefix))
        .map_or((1, 1), |i| (i + 1, 1))
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

fn strip_comment(v: &str) -> &str {
    match v.find(" #") {
        Some(i) => &v[..i],
        None => v,
    }
}

/// Byte offset of `key:` in `line` as a key (at the start of the content,
/// after `- `, or after `{`/`,` in a flow mapping), not inside a value.
fn find_key(line: &str, key_prefix: &str) -> Option<usize> {
    let code = strip_comment(line);
    let mut from = 0;
    while let Some(i) = code[from..].find(key_prefix) {
        let at = from + i;
        let before = code[..at].trim_end();
        let ok = before.is_empty()
            || before.ends_with('-')
            || before.ends_with('{')
            || before.ends_with(',');
        if ok {
            return Some(at);
        }
        from = at + key_prefix.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
groups:
  - name: air
    defaults: { for: 20m }
    rules:
      - id: a
        metric: pm25
        above: { blue: 75, purple: 9 }
      - id: b   # the second
        metric: pm10
";

    #[test]
    fn finds_keys_in_their_item() {
        assert_eq!(locate_in_item(TEXT, "id", "a", "metric"), (6, 9));
        assert_eq!(locate_in_item(TEXT, "id", "b", "metric"), (9, 9));
        assert_eq!(locate_in_item(TEXT, "id", "a", "purple"), (7, 28));
        // Not in the item: the anchor's line.
        assert_eq!(locate_in_item(TEXT, "id", "b", "window"), (8, 9));
        assert_eq!(locate_in_item(TEXT, "name", "air", "for"), (3, 17));
        assert_eq!(locate_in_item(TEXT, "id", "zzz", "metric"), (1, 1));
        assert_eq!(locate_top_key(TEXT, "groups"), (1, 1));
    }

    #[test]
    fn finds_dotted_keys_part_by_part() {
        let text = "rules:\n  - id: a\n    text:\n      zh-CN: { headline: x }\n      en:\n        headline: y\n";
        assert_eq!(locate_in_item(text, "id", "a", "text.en.headline"), (6, 9));
        assert_eq!(
            locate_in_item(text, "id", "a", "text.zh-CN.headline"),
            (4, 16)
        );
        // A part not found: the last part that was.
        assert_eq!(locate_in_item(text, "id", "a", "text.fr"), (3, 5));
    }
}
