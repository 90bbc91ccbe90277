//! In-process clusters: every node's router is called directly through a test transport
//! that can cut nodes off.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use http_body_util::BodyExt;
use openraft::StorageError;
use openraft::testing::{StoreBuilder, Suite};
use tower::ServiceExt;

use super::log_store::{ControlStore, LogStore};
use super::network::{PATH_COMMAND, PATH_STATE, call};
use super::routes::StateRequest;
use super::state_machine::StateMachineStore;
use super::*;

/// Generous bound for anything that needs elections and replication.
const WAIT: Duration = Duration::from_secs(20);

#[derive(Default)]
struct NetState {
    routers: HashMap<String, Router>,
    cut: HashSet<String>,
}

/// The whole simulated network.
#[derive(Clone, Default)]
struct TestNet(Arc<Mutex<NetState>>);

impl TestNet {
    fn register(&self, addr: &str, router: Router) {
        let mut net = self.0.lock().expect("net lock");
        net.routers.insert(addr.to_string(), router);
    }

    /// Cuts `addr` off: nothing reaches it and nothing leaves it.
    fn cut(&self, addr: &str, cut: bool) {
        let mut net = self.0.lock().expect("net lock");
        if cut {
            net.cut.insert(addr.to_string());
        } else {
            net.cut.remove(addr);
        }
    }

    fn transport(&self, from: &str) -> TestTransport {
        TestTransport { net: self.clone(), from: from.to_string() }
    }
}

/// One node's view of the network.
struct TestTransport {
    net: TestNet,
    from: String,
}

impl ControlTransport for TestTransport {
    async fn post(&self, addr: &str, path: &str, body: Vec<u8>) -> Result<Vec<u8>, TransportError> {
        let unreachable =
            |reason: &str| TransportError::Unreachable { addr: addr.to_string(), reason: reason.to_string() };
        let router = {
            let net = self.net.0.lock().expect("net lock");
            if net.cut.contains(addr) || net.cut.contains(&self.from) {
                return Err(unreachable("cut off"));
            }
            net.routers.get(addr).cloned()
        };
        let router = router.ok_or_else(|| unreachable("no such node"))?;
        // No content type: the transport contract is bare JSON bytes.
        let request =
            http::Request::post(path).body(axum::body::Body::from(body)).map_err(|e| unreachable(&e.to_string()))?;
        let response = router.oneshot(request).await.map_err(|e| unreachable(&e.to_string()))?;
        let status = response.status();
        let bytes = response.into_body().collect().await.map_err(|e| unreachable(&e.to_string()))?.to_bytes().to_vec();
        if !status.is_success() {
            return Err(TransportError::Status {
                addr: addr.to_string(),
                status: status.as_u16(),
                message: String::from_utf8_lossy(&bytes).into_owned(),
            });
        }
        Ok(bytes)
    }
}

type Node = Arc<ControlPlane<TestTransport>>;

fn node_info(name: &str) -> NodeInfo {
    NodeInfo {
        node_id: name.to_string(),
        raft_id: raft_id(name),
        zone: format!("zone-{name}"),
        capacity_weight: 1,
        rpc_addr: format!("{name}:7100"),
        membership: Default::default(),
    }
}

fn settings(replication_factor: u8) -> ClusterSettings {
    ClusterSettings { partition_count: 64, replication_factor, chunk_size_bytes: 4 << 20 }
}

fn config(name: &str, dir: &Path) -> ControlConfig {
    let mut config = ControlConfig::new(node_info(name), dir.join(format!("{name}.redb")));
    config.heartbeat_interval_ms = 50;
    config.election_timeout_min_ms = 300;
    config.election_timeout_max_ms = 600;
    config.command_timeout_ms = 10_000;
    config.join_timeout_ms = 20_000;
    config
}

async fn start(net: &TestNet, config: ControlConfig) -> Node {
    let addr = config.node.rpc_addr.clone();
    let control = ControlPlane::start(config, net.transport(&addr)).await.expect("control plane starts");
    net.register(&addr, routes(control.clone()));
    control
}

