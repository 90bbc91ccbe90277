//! `cairn admin`: the command line over the admin API ([`AdminClient`]), printing tables or,
//! with `--json`, the API's answer as it came.

use anyhow::Context;
use cairn_storage_node::anti_entropy::SyncReport;
use cairn_storage_node::control::Permissions;
use cairn_storage_node::scrubber::ScrubReport;
use clap::{Args, Subcommand};
use serde::Serialize;

use super::{AdminClient, CreateBucketRequest, LayoutView, NodeScrub, UpdateNodeRequest};
use crate::timefmt::iso8601;

/// Where the admin API is and the token it wants.
#[derive(Args)]
pub struct AdminConnection {
    /// Admin API URL.
    #[arg(long, global = true, env = "CAIRN_ADMIN_URL", default_value = "http://127.0.0.1:9001")]
    admin_url: String,
    /// Admin API token.
    #[arg(long, global = true, env = "CAIRN_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
}

/// The `cairn admin` commands.
#[derive(Subcommand)]
pub enum AdminCommand {
    /// The whole cluster at a glance: health, layout, usage, and every node's state and
    /// background work (scrub, repair, rebalance).
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Nodes and the layout.
    Node {
        #[command(subcommand)]
        command: NodeCli,
    },
    /// Buckets: usage, health, consistency level.
    Bucket {
        #[command(subcommand)]
        command: BucketCli,
    },
    /// Access keys and what they may do with buckets.
    Key {
        #[command(subcommand)]
        command: KeyCli,
    },
    /// The scrubber of every node (or of one).
    Scrub {
        #[command(subcommand)]
        command: ScrubCli,
    },
}

/// `cairn admin node …`
#[derive(Subcommand)]
pub enum NodeCli {
    /// The layout: every node, its zone, weight and partitions, and any move in progress.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Every node's state, disk (bytes and inodes), version and uptime.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Have a running node that belongs to no cluster join this one (its data moves in).
    Add {
        /// The node's RPC address.
        rpc_addr: String,
    },
    /// Take a node out of the layout (its data moves to the others first).
    Remove {
        /// Node id.
        node_id: String,
    },
    /// Change a node's relative share of partitions.
    SetCapacity {
        /// Node id.
        node_id: String,
        /// New capacity weight (positive).
        capacity: u32,
    },
    /// Change a node's failure zone.
    SetZone {
        /// Node id.
        node_id: String,
        /// New zone.
        zone: String,
    },
}

