//! The arithmetic of a baseline, free of state: what a method expects at
//! a window end from the values before it, and the longer-scale means a
//! `confirm_over` opinion compares.

use super::{BaselineMethod, Deviation};

/// Past window values, `(window end, value)`, oldest first.
pub(super) type Past = [(i64, f64)];

/// What `method` expects at `end` from `past`, against `observed`; `None`
/// while fewer than `min` values are there to compare with.
pub(super) fn opinion(
    method: BaselineMethod,
    past: &Past,
    end: i64,
    observed: f64,
    period_ms: i64,
    min: u32,
) -> Option<Deviation> {
    let (expected, spread) = if method == BaselineMethod::Trend {
        if past.len() < min as usize {
            return None;
        }
        trend_at(past, end)
    } else {
        // Robust: every past value; seasonal: those whole periods back.
        let seasonal = method == BaselineMethod::Seasonal;
        let mut values: Vec<f64> = past
            .iter()
            .filter(|(t, _)| !seasonal || (end - t) % period_ms.max(1) == 0)
            .map(|(_, v)| *v)
            .collect();
        if values.len() < min as usize {
            return None;
        }
        robust_centre(&mut values)
    };
    Some(Deviation {
        observed,
        expected,
        spread,
    })
}

/// The line through `past` extended to `end`, and the spread around it.
/// Fitted twice: the second fit leaves out the values more than 3.5
/// spreads off the first, so a past episode neither tilts the line nor
/// widens the spread.
fn trend_at(past: &Past, end: i64) -> (f64, f64) {
    // Hours before `end`: small numbers, a well-conditioned fit.
    let points: Vec<(f64, f64)> = past
        .iter()
        .map(|(t, v)| ((t - end) as f64 / 3_600_000.0, *v))
        .collect();
    let (a, b) = least_squares(points.iter().copied());
    let mut residuals: Vec<f64> = points.iter().map(|(x, y)| y - (a + b * x)).collect();
    let (centre, spread) = robust_centre(&mut residuals);
    let kept: Vec<(f64, f64)> = points
        .iter()
        .filter(|(x, y)| (y - (a + b * x) - centre).abs() <= 3.5 * spread)
        .copied()
        .collect();
    let (a, b) = least_squares(kept.iter().copied());
    // The spread around the line of the values it was fitted to: an
    // outlier left out must not widen it either.
    let mut residuals: Vec<f64> = kept.iter().map(|(x, y)| y - (a + b * x)).collect();
    let (centre, spread) = robust_centre(&mut residuals);
    // A flat series must not grade rounding noise: floor as for a centre.
    let floor = 1e-6 * a.abs();
    (a + centre, spread.max(floor))
}

/// Intercept (at x = 0) and slope of the least-squares line; a flat line
/// through the mean when x does not vary.
fn least_squares(points: impl Iterator<Item = (f64, f64)> + Clone) -> (f64, f64) {
    let (mut n, mut sx, mut sy) = (0.0, 0.0, 0.0);
    for (x, y) in points.clone() {
        n += 1.0;
        sx += x;
        sy += y;
    }
    if n == 0.0 {
        return (0.0, 0.0);
    }
    let (mx, my) = (sx / n, sy / n);
    let (mut sxx, mut sxy) = (0.0, 0.0);
    for (x, y) in points {
        sxx += (x - mx) * (x - mx);
        sxy += (x - mx) * (y - my);
    }
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    (my - slope * mx, slope)
}

/// The mean of the values ending within `over` up to and including each
/// end of `past`, where at least half of the span's windows are there:
/// the series a longer scale is judged on.
pub(super) fn means_over(past: &Past, over_ms: i64, slide_ms: i64) -> Vec<(i64, f64)> {
    let needed = half_the_windows(over_ms, slide_ms);
    let mut out = Vec::with_capacity(past.len());
    let (mut first, mut sum) = (0, 0.0);
    for (i, &(end, v)) in past.iter().enumerate() {
        sum += v;
        while past[first].0 <= end - over_ms {
            sum -= past[first].1;
            first += 1;
        }
        let n = i + 1 - first;
        if n >= needed {
            out.push((end, sum / n as f64));
        }
    }
    out
}

