//! The `cairn` command: storage node, gateway, local dev cluster and admin client.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use cairn_gateway::admin::cli::{AdminCommand, AdminConnection};
use cairn_gateway::replication::DEFAULT_QUORUM_TIMEOUT_MS;
use cairn_gateway::s3::pending::DEFAULT_UPLOAD_LEASE_SECS;
use cairn_gateway::{dev, read_secret_file, server};
use cairn_storage_node::anti_entropy::{DEFAULT_ANTI_ENTROPY_INTERVAL_MS, DEFAULT_TRANSFER_RATE_BYTES};
use cairn_storage_node::control::ClusterSettings;
use cairn_storage_node::failure_detector::{
    DEFAULT_DOWN_AFTER, DEFAULT_PROBE_INTERVAL_MS, DEFAULT_PROBE_TIMEOUT_MS, DEFAULT_SUSPECT_AFTER, DetectorConfig,
};
use cairn_storage_node::gc::{DEFAULT_GC_GRACE_SECS, DEFAULT_GC_INTERVAL_MS, DEFAULT_MULTIPART_EXPIRY_SECS, GcConfig};
use cairn_storage_node::node::{self, DEFAULT_RESERVE_BYTES};
use cairn_storage_node::placement::{DEFAULT_PARTITION_COUNT, DEFAULT_REPLICATION_FACTOR};
use cairn_storage_node::rpc::auth::ClusterSecret;
use cairn_storage_node::scrubber::{DEFAULT_SCRUB_PERIOD_SECS, DEFAULT_SCRUB_RATE_BYTES, ScrubConfig};
use clap::{Args, Parser, Subcommand};

/// Default chunk size of a new cluster.
const DEFAULT_CHUNK_SIZE_BYTES: u64 = 4 * 1024 * 1024;
/// How long a server-side copy runs before its `200 OK` is sent early (2 s: well inside any
/// client's or proxy's idle timeout, long enough that most copies answer with exact statuses).
const DEFAULT_KEEPALIVE_AFTER_MS: u64 = 2_000;

#[derive(Parser)]
#[command(name = "cairn", version, about = "Cairn: an S3-compatible object store")]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Run a storage node.
    Node(NodeArgs),
    /// Run an S3 gateway.
    Gateway(GatewayArgs),
    /// Run a local cluster: N storage nodes and a gateway, as child processes.
    Dev(DevArgs),
    /// Administer a running cluster through a gateway's admin API.
    Admin {
        #[command(flatten)]
        connection: AdminConnection,
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Args)]
struct SecretArgs {
    /// File holding the cluster secret.
    #[arg(long, env = "CAIRN_SECRET_FILE")]
    secret_file: Option<PathBuf>,
    /// The cluster secret itself (prefer --secret-file).
    #[arg(long, env = "CAIRN_CLUSTER_SECRET", hide_env_values = true)]
    cluster_secret: Option<String>,
}

impl SecretArgs {
    fn load(&self) -> anyhow::Result<ClusterSecret> {
        match (&self.secret_file, &self.cluster_secret) {
            (Some(path), _) => Ok(ClusterSecret::new(read_secret_file(path)?)),
            (None, Some(secret)) if !secret.is_empty() => Ok(ClusterSecret::new(secret)),
            _ => anyhow::bail!("a cluster secret is required: --secret-file or CAIRN_CLUSTER_SECRET"),
        }
    }
}

/// Nodes reached at another address than the one they advertise.
#[derive(Args)]
struct RouteArgs {
    /// Reach the node advertised at ADVERTISED through ACTUAL (a NAT or port forward), as
    /// ADVERTISED=ACTUAL; repeat or separate with commas.
    #[arg(long = "node-route", env = "CAIRN_NODE_ROUTES", value_delimiter = ',')]
    node_routes: Vec<String>,
}

impl RouteArgs {
    fn load(&self) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
        cairn_storage_node::rpc::client::parse_routes(&self.node_routes).map_err(anyhow::Error::msg)
    }
}

