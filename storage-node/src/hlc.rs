//! Hybrid logical clock: timestamps that follow wall time, never go backwards, and order
//! events causally across nodes (a node that has seen a timestamp issues only greater ones).
//!
//! Metadata rows carry these timestamps; replicas keep the greatest (last-writer-wins), with the
//! coordinator's id as the final tie breaker.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// How far ahead of local wall time an observed remote timestamp may be and still be adopted.
/// A peer with a clock far in the future would otherwise drag every clock (and every
/// last-writer-wins decision) with it.
pub const MAX_OBSERVED_DRIFT_MS: u64 = 15 * 60 * 1000;

/// HLC timestamp: ordered by (physical_ms, logical, origin); origin = coordinator id, the tie breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
pub struct Timestamp {
    /// Milliseconds since the Unix epoch (wall time, or ahead of it after observing a peer).
    pub physical_ms: u64,
    /// Counter that orders events within one `physical_ms`.
    pub logical: u32,
    /// Id of the coordinator that issued the timestamp.
    pub origin: u64,
}

impl Timestamp {
    /// Length of the byte encoding.
    pub const ENCODED_LEN: usize = 20;

    /// Big-endian encoding; byte-wise comparison of encodings agrees with `Ord`.
    pub fn to_bytes(&self) -> [u8; Self::ENCODED_LEN] {
        let mut out = [0u8; Self::ENCODED_LEN];
        out[0..8].copy_from_slice(&self.physical_ms.to_be_bytes());
        out[8..12].copy_from_slice(&self.logical.to_be_bytes());
        out[12..20].copy_from_slice(&self.origin.to_be_bytes());
        out
    }

    /// Decodes [`Timestamp::to_bytes`]; `None` unless `bytes` is exactly `ENCODED_LEN` long.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let bytes: &[u8; Self::ENCODED_LEN] = bytes.try_into().ok()?;
        let (physical, rest) = bytes.split_first_chunk::<8>()?;
        let (logical, origin) = rest.split_first_chunk::<4>()?;
        let origin: &[u8; 8] = origin.try_into().ok()?;
        Some(Self {
            physical_ms: u64::from_be_bytes(*physical),
            logical: u32::from_be_bytes(*logical),
            origin: u64::from_be_bytes(*origin),
        })
    }
}

/// Source of wall time in milliseconds since the Unix epoch; a trait so tests can drive time.
pub trait WallClock: Send + Sync {
    /// Current wall time in milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The operating system's real-time clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemWallClock;

impl WallClock for SystemWallClock {
    fn now_ms(&self) -> u64 {
        // A clock set before 1970 reads as 0; the HLC still moves forward through `logical`.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}

/// Issues monotonically increasing timestamps; thread-safe (Mutex or atomics).
pub struct Clock {
    origin: u64,
    wall: Arc<dyn WallClock>,
    /// Greatest (physical_ms, logical) issued or observed so far.
    last: Mutex<(u64, u32)>,
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clock").field("origin", &self.origin).finish_non_exhaustive()
    }
}

impl Clock {
    /// A clock for coordinator `origin`, reading the system wall clock.
    pub fn new(origin: u64) -> Self {
        Self::with_wall_clock(origin, Arc::new(SystemWallClock))
    }

    /// A clock for coordinator `origin` reading wall time from `wall`.
    pub fn with_wall_clock(origin: u64, wall: Arc<dyn WallClock>) -> Self {
        Self { origin, wall, last: Mutex::new((0, 0)) }
    }

    /// The coordinator id stamped into every timestamp this clock issues.
    pub fn origin(&self) -> u64 {
        self.origin
    }

    /// A timestamp strictly greater than every one issued or observed before.
    pub fn now(&self) -> Timestamp {
        let wall_ms = self.wall.now_ms();
        // The state is a pair of integers, always valid, so a poisoned lock is still usable.
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let (physical_ms, logical) = if wall_ms > last.0 {
            (wall_ms, 0)
        } else if last.1 < u32::MAX {
            (last.0, last.1 + 1)
        } else {
            // 2^32 events in one millisecond: borrow the next millisecond.
            (last.0.saturating_add(1), 0)
        };
        *last = (physical_ms, logical);
        Timestamp { physical_ms, logical, origin: self.origin }
    }

