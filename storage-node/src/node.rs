//! A storage node process: its stores, its control-plane replica and its RPC server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context;
use axum::serve::ListenerExt;
use serde::{Deserialize, Serialize};

use crate::anti_entropy::{AntiEntropy, ChunkAudit};
use crate::chunk_store::ChunkStore;
use crate::control::{ClusterSettings, ControlConfig, ControlPlane, ControlTransport, NodeInfo, TransportError};
use crate::failure_detector::{DetectorConfig, FailureDetector};
use crate::gc::{Collector, GcConfig};
use crate::membership;
use crate::meta_store::{MetaStore, MetaStoreConfig};
use crate::repair::{ChunkCopier, RepairQueue, Repairer};
use crate::rpc::auth::ClusterSecret;
use crate::rpc::client::{ClientConfig, NodeClient, RpcError};
use crate::rpc::server::{DataPlane, router};
use crate::scrubber::{ScrubConfig, Scrubber};

/// Default free-space reserve below which a node refuses writes.
pub const DEFAULT_RESERVE_BYTES: u64 = 256 * 1024 * 1024;

/// How to run a storage node.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Stable node id; generated and kept in the data directory when absent.
    pub node_id: Option<String>,
    /// Where chunks, metadata and the control-plane log live.
    pub data_dir: PathBuf,
    /// Directory of the metadata rows, the control-plane log and the node's identity (its own
    /// volume if wanted; `None`: the data directory).
    pub metadata_dir: Option<PathBuf>,
    /// Address the RPC server binds.
    pub listen: SocketAddr,
    /// Address peers and gateways use to reach this node (defaults to the bound address).
    pub advertise: Option<String>,
    /// Failure domain.
    pub zone: String,
    /// Relative share of data this node should hold.
    pub capacity_weight: u32,
    /// Free space kept in reserve.
    pub reserve_bytes: u64,
    /// Secret shared by the whole cluster.
    pub secret: ClusterSecret,
    /// Start a new cluster with these settings when the node has none yet.
    pub bootstrap: Option<ClusterSettings>,
    /// Join the cluster through the first of these nodes that is not this one, when the node
    /// has none yet.
    pub join: Vec<String>,
    /// Peers reached through another address than the one they advertise.
    pub routes: std::collections::BTreeMap<String, String>,
    /// How peers are probed.
    pub detector: DetectorConfig,
    /// Time between two anti-entropy rounds.
    pub anti_entropy_interval: Duration,
    /// How fast and how often the scrubber reads.
    pub scrub: ScrubConfig,
    /// Bound on bytes of chunks pulled per second by anti-entropy (moves and repairs; 0: none).
    pub transfer_rate_bytes: u64,
    /// How long a node must stay `down` before the control-plane leader evicts it from the
    /// layout (`None`: never).
    pub evict_after: Option<Duration>,
    /// How patient garbage collection is.
    pub gc: GcConfig,
}

/// Bound on one RPC of the background workers (anti-entropy, repair, garbage collection): long
/// enough for a 64 MiB chunk at 7 MB/s.
const BACKGROUND_RPC_TIMEOUT_MS: u64 = 10_000;

/// File in the data directory whose presence says the node has not pulled its partitions
/// since it started with an empty data directory.
const REBUILD_MARKER: &str = "REBUILDING";

/// What the node remembers about itself across restarts.
#[derive(Serialize, Deserialize)]
struct NodeIdentity {
    format: u8,
    node_id: String,
}