#[derive(Args)]
struct NodeArgs {
    /// TOML file with any of these options (names with underscores).
    #[arg(long, env = "CAIRN_CONFIG")]
    config: Option<PathBuf>,
    /// Directory for chunks, metadata and the control-plane log.
    #[arg(long, env = "CAIRN_DATA_DIR")]
    data_dir: PathBuf,
    /// Directory for the metadata rows, the control-plane log and the node's identity, when
    /// they should live apart from the chunks (defaults to the data directory).
    #[arg(long, env = "CAIRN_METADATA_DIR")]
    metadata_dir: Option<PathBuf>,
    /// Zones to spread a StatefulSet's nodes over, comma separated: a node whose id ends in
    /// `-N` takes entry N modulo their number (overrides --zone).
    #[arg(long, env = "CAIRN_ZONE_LIST", value_delimiter = ',')]
    zone_list: Vec<String>,
    /// Address the node RPC listens on.
    #[arg(long, env = "CAIRN_LISTEN", default_value = "127.0.0.1:7000")]
    listen: SocketAddr,
    /// Address others reach this node at (defaults to the listen address).
    #[arg(long, env = "CAIRN_ADVERTISE")]
    advertise: Option<String>,
    /// Stable node id (generated on first start when absent).
    #[arg(long, env = "CAIRN_NODE_ID")]
    node_id: Option<String>,
    /// Failure domain of this node.
    #[arg(long, env = "CAIRN_ZONE", default_value = "default")]
    zone: String,
    /// Relative share of data this node holds.
    #[arg(long, env = "CAIRN_CAPACITY_WEIGHT", default_value_t = 100)]
    capacity_weight: u32,
    /// Free bytes kept in reserve; writes are refused below it.
    #[arg(long, env = "CAIRN_RESERVE_BYTES", default_value_t = DEFAULT_RESERVE_BYTES)]
    reserve_bytes: u64,
    #[command(flatten)]
    secret: SecretArgs,
    #[command(flatten)]
    routes: RouteArgs,
    #[command(flatten)]
    probes: ProbeArgs,
    /// Milliseconds between two anti-entropy rounds (catching up on missed writes).
    #[arg(long, env = "CAIRN_ANTI_ENTROPY_INTERVAL_MS", default_value_t = DEFAULT_ANTI_ENTROPY_INTERVAL_MS)]
    anti_entropy_interval_ms: u64,
    /// Scrubber read rate limit in MiB/s (0: no limit).
    #[arg(long, env = "CAIRN_SCRUB_RATE_MIB", default_value_t = DEFAULT_SCRUB_RATE_BYTES / (1024 * 1024))]
    scrub_rate_mib: u64,
    /// Seconds from the start of one scrub pass to the start of the next.
    #[arg(long, env = "CAIRN_SCRUB_PERIOD_SECS", default_value_t = DEFAULT_SCRUB_PERIOD_SECS)]
    scrub_period_secs: u64,
    /// Bound on chunk bytes pulled per second by anti-entropy (layout moves, catch-up), in
    /// MiB/s (0: no bound).
    #[arg(long, env = "CAIRN_TRANSFER_RATE_MIB", default_value_t = DEFAULT_TRANSFER_RATE_BYTES / (1024 * 1024))]
    transfer_rate_mib: u64,
    /// Seconds a row must be old before the chunks it frees are garbage-collected (and
    /// tombstones purged).
    #[arg(long, env = "CAIRN_GC_GRACE_SECS", default_value_t = DEFAULT_GC_GRACE_SECS)]
    gc_grace_secs: u64,
    /// Seconds after which an open multipart upload is aborted and its parts collected (0:
    /// never).
    #[arg(long, env = "CAIRN_MULTIPART_EXPIRY_SECS", default_value_t = DEFAULT_MULTIPART_EXPIRY_SECS)]
    multipart_expiry_secs: u64,
    /// Milliseconds between two garbage-collection passes.
    #[arg(long, env = "CAIRN_GC_INTERVAL_MS", default_value_t = DEFAULT_GC_INTERVAL_MS)]
    gc_interval_ms: u64,
    /// Evict a node from the layout after it stayed down this many seconds (0: never; this
    /// node acts on it while it leads the control plane).
    #[arg(long, env = "CAIRN_EVICT_AFTER_SECS", default_value_t = 0)]
    evict_after_secs: u64,
    /// Start a new cluster if this node has none.
    #[arg(long, env = "CAIRN_BOOTSTRAP")]
    bootstrap: bool,
    /// Start a new cluster if this node has none and its --node-id is this one, so that every
    /// node can be given the same arguments (a Kubernetes StatefulSet).
    #[arg(long, env = "CAIRN_BOOTSTRAP_NODE")]
    bootstrap_node: Option<String>,
    /// Node addresses to join the cluster through if this node has none, comma separated: the
    /// first that is not this node's own address is used (and a bootstrapping node asks it
    /// whether a cluster exists already).
    #[arg(long, env = "CAIRN_JOIN", value_delimiter = ',')]
    join: Vec<String>,
    /// Replication factor of a new cluster.
    #[arg(long, env = "CAIRN_REPLICATION_FACTOR", default_value_t = DEFAULT_REPLICATION_FACTOR)]
    replication_factor: u8,
    /// Partition count of a new cluster (a power of two).
    #[arg(long, env = "CAIRN_PARTITIONS", default_value_t = DEFAULT_PARTITION_COUNT)]
    partitions: u32,
    /// Chunk size of a new cluster.
    #[arg(long, env = "CAIRN_CHUNK_SIZE_BYTES", default_value_t = DEFAULT_CHUNK_SIZE_BYTES)]
    chunk_size_bytes: u64,
    /// Exit when the parent process exits (used by `cairn dev`).
    #[arg(long)]
    exit_with_parent: bool,
}

