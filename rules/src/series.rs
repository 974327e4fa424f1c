//! The compact series notation of rule tests, as in `promtool test rules`:
//!
//! - `80 85 90`: three samples;
//! - `80+5x3`: 80, 85, 90, 95 (start, then three steps of +5);
//! - `100-10x2`: 100, 90, 80;
//! - `150x3`: 150 four times;
//! - `_`: no sample (a gap), `_x3`: three gaps.

/// One value per sample interval; `None` is a gap.
pub fn parse_series(text: &str) -> Result<Vec<Option<f64>>, String> {
    let mut out = Vec::new();
    for token in text.split_whitespace() {
        let (base, times) = match token.split_once('x') {
            Some((b, n)) => {
                let n: usize = n.parse().map_err(|_| {
                    format!("`{token}`: the count after `x` must be a whole number")
                })?;
                (b, Some(n))
            }
            None => (token, None),
        };
        if base == "_" {
            out.extend(std::iter::repeat_n(None, times.unwrap_or(1)));
            continue;
        }
        // `a+b` or `a-b`: find the sign after the first character, so a
        // leading minus belongs to the start value.
        let split = base
            .char_indices()
            .skip(1)
            .find(|&(i, c)| (c == '+' || c == '-') && !base[..i].ends_with(['e', 'E']))
            .map(|(i, _)| i);
        let number = |s: &str| {
            s.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("`{token}`: `{s}` is not a number"))
        };
        match (split, times) {
            (Some(i), Some(n)) => {
                let start = number(&base[..i])?;
                let step = number(&base[i..])?;
                out.extend((0..=n).map(|k| Some(start + step * k as f64)));
            }
            (Some(_), None) => {
                return Err(format!("`{token}`: a step needs a count, e.g. `80+5x10`"));
            }
            (None, Some(n)) => {
                let v = number(base)?;
                out.extend(std::iter::repeat_n(Some(v), n + 1));
            }
            (None, None) => out.push(Some(number(base)?)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notation() {
        assert_eq!(
            parse_series("80+5x3 _ 7").unwrap(),
            vec![
                Some(80.0),
                Some(85.0),
                Some(90.0),
                Some(95.0),
                None,
                Some(7.0)
            ]
        );
        assert_eq!(
            parse_series("-1-1x2 150x1 _x2").unwrap(),
            vec![
                Some(-1.0),
                Some(-2.0),
                Some(-3.0),
                Some(150.0),
                Some(150.0),
                None,
                None
            ]
        );
        assert_eq!(parse_series("1e2").unwrap(), vec![Some(100.0)]);
        assert!(parse_series("80+5").unwrap_err().contains("needs a count"));
        assert!(parse_series("abc").unwrap_err().contains("not a number"));
        assert!(parse_series("1x-2").unwrap_err().contains("whole number"));
    }
}
