//! A minimal W3C WebDriver client (https://www.w3.org/TR/webdriver2/) driving headless Chromium
//! through chromedriver, for tests of what a person sees and clicks.
//!
//! Each `Browser` runs its own chromedriver on a free port with a fresh Chromium profile; the
//! session is deleted (which ends Chromium) and chromedriver killed when it is quit or dropped.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The W3C key under which an element reference is returned.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
const PAGE_LOAD_TIMEOUT: Duration = Duration::from_secs(20);
/// How long element lookups retry while the page may still be loading.
const FIND_TIMEOUT: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(50);
/// How long Chromium gets to exit after its session is deleted.
const CHROMIUM_EXIT_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Browser {
    driver: Child,
    http: reqwest::Client,
    /// `http://127.0.0.1:<port>`
    base: String,
    session: String,
    /// Set once the session is deleted, so `Drop` does not try again.
    session_open: bool,
    profile_dir: PathBuf,
}

/// A WebDriver error response: its `error` code (e.g. "no such element") and message.
#[derive(Debug)]
struct WebDriverError {
    error: String,
    message: String,
}

fn browser_required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true") || std::env::var("OPTBRIDGE_REQUIRE_BROWSER").is_ok_and(|v| v == "1")
}

/// axe-core's browser bundle, installed by scripts/setup-test-deps under target/test-deps.
fn axe_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-deps/node_modules/axe-core/axe.min.js")
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium session. Returns None (with a
    /// note) when chromedriver or Chromium is not installed, unless `CI=true` or
    /// `OPTBRIDGE_REQUIRE_BROWSER=1`, where that fails the test.
    pub async fn start() -> Option<Self> {
        let missing: Vec<&str> = [CHROMEDRIVER, CHROMIUM]
            .into_iter()
            .filter(|p| !Path::new(p).exists())
            .collect();
        if !missing.is_empty() {
            let what = missing.join(" and ");
            assert!(
                !browser_required(),
                "the browser tests are required (CI=true or OPTBRIDGE_REQUIRE_BROWSER=1) but {what} is not \
                 installed; run scripts/setup-test-deps"
            );
            eprintln!("note: skipping browser test, {what} is not installed (scripts/setup-test-deps installs it)");
            return None;
        }
        let http = reqwest::Client::builder()
            .timeout(PAGE_LOAD_TIMEOUT + Duration::from_secs(10))
            .build()
            .expect("http client");
        // The port is free when probed but may be taken before chromedriver binds it: try again.
        let (driver, base) = 'spawn: {
            let mut last_error = String::new();
            for _ in 0..3 {
                let port = free_port();
                let mut driver = Command::new(CHROMEDRIVER)
                    .arg(format!("--port={port}"))
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap_or_else(|e| panic!("cannot run {CHROMEDRIVER}: {e}"));
                let base = format!("http://127.0.0.1:{port}");
                match wait_ready(&http, &base, &mut driver).await {
                    Ok(()) => break 'spawn (driver, base),
                    Err(e) => {
                        let _ = driver.kill();
                        let _ = driver.wait();
                        last_error = e;
                    }
                }
            }
            panic!("chromedriver did not start: {last_error}");
        };
        let profile_dir = std::env::temp_dir().join(format!("optbridge-chromium-{}", uuid::Uuid::now_v7().simple()));
        let mut browser = Self {
            driver,
            http,
            base,
            session: String::new(),
            session_open: false,
            profile_dir,
        };
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "timeouts": {"pageLoad": PAGE_LOAD_TIMEOUT.as_millis() as u64, "script": 10_000, "implicit": 0},
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run",
                    // Without these Chromium phones home, and this machine's closed network refuses it.
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--window-size=1280,1600",
                    format!("--user-data-dir={}", browser.profile_dir.display()),
                ],
            },
        }}});
        let session = browser
            .command(reqwest::Method::POST, "/session", Some(capabilities))
            .await
            .unwrap_or_else(|e| panic!("chromedriver could not start Chromium: {}: {}", e.error, e.message));
        browser.session = session["sessionId"].as_str().expect("session id").to_owned();
        browser.session_open = true;
        Some(browser)
    }

    pub async fn goto(&self, url: &str) {
        self.session_command(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await
            .unwrap_or_else(|e| panic!("cannot open {url}: {}: {}", e.error, e.message));
    }

    /// Clears the field matching `css` and types `text` into it.
    pub async fn fill(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        self.element_command(&element, reqwest::Method::POST, "/clear", json!({}), css)
            .await;
        self.element_command(&element, reqwest::Method::POST, "/value", json!({ "text": text }), css)
            .await;
    }

    pub async fn click(&self, css: &str) {
        let element = self.find(css).await;
        self.element_command(&element, reqwest::Method::POST, "/click", json!({}), css)
            .await;
    }

    /// Clicks a submit button and waits until the page it leads to has loaded.
    pub async fn submit(&self, css: &str) {
        // The old document's root goes stale once the next page replaces it, even at the same URL.
        let old_root = self.find("html").await;
        self.click(css).await;
        let deadline = Instant::now() + PAGE_LOAD_TIMEOUT;
        loop {
            let path = format!("/element/{old_root}/name");
            match self.session_command(reqwest::Method::GET, &path, None).await {
                Err(e) if e.error == "stale element reference" || e.error == "no such element" => break,
                // Chrome sometimes reports the same thing, asked mid-navigation, as an inspector
                // error: the node's document is gone.
                Err(e) if e.message.contains("does not belong to the document") => break,
                Err(e) => panic!(
                    "waiting for the page after submitting {css}: {}: {}",
                    e.error, e.message
                ),
                Ok(_) => {}
            }
            assert!(
                Instant::now() < deadline,
                "submitting {css} did not load a new page within {PAGE_LOAD_TIMEOUT:?}"
            );
            tokio::time::sleep(POLL).await;
        }
        loop {
            let state = self
                .session_command(
                    reqwest::Method::POST,
                    "/execute/sync",
                    Some(json!({"script": "return document.readyState", "args": []})),
                )
                .await;
            if matches!(&state, Ok(s) if s == "complete") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the page after submitting {css} did not finish loading within {PAGE_LOAD_TIMEOUT:?}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    pub async fn current_url(&self) -> String {
        let url = self.get("/url").await;
        url.as_str().expect("url is a string").to_owned()
    }

    /// The current page's HTML, as the browser serialises its DOM.
    pub async fn source(&self) -> String {
        let source = self.get("/source").await;
        source.as_str().expect("source is a string").to_owned()
    }

    /// The rendered text of the element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        let element = self.find(css).await;
        let text = self
            .element_command(&element, reqwest::Method::GET, "/text", Value::Null, css)
            .await;
        text.as_str().expect("text is a string").to_owned()
    }

    /// The current value of the form field matching `css` (what the person sees in it).
    pub async fn value(&self, css: &str) -> String {
        let element = self.find(css).await;
        let value = self
            .element_command(&element, reqwest::Method::GET, "/property/value", Value::Null, css)
            .await;
        value.as_str().unwrap_or_default().to_owned()
    }

    /// Whether the checkbox, radio button or option matching `css` is ticked.
    pub async fn is_selected(&self, css: &str) -> bool {
        let element = self.find(css).await;
        let selected = self
            .element_command(&element, reqwest::Method::GET, "/selected", Value::Null, css)
            .await;
        selected.as_bool().expect("selected is a bool")
    }

    /// Saves a PNG of the viewport to `path`, creating its parent folders.
    pub async fn screenshot(&self, path: &Path) {
        let png = self.get("/screenshot").await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("screenshot is a string"))
            .expect("screenshot is base64");
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("cannot create {}: {e}", parent.display()));
        }
        std::fs::write(path, png).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }

    /// Sets a field's value as a script would (for inputs whose typing is locale-dependent, like
    /// `datetime-local`), firing `input` and `change`.
    pub async fn set_value(&self, css: &str, value: &str) {
        let element = self.find(css).await;
        let script = "arguments[0].value = arguments[1]; \
                      arguments[0].dispatchEvent(new Event('input', {bubbles: true})); \
                      arguments[0].dispatchEvent(new Event('change', {bubbles: true}));";
        self.session_command(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": [{ELEMENT_KEY: element}, value]})),
        )
        .await
        .unwrap_or_else(|e| panic!("cannot set {css:?}: {}: {}", e.error, e.message));
    }

    /// Resizes the window, e.g. to a phone's 390 × 844 to check a page is usable at phone width.
    pub async fn resize(&self, width: u32, height: u32) {
        self.session_command(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .await
        .unwrap_or_else(|e| panic!("cannot resize the window: {}: {}", e.error, e.message));
    }

    /// Runs axe-core (installed by scripts/setup-test-deps) on the current page against the WCAG
    /// 2.1 A and AA rules and returns its violations, each as `{id, impact, help, nodes}`. The
    /// script is injected by WebDriver, which the page's script-free CSP does not govern.
    pub async fn axe_violations(&self) -> Vec<Value> {
        let source = std::fs::read_to_string(axe_path()).unwrap_or_else(|e| {
            panic!(
                "cannot read axe-core at {}: {e}; run scripts/setup-test-deps",
                axe_path().display()
            )
        });
        let script = format!(
            "{source}\n;const done = arguments[arguments.length - 1];\n\
             axe.run(document, {{runOnly: {{type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}}}})\n\
             .then(r => done(r.violations.map(v => ({{id: v.id, impact: v.impact, help: v.help, \
             nodes: v.nodes.map(n => n.target.join(' ') + ' ' + (n.failureSummary || ''))}}))))\n\
             .catch(e => done([{{id: 'axe-error', help: String(e), nodes: []}}]));"
        );
        let found = self
            .session_command(
                reqwest::Method::POST,
                "/execute/async",
                Some(json!({"script": script, "args": []})),
            )
            .await
            .unwrap_or_else(|e| panic!("axe did not run: {}: {}", e.error, e.message));
        found.as_array().cloned().unwrap_or_default()
    }

    /// Fails the test, naming the page and every rule broken, unless axe finds nothing.
    pub async fn assert_accessible(&self, what: &str) {
        let violations = self.axe_violations().await;
        assert!(
            violations.is_empty(),
            "axe-core: {what} ({}) breaks WCAG rules:\n{}",
            self.current_url().await,
            serde_json::to_string_pretty(&violations).unwrap_or_default()
        );
    }

    pub async fn cookies(&self) -> Vec<Value> {
        match self.get("/cookie").await {
            Value::Array(cookies) => cookies,
            other => panic!("cookies are not a list: {other}"),
        }
    }

    /// Ends the session (and with it Chromium), then chromedriver.
    pub async fn quit(mut self) {
        let deleted = self.session_command(reqwest::Method::DELETE, "", None).await;
        if let Err(e) = deleted {
            eprintln!(
                "note: deleting the WebDriver session failed: {}: {}",
                e.error, e.message
            );
        } else {
            self.session_open = false;
        }
    }

    /// The element matching `css`, retrying briefly while the page may still be loading.
    async fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + FIND_TIMEOUT;
        let query = json!({"using": "css selector", "value": css});
        loop {
            match self
                .session_command(reqwest::Method::POST, "/element", Some(query.clone()))
                .await
            {
                Ok(found) => return found[ELEMENT_KEY].as_str().expect("element reference").to_owned(),
                Err(e) if e.error == "no such element" && Instant::now() < deadline => {
                    tokio::time::sleep(POLL).await;
                }
                Err(e) => panic!(
                    "no element matches {css:?} on {}: {}",
                    self.current_url().await,
                    e.message
                ),
            }
        }
    }

    async fn element_command(
        &self,
        element: &str,
        method: reqwest::Method,
        command: &str,
        body: Value,
        css: &str,
    ) -> Value {
        let body = (!body.is_null()).then_some(body);
        self.session_command(method, &format!("/element/{element}{command}"), body)
            .await
            .unwrap_or_else(|e| panic!("{command} on {css:?} failed: {}: {}", e.error, e.message))
    }

    async fn get(&self, command: &str) -> Value {
        self.session_command(reqwest::Method::GET, command, None)
            .await
            .unwrap_or_else(|e| panic!("{command} failed: {}: {}", e.error, e.message))
    }

    async fn session_command(
        &self,
        method: reqwest::Method,
        command: &str,
        body: Option<Value>,
    ) -> Result<Value, WebDriverError> {
        self.command(method, &format!("/session/{}{command}", self.session), body)
            .await
    }

    /// Sends one WebDriver command; returns its `value`, or the error it reports.
    async fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value, WebDriverError> {
        let mut request = self.http.request(method.clone(), format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("chromedriver did not answer {method} {path}: {e}"));
        let status = response.status();
        let text = response.text().await.expect("chromedriver response body");
        let mut reply: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"));
        let value = reply["value"].take();
        if status.is_success() {
            return Ok(value);
        }
        Err(WebDriverError {
            error: value["error"].as_str().unwrap_or("unknown error").to_owned(),
            message: value["message"].as_str().unwrap_or(&text).to_owned(),
        })
    }
}