#[derive(Args)]
struct GatewayArgs {
    /// TOML file with any of these options (names with underscores).
    #[arg(long, env = "CAIRN_CONFIG")]
    config: Option<PathBuf>,
    /// Address of the S3 API.
    #[arg(long, env = "CAIRN_S3_LISTEN", default_value = "127.0.0.1:9000")]
    s3_listen: SocketAddr,
    /// Address of the admin API, health checks and metrics.
    #[arg(long, env = "CAIRN_ADMIN_LISTEN", default_value = "127.0.0.1:9001")]
    admin_listen: SocketAddr,
    /// Storage node RPC addresses to learn the cluster from, comma separated.
    #[arg(long, env = "CAIRN_NODES", value_delimiter = ',', required = true)]
    nodes: Vec<String>,
    #[command(flatten)]
    secret: SecretArgs,
    #[command(flatten)]
    routes: RouteArgs,
    /// File holding the admin API token.
    #[arg(long, env = "CAIRN_ADMIN_TOKEN_FILE")]
    admin_token_file: Option<PathBuf>,
    /// File holding the access key id of a root key this gateway makes sure exists.
    #[arg(long, env = "CAIRN_ROOT_ACCESS_KEY_ID_FILE", requires = "root_secret_access_key_file")]
    root_access_key_id_file: Option<PathBuf>,
    /// File holding that root key's secret access key.
    #[arg(long, env = "CAIRN_ROOT_SECRET_ACCESS_KEY_FILE", requires = "root_access_key_id_file")]
    root_secret_access_key_file: Option<PathBuf>,
    /// Region reported to S3 clients.
    #[arg(long, env = "CAIRN_REGION", default_value = "us-east-1")]
    region: String,
    /// Base domains for virtual-hosted-style requests (`BUCKET.DOMAIN`), comma separated.
    #[arg(long, env = "CAIRN_S3_DOMAIN", value_delimiter = ',')]
    s3_domain: Vec<String>,
    /// URL clients reach the S3 API at through a reverse proxy (`https://s3.example.com`):
    /// signatures made for its host verify even if the proxy rewrites `Host`.
    #[arg(long, env = "CAIRN_PUBLIC_ENDPOINT")]
    public_endpoint: Option<String>,
    /// Milliseconds a CopyObject or UploadPartCopy may run before `200 OK` is sent ahead of its
    /// outcome and whitespace keeps the connection alive (0: at once).
    #[arg(long, env = "CAIRN_S3_KEEPALIVE_AFTER_MS", default_value_t = DEFAULT_KEEPALIVE_AFTER_MS)]
    s3_keepalive_after_ms: u64,
    /// Seconds a lease on the chunks of a body being written lasts unless renewed (renewed every
    /// quarter of it while the request runs); chunks of a gateway that died are collected once
    /// it runs out.
    #[arg(long, env = "CAIRN_UPLOAD_LEASE_SECS", default_value_t = DEFAULT_UPLOAD_LEASE_SECS)]
    upload_lease_secs: u64,
    /// Milliseconds a request waits for its quorum of replicas before failing with 503.
    #[arg(long, env = "CAIRN_QUORUM_TIMEOUT_MS", default_value_t = DEFAULT_QUORUM_TIMEOUT_MS)]
    quorum_timeout_ms: u64,
    #[command(flatten)]
    probes: ProbeArgs,
    #[command(flatten)]
    tls: TlsArgs,
    /// Address of an HTTPS listener for the S3 API (needs --tls-cert and --tls-key).
    #[arg(long, env = "CAIRN_S3_TLS_LISTEN")]
    s3_tls_listen: Option<SocketAddr>,
    /// Exit when the parent process exits (used by `cairn dev`).
    #[arg(long)]
    exit_with_parent: bool,
}

