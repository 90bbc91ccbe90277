//! Network partitions through per-link proxies: a gateway cut off with a minority of nodes,
//! another gateway with the majority.

use std::time::{Duration, Instant};

use cairn_integration_tests::fault::{FaultCluster, Source};
use cairn_integration_tests::proxy::{Direction, LinkState};

use crate::{create_bucket_with_level, error_code, get, put};

/// Polls gateway `g`'s view until every node of `nodes` is in `state`.
fn wait_for_states(cluster: &FaultCluster, g: usize, nodes: &[usize], state: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = cluster.admin_json(g, &["status"])?;
        let listed = status["nodes"].as_array().cloned().unwrap_or_default();
        let in_state = |i: &usize| {
            let id = format!("node-{}", i + 1);
            listed.iter().any(|n| n["node_id"] == id.as_str() && n["state"] == state)
        };
        if nodes.iter().all(in_state) {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "gateway {g} never saw {nodes:?} {state}: {status}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn refused(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Option<String> {
    let err = s3.put_object().bucket(bucket).key(key).body(b"refused".to_vec().into()).send().await.err()?;
    error_code(&err)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_minority_side_refuses_quorum_and_all_writes_and_accepts_one() -> anyhow::Result<()> {
    let cluster = FaultCluster::start(3, 2, &crate::FAST_FAILURE_DETECTION)?;
    let (minority, majority) = (cluster.s3(0), cluster.s3(1));
    for level in ["one", "quorum", "all"] {
        create_bucket_with_level(&minority, level, level).await?;
        put(&minority, level, "k", b"before".to_vec()).await?;
    }

    // Gateway 0 and node 1 on one side; gateway 1 and nodes 2 and 3 on the other.
    cluster.partition(&[0], &[0]);
    wait_for_states(&cluster, 0, &[1, 2], "down")?;
    wait_for_states(&cluster, 1, &[0], "down")?;

    // Minority: QUORUM and ALL refuse, ONE accepts and reads its own write.
    assert_eq!(refused(&minority, "quorum", "k").await.as_deref(), Some("ServiceUnavailable"));
    assert_eq!(refused(&minority, "all", "k").await.as_deref(), Some("ServiceUnavailable"));
    put(&minority, "one", "k", b"minority".to_vec()).await?;
    assert_eq!(get(&minority, "one", "k").await?, b"minority");
    // The control plane has no majority there either.
    let err = minority.create_bucket().bucket("split-brain").send().await.unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(503), "{}", cluster.logs());

    // Majority: QUORUM works; ALL refuses writes (a replica is unreachable) but reads.
    put(&majority, "quorum", "k", b"majority".to_vec()).await?;
    put(&majority, "one", "other", b"majority side".to_vec()).await?;
    assert_eq!(get(&majority, "quorum", "k").await?, b"majority");
    assert_eq!(refused(&majority, "all", "k").await.as_deref(), Some("ServiceUnavailable"));
    assert_eq!(get(&majority, "all", "k").await?, b"before");
    majority.create_bucket().bucket("majority-made").send().await?;

    // Healed: both gateways see every node again, and QUORUM reads agree on the newest value.
    cluster.heal();
    wait_for_states(&cluster, 0, &[1, 2], "healthy")?;
    wait_for_states(&cluster, 1, &[0], "healthy")?;
    assert_eq!(get(&minority, "quorum", "k").await?, b"majority");
    assert_eq!(get(&majority, "quorum", "k").await?, b"majority");
    put(&minority, "all", "k", b"after".to_vec()).await?;
    assert_eq!(get(&majority, "all", "k").await?, b"after");
    let deadline = Instant::now() + Duration::from_secs(30);
    while minority.head_bucket().bucket("majority-made").send().await.is_err() {
        anyhow::ensure!(Instant::now() < deadline, "the minority gateway never learned the new bucket");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Anti-entropy: every replica ends with the same rows and chunks, ONE writes of both sides
    // included, and either gateway reads them at level ONE from any replica.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cluster.converged().await? {
        anyhow::ensure!(Instant::now() < deadline, "the replicas never converged:\n{}", cluster.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for s3 in [&minority, &majority] {
        assert_eq!(get(s3, "one", "k").await?, b"minority");
        assert_eq!(get(s3, "one", "other").await?, b"majority side");
    }
    Ok(())
}

/// A node whose answers never reach the gateway looks hung, not dead: requests wait at most the
/// quorum timeout, the detector then marks it down, and a slow link is only slow.
#[tokio::test(flavor = "multi_thread")]
async fn blackholed_and_slow_links_cost_at_most_the_quorum_timeout() -> anyhow::Result<()> {
    let cluster = FaultCluster::start(3, 1, &crate::FAST_FAILURE_DETECTION)?;
    let s3 = cluster.s3(0);
    create_bucket_with_level(&s3, "quorum", "quorum").await?;
    create_bucket_with_level(&s3, "all", "all").await?;
    put(&s3, "quorum", "k", vec![1; 1000]).await?;

    // Node 3 still receives the gateway's requests, but its answers are held.
    let held = LinkState { response: Direction { blackhole: true, ..Direction::default() }, ..LinkState::default() };
    cluster.link(Source::Gateway(0), 2).set(held);
    put(&s3, "quorum", "k", vec![2; 1000]).await?;
    assert_eq!(get(&s3, "quorum", "k").await?, vec![2; 1000]);
    let started = Instant::now();
    assert_eq!(refused(&s3, "all", "k").await.as_deref(), Some("ServiceUnavailable"));
    assert!(
        started.elapsed() < Duration::from_millis(crate::FAST_QUORUM_TIMEOUT_MS + 3_000),
        "{:?}",
        started.elapsed()
    );
    wait_for_states(&cluster, 0, &[2], "down")?;

    // A slow link to node 2: QUORUM now needs it, and waits for it.
    let slow = LinkState {
        request: Direction { delay: Duration::from_millis(100), ..Direction::default() },
        ..LinkState::default()
    };
    cluster.link(Source::Gateway(0), 1).set(slow);
    let started = Instant::now();
    put(&s3, "quorum", "slow", b"late but taken".to_vec()).await?;
    assert!(started.elapsed() >= Duration::from_millis(100), "{:?}", started.elapsed());

    cluster.heal();
    wait_for_states(&cluster, 0, &[1, 2], "healthy")?;
    put(&s3, "all", "k", b"every replica".to_vec()).await?;
    assert_eq!(get(&s3, "quorum", "slow").await?, b"late but taken");
    Ok(())
}
