//! A mergeable quantile sketch with relative accuracy (the DDSketch
//! scheme): values fall in logarithmic buckets `(γ^(i-1), γ^i]` with
//! `γ = (1 + α) / (1 - α)`, so any quantile is returned within a relative
//! error `α` (1 %) of a value of the right rank. Sketches of panes merge by
//! adding bucket counts, so window percentiles need no raw readings.

use std::collections::BTreeMap;

/// Relative accuracy of quantiles.
pub const RELATIVE_ACCURACY: f64 = 0.01;

fn gamma() -> f64 {
    (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY)
}

/// Bucket counts for positive values, negative values (by magnitude) and
/// zeros.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Sketch {
    positive: BTreeMap<i32, u64>,
    negative: BTreeMap<i32, u64>,
    zeros: u64,
    count: u64,
}

/// Smallest magnitude kept apart from zero.
const MIN_MAGNITUDE: f64 = 1e-9;

impl Sketch {
    pub fn new() -> Self {
        Self::default()
    }

    fn index(magnitude: f64) -> i32 {
        (magnitude.ln() / gamma().ln()).ceil() as i32
    }

    fn value_of(index: i32) -> f64 {
        let g = gamma();
        2.0 * g.powi(index) / (g + 1.0)
    }

    pub fn add(&mut self, value: f64) {
        self.count += 1;
        if value.abs() < MIN_MAGNITUDE {
            self.zeros += 1;
        } else if value > 0.0 {
            *self.positive.entry(Self::index(value)).or_default() += 1;
        } else {
            *self.negative.entry(Self::index(-value)).or_default() += 1;
        }
    }

    pub fn merge(&mut self, other: &Sketch) {
        for (i, n) in &other.positive {
            *self.positive.entry(*i).or_default() += n;
        }
        for (i, n) in &other.negative {
            *self.negative.entry(*i).or_default() += n;
        }
        self.zeros += other.zeros;
        self.count += other.count;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// The value at quantile `q` (0..=1), or `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * (self.count - 1) as f64).round() as u64;
        let mut seen = 0;
        // Ascending order: most negative first, then zeros, then positives.
        for (i, n) in self.negative.iter().rev() {
            seen += n;
            if seen > rank {
                return Some(-Self::value_of(*i));
            }
        }
        seen += self.zeros;
        if seen > rank {
            return Some(0.0);
        }
        for (i, n) in &self.positive {
            seen += n;
            if seen > rank {
                return Some(Self::value_of(*i));
            }
        }
        self.positive.keys().last().map(|i| Self::value_of(*i))
    }

    /// Compact bytes: counts, then (index, count) pairs, little endian.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(24 + 12 * (self.positive.len() + self.negative.len()));
        out.extend_from_slice(&self.zeros.to_le_bytes());
        out.extend_from_slice(&(self.positive.len() as u32).to_le_bytes());
        out.extend_from_slice(&(self.negative.len() as u32).to_le_bytes());
        for (i, n) in self.positive.iter().chain(self.negative.iter()) {
            out.extend_from_slice(&i.to_le_bytes());
            out.extend_from_slice(&n.to_le_bytes());
        }
        out
    }

    /// Inverse of [`to_bytes`](Self::to_bytes); `None` for malformed bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<Sketch> {
        let take = |at: usize, n: usize| bytes.get(at..at + n);
        let zeros = u64::from_le_bytes(take(0, 8)?.try_into().ok()?);
        let npos = u32::from_le_bytes(take(8, 4)?.try_into().ok()?) as usize;
        let nneg = u32::from_le_bytes(take(12, 4)?.try_into().ok()?) as usize;
        if bytes.len() != 16 + 12 * (npos + nneg) {
            return None;
        }
        let mut sketch = Sketch {
            zeros,
            count: zeros,
            ..Sketch::default()
        };
        for k in 0..npos + nneg {
            let at = 16 + 12 * k;
            let i = i32::from_le_bytes(take(at, 4)?.try_into().ok()?);
            let n = u64::from_le_bytes(take(at + 4, 8)?.try_into().ok()?);
            sketch.count += n;
            let side = if k < npos {
                &mut sketch.positive
            } else {
                &mut sketch.negative
            };
            side.insert(i, n);
        }
        Some(sketch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(sorted: &[f64], q: f64) -> f64 {
        sorted[(q * (sorted.len() - 1) as f64).round() as usize]
    }

    #[test]
    fn quantiles_within_relative_accuracy() {
        let mut values: Vec<f64> = (1..=10_000)
            .map(|i| (i as f64 * 0.37).sin() * 500.0 + i as f64 * 0.05)
            .collect();
        let mut sketch = Sketch::new();
        for v in &values {
            sketch.add(*v);
        }
        values.sort_by(f64::total_cmp);
        for q in [0.0, 0.01, 0.5, 0.9, 0.95, 0.99, 1.0] {
            let (got, want) = (sketch.quantile(q).unwrap(), exact(&values, q));
            assert!(
                (got - want).abs() <= RELATIVE_ACCURACY * want.abs() + 1e-9,
                "q={q}: sketch {got}, exact {want}"
            );
        }
    }

    #[test]
    fn merge_and_bytes_round_trip() {
        let (mut a, mut b, mut all) = (Sketch::new(), Sketch::new(), Sketch::new());
        for i in 0..500 {
            let v = i as f64 - 100.0;
            if i % 2 == 0 {
                a.add(v)
            } else {
                b.add(v)
            }
            all.add(v);
        }
        a.merge(&b);
        assert_eq!(a, all);
        assert_eq!(Sketch::from_bytes(&a.to_bytes()), Some(a.clone()));
        assert_eq!(Sketch::from_bytes(&[1, 2, 3]), None);
        assert_eq!(Sketch::new().quantile(0.5), None);
        assert_eq!(all.count(), 500);
    }
}
