//! Cairn's S3 gateway: the S3 API, request authentication, the quorum coordinator, the admin
//! listener, and the `cairn dev` local-cluster launcher.

pub mod admin;
pub mod auth;
pub mod cluster;
pub mod dev;
pub mod health;
pub mod metrics;
pub mod replication;
pub mod s3;
pub mod server;
pub mod timefmt;
pub mod tls;
pub mod usage;

/// Reads a secret from a file, trimming the trailing newline.
pub fn read_secret_file(path: &std::path::Path) -> anyhow::Result<String> {
    use anyhow::Context;
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let secret = text.trim().to_owned();
    anyhow::ensure!(!secret.is_empty(), "{} is empty", path.display());
    Ok(secret)
}

/// A random string of `len` characters from `alphabet`.
pub fn random_string(len: usize, alphabet: &[u8]) -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..len).map(|_| alphabet[rng.gen_range(0..alphabet.len())] as char).collect()
}

/// Resolves when the process gets Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}

/// Resolves when the parent process goes away (the process was re-parented), so processes
/// started by `cairn dev` never outlive it.
pub async fn parent_exit() {
    let parent = nix::unistd::getppid();
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        if nix::unistd::getppid() != parent {
            return;
        }
    }
}
