//! Scrub routes: every node's scrubber report, and commands to start, pause or resume it.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use cairn_storage_node::rpc::client::RpcError;
use cairn_storage_node::scrubber::{ScrubCommand, ScrubReport};
use serde::{Deserialize, Serialize};

use super::AdminState;
use super::error::{AdminError, AdminResult};

/// One node's answer to a scrub request: its report, or why it has none.
#[derive(Debug, Serialize, Deserialize)]
pub struct NodeScrub {
    /// The node.
    pub node_id: String,
    /// Its scrubber's report.
    pub report: Option<ScrubReport>,
    /// Why the node did not answer.
    pub error: Option<String>,
}

/// Which nodes a scrub request is for.
#[derive(Deserialize)]
pub(super) struct NodeFilter {
    node: Option<String>,
}

pub(super) async fn reports(
    State(admin): State<Arc<AdminState>>,
    Query(filter): Query<NodeFilter>,
) -> AdminResult<Vec<NodeScrub>> {
    let client = admin.gateway.replication.client().clone();
    fan_out(&admin, filter, move |addr| {
        let client = client.clone();
        async move { client.scrub_report(&addr).await }
    })
    .await
}

pub(super) async fn command(
    State(admin): State<Arc<AdminState>>,
    Path(command): Path<String>,
    Query(filter): Query<NodeFilter>,
) -> AdminResult<Vec<NodeScrub>> {
    let command = ScrubCommand::parse(&command)
        .ok_or_else(|| AdminError::BadRequest("the scrub command must be start, pause or resume".into()))?;
    let client = admin.gateway.replication.client().clone();
    fan_out(&admin, filter, move |addr| {
        let client = client.clone();
        async move { client.scrub_command(&addr, command).await }
    })
    .await
}

/// Asks every node the control plane knows (or the one named) in parallel.
async fn fan_out<F, Fut>(admin: &AdminState, filter: NodeFilter, ask: F) -> AdminResult<Vec<NodeScrub>>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<ScrubReport, RpcError>>,
{
    let state = admin.gateway.state();
    let nodes: Vec<_> =
        state.nodes.values().filter(|n| filter.node.as_ref().is_none_or(|name| *name == n.node_id)).cloned().collect();
    if nodes.is_empty() {
        return Err(AdminError::NotFound("no such node".into()));
    }
    let answers = futures_util::future::join_all(nodes.iter().map(|n| ask(n.rpc_addr.clone()))).await;
    let reports = nodes
        .into_iter()
        .zip(answers)
        .map(|(node, answer)| match answer {
            Ok(report) => NodeScrub { node_id: node.node_id, report: Some(report), error: None },
            Err(e) => NodeScrub { node_id: node.node_id, report: None, error: Some(e.to_string()) },
        })
        .collect();
    Ok(Json(reports))
}
