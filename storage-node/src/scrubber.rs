//! The scrubber: proves every chunk a node holds against its SHA-256, at a throttled rate.
//!
//! A pass walks the fan-out leaves in order and, in each, the chunks in id order, reading each
//! whole (header, length, CRC-32C) and hashing its payload against the SHA-256 in its header.
//! A copy that fails is queued for repair, which checks it again, sets it aside in the store's
//! quarantine and replaces it with a proved copy from another replica. Reads are paced so that the pass never
//! reads faster than the configured rate; a pass starts a period after the previous one
//! started (or at once when asked). Where the pass stands and what it found are saved in
//! `scrub.json` every few seconds, so a restarted node resumes its pass instead of starting
//! over; pausing is saved too.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::chunk_store::{ChunkError, ChunkId, ChunkStore, LEAF_COUNT};
use crate::pace::Pace;
use crate::repair::{RepairQueue, RepairStats};

/// Default read rate limit: 32 MiB/s.
pub const DEFAULT_SCRUB_RATE_BYTES: u64 = 32 * 1024 * 1024;
/// Default time from one pass's start to the next: 7 days.
pub const DEFAULT_SCRUB_PERIOD_SECS: u64 = 7 * 24 * 3600;
/// How long quarantined copies are kept before a pass removes them.
const QUARANTINE_KEEP: Duration = Duration::from_secs(7 * 24 * 3600);
/// How often progress is saved while a pass runs.
const SAVE_EVERY: Duration = Duration::from_secs(5);
/// File (in the data directory) holding the progress.
const STATE_FILE: &str = "scrub.json";

/// How fast and how often the scrubber reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScrubConfig {
    /// Upper bound on bytes read per second (0: no bound).
    pub rate_bytes_per_sec: u64,
    /// Time from the start of one pass to the start of the next.
    pub period: Duration,
}

impl Default for ScrubConfig {
    fn default() -> Self {
        Self { rate_bytes_per_sec: DEFAULT_SCRUB_RATE_BYTES, period: Duration::from_secs(DEFAULT_SCRUB_PERIOD_SECS) }
    }
}

/// What the scrubber has done, saved across restarts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScrubProgress {
    /// Paused by an operator.
    pub paused: bool,
    /// Start of the pass in progress, Unix milliseconds (none between passes).
    pub pass_started_ms: Option<u64>,
    /// Next fan-out leaf of the pass in progress.
    pub next_leaf: u32,
    /// Last chunk checked in that leaf (hex id).
    pub after: Option<String>,
    /// Chunks checked by the pass in progress.
    pub chunks_checked: u64,
    /// Bytes checked by the pass in progress.
    pub bytes_checked: u64,
    /// Bad copies found, by the scrubber and by reads, since the node was created.
    pub corruptions_found: u64,
    /// Bad copies replaced with a proved copy.
    pub corruptions_repaired: u64,
    /// Chunks that could not be read for another reason than corruption (i/o errors).
    pub read_errors: u64,
    /// Passes completed.
    pub passes_completed: u64,
    /// Start of the last completed pass, Unix milliseconds.
    pub last_pass_started_ms: Option<u64>,
    /// End of the last completed pass, Unix milliseconds.
    pub last_pass_completed_ms: Option<u64>,
    /// Chunks the last completed pass checked.
    pub last_pass_chunks: u64,
    /// Bytes the last completed pass checked.
    pub last_pass_bytes: u64,
}

/// The scrubber's state as `GET /v1/scrub` reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScrubReport {
    /// This node.
    pub node_id: String,
    /// `running`, `paused` or `idle` (between passes).
    pub state: String,
    /// Progress and lasting counters.
    pub progress: ScrubProgress,
    /// Share of the pass in progress done, in percent (by fan-out leaves walked).
    pub pass_percent: u32,
    /// When the next pass starts if none is running, Unix milliseconds.
    pub next_pass_ms: Option<u64>,
    /// The rate limit, bytes per second (0: none).
    pub rate_bytes_per_sec: u64,
    /// Time from one pass's start to the next, seconds.
    pub period_secs: u64,
    /// The repair queue the scrubber feeds.
    pub repair: RepairStats,
}

