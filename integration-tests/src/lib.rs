//! Test harness: starts real `cairn` processes on loopback in temporary directories, hands out
//! AWS SDK clients for them, and kills or restarts them for fault tests. Every process it
//! starts is stopped when the harness is dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::Deserialize;

pub mod fault;
pub mod history;
pub mod proxy;

/// Marks an extra "argument" that is really an environment variable for `cairn dev`.
const ENV_MARKER: &str = "env:";

/// How long a cluster may take to come up.
pub(crate) const STARTUP_DEADLINE: Duration = Duration::from_secs(180);

/// The part of `cluster.json` the tests use.
#[derive(Clone, Debug, Deserialize)]
pub struct ClusterInfo {
    /// S3 endpoint URL.
    pub s3_endpoint: String,
    /// S3 endpoint URL over HTTPS, when started with TLS.
    #[serde(default)]
    pub s3_tls_endpoint: Option<String>,
    /// Admin endpoint URL.
    pub admin_endpoint: String,
    /// Admin API token.
    pub admin_token: String,
    /// Region.
    pub region: String,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Gateway process id.
    pub gateway_pid: u32,
    /// Storage nodes.
    pub nodes: Vec<NodeInfo>,
}

/// A storage node of the cluster.
#[derive(Clone, Debug, Deserialize)]
pub struct NodeInfo {
    /// Node id.
    pub id: String,
    /// Process id.
    pub pid: u32,
    /// RPC address.
    pub rpc_addr: String,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Command line that starts it again.
    pub argv: Vec<String>,
}