/// `cairn admin bucket …`
#[derive(Subcommand)]
pub enum BucketCli {
    /// Every bucket with its objects, bytes, consistency level, health and owner.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One bucket in full: usage, health, owner, grants, CORS rules.
    Show {
        /// Bucket name.
        bucket: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Create a bucket owned by an access key.
    Create {
        /// Bucket name.
        bucket: String,
        /// Access key id of the owner.
        #[arg(long)]
        owner: String,
        /// `one`, `quorum` or `all`.
        #[arg(long, default_value = "quorum")]
        consistency: String,
    },
    /// Delete an empty bucket.
    Delete {
        /// Bucket name.
        bucket: String,
    },
    /// Change the consistency level of a bucket's later reads and writes.
    SetConsistency {
        /// Bucket name.
        bucket: String,
        /// `one`, `quorum` or `all`.
        level: String,
    },
}

/// `cairn admin key …`
#[derive(Subcommand)]
pub enum KeyCli {
    /// Create an access key that may create buckets of its own.
    Create {
        /// Name of the key.
        name: String,
        /// Print the key as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Every access key and the buckets it may use.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete an access key (one that owns a bucket is refused).
    Delete {
        /// Access key id.
        key_id: String,
    },
    /// Set what a key may do with a bucket, replacing what it had.
    Grant {
        /// Access key id.
        key_id: String,
        /// Bucket name.
        bucket: String,
        /// List the bucket and read its objects.
        #[arg(long)]
        read: bool,
        /// Write and delete objects.
        #[arg(long)]
        write: bool,
        /// Everything the owner may do.
        #[arg(long)]
        owner: bool,
    },
    /// Take away every right a key was granted on a bucket.
    Revoke {
        /// Access key id.
        key_id: String,
        /// Bucket name.
        bucket: String,
    },
}

/// `cairn admin scrub …`
#[derive(Subcommand)]
pub enum ScrubCli {
    /// Progress, findings and repair queue of each node's scrubber.
    Status {
        /// Only this node.
        #[arg(long)]
        node: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Start a full pass now.
    Start {
        /// Only this node.
        #[arg(long)]
        node: Option<String>,
    },
    /// Pause the pass in progress.
    Pause {
        /// Only this node.
        #[arg(long)]
        node: Option<String>,
    },
    /// Resume a paused pass.
    Resume {
        /// Only this node.
        #[arg(long)]
        node: Option<String>,
    },
}

/// Runs one `cairn admin` command against the admin API.
pub async fn run(connection: AdminConnection, command: AdminCommand) -> anyhow::Result<()> {
    let token = connection.admin_token.context("an admin token is required: --admin-token or CAIRN_ADMIN_TOKEN")?;
    let client = AdminClient::new(&connection.admin_url, &token);
    let mut out = String::new();
    match command {
        AdminCommand::Status { json } => {
            let status = client.status().await?;
            if json {
                return print_json(&status);
            }
            status_table(&mut out, &status);
        }
        AdminCommand::Node { command } => node(&client, command, &mut out).await?,
        AdminCommand::Bucket { command } => bucket(&client, command, &mut out).await?,
        AdminCommand::Key { command } => key(&client, command, &mut out).await?,
        AdminCommand::Scrub { command } => {
            let (reports, json) = match command {
                ScrubCli::Status { node, json } => (client.scrub_status(node.as_deref()).await?, json),
                ScrubCli::Start { node } => (client.scrub_command("start", node.as_deref()).await?, false),
                ScrubCli::Pause { node } => (client.scrub_command("pause", node.as_deref()).await?, false),
                ScrubCli::Resume { node } => (client.scrub_command("resume", node.as_deref()).await?, false),
            };
            if json {
                return print_json(&reports);
            }
            scrub_table(&mut out, &reports);
        }
    }
    print(&out);
    Ok(())
}

async fn node(client: &AdminClient, command: NodeCli, out: &mut String) -> anyhow::Result<()> {
    let layout = match command {
        NodeCli::Status { json } => {
            let nodes = client.nodes().await?;
            if json {
                return print_json(&nodes);
            }
            line(
                out,
                format_args!(
                    "{:<16} {:<10} {:<10} {:>9} {:>9} {:>9} {:>12} {:<10} {:>8}  LAST ERROR",
                    "NODE", "STATE", "ZONE", "USED", "FREE", "CAPACITY", "FREE INODES", "VERSION", "UPTIME"
                ),
            );
            for n in nodes {
                let bytes = |b: Option<u64>| b.map_or("-".to_owned(), human_bytes);
                line(
                    out,
                    format_args!(
                        "{:<16} {:<10} {:<10} {:>9} {:>9} {:>9} {:>12} {:<10} {:>8}  {}",
                        n.node_id,
                        n.state,
                        n.zone,
                        bytes(n.used_bytes),
                        bytes(n.free_bytes),
                        bytes(n.capacity_bytes),
                        n.free_inodes.map_or("-".to_owned(), |i| i.to_string()),
                        n.version.as_deref().unwrap_or("-"),
                        n.uptime_secs.map_or("-".to_owned(), human_duration),
                        n.last_error.unwrap_or_default()
                    ),
                );
            }
            return Ok(());
        }
        NodeCli::List { json } => {
            let layout = client.layout().await?;
            if json {
                return print_json(&layout);
            }
            layout
        }
        NodeCli::Add { rpc_addr } => client.add_node(&rpc_addr).await?,
        NodeCli::Remove { node_id } => client.remove_node(&node_id).await?,
        NodeCli::SetCapacity { node_id, capacity } => {
            let update = UpdateNodeRequest { capacity_weight: Some(capacity), ..Default::default() };
            client.update_node(&node_id, &update).await?
        }
        NodeCli::SetZone { node_id, zone } => {
            let update = UpdateNodeRequest { zone: Some(zone), ..Default::default() };
            client.update_node(&node_id, &update).await?
        }
    };
    layout_table(out, &layout);
    Ok(())
}

async fn bucket(client: &AdminClient, command: BucketCli, out: &mut String) -> anyhow::Result<()> {
    let shown = match command {
        BucketCli::List { json } => {
            let buckets = client.buckets().await?;
            if json {
                return print_json(&buckets);
            }
            line(
                out,
                format_args!(
                    "{:<32} {:>10} {:>10} {:<12} {:<12} OWNER",
                    "BUCKET", "OBJECTS", "BYTES", "CONSISTENCY", "HEALTH"
                ),
            );
            for b in buckets {
                let objects =
                    if b.usage.complete { b.usage.objects.to_string() } else { format!("≥{}", b.usage.objects) };
                line(
                    out,
                    format_args!(
                        "{:<32} {:>10} {:>10} {:<12} {:<12} {}",
                        b.name,
                        objects,
                        human_bytes(b.usage.bytes),
                        b.consistency,
                        b.health.name(),
                        b.owner
                    ),
                );
            }
            return Ok(());
        }
        BucketCli::Show { bucket, json } => {
            let view = client.bucket(&bucket).await?;
            if json {
                return print_json(&view);
            }
            view
        }
        BucketCli::Create { bucket, owner, consistency } => {
            let request = CreateBucketRequest { name: bucket, owner, consistency: Some(consistency) };
            client.create_bucket(&request).await?
        }
        BucketCli::Delete { bucket } => {
            client.delete_bucket(&bucket).await?;
            line(out, format_args!("deleted {bucket}"));
            return Ok(());
        }
        BucketCli::SetConsistency { bucket, level } => client.set_consistency(&bucket, &level).await?,
    };
    line(out, format_args!("bucket:      {}", shown.name));
    line(out, format_args!("consistency: {}", shown.consistency));
    line(out, format_args!("health:      {}", shown.health.name()));
    line(
        out,
        format_args!(
            "usage:       {} objects, {} ({}counted {})",
            shown.usage.objects,
            human_bytes(shown.usage.bytes),
            if shown.usage.complete { "" } else { "partly " },
            iso8601(shown.usage.computed_ms)
        ),
    );
    line(out, format_args!("owner:       {}", shown.owner));
    line(out, format_args!("created:     {}", iso8601(shown.created_ms)));
    line(out, format_args!("acl:         {}", shown.acl));
    for (key, permissions) in &shown.grants {
        line(out, format_args!("grant:       {key} {}", permissions.names()));
    }
    for rule in &shown.cors {
        line(
            out,
            format_args!("cors:        {} from {}", rule.allowed_methods.join(","), rule.allowed_origins.join(",")),
        );
    }
    Ok(())
}

async fn key(client: &AdminClient, command: KeyCli, out: &mut String) -> anyhow::Result<()> {
    match command {
        KeyCli::Create { name, json } => {
            let key = client.create_key(&name).await?;
            if json {
                return print_json(&key);
            }
            line(out, format_args!("access key id:     {}", key.access_key_id));
            line(out, format_args!("secret access key: {}", key.secret_access_key));
        }
        KeyCli::List { json } => {
            let keys = client.keys().await?;
            if json {
                return print_json(&keys);
            }
            line(out, format_args!("{:<24} {:<20} {:<20}  BUCKETS", "ACCESS KEY ID", "NAME", "CREATED"));
            for k in keys {
                let buckets: Vec<String> =
                    k.buckets.iter().map(|b| format!("{}({})", b.bucket, b.permissions.names())).collect();
                line(
                    out,
                    format_args!(
                        "{:<24} {:<20} {:<20}  {}",
                        k.access_key_id,
                        k.name,
                        iso8601(k.created_ms),
                        buckets.join(" ")
                    ),
                );
            }
        }
        KeyCli::Delete { key_id } => {
            client.delete_key(&key_id).await?;
            line(out, format_args!("deleted {key_id}"));
        }
        KeyCli::Grant { key_id, bucket, read, write, owner } => {
            let permissions = Permissions { read, write, owner };
            anyhow::ensure!(!permissions.is_empty(), "grant --read, --write or --owner (revoke takes rights away)");
            let view = client.grant(&key_id, &bucket, permissions).await?;
            let now = view.grants.get(&key_id).copied().unwrap_or_default();
            line(out, format_args!("{key_id} on {bucket}: {}", now.names()));
        }
        KeyCli::Revoke { key_id, bucket } => {
            client.grant(&key_id, &bucket, Permissions::default()).await?;
            line(out, format_args!("{key_id} on {bucket}: -"));
        }
    }
    Ok(())
}

/// The status table: verdict and reasons, layout, usage, then one line per node.
fn status_table(out: &mut String, status: &super::ClusterStatus) {
    let health = &status.health;
    line(out, format_args!("cluster: {}", health.verdict.name()));
    for reason in &health.reasons {
        line(out, format_args!("  - {reason}"));
    }
    match status.moving_from {
        Some(from) => {
            line(out, format_args!("layout:  version {} (moving data from version {from})", status.layout_version))
        }
        None => line(out, format_args!("layout:  version {}", status.layout_version)),
    }
    let usage = &status.usage;
    let partly = if usage.complete { "" } else { " (some shards did not answer)" };
    line(
        out,
        format_args!(
            "usage:   {} buckets, {} objects, {}{partly}",
            usage.buckets,
            usage.objects,
            human_bytes(usage.bytes)
        ),
    );
    line(
        out,
        format_args!(
            "{:<16} {:<24} {:<10} {:>9} {:>7} {:<13} {:>14} {:<24}  LAST ERROR",
            "NODE", "ADDRESS", "STATE", "IN FLIGHT", "MISSED", "SCRUB", "REPAIR Q/ERR", "REBALANCE"
        ),
    );
    for node in &status.nodes {
        let scrub = node.status.as_ref().and_then(|s| s.scrub.as_ref());
        let (scrub_state, repair) = match scrub {
            Some(r) => (scrub_summary(r), format!("{}/{}", r.repair.queued, r.repair.errored)),
            None => ("-".to_owned(), "-".to_owned()),
        };
        let sync = node.status.as_ref().and_then(|s| s.sync.as_ref()).map_or("-".to_owned(), sync_summary);
        line(
            out,
            format_args!(
                "{:<16} {:<24} {:<10} {:>9} {:>7} {:<13} {:>14} {:<24}  {}",
                node.node_id,
                node.rpc_addr,
                node.state.name(),
                node.in_flight,
                node.failed_probes,
                scrub_state,
                repair,
                sync,
                node.last_error.as_deref().unwrap_or_default()
            ),
        );
    }
}

/// The layout table of `cairn admin node`.
fn layout_table(out: &mut String, layout: &LayoutView) {
    match layout.moving_from {
        Some(from) => line(out, format_args!("layout version {} (moving data from version {from})", layout.version)),
        None => line(out, format_args!("layout version {}", layout.version)),
    }
    line(
        out,
        format_args!(
            "{:<16} {:<24} {:<12} {:>8} {:<10} {:>10}  MOVE",
            "NODE", "ADDRESS", "ZONE", "CAPACITY", "MEMBER", "PARTITIONS"
        ),
    );
    for node in &layout.nodes {
        let moving = match (node.previous_partitions, node.synced) {
            (Some(before), Some(true)) => format!("done (had {before})"),
            (Some(before), _) => format!("pulling (had {before})"),
            _ => "-".to_owned(),
        };
        line(
            out,
            format_args!(
                "{:<16} {:<24} {:<12} {:>8} {:<10} {:>10}  {}",
                node.node_id, node.rpc_addr, node.zone, node.capacity_weight, node.membership, node.partitions, moving
            ),
        );
    }
}

/// One line per node of `cairn admin scrub`.
fn scrub_table(out: &mut String, reports: &[NodeScrub]) {
    line(
        out,
        format_args!(
            "{:<16} {:<13} {:>10} {:>12} {:>7} {:>8} {:>8} {:>10}  LAST PASS COMPLETED",
            "NODE", "SCRUB", "CHUNKS", "BYTES", "FOUND", "REPAIRED", "QUEUED", "ERRORED"
        ),
    );
    for node in reports {
        let Some(r) = &node.report else {
            line(out, format_args!("{:<16} unreachable: {}", node.node_id, node.error.as_deref().unwrap_or("")));
            continue;
        };
        let p = &r.progress;
        let (chunks, bytes) = if p.pass_started_ms.is_some() {
            (p.chunks_checked, p.bytes_checked)
        } else {
            (p.last_pass_chunks, p.last_pass_bytes)
        };
        let last = p.last_pass_completed_ms.map_or("never".to_owned(), iso8601);
        line(
            out,
            format_args!(
                "{:<16} {:<13} {:>10} {:>12} {:>7} {:>8} {:>8} {:>10}  {}",
                node.node_id,
                scrub_summary(r),
                chunks,
                bytes,
                p.corruptions_found,
                p.corruptions_repaired,
                r.repair.queued,
                r.repair.errored,
                last
            ),
        );
    }
}

/// A node's anti-entropy progress in a few characters: `synced`, `3 parts/12 MiB left`.
pub fn sync_summary(sync: &SyncReport) -> String {
    if sync.partitions_remaining == 0 && sync.handoff_pending == 0 {
        return if sync.moving { "moving".to_owned() } else { "synced".to_owned() };
    }
    let mut parts = Vec::new();
    if sync.partitions_remaining > 0 {
        parts.push(format!("{} parts/{} left", sync.partitions_remaining, human_bytes(sync.bytes_remaining)));
    }
    if sync.handoff_pending > 0 {
        parts.push(format!("{} to hand off", sync.handoff_pending));
    }
    parts.join(", ")
}

/// A scrubber's state in a few characters: `running 42%`, `paused 42%`, `idle`.
pub fn scrub_summary(report: &ScrubReport) -> String {
    match report.state.as_str() {
        "idle" => "idle".to_owned(),
        state => format!("{state} {}%", report.pass_percent),
    }
}

/// Bytes in binary units: `512 B`, `1.5 KiB`, `12.0 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

/// A duration in its two largest units: `45s`, `12m30s`, `3h05m`, `2d04h`.
pub fn human_duration(secs: u64) -> String {
    let (days, hours, minutes) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60);
    match (days, secs / 3600, secs / 60) {
        (d, _, _) if d > 0 => format!("{days}d{hours:02}h"),
        (_, h, _) if h > 0 => format!("{h}h{minutes:02}m"),
        (_, _, m) if m > 0 => format!("{m}m{:02}s", secs % 60),
        _ => format!("{secs}s"),
    }
}

fn line(out: &mut String, text: std::fmt::Arguments<'_>) {
    use std::fmt::Write;
    let _ = writeln!(out, "{text}");
}

#[allow(clippy::print_stdout)]
fn print(text: &str) {
    print!("{text}");
}

fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    print(&format!("{}\n", serde_json::to_string_pretty(value)?));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_read_like_people_write_them() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(12 << 30), "12.0 GiB");
        assert_eq!(human_duration(45), "45s");
        assert_eq!(human_duration(750), "12m30s");
        assert_eq!(human_duration(3 * 3600 + 300), "3h05m");
        assert_eq!(human_duration(2 * 86_400 + 4 * 3600), "2d04h");
    }
}