/// Waits until chromedriver's `/status` says it is ready; fails if it exits or takes too long.
async fn wait_ready(http: &reqwest::Client, base: &str, driver: &mut Child) -> Result<(), String> {
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        if let Some(status) = driver.try_wait().map_err(|e| e.to_string())? {
            return Err(format!("it exited with {status}"));
        }
        let status = http
            .get(format!("{base}/status"))
            .timeout(Duration::from_secs(2))
            .send()
            .await;
        if let Ok(response) = status
            && let Ok(body) = response.json::<Value>().await
            && body["value"]["ready"] == true
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("{base}/status was not ready within {STARTUP_TIMEOUT:?}"));
        }
        tokio::time::sleep(POLL).await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Chromium outlives a killed chromedriver: end the session first (Drop cannot await, so
        // this is a plain blocking request), wait for Chromium to exit, kill what remains of it.
        if self.session_open {
            self.session_open = delete_session_blocking(&self.base, &self.session).is_err();
        }
        let deadline = Instant::now()
            + if self.session_open {
                Duration::ZERO
            } else {
                CHROMIUM_EXIT_TIMEOUT
            };
        let mut chromium = processes_using(&self.profile_dir);
        while !chromium.is_empty() && Instant::now() < deadline {
            std::thread::sleep(POLL);
            chromium = processes_using(&self.profile_dir);
        }
        for pid in chromium {
            let _ = Command::new("kill")
                .args(["-KILL", &pid])
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile_dir);
    }
}

/// The ids of processes whose command line names `dir` (this browser's Chromium processes: the
/// profile folder is unique to it).
fn processes_using(dir: &Path) -> Vec<String> {
    let needle = dir.as_os_str().as_encoded_bytes();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|pid| pid.bytes().all(|b| b.is_ascii_digit()))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmdline| cmdline.windows(needle.len()).any(|w| w == needle))
        })
        .collect()
}

fn delete_session_blocking(base: &str, session: &str) -> std::io::Result<()> {
    let host = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(host)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    write!(
        stream,
        "DELETE /session/{session} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    // Chromedriver answers once Chromium has quit; it may keep the connection open after that.
    let mut reply = Vec::new();
    let mut chunk = [0; 1024];
    while !reply.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk)? {
            0 => break,
            n => reply.extend_from_slice(&chunk[..n]),
        }
    }
    Ok(())
}