/// The `cairn` executable: `CAIRN_BIN`, or `cairn` next to the test binary's target directory.
pub fn cairn_binary() -> PathBuf {
    if let Ok(path) = std::env::var("CAIRN_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/it-<hash> → target/<profile>/cairn
    let profile_dir = exe.parent().and_then(Path::parent).expect("target profile directory");
    profile_dir.join("cairn")
}

/// A local cluster started with `cairn dev`.
pub struct DevCluster {
    dev: Child,
    dir: tempfile::TempDir,
    /// What `cairn dev` wrote to `cluster.json`.
    pub info: ClusterInfo,
    restarted: Vec<Child>,
    extra_args: Vec<String>,
}

impl DevCluster {
    /// Starts `cairn dev` with `nodes` storage nodes on free ports and waits until it is ready.
    pub fn start(nodes: usize) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("cairn-it-").tempdir()?;
        Self::start_in(dir, nodes, Vec::new())
    }

    /// Like [`DevCluster::start`], with an HTTPS listener too, whose self-signed certificate
    /// (for `localhost` and 127.0.0.1) is [`DevCluster::tls_certificate`].
    pub fn start_with_tls(nodes: usize) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("cairn-it-").tempdir()?;
        let (cert, key) = (dir.path().join("tls-cert.pem"), dir.path().join("tls-key.pem"));
        let status = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
            .args(["-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("running openssl to make a test certificate")?;
        anyhow::ensure!(status.success(), "openssl failed to make a test certificate");
        let args = vec![
            "--s3-tls-port".into(),
            "0".into(),
            "--tls-cert".into(),
            cert.display().to_string(),
            "--tls-key".into(),
            key.display().to_string(),
        ];
        Self::start_in(dir, nodes, args)
    }

    /// Like [`DevCluster::start`], with extra `cairn dev` arguments and environment (which
    /// its children inherit).
    pub fn start_with(nodes: usize, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("cairn-it-").tempdir()?;
        let mut extra = args.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        for (name, value) in env {
            extra.push(format!("{ENV_MARKER}{name}={value}"));
        }
        Self::start_in(dir, nodes, extra)
    }

    /// The PEM certificate of the HTTPS listener (see [`DevCluster::start_with_tls`]).
    pub fn tls_certificate(&self) -> PathBuf {
        self.dir.path().join("tls-cert.pem")
    }

    fn start_in(dir: tempfile::TempDir, nodes: usize, extra_args: Vec<String>) -> anyhow::Result<Self> {
        let dev = spawn_dev(dir.path(), nodes, &extra_args)?;
        let mut cluster = Self { dev, dir, info: placeholder_info(), restarted: Vec::new(), extra_args };
        let cluster_json = cluster.dir.path().join("cluster/cluster.json");
        let deadline = Instant::now() + STARTUP_DEADLINE;
        loop {
            if let Ok(bytes) = std::fs::read(&cluster_json) {
                cluster.info = serde_json::from_slice(&bytes)?;
                return Ok(cluster);
            }
            if let Some(status) = cluster.dev.try_wait()? {
                anyhow::bail!("cairn dev exited with {status}:\n{}", cluster.logs());
            }
            anyhow::ensure!(Instant::now() < deadline, "cairn dev did not come up:\n{}", cluster.logs());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops `cairn dev` with SIGTERM and waits for it; every process it started must be gone.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        kill(Pid::from_raw(self.dev.id() as i32), Signal::SIGTERM)?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.dev.try_wait()?.is_none() {
            anyhow::ensure!(Instant::now() < deadline, "cairn dev did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Starts `cairn dev` again on the same directory (after [`DevCluster::stop`]).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        // cluster.json stays: `cairn dev` reuses the node addresses it records (Raft peers
        // know each other by address). The new run rewrites it with the new process ids.
        let cluster_json = self.dir().join("cluster.json");
        let old_gateway = self.info.gateway_pid;
        self.dev = spawn_dev(self.dir.path(), self.info.nodes.len(), &self.extra_args)?;
        let deadline = Instant::now() + STARTUP_DEADLINE;
        loop {
            let current =
                std::fs::read(&cluster_json).ok().and_then(|b| serde_json::from_slice::<ClusterInfo>(&b).ok());
            if let Some(info) = current.filter(|info| info.gateway_pid != old_gateway) {
                self.info = info;
                return Ok(());
            }
            if let Some(status) = self.dev.try_wait()? {
                anyhow::bail!("cairn dev exited with {status}:\n{}", self.logs());
            }
            anyhow::ensure!(Instant::now() < deadline, "cairn dev did not come up:\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The cluster directory.
    pub fn dir(&self) -> PathBuf {
        self.dir.path().join("cluster")
    }

    /// The logs of every process, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for name in ["dev.log", "cluster/gateway.log", "cluster/node-1.log", "cluster/node-2.log", "cluster/node-3.log"]
        {
            if let Ok(text) = std::fs::read_to_string(self.dir.path().join(name)) {
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                out.push_str(&format!("==> {name} <==\n"));
                for line in tail.into_iter().rev() {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        out
    }

    /// An S3 client signed with the cluster's access key.
    pub fn s3(&self) -> aws_sdk_s3::Client {
        self.s3_with(&self.info.access_key_id, &self.info.secret_access_key)
    }

    /// An S3 client signed with the given credentials.
    pub fn s3_with(&self, access_key_id: &str, secret_access_key: &str) -> aws_sdk_s3::Client {
        s3_client(&self.info.s3_endpoint, &self.info.region, access_key_id, secret_access_key)
    }

    /// Kills storage node `index` (0-based) with SIGKILL and waits until it is gone.
    pub fn kill_node(&mut self, index: usize) {
        let pid = self.info.nodes[index].pid;
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(10);
        // The killed process is dev's (or our) child; wait until its port is free again.
        while Instant::now() < deadline && std::net::TcpListener::bind(&self.info.nodes[index].rpc_addr).is_err() {
            self.reap();
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops storage node `index` with SIGSTOP: it hangs rather than refuses.
    pub fn pause_node(&self, index: usize) {
        let _ = kill(Pid::from_raw(self.info.nodes[index].pid as i32), Signal::SIGSTOP);
    }

    /// Lets a paused storage node run again (SIGCONT).
    pub fn resume_node(&self, index: usize) {
        let _ = kill(Pid::from_raw(self.info.nodes[index].pid as i32), Signal::SIGCONT);
    }

    /// Runs `cairn admin ARGS --json` against this cluster and parses what it prints.
    pub fn admin_json(&self, args: &[&str]) -> anyhow::Result<serde_json::Value> {
        admin_json(self.admin(args))
    }

    /// A `cairn admin ARGS` command aimed at this cluster's admin API.
    pub fn admin(&self, args: &[&str]) -> Command {
        admin_command(&self.info.admin_endpoint, &self.info.admin_token, args)
    }

    /// Starts storage node `index` again with its original command line.
    pub fn restart_node(&mut self, index: usize) -> anyhow::Result<()> {
        let node = &self.info.nodes[index];
        let log =
            std::fs::OpenOptions::new().append(true).create(true).open(self.dir().join(format!("{}.log", node.id)))?;
        let child = Command::new(&node.argv[0])
            .args(&node.argv[1..])
            .envs(self.extra_args.iter().filter_map(|a| a.strip_prefix(ENV_MARKER)?.split_once('=')))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.info.nodes[index].pid = child.id();
        self.restarted.push(child);
        Ok(())
    }

    fn reap(&mut self) {
        for child in &mut self.restarted {
            let _ = child.try_wait();
        }
    }
}

impl Drop for DevCluster {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.dev.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.dev.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.dev.kill();
        let _ = self.dev.wait();
        for child in &mut self.restarted {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Anything dev started that is somehow still alive.
        for pid in self.info.nodes.iter().map(|n| n.pid).chain([self.info.gateway_pid]) {
            if pid != 0 {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
        }
    }
}

fn spawn_dev(dir: &Path, nodes: usize, extra_args: &[String]) -> anyhow::Result<Child> {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("dev.log"))?;
    Command::new(cairn_binary())
        .env("RUST_LIB_BACKTRACE", "0")
        .args(["dev", "--data-dir"])
        .arg(dir.join("cluster"))
        .args(["--nodes", &nodes.to_string(), "--s3-port", "0", "--admin-port", "0"])
        .args(extra_args.iter().filter(|a| !a.starts_with(ENV_MARKER)))
        .envs(extra_args.iter().filter_map(|a| a.strip_prefix(ENV_MARKER)?.split_once('=')))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting cairn dev (build it first: cargo build -p cairn-gateway)")
}

/// Whether a process is still running (a zombie counts as gone).
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

fn placeholder_info() -> ClusterInfo {
    ClusterInfo {
        s3_endpoint: String::new(),
        s3_tls_endpoint: None,
        admin_endpoint: String::new(),
        admin_token: String::new(),
        region: String::new(),
        access_key_id: String::new(),
        secret_access_key: String::new(),
        gateway_pid: 0,
        nodes: Vec::new(),
    }
}

/// An S3 client for an endpoint, path-style, signing with the given key.
pub fn s3_client(endpoint: &str, region: &str, access_key_id: &str, secret_access_key: &str) -> aws_sdk_s3::Client {
    let credentials =
        aws_credential_types::Credentials::new(access_key_id, secret_access_key, None, None, "cairn-tests");
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new(region.to_owned()))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(credentials)
        .http_client(http_client)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn test_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// What each node at `addrs` holds: its digest of every row kind and its chunk count.
pub async fn replica_views(
    client: &cairn_storage_node::rpc::client::NodeClient,
    addrs: &[String],
) -> anyhow::Result<Vec<(Vec<cairn_storage_node::meta_store::RowsDigest>, u64)>> {
    let mut views = Vec::new();
    for addr in addrs {
        let mut digests = Vec::new();
        for kind in cairn_storage_node::manifest::RowKind::ALL {
            digests.push(client.meta_digest(addr, &[kind as u8]).await?);
        }
        views.push((digests, client.status(addr).await?.chunk_count));
    }
    Ok(views)
}

/// Whether the nodes at `addrs` hold the same metadata rows (equal digests for every row kind)
/// and the same number of chunks: with as many nodes as replicas, every replica converged.
pub async fn replicas_converged(
    client: &cairn_storage_node::rpc::client::NodeClient,
    addrs: &[String],
) -> anyhow::Result<bool> {
    let views = replica_views(client, addrs).await?;
    Ok(views.windows(2).all(|pair| pair[0] == pair[1]))
}

impl DevCluster {
    /// A node RPC client signed with the cluster secret, for tests that reach under the gateway.
    pub fn node_client(&self) -> anyhow::Result<cairn_storage_node::rpc::client::NodeClient> {
        node_client_with_secret(&self.dir().join("cluster.secret"))
    }
}

/// A node RPC client signed with the secret in `secret_file`.
pub(crate) fn node_client_with_secret(
    secret_file: &Path,
) -> anyhow::Result<cairn_storage_node::rpc::client::NodeClient> {
    let secret = std::fs::read_to_string(secret_file)?;
    Ok(cairn_storage_node::rpc::client::NodeClient::new(
        cairn_storage_node::rpc::auth::ClusterSecret::new(secret.trim()),
        &cairn_storage_node::rpc::client::ClientConfig::default(),
    ))
}

/// A `cairn admin ARGS` command aimed at the admin API at `url`.
pub fn admin_command(url: &str, token: &str, args: &[&str]) -> Command {
    let mut command = Command::new(cairn_binary());
    command.arg("admin").args(args).env("CAIRN_ADMIN_URL", url).env("CAIRN_ADMIN_TOKEN", token);
    command
}

/// Runs an admin command with `--json` and parses what it prints.
pub fn admin_json(mut command: Command) -> anyhow::Result<serde_json::Value> {
    let output = command.arg("--json").output()?;
    anyhow::ensure!(output.status.success(), "{command:?}: {}", String::from_utf8_lossy(&output.stderr));
    Ok(serde_json::from_slice(&output.stdout)?)
}

impl DevCluster {
    /// Starts one more storage node, `node_id`, belonging to no cluster yet (as for `cairn
    /// admin node add`), with the cluster's environment; returns its index in `info.nodes`.
    pub fn start_node(&mut self, node_id: &str) -> anyhow::Result<usize> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let rpc_addr = listener.local_addr()?.to_string();
        drop(listener);
        let data_dir = self.dir().join(node_id);
        let argv: Vec<String> = vec![
            cairn_binary().display().to_string(),
            "node".into(),
            "--node-id".into(),
            node_id.into(),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--listen".into(),
            rpc_addr.clone(),
            "--secret-file".into(),
            self.dir().join("cluster.secret").display().to_string(),
        ];
        self.info.nodes.push(NodeInfo { id: node_id.into(), pid: 0, rpc_addr, data_dir, argv });
        let index = self.info.nodes.len() - 1;
        self.restart_node(index)?;
        Ok(index)
    }

    /// Starts storage node `index` again with its original command line after its data
    /// directory was deleted.
    pub fn wipe_and_restart_node(&mut self, index: usize) -> anyhow::Result<()> {
        std::fs::remove_dir_all(&self.info.nodes[index].data_dir)?;
        self.restart_node(index)
    }
}

/// How the data the nodes at `addrs` hold departs from the layout: every chunk must be on
/// exactly its partition's replicas, and every bucket shard's rows only on its replicas, the
/// same rows on each. Empty when placement is exact.
pub async fn placement_violations(
    client: &cairn_storage_node::rpc::client::NodeClient,
    addrs: &[String],
) -> anyhow::Result<Vec<String>> {
    use cairn_storage_node::chunk_store::{LeafSummary, leaves_of_partition};
    use cairn_storage_node::control::ClusterState;
    use cairn_storage_node::control::routes::StateRequest;
    use std::collections::{BTreeMap, BTreeSet};

    let request = StateRequest { known_version: 0, wait_ms: 0 };
    let state: ClusterState =
        client.post_json(&addrs[0], cairn_storage_node::control::network::PATH_STATE, &request).await?;
    let mut violations = Vec::new();
    if state.transition.is_some() {
        violations.push(format!("layout {} is still moving", state.layout.version));
    }
    let node_of = |addr: &str| state.nodes.values().find(|n| n.rpc_addr == addr).map(|n| n.node_id.clone());
    let count = state.layout.partition_count;
    let mut holders: BTreeMap<cairn_storage_node::chunk_store::ChunkId, BTreeSet<String>> = BTreeMap::new();
    for addr in addrs {
        let node = node_of(addr).unwrap_or_else(|| addr.clone());
        let partitions = client.chunk_partitions(addr, count).await?;
        for (partition, summary) in partitions.iter().enumerate() {
            if summary.count == 0 {
                continue;
            }
            let leaves = leaves_of_partition(partition as u32, count);
            let summaries: Vec<LeafSummary> = client.chunk_leaves(addr, leaves.clone()).await?;
            for (leaf, summary) in leaves.zip(summaries) {
                if summary.count == 0 {
                    continue;
                }
                for id in client.chunk_leaf(addr, leaf).await? {
                    holders.entry(id).or_default().insert(node.clone());
                }
            }
        }
    }
    for (id, on) in &holders {
        let owners: BTreeSet<String> =
            state.replica_nodes(&id.placement_key()).into_iter().map(|n| n.node_id).collect();
        if *on != owners {
            violations.push(format!("chunk {} is on {on:?}, its replicas are {owners:?}", id.to_hex()));
        }
    }
    for bucket in state.buckets.values() {
        for shard in 0..bucket.index_shards {
            let placement = cairn_storage_node::manifest::metadata_placement_key(bucket.bucket_id, shard);
            let owners: Vec<String> = state.replica_nodes(&placement).into_iter().map(|n| n.node_id).collect();
            for prefix in cairn_storage_node::manifest::shard_prefixes(bucket.bucket_id, shard) {
                let mut owner_digests = Vec::new();
                for addr in addrs {
                    let node = node_of(addr).unwrap_or_else(|| addr.clone());
                    let digest = client.meta_digest(addr, &prefix).await?;
                    if owners.contains(&node) {
                        owner_digests.push(digest);
                    } else if digest.rows > 0 {
                        violations.push(format!("{node} keeps {} rows of {}/{shard}", digest.rows, bucket.name));
                    }
                }
                if owner_digests.windows(2).any(|pair| pair[0] != pair[1]) {
                    violations.push(format!("the replicas of {}/{shard} differ", bucket.name));
                }
            }
        }
    }
    Ok(violations)
}
