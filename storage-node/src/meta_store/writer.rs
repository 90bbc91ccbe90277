//! The single writer: one thread owns every write transaction and commits queued requests
//! together (group commit), so one fsync serves many writers.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use redb::{Database, Durability, ReadableTable, ReadableTableMetadata, Table};
use tokio::sync::{mpsc, oneshot};

use super::codec::{decode_row, decode_timestamp, encode_value};
use super::{MetaError, ROWS, Row, TOTALS, Tally};
use crate::hlc::Timestamp;

/// Result of one `put_if_newer` request: one flag per row, true when applied.
pub(super) type Applied = Result<Vec<bool>, MetaError>;

/// Rows to write and where to send the outcome.
pub(super) struct WriteRequest {
    pub(super) rows: Vec<Row>,
    /// Encoded size of the rows (keys plus stored values).
    pub(super) bytes: usize,
    pub(super) reply: oneshot::Sender<Applied>,
}

/// Bounds on one write transaction.
#[derive(Clone, Copy, Debug)]
pub(super) struct BatchLimits {
    pub(super) max_rows: usize,
    pub(super) max_bytes: usize,
}

/// Takes the next request (waiting for one) and whatever else is already queued, within the
/// limits. A request that does not fit is carried over to start the next batch. `None` once
/// every sender is gone and the queue is empty.
pub(super) fn next_batch(
    rx: &mut mpsc::Receiver<WriteRequest>,
    carried: &mut Option<WriteRequest>,
    limits: BatchLimits,
) -> Option<Vec<WriteRequest>> {
    let first = match carried.take() {
        Some(request) => request,
        None => rx.blocking_recv()?,
    };
    let mut rows = first.rows.len();
    let mut bytes = first.bytes;
    let mut batch = vec![first];
    while let Ok(next) = rx.try_recv() {
        let fits = rows + next.rows.len() <= limits.max_rows && bytes + next.bytes <= limits.max_bytes;
        if !fits {
            *carried = Some(next);
            break;
        }
        rows += next.rows.len();
        bytes += next.bytes;
        batch.push(next);
    }
    Some(batch)
}

/// The writer thread's loop: batch, apply, commit, answer; ends when the store is dropped.
pub(super) fn run(
    db: Arc<Database>,
    mut rx: mpsc::Receiver<WriteRequest>,
    limits: BatchLimits,
    commits: Arc<AtomicU64>,
    tally: Option<Tally>,
) {
    let mut carried = None;
    while let Some(batch) = next_batch(&mut rx, &mut carried, limits) {
        match apply_batch(&db, &batch, tally) {
            Ok(results) => {
                commits.fetch_add(1, Ordering::Relaxed);
                for (request, result) in batch.into_iter().zip(results) {
                    // A caller that stopped waiting is no reason to fail the others.
                    let _ = request.reply.send(result);
                }
            }
            Err(error) => {
                tracing::error!(%error, requests = batch.len(), "metadata commit failed");
                for request in batch {
                    let _ = request.reply.send(Err(error.clone()));
                }
            }
        }
    }
}

/// Applies every request of `batch` in one durable transaction. The outer error fails the whole
/// batch (nothing committed); inner errors fail one request, which then wrote nothing.
fn apply_batch(db: &Database, batch: &[WriteRequest], tally: Option<Tally>) -> Result<Vec<Applied>, MetaError> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate);
    let mut results = Vec::with_capacity(batch.len());
    {
        let mut table = txn.open_table(ROWS)?;
        let mut totals = txn.open_table(TOTALS)?;
        for request in batch {
            results.push(apply_request(&mut table, &mut totals, tally, &request.rows)?);
        }
        if tally.is_some() {
            mark_counted(&mut totals, table.len()?)?;
        }
    }
    txn.commit()?;
    Ok(results)
}

/// Last-writer-wins for one request's rows: decides every row first (so a stored row that
/// cannot be decoded fails the request before anything is written), then inserts the winners.
fn apply_request(
    table: &mut Table<&'static [u8], &'static [u8]>,
    totals: &mut Table<&'static [u8], (u64, u64)>,
    tally: Option<Tally>,
    rows: &[Row],
) -> Result<Applied, MetaError> {
    // Timestamps as they will stand after the earlier rows of this request.
    let mut pending: HashMap<&[u8], Timestamp> = HashMap::new();
    let mut applied = Vec::with_capacity(rows.len());
    for row in rows {
        let key = row.key.as_slice();
        let current = match pending.get(key) {
            Some(timestamp) => Some(*timestamp),
            None => match table.get(key)? {
                None => None,
                Some(stored) => match decode_timestamp(stored.value()) {
                    Ok(timestamp) => Some(timestamp),
                    Err(error) => return Ok(Err(error)),
                },
            },
        };
        let newer = current.is_none_or(|timestamp| row.timestamp > timestamp);
        if newer {
            pending.insert(key, row.timestamp);
        }
        applied.push(newer);
    }
    for (row, _) in rows.iter().zip(&applied).filter(|(_, newer)| **newer) {
        let replaced = table.insert(row.key.as_slice(), encode_value(row).as_slice())?;
        let Some(tally) = tally else { continue };
        match replaced.map(|old| decode_row(row.key.clone(), old.value())) {
            Some(Ok(old)) => add_to_totals(totals, tally, &old, false)?,
            // Its timestamp was read above: only a damaged flag past the header gets here.
            Some(Err(error)) => tracing::warn!(%error, "replaced a damaged row; its total may be off"),
            None => {}
        }
        add_to_totals(totals, tally, row, true)?;
    }
    Ok(Ok(applied))
}