/// Runs a node until `shutdown` resolves.
pub async fn run(
    config: NodeConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let metadata_dir = config.metadata_dir.clone().unwrap_or_else(|| config.data_dir.clone());
    for dir in [&config.data_dir, &metadata_dir] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    // Whether the node may serve reads hangs on its metadata: an empty metadata directory is a
    // node to rebuild (chunks missing from a kept one are found by reads and anti-entropy).
    let rebuild_marker = metadata_dir.join(REBUILD_MARKER);
    let (node_id, fresh) = node_identity(&metadata_dir, config.node_id.as_deref(), &rebuild_marker)?;
    let rebuilding = fresh || rebuild_marker.exists();
    if rebuilding {
        tracing::info!(%node_id, "empty data directory: no reads until this node has pulled its partitions");
    }
    let chunks = ChunkStore::open(&config.data_dir.join("chunks"), config.reserve_bytes)?;
    let meta = MetaStore::open_with_tally(
        &metadata_dir.join("meta.redb"),
        MetaStoreConfig::default(),
        Some(crate::manifest::object_usage),
    )?;

    let listener =
        tokio::net::TcpListener::bind(config.listen).await.with_context(|| format!("binding {}", config.listen))?;
    let bound = listener.local_addr()?;
    anyhow::ensure!(
        config.advertise.is_some() || !bound.ip().is_unspecified(),
        "listening on {bound} needs --advertise: peers cannot reach an unspecified address"
    );
    let rpc_addr = config.advertise.clone().unwrap_or_else(|| bound.to_string());
    let info = NodeInfo {
        node_id: node_id.clone(),
        raft_id: crate::control::raft_id(&node_id),
        zone: config.zone.clone(),
        capacity_weight: config.capacity_weight,
        rpc_addr: rpc_addr.clone(),
        membership: Default::default(),
    };
    let client =
        NodeClient::new(config.secret.clone(), &ClientConfig { routes: config.routes.clone(), ..Default::default() });
    // Background workers give up on a peer sooner: a round stuck on a peer that hangs before
    // the detector marks it down would hold back everything else the round does.
    let background = NodeClient::new(
        config.secret.clone(),
        &ClientConfig {
            routes: config.routes.clone(),
            rpc_timeout_ms: BACKGROUND_RPC_TIMEOUT_MS,
            ..Default::default()
        },
    );
    let control_config = ControlConfig::new(info, metadata_dir.join("control.redb"));
    let control = ControlPlane::start(control_config, RpcTransport(client.clone())).await?;

    let recovering = Arc::new(AtomicBool::new(true));
    let audit = ChunkAudit::new();
    let peers = FailureDetector::new(config.detector);
    let view = control.state();
    let me = node_id.clone();
    tokio::spawn(
        peers
            .clone()
            .run(client.clone(), move || view.borrow().nodes.values().filter(|n| n.node_id != me).cloned().collect()),
    );
    let repairs = RepairQueue::new();
    let copier = ChunkCopier {
        node_id: node_id.clone(),
        chunks: chunks.clone(),
        meta: meta.clone(),
        client: background.clone(),
        peers: peers.clone(),
    };
    let repairer = Repairer { copier: copier.clone(), state: control.state(), queue: repairs.clone() };
    tokio::spawn(repairs.clone().run(repairer));
    let scrubber = Scrubber::open(&node_id, &config.data_dir, chunks.clone(), repairs.clone(), config.scrub)?;
    tokio::spawn(scrubber.clone().run());
    let data = Arc::new(DataPlane {
        node_id: node_id.clone(),
        chunks,
        meta,
        recovering,
        rebuilding: Arc::new(AtomicBool::new(rebuilding)),
        rebuild_marker,
        sync: Arc::default(),
        gc: Arc::default(),
        audit,
        repairs,
        scrubber,
        started_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
    });
    let (synced_tx, synced_rx) = tokio::sync::mpsc::unbounded_channel();
    let anti_entropy = AntiEntropy::new(&data, copier, control.state(), config.transfer_rate_bytes, synced_tx);
    tokio::spawn(anti_entropy.run(config.anti_entropy_interval));
    tokio::spawn(membership::report_synced_layouts(control.clone(), synced_rx));
    tokio::spawn(membership::rejoin_after_eviction(control.clone()));
    let collector = Collector::new(
        node_id.clone(),
        crate::control::raft_id(&node_id),
        data.meta.clone(),
        background,
        control.state(),
        peers.clone(),
        config.gc,
        data.gc.clone(),
    );
    tokio::spawn(collector.run());
    if let Some(grace) = config.evict_after {
        tokio::spawn(membership::evict_down_nodes(control.clone(), peers.clone(), grace));
    }
    let health = {
        let (control, rebuilding) = (control.clone(), data.rebuilding.clone());
        axum::Router::new().route(crate::rpc::HEALTH_LIVE_PATH, axum::routing::get(|| async { "ok" })).route(
            crate::rpc::HEALTH_READY_PATH,
            axum::routing::get(move || async move {
                if !control.is_initialized() {
                    (http::StatusCode::SERVICE_UNAVAILABLE, "not a member of a cluster yet")
                } else if rebuilding.load(std::sync::atomic::Ordering::Relaxed) {
                    (http::StatusCode::SERVICE_UNAVAILABLE, "rebuilding an emptied data directory")
                } else {
                    (http::StatusCode::OK, "ok")
                }
            }),
        )
    };
    // Health checks answer without the cluster secret; everything else needs it.
    let app = router(data, crate::control::routes(control.clone()), config.secret.clone()).merge(health);
    tracing::info!(%node_id, %rpc_addr, data_dir = %config.data_dir.display(), "storage node listening");
    let server = tokio::spawn(async move {
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, app).with_graceful_shutdown(shutdown).await
    });

    // A bootstrap node that lost its data directory must not start a second cluster: when its
    // seed answers with a cluster, it joins that one instead.
    let seed = config.join.iter().find(|addr| **addr != rpc_addr).cloned();
    let mut bootstrap = config.bootstrap.clone();
    if let (Some(_), Some(seed)) = (&bootstrap, &seed)
        && !control.is_initialized()
        && seed_has_cluster(&client, seed).await
    {
        tracing::warn!(%seed, "--bootstrap given, but the seed belongs to a cluster already: joining it");
        bootstrap = None;
    }
    // Bootstrapping is idempotent: it also finishes a bootstrap a crash interrupted.
    if let Some(settings) = bootstrap {
        control.bootstrap(settings).await?;
        tracing::info!("cluster bootstrapped");
    } else if !control.is_initialized() {
        if let Some(seed) = seed {
            control.join(&seed).await?;
            tracing::info!(%seed, "joined the cluster");
        } else {
            tracing::warn!("this node belongs to no cluster yet: start it with --bootstrap or --join");
        }
    }

    server.await??;
    control.shutdown().await?;
    Ok(())
}