fn create_bucket(name: &str, owner: &str) -> Command {
    Command::CreateBucket {
        name: name.to_string(),
        bucket_id: uuid::Uuid::new_v4(),
        owner_key: owner.to_string(),
        consistency: Consistency::Quorum,
        index_shards: 8,
        created_ms: 1_700_000_000_000,
        acl: CannedAcl::Private,
    }
}

/// Waits until the node's applied state satisfies `predicate`.
async fn wait_state(node: &Node, what: &str, predicate: impl Fn(&ClusterState) -> bool) -> Arc<ClusterState> {
    let mut rx = node.state();
    let found = tokio::time::timeout(WAIT, rx.wait_for(|s| predicate(s))).await;
    match found {
        Ok(Ok(state)) => state.clone(),
        _ => panic!("{} never reached: {what}; last state {:?}", node.node().node_id, node.state().borrow()),
    }
}

/// Waits until every node has applied exactly the state `reference` has applied.
async fn wait_converged(reference: &Node, nodes: &[&Node]) -> Arc<ClusterState> {
    let target = reference.state().borrow().clone();
    for node in nodes {
        let state = wait_state(node, "reference version", |s| s.version >= target.version).await;
        if state.version == target.version {
            assert_eq!(*state, *target, "{} diverged", node.node().node_id);
        }
    }
    target
}

async fn leader_of(node: &Node) -> u64 {
    let metrics = node
        .raft()
        .wait(Some(WAIT))
        .metrics(|m| m.current_leader.is_some(), "a leader")
        .await
        .expect("a leader is elected");
    metrics.current_leader.expect("leader known")
}

