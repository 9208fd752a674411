//! A minimal W3C WebDriver client for the web page tests: one `chromedriver` process on
//! 127.0.0.1 with a free port, one headless Chromium session, commands sent as JSON over the
//! raw HTTP/1.1 client of this harness ([`super::raw_http`]). The session is deleted and
//! `chromedriver` (and the browser it started, should it outlive the session) is stopped by pid
//! when the [`Browser`] is dropped, also when a test fails.
//!
//! Environment:
//! - `CHROMIUM_BIN`, `CHROMEDRIVER_BIN`: the browser and the driver; default `chromium` (or
//!   `chromium-browser`, `google-chrome`) and `chromedriver` on `PATH` (Debian packages
//!   `chromium` and `chromium-driver`, installed by `scripts/ensure-deps.sh`).
//! - `CI`: when set, a missing browser or driver fails the test instead of skipping it.

#![allow(dead_code)]

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use super::fixtures::{free_port, which};
use super::{raw_http, repo_dir};

/// How long `chromedriver` may take to report ready.
const DRIVER_START: Duration = Duration::from_secs(20);
/// The key of a web element reference in WebDriver JSON.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// `(chromium, chromedriver)`, or `None` (after printing why) when one is missing and the run is
/// not CI; under CI a missing one is a failure.
pub fn browser_tools() -> Option<(PathBuf, PathBuf)> {
    let from_env = |var: &str| {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let chromium = from_env("CHROMIUM_BIN").or_else(|| {
        ["chromium", "chromium-browser", "google-chrome"]
            .iter()
            .find_map(|p| which(p))
    });
    let driver = from_env("CHROMEDRIVER_BIN").or_else(|| which("chromedriver"));
    let mut missing = Vec::new();
    if chromium.as_ref().is_none_or(|p| !p.exists()) {
        missing.push("chromium");
    }
    if driver.as_ref().is_none_or(|p| !p.exists()) {
        missing.push("chromedriver (chromium-driver)");
    }
    if missing.is_empty() {
        return chromium.zip(driver);
    }
    let msg = format!(
        "missing: {} (scripts/ensure-deps.sh installs them)",
        missing.join(", ")
    );
    if std::env::var_os("CI").is_some() {
        panic!("{msg}");
    }
    eprintln!("skipping: {msg}");
    None
}

/// Where tests leave screenshots: `<target dir>/test-artifacts/`, created on demand.
pub fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .map(|p| {
            if p.is_absolute() {
                p
            } else {
                repo_dir().join(p)
            }
        })
        .unwrap_or_else(|| repo_dir().join("target"));
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

/// A WebDriver error answer (or a transport failure, with `error` = `"transport"`).
#[derive(Debug, Clone)]
pub struct WdError {
    pub status: u16,
    pub error: String,
    pub message: String,
}

impl std::fmt::Display for WdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.error, self.status, self.message)
    }
}

/// A web element of the current page (its WebDriver reference).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element(pub String);

/// One `chromedriver` with one headless Chromium session.
pub struct Browser {
    driver: Option<Child>,
    addr: SocketAddr,
    session: Option<String>,
    /// The browser's main process (`goog:processID`), killed on drop if still alive.
    browser_pid: Option<i32>,
    dir: tempfile::TempDir,
}