/// How nodes are probed (by gateways and by their peers).
#[derive(Args)]
struct ProbeArgs {
    /// Milliseconds between two probes of a node.
    #[arg(long, env = "CAIRN_PROBE_INTERVAL_MS", default_value_t = DEFAULT_PROBE_INTERVAL_MS)]
    probe_interval_ms: u64,
    /// Milliseconds a probe may take.
    #[arg(long, env = "CAIRN_PROBE_TIMEOUT_MS", default_value_t = DEFAULT_PROBE_TIMEOUT_MS)]
    probe_timeout_ms: u64,
    /// Failed probes in a row that make a node suspect.
    #[arg(long, env = "CAIRN_SUSPECT_AFTER", default_value_t = DEFAULT_SUSPECT_AFTER)]
    suspect_after: u32,
    /// Failed probes in a row that make a node down (it is then skipped, not waited on).
    #[arg(long, env = "CAIRN_DOWN_AFTER", default_value_t = DEFAULT_DOWN_AFTER)]
    down_after: u32,
}

impl ProbeArgs {
    fn detector(&self) -> DetectorConfig {
        DetectorConfig {
            probe_interval: Duration::from_millis(self.probe_interval_ms.max(1)),
            probe_timeout: Duration::from_millis(self.probe_timeout_ms),
            suspect_after: self.suspect_after.max(1),
            down_after: self.down_after.max(self.suspect_after).max(1),
        }
    }
}

