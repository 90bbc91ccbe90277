//! `AdminClient`: a client of the admin API, what `cairn admin` is.

use bytes::Bytes;
use cairn_storage_node::control::Permissions;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{
    AddNodeRequest, BucketView, ClusterStatus, CreateBucketRequest, CreateKeyRequest, CreatedKey, ErrorBody, KeyView,
    LayoutView, NodeScrub, NodeView, SetConsistencyRequest, UpdateNodeRequest, url_component,
};

/// A client of the admin API.
pub struct AdminClient {
    url: String,
    token: String,
}

impl AdminClient {
    /// A client of the admin API at `url`, presenting `token`.
    pub fn new(url: &str, token: &str) -> Self {
        Self { url: url.trim_end_matches('/').to_owned(), token: token.to_owned() }
    }

    /// The cluster at a glance (`cairn admin status`).
    pub async fn status(&self) -> anyhow::Result<ClusterStatus> {
        self.get("/v1/status").await
    }

    /// Every node with its disk and software (`cairn admin node status`).
    pub async fn nodes(&self) -> anyhow::Result<Vec<NodeView>> {
        self.get("/v1/nodes").await
    }

    /// The layout and any move in progress (`cairn admin node list`).
    pub async fn layout(&self) -> anyhow::Result<LayoutView> {
        self.get("/v1/layout").await
    }

    /// Asks the node at `rpc_addr` to join the cluster (`cairn admin node add`).
    pub async fn add_node(&self, rpc_addr: &str) -> anyhow::Result<LayoutView> {
        self.call(Method::POST, "/v1/nodes", Some(&AddNodeRequest { rpc_addr: rpc_addr.to_owned() })).await
    }

    /// Takes a node out of the layout (`cairn admin node remove`).
    pub async fn remove_node(&self, node_id: &str) -> anyhow::Result<LayoutView> {
        self.call::<(), _>(Method::DELETE, &format!("/v1/nodes/{}", url_component(node_id)), None).await
    }

    /// Changes a node's zone or capacity weight (`cairn admin node set-zone|set-capacity`).
    pub async fn update_node(&self, node_id: &str, update: &UpdateNodeRequest) -> anyhow::Result<LayoutView> {
        self.call(Method::PATCH, &format!("/v1/nodes/{}", url_component(node_id)), Some(update)).await
    }

    /// Every bucket with its usage and health (`cairn admin bucket list`).
    pub async fn buckets(&self) -> anyhow::Result<Vec<BucketView>> {
        self.get("/v1/buckets").await
    }

    /// One bucket (`cairn admin bucket show`).
    pub async fn bucket(&self, name: &str) -> anyhow::Result<BucketView> {
        self.get(&format!("/v1/buckets/{}", url_component(name))).await
    }

    /// Creates a bucket (`cairn admin bucket create`).
    pub async fn create_bucket(&self, request: &CreateBucketRequest) -> anyhow::Result<BucketView> {
        self.call(Method::POST, "/v1/buckets", Some(request)).await
    }

    /// Deletes an empty bucket (`cairn admin bucket delete`).
    pub async fn delete_bucket(&self, name: &str) -> anyhow::Result<()> {
        self.call::<(), _>(Method::DELETE, &format!("/v1/buckets/{}", url_component(name)), None).await
    }

    /// Changes a bucket's consistency level (`cairn admin bucket set-consistency`).
    pub async fn set_consistency(&self, bucket: &str, level: &str) -> anyhow::Result<BucketView> {
        let path = format!("/v1/buckets/{}/consistency", url_component(bucket));
        self.call(Method::PUT, &path, Some(&SetConsistencyRequest { level: level.to_owned() })).await
    }

    /// Sets what a key may do with a bucket (`cairn admin key grant|revoke`).
    pub async fn grant(&self, key_id: &str, bucket: &str, permissions: Permissions) -> anyhow::Result<BucketView> {
        let path = format!("/v1/buckets/{}/grants/{}", url_component(bucket), url_component(key_id));
        self.call(Method::PUT, &path, Some(&permissions)).await
    }

    /// Every access key and the buckets it may use (`cairn admin key list`).
    pub async fn keys(&self) -> anyhow::Result<Vec<KeyView>> {
        self.get("/v1/keys").await
    }

    /// Creates an access key (`cairn admin key create`).
    pub async fn create_key(&self, name: &str) -> anyhow::Result<CreatedKey> {
        self.call(Method::POST, "/v1/keys", Some(&CreateKeyRequest { name: name.to_owned() })).await
    }

    /// Deletes an access key that owns no bucket (`cairn admin key delete`).
    pub async fn delete_key(&self, key_id: &str) -> anyhow::Result<()> {
        self.call::<(), _>(Method::DELETE, &format!("/v1/keys/{}", url_component(key_id)), None).await
    }

    /// Every node's scrubber report (`cairn admin scrub status`), or one node's.
    pub async fn scrub_status(&self, node: Option<&str>) -> anyhow::Result<Vec<NodeScrub>> {
        self.get(&with_node("/v1/scrub", node)).await
    }

    /// Sends every node's scrubber (or one node's) a command (`cairn admin scrub start|pause|resume`).
    pub async fn scrub_command(&self, command: &str, node: Option<&str>) -> anyhow::Result<Vec<NodeScrub>> {
        self.call::<(), _>(Method::POST, &with_node(&format!("/v1/scrub/{command}"), node), None).await
    }

    async fn get<Resp: DeserializeOwned>(&self, path: &str) -> anyhow::Result<Resp> {
        self.call::<(), _>(Method::GET, path, None).await
    }

    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Req>,
    ) -> anyhow::Result<Resp> {
        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(hyper_util::client::legacy::connect::HttpConnector::new());
        let body = body.map(serde_json::to_vec).transpose()?.unwrap_or_default();
        let request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url))
            .header(http::header::AUTHORIZATION, format!("Bearer {}", self.token))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))?;
        let response = client.request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            let message = serde_json::from_slice::<ErrorBody>(&body)
                .map(|e| e.message)
                .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
            anyhow::bail!("admin API answered {status}: {message}");
        }
        // A 204 carries nothing: it reads as JSON null, which `()` accepts.
        let body = if status == StatusCode::NO_CONTENT { Bytes::from_static(b"null") } else { body };
        Ok(serde_json::from_slice(&body)?)
    }
}

/// `path` restricted to one node when `node` is given.
fn with_node(path: &str, node: Option<&str>) -> String {
    match node {
        Some(node) => format!("{path}?node={}", url_component(node)),
        None => path.to_owned(),
    }
}
