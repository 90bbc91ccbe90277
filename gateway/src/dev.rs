//! `cairn dev`: a whole local cluster (storage nodes and a gateway as child processes) in one
//! directory, kept across runs.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use cairn_storage_node::control::{ClusterState, Command, CommandResult};
use cairn_storage_node::rpc::auth::ClusterSecret;
use cairn_storage_node::rpc::client::{ClientConfig, NodeClient};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use tokio::process::{Child, Command as Process};

/// How long `cairn dev` waits for the cluster to form and the gateway to be ready.
const STARTUP_DEADLINE_SECS: u64 = 120;
/// How long a child gets to stop after SIGTERM before it is killed.
const STOP_GRACE_SECS: u64 = 10;
/// Region of the local cluster.
const DEV_REGION: &str = "us-east-1";

/// What `cairn dev` was asked to run.
#[derive(Clone, Debug)]
pub struct DevConfig {
    /// Directory of the cluster.
    pub data_dir: PathBuf,
    /// Number of storage nodes.
    pub nodes: usize,
    /// Port of the S3 API (0: any free port).
    pub s3_port: u16,
    /// Port of the admin API (0: any free port).
    pub admin_port: u16,
    /// Where to write shell exports.
    pub env_file: Option<PathBuf>,
    /// The `cairn` executable to start children from.
    pub binary: PathBuf,
    /// An HTTPS listener for the S3 API besides the plain one.
    pub tls: Option<DevTls>,
}

/// The HTTPS listener of a local cluster.
#[derive(Clone, Debug)]
pub struct DevTls {
    /// Port (0: any free port).
    pub port: u16,
    /// PEM certificate chain.
    pub cert_file: PathBuf,
    /// PEM private key.
    pub key_file: PathBuf,
}

/// `DIR/cluster.json`: how to reach and restart every part of the local cluster.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClusterFile {
    /// S3 endpoint URL.
    pub s3_endpoint: String,
    /// S3 endpoint URL over HTTPS, when the cluster has a TLS listener.
    #[serde(default)]
    pub s3_tls_endpoint: Option<String>,
    /// Admin endpoint URL.
    pub admin_endpoint: String,
    /// Admin API bearer token.
    pub admin_token: String,
    /// Region to sign with.
    pub region: String,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Process id of the gateway.
    pub gateway_pid: u32,
    /// Exact command line of the gateway.
    pub gateway_argv: Vec<String>,
    /// The storage nodes.
    pub nodes: Vec<NodeEntry>,
}

/// One storage node of the local cluster.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeEntry {
    /// Node id.
    pub id: String,
    /// Process id.
    pub pid: u32,
    /// RPC address.
    pub rpc_addr: String,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Exact command line that starts it again.
    pub argv: Vec<String>,
}

/// Runs the local cluster until Ctrl-C or SIGTERM, then stops every child.
pub async fn run(config: DevConfig) -> anyhow::Result<()> {
    anyhow::ensure!(config.nodes >= 1, "--nodes must be at least 1");
    std::fs::create_dir_all(&config.data_dir)?;
    let dir = config.data_dir.canonicalize()?;
    let previous: Option<ClusterFile> =
        std::fs::read(dir.join("cluster.json")).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok());
    let secret_file = dir.join("cluster.secret");
    let token_file = dir.join("admin.token");
    ensure_secret_file(&secret_file)?;
    ensure_secret_file(&token_file)?;
    let secret = ClusterSecret::new(crate::read_secret_file(&secret_file)?);
    let admin_token = crate::read_secret_file(&token_file)?;
    let client = NodeClient::new(secret, &ClientConfig::default());

    let mut children: Vec<Child> = Vec::new();
    let result = start(&config, &dir, previous, &client, &secret_file, &token_file, admin_token, &mut children).await;
    let outcome = match result {
        Ok(()) => {
            crate::shutdown_signal().await;
            Ok(())
        }
        Err(e) => Err(e),
    };
    stop_children(&mut children).await;
    outcome
}