/// a bootstraps, b joins through a, c joins through b (a follower, so the join is forwarded).
async fn three_nodes(net: &TestNet, dir: &Path, tune: impl Fn(&mut ControlConfig)) -> [Node; 3] {
    let mut nodes = Vec::new();
    for name in ["a", "b", "c"] {
        let mut config = config(name, dir);
        tune(&mut config);
        nodes.push(start(net, config).await);
    }
    let [a, b, c]: [Node; 3] = nodes.try_into().unwrap_or_else(|_| panic!("three nodes"));
    a.bootstrap(settings(3)).await.expect("bootstrap");
    b.join(&a.node().rpc_addr).await.expect("b joins");
    c.join(&b.node().rpc_addr).await.expect("c joins");
    [a, b, c]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_node_bootstrap_then_bucket_and_key_are_visible() {
    let dir = tempfile::tempdir().expect("tempdir");
    let net = TestNet::default();
    let a = start(&net, config("a", dir.path())).await;
    assert!(!a.is_initialized());
    a.bootstrap(settings(1)).await.expect("bootstrap");
    assert!(a.is_initialized());

    let created = a.command(create_bucket("photos", "key-1")).await.expect("create");
    assert_eq!(created, CommandResult::Ok);
    let key = AccessKey { key_id: "key-1".into(), secret: "s3cr3t".into(), name: "admin".into(), created_ms: 1 };
    assert_eq!(a.command(Command::PutAccessKey(key.clone())).await.expect("put key"), CommandResult::Ok);

    let state = a.state().borrow().clone();
    assert_eq!(state.settings, settings(1));
    assert_eq!(state.nodes.get("a"), Some(&node_info("a")));
    assert_eq!(state.layout.nodes, vec!["a".to_string()]);
    assert_eq!(state.buckets["photos"].owner_key, "key-1");
    assert_eq!(state.access_keys.get("key-1"), Some(&key));

    // A second bootstrap changes nothing.
    a.bootstrap(settings(1)).await.expect("second bootstrap");
    assert_eq!(a.state().borrow().version, state.version);
    a.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_share_state_and_followers_forward() {
    let dir = tempfile::tempdir().expect("tempdir");
    let net = TestNet::default();
    let [a, b, c] = three_nodes(&net, dir.path(), |_| {}).await;

    let voters: BTreeSet<u64> = a.metrics().borrow().membership_config.membership().voter_ids().collect();
    assert_eq!(voters, [&a, &b, &c].iter().map(|n| n.node().raft_id).collect());

    let leader = leader_of(&a).await;
    let follower = [&a, &b, &c].into_iter().find(|n| n.node().raft_id != leader).expect("a follower");
    let result = follower.command(create_bucket("logs", "key-9")).await.expect("forwarded");
    assert_eq!(result, CommandResult::Ok);

    for node in [&a, &b, &c] {
        let state = wait_state(node, "bucket logs", |s| s.buckets.contains_key("logs")).await;
        assert_eq!(state.layout.nodes.len(), 3);
        assert_eq!(state.nodes.len(), 3);
    }
    let reference = wait_converged(&a, &[&b, &c]).await;
    assert_eq!(reference.layout.nodes, vec!["a", "b", "c"]);

    // Joining again is harmless.
    c.join(&a.node().rpc_addr).await.expect("rejoin");
    for node in [&a, &b, &c] {
        node.shutdown().await.expect("shutdown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixth_node_joins_as_a_learner() {
    let dir = tempfile::tempdir().expect("tempdir");
    let net = TestNet::default();
    let names = ["n1", "n2", "n3", "n4", "n5", "n6"];
    let mut nodes = Vec::new();
    for name in names {
        nodes.push(start(&net, config(name, dir.path())).await);
    }
    nodes[0].bootstrap(settings(3)).await.expect("bootstrap");
    for node in &nodes[1..] {
        node.join("n1:7100").await.expect("join");
    }
    let membership = nodes[0].metrics().borrow().membership_config.clone();
    let voters: BTreeSet<u64> = membership.membership().voter_ids().collect();
    let learners: BTreeSet<u64> = membership.membership().learner_ids().collect();
    assert_eq!(voters.len(), MAX_VOTERS);
    assert_eq!(learners, BTreeSet::from([raft_id("n6")]));

    // The learner forwards commands and follows the state like everyone else.
    let result = nodes[5].command(create_bucket("from-learner", "k")).await;
    assert_eq!(result.expect("create"), CommandResult::Ok);
    for node in &nodes {
        let state = wait_state(node, "bucket", |s| s.buckets.contains_key("from-learner")).await;
        assert_eq!(state.nodes.len(), 6);
        assert_eq!(state.layout.nodes.len(), 6);
    }
    for node in &nodes {
        node.shutdown().await.expect("shutdown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_of_one_name_yield_one_bucket() {
    let dir = tempfile::tempdir().expect("tempdir");
    let net = TestNet::default();
    let [a, b, c] = three_nodes(&net, dir.path(), |_| {}).await;

    let (from_b, from_c) =
        tokio::join!(b.command(create_bucket("shared", "owner-b")), c.command(create_bucket("shared", "owner-c")),);
    let results = [from_b.expect("b's create"), from_c.expect("c's create")];
    let winners: Vec<&str> = results
        .iter()
        .zip(["owner-b", "owner-c"])
        .filter(|(r, _)| **r == CommandResult::Ok)
        .map(|(_, owner)| owner)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one create wins: {results:?}");
    let winner = winners[0];
    assert!(
        results.contains(&CommandResult::BucketAlreadyExists { owner_key: winner.to_string() }),
        "the loser learns the winner: {results:?}"
    );

    for node in [&a, &b, &c] {
        let state = wait_state(node, "bucket shared", |s| s.buckets.contains_key("shared")).await;
        assert_eq!(state.buckets.len(), 1);
        assert_eq!(state.buckets["shared"].owner_key, winner);
    }
    wait_converged(&a, &[&b, &c]).await;
    for node in [&a, &b, &c] {
        node.shutdown().await.expect("shutdown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_node_resumes_and_catches_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let net = TestNet::default();
    let [a, b, c] = three_nodes(&net, dir.path(), |_| {}).await;
    a.command(create_bucket("before", "k")).await.expect("create before");
    let before = wait_state(&c, "bucket before", |s| s.buckets.contains_key("before")).await;

    c.shutdown().await.expect("shutdown c");
    net.cut("c:7100", true);
    drop(c);
    for i in 0..5 {
        let result = a.command(create_bucket(&format!("during-{i}"), "k")).await;
        assert_eq!(result.expect("create while c is down"), CommandResult::Ok);
    }

    let c = start(&net, config("c", dir.path())).await;
    // Its own log brings back what it had, without bootstrap or join.
    assert!(c.is_initialized());
    assert!(c.state().borrow().version >= before.version);
    assert!(c.state().borrow().buckets.contains_key("before"));
    net.cut("c:7100", false);

    wait_state(&c, "buckets written while down", |s| s.buckets.contains_key("during-4")).await;
    let reference = wait_converged(&a, &[&b, &c]).await;
    assert_eq!(reference.buckets.len(), 6);
    for node in [&a, &b, &c] {
        node.shutdown().await.expect("shutdown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_restarted_on_a_new_port_is_reached_there() {
    let dir = tempfile::tempdir().expect("tempdir");
    let net = TestNet::default();
    let [a, b, c] = three_nodes(&net, dir.path(), |_| {}).await;
    c.shutdown().await.expect("shutdown c");
    net.cut("c:7100", true);
    drop(c);
    a.command(create_bucket("while-moving", "k")).await.expect("create");

    let mut moved = config("c", dir.path());
    moved.node.rpc_addr = "c:7200".into();
    let c = start(&net, moved).await;
    for node in [&a, &b, &c] {
        wait_state(node, "c's new address", |s| s.nodes["c"].rpc_addr == "c:7200").await;
    }
    let member = a
        .raft()
        .wait(Some(WAIT))
        .metrics(
            |m| m.membership_config.membership().get_node(&raft_id("c")).is_some_and(|n| n.rpc_addr == "c:7200"),
            "membership has c's new address",
        )
        .await;
    assert!(member.is_ok(), "{member:?}");
    wait_state(&c, "bucket written while moving", |s| s.buckets.contains_key("while-moving")).await;
    // Same zone and weight: the layout did not move.
    assert_eq!(c.state().borrow().layout.version, a.state().borrow().layout.version);
    wait_converged(&a, &[&b, &c]).await;
    for node in [&a, &b, &c] {
        node.shutdown().await.expect("shutdown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_node_is_sent_a_snapshot_after_purge() {
    let dir = tempfile::tempdir().expect("tempdir");
    let net = TestNet::default();
    let tune = |config: &mut ControlConfig| {
        config.snapshot_every_logs = 5;
        config.logs_kept_after_snapshot = 0;
    };
    let [a, b, c] = three_nodes(&net, dir.path(), tune).await;
    c.shutdown().await.expect("shutdown c");
    net.cut("c:7100", true);
    let c_last = c.metrics().borrow().last_log_index.unwrap_or(0);
    drop(c);

    for i in 0..20 {
        let result = a.command(create_bucket(&format!("bulk-{i}"), "k")).await;
        assert_eq!(result.expect("create"), CommandResult::Ok);
    }
    let leader = leader_of(&a).await;
    let leader = [&a, &b].into_iter().find(|n| n.node().raft_id == leader).expect("leader is a or b").clone();
    leader
        .raft()
        .wait(Some(WAIT))
        .metrics(|m| m.purged.is_some_and(|p| p.index > c_last) && m.snapshot.is_some(), "logs purged past c")
        .await
        .expect("leader snapshots and purges");

    let mut restarted = config("c", dir.path());
    tune(&mut restarted);
    let c = start(&net, restarted).await;
    net.cut("c:7100", false);
    wait_state(&c, "all bulk buckets", |s| s.buckets.len() == 20).await;
    let reference = wait_converged(&leader, &[&a, &b, &c]).await;
    assert_eq!(reference.buckets.len(), 20);
    let snapshot = c.metrics().borrow().snapshot;
    assert!(snapshot.is_some_and(|s| s.index > c_last), "c installed a snapshot: {snapshot:?}");

    // The former leader comes back from its own snapshot and log tail with the same state.
    let before = leader.state().borrow().clone();
    let name = leader.node().node_id.clone();
    for node in [a, b, c] {
        node.shutdown().await.expect("shutdown");
    }
    drop(leader);
    let mut again = config(&name, dir.path());
    tune(&mut again);
    let net = TestNet::default();
    let revived = start(&net, again).await;
    assert_eq!(*revived.state().borrow().clone(), *before);
    revived.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_answers_on_change_or_at_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let net = TestNet::default();
    let a = start(&net, config("a", dir.path())).await;
    a.bootstrap(settings(1)).await.expect("bootstrap");
    let known = a.state().borrow().version;
    let gateway = net.transport("gateway");

    // Nothing changes: the current state comes back after the wait.
    let started = tokio::time::Instant::now();
    let request = StateRequest { known_version: known, wait_ms: 300 };
    let state: ClusterState = call(&gateway, "a:7100", PATH_STATE, &request).await.expect("poll");
    assert_eq!(state.version, known);
    assert!(started.elapsed() >= Duration::from_millis(300));

    // A change answers a long wait at once.
    let poll = tokio::spawn(async move {
        let request = StateRequest { known_version: known, wait_ms: 30_000 };
        let started = tokio::time::Instant::now();
        let state: Result<ClusterState, _> = call(&gateway, "a:7100", PATH_STATE, &request).await;
        (state, started.elapsed())
    });
    a.command(create_bucket("fresh", "k")).await.expect("create");
    let (state, elapsed) = poll.await.expect("poll task");
    let state = state.expect("poll");
    assert!(state.version > known);
    assert!(state.buckets.contains_key("fresh"));
    assert!(elapsed < Duration::from_secs(10), "answered after {elapsed:?}");

    // Already behind: no wait at all, and an absurd wait is capped rather than overflowing.
    let behind = StateRequest { known_version: 0, wait_ms: u64::MAX };
    let state: ClusterState = call(&net.transport("gateway"), "a:7100", PATH_STATE, &behind).await.expect("poll");
    assert_eq!(state.version, a.state().borrow().version);
    a.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_without_a_cluster_fails_with_no_leader() {
    let dir = tempfile::tempdir().expect("tempdir");
    let net = TestNet::default();
    let mut lonely = config("a", dir.path());
    lonely.command_timeout_ms = 300;
    let a = start(&net, lonely).await;
    let result = a.command(create_bucket("x", "k")).await;
    assert!(matches!(result, Err(ControlError::NoLeader(_))), "{result:?}");
    a.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_with_a_forged_raft_id_is_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let net = TestNet::default();
    let a = start(&net, config("a", dir.path())).await;
    a.bootstrap(settings(1)).await.expect("bootstrap");
    let mut forged = node_info("b");
    forged.raft_id = raft_id("a");
    let result = a.handle_join(forged).await.expect("answered");
    assert!(matches!(result, CommandResult::Rejected(_)), "{result:?}");
    let members = a.metrics().borrow().membership_config.membership().nodes().count();
    assert_eq!(members, 1);
    a.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_a_client_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let net = TestNet::default();
    let a = start(&net, config("a", dir.path())).await;
    let gateway = net.transport("gateway");
    let answer = gateway.post("a:7100", PATH_COMMAND, b"{not json".to_vec()).await;
    assert!(matches!(answer, Err(TransportError::Status { status: 400, .. })), "{answer:?}");
    a.shutdown().await.expect("shutdown");
}

#[test]
fn raft_id_is_the_big_endian_sha256_prefix() {
    // SHA-256("a") = ca978112ca1bbdca...
    assert_eq!(raft_id("a"), 0xca97_8112_ca1b_bdca);
    assert_ne!(raft_id("node-1"), raft_id("node-2"));
}

#[test]
fn records_from_a_newer_format_are_refused() {
    let newer = br#"{"format_version":2,"body":null}"#;
    let decoded = log_store::decode::<Option<u64>>(newer);
    assert!(matches!(decoded, Err(StoreError::FormatVersion { found: 2, .. })));
    let current = log_store::encode(&Some(5u64)).expect("encode");
    assert_eq!(log_store::decode::<Option<u64>>(&current).expect("decode"), Some(5));
}

/// Builds fresh stores in temporary files for openraft's storage conformance suite.
struct SuiteBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, tempfile::TempDir> for SuiteBuilder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachineStore), StorageError<u64>> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path: PathBuf = dir.path().join("control.redb");
        let (store, _closed) = ControlStore::open(&path).expect("open store");
        let (state_machine, _) = StateMachineStore::open(store.clone()).await.expect("open state machine");
        Ok((dir, store.log_store(), state_machine))
    }
}

#[test]
fn storage_passes_the_openraft_suite() {
    Suite::test_all(SuiteBuilder).expect("storage suite");
}
