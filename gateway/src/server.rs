//! A gateway process: the S3 listener and the admin listener over one cluster view.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use axum::serve::ListenerExt;
use cairn_storage_node::failure_detector::{DetectorConfig, FailureDetector};
use cairn_storage_node::rpc::auth::ClusterSecret;
use cairn_storage_node::rpc::client::{ClientConfig, NodeClient};

use cairn_storage_node::control::{AccessKey, ClusterState, Command, CommandResult};

use crate::cluster::Cluster;
use crate::replication::Replication;
use crate::s3::{Gateway, S3Config};
use crate::timefmt::now_ms;

/// How long a starting gateway waits for the cluster to answer.
const CONNECT_DEADLINE_SECS: u64 = 60;

/// How to run a gateway.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// Address of the S3 listener.
    pub s3_listen: SocketAddr,
    /// Address of the admin listener.
    pub admin_listen: SocketAddr,
    /// RPC addresses of storage nodes to learn the cluster from.
    pub seeds: Vec<String>,
    /// Secret shared by the cluster.
    pub secret: ClusterSecret,
    /// Region reported to clients.
    pub region: String,
    /// Base domains of virtual-hosted-style requests.
    pub domains: Vec<String>,
    /// Where clients reach the S3 API through a reverse proxy, if one stands in front.
    pub public_endpoint: Option<crate::s3::PublicEndpoint>,
    /// How long a server-side copy may run before its `200 OK` goes out ahead of its outcome.
    pub keepalive_after: Duration,
    /// How long a lease on the chunks of a body being written lasts unless renewed.
    pub upload_lease: Duration,
    /// Longest wait for a quorum of replicas before a request fails with 503.
    pub quorum_timeout: Duration,
    /// How nodes are probed.
    pub detector: DetectorConfig,
    /// Nodes reached through another address than the one they advertise.
    pub routes: std::collections::BTreeMap<String, String>,
    /// Bearer token of the admin API.
    pub admin_token: String,
    /// An access key (id, secret) this gateway makes sure exists: the root key of a deployment
    /// whose credentials come from files (a Kubernetes Secret).
    pub root_key: Option<(String, String)>,
    /// An HTTPS listener for the S3 API besides the plain one.
    pub tls: Option<TlsListenerConfig>,
}

/// Where and with what certificate the S3 API also listens over TLS.
#[derive(Clone, Debug)]
pub struct TlsListenerConfig {
    /// Address of the HTTPS listener.
    pub listen: SocketAddr,
    /// PEM certificate chain.
    pub cert_file: std::path::PathBuf,
    /// PEM private key.
    pub key_file: std::path::PathBuf,
}

/// Makes sure the access key `key_id` exists with `secret`, retrying until the control plane
/// takes it (a new cluster may still be forming).
async fn install_root_key(cluster: std::sync::Arc<Cluster>, (key_id, secret): (String, String)) {
    let installed = |state: &ClusterState| state.access_keys.get(&key_id).is_some_and(|k| k.secret == secret);
    while !installed(&cluster.state()) {
        let key =
            AccessKey { key_id: key_id.clone(), secret: secret.clone(), name: "root".into(), created_ms: now_ms() };
        match cluster.command(&Command::PutAccessKey(key), installed).await {
            Ok(CommandResult::Ok) => tracing::info!(%key_id, "root access key installed"),
            Ok(refused) => {
                tracing::error!(%key_id, ?refused, "the root access key was refused");
                return;
            }
            Err(e) => tracing::warn!(error = %e, "could not install the root access key yet"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Runs a gateway until `shutdown` resolves.
pub async fn run(
    config: GatewayConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let metrics = std::sync::Arc::new(crate::metrics::Metrics::default());
    let client =
        NodeClient::new(config.secret.clone(), &ClientConfig { routes: config.routes.clone(), ..Default::default() })
            .observed_by(metrics.clone());
    let s3_listener = tokio::net::TcpListener::bind(config.s3_listen)
        .await
        .with_context(|| format!("binding {}", config.s3_listen))?;
    let admin_listener = tokio::net::TcpListener::bind(config.admin_listen)
        .await
        .with_context(|| format!("binding {}", config.admin_listen))?;
    let tls = match &config.tls {
        Some(tls) => {
            let acceptor = crate::tls::acceptor(&tls.cert_file, &tls.key_file)?;
            let listener =
                tokio::net::TcpListener::bind(tls.listen).await.with_context(|| format!("binding {}", tls.listen))?;
            Some((listener, acceptor))
        }
        None => None,
    };
    let cluster =
        Cluster::connect(config.seeds.clone(), client.clone(), Duration::from_secs(CONNECT_DEADLINE_SECS)).await?;
    if let Some(key) = config.root_key.clone() {
        tokio::spawn(install_root_key(cluster.clone(), key));
    }
    let detector = FailureDetector::new(config.detector);
    let view = cluster.clone();
    tokio::spawn(detector.clone().run(client.clone(), move || view.state().nodes.values().cloned().collect()));
    let gateway = Gateway::new(
        Replication::new(cluster.clone(), client, rand::random(), detector, config.quorum_timeout, metrics),
        S3Config {
            region: config.region.clone(),
            domains: config.domains.clone(),
            public_endpoint: config.public_endpoint.clone(),
            keepalive_after: config.keepalive_after,
            upload_lease: config.upload_lease,
        },
    );
    tracing::info!(s3 = %s3_listener.local_addr()?, admin = %admin_listener.local_addr()?, "gateway listening");
    let s3_port = s3_listener.local_addr()?.port();

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut stop_rx = stop_rx.clone();
        async move {
            let _ = stop_rx.wait_for(|stop| *stop).await;
        }
    };
    let s3_app = crate::s3::router(gateway.clone());
    let s3 = axum::serve(
        s3_listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        }),
        s3_app.clone(),
    )
    .with_graceful_shutdown(stopped());
    let https = match tls {
        Some((listener, acceptor)) => {
            tracing::info!(s3_tls = %listener.local_addr()?, "gateway listening over TLS");
            let serving = crate::tls::serve(listener, acceptor, s3_app.clone(), stopped());
            Some(tokio::spawn(serving))
        }
        None => None,
    };
    let admin_app = crate::admin::router(gateway, config.admin_token.clone(), s3_port);
    let admin = axum::serve(admin_listener, admin_app).with_graceful_shutdown(stopped());
    let s3 = tokio::spawn(async move { s3.await });
    let admin = tokio::spawn(async move { admin.await });
    shutdown.await;
    let _ = stop_tx.send(true);
    s3.await??;
    admin.await??;
    if let Some(https) = https {
        https.await??;
    }
    Ok(())
}
