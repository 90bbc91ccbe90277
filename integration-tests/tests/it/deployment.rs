//! A cluster started the way the Helm chart starts one: every storage node with the same
//! arguments but its id and address (a StatefulSet), addresses given as host names, the
//! credentials in files, and the orchestrator's health checks.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cairn_integration_tests::fault::{free_addr, hex_token};
use cairn_integration_tests::{admin_command, admin_json, cairn_binary, s3_client};

use crate::{get, http_get, put};

/// The processes of the test; killed when dropped.
struct Processes {
    dir: tempfile::TempDir,
    children: Vec<Option<Child>>,
}

impl Processes {
    fn spawn(&mut self, name: &str, args: &[String], env: &[(&str, &str)]) -> anyhow::Result<usize> {
        let log = std::fs::File::create(self.dir.path().join(format!("{name}.log")))?;
        let child = Command::new(cairn_binary())
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.children.push(Some(child));
        Ok(self.children.len() - 1)
    }

    fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.children[index].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for entry in std::fs::read_dir(self.dir.path()).into_iter().flatten().flatten() {
            if entry.path().extension().is_some_and(|e| e == "log") {
                let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                out.push_str(&format!("--- {}\n{}\n", entry.path().display(), text));
            }
        }
        out
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        for index in 0..self.children.len() {
            self.kill(index);
        }
    }
}

/// Polls `url` until it answers `status`; returns the body.
async fn wait_for_status(url: &str, status: u16, processes: &Processes) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer = http_get(url).await;
        if let Ok((code, body)) = &answer
            && *code == status
        {
            return Ok(body.clone());
        }
        anyhow::ensure!(Instant::now() < deadline, "{url} never answered {status}: {answer:?}\n{}", processes.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn identical_node_arguments_form_one_cluster_and_health_checks_follow_it() -> anyhow::Result<()> {
    let mut processes =
        Processes { dir: tempfile::Builder::new().prefix("cairn-deploy-").tempdir()?, children: Vec::new() };
    let dir = processes.dir.path().to_owned();
    let write = |name: &str, text: &str| -> anyhow::Result<String> {
        let path = dir.join(name);
        std::fs::write(&path, text)?;
        Ok(path.display().to_string())
    };
    let secret_file = write("cluster-secret", &hex_token())?;
    let token_file = write("admin-token", &hex_token())?;
    let key_id = "ROOTKEY0123456789";
    let key_secret = hex_token();
    let key_id_file = write("root-access-key-id", key_id)?;
    let key_secret_file = write("root-secret-access-key", &key_secret)?;

    // Names, not IP addresses, as a headless Service publishes them.
    let ports: Vec<u16> =
        (0..3).map(|_| Ok(free_addr()?.rsplit(':').next().unwrap_or("0").parse()?)).collect::<anyhow::Result<_>>()?;
    let names: Vec<String> = ports.iter().map(|p| format!("localhost:{p}")).collect();
    let mut nodes = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let args: Vec<String> = [
            "node",
            "--node-id",
            &format!("cairn-node-{i}"),
            "--data-dir",
            &dir.join(format!("node-{i}")).display().to_string(),
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--advertise",
            &names[i],
            "--secret-file",
            &secret_file,
            "--bootstrap-node",
            "cairn-node-0",
            "--join",
            &format!("{},{}", names[0], names[1]),
            "--probe-interval-ms",
            "200",
            "--down-after",
            "3",
        ]
        .map(str::to_owned)
        .to_vec();
        nodes.push(processes.spawn(&format!("node-{i}"), &args, &[])?);
    }
    let (s3_addr, admin_addr) = (free_addr()?, free_addr()?);
    let gateway_args: Vec<String> = [
        "gateway",
        "--s3-listen",
        &s3_addr,
        "--admin-listen",
        &admin_addr,
        "--nodes",
        &names.join(","),
        "--secret-file",
        &secret_file,
        "--admin-token-file",
        &token_file,
        "--root-access-key-id-file",
        &key_id_file,
        "--root-secret-access-key-file",
        &key_secret_file,
        "--probe-interval-ms",
        "200",
        "--down-after",
        "3",
    ]
    .map(str::to_owned)
    .to_vec();
    // Logs as JSON, with each S3 request's id and operation.
    let log_env = [("CAIRN_LOG_FORMAT", "json"), ("CAIRN_LOG", "info,cairn_gateway::s3=debug")];
    processes.spawn("gateway", &gateway_args, &log_env)?;

    // Liveness needs no cluster; readiness needs one; the health verdict needs every node.
    for port in &ports {
        wait_for_status(&format!("http://127.0.0.1:{port}/health/live"), 200, &processes).await?;
        wait_for_status(&format!("http://127.0.0.1:{port}/health/ready"), 200, &processes).await?;
    }
    let admin = format!("http://{admin_addr}");
    wait_for_status(&format!("{admin}/health/live"), 200, &processes).await?;
    wait_for_status(&format!("{admin}/health/ready"), 200, &processes).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, body) = http_get(&format!("{admin}/health/cluster")).await?;
        let health: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        if code == 200 && health["verdict"] == "healthy" {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "never healthy: {code} {body}\n{}", processes.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // One cluster of three, not three clusters.
    let token = std::fs::read_to_string(&token_file)?;
    let status = admin_json(admin_command(&admin, &token, &["node", "list"]))?;
    assert_eq!(status["nodes"].as_array().map(Vec::len), Some(3), "{status}");

    // The root key from the files works over S3.
    let s3 = s3_client(&format!("http://{s3_addr}"), "us-east-1", key_id, &key_secret);
    s3.create_bucket().bucket("deployed").send().await?;
    let written =
        s3.put_object().bucket("deployed").key("hello").body(b"from the root key".to_vec().into()).send().await?;
    assert_eq!(get(&s3, "deployed", "hello").await?, b"from the root key");
    put(&s3, "deployed", "again", b"more".to_vec()).await?;

    // The request's id, echoed to the client, names its log lines.
    let request_id = aws_sdk_s3::operation::RequestId::request_id(&written).unwrap_or_default().to_owned();
    assert!(!request_id.is_empty());
    let log = std::fs::read_to_string(dir.join("gateway.log"))?;
    let lines: Vec<serde_json::Value> = log.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(!lines.is_empty() && lines.len() == log.lines().count(), "not JSON:\n{log}");
    let answered = lines.iter().any(|l| {
        l["fields"]["request_id"] == request_id.as_str()
            && l["fields"]["operation"] == "PutObject"
            && l["fields"]["status"] == 200
    });
    assert!(answered, "no line for request {request_id}:\n{log}");
    let in_span = lines.iter().any(|l| l["span"]["request_id"] == request_id.as_str() && l["span"]["name"] == "s3");
    assert!(in_span, "no line inside request {request_id}'s span:\n{log}");

    // One node down: degraded but available (200); two: unavailable (503).
    processes.kill(nodes[2]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, body) = http_get(&format!("{admin}/health/cluster")).await?;
        if code == 200 && body.contains("\"degraded\"") && body.contains("cairn-node-2 is down") {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "never degraded: {code} {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    processes.kill(nodes[1]);
    let body = wait_for_status(&format!("{admin}/health/cluster"), 503, &processes).await?;
    assert!(body.contains("\"unavailable\""), "{body}");
    Ok(())
}
