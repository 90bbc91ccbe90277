//! The write path: stream a body into a temp file, check it against its promise, make it
//! durable and give it its final name (protocol on the parent module).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::task::JoinHandle;

use super::format::{self, HEADER_LEN, encode_header};
use super::layout::{TMP_SUFFIX, chunk_path, fan_out, fsync_dir};
use super::{
    ChunkDigest, ChunkError, ChunkId, ChunkStore, Inner, MAX_CHUNK_BYTES, blocking, disk_space, open_chunk, read_header,
};

/// Body bytes gathered before handing them to a blocking write; one such batch is written
/// while the next is received.
const WRITE_BATCH_BYTES: usize = 1024 * 1024;

/// Space promised to a put in progress; released when dropped.
struct Reservation {
    inner: Arc<Inner>,
    bytes: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.inner.in_flight_bytes.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// A temp file that is removed unless the put completes; covers cancellation of the future.
struct TempFile {
    path: PathBuf,
    armed: bool,
}

impl TempFile {
    /// Removes the file now, waiting for it (error paths, so the caller sees nothing left).
    async fn remove(mut self) {
        self.armed = false;
        let path = std::mem::take(&mut self.path);
        let removed = blocking(move || remove_if_exists(&path).map_err(ChunkError::from)).await;
        if let Err(error) = removed {
            tracing::warn!(%error, "could not remove a chunk temp file");
        }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let path = std::mem::take(&mut self.path);
        // Keep the unlink off the executor when there is one.
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn_blocking(move || remove_if_exists(&path));
            }
            Err(_) => {
                let _ = remove_if_exists(&path);
            }
        }
    }
}

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Outcome of the checks done before any byte is written.
enum Prepared {
    /// The same chunk is already stored.
    AlreadyStored,
    /// A temp file holding the header, ready for the body.
    Write { file: File, temp: TempFile, reservation: Reservation },
}

/// Compares an existing chunk's header with the promise for an idempotent put.
fn check_existing(path: &Path, id: ChunkId, digest: &ChunkDigest) -> Result<bool, ChunkError> {
    let mut file = match open_chunk(path, id) {
        Ok(file) => file,
        Err(ChunkError::NotFound { .. }) => return Ok(false),
        Err(e) => return Err(e),
    };
    let header = read_header(&mut file, id)?;
    if header.digest() == *digest { Ok(true) } else { Err(ChunkError::Conflict { id }) }
}

fn prepare(inner: Arc<Inner>, id: ChunkId, digest: ChunkDigest) -> Result<Prepared, ChunkError> {
    if check_existing(&chunk_path(&inner.root, &id), id, &digest)? {
        return Ok(Prepared::AlreadyStored);
    }
    let needed = digest.len + HEADER_LEN as u64;
    let free_bytes = disk_space(&inner.root)?.free;
    let before = inner.in_flight_bytes.fetch_add(needed, Ordering::AcqRel);
    let reservation = Reservation { inner: inner.clone(), bytes: needed };
    let remaining = free_bytes.saturating_sub(before.saturating_add(needed));
    if remaining < inner.reserve_bytes {
        return Err(ChunkError::InsufficientSpace { free_bytes, reserve_bytes: inner.reserve_bytes });
    }
    let path = inner.tmp_dir.join(format!("{}{TMP_SUFFIX}", uuid::Uuid::new_v4().simple()));
    let mut file = OpenOptions::new().write(true).create_new(true).open(&path)?;
    let temp = TempFile { path, armed: true };
    file.write_all(&encode_header(&digest))?;
    Ok(Prepared::Write { file, temp, reservation })
}

/// File and running CRC-32C, moved into each blocking write and back.
type WriteState = (File, crc_fast::Digest);

fn write_batch(state: WriteState, batch: Vec<Bytes>) -> io::Result<WriteState> {
    let (mut file, mut crc) = state;
    for piece in &batch {
        crc.update(piece);
        file.write_all(piece)?;
    }
    Ok((file, crc))
}

async fn join_write(handle: JoinHandle<io::Result<WriteState>>) -> Result<WriteState, ChunkError> {
    Ok(handle.await.map_err(io::Error::other)??)
}

