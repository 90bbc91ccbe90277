//! Prometheus metrics of a gateway: the S3 requests it serves, the RPCs it sends, and the
//! cluster as its failure detector sees it (each node's last status report). `/metrics` on the
//! admin port renders them in the text exposition format; every name is in `docs/metrics.md`.
//! Label sets are closed: S3 operations by their S3 names, HTTP statuses, node ids of the
//! layout, node and verdict states.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use cairn_storage_node::control::ClusterState;
use cairn_storage_node::failure_detector::{NodeHealth, NodeState};
use cairn_storage_node::rpc::client::RpcObserver;

use crate::health::{ClusterHealth, Verdict};
use crate::s3::operation::Operation;

/// Upper bounds of the latency histograms' buckets, in seconds.
const LATENCY_BUCKETS: [f64; 16] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0];

/// A latency histogram: counts per bucket (not cumulative; rendering sums them) and the total.
#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    /// Observations past the last bucket.
    over: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        match LATENCY_BUCKETS.iter().position(|&bound| seconds <= bound) {
            Some(i) => self.buckets[i].fetch_add(1, Ordering::Relaxed),
            None => self.over.fetch_add(1, Ordering::Relaxed),
        };
        self.sum_nanos.fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (bound, count) in LATENCY_BUCKETS.iter().zip(&self.buckets) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{}le=\"{bound}\"}} {cumulative}", sep(labels));
        }
        cumulative += self.over.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{}le=\"+Inf\"}} {cumulative}", sep(labels));
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
    }
}

/// The comma that separates `labels` from one more label, if there are any.
fn sep(labels: &str) -> &'static str {
    if labels.is_empty() { "" } else { "," }
}

/// What one S3 operation did.
#[derive(Default)]
struct OperationStats {
    /// Requests by response status.
    statuses: Mutex<BTreeMap<u16, u64>>,
    duration: Histogram,
    first_byte: Histogram,
    received_bytes: AtomicU64,
    sent_bytes: AtomicU64,
}

/// What RPCs to one node did.
#[derive(Default)]
struct PeerStats {
    duration: Histogram,
    failures: AtomicU64,
}

/// Every metric the gateway keeps; the cluster's are read from the failure detector when
/// rendered.
#[derive(Default)]
pub struct Metrics {
    operations: Mutex<BTreeMap<Operation, Arc<OperationStats>>>,
    in_flight: AtomicI64,
    auth_failures: Mutex<BTreeMap<&'static str, u64>>,
    /// By the node's advertised address; rendered by node id.
    peers: Mutex<BTreeMap<String, Arc<PeerStats>>>,
    chunk_writes: AtomicU64,
    chunk_reads: AtomicU64,
    /// Replica writes still running after their request was answered (past the quorum).
    replication_backlog: AtomicI64,
    replication_lag: Histogram,
}

/// One S3 request being served: counted in flight until it ends.
pub struct RequestTimer {
    stats: Arc<OperationStats>,
    metrics: Arc<Metrics>,
    started: std::time::Instant,
}

impl RequestTimer {
    /// The response head is ready: its status and the time to first byte.
    pub fn head(&self, status: u16) {
        self.stats.first_byte.observe(self.started.elapsed());
        *self.stats.statuses.lock().unwrap_or_else(PoisonError::into_inner).entry(status).or_default() += 1;
    }

