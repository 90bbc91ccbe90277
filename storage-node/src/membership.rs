//! A node's part in layout changes: reporting moves it finished, coming back after an
//! eviction, and (on the control-plane leader) evicting nodes that stayed down too long.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;

use crate::control::{Command, CommandResult, ControlPlane, ControlTransport, Membership};
use crate::failure_detector::{FailureDetector, NodeState};

/// Tells the control plane each layout version anti-entropy finished pulling.
pub async fn report_synced_layouts<T: ControlTransport>(
    control: Arc<ControlPlane<T>>,
    mut versions: mpsc::UnboundedReceiver<u64>,
) {
    while let Some(version) = versions.recv().await {
        let node_id = control.node().node_id.clone();
        match control.command(Command::LayoutSynced { node_id, version }).await {
            Ok(_) => tracing::info!(version, "reported layout move done"),
            // The next complete round reports again.
            Err(e) => tracing::warn!(version, error = %e, "could not report a layout move done"),
        }
    }
}

/// Announces this node again whenever the state shows it evicted, so that a node that comes
/// back takes its place in the layout again.
pub async fn rejoin_after_eviction<T: ControlTransport>(control: Arc<ControlPlane<T>>) {
    let mut state = control.state();
    loop {
        let evicted =
            state.borrow().nodes.get(&control.node().node_id).is_some_and(|n| n.membership == Membership::Evicted);
        if evicted {
            match control.command(Command::AddNode(control.node().clone())).await {
                Ok(CommandResult::Ok) => tracing::info!("back in the layout after an eviction"),
                Ok(other) => tracing::warn!(?other, "rejoining after an eviction was refused"),
                Err(e) => tracing::warn!(error = %e, "could not rejoin after an eviction"),
            }
        }
        if state.changed().await.is_err() {
            return;
        }
    }
}

/// On the control-plane leader: evicts an active node `down` for longer than `grace`, as long
/// as the nodes left are at least the replication factor.
pub async fn evict_down_nodes<T: ControlTransport>(
    control: Arc<ControlPlane<T>>,
    peers: Arc<FailureDetector>,
    grace: Duration,
) {
    let mut ticks = tokio::time::interval(peers.config().probe_interval);
    loop {
        ticks.tick().await;
        let me = control.node().raft_id;
        if control.metrics().borrow().current_leader != Some(me) {
            continue;
        }
        let state = control.state().borrow().clone();
        let active = state.nodes.values().filter(|n| n.membership == Membership::Active).count();
        if active <= usize::from(state.settings.replication_factor) {
            continue;
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let overdue = peers.snapshot().into_iter().find(|health| {
            health.state == NodeState::Down
                && now.saturating_sub(health.since_ms) >= grace.as_millis() as u64
                && state.nodes.get(&health.node_id).is_some_and(|n| n.membership == Membership::Active)
        });
        if let Some(health) = overdue {
            tracing::warn!(node = %health.node_id, down_since_ms = health.since_ms, "evicting a node down past the grace period");
            if let Err(e) = control.command(Command::EvictNode { node_id: health.node_id.clone() }).await {
                tracing::warn!(node = %health.node_id, error = %e, "eviction failed");
            }
        }
    }
}