    /// Moves the clock past `remote`, so later `now()` calls are greater than it. Returns
    /// false (and ignores `remote`) when it is more than `MAX_OBSERVED_DRIFT_MS` ahead of
    /// local wall time; the caller should log that peer's clock.
    pub fn observe(&self, remote: Timestamp) -> bool {
        let wall_ms = self.wall.now_ms();
        if remote.physical_ms > wall_ms.saturating_add(MAX_OBSERVED_DRIFT_MS) {
            return false;
        }
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let seen = (remote.physical_ms, remote.logical);
        if seen > *last {
            *last = seen;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    /// Wall time that only moves when the test says so.
    struct ManualWallClock(AtomicU64);

    impl WallClock for ManualWallClock {
        fn now_ms(&self) -> u64 {
            self.0.load(Ordering::SeqCst)
        }
    }

    fn manual_clock(origin: u64, start_ms: u64) -> (Clock, Arc<ManualWallClock>) {
        let wall = Arc::new(ManualWallClock(AtomicU64::new(start_ms)));
        (Clock::with_wall_clock(origin, wall.clone()), wall)
    }

    #[test]
    fn now_is_strictly_monotonic_on_the_system_clock() {
        let clock = Clock::new(7);
        let mut previous = clock.now();
        for _ in 0..100_000 {
            let next = clock.now();
            assert!(next > previous, "{next:?} not after {previous:?}");
            assert_eq!(next.origin, 7);
            previous = next;
        }
    }

    #[test]
    fn now_is_monotonic_from_many_threads() {
        let clock = Arc::new(Clock::new(1));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let clock = clock.clone();
                std::thread::spawn(move || (0..10_000).map(|_| clock.now()).collect::<Vec<_>>())
            })
            .collect();
        let mut all = Vec::new();
        for handle in handles {
            let issued = handle.join().expect("thread panicked");
            assert!(issued.windows(2).all(|w| w[0] < w[1]));
            all.extend(issued);
        }
        let total = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), total, "two threads got the same timestamp");
    }

    #[test]
    fn frozen_wall_clock_advances_logical() {
        let (clock, _wall) = manual_clock(3, 1_000);
        let a = clock.now();
        let b = clock.now();
        assert_eq!((a.physical_ms, a.logical), (1_000, 0));
        assert_eq!((b.physical_ms, b.logical), (1_000, 1));
    }

    #[test]
    fn wall_clock_going_backwards_does_not_go_backwards() {
        let (clock, wall) = manual_clock(3, 5_000);
        let a = clock.now();
        wall.0.store(4_000, Ordering::SeqCst);
        let b = clock.now();
        assert!(b > a);
        assert_eq!(b.physical_ms, 5_000);
    }

    #[test]
    fn observe_remote_ahead_of_wall_time() {
        let (clock, wall) = manual_clock(1, 10_000);
        let before = clock.now();
        let remote = Timestamp { physical_ms: 12_000, logical: 5, origin: 2 };
        assert!(clock.observe(remote));
        let after = clock.now();
        assert!(after > remote && after > before);
        assert_eq!((after.physical_ms, after.logical), (12_000, 6));
        // Wall time catching up takes over again.
        wall.0.store(13_000, Ordering::SeqCst);
        let later = clock.now();
        assert_eq!((later.physical_ms, later.logical), (13_000, 0));
    }

    #[test]
    fn observe_older_remote_changes_nothing() {
        let (clock, _wall) = manual_clock(1, 10_000);
        let a = clock.now();
        assert!(clock.observe(Timestamp { physical_ms: 9_000, logical: 99, origin: 2 }));
        let b = clock.now();
        assert_eq!((b.physical_ms, b.logical), (a.physical_ms, a.logical + 1));
    }

    #[test]
    fn observe_rejects_remote_beyond_drift_limit() {
        let (clock, _wall) = manual_clock(1, 10_000);
        let far = Timestamp { physical_ms: 10_000 + MAX_OBSERVED_DRIFT_MS + 1, logical: 0, origin: 2 };
        assert!(!clock.observe(far));
        assert_eq!(clock.now().physical_ms, 10_000);
        let extreme = Timestamp { physical_ms: u64::MAX, logical: u32::MAX, origin: u64::MAX };
        assert!(!clock.observe(extreme));
    }

    #[test]
    fn logical_overflow_borrows_next_millisecond() {
        let (clock, _wall) = manual_clock(1, 10_000);
        assert!(clock.observe(Timestamp { physical_ms: 10_000, logical: u32::MAX, origin: 2 }));
        let t = clock.now();
        assert_eq!((t.physical_ms, t.logical), (10_001, 0));
    }

    #[test]
    fn bytes_round_trip() {
        let samples = [
            Timestamp::default(),
            Timestamp { physical_ms: 1_700_000_000_123, logical: 42, origin: 0xdead_beef },
            Timestamp { physical_ms: u64::MAX, logical: u32::MAX, origin: u64::MAX },
        ];
        for t in samples {
            assert_eq!(Timestamp::from_bytes(&t.to_bytes()), Some(t));
        }
        assert_eq!(Timestamp::from_bytes(&[0u8; 19]), None);
        assert_eq!(Timestamp::from_bytes(&[0u8; 21]), None);
    }

    #[test]
    fn byte_order_matches_timestamp_order() {
        let mut samples = Vec::new();
        for physical_ms in [0, 1, 255, 256, 1 << 40, u64::MAX] {
            for logical in [0, 1, 256, u32::MAX] {
                for origin in [0, 1, 1 << 32, u64::MAX] {
                    samples.push(Timestamp { physical_ms, logical, origin });
                }
            }
        }
        for a in &samples {
            for b in &samples {
                assert_eq!(a.cmp(b), a.to_bytes().cmp(&b.to_bytes()), "{a:?} vs {b:?}");
            }
        }
    }
}
