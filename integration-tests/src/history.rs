//! A history checker for a key-value register under faults. Every operation is recorded with
//! its invocation and completion instants and its outcome; afterwards each successful read is
//! checked against the writes: it must return the value (or absence) left by a write that had
//! begun before the read ended and that no acknowledged write had replaced before the read
//! began. A final read of every key after the faults therefore catches a lost acknowledged write.
//! Writes that failed are "maybe" writes: they may or may not have taken effect.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Instant;

/// What an operation did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Stored `value` under the key.
    Put(String),
    /// Deleted the key.
    Delete,
    /// Read the key: the value, or `None` when absent.
    Get(Option<String>),
}

/// One recorded operation.
#[derive(Clone, Debug)]
pub struct Event {
    /// Which client ran it.
    pub client: usize,
    /// The key.
    pub key: String,
    /// The operation; for a read, what it returned.
    pub op: Op,
    /// When it was sent.
    pub invoked: Instant,
    /// When its answer arrived.
    pub completed: Instant,
    /// Whether it succeeded (a failed write may still have taken effect; a failed read is ignored).
    pub ok: bool,
}

/// A read that no write explains.
#[derive(Debug)]
pub struct Violation {
    /// The offending read.
    pub read: Event,
    /// Why it is wrong.
    pub reason: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "client {} read {:?} of {:?}: {}", self.read.client, self.read.op, self.read.key, self.reason)
    }
}

/// A write as the checker sees it: what it leaves (`None` for a delete or the initial state).
struct Write<'a> {
    leaves: Option<&'a str>,
    invoked: Option<Instant>,
    completed: Option<Instant>,
    acknowledged: bool,
}

/// Checks every successful read of `history`; returns the violations (empty when it holds).
pub fn check(history: &[Event]) -> Vec<Violation> {
    let mut by_key: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
    for event in history {
        by_key.entry(event.key.as_str()).or_default().push(event);
    }
    let mut violations = Vec::new();
    for events in by_key.values() {
        // The initial state: absent, "completed" before anything began.
        let mut writes = vec![Write { leaves: None, invoked: None, completed: None, acknowledged: true }];
        for event in events {
            let leaves = match &event.op {
                Op::Put(value) => Some(value.as_str()),
                Op::Delete => None,
                Op::Get(_) => continue,
            };
            writes.push(Write {
                leaves,
                invoked: Some(event.invoked),
                completed: Some(event.completed),
                acknowledged: event.ok,
            });
        }
        for read in events.iter().filter(|e| e.ok) {
            let Op::Get(seen) = &read.op else { continue };
            let explained = writes.iter().any(|write| {
                write.leaves == seen.as_deref()
                    && write.invoked.is_none_or(|invoked| invoked < read.completed)
                    && !overwritten_before(write, &writes, read.invoked)
            });
            if !explained {
                let reason =
                    if seen.is_some() && !writes.iter().any(|w| w.leaves == seen.as_deref() && w.invoked.is_some()) {
                        "no write ever stored that value".to_owned()
                    } else {
                        "the value was replaced by an acknowledged write before the read began (a lost or stale write)"
                            .to_owned()
                    };
                violations.push(Violation { read: (*read).clone(), reason });
            }
        }
    }
    violations
}

/// Whether an acknowledged write began after `write` completed and completed before `instant`.
fn overwritten_before(write: &Write<'_>, writes: &[Write<'_>], instant: Instant) -> bool {
    writes.iter().any(|later| {
        later.acknowledged
            && later.completed.is_some_and(|completed| completed < instant)
            && match (write.completed, later.invoked) {
                (None, Some(_)) => true,
                (Some(done), Some(began)) => began > done,
                _ => false,
            }
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(base: Instant, from_ms: u64, to_ms: u64) -> (Instant, Instant) {
        (base + Duration::from_millis(from_ms), base + Duration::from_millis(to_ms))
    }

    fn event(base: Instant, op: Op, span: (u64, u64), ok: bool) -> Event {
        let (invoked, completed) = at(base, span.0, span.1);
        Event { client: 0, key: "k".into(), op, invoked, completed, ok }
    }

    #[test]
    fn reads_of_the_latest_or_a_concurrent_write_pass() {
        let t = Instant::now();
        let history = vec![
            event(t, Op::Get(None), (0, 1), true),
            event(t, Op::Put("a".into()), (2, 4), true),
            event(t, Op::Get(Some("a".into())), (5, 6), true),
            event(t, Op::Put("b".into()), (7, 12), true),
            // Concurrent with the write of b: either value.
            event(t, Op::Get(Some("a".into())), (8, 9), true),
            event(t, Op::Get(Some("b".into())), (10, 11), true),
            event(t, Op::Get(Some("b".into())), (13, 14), true),
            // A failed write may show up.
            event(t, Op::Put("c".into()), (15, 16), false),
            event(t, Op::Get(Some("c".into())), (17, 18), true),
            event(t, Op::Delete, (19, 20), true),
            event(t, Op::Get(None), (21, 22), true),
        ];
        assert!(check(&history).is_empty(), "{:?}", check(&history).iter().map(|v| v.to_string()).collect::<Vec<_>>());
    }

    #[test]
    fn a_lost_or_invented_write_is_caught() {
        let t = Instant::now();
        let lost = vec![
            event(t, Op::Put("a".into()), (0, 1), true),
            event(t, Op::Put("b".into()), (2, 3), true),
            event(t, Op::Get(Some("a".into())), (4, 5), true),
        ];
        assert_eq!(check(&lost).len(), 1);
        let vanished = vec![event(t, Op::Put("a".into()), (0, 1), true), event(t, Op::Get(None), (2, 3), true)];
        assert_eq!(check(&vanished).len(), 1);
        let invented = vec![event(t, Op::Get(Some("z".into())), (0, 1), true)];
        assert_eq!(check(&invented)[0].reason, "no write ever stored that value");
        let from_the_future =
            vec![event(t, Op::Get(Some("a".into())), (0, 1), true), event(t, Op::Put("a".into()), (2, 3), true)];
        assert_eq!(check(&from_the_future).len(), 1);
        // A failed read says nothing.
        let failed = vec![event(t, Op::Put("a".into()), (0, 1), true), event(t, Op::Get(None), (2, 3), false)];
        assert!(check(&failed).is_empty());
    }
}
