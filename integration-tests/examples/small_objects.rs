//! Small-object throughput of a fresh `cairn dev` cluster (3 nodes): PUTs, then GETs, of
//! COUNT objects of SIZE bytes with CONCURRENCY requests in flight, through the AWS SDK; and
//! the time the admin API takes to list the bucket with its usage, empty and then full (the
//! usage is kept as running totals, so the two should be alike).
//! The cluster runs the `cairn` binary named by `CAIRN_BIN` (default: next to this example).
//!
//! Usage: cargo run -p cairn-integration-tests --example small_objects -- [COUNT] [SIZE] [CONCURRENCY]

use std::time::Instant;

use cairn_integration_tests::{DevCluster, test_bytes};

#[tokio::main]
#[allow(clippy::print_stdout)] // the figures are the output
async fn main() -> anyhow::Result<()> {
    let arg = |i: usize, default: usize| std::env::args().nth(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (count, size, concurrency) = (arg(1, 2000), arg(2, 4096), arg(3, 16));
    let cluster = DevCluster::start(3)?;
    let s3 = cluster.s3();
    s3.create_bucket().bucket("small").send().await?;
    let body = test_bytes(size, 1);
    let admin = cairn_gateway::admin::AdminClient::new(&cluster.info.admin_endpoint, &cluster.info.admin_token);
    // A `cairn` from before bucket usage existed is still measured for throughput.
    let empty = usage_listing_ms(&admin, 0).await.map_err(|e| println!("bucket usage not measured: {e}")).ok();

    for phase in ["PUT", "GET"] {
        let started = Instant::now();
        let mut running = tokio::task::JoinSet::new();
        for i in 0..count {
            while running.len() >= concurrency {
                running.join_next().await.expect("a request is running")??;
            }
            let (s3, body, key) = (s3.clone(), body.clone(), format!("object-{i:06}"));
            running.spawn(async move {
                if phase == "PUT" {
                    s3.put_object().bucket("small").key(key).body(body.into()).send().await?;
                } else {
                    let out = s3.get_object().bucket("small").key(key).send().await?;
                    anyhow::ensure!(out.body.collect().await?.into_bytes().len() == body.len(), "short read");
                }
                anyhow::Ok(())
            });
        }
        while let Some(done) = running.join_next().await {
            done??;
        }
        let secs = started.elapsed().as_secs_f64();
        println!("{phase}: {count} objects of {size} B, {concurrency} in flight: {:.0} ops/s", count as f64 / secs);
    }
    if let Some(empty) = empty {
        let full = usage_listing_ms(&admin, count as u64).await?;
        println!(
            "bucket usage through the admin API (median of 21): empty {empty:.2} ms, {count} objects {full:.2} ms, ratio {:.2}",
            full / empty
        );
    }
    Ok(())
}

/// The median time of `GET /v1/buckets`, checking that it counts `objects`.
async fn usage_listing_ms(admin: &cairn_gateway::admin::AdminClient, objects: u64) -> anyhow::Result<f64> {
    let mut times = Vec::new();
    for _ in 0..21 {
        let started = Instant::now();
        let buckets = admin.buckets().await?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        let counted = buckets.iter().find(|b| b.name == "small").map(|b| b.usage.objects);
        anyhow::ensure!(counted == Some(objects), "usage counted {counted:?}, expected {objects}");
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}