/// The longer-scale mean at `end`: `observed` with the values of `past`
/// within `over` before it; `None` with fewer than half the span's windows.
pub(super) fn mean_ending(
    past: &Past,
    end: i64,
    observed: f64,
    over_ms: i64,
    slide_ms: i64,
) -> Option<f64> {
    let needed = half_the_windows(over_ms, slide_ms);
    let within = past.iter().rev().take_while(|(t, _)| *t > end - over_ms);
    let (n, sum) = within.fold((1usize, observed), |(n, s), (_, v)| (n + 1, s + v));
    (n >= needed).then(|| sum / n as f64)
}

/// Windows a span of `over_ms` needs for its mean: half of its slides,
/// at least one.
fn half_the_windows(over_ms: i64, slide_ms: i64) -> usize {
    ((over_ms / slide_ms.max(1)) as usize).div_ceil(2).max(1)
}

/// Median and spread: 1.4826 × MAD, floored by the mean absolute deviation
/// (a mostly flat series with rare changes has a MAD of 0) and by a
/// millionth of the median, so a flat series does not grade rounding noise.
pub(super) fn robust_centre(values: &mut [f64]) -> (f64, f64) {
    let centre = median(values);
    let mut deviations: Vec<f64> = values.iter().map(|v| (v - centre).abs()).collect();
    let mad = median(&mut deviations);
    let mean_abs = deviations.iter().sum::<f64>() / deviations.len().max(1) as f64;
    let spread = (1.4826 * mad)
        .max(1.2533 * mean_abs)
        .max(1e-6 * centre.abs())
        .max(1e-9);
    (centre, spread)
}

pub(super) fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return 0.0;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    #[test]
    fn a_trend_is_extended_to_the_window() {
        // 10, 11, 12 … one an hour, ± 0.5, with an outlier that must not
        // tilt the line.
        let noise = |i: i64| if i % 2 == 0 { 0.5 } else { -0.5 };
        let mut past: Vec<(i64, f64)> = (0..48)
            .map(|i| (i * H, 10.0 + i as f64 + noise(i)))
            .collect();
        past[5].1 = 500.0;
        let on_line = opinion(BaselineMethod::Trend, &past, 48 * H, 58.0, 0, 12).unwrap();
        assert!((on_line.expected - 58.0).abs() < 0.5, "{on_line:?}");
        assert!(on_line.z().abs() < 1.0, "on the line: {on_line:?}");
        // Five above the line: far off it, yet within a centre's spread
        // (a drift of 48 widens the spread of the values themselves).
        let off = opinion(BaselineMethod::Trend, &past, 48 * H, 63.0, 0, 12).unwrap();
        assert!(off.z() > 4.0, "{off:?}");
        let robust = opinion(BaselineMethod::Robust, &past, 48 * H, 63.0, 0, 12).unwrap();
        assert!(robust.z() < 3.0, "{robust:?}");
        assert!(opinion(BaselineMethod::Trend, &past[..5], 48 * H, 1.0, 0, 12).is_none());
    }

    #[test]
    fn longer_scale_means_need_half_their_windows() {
        let past = [(H, 1.0), (2 * H, 2.0), (3 * H, 3.0), (5 * H, 5.0)];
        // Three-hour means from the second window on; at 5 h the span
        // (2 h, 5 h] holds two of its three windows (4 h is missing).
        assert_eq!(
            means_over(&past, 3 * H, H),
            vec![(2 * H, 1.5), (3 * H, 2.0), (5 * H, 4.0)]
        );
        assert_eq!(mean_ending(&past, 6 * H, 7.0, 3 * H, H), Some(6.0));
        assert_eq!(mean_ending(&past[..3], 6 * H, 7.0, 3 * H, H), None);
    }
}
