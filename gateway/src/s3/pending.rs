//! The lease a gateway holds on the chunks of a body it is writing. Before the first chunk is
//! sent, a `PendingChunks` record naming every chunk the body can have goes to the index shard
//! of the object key; while the request runs the record's lease is renewed; the batch that
//! writes the part's manifest replaces it by a tombstone. A gateway that dies mid-upload leaves
//! the record behind with a lease that runs out, and garbage collection deletes the chunks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use cairn_storage_node::control::BucketInfo;
use cairn_storage_node::manifest::{self, PendingChunks, RECORD_FORMAT_VERSION, encode_record};
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::Gateway;
use super::error::S3Error;
use crate::replication::RowWrite;
use crate::timefmt::now_ms;

/// Default length of a lease on the chunks being written: 10 minutes.
pub const DEFAULT_UPLOAD_LEASE_SECS: u64 = 600;
/// Renewals per lease period: a lease is renewed when a quarter of it has passed.
const RENEWALS_PER_LEASE: u32 = 4;

/// Where the chunks of a body will be referenced from.
#[derive(Clone, Copy)]
pub struct BodyTarget<'a> {
    /// The bucket.
    pub bucket: &'a BucketInfo,
    /// The index shard of the object key.
    pub shard: u16,
    /// The part number (1 for a single PUT or a copy).
    pub part: u32,
}

/// A held lease on chunks `0..count` of one part of a chunk set; renewal stops when dropped.
pub struct ChunkLease {
    key: Vec<u8>,
    lease: Duration,
    until_ms: Arc<AtomicU64>,
    renewal: Mutex<Option<JoinHandle<()>>>,
}

impl ChunkLease {
    /// Records chunks `0..count` of `chunk_set` as pending (at the bucket's consistency level)
    /// and starts renewing the lease.
    pub async fn take(
        gateway: &Arc<Gateway>,
        target: BodyTarget<'_>,
        chunk_set: Uuid,
        count: u32,
    ) -> Result<Self, S3Error> {
        let bucket_id = target.bucket.bucket_id;
        let placement = manifest::metadata_placement_key(bucket_id, target.shard);
        let key = manifest::pending_chunks_key(bucket_id, target.shard, chunk_set, target.part);
        let lease = gateway.config.upload_lease;
        let level = target.bucket.consistency;
        let record = move |until_ms: u64| RowWrite {
            key: manifest::pending_chunks_key(bucket_id, target.shard, chunk_set, target.part),
            tombstone: false,
            value: encode_record(&PendingChunks {
                format: RECORD_FORMAT_VERSION,
                chunk_set,
                part: target.part,
                count,
                recorded_ms: now_ms(),
                lease_until_ms: until_ms,
            }),
        };
        let until = now_ms() + lease.as_millis() as u64;
        gateway.replication.write_rows(&placement, vec![record(until)], level).await?;
        let until_ms = Arc::new(AtomicU64::new(until));

        let renewal = {
            let (gateway, until_ms) = (gateway.clone(), until_ms.clone());
            let period = lease / RENEWALS_PER_LEASE;
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
                loop {
                    ticks.tick().await;
                    let until = now_ms() + lease.as_millis() as u64;
                    match gateway.replication.write_rows(&placement, vec![record(until)], level).await {
                        Ok(()) => until_ms.store(until, Ordering::Release),
                        Err(e) => tracing::warn!(%chunk_set, error = %e, "could not renew the lease on pending chunks"),
                    }
                }
            })
        };
        Ok(Self { key, lease, until_ms, renewal: Mutex::new(Some(renewal)) })
    }

    /// Stops renewing and, if the lease still has half its length to run (so no collector can
    /// have started on the chunks, even with clocks apart by less than that), returns the
    /// tombstone of the record, to be written in the same batch as the manifest.
    pub async fn settle(&self) -> Result<RowWrite, S3Error> {
        let renewal = self.renewal.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(renewal) = renewal {
            renewal.abort();
            // A renewal already stamped is older than the tombstone stamped after this.
            let _ = renewal.await;
        }
        let margin = (self.lease / 2).as_millis() as u64;
        if self.until_ms.load(Ordering::Acquire) < now_ms() + margin {
            tracing::error!("the lease on an upload's chunks could not be renewed; the upload fails");
            return Err(S3Error::InternalError);
        }
        Ok(RowWrite { key: self.key.clone(), tombstone: true, value: Vec::new() })
    }
}

impl Drop for ChunkLease {
    fn drop(&mut self) {
        if let Some(renewal) = self.renewal.lock().unwrap_or_else(PoisonError::into_inner).take() {
            renewal.abort();
        }
    }
}