#[allow(clippy::too_many_arguments)]
async fn start(
    config: &DevConfig,
    dir: &Path,
    previous: Option<ClusterFile>,
    client: &NodeClient,
    secret_file: &Path,
    token_file: &Path,
    admin_token: String,
    children: &mut Vec<Child>,
) -> anyhow::Result<()> {
    let binary = config.binary.display().to_string();
    let mut nodes = Vec::new();
    let mut addrs = Vec::new();
    for i in 1..=config.nodes {
        let id = format!("node-{i}");
        let old_addr = previous.as_ref().and_then(|p| p.nodes.iter().find(|n| n.id == id)).map(|n| n.rpc_addr.clone());
        // Raft peers know each other by address: a restarted cluster keeps its node ports.
        addrs.push(match old_addr {
            Some(addr) if port_is_free(&addr) => addr,
            Some(addr) => {
                tracing::warn!(node = %id, %addr, "the node's previous address is taken; it gets a new one");
                format!("127.0.0.1:{}", free_port()?)
            }
            None => format!("127.0.0.1:{}", free_port()?),
        });
    }
    for (i, rpc_addr) in (1..=config.nodes).zip(addrs.clone()) {
        let id = format!("node-{i}");
        let data_dir = dir.join(&id);
        let mut argv = vec![
            binary.clone(),
            "node".into(),
            "--node-id".into(),
            id.clone(),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--listen".into(),
            rpc_addr.clone(),
            "--secret-file".into(),
            secret_file.display().to_string(),
        ];
        match nodes.first() {
            None => {
                argv.push("--bootstrap".into());
                // If node-1 lost its data directory, node-2 knows the cluster it must rejoin.
                if let Some(seed) = addrs.get(1) {
                    argv.extend(["--join".into(), seed.clone()]);
                }
            }
            Some(NodeEntry { rpc_addr: seed, .. }) => argv.extend(["--join".into(), seed.clone()]),
        }
        let child = spawn(&argv, &dir.join(format!("{id}.log")))?;
        let pid = child.id().unwrap_or(0);
        children.push(child);
        nodes.push(NodeEntry { id, pid, rpc_addr, data_dir, argv });
    }

    let seed = nodes[0].rpc_addr.clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(STARTUP_DEADLINE_SECS);
    let state = wait_for(deadline, "the storage nodes to form a cluster", || async {
        let state: ClusterState = client
            .post_json(&seed, "/control/state", &serde_json::json!({"known_version": 0, "wait_ms": 0}))
            .await
            .ok()?;
        (state.layout.nodes.len() == config.nodes).then_some(state)
    })
    .await?;

    let (access_key_id, secret_access_key) =
        match previous.as_ref().filter(|p| state.access_keys.contains_key(&p.access_key_id)) {
            Some(p) => (p.access_key_id.clone(), p.secret_access_key.clone()),
            None => {
                let key = crate::admin::new_access_key("dev");
                let result: CommandResult =
                    client.post_json(&seed, "/control/command", &Command::PutAccessKey(key.clone())).await?;
                anyhow::ensure!(result == CommandResult::Ok, "creating the access key failed: {result:?}");
                (key.key_id, key.secret)
            }
        };

    let s3_port = if config.s3_port == 0 { free_port()? } else { config.s3_port };
    let admin_port = if config.admin_port == 0 { free_port()? } else { config.admin_port };
    let node_addrs: Vec<String> = nodes.iter().map(|n| n.rpc_addr.clone()).collect();
    let mut gateway_argv = vec![
        binary,
        "gateway".into(),
        "--s3-listen".into(),
        format!("127.0.0.1:{s3_port}"),
        "--admin-listen".into(),
        format!("127.0.0.1:{admin_port}"),
        "--nodes".into(),
        node_addrs.join(","),
        "--secret-file".into(),
        secret_file.display().to_string(),
        "--admin-token-file".into(),
        token_file.display().to_string(),
        "--region".into(),
        DEV_REGION.into(),
    ];
    let s3_tls_endpoint = match &config.tls {
        Some(tls) => {
            let port = if tls.port == 0 { free_port()? } else { tls.port };
            gateway_argv.extend([
                "--s3-tls-listen".into(),
                format!("127.0.0.1:{port}"),
                "--tls-cert".into(),
                absolute(&tls.cert_file)?.display().to_string(),
                "--tls-key".into(),
                absolute(&tls.key_file)?.display().to_string(),
            ]);
            Some(format!("https://localhost:{port}"))
        }
        None => None,
    };
    let gateway = spawn(&gateway_argv, &dir.join("gateway.log"))?;
    let gateway_pid = gateway.id().unwrap_or(0);
    children.push(gateway);
    let admin_endpoint = format!("http://127.0.0.1:{admin_port}");
    let http: hyper_util::client::legacy::Client<_, http_body_util::Empty<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(hyper_util::client::legacy::connect::HttpConnector::new());
    let ready_url: http::Uri = format!("{admin_endpoint}/health/ready").parse()?;
    wait_for(deadline, "the gateway to be ready", || async {
        let response = http.get(ready_url.clone()).await.ok()?;
        response.status().is_success().then_some(())
    })
    .await?;

    let file = ClusterFile {
        s3_endpoint: format!("http://127.0.0.1:{s3_port}"),
        s3_tls_endpoint,
        admin_endpoint,
        admin_token,
        region: DEV_REGION.into(),
        access_key_id,
        secret_access_key,
        gateway_pid,
        gateway_argv,
        nodes,
    };
    write_atomically(&dir.join("cluster.json"), &serde_json::to_vec_pretty(&file)?)?;
    if let Some(env_file) = &config.env_file {
        let exports = format!(
            "export AWS_ENDPOINT_URL={}\nexport AWS_ACCESS_KEY_ID={}\nexport AWS_SECRET_ACCESS_KEY={}\nexport AWS_REGION={}\nexport CAIRN_ADMIN_URL={}\nexport CAIRN_ADMIN_TOKEN={}\n",
            file.s3_endpoint,
            file.access_key_id,
            file.secret_access_key,
            file.region,
            file.admin_endpoint,
            file.admin_token
        );
        write_atomically(env_file, exports.as_bytes())?;
    }
    #[allow(clippy::print_stdout)]
    {
        println!("Cairn is running: {} storage nodes and a gateway in {}", file.nodes.len(), dir.display());
        println!("  S3 endpoint:       {}", file.s3_endpoint);
        if let Some(endpoint) = &file.s3_tls_endpoint {
            println!("  S3 over HTTPS:     {endpoint}");
        }
        println!("  region:            {}", file.region);
        println!("  access key id:     {}", file.access_key_id);
        println!("  secret access key: {}", file.secret_access_key);
        println!("  admin endpoint:    {}", file.admin_endpoint);
        println!("  admin token:       {}", file.admin_token);
        println!("  web console:       {}/console (log in with the admin token)", file.admin_endpoint);
        println!("Press Ctrl-C to stop.");
    }
    Ok(())
}