    /// Body bytes received from the client.
    pub fn received(&self, bytes: u64) {
        self.stats.received_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Body bytes sent to the client.
    pub fn sent(&self, bytes: u64) {
        self.stats.sent_bytes.fetch_add(bytes, Ordering::Relaxed);
    }
}

impl Drop for RequestTimer {
    fn drop(&mut self) {
        self.stats.duration.observe(self.started.elapsed());
        self.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Which way a metered body's bytes go.
#[derive(Clone, Copy)]
pub enum Direction {
    /// A request body, from the client.
    Received,
    /// A response body, to the client.
    Sent,
}

/// A body that counts its bytes into a request's metrics and keeps the request timed until
/// it has been read or sent (or dropped).
pub struct MeteredBody {
    inner: axum::body::Body,
    timer: Arc<RequestTimer>,
    direction: Direction,
}

impl MeteredBody {
    /// `inner`, counted into `timer` as `direction`.
    pub fn new(inner: axum::body::Body, timer: Arc<RequestTimer>, direction: Direction) -> Self {
        Self { inner, timer, direction }
    }
}

impl http_body::Body for MeteredBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let polled = std::pin::Pin::new(&mut this.inner).poll_frame(cx);
        if let std::task::Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            match this.direction {
                Direction::Received => this.timer.received(data.len() as u64),
                Direction::Sent => this.timer.sent(data.len() as u64),
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A replica write that outlived its request, counted in the backlog until it ends.
pub struct BackgroundWrite {
    metrics: Arc<Metrics>,
    started: std::time::Instant,
}

impl Drop for BackgroundWrite {
    fn drop(&mut self) {
        self.metrics.replication_lag.observe(self.started.elapsed());
        self.metrics.replication_backlog.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// A request for `operation` starts.
    pub fn start(self: &Arc<Self>, operation: Operation) -> RequestTimer {
        let stats =
            self.operations.lock().unwrap_or_else(PoisonError::into_inner).entry(operation).or_default().clone();
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        RequestTimer { stats, metrics: self.clone(), started: std::time::Instant::now() }
    }

    /// A request was refused for its credentials, signature or permissions (`code`: the S3
    /// error code).
    pub fn auth_failure(&self, code: &'static str) {
        *self.auth_failures.lock().unwrap_or_else(PoisonError::into_inner).entry(code).or_default() += 1;
    }

    /// A chunk was written to (`write`) or read from a replica.
    pub fn chunk_transfer(&self, write: bool) {
        let counter = if write { &self.chunk_writes } else { &self.chunk_reads };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A replica write goes on after its request's quorum was met; ends when dropped.
    pub fn background_write(self: &Arc<Self>) -> BackgroundWrite {
        self.replication_backlog.fetch_add(1, Ordering::Relaxed);
        BackgroundWrite { metrics: self.clone(), started: std::time::Instant::now() }
    }

    /// The text exposition of every metric; `state`, `nodes` and `health` describe the cluster.
    pub fn render(&self, state: &ClusterState, nodes: &[NodeHealth], health: &ClusterHealth) -> String {
        let mut out = String::new();
        self.render_s3(&mut out);
        self.render_rpc(&mut out, state);
        render_cluster(&mut out, state, nodes, health);
        out
    }

    fn render_s3(&self, out: &mut String) {
        let operations: Vec<(Operation, Arc<OperationStats>)> = self
            .operations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(op, stats)| (*op, stats.clone()))
            .collect();
        header(out, "cairn_s3_requests_total", "counter", "S3 requests answered, by operation and HTTP status.");
        for (op, stats) in &operations {
            for (status, count) in stats.statuses.lock().unwrap_or_else(PoisonError::into_inner).iter() {
                let _ =
                    writeln!(out, "cairn_s3_requests_total{{operation=\"{}\",status=\"{status}\"}} {count}", op.name());
            }
        }
        header(
            out,
            "cairn_s3_request_duration_seconds",
            "histogram",
            "Time from a request's arrival to the last byte of its response, by operation.",
        );
        for (op, stats) in &operations {
            stats.duration.render(out, "cairn_s3_request_duration_seconds", &format!("operation=\"{}\"", op.name()));
        }
        header(
            out,
            "cairn_s3_time_to_first_byte_seconds",
            "histogram",
            "Time from a request's arrival to its response head, by operation.",
        );
        for (op, stats) in &operations {
            stats.first_byte.render(
                out,
                "cairn_s3_time_to_first_byte_seconds",
                &format!("operation=\"{}\"", op.name()),
            );
        }
        for (name, help, pick) in [
            (
                "cairn_s3_received_bytes_total",
                "Request body bytes received, by operation.",
                (|s: &OperationStats| s.received_bytes.load(Ordering::Relaxed)) as fn(&OperationStats) -> u64,
            ),
            ("cairn_s3_sent_bytes_total", "Response body bytes sent, by operation.", |s: &OperationStats| {
                s.sent_bytes.load(Ordering::Relaxed)
            }),
        ] {
            header(out, name, "counter", help);
            for (op, stats) in &operations {
                let _ = writeln!(out, "{name}{{operation=\"{}\"}} {}", op.name(), pick(stats));
            }
        }
        header(out, "cairn_s3_requests_in_flight", "gauge", "S3 requests being served.");
        let _ = writeln!(out, "cairn_s3_requests_in_flight {}", self.in_flight.load(Ordering::Relaxed));
        header(
            out,
            "cairn_s3_auth_failures_total",
            "counter",
            "Requests refused for their credentials, signature or permissions, by S3 error code.",
        );
        for (code, count) in self.auth_failures.lock().unwrap_or_else(PoisonError::into_inner).iter() {
            let _ = writeln!(out, "cairn_s3_auth_failures_total{{code=\"{code}\"}} {count}");
        }
    }

    fn render_rpc(&self, out: &mut String, state: &ClusterState) {
        let node_of = |addr: &str| state.nodes.values().find(|n| n.rpc_addr == addr).map(|n| n.node_id.clone());
        let peers: Vec<(String, Arc<PeerStats>)> = self
            .peers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter_map(|(addr, stats)| Some((node_of(addr)?, stats.clone())))
            .collect();
        header(out, "cairn_rpc_duration_seconds", "histogram", "RPCs to storage nodes, by node, answered or not.");
        for (node, stats) in &peers {
            stats.duration.render(out, "cairn_rpc_duration_seconds", &format!("node=\"{}\"", escape(node)));
        }
        header(out, "cairn_rpc_failures_total", "counter", "RPCs to storage nodes that got no answer, by node.");
        for (node, stats) in &peers {
            let _ = writeln!(
                out,
                "cairn_rpc_failures_total{{node=\"{}\"}} {}",
                escape(node),
                stats.failures.load(Ordering::Relaxed)
            );
        }
        header(out, "cairn_chunk_writes_total", "counter", "Chunk copies written to replicas.");
        let _ = writeln!(out, "cairn_chunk_writes_total {}", self.chunk_writes.load(Ordering::Relaxed));
        header(out, "cairn_chunk_reads_total", "counter", "Chunks read from replicas.");
        let _ = writeln!(out, "cairn_chunk_reads_total {}", self.chunk_reads.load(Ordering::Relaxed));
        header(
            out,
            "cairn_replication_backlog",
            "gauge",
            "Replica writes still running after their request met its quorum and was answered.",
        );
        let _ = writeln!(out, "cairn_replication_backlog {}", self.replication_backlog.load(Ordering::Relaxed));
        header(
            out,
            "cairn_replication_lag_seconds",
            "histogram",
            "How long replica writes past the quorum took to finish.",
        );
        self.replication_lag.render(out, "cairn_replication_lag_seconds", "");
    }
}

impl RpcObserver for Metrics {
    fn observe(&self, addr: &str, elapsed: Duration, failed: bool) {
        let stats =
            self.peers.lock().unwrap_or_else(PoisonError::into_inner).entry(addr.to_owned()).or_default().clone();
        stats.duration.observe(elapsed);
        if failed {
            stats.failures.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Node states as the failure detector names them: the values of `cairn_cluster_nodes`.
const NODE_STATES: [NodeState; 5] =
    [NodeState::Healthy, NodeState::Degraded, NodeState::Suspect, NodeState::Recovering, NodeState::Down];

/// The cluster as this gateway sees it: the verdict, node states and each node's report.
fn render_cluster(out: &mut String, state: &ClusterState, nodes: &[NodeHealth], health: &ClusterHealth) {
    header(out, "cairn_cluster_health", "gauge", "1 for the cluster's current verdict, 0 for the others.");
    for verdict in [Verdict::Healthy, Verdict::Degraded, Verdict::Unavailable] {
        let _ = writeln!(
            out,
            "cairn_cluster_health{{verdict=\"{}\"}} {}",
            verdict.name(),
            u8::from(health.verdict == verdict)
        );
    }
    header(out, "cairn_cluster_nodes", "gauge", "Nodes of the layout, by the state this gateway sees them in.");
    let in_layout: Vec<&NodeHealth> = nodes.iter().filter(|n| state.layout.nodes.contains(&n.node_id)).collect();
    for node_state in NODE_STATES {
        let count = in_layout.iter().filter(|n| n.state == node_state).count();
        let _ = writeln!(out, "cairn_cluster_nodes{{state=\"{}\"}} {count}", node_state.name());
    }
    header(out, "cairn_cluster_partitions", "gauge", "Partitions of the layout.");
    let _ = writeln!(out, "cairn_cluster_partitions {}", health.partitions);
    header(out, "cairn_cluster_partitions_below_quorum", "gauge", "Partitions without a quorum of serving replicas.");
    let _ = writeln!(out, "cairn_cluster_partitions_below_quorum {}", health.partitions_below_quorum);
    header(out, "cairn_cluster_layout_moving", "gauge", "1 while data moves from one layout to the next.");
    let _ = writeln!(out, "cairn_cluster_layout_moving {}", u8::from(state.transition.is_some()));
    header(out, "cairn_cluster_layout_version", "gauge", "Version of the current layout.");
    let _ = writeln!(out, "cairn_cluster_layout_version {}", state.layout.version);

    // Each node's last report; a node that never answered has none.
    type Pick = fn(&cairn_storage_node::rpc::NodeStatus) -> Option<u64>;
    let per_node: [(&str, &str, &str, Pick); 18] = [
        ("cairn_node_disk_capacity_bytes", "gauge", "Size of the file system holding the node's chunks.", |s| {
            Some(s.capacity_bytes)
        }),
        ("cairn_node_disk_free_bytes", "gauge", "Free bytes on that file system.", |s| Some(s.free_bytes)),
        ("cairn_node_disk_reserve_bytes", "gauge", "Free bytes below which the node refuses writes.", |s| {
            Some(s.reserve_bytes)
        }),
        ("cairn_node_disk_inodes", "gauge", "Inodes of that file system.", |s| Some(s.inodes)),
        ("cairn_node_disk_free_inodes", "gauge", "Free inodes on that file system.", |s| Some(s.free_inodes)),
        ("cairn_node_chunks", "gauge", "Chunks the node stores.", |s| Some(s.chunk_count)),
        ("cairn_node_chunk_bytes", "gauge", "Bytes of the node's chunk files.", |s| Some(s.used_bytes)),
        ("cairn_node_start_time_seconds", "gauge", "When the node process started, Unix seconds.", |s| {
            Some(s.started_ms / 1000)
        }),
        ("cairn_node_repair_queue", "gauge", "Chunks waiting for a good copy.", |s| {
            s.scrub.as_ref().map(|r| r.repair.queued)
        }),
        ("cairn_node_repair_errored", "gauge", "Queued chunks whose last repair attempt failed.", |s| {
            s.scrub.as_ref().map(|r| r.repair.errored)
        }),
        ("cairn_node_repaired_total", "counter", "Chunks repaired since the node started.", |s| {
            s.scrub.as_ref().map(|r| r.repair.repaired)
        }),
        ("cairn_node_scrub_checked_bytes", "gauge", "Bytes the current scrub pass has proved.", |s| {
            s.scrub.as_ref().map(|r| r.progress.bytes_checked)
        }),
        ("cairn_node_scrub_passes_total", "counter", "Complete scrub passes.", |s| {
            s.scrub.as_ref().map(|r| r.progress.passes_completed)
        }),
        ("cairn_node_scrub_corruptions_found_total", "counter", "Bad chunk copies the scrubber found.", |s| {
            s.scrub.as_ref().map(|r| r.progress.corruptions_found)
        }),
        ("cairn_node_scrub_corruptions_repaired_total", "counter", "Bad chunk copies replaced.", |s| {
            s.scrub.as_ref().map(|r| r.progress.corruptions_repaired)
        }),
        (
            "cairn_node_rebalance_partitions_remaining",
            "gauge",
            "Partitions the node has still to sync (a layout move, a catch-up).",
            |s| s.sync.as_ref().map(|r| r.partitions_remaining),
        ),
        ("cairn_node_rebalance_remaining_bytes", "gauge", "Estimated chunk bytes the node has still to pull.", |s| {
            s.sync.as_ref().map(|r| r.bytes_remaining)
        }),
        ("cairn_node_pulled_bytes_total", "counter", "Chunk bytes the node pulled from peers since it started.", |s| {
            s.sync.as_ref().map(|r| r.bytes_pulled)
        }),
    ];
    for (name, kind, help, pick) in per_node {
        header(out, name, kind, help);
        for node in &in_layout {
            if let Some(value) = node.status.as_ref().and_then(pick) {
                let _ = writeln!(out, "{name}{{node=\"{}\"}} {value}", escape(&node.node_id));
            }
        }
    }
    header(out, "cairn_node_up", "gauge", "1 while the node answers probes (any state but down).");
    for node in &in_layout {
        let _ = writeln!(
            out,
            "cairn_node_up{{node=\"{}\"}} {}",
            escape(&node.node_id),
            u8::from(node.state != NodeState::Down)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_render_cumulative_buckets() {
        let histogram = Histogram::default();
        histogram.observe(Duration::from_micros(300));
        histogram.observe(Duration::from_millis(30));
        histogram.observe(Duration::from_secs(500));
        let mut out = String::new();
        histogram.render(&mut out, "x_seconds", "operation=\"GetObject\"");
        assert!(out.contains("x_seconds_bucket{operation=\"GetObject\",le=\"0.0005\"} 1\n"), "{out}");
        assert!(out.contains("x_seconds_bucket{operation=\"GetObject\",le=\"0.05\"} 2\n"), "{out}");
        assert!(out.contains("x_seconds_bucket{operation=\"GetObject\",le=\"120\"} 2\n"), "{out}");
        assert!(out.contains("x_seconds_bucket{operation=\"GetObject\",le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("x_seconds_count{operation=\"GetObject\"} 3\n"), "{out}");
        let mut bare = String::new();
        histogram.render(&mut bare, "y", "");
        assert!(bare.contains("y_bucket{le=\"+Inf\"} 3\n"), "{bare}");
    }

    #[test]
    fn requests_are_counted_by_operation_and_status() {
        let metrics = Arc::new(Metrics::default());
        let timer = metrics.start(Operation::PutObject);
        timer.received(10);
        timer.head(200);
        assert_eq!(metrics.in_flight.load(Ordering::Relaxed), 1);
        drop(timer);
        metrics.auth_failure("SignatureDoesNotMatch");
        let text = metrics.render(&ClusterState::default(), &[], &crate::health::assess(&ClusterState::default(), &[]));
        assert!(text.contains("cairn_s3_requests_total{operation=\"PutObject\",status=\"200\"} 1\n"), "{text}");
        assert!(text.contains("cairn_s3_received_bytes_total{operation=\"PutObject\"} 10\n"), "{text}");
        assert!(text.contains("cairn_s3_requests_in_flight 0\n"), "{text}");
        assert!(text.contains("cairn_s3_auth_failures_total{code=\"SignatureDoesNotMatch\"} 1\n"), "{text}");
        assert!(text.contains("cairn_cluster_health{verdict=\"unavailable\"} 1\n"), "{text}");
    }
}