/// The key of the totals table's record of how many rows the totals were kept over: the one
/// group no row counts in.
const COUNTED_ROWS: &[u8] = b"";

/// How many rows the totals were last kept over, if ever.
pub(super) fn counted_rows(totals: &Table<&'static [u8], (u64, u64)>) -> Result<Option<u64>, MetaError> {
    Ok(totals.get(COUNTED_ROWS)?.map(|t| t.value().0))
}

/// Records that the totals are kept over `rows` rows (see [`counted_rows`]).
pub(super) fn mark_counted(totals: &mut Table<&'static [u8], (u64, u64)>, rows: u64) -> Result<(), MetaError> {
    totals.insert(COUNTED_ROWS, (rows, 0))?;
    Ok(())
}

/// Counts `row` into (or, when `add` is false, out of) the total of the group `tally` puts
/// it in; a total that falls to zero is removed.
pub(super) fn add_to_totals(
    totals: &mut Table<&'static [u8], (u64, u64)>,
    tally: Tally,
    row: &Row,
    add: bool,
) -> Result<(), MetaError> {
    let Some((group, bytes)) = tally(row).filter(|(group, _)| group.as_slice() != COUNTED_ROWS) else {
        return Ok(());
    };
    let (rows, total) = totals.get(group.as_slice())?.map(|t| t.value()).unwrap_or_default();
    let (rows, total) = if add {
        (rows.saturating_add(1), total.saturating_add(bytes))
    } else {
        (rows.saturating_sub(1), total.saturating_sub(bytes))
    };
    if rows == 0 {
        totals.remove(group.as_slice())?;
    } else {
        totals.insert(group.as_slice(), (rows, total))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(rows: usize, bytes: usize) -> (WriteRequest, oneshot::Receiver<Applied>) {
        let (reply, rx) = oneshot::channel();
        let rows = (0..rows)
            .map(|i| Row {
                key: vec![u8::try_from(i % 256).unwrap_or(0)],
                timestamp: Timestamp::default(),
                tombstone: false,
                value: Vec::new(),
            })
            .collect();
        (WriteRequest { rows, bytes, reply }, rx)
    }

    #[test]
    fn batches_drain_the_queue_within_limits() {
        let (tx, mut rx) = mpsc::channel(16);
        let mut replies = Vec::new();
        for (rows, bytes) in [(2, 10), (3, 10), (4, 10), (1, 500), (1, 10)] {
            let (req, reply) = request(rows, bytes);
            replies.push(reply);
            assert!(tx.try_send(req).is_ok());
        }
        drop(tx);
        let limits = BatchLimits { max_rows: 6, max_bytes: 600 };
        let mut carried = None;
        let mut sizes = Vec::new();
        while let Some(batch) = next_batch(&mut rx, &mut carried, limits) {
            sizes.push(batch.iter().map(|r| r.rows.len()).collect::<Vec<_>>());
        }
        // 2+3 rows fit in 6; 4 starts the next batch and takes both single rows (6 rows, 520 bytes).
        assert_eq!(sizes, vec![vec![2, 3], vec![4, 1, 1]]);
    }

    #[test]
    fn byte_limit_splits_batches() {
        let (tx, mut rx) = mpsc::channel(16);
        let mut replies = Vec::new();
        for bytes in [400, 300, 200] {
            let (req, reply) = request(1, bytes);
            replies.push(reply);
            assert!(tx.try_send(req).is_ok());
        }
        drop(tx);
        let limits = BatchLimits { max_rows: 100, max_bytes: 600 };
        let mut carried = None;
        let mut sizes = Vec::new();
        while let Some(batch) = next_batch(&mut rx, &mut carried, limits) {
            sizes.push(batch.iter().map(|r| r.bytes).collect::<Vec<_>>());
        }
        assert_eq!(sizes, vec![vec![400], vec![300, 200]]);
    }
}
