//! The web console in headless Chromium: log in with the admin token, see the nodes and
//! buckets, create a bucket at ONE, upload and download an object, share it, and save a
//! screenshot of every page under `target/tmp/console-screenshots/`.

use std::path::PathBuf;

use cairn_integration_tests::{DevCluster, test_bytes};

use crate::webdriver::Browser;

/// Where the screenshots go: `CARGO_TARGET_TMPDIR/console-screenshots`.
fn screenshot_dir() -> anyhow::Result<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_logs_in_shows_the_cluster_and_moves_objects_in_and_out() -> anyhow::Result<()> {
    let cluster = DevCluster::start(3)?;
    let s3 = cluster.s3();
    s3.create_bucket().bucket("existing").send().await?;
    crate::put(&s3, "existing", "docs/readme.txt", b"hello".to_vec()).await?;
    let shots = screenshot_dir()?;
    let console = format!("{}/console", cluster.info.admin_endpoint);
    let browser = Browser::start().await?;

    // Without a session every page leads to the login page; a wrong token is refused.
    browser.goto(&format!("{console}/buckets")).await?;
    assert!(browser.url().await?.ends_with("/console/login"), "{}", browser.url().await?);
    browser.screenshot(&shots.join("01-login.png")).await?;
    browser.find("#token").await?.type_text("not the token").await?;
    browser.find("#login").await?.click().await?;
    browser.wait_for_text("That is not the admin token").await?;
    browser.find("#token").await?.type_text(&cluster.info.admin_token).await?;
    browser.find("#login").await?.click().await?;

    // The overview: verdict and every node.
    let text = browser.wait_for_text("Nodes").await?;
    assert!(text.contains("Cluster healthy"), "{text}");
    for node in &cluster.info.nodes {
        assert!(text.contains(&node.id), "{text}");
    }
    browser.screenshot(&shots.join("02-overview.png")).await?;

    // Buckets: the existing one with its count, then a new one at ONE.
    browser.goto(&format!("{console}/buckets")).await?;
    let text = browser.wait_for_text("existing").await?;
    assert!(text.contains("Create a bucket"), "{text}");
    browser.find("#bucket-name").await?.type_text("console-made").await?;
    browser.find("#bucket-consistency").await?.select("one").await?;
    browser.find("#create").await?.click().await?;
    browser.wait_for_text("console-made").await?;
    browser.screenshot(&shots.join("03-buckets.png")).await?;
    let made = cluster.admin_json(&["bucket", "show", "console-made"])?;
    assert_eq!(made["consistency"], "one", "{made}");

    // Upload through the bucket page, then download through it.
    let upload_dir = tempfile::tempdir()?;
    let content = test_bytes(300_000, 7);
    let file = upload_dir.path().join("photo.bin");
    std::fs::write(&file, &content)?;
    browser.goto(&format!("{console}/buckets/console-made")).await?;
    browser.wait_for_text("Nothing here yet").await?;
    browser.find("#upload-files").await?.type_text(&file.display().to_string()).await?;
    browser.find("#upload-button").await?.click().await?;
    browser.wait_for_text("photo.bin").await?;
    assert_eq!(crate::get(&s3, "console-made", "photo.bin").await?, content, "the upload stored the file");
    let downloaded = browser
        .run_async(
            "const done = arguments[arguments.length - 1];
             fetch(document.querySelector('a.object').href).then(async r => {
               const bytes = new Uint8Array(await r.arrayBuffer());
               let sum = 0; for (const b of bytes) sum = (sum * 31 + b) % 1000000007;
               done({status: r.status, length: bytes.length, sum, disposition: r.headers.get('content-disposition'),
                     sandbox: r.headers.get('content-security-policy'), nosniff: r.headers.get('x-content-type-options')});
             });",
        )
        .await?;
    let expected_sum = content.iter().fold(0u64, |sum, &b| (sum * 31 + u64::from(b)) % 1_000_000_007);
    assert_eq!(downloaded["status"], 200, "{downloaded}");
    assert_eq!(downloaded["length"], content.len(), "{downloaded}");
    assert_eq!(downloaded["sum"], expected_sum, "{downloaded}");
    let disposition = downloaded["disposition"].as_str().unwrap_or_default();
    assert!(disposition.starts_with("attachment; filename=\"photo.bin\""), "{downloaded}");
    assert_eq!((downloaded["sandbox"].as_str(), downloaded["nosniff"].as_str()), (Some("sandbox"), Some("nosniff")));

    // A share link works without any credentials.
    browser.find("button.share").await?.click().await?;
    browser.wait_for_text("valid for").await?;
    let url = browser.find("#share-url").await?.property("value").await?;
    assert!(url.starts_with(&cluster.info.s3_endpoint) && url.contains("X-Amz-Signature="), "{url}");
    let (status, body) = crate::http_get(&url).await?;
    assert_eq!((status, body.len()), (200, String::from_utf8_lossy(&content).len()));
    browser.screenshot(&shots.join("04-bucket-browser.png")).await?;

    // Prefix navigation in the other bucket.
    browser.goto(&format!("{console}/buckets/existing")).await?;
    browser.find("#objects a").await?.click().await?;
    browser.wait_for_text("readme.txt").await?;
    assert!(browser.url().await?.contains("prefix=docs%2F"), "{}", browser.url().await?);

    // Access keys and background work.
    browser.goto(&format!("{console}/keys")).await?;
    let text = browser.wait_for_text(&cluster.info.access_key_id).await?;
    assert!(text.contains("console-made (read,write,owner)"), "{text}");
    // A new key, shown once, granted read on the new bucket, which it can then list.
    browser.find("#key-name").await?.type_text("viewer").await?;
    browser.find("#create-key-button").await?.click().await?;
    browser.wait_for_text("The secret is shown only now").await?;
    let viewer_id = browser.find("#new-key-id").await?.text().await?;
    let viewer_secret = browser.find("#new-key-secret").await?.text().await?;
    browser.find("#grant-key").await?.select(&viewer_id).await?;
    browser.find("#grant-bucket").await?.select("console-made").await?;
    browser.find("#grant-read").await?.click().await?;
    browser.find("#grant-button").await?.click().await?;
    browser.wait_for_text("console-made (read)").await?;
    let viewer = cluster.s3_with(&viewer_id, &viewer_secret);
    let listed = viewer.list_objects_v2().bucket("console-made").send().await?;
    assert_eq!(listed.key_count(), Some(1));
    browser.screenshot(&shots.join("05-keys.png")).await?;
    browser.goto(&format!("{console}/background")).await?;
    let text = browser.wait_for_text("Layout version").await?;
    assert!(text.contains("synced") || text.contains("moving"), "{text}");
    browser.screenshot(&shots.join("06-background.png")).await?;

    // On a phone-sized screen.
    browser.resize(390, 844).await?;
    browser.goto(&console).await?;
    browser.wait_for_text("Nodes").await?;
    browser.screenshot(&shots.join("07-overview-phone.png")).await?;

    // Deleting the object through the page.
    browser.resize(1280, 900).await?;
    browser.goto(&format!("{console}/buckets/console-made")).await?;
    browser.find("#objects button.danger").await?.click().await?;
    browser.wait_for_text("Nothing here yet").await?;
    assert!(s3.head_object().bucket("console-made").key("photo.bin").send().await.is_err());

    // With the session cookie but without its CSRF token, changes are refused.
    let forged = browser
        .run_async(
            "const done = arguments[arguments.length - 1];
             const form = {method: 'POST', headers: {'content-type': 'application/x-www-form-urlencoded'},
                           body: 'name=forged&owner=x&consistency=one&csrf=guess'};
             Promise.all([
               fetch('/console/buckets', form),
               fetch('/console/buckets/console-made/object?key=forged', {method: 'PUT', body: 'x'}),
             ]).then(answers => done(answers.map(a => a.status)));",
        )
        .await?;
    assert_eq!(forged, serde_json::json!([403, 403]));
    assert!(cluster.admin_json(&["bucket", "show", "forged"]).is_err(), "no bucket was made");

    // Without a session, a change is sent to the login page.
    let (status, _) = crate::send_to_cluster(
        http::Request::post(format!("{console}/buckets"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(http_body_util::Full::new(bytes::Bytes::from("name=forged&owner=x&consistency=one")))?,
    )
    .await?;
    assert_eq!(status, 303, "no session: sent to the login page");
    browser.quit().await?;
    Ok(())
}
