//! The console's pages, rendered with maud (every value is escaped).

use cairn_storage_node::failure_detector::NodeHealth;
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::super::cli::{human_bytes, human_duration, scrub_summary, sync_summary};
use super::super::{BucketView, CreatedKey, KeyView, NodeView, UsageTotals, url_component};
use super::session::{CSRF_FIELD, CSRF_HEADER};
use crate::health::ClusterHealth;
use crate::timefmt::iso8601;

const STYLE: &str = r#"
*{box-sizing:border-box}body{margin:0;font:15px/1.45 system-ui,sans-serif;color:#1d2430;background:#f5f6f8}
header{background:#1d2430;color:#fff;padding:.6rem 1rem;display:flex;flex-wrap:wrap;gap:.4rem 1rem;align-items:center}
header strong{margin-right:1rem}header a{color:#cfd6e2;text-decoration:none}header a.on{color:#fff;font-weight:600}
header form{margin-left:auto}main{padding:1rem;max-width:1200px;margin:auto}
h1{font-size:1.3rem;margin:.2rem 0 1rem}h2{font-size:1.05rem;margin:1.4rem 0 .6rem}
.scroll{overflow-x:auto;background:#fff;border:1px solid #dde1e7;border-radius:6px}
table{border-collapse:collapse;width:100%}th,td{padding:.45rem .6rem;text-align:left;border-bottom:1px solid #eef0f3;white-space:nowrap}
th{font-size:.8rem;text-transform:uppercase;color:#5b6472;background:#fafbfc}td.num{text-align:right}
.verdict{display:inline-block;padding:.15rem .6rem;border-radius:1rem;font-weight:600}
.healthy{background:#d8f3e1;color:#146c2e}.degraded,.read_only,.recovering,.suspect{background:#fff1cc;color:#7a5200}
.unavailable,.down{background:#fbd9d9;color:#8c1d1d}
form.inline{display:inline}form.card{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:.8rem;display:flex;flex-wrap:wrap;gap:.5rem;align-items:end}
label{display:flex;flex-direction:column;font-size:.8rem;color:#5b6472;gap:.2rem}
input,select,button{font:inherit;padding:.35rem .5rem;border:1px solid #c5ccd6;border-radius:4px;background:#fff}
button{background:#2857c5;color:#fff;border-color:#2857c5;cursor:pointer}button.danger{background:#fff;color:#a32020;border-color:#e2b4b4}
.notice{padding:.6rem .8rem;border-radius:6px;margin-bottom:1rem;background:#e8eefc}.notice.error{background:#fbd9d9}
code,.mono{font-family:ui-monospace,monospace;font-size:.9em;word-break:break-all}
.muted{color:#6b7480}ul.reasons{margin:.4rem 0 0}
@media (max-width:640px){main{padding:.6rem}th,td{padding:.35rem .4rem}}
"#;

/// Refreshes the `[data-live]` parts of the page every few seconds, and sends the files of an
/// upload form one by one as request bodies.
const SCRIPT: &str = r#"
document.querySelectorAll('[data-live]').length && setInterval(async () => {
  try {
    const page = new DOMParser().parseFromString(await (await fetch(location.href)).text(), 'text/html');
    document.querySelectorAll('[data-live]').forEach(part => {
      const fresh = page.getElementById(part.id);
      if (fresh) part.innerHTML = fresh.innerHTML;
    });
  } catch (e) {}
}, 5000);
document.querySelectorAll('form[data-upload]').forEach(form => form.addEventListener('submit', async event => {
  event.preventDefault();
  const status = form.querySelector('.status');
  for (const file of form.querySelector('input[type=file]').files) {
    status.textContent = 'uploading ' + file.name + '…';
    const url = form.action + '?key=' + encodeURIComponent(form.dataset.prefix + file.name);
    const answer = await fetch(url, {method: 'PUT', body: file, headers: {'CSRF_HEADER': form.dataset.csrf}});
    if (!answer.ok) { status.textContent = file.name + ': ' + await answer.text(); return; }
  }
  location.reload();
}));
"#;

/// Which page the navigation marks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Nav {
    Overview,
    Buckets,
    Keys,
    Background,
}

/// The `<head>` of every page.
fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Cairn" }
            style { (PreEscaped(STYLE)) }
        }
    }
}

/// A page in the console's frame.
fn frame(title: &str, nav: Nav, csrf: &str, body: Markup) -> String {
    let link =
        |href: &str, label: &str, this: Nav| html! { a href=(href) class=[(nav == this).then_some("on")] { (label) } };
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header {
                    strong { "Cairn" }
                    (link("/console", "Overview", Nav::Overview))
                    (link("/console/buckets", "Buckets", Nav::Buckets))
                    (link("/console/keys", "Access keys", Nav::Keys))
                    (link("/console/background", "Background work", Nav::Background))
                    form method="post" action="/console/logout" {
                        input type="hidden" name=(CSRF_FIELD) value=(csrf);
                        button id="logout" { "Log out" }
                    }
                }
                main { h1 { (title) } (body) }
                script { (PreEscaped(SCRIPT.replace("CSRF_HEADER", CSRF_HEADER))) }
            }
        }
    }
    .into_string()
}

/// The login page, with why the last attempt failed.
pub fn login(error: Option<&str>) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head("Log in"))
            body {
                main {
                    h1 { "Cairn console" }
                    @if let Some(error) = error { div.notice.error { (error) } }
                    form.card method="post" action="/console/login" {
                        label { "Admin token" input type="password" name="token" id="token" autocomplete="current-password" required; }
                        button id="login" { "Log in" }
                    }
                    p.muted { "The admin token is the gateway's --admin-token-file (cairn dev prints it)." }
                }
            }
        }
    }
    .into_string()
}

/// Something to tell at the top of a page.
pub enum Notice {
    /// A change failed.
    Error(String),
    /// A key was created: its secret, shown this once.
    NewKey(CreatedKey),
}

fn notice(notice: Option<&Notice>) -> Markup {
    html! {
        @match notice {
            Some(Notice::Error(message)) => div.notice.error id="error" { (message) },
            Some(Notice::NewKey(key)) => div.notice id="new-key" {
                "New access key " code id="new-key-id" { (key.access_key_id) } " with secret "
                code id="new-key-secret" { (key.secret_access_key) } ". The secret is shown only now."
            },
            None => {},
        }
    }
}

/// The overview: verdict, layout, usage and the node table.
pub fn overview(
    csrf: &str,
    health: &ClusterHealth,
    usage: &UsageTotals,
    layout_version: u64,
    moving_from: Option<u64>,
    nodes: &[NodeView],
) -> String {
    let body = html! {
        section id="summary" data-live {
            p {
                "Cluster " span id="verdict" class={ "verdict " (health.verdict.name()) } { (health.verdict.name()) }
                " · layout version " (layout_version)
                @if let Some(from) = moving_from { " (moving data from version " (from) ")" }
                " · " (usage.buckets) " buckets, " (usage.objects) " objects, " (human_bytes(usage.bytes))
            }
            @if !health.reasons.is_empty() {
                ul.reasons { @for reason in &health.reasons { li { (reason) } } }
            }
        }
        h2 { "Nodes" }
        div.scroll id="nodes" data-live {
            table {
                thead { tr { th { "Node" } th { "State" } th { "Zone" } th { "Address" } th { "Partitions" }
                    th { "Used" } th { "Free" } th { "Free inodes" } th { "Version" } th { "Uptime" } } }
                tbody {
                    @for n in nodes {
                        tr {
                            td { (n.node_id) }
                            td { span class={ "verdict " (n.state) } { (n.state) } }
                            td { (n.zone) } td.mono { (n.rpc_addr) } td.num { (n.partitions) }
                            td.num { (n.used_bytes.map_or("-".to_owned(), human_bytes)) }
                            td.num { (n.free_bytes.map_or("-".to_owned(), human_bytes)) }
                            td.num { (n.free_inodes.map_or("-".to_owned(), |i| i.to_string())) }
                            td { (n.version.as_deref().unwrap_or("-")) }
                            td { (n.uptime_secs.map_or("-".to_owned(), human_duration)) }
                        }
                    }
                }
            }
        }
    };
    frame("Overview", Nav::Overview, csrf, body)
}

/// The buckets page: the table, and the form that creates one.
pub fn buckets(csrf: &str, buckets: &[BucketView], keys: &[(String, String)], shown: Option<Notice>) -> String {
    let body = html! {
        (notice(shown.as_ref()))
        div.scroll id="buckets" {
            table {
                thead { tr { th { "Bucket" } th { "Objects" } th { "Size" } th { "Consistency" } th { "Replicas" } th { "Owner" } th {} } }
                tbody {
                    @for b in buckets {
                        tr {
                            td { a href=(format!("/console/buckets/{}", url_component(&b.name))) { (b.name) } }
                            td.num { (b.usage.objects) } td.num { (human_bytes(b.usage.bytes)) }
                            td {
                                form.inline method="post" action=(format!("/console/buckets/{}/consistency", b.name)) {
                                    input type="hidden" name=(CSRF_FIELD) value=(csrf);
                                    select name="level" onchange="this.form.submit()" {
                                        @for level in ["one", "quorum", "all"] {
                                            option value=(level) selected[b.consistency == level] { (level) }
                                        }
                                    }
                                }
                            }
                            td { span class={ "verdict " (b.health.name().replace('-', "_")) } { (b.health.name()) } }
                            td.mono { (b.owner) }
                            td {
                                form.inline method="post" action=(format!("/console/buckets/{}/delete", b.name))
                                    onsubmit=(format!("return confirm('Delete bucket {}?')", b.name)) {
                                    input type="hidden" name=(CSRF_FIELD) value=(csrf);
                                    button.danger { "Delete" }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Create a bucket" }
        form.card method="post" action="/console/buckets" id="create-bucket" {
            input type="hidden" name=(CSRF_FIELD) value=(csrf);
            label { "Name" input name="name" id="bucket-name" required pattern="[a-z0-9][a-z0-9.\\-]{1,61}[a-z0-9]"; }
            label { "Consistency" select name="consistency" id="bucket-consistency" {
                option value="one" { "one" } option value="quorum" selected { "quorum" } option value="all" { "all" }
            } }
            label { "Owner" select name="owner" id="bucket-owner" {
                @for (id, name) in keys { option value=(id) { (name) " (" (id) ")" } }
            } }
            button id="create" { "Create" }
        }
    };
    frame("Buckets", Nav::Buckets, csrf, body)
}

/// One entry of the object browser.
pub enum Listed {
    /// A "folder": keys rolled up at `/`.
    Prefix(String),
    /// An object.
    Object {
        /// Its key.
        key: String,
        /// Its size.
        size: u64,
        /// When it was written, Unix milliseconds.
        modified_ms: u64,
    },
}

/// A share link just made.
pub struct Shared {
    /// The object.
    pub key: String,
    /// The presigned URL.
    pub url: String,
    /// How long it is valid.
    pub expires_secs: u64,
}

/// What the object browser shows.
pub struct Browser<'a> {
    /// The bucket.
    pub bucket: &'a str,
    /// The prefix listed.
    pub prefix: &'a str,
    /// Its entries.
    pub entries: &'a [Listed],
    /// Where the next page starts, if any.
    pub next: Option<&'a str>,
    /// A share link to show.
    pub shared: Option<Shared>,
}

/// The object browser of one bucket at one prefix.
pub fn browser(csrf: &str, view: &Browser<'_>) -> String {
    let base = format!("/console/buckets/{}", view.bucket);
    // Each level of the prefix, as a link.
    let mut crumbs = vec![(view.bucket.to_owned(), String::new())];
    let mut so_far = String::new();
    for part in view.prefix.split_inclusive('/') {
        so_far.push_str(part);
        crumbs.push((part.to_owned(), so_far.clone()));
    }
    let body = html! {
        p id="crumbs" {
            @for (i, (label, prefix)) in crumbs.iter().enumerate() {
                @if i > 0 { " › " }
                a href=(format!("{base}?prefix={}", url_component(prefix))) { (label) }
            }
        }
        @if let Some(shared) = &view.shared {
            div.notice id="shared" {
                "Link to " code { (shared.key) } ", valid for " (human_duration(shared.expires_secs)) ":"
                input.mono id="share-url" readonly value=(shared.url) style="width:100%;margin-top:.4rem";
            }
        }
        div.scroll id="objects" {
            table {
                thead { tr { th { "Name" } th { "Size" } th { "Modified" } th {} } }
                tbody {
                    @for entry in view.entries {
                        @match entry {
                            Listed::Prefix(prefix) => tr {
                                td colspan="4" { a href=(format!("{base}?prefix={}", url_component(prefix))) { "📁 " (&prefix[view.prefix.len()..]) } }
                            },
                            Listed::Object { key, size, modified_ms } => tr {
                                td { a.object href=(format!("{base}/object?key={}", url_component(key))) download { (&key[view.prefix.len()..]) } }
                                td.num { (human_bytes(*size)) }
                                td { (iso8601(*modified_ms)) }
                                td {
                                    form.inline method="post" action=(format!("{base}/share")) {
                                        input type="hidden" name=(CSRF_FIELD) value=(csrf);
                                        input type="hidden" name="key" value=(key);
                                        input type="hidden" name="prefix" value=(view.prefix);
                                        select name="expires_secs" {
                                            option value="3600" { "1 hour" } option value="86400" { "1 day" } option value="604800" { "7 days" }
                                        }
                                        button.share { "Share" }
                                    }
                                    " "
                                    form.inline method="post" action=(format!("{base}/delete-object")) {
                                        input type="hidden" name=(CSRF_FIELD) value=(csrf);
                                        input type="hidden" name="key" value=(key);
                                        input type="hidden" name="prefix" value=(view.prefix);
                                        button.danger { "Delete" }
                                    }
                                }
                            },
                        }
                    }
                    @if view.entries.is_empty() { tr { td colspan="4" .muted { "Nothing here yet." } } }
                }
            }
        }
        @if let Some(next) = view.next {
            p { a href=(format!("{base}?prefix={}&after={}", url_component(view.prefix), url_component(next))) { "Next page →" } }
        }
        h2 { "Upload" }
        form.card method="post" action=(format!("{base}/object")) data-upload data-prefix=(view.prefix) data-csrf=(csrf) id="upload" {
            label { span { "Files, into /" (view.prefix) } input type="file" name="files" id="upload-files" multiple required; }
            button id="upload-button" { "Upload" }
            span.status.muted {}
        }
    };
    frame(&format!("Bucket {}", view.bucket), Nav::Buckets, csrf, body)
}

/// The access keys page.
pub fn keys(csrf: &str, keys: &[KeyView], buckets: &[String], shown: Option<Notice>) -> String {
    let body = html! {
        (notice(shown.as_ref()))
        div.scroll id="keys" {
            table {
                thead { tr { th { "Access key id" } th { "Name" } th { "Created" } th { "Buckets" } th {} } }
                tbody {
                    @for k in keys {
                        tr {
                            td.mono { (k.access_key_id) } td { (k.name) } td { (iso8601(k.created_ms)) }
                            td { @for b in &k.buckets { (b.bucket) " (" (b.permissions.names()) ") " } }
                            td {
                                form.inline method="post" action=(format!("/console/keys/{}/delete", url_component(&k.access_key_id))) {
                                    input type="hidden" name=(CSRF_FIELD) value=(csrf);
                                    button.danger { "Delete" }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Create an access key" }
        form.card method="post" action="/console/keys" id="create-key" {
            input type="hidden" name=(CSRF_FIELD) value=(csrf);
            label { "Name" input name="name" id="key-name" required; }
            button id="create-key-button" { "Create" }
        }
        h2 { "Grant a key rights on a bucket" }
        form.card method="post" action="/console/keys/grant" id="grant" {
            input type="hidden" name=(CSRF_FIELD) value=(csrf);
            label { "Key" select name="key" id="grant-key" { @for k in keys { option value=(k.access_key_id) { (k.name) " (" (k.access_key_id) ")" } } } }
            label { "Bucket" select name="bucket" id="grant-bucket" { @for b in buckets { option value=(b) { (b) } } } }
            label { "Read" input type="checkbox" name="read" id="grant-read" value="1"; }
            label { "Write" input type="checkbox" name="write" value="1"; }
            label { "Owner" input type="checkbox" name="owner" value="1"; }
            button id="grant-button" { "Set (none: revoke)" }
        }
    };
    frame("Access keys", Nav::Keys, csrf, body)
}

/// Background work on every node: scrub, repair, rebalance, garbage collection.
pub fn background(csrf: &str, nodes: &[NodeHealth], layout_version: u64) -> String {
    let body = html! {
        p.muted { "Layout version " (layout_version) ". Refreshes every 5 seconds." }
        div.scroll id="work" data-live {
            table {
                thead { tr { th { "Node" } th { "State" } th { "Scrub" } th { "Checked" } th { "Corrupt found / repaired" }
                    th { "Last full pass" } th { "Repair queue / errors" } th { "Rebalance" } th { "Pulled" } th { "GC deleted" } } }
                tbody {
                    @for n in nodes {
                        @let status = n.status.as_ref();
                        @let scrub = status.and_then(|s| s.scrub.as_ref());
                        @let sync = status.and_then(|s| s.sync.as_ref());
                        @let gc = status.and_then(|s| s.gc.as_ref());
                        tr {
                            td { (n.node_id) }
                            td { span class={ "verdict " (n.state.name()) } { (n.state.name()) } }
                            td { (scrub.map_or("-".to_owned(), scrub_summary)) }
                            td.num { (scrub.map_or("-".to_owned(), |r| human_bytes(r.progress.bytes_checked))) }
                            td.num { (scrub.map_or("-".to_owned(), |r| format!("{} / {}", r.progress.corruptions_found, r.progress.corruptions_repaired))) }
                            td { (scrub.and_then(|r| r.progress.last_pass_completed_ms).map_or("never".to_owned(), iso8601)) }
                            td.num { (scrub.map_or("-".to_owned(), |r| format!("{} / {}", r.repair.queued, r.repair.errored))) }
                            td { (sync.map_or("-".to_owned(), sync_summary)) }
                            td.num { (sync.map_or("-".to_owned(), |s| human_bytes(s.bytes_pulled))) }
                            td.num { (gc.map_or("-".to_owned(), |g| g.chunks_deleted.to_string())) }
                        }
                    }
                }
            }
        }
    };
    frame("Background work", Nav::Background, csrf, body)
}
