//! boto3 and the aws CLI, as installed from PyPI, over HTTP and HTTPS: runs
//! `integration-tests/python/test_clients.py` against a real cluster.

use std::process::Command;

use cairn_integration_tests::DevCluster;

#[test]
fn boto3_and_aws_cli_over_http_and_https() -> anyhow::Result<()> {
    let cluster = DevCluster::start_with_tls(3)?;
    let tls_endpoint = cluster.info.s3_tls_endpoint.clone().expect("the cluster has an HTTPS listener");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python/test_clients.py");
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let output = Command::new(&python)
        .arg(&script)
        .env("CAIRN_S3_ENDPOINT", &cluster.info.s3_endpoint)
        .env("CAIRN_S3_TLS_ENDPOINT", &tls_endpoint)
        .env("CAIRN_TLS_CA_FILE", cluster.tls_certificate())
        .env("AWS_ACCESS_KEY_ID", &cluster.info.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &cluster.info.secret_access_key)
        .env("AWS_REGION", &cluster.info.region)
        .env("AWS_DEFAULT_REGION", &cluster.info.region)
        // Nothing from the developer's own aws configuration may leak in.
        .env("AWS_CONFIG_FILE", cluster.dir().join("no-aws-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", cluster.dir().join("no-aws-credentials"))
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_SESSION_TOKEN")
        .output()
        .map_err(|e| anyhow::anyhow!("running {python} (needs boto3 and awscli: pip install boto3 awscli): {e}"))?;
    let report = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the Python client suite failed:\n{report}\n{}\n--- gateway log ---\n{}",
        String::from_utf8_lossy(&output.stdout),
        cluster.logs()
    );
    // Both endpoints ran the whole suite.
    assert!(report.contains("OverHttps.") && report.contains("OverHttp."), "{report}");
    Ok(())
}