/// An operator's command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScrubCommand {
    /// Start a full pass now (restarting one in progress), and resume if paused.
    Start,
    /// Stop reading until resumed; the pass keeps its place.
    Pause,
    /// Go on after a pause.
    Resume,
}

impl ScrubCommand {
    /// Parses `start`, `pause` or `resume`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "start" => Some(Self::Start),
            "pause" => Some(Self::Pause),
            "resume" => Some(Self::Resume),
            _ => None,
        }
    }
}

/// A node's scrubber.
pub struct Scrubber {
    node_id: String,
    chunks: ChunkStore,
    repairs: Arc<RepairQueue>,
    config: ScrubConfig,
    path: PathBuf,
    progress: Mutex<ScrubProgress>,
    /// Held while `scrub.json` is written, so two saves never interleave.
    saving: Mutex<()>,
    /// Bumped by every command, so a running pass notices.
    commands: AtomicU64,
    wake: Notify,
}

impl Scrubber {
    /// A scrubber over `chunks`, resuming from the progress saved in `data_dir`.
    pub fn open(
        node_id: &str,
        data_dir: &std::path::Path,
        chunks: ChunkStore,
        repairs: Arc<RepairQueue>,
        config: ScrubConfig,
    ) -> anyhow::Result<Arc<Self>> {
        let path = data_dir.join(STATE_FILE);
        let progress = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "unreadable scrub progress: starting over");
                ScrubProgress::default()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => ScrubProgress::default(),
            Err(e) => return Err(e.into()),
        };
        Ok(Arc::new(Self {
            node_id: node_id.to_owned(),
            chunks,
            repairs,
            config,
            path,
            progress: Mutex::new(progress),
            saving: Mutex::new(()),
            commands: AtomicU64::new(0),
            wake: Notify::new(),
        }))
    }

    /// The scrubber's state now.
    pub fn report(&self) -> ScrubReport {
        self.collect_repairs();
        let progress = self.lock().clone();
        let state = if progress.paused {
            "paused"
        } else if progress.pass_started_ms.is_some() {
            "running"
        } else {
            "idle"
        };
        let pass_percent = if progress.pass_started_ms.is_some() {
            (u64::from(progress.next_leaf) * 100 / LEAF_COUNT as u64) as u32
        } else {
            0
        };
        ScrubReport {
            node_id: self.node_id.clone(),
            state: state.to_owned(),
            next_pass_ms: progress.pass_started_ms.is_none().then(|| self.next_pass_ms(&progress)),
            progress,
            pass_percent,
            rate_bytes_per_sec: self.config.rate_bytes_per_sec,
            period_secs: self.config.period.as_secs(),
            repair: self.repairs.stats(),
        }
    }

    /// Applies an operator's command and saves the result.
    pub fn command(&self, command: ScrubCommand) -> std::io::Result<ScrubReport> {
        {
            let mut progress = self.lock();
            match command {
                ScrubCommand::Start => {
                    progress.paused = false;
                    begin_pass(&mut progress);
                }
                ScrubCommand::Pause => progress.paused = true,
                ScrubCommand::Resume => progress.paused = false,
            }
        }
        self.commands.fetch_add(1, Ordering::SeqCst);
        self.wake.notify_one();
        self.save()?;
        tracing::info!(?command, "scrub command");
        Ok(self.report())
    }

    /// Scrubs forever.
    pub async fn run(self: Arc<Self>) {
        loop {
            let progress = self.lock().clone();
            if progress.paused {
                self.wake.notified().await;
                continue;
            }
            if progress.pass_started_ms.is_none() {
                let wait = Duration::from_millis(self.next_pass_ms(&progress).saturating_sub(now_ms()));
                if !wait.is_zero() {
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = self.wake.notified() => {}
                    }
                    continue;
                }
                begin_pass(&mut self.lock());
                match self.chunks.purge_quarantine(QUARANTINE_KEEP).await {
                    Ok(0) => {}
                    Ok(removed) => tracing::info!(removed, "old quarantined chunks removed"),
                    Err(e) => tracing::warn!(error = %e, "could not purge the quarantine"),
                }
                tracing::info!("scrub pass started");
            }
            self.run_pass().await;
            if let Err(e) = self.save() {
                tracing::warn!(error = %e, "could not save scrub progress");
            }
        }
    }

    /// Reads on from the saved place until the pass ends or a command arrives.
    async fn run_pass(&self) {
        let generation = self.commands.load(Ordering::SeqCst);
        let mut pace = Pace::new(self.config.rate_bytes_per_sec);
        let mut saved = Instant::now();
        loop {
            let (leaf, after) = {
                let progress = self.lock();
                (progress.next_leaf as usize, progress.after.as_deref().and_then(ChunkId::from_hex))
            };
            if leaf >= LEAF_COUNT {
                self.finish_pass();
                return;
            }
            let ids = match self.chunks.leaf_ids(leaf).await {
                Ok(ids) => ids,
                Err(e) => {
                    tracing::warn!(leaf, error = %e, "scrubber could not list a leaf");
                    Vec::new()
                }
            };
            let start = after.map_or(0, |after| ids.partition_point(|id| id.placement_key() <= after.placement_key()));
            for id in &ids[start..] {
                if self.commands.load(Ordering::SeqCst) != generation {
                    return;
                }
                let bytes = self.check(*id).await;
                {
                    let mut progress = self.lock();
                    progress.chunks_checked += 1;
                    progress.bytes_checked += bytes;
                    progress.after = Some(id.to_hex());
                }
                pace.wait(bytes).await;
                if saved.elapsed() >= SAVE_EVERY {
                    if let Err(e) = self.save() {
                        tracing::warn!(error = %e, "could not save scrub progress");
                    }
                    saved = Instant::now();
                }
            }
            let mut progress = self.lock();
            progress.next_leaf += 1;
            progress.after = None;
        }
    }

    /// Proves one chunk; sets a bad copy aside and queues its repair. Returns the bytes read.
    async fn check(&self, id: ChunkId) -> u64 {
        match self.chunks.verify_sha256(id).await {
            Ok(header) => header.len,
            // Deleted since the leaf was listed.
            Err(ChunkError::NotFound { .. }) => 0,
            Err(ChunkError::Corrupt { reason, .. }) => {
                // The repair worker checks it again, sets it aside and counts it: one place
                // quarantines, so a copy it already replaced is never set aside by mistake.
                tracing::error!(chunk = %id.to_hex(), reason, "scrubber found a corrupt chunk");
                self.repairs.push(id);
                0
            }
            Err(e) => {
                tracing::warn!(chunk = %id.to_hex(), error = %e, "scrubber could not read a chunk");
                self.lock().read_errors += 1;
                0
            }
        }
    }

    fn finish_pass(&self) {
        let mut progress = self.lock();
        progress.last_pass_started_ms = progress.pass_started_ms.take();
        progress.last_pass_completed_ms = Some(now_ms());
        progress.last_pass_chunks = progress.chunks_checked;
        progress.last_pass_bytes = progress.bytes_checked;
        progress.passes_completed += 1;
        tracing::info!(chunks = progress.chunks_checked, bytes = progress.bytes_checked, "scrub pass completed");
    }

    fn next_pass_ms(&self, progress: &ScrubProgress) -> u64 {
        progress.last_pass_started_ms.map_or(0, |started| started.saturating_add(self.config.period.as_millis() as u64))
    }

    /// Folds the repair worker's corruption counts into the lasting ones.
    fn collect_repairs(&self) {
        let (found, fixed) = self.repairs.take_corruption_counts();
        if found > 0 || fixed > 0 {
            let mut progress = self.lock();
            progress.corruptions_found += found;
            progress.corruptions_repaired += fixed;
        }
    }

    /// Writes the progress durably (temp file, fsync, rename).
    fn save(&self) -> std::io::Result<()> {
        let _saving = self.saving.lock().unwrap_or_else(PoisonError::into_inner);
        self.collect_repairs();
        let bytes = serde_json::to_vec_pretty(&*self.lock()).map_err(std::io::Error::other)?;
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(&tmp, bytes)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, &self.path)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ScrubProgress> {
        self.progress.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn begin_pass(progress: &mut ScrubProgress) {
    progress.pass_started_ms = Some(now_ms());
    progress.next_leaf = 0;
    progress.after = None;
    progress.chunks_checked = 0;
    progress.bytes_checked = 0;
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
