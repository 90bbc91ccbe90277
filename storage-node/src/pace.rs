//! Pacing of background transfers (scrubbing, moves, repairs) under a byte rate.

use std::time::Duration;

use tokio::time::Instant;

/// Keeps reads under a rate: after each read, waits until the bytes read so far are no more
/// than the rate allows for the time elapsed.
pub(crate) struct Pace {
    rate: u64,
    start: Instant,
    bytes: u64,
}

impl Pace {
    pub(crate) fn new(rate: u64) -> Self {
        Self { rate, start: Instant::now(), bytes: 0 }
    }

    pub(crate) async fn wait(&mut self, bytes: u64) {
        if self.rate == 0 {
            return;
        }
        self.bytes += bytes;
        let allowed_at = self.start + Duration::from_secs_f64(self.bytes as f64 / self.rate as f64);
        tokio::time::sleep_until(allowed_at).await;
    }
}
