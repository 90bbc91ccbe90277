//! A small W3C WebDriver client: enough of the protocol to drive headless Chromium through
//! chromedriver (navigate, find, type, click, read, run a script, take screenshots).

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The key W3C WebDriver names element references by.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process and one browser session in it; both end on drop.
pub struct Browser {
    driver: Child,
    base: String,
    _profile: tempfile::TempDir,
}

/// An element of the current page.
pub struct Element<'a> {
    browser: &'a Browser,
    id: String,
}

impl Browser {
    /// Starts chromedriver on a free loopback port and a headless Chromium session.
    pub async fn start() -> anyhow::Result<Self> {
        let port = cairn_integration_tests::fault::free_addr()?.rsplit_once(':').map(|(_, p)| p.to_owned());
        let port = port.ok_or_else(|| anyhow::anyhow!("no free port"))?;
        // Its own process group, so that dropping the browser ends Chromium's processes too.
        let driver = Command::new("chromedriver")
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| anyhow::anyhow!("chromedriver (Debian's chromium-driver package) did not start: {e}"))?;
        let profile = tempfile::Builder::new().prefix("cairn-chromium-").tempdir()?;
        let mut browser = Self { driver, base: format!("http://127.0.0.1:{port}"), _profile: profile };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = browser.call(http::Method::GET, "/status", None).await.ok();
            if ready.is_some_and(|v| v["ready"] == true) {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "chromedriver never became ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Flags that keep Chromium from reaching for the network it does not have.
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,900",
        ]
        .iter()
        .map(|a| a.to_string())
        .chain([format!("--user-data-dir={}", browser._profile.path().display())])
        .collect::<Vec<_>>();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args}
        }}});
        let session = browser.call(http::Method::POST, "/session", Some(capabilities)).await?;
        let id = session["sessionId"].as_str().ok_or_else(|| anyhow::anyhow!("no session id: {session}"))?;
        browser.base = format!("{}/session/{id}", browser.base);
        Ok(browser)
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.call(http::Method::POST, "/url", Some(json!({"url": url}))).await.map(drop)
    }

    /// The URL of the current page.
    pub async fn url(&self) -> anyhow::Result<String> {
        Ok(self.call(http::Method::GET, "/url", None).await?.as_str().unwrap_or_default().to_owned())
    }

    /// The first element matching a CSS selector.
    pub async fn find(&self, css: &str) -> anyhow::Result<Element<'_>> {
        let found =
            self.call(http::Method::POST, "/element", Some(json!({"using": "css selector", "value": css}))).await?;
        let id = found[ELEMENT_KEY].as_str().ok_or_else(|| anyhow::anyhow!("no element {css}: {found}"))?;
        Ok(Element { browser: self, id: id.to_owned() })
    }

    /// The text of the whole page body.
    pub async fn text(&self) -> anyhow::Result<String> {
        self.find("body").await?.text().await
    }

    /// Waits until the page's text contains `wanted`; returns the text.
    pub async fn wait_for_text(&self, wanted: &str) -> anyhow::Result<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = self.text().await.unwrap_or_default();
            if text.contains(wanted) {
                return Ok(text);
            }
            anyhow::ensure!(Instant::now() < deadline, "the page never showed {wanted:?}:\n{text}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs an asynchronous script; it calls `arguments[arguments.length - 1]` with its result.
    pub async fn run_async(&self, script: &str) -> anyhow::Result<Value> {
        self.call(http::Method::POST, "/execute/async", Some(json!({"script": script, "args": []}))).await
    }

    /// Saves a PNG of the viewport to `path`.
    pub async fn screenshot(&self, path: &Path) -> anyhow::Result<()> {
        let encoded = self.call(http::Method::GET, "/screenshot", None).await?;
        let png = cairn_gateway::auth::base64::decode(encoded.as_str().unwrap_or_default())
            .ok_or_else(|| anyhow::anyhow!("the screenshot is not base64"))?;
        std::fs::write(path, png)?;
        Ok(())
    }

    /// Resizes the window (a phone-sized one shows the narrow layout).
    pub async fn resize(&self, width: u32, height: u32) -> anyhow::Result<()> {
        self.call(http::Method::POST, "/window/rect", Some(json!({"width": width, "height": height}))).await.map(drop)
    }

    async fn call(&self, method: http::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let body = body
            .map(|b| b.to_string())
            .unwrap_or_else(|| if method == http::Method::POST { "{}".into() } else { String::new() });
        let request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))?;
        let (status, text) = crate::send_to_cluster(request).await?;
        let answer: Value = serde_json::from_str(&text)?;
        anyhow::ensure!(status < 300, "webdriver {path} answered {status}: {}", answer["value"]);
        Ok(answer["value"].clone())
    }
}

impl Element<'_> {
    /// Types `text` into the element (for a file input: the file's path).
    pub async fn type_text(&self, text: &str) -> anyhow::Result<()> {
        self.call(http::Method::POST, "value", Some(json!({"text": text}))).await.map(drop)
    }

    /// Clicks the element.
    pub async fn click(&self) -> anyhow::Result<()> {
        self.call(http::Method::POST, "click", None).await.map(drop)
    }

    /// The element's visible text.
    pub async fn text(&self) -> anyhow::Result<String> {
        Ok(self.call(http::Method::GET, "text", None).await?.as_str().unwrap_or_default().to_owned())
    }

    /// One of the element's properties (`value`, `href`).
    pub async fn property(&self, name: &str) -> anyhow::Result<String> {
        let value = self.call(http::Method::GET, &format!("property/{name}"), None).await?;
        Ok(value.as_str().unwrap_or_default().to_owned())
    }

    /// Chooses `value` in a `<select>`.
    pub async fn select(&self, value: &str) -> anyhow::Result<()> {
        let option = self.browser.find(&format!("#{} option[value=\"{value}\"]", self.property("id").await?)).await?;
        option.click().await
    }

    async fn call(&self, method: http::Method, action: &str, body: Option<Value>) -> anyhow::Result<Value> {
        self.browser.call(method, &format!("/element/{}/{action}", self.id), body).await
    }
}

impl Browser {
    /// Ends the session (closing Chromium) and chromedriver.
    pub async fn quit(self) -> anyhow::Result<()> {
        self.call(http::Method::DELETE, "", None).await.map(drop)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.driver.id()) {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
        let _ = self.driver.wait();
    }
}