#[derive(Args)]
struct TlsArgs {
    /// PEM certificate chain of the HTTPS listener.
    #[arg(long, env = "CAIRN_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of the HTTPS listener.
    #[arg(long, env = "CAIRN_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

#[derive(Args)]
struct DevArgs {
    /// Directory for the whole local cluster (kept across runs).
    #[arg(long, default_value = "./cairn-dev")]
    data_dir: PathBuf,
    /// Number of storage nodes.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Port of the S3 API (0 picks a free one).
    #[arg(long, default_value_t = 9000)]
    s3_port: u16,
    /// Port of the admin API (0 picks a free one).
    #[arg(long, default_value_t = 9001)]
    admin_port: u16,
    /// Write shell exports of the endpoint and credentials to this file.
    #[arg(long)]
    env_file: Option<PathBuf>,
    /// Also serve S3 over HTTPS on this port (0 picks a free one), with --tls-cert and --tls-key.
    #[arg(long)]
    s3_tls_port: Option<u16>,
    #[command(flatten)]
    tls: TlsArgs,
}

/// Turns a TOML config file into `--name value` arguments for every option the command line
/// does not give itself, so flags given on the command line win.
fn args_with_config_file() -> anyhow::Result<Vec<String>> {
    let args: Vec<String> = std::env::args().collect();
    let config = args
        .iter()
        .position(|a| a == "--config")
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| args.iter().find_map(|a| a.strip_prefix("--config=").map(str::to_owned)))
        .or_else(|| std::env::var("CAIRN_CONFIG").ok());
    let Some(path) = config else { return Ok(args) };
    if args.len() < 2 || !matches!(args[1].as_str(), "node" | "gateway") {
        return Ok(args);
    }
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let table: toml::Table = text.parse().with_context(|| format!("parsing {path}"))?;
    let mut out = args[..2].to_vec();
    for (name, value) in table {
        let flag = format!("--{}", name.replace('_', "-"));
        let given = args[2..].iter().any(|a| *a == flag || a.starts_with(&format!("{flag}=")));
        if given || name == "config" {
            continue;
        }
        match value {
            toml::Value::Boolean(true) => out.push(flag),
            toml::Value::Boolean(false) => {}
            toml::Value::String(s) => out.extend([flag, s]),
            toml::Value::Array(items) => {
                let joined: Vec<String> =
                    items.iter().map(|v| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())).collect();
                out.extend([flag, joined.join(",")]);
            }
            other => out.extend([flag, other.to_string()]),
        }
    }
    out.extend_from_slice(&args[2..]);
    Ok(out)
}

fn main() -> anyhow::Result<()> {
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CAIRN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn")),
        )
        .with_writer(std::io::stderr);
    // `CAIRN_LOG_FORMAT=json`: one JSON object per line, with the fields of the enclosing spans
    // (an S3 request's id and operation), for log collectors.
    match std::env::var("CAIRN_LOG_FORMAT").as_deref() {
        Ok("json") => logs.json().with_current_span(true).with_span_list(false).init(),
        _ => logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init(),
    }
    let cli = Cli::parse_from(args_with_config_file()?);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async_main(cli))
}