/// Streams `body` into the temp file; returns the file and the body's CRC-32C once all of it
/// is written. The length is checked as bytes arrive, so an oversized body is cut short.
async fn stream_body<S, E>(
    id: ChunkId,
    digest: &ChunkDigest,
    file: File,
    mut body: S,
) -> Result<(File, u32), ChunkError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
    E: std::error::Error + Send + Sync + 'static,
{
    let mut state = Some((file, format::crc32c_digest()));
    let mut in_flight: Option<JoinHandle<io::Result<WriteState>>> = None;
    let mut received: u64 = 0;
    let mut batch = Vec::new();
    let mut batch_bytes = 0usize;
    loop {
        let piece = body.next().await;
        let end = piece.is_none();
        if let Some(piece) = piece {
            let piece = piece.map_err(|e| ChunkError::Body(e.to_string()))?;
            received = received.saturating_add(piece.len() as u64);
            if received > digest.len {
                return Err(ChunkError::DigestMismatch { id, reason: "body longer than promised" });
            }
            batch_bytes += piece.len();
            if !piece.is_empty() {
                batch.push(piece);
            }
        }
        if batch_bytes >= WRITE_BATCH_BYTES || (end && !batch.is_empty()) {
            let current = match (state.take(), in_flight.take()) {
                (Some(state), _) => state,
                (None, Some(handle)) => join_write(handle).await?,
                (None, None) => return Err(io::Error::other("chunk writer lost its file").into()),
            };
            let pieces = std::mem::take(&mut batch);
            batch_bytes = 0;
            in_flight = Some(tokio::task::spawn_blocking(move || write_batch(current, pieces)));
        }
        if end {
            break;
        }
    }
    let (file, crc) = match (state, in_flight) {
        (Some(state), _) => state,
        (None, Some(handle)) => join_write(handle).await?,
        (None, None) => return Err(io::Error::other("chunk writer lost its file").into()),
    };
    if received != digest.len {
        return Err(ChunkError::DigestMismatch { id, reason: "body shorter than promised" });
    }
    Ok((file, format::crc32c_finish(&crc)))
}

/// Makes the temp file durable and links it under its final name (or finds an identical chunk
/// already there).
fn commit(inner: &Inner, id: ChunkId, digest: &ChunkDigest, file: File, temp_path: &Path) -> Result<(), ChunkError> {
    file.sync_all()?;
    drop(file);
    let leaf = inner.dirs.ensure(&inner.root, fan_out(&id))?;
    let final_path = chunk_path(&inner.root, &id);
    // A hard link never replaces an existing name, unlike rename: a concurrent put of the same
    // id cannot silently swap a chunk another reader already verified.
    match fs::hard_link(temp_path, &final_path) {
        Ok(()) => {
            inner.chunk_count.fetch_add(1, Ordering::Relaxed);
            inner.used_bytes.fetch_add(digest.len + HEADER_LEN as u64, Ordering::Relaxed);
            inner.inventory.toggle(&super::layout::id_hash(&id), true, digest.len + HEADER_LEN as u64);
            fsync_dir(&leaf)?;
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            if !check_existing(&final_path, id, digest)? {
                return Err(io::Error::other("chunk vanished while being linked").into());
            }
        }
        Err(e) => return Err(e.into()),
    }
    remove_if_exists(temp_path)?;
    Ok(())
}

impl ChunkStore {
    /// Stores a chunk whose body arrives as a stream, checking it against `digest` (length and
    /// CRC-32C; the SHA-256 is recorded, not recomputed). Returns once the chunk is durable.
    pub async fn put<S, E>(&self, id: ChunkId, digest: ChunkDigest, body: S) -> Result<(), ChunkError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::error::Error + Send + Sync + 'static,
    {
        if digest.len > MAX_CHUNK_BYTES {
            return Err(ChunkError::TooLarge { len: digest.len });
        }
        let inner = self.inner.clone();
        let prepared = blocking(move || prepare(inner, id, digest)).await?;
        let Prepared::Write { file, temp, reservation } = prepared else {
            return Ok(());
        };
        let (file, crc) = match stream_body(id, &digest, file, body).await {
            Ok(written) => written,
            Err(error) => {
                temp.remove().await;
                return Err(error);
            }
        };
        if crc != digest.crc32c {
            temp.remove().await;
            return Err(ChunkError::DigestMismatch { id, reason: "crc32c differs from the promise" });
        }
        let inner = self.inner.clone();
        let temp_path = temp.path.clone();
        let committed = blocking(move || commit(&inner, id, &digest, file, &temp_path)).await;
        match committed {
            Ok(()) => {
                let mut temp = temp;
                temp.armed = false;
                drop(reservation);
                Ok(())
            }
            Err(error) => {
                temp.remove().await;
                Err(error)
            }
        }
    }
}