fn absolute(path: &std::path::Path) -> anyhow::Result<PathBuf> {
    Ok(if path.is_absolute() { path.to_path_buf() } else { std::env::current_dir()?.join(path) })
}

async fn wait_for<T, F, Fut>(deadline: tokio::time::Instant, what: &str, mut probe: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    loop {
        if let Some(value) = probe().await {
            return Ok(value);
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn spawn(argv: &[String], log: &Path) -> anyhow::Result<Child> {
    let log_file = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
    let child = Process::new(&argv[0])
        .args(&argv[1..])
        .arg("--exit-with-parent")
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .spawn()
        .with_context(|| format!("starting {}", argv.join(" ")))?;
    Ok(child)
}

async fn stop_children(children: &mut [Child]) {
    for child in children.iter() {
        if let Some(pid) = child.id() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
    }
    for child in children.iter_mut() {
        if tokio::time::timeout(Duration::from_secs(STOP_GRACE_SECS), child.wait()).await.is_err() {
            let _ = child.kill().await;
        }
    }
}

fn ensure_secret_file(path: &Path) -> anyhow::Result<()> {
    if !path.exists() {
        write_atomically(path, crate::random_string(48, b"abcdefghijklmnopqrstuvwxyz0123456789").as_bytes())?;
    }
    Ok(())
}

/// Writes a file readable by its owner only (every file `cairn dev` writes holds a secret).
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn port_is_free(addr: &str) -> bool {
    std::net::TcpListener::bind(addr).is_ok()
}
