//! A cluster wired for network faults: storage nodes and gateways as separate `cairn`
//! processes, where every connection from one process to a node goes through its own
//! [`Proxy`] (nodes and gateways are told with `--node-route`), so a test can cut any link in
//! either direction, and kill or pause (SIGSTOP) any process.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::proxy::Proxy;
use crate::{STARTUP_DEADLINE, cairn_binary, s3_client};

/// Which process a link starts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// Storage node `i` (0-based).
    Node(usize),
    /// Gateway `i` (0-based).
    Gateway(usize),
}

/// A fault-injection cluster; every process and proxy stops when it is dropped.
pub struct FaultCluster {
    dir: tempfile::TempDir,
    runtime: Option<tokio::runtime::Runtime>,
    /// Every node's advertised (and listen) RPC address.
    pub node_addrs: Vec<String>,
    node_argv: Vec<Vec<String>>,
    nodes: Vec<Option<Child>>,
    gateways: Vec<Child>,
    /// Each gateway's S3 endpoint.
    pub s3_endpoints: Vec<String>,
    /// Each gateway's admin endpoint.
    pub admin_endpoints: Vec<String>,
    /// The admin token.
    pub admin_token: String,
    /// Region.
    pub region: String,
    /// An access key that owns the test's buckets.
    pub access_key: (String, String),
    links: Vec<(Source, usize, Proxy)>,
}

impl FaultCluster {
    /// Starts `nodes` storage nodes and `gateways` gateways with `env` set on every process.
    pub fn start(nodes: usize, gateways: usize, env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("cairn-fault-").tempdir()?;
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
        let secret_file = dir.path().join("cluster.secret");
        std::fs::write(&secret_file, hex_token())?;
        let admin_token = hex_token();
        let token_file = dir.path().join("admin.token");
        std::fs::write(&token_file, &admin_token)?;
        let node_addrs: Vec<String> = (0..nodes).map(|_| free_addr()).collect::<anyhow::Result<_>>()?;

        let mut cluster = Self {
            dir,
            runtime: None,
            node_addrs: node_addrs.clone(),
            node_argv: Vec::new(),
            nodes: Vec::new(),
            gateways: Vec::new(),
            s3_endpoints: Vec::new(),
            admin_endpoints: Vec::new(),
            admin_token,
            region: "us-east-1".into(),
            access_key: (String::new(), String::new()),
            links: Vec::new(),
        };
        let handle = runtime.handle().clone();
        cluster.runtime = Some(runtime);
        // One proxy per (process, node) pair.
        let routes = |from: Source, links: &mut Vec<(Source, usize, Proxy)>| -> anyhow::Result<String> {
            let mut specs = Vec::new();
            for (to, addr) in node_addrs.iter().enumerate() {
                if from == Source::Node(to) {
                    continue;
                }
                let proxy = Proxy::start(&handle, addr.parse()?)?;
                specs.push(format!("{addr}={}", proxy.addr));
                links.push((from, to, proxy));
            }
            Ok(specs.join(","))
        };

        for (i, addr) in node_addrs.iter().enumerate() {
            let data_dir = cluster.dir.path().join(format!("node-{}", i + 1));
            let mut argv: Vec<String> = [
                "node",
                "--node-id",
                &format!("node-{}", i + 1),
                "--data-dir",
                &data_dir.display().to_string(),
                "--listen",
                addr,
                "--secret-file",
                &secret_file.display().to_string(),
                "--node-route",
                &routes(Source::Node(i), &mut cluster.links)?,
            ]
            .map(str::to_owned)
            .to_vec();
            match i {
                0 => argv.push("--bootstrap".into()),
                _ => argv.extend(["--join".to_owned(), node_addrs[0].clone()]),
            }
            cluster.nodes.push(Some(cluster.spawn(&argv, &format!("node-{}", i + 1), env)?));
            cluster.node_argv.push(argv);
        }
        for g in 0..gateways {
            let s3 = free_addr()?;
            let admin = free_addr()?;
            let argv: Vec<String> = [
                "gateway",
                "--s3-listen",
                &s3,
                "--admin-listen",
                &admin,
                "--nodes",
                &node_addrs.join(","),
                "--secret-file",
                &secret_file.display().to_string(),
                "--admin-token-file",
                &token_file.display().to_string(),
                "--node-route",
                &routes(Source::Gateway(g), &mut cluster.links)?,
            ]
            .map(str::to_owned)
            .to_vec();
            let child = cluster.spawn(&argv, &format!("gateway-{}", g + 1), env)?;
            cluster.gateways.push(child);
            cluster.s3_endpoints.push(format!("http://{s3}"));
            cluster.admin_endpoints.push(format!("http://{admin}"));
        }
        cluster.access_key = cluster.create_key()?;
        Ok(cluster)
    }