/// Whether the node at `seed` answers with a cluster state that has settings (one attempt).
async fn seed_has_cluster(client: &NodeClient, seed: &str) -> bool {
    let request = crate::control::routes::StateRequest { known_version: 0, wait_ms: 0 };
    let answer =
        client.post_json::<_, crate::control::ClusterState>(seed, crate::control::network::PATH_STATE, &request);
    matches!(tokio::time::timeout(Duration::from_secs(2), answer).await, Ok(Ok(state)) if state.has_settings())
}

/// Reads the node id kept in the data directory, or records the given or a new one; true when
/// the directory had none (a new or emptied data directory).
fn node_identity(data_dir: &Path, requested: Option<&str>, rebuild_marker: &Path) -> anyhow::Result<(String, bool)> {
    let path = data_dir.join("node.json");
    if let Ok(bytes) = std::fs::read(&path) {
        let identity: NodeIdentity = serde_json::from_slice(&bytes).context("reading node.json")?;
        if let Some(requested) = requested {
            anyhow::ensure!(
                requested == identity.node_id,
                "data directory belongs to node {:?}, not {requested:?}",
                identity.node_id
            );
        }
        return Ok((identity.node_id, false));
    }
    let node_id = requested
        .map(str::to_owned)
        .unwrap_or_else(|| format!("node-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]));
    // Marked before the identity is written: a crash in between still finds the marker.
    std::fs::write(rebuild_marker, b"")?;
    let identity = NodeIdentity { format: 1, node_id: node_id.clone() };
    let tmp = data_dir.join("node.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&identity)?)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(data_dir)?.sync_all()?;
    Ok((node_id, true))
}

/// The control plane's transport: the node RPC client.
pub(crate) struct RpcTransport(NodeClient);

impl ControlTransport for RpcTransport {
    async fn post(&self, addr: &str, path: &str, body: Vec<u8>) -> Result<Vec<u8>, TransportError> {
        self.0.post_bytes(addr, path, body).await.map_err(|e| match e {
            RpcError::Remote { addr, code, message } => {
                TransportError::Status { addr, status: code.status().as_u16(), message }
            }
            RpcError::Status { addr, status, body } => TransportError::Status { addr, status, message: body },
            other => TransportError::Unreachable { addr: addr.to_owned(), reason: other.to_string() },
        })
    }
}
