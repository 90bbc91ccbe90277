//! Errors of the metadata store.

use std::sync::Arc;

use super::{MAX_KEY_BYTES, MAX_SCAN_LIMIT, MAX_VALUE_BYTES};

/// Errors of the metadata store.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetaError {
    /// A key (or scan prefix / start key) longer than [`MAX_KEY_BYTES`].
    #[error("key of {len} bytes exceeds the {MAX_KEY_BYTES}-byte limit")]
    KeyTooLong {
        /// Its length.
        len: usize,
    },
    /// A value longer than [`MAX_VALUE_BYTES`].
    #[error("value of {len} bytes exceeds the {MAX_VALUE_BYTES}-byte limit")]
    ValueTooLarge {
        /// Its length.
        len: usize,
    },
    /// More rows in one request than `max_batch_rows`.
    #[error("{rows} rows in one write exceed the limit of {max}")]
    TooManyRows {
        /// Rows sent.
        rows: usize,
        /// The configured limit.
        max: usize,
    },
    /// More stored bytes in one request than `max_batch_bytes`.
    #[error("{bytes} bytes in one write exceed the limit of {max}")]
    WriteTooLarge {
        /// Bytes sent.
        bytes: usize,
        /// The configured limit.
        max: usize,
    },
    /// A scan limit above [`MAX_SCAN_LIMIT`].
    #[error("scan limit {limit} exceeds {MAX_SCAN_LIMIT}")]
    ScanLimitTooLarge {
        /// The limit asked for.
        limit: usize,
    },
    /// The configuration cannot work.
    #[error("invalid metadata store configuration: {0}")]
    InvalidConfig(&'static str),
    /// A stored row could not be decoded.
    #[error("corrupt metadata row: {reason}")]
    Corrupt {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A stored row of a format version this code cannot read.
    #[error("metadata row has unsupported format version {version}")]
    UnsupportedFormat {
        /// Version found.
        version: u8,
    },
    /// redb failed (I/O, corruption, ...).
    #[error("metadata storage: {0}")]
    Storage(Arc<redb::Error>),
    /// The writer thread is gone; the store is unusable.
    #[error("metadata writer stopped")]
    WriterStopped,
    /// A blocking read task failed.
    #[error("metadata read task failed: {0}")]
    Task(String),
}

impl From<redb::Error> for MetaError {
    fn from(error: redb::Error) -> Self {
        Self::Storage(Arc::new(error))
    }
}

/// Implements `From<$error>` through `redb::Error`, which every redb error converts into.
macro_rules! from_redb {
    ($($error:ty),*) => {$(
        impl From<$error> for MetaError {
            fn from(error: $error) -> Self {
                Self::from(redb::Error::from(error))
            }
        }
    )*};
}
from_redb!(redb::DatabaseError, redb::TransactionError, redb::TableError, redb::StorageError, redb::CommitError);