    /// An S3 client of gateway `g`, without retries so a refusal shows as it is.
    pub fn s3(&self, g: usize) -> aws_sdk_s3::Client {
        let (id, secret) = &self.access_key;
        let client = s3_client(&self.s3_endpoints[g], &self.region, id, secret);
        let config = client.config().to_builder().retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled());
        aws_sdk_s3::Client::from_conf(config.build())
    }

    /// The proxy carrying `from`'s connections to node `to`.
    pub fn link(&self, from: Source, to: usize) -> &Proxy {
        &self.links.iter().find(|(f, t, _)| *f == from && *t == to).expect("every process has a link to every node").2
    }

    /// Cuts every link between the two sides, both ways: `side` holds these nodes and
    /// gateways, the rest of the cluster is the other side.
    pub fn partition(&self, nodes: &[usize], gateways: &[usize]) {
        for (from, to, proxy) in &self.links {
            let from_inside = match from {
                Source::Node(n) => nodes.contains(n),
                Source::Gateway(g) => gateways.contains(g),
            };
            if from_inside != nodes.contains(to) {
                proxy.cut();
            }
        }
    }

    /// Restores every link.
    pub fn heal(&self) {
        for (_, _, proxy) in &self.links {
            proxy.heal();
        }
    }

    /// SIGKILLs storage node `i`.
    pub fn kill_node(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts storage node `i` again with its data directory.
    pub fn restart_node(&mut self, i: usize) -> anyhow::Result<()> {
        self.kill_node(i);
        let argv = self.node_argv[i].clone();
        self.nodes[i] = Some(self.spawn(&argv, &format!("node-{}", i + 1), &[])?);
        Ok(())
    }

    /// SIGKILLs gateway `g`.
    pub fn kill_gateway(&mut self, g: usize) {
        let _ = self.gateways[g].kill();
        let _ = self.gateways[g].wait();
    }

    /// SIGSTOPs (`true`) or SIGCONTs storage node `i`.
    pub fn pause_node(&self, i: usize, paused: bool) {
        if let Some(child) = &self.nodes[i] {
            let _ = kill(Pid::from_raw(child.id() as i32), if paused { Signal::SIGSTOP } else { Signal::SIGCONT });
        }
    }

    /// Every process's log, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        if let Ok(entries) = std::fs::read_dir(self.dir.path()) {
            for entry in entries.flatten().filter(|e| e.path().extension().is_some_and(|x| x == "log")) {
                let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                out.push_str(&format!("--- {}\n", entry.path().display()));
                out.extend(tail.into_iter().rev().map(|l| format!("{l}\n")));
            }
        }
        out
    }

    /// Runs `cairn admin ARGS --json` against gateway `g`.
    pub fn admin_json(&self, g: usize, args: &[&str]) -> anyhow::Result<serde_json::Value> {
        crate::admin_json(crate::admin_command(&self.admin_endpoints[g], &self.admin_token, args))
    }

    fn create_key(&self) -> anyhow::Result<(String, String)> {
        let deadline = Instant::now() + STARTUP_DEADLINE;
        loop {
            // The key is created once every node is in the layout, through the first gateway.
            let ready = self.admin_json(0, &["status"]).ok().is_some_and(|status| {
                status["nodes"].as_array().is_some_and(|nodes| {
                    nodes.len() == self.node_addrs.len() && nodes.iter().all(|n| n["state"] == "healthy")
                })
            });
            if ready && let Ok(key) = self.admin_json(0, &["key", "create", "fault-tests"]) {
                let text = |f: &str| key[f].as_str().map(str::to_owned).context("malformed key");
                return Ok((text("access_key_id")?, text("secret_access_key")?));
            }
            anyhow::ensure!(Instant::now() < deadline, "the cluster did not come up:\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn spawn(&self, argv: &[String], name: &str, env: &[(&str, &str)]) -> anyhow::Result<Child> {
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(self.dir.path().join(format!("{name}.log")))?;
        Command::new(cairn_binary())
            .args(argv)
            .envs(env.iter().copied())
            .env("RUST_LIB_BACKTRACE", "0")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {name}"))
    }

    /// Whether every node holds the same metadata rows (equal digests for every row kind) and
    /// the same number of chunks: with as many nodes as replicas, every replica converged.
    pub async fn converged(&self) -> anyhow::Result<bool> {
        let client = crate::node_client_with_secret(&self.dir.path().join("cluster.secret"))?;
        crate::replicas_converged(&client, &self.node_addrs).await
    }

    /// The temporary directory of the cluster.
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }
}

impl Drop for FaultCluster {
    fn drop(&mut self) {
        for child in self.gateways.iter_mut().chain(self.nodes.iter_mut().flatten()) {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGCONT);
            let _ = child.kill();
            let _ = child.wait();
        }
        self.links.clear();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A loopback address with a port free right now.
pub fn free_addr() -> anyhow::Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.to_string())
}

/// 32 random bytes in hex: a secret or token.
pub fn hex_token() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    let _ = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
