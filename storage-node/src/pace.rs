//! Pacing of background transfers (scrubbing, moves, repairs) under a byte rate.

use std::time::Duration;

use tokio::time::Instant;

/// A token bucket: bytes may move at `rate` per second on average, with bursts of at most one
/// second's worth after a pause.
pub(crate) struct Pace {
    rate: u64,
    /// Bytes that may move now without waiting (negative: owed).
    tokens: f64,
    refilled: Instant,
}

impl Pace {
    /// A pace of `rate` bytes per second (0: no bound).
    pub(crate) fn new(rate: u64) -> Self {
        Self { rate, tokens: rate as f64, refilled: Instant::now() }
    }

    /// Accounts for `bytes` just moved, waiting as long as they overdrew the bucket.
    pub(crate) async fn wait(&mut self, bytes: u64) {
        if self.rate == 0 {
            return;
        }
        let now = Instant::now();
        let rate = self.rate as f64;
        self.tokens = (self.tokens + now.duration_since(self.refilled).as_secs_f64() * rate).min(rate);
        self.refilled = now;
        self.tokens -= bytes as f64;
        if self.tokens < 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(-self.tokens / rate)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bytes_move_at_the_rate_after_a_one_second_burst() {
        let mut pace = Pace::new(1000);
        let start = Instant::now();
        for _ in 0..30 {
            pace.wait(100).await;
        }
        // 3000 bytes at 1000 B/s, the first 1000 free: two seconds.
        let took = start.elapsed().as_secs_f64();
        assert!((1.9..2.1).contains(&took), "{took}");
        let mut unbounded = Pace::new(0);
        unbounded.wait(u64::MAX).await;
    }
}