impl Browser {
    /// Starts `chromedriver` and a headless session, or returns `None` when the tools are
    /// missing outside CI (see [`browser_tools`]).
    pub fn start() -> Option<Browser> {
        let (chromium, driver) = browser_tools()?;
        let dir = tempfile::Builder::new()
            .prefix("cb-browser-")
            .tempdir()
            .expect("browser tempdir");
        let port = free_port();
        let log_path = dir.path().join("chromedriver.log");
        let log = File::create(&log_path)
            .unwrap_or_else(|e| panic!("create {}: {e}", log_path.display()));
        let log2 = log.try_clone().expect("clone log handle");
        let child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .env("HOME", dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", driver.display()));
        let mut b = Browser {
            driver: Some(child),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            session: None,
            browser_pid: None,
            dir,
        };
        b.wait_ready();
        let profile = b.dir.path().join("profile");
        let caps = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": chromium.to_str().expect("utf-8 chromium path"),
                        "args": [
                            "--headless=new",
                            "--no-sandbox",
                            "--disable-gpu",
                            "--disable-dev-shm-usage",
                            "--window-size=1280,900",
                            "--no-first-run",
                            "--no-default-browser-check",
                            format!("--user-data-dir={}", profile.display()),
                        ],
                    },
                    "goog:loggingPrefs": { "browser": "ALL" },
                }
            }
        });
        let v = b
            .request("POST", "/session", Some(&caps))
            .unwrap_or_else(|e| panic!("new WebDriver session: {e}\n{}", b.driver_log()));
        let id = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no sessionId in {v}"))
            .to_owned();
        b.browser_pid = v["capabilities"]["goog:processID"]
            .as_i64()
            .and_then(|p| i32::try_from(p).ok());
        b.session = Some(id);
        Some(b)
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + DRIVER_START;
        loop {
            if let Some(c) = self.driver.as_mut()
                && let Ok(Some(st)) = c.try_wait()
            {
                panic!("chromedriver exited ({st}):\n{}", self.driver_log());
            }
            if let Ok(v) = self.request("GET", "/status", None)
                && v["ready"].as_bool() == Some(true)
            {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "chromedriver not ready on {} within {DRIVER_START:?}:\n{}",
                    self.addr,
                    self.driver_log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What `chromedriver` printed so far.
    pub fn driver_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("chromedriver.log")).unwrap_or_default()
    }

    /// One WebDriver command: `value` of the JSON answer, or the error it reports.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, WdError> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let body = if method == "POST" && body.is_empty() {
            "{}".to_owned()
        } else {
            body
        };
        let (status, _, text) = raw_http(
            self.addr,
            method,
            path,
            &[("Accept", "application/json")],
            body.as_bytes(),
        )
        .map_err(|e| WdError {
            status: 0,
            error: "transport".into(),
            message: format!("{method} {path}: {e}"),
        })?;
        let v: Value = serde_json::from_str(&text).map_err(|e| WdError {
            status,
            error: "bad answer".into(),
            message: format!("{method} {path}: {e}: {text}"),
        })?;
        let value = v.get("value").cloned().unwrap_or(Value::Null);
        if status != 200 {
            return Err(WdError {
                status,
                error: value["error"]
                    .as_str()
                    .unwrap_or("unknown error")
                    .to_owned(),
                message: value["message"].as_str().unwrap_or(&text).to_owned(),
            });
        }
        Ok(value)
    }

    fn sid(&self) -> &str {
        self.session.as_deref().expect("WebDriver session")
    }

    /// A command on the session (`path` after `/session/{id}`), failing the test on an error.
    pub fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let full = format!("/session/{}{path}", self.sid());
        self.request(method, &full, body.as_ref())
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"))
    }

    /// Like [`Browser::cmd`], returning the error instead.
    pub fn try_cmd(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, WdError> {
        let full = format!("/session/{}{path}", self.sid());
        self.request(method, &full, body.as_ref())
    }

    /// Loads `url` and waits for the page load to complete.
    pub fn navigate(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })));
    }

    pub fn current_url(&self) -> String {
        self.cmd("GET", "/url", None)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub fn title(&self) -> String {
        self.cmd("GET", "/title", None)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The page's current DOM as HTML.
    pub fn source(&self) -> String {
        self.cmd("GET", "/source", None)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The first element matching the CSS selector, if any.
    pub fn try_find(&self, css: &str) -> Option<Element> {
        match self.try_cmd(
            "POST",
            "/element",
            Some(json!({ "using": "css selector", "value": css })),
        ) {
            Ok(v) => Some(element_of(&v)),
            Err(e) if e.error == "no such element" => None,
            Err(e) => panic!("find {css:?}: {e}"),
        }
    }

    /// The first element matching the CSS selector; fails the test when there is none.
    pub fn find(&self, css: &str) -> Element {
        self.try_find(css).unwrap_or_else(|| {
            panic!(
                "no element {css:?} on {}; page:\n{}",
                self.current_url(),
                self.source()
            )
        })
    }

    /// Every element matching the CSS selector, in document order.
    pub fn find_all(&self, css: &str) -> Vec<Element> {
        let v = self.cmd(
            "POST",
            "/elements",
            Some(json!({ "using": "css selector", "value": css })),
        );
        v.as_array()
            .map(|a| a.iter().map(element_of).collect())
            .unwrap_or_default()
    }

    /// The rendered text of an element (empty for a hidden one, as WebDriver defines it).
    pub fn text(&self, el: &Element) -> String {
        self.cmd("GET", &format!("/element/{}/text", el.0), None)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// An attribute of an element, `None` when it has none.
    pub fn attribute(&self, el: &Element, name: &str) -> Option<String> {
        self.cmd("GET", &format!("/element/{}/attribute/{name}", el.0), None)
            .as_str()
            .map(str::to_owned)
    }

    /// A DOM property of an element (e.g. `textContent`, `value`).
    pub fn property(&self, el: &Element, name: &str) -> Value {
        self.cmd("GET", &format!("/element/{}/property/{name}", el.0), None)
    }

    pub fn is_displayed(&self, el: &Element) -> bool {
        self.cmd("GET", &format!("/element/{}/displayed", el.0), None)
            .as_bool()
            .unwrap_or(false)
    }

    pub fn click(&self, el: &Element) {
        self.cmd("POST", &format!("/element/{}/click", el.0), None);
    }

    pub fn clear(&self, el: &Element) {
        self.cmd("POST", &format!("/element/{}/clear", el.0), None);
    }

    /// Types `text` into an element, as key presses.
    pub fn send_keys(&self, el: &Element, text: &str) {
        self.cmd(
            "POST",
            &format!("/element/{}/value", el.0),
            Some(json!({ "text": text })),
        );
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) and returns what it returns.
    pub fn execute(&self, script: &str, args: &[Value]) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
    }

    /// The window's outer size in CSS pixels.
    pub fn window_size(&self) -> (u64, u64) {
        let r = self.cmd("GET", "/window/rect", None);
        (
            r["width"].as_u64().unwrap_or(0),
            r["height"].as_u64().unwrap_or(0),
        )
    }

    /// Resizes the window (in headless mode the viewport follows).
    pub fn set_window_size(&self, width: u64, height: u64) {
        self.cmd(
            "POST",
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        );
    }

    /// The page as a PNG.
    pub fn screenshot_png(&self) -> Vec<u8> {
        let b64 = self.cmd("GET", "/screenshot", None);
        base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().expect("base64 screenshot"))
            .expect("decode screenshot")
    }

    /// Saves a screenshot of the page as `path` (a PNG); returns the path.
    pub fn screenshot(&self, path: &Path) -> PathBuf {
        let png = self.screenshot_png();
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n"),
            "screenshot is no PNG"
        );
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        }
        std::fs::write(path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path.to_owned()
    }

    /// The browser's console and JavaScript error log since the last call (chromedriver's
    /// `/se/log`), or `None` when the driver does not offer it.
    pub fn browser_log(&self) -> Option<Vec<Value>> {
        match self.try_cmd("POST", "/se/log", Some(json!({ "type": "browser" }))) {
            Ok(Value::Array(a)) => Some(a),
            Ok(_) => Some(Vec::new()),
            Err(e) => {
                eprintln!("browser log not available: {e}");
                None
            }
        }
    }

    /// The `SEVERE` entries of [`Browser::browser_log`] (uncaught exceptions, failed loads,
    /// `console.error`), as messages.
    pub fn js_errors(&self) -> Option<Vec<String>> {
        self.browser_log().map(|entries| {
            entries
                .iter()
                .filter(|e| e["level"].as_str() == Some("SEVERE"))
                .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
    }

    /// Polls `f` every 100 ms until it returns `Some`; after `timeout` saves a screenshot to the
    /// artifacts directory and fails the test with `what` and the page's text.
    pub fn wait_until<T>(
        &self,
        timeout: Duration,
        what: &str,
        mut f: impl FnMut(&Browser) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = f(self) {
                return v;
            }
            if Instant::now() > deadline {
                let shot = artifacts_dir().join("timeout.png");
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    self.screenshot(&shot)
                }));
                let body = self
                    .try_cmd(
                        "POST",
                        "/execute/sync",
                        Some(json!({ "script": "return document.body ? document.body.innerText : ''", "args": [] })),
                    )
                    .map(|v| v.as_str().unwrap_or_default().to_owned())
                    .unwrap_or_else(|e| e.to_string());
                panic!(
                    "timed out after {timeout:?}: {what}\nurl: {}\nscreenshot: {}\npage text:\n{body}",
                    self.current_url(),
                    shot.display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Deletes the session and stops `chromedriver` (and the browser, if it outlived the
    /// session) by pid.
    pub fn stop(&mut self) {
        if let Some(id) = self.session.take() {
            let _ = self.request("DELETE", &format!("/session/{id}"), None);
        }
        if let Some(pid) = self.browser_pid.take() {
            // The browser exits with its session; should it not, kill the process we started
            // (checked by its command line, in case the pid was reused).
            let deadline = Instant::now() + Duration::from_secs(5);
            while is_chromium(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if is_chromium(pid) {
                // SAFETY: signals the browser process our session started, by its pid.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
        if let Some(mut c) = self.driver.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.driver_log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            eprintln!("---- chromedriver log (tail) ----\n{}", tail.join("\n"));
        }
        self.stop();
    }
}

fn is_chromium(pid: i32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains("chrom"))
        .unwrap_or(false)
}

fn element_of(v: &Value) -> Element {
    Element(
        v[ELEMENT_KEY]
            .as_str()
            .unwrap_or_else(|| panic!("no element reference in {v}"))
            .to_owned(),
    )
}
