//! Processing time. Production uses the wall clock; the demo compresses time
//! so a day of city life plays in minutes.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Source of "now" in epoch milliseconds, on the same axis as event time.
#[derive(Debug, Clone)]
pub enum Clock {
    /// The machine's wall clock.
    Wall,
    /// Simulated time: starts at `origin_ms` and runs `speed` times faster
    /// than the wall clock.
    Simulated {
        origin_ms: i64,
        started: Instant,
        speed: f64,
    },
}

impl Clock {
    /// A simulated clock starting now at `origin_ms`.
    pub fn simulated(origin_ms: i64, speed: f64) -> Self {
        Clock::Simulated {
            origin_ms,
            started: Instant::now(),
            speed,
        }
    }

    /// Current time in epoch milliseconds.
    pub fn now_ms(&self) -> i64 {
        match self {
            Clock::Wall => wall_now_ms(),
            Clock::Simulated {
                origin_ms,
                started,
                speed,
            } => origin_ms + (started.elapsed().as_secs_f64() * 1000.0 * speed) as i64,
        }
    }
}

/// The machine's wall clock in epoch milliseconds.
pub fn wall_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_clock_runs_faster() {
        let clock = Clock::simulated(1_000, 1000.0);
        std::thread::sleep(std::time::Duration::from_millis(20));
        let now = clock.now_ms();
        assert!(now >= 1_000 + 20_000, "now={now}");
    }
}