async fn async_main(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Commands::Node(args) => {
            let bootstrap = args.bootstrap || (args.bootstrap_node.is_some() && args.bootstrap_node == args.node_id);
            let zone = zone_of(args.node_id.as_deref(), &args.zone_list).unwrap_or(args.zone);
            let config = node::NodeConfig {
                node_id: args.node_id,
                data_dir: args.data_dir,
                metadata_dir: args.metadata_dir,
                listen: args.listen,
                advertise: args.advertise,
                zone,
                capacity_weight: args.capacity_weight,
                reserve_bytes: args.reserve_bytes,
                secret: args.secret.load()?,
                bootstrap: bootstrap.then_some(ClusterSettings {
                    partition_count: args.partitions,
                    replication_factor: args.replication_factor,
                    chunk_size_bytes: args.chunk_size_bytes,
                }),
                join: args.join,
                routes: args.routes.load()?,
                detector: args.probes.detector(),
                anti_entropy_interval: Duration::from_millis(args.anti_entropy_interval_ms.max(1)),
                transfer_rate_bytes: args.transfer_rate_mib.saturating_mul(1024 * 1024),
                evict_after: (args.evict_after_secs > 0).then(|| Duration::from_secs(args.evict_after_secs)),
                gc: GcConfig {
                    grace: Duration::from_secs(args.gc_grace_secs),
                    interval: Duration::from_millis(args.gc_interval_ms.max(1)),
                    multipart_expiry: (args.multipart_expiry_secs > 0)
                        .then(|| Duration::from_secs(args.multipart_expiry_secs)),
                },
                scrub: ScrubConfig {
                    rate_bytes_per_sec: args.scrub_rate_mib.saturating_mul(1024 * 1024),
                    period: Duration::from_secs(args.scrub_period_secs),
                },
            };
            node::run(config, stop_signal(args.exit_with_parent)).await
        }
        Commands::Gateway(args) => {
            let admin_token = match (&args.admin_token_file, std::env::var("CAIRN_ADMIN_TOKEN")) {
                (Some(path), _) => read_secret_file(path)?,
                (None, Ok(token)) if !token.is_empty() => token,
                _ => anyhow::bail!("an admin token is required: --admin-token-file or CAIRN_ADMIN_TOKEN"),
            };
            let config = server::GatewayConfig {
                s3_listen: args.s3_listen,
                admin_listen: args.admin_listen,
                seeds: args.nodes,
                secret: args.secret.load()?,
                region: args.region,
                domains: args.s3_domain,
                public_endpoint: args
                    .public_endpoint
                    .as_deref()
                    .map(cairn_gateway::s3::PublicEndpoint::parse)
                    .transpose()
                    .map_err(anyhow::Error::msg)?,
                keepalive_after: Duration::from_millis(args.s3_keepalive_after_ms),
                upload_lease: Duration::from_secs(args.upload_lease_secs.max(1)),
                quorum_timeout: Duration::from_millis(args.quorum_timeout_ms),
                detector: args.probes.detector(),
                routes: args.routes.load()?,
                admin_token,
                root_key: match (&args.root_access_key_id_file, &args.root_secret_access_key_file) {
                    (Some(id), Some(secret)) => Some((read_secret_file(id)?, read_secret_file(secret)?)),
                    _ => None,
                },
                tls: match (args.s3_tls_listen, args.tls.tls_cert, args.tls.tls_key) {
                    (Some(listen), Some(cert_file), Some(key_file)) => {
                        Some(server::TlsListenerConfig { listen, cert_file, key_file })
                    }
                    (None, None, None) => None,
                    _ => anyhow::bail!("--s3-tls-listen, --tls-cert and --tls-key go together"),
                },
            };
            server::run(config, stop_signal(args.exit_with_parent)).await
        }
        Commands::Dev(args) => {
            dev::run(dev::DevConfig {
                data_dir: args.data_dir,
                nodes: args.nodes,
                s3_port: args.s3_port,
                admin_port: args.admin_port,
                env_file: args.env_file,
                binary: std::env::current_exe()?,
                tls: match (args.s3_tls_port, args.tls.tls_cert, args.tls.tls_key) {
                    (Some(port), Some(cert_file), Some(key_file)) => Some(dev::DevTls { port, cert_file, key_file }),
                    (None, None, None) => None,
                    _ => anyhow::bail!("--s3-tls-port, --tls-cert and --tls-key go together"),
                },
            })
            .await
        }
        Commands::Admin { connection, command } => cairn_gateway::admin::cli::run(connection, command).await,
    }
}

/// The zone of node `node_id` in a StatefulSet spread over `zones`: entry N (modulo their
/// number) for an id ending in `-N`.
fn zone_of(node_id: Option<&str>, zones: &[String]) -> Option<String> {
    let ordinal: usize = node_id?.rsplit_once('-')?.1.parse().ok()?;
    zones.get(ordinal.checked_rem(zones.len())?).cloned()
}

/// Resolves on Ctrl-C or SIGTERM, or when the parent exits if asked to follow it.
async fn stop_signal(exit_with_parent: bool) {
    if exit_with_parent {
        tokio::select! {
            _ = cairn_gateway::shutdown_signal() => {}
            _ = cairn_gateway::parent_exit() => {}
        }
    } else {
        cairn_gateway::shutdown_signal().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statefulset_ordinals_map_to_zones_round_robin() {
        let zones: Vec<String> = ["a", "b", "c"].map(str::to_owned).to_vec();
        assert_eq!(zone_of(Some("cairn-node-0"), &zones).as_deref(), Some("a"));
        assert_eq!(zone_of(Some("cairn-node-4"), &zones).as_deref(), Some("b"));
        assert_eq!(zone_of(Some("node"), &zones), None);
        assert_eq!(zone_of(Some("cairn-node-1"), &[]), None);
        assert_eq!(zone_of(None, &zones), None);
    }
}
