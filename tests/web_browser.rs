//! The web pages under `/koji/` in a real headless Chromium, driven over WebDriver
//! (`tests/common/browser.rs`), against a real hub with a real builder: buildah, Debian's
//! `docker-registry` on loopback, the dist-git fixtures served by `git daemon`.
//!
//! Covered: the task page of a running `createContainer` (state OPEN, the log growing in place
//! through `/koji/tasklog` polling, the follow/pause button, the state turning CLOSED and the
//! polling stopping when the task ends), the parent's user warnings, the build page of the
//! imported build (the RPM table filtered in the page, the per-layer view), a failed build's
//! fault, the task and host lists, and no JavaScript errors on any of them. A screenshot of the
//! live log is left in `target/test-artifacts/`; with `UPDATE_SCREENSHOT=1` it also replaces
//! `docs/taskinfo-live-log.png` (shown in the README).
//!
//! The WebDriver client itself is checked first against a static page served by a tiny local
//! server, so a broken client and a broken page are told apart.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::json;

use common::browser::{Browser, artifacts_dir};
use common::fixtures::{Fixtures, GitServer, TestRegistry, tools_present};
use common::{ADMIN, BuilderProc, Hub, assert_contains, task_state, wait_for};

const CLOSED: i64 = 2;
const FAILED: i64 = 5;
const TARGET: &str = "web-candidate";
/// Seconds the ticking RUN of the live-log build prints one line each.
const TICKS: u32 = 40;

// ---------------------------------------------------------------------------------------------
// Helpers shared by the static-page check and the real pages.

/// Loads `url` and marks the document, so a later [`same_document`] tells a reload apart from
/// an update in place; also lifts the resource-timing buffer limit, so [`requests_to`] sees
/// every poll of a long-lived page.
fn open(b: &Browser, url: &str) {
    b.navigate(url);
    b.execute(
        "window.__cbDocument = 'loaded';\
         if (performance.setResourceTimingBufferSize) performance.setResourceTimingBufferSize(1000000);",
        &[],
    );
}

/// True while the page loaded by [`open`] is still the same document (no reload happened).
fn same_document(b: &Browser) -> bool {
    b.execute("return window.__cbDocument === 'loaded';", &[]) == json!(true)
}

/// How many requests (fetch, XHR, anything) the page made to URLs containing `part`.
fn requests_to(b: &Browser, part: &str) -> u64 {
    b.execute(
        "var part = arguments[0];\
         return performance.getEntriesByType('resource')\
           .filter(function (e) { return e.name.indexOf(part) >= 0; }).length;",
        &[json!(part)],
    )
    .as_u64()
    .unwrap_or(0)
}

/// The text of the element with id `id` (its `textContent`, whether shown or not), or `None`
/// when the page has no such element.
fn text_of(b: &Browser, id: &str) -> Option<String> {
    b.execute(
        "var e = document.getElementById(arguments[0]); return e ? e.textContent : null;",
        &[json!(id)],
    )
    .as_str()
    .map(str::to_owned)
}

/// `(text, shown)` of each data row (a `tr` with `td` cells) of the table with id `id`.
fn table_rows(b: &Browser, id: &str) -> Vec<(String, bool)> {
    let v = b.execute(
        "var t = document.getElementById(arguments[0]); if (!t) return null;\
         return Array.prototype.filter.call(t.querySelectorAll('tr'),\
                function (tr) { return tr.querySelector('td'); })\
           .map(function (tr) { return [tr.textContent.replace(/\\s+/g, ' ').trim(),\
                tr.getClientRects().length > 0 && getComputedStyle(tr).visibility !== 'hidden']; });",
        &[json!(id)],
    );
    let rows = v
        .as_array()
        .unwrap_or_else(|| panic!("no table #{id} on {}:\n{}", b.current_url(), b.source()));
    rows.iter()
        .map(|r| {
            (
                r[0].as_str().unwrap_or_default().to_owned(),
                r[1].as_bool().unwrap_or(false),
            )
        })
        .collect()
}

/// The follow button's state as the page shows it: its text and `aria-pressed`.
fn follow_state(b: &Browser) -> (String, Option<String>) {
    let el = b.find("#log-follow");
    (
        b.property(&el, "textContent")
            .as_str()
            .unwrap_or_default()
            .trim()
            .to_owned(),
        b.attribute(&el, "aria-pressed"),
    )
}

/// Fails the test on JavaScript errors logged since the last check (a missing favicon is no
/// error of the page); says so when the driver has no log to offer.
fn assert_no_js_errors(b: &Browser, page: &str) {
    let Some(errors) = b.js_errors() else {
        eprintln!("{page}: browser log not available, JavaScript errors not checked");
        return;
    };
    let errors: Vec<&String> = errors
        .iter()
        .filter(|m| !m.contains("favicon.ico"))
        .collect();
    assert!(errors.is_empty(), "{page}: JavaScript errors: {errors:#?}");
}

/// A screenshot of the whole page (the window made as tall as the document, at most 2400
/// pixels, for the shot), saved as `path`.
fn full_page_screenshot(b: &Browser, path: &Path) -> std::path::PathBuf {
    let (w, h) = b.window_size();
    let doc = b
        .execute(
            "return Math.max(document.documentElement.scrollHeight, document.body.scrollHeight)\
               + (window.outerHeight - window.innerHeight);",
            &[],
        )
        .as_u64()
        .unwrap_or(h);
    b.set_window_size(w, doc.clamp(h, 2400));
    std::thread::sleep(Duration::from_millis(300));
    let shot = b.screenshot(path);
    b.set_window_size(w, h);
    shot
}

/// The largest `tick N` in `log`.
fn last_tick(log: &str) -> u32 {
    log.lines()
        .filter_map(|l| {
            let i = l.find("tick ")?;
            l[i + 5..]
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .max()
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// The WebDriver client against a static page.

/// A tiny HTTP/1.1 server on 127.0.0.1 for the static pages: `/` (a polling log, a follow
/// button, a filterable table), `/lines?offset=N` (one more line per request, done after 5),
/// `/error` (a page with a JavaScript error). Stopped and joined on drop.
struct StaticServer {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

const STATIC_PAGE: &str = r#"<!doctype html>
<html><head><title>static</title><link rel="icon" href="data:,"></head><body>
<span id="task-state">OPEN</span>
<button id="log-follow" aria-pressed="true">Pause</button>
<pre id="log"></pre>
<input id="rpm-filter">
<table id="rpms"><thead><tr><th>name</th></tr></thead><tbody>
<tr><td>cb-hello-1.0-1.noarch</td></tr><tr><td>cb-epoch-1.0-1.noarch</td></tr>
<tr><td>cb-filesystem-1.0-1.noarch</td></tr></tbody></table>
<script>
var offset = 0, follow = true;
document.getElementById('log-follow').onclick = function () {
  follow = !follow;
  this.textContent = follow ? 'Pause' : 'Follow';
  this.setAttribute('aria-pressed', String(follow));
};
function poll() {
  fetch('/lines?offset=' + offset).then(function (r) { return r.json(); }).then(function (j) {
    document.getElementById('log').textContent += j.data;
    offset = j.offset;
    if (j.done) { document.getElementById('task-state').textContent = 'CLOSED'; }
    else { setTimeout(poll, 300); }
  });
}
poll();
document.getElementById('rpm-filter').addEventListener('input', function () {
  var q = this.value;
  document.querySelectorAll('#rpms tbody tr').forEach(function (tr) {
    tr.style.display = tr.textContent.indexOf(q) >= 0 ? '' : 'none';
  });
});
</script></body></html>"#;

const ERROR_PAGE: &str = r#"<!doctype html><html><head><link rel="icon" href="data:,"></head>
<body><p id="p">x</p><script>window.setTimeout(function () { noSuchFunction(); }, 0);</script></body></html>"#;

impl StaticServer {
    fn start() -> StaticServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind static server");
        let port = listener.local_addr().expect("local addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let lines = Arc::new(AtomicUsize::new(0));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(s) = conn {
                    let _ = Self::serve(s, &lines);
                }
            }
        });
        StaticServer {
            port,
            stop,
            thread: Some(thread),
        }
    }

    fn serve(mut s: TcpStream, lines: &AtomicUsize) -> std::io::Result<()> {
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut reader = BufReader::new(s.try_clone()?);
        let mut request_line = String::new();
        reader.read_line(&mut request_line)?;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
                break;
            }
        }
        let path = request_line.split_whitespace().nth(1).unwrap_or("/");
        let (status, ctype, body) = if path == "/" {
            ("200 OK", "text/html", STATIC_PAGE.to_owned())
        } else if path == "/error" {
            ("200 OK", "text/html", ERROR_PAGE.to_owned())
        } else if path.starts_with("/lines") {
            let n = lines.fetch_add(1, Ordering::SeqCst) + 1;
            let data = format!("line {n}\n");
            let body = json!({ "data": data, "offset": n, "done": n >= 5 }).to_string();
            ("200 OK", "application/json", body)
        } else {
            ("404 Not Found", "text/plain", "not found".to_owned())
        };
        write!(
            s,
            "HTTP/1.1 {status}\r\nContent-Type: {ctype}; charset=utf-8\r\nContent-Length: {}\r\n\
             Cache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        s.flush()
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn webdriver_client_on_a_static_page() {
    let server = StaticServer::start();
    let Some(b) = Browser::start() else { return };

    open(&b, &server.url("/"));
    assert_eq!(b.title(), "static");
    assert_eq!(b.text(&b.find("#task-state")), "OPEN");
    // The log grows in place, through polling.
    let first = b.wait_until(Duration::from_secs(10), "a first log line", |b| {
        text_of(b, "log").filter(|t| t.contains("line 1"))
    });
    b.wait_until(Duration::from_secs(10), "more log lines", |b| {
        text_of(b, "log").filter(|t| t.len() > first.len() && t.contains("line 3"))
    });
    assert!(same_document(&b), "the page was reloaded");
    assert!(requests_to(&b, "/lines") >= 3);

    // Click, attribute and text, key presses, scripts.
    assert_eq!(follow_state(&b), ("Pause".into(), Some("true".into())));
    b.click(&b.find("#log-follow"));
    assert_eq!(follow_state(&b), ("Follow".into(), Some("false".into())));
    let rows = table_rows(&b, "rpms");
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(rows.iter().all(|(_, shown)| *shown), "{rows:?}");
    let filter = b.find("#rpm-filter");
    b.send_keys(&filter, "cb-hello");
    assert_eq!(b.property(&filter, "value"), json!("cb-hello"));
    let rows = table_rows(&b, "rpms");
    let shown: Vec<&str> = rows.iter().filter(|r| r.1).map(|r| r.0.as_str()).collect();
    assert_eq!(shown, ["cb-hello-1.0-1.noarch"], "{rows:?}");
    b.clear(&filter);
    assert_eq!(
        b.execute("return arguments[0] + arguments[1];", &[json!(2), json!(3)]),
        json!(5)
    );
    assert!(b.try_find("#no-such-element").is_none());
    assert_eq!(b.find_all("#rpms tbody tr").len(), 3);
    assert!(b.is_displayed(&b.find("#log")));

    // The state ends, polling stops.
    b.wait_until(Duration::from_secs(10), "the state to become CLOSED", |b| {
        (text_of(b, "task-state").as_deref() == Some("CLOSED")).then_some(())
    });
    let polls = requests_to(&b, "/lines");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(requests_to(&b, "/lines"), polls, "polling went on");
    assert_eq!(polls, 5);
    let shot = b.screenshot(&artifacts_dir().join("webdriver-static-page.png"));
    assert!(std::fs::metadata(&shot).expect("screenshot file").len() > 1000);
    assert_no_js_errors(&b, "static page");

    // A JavaScript error is seen.
    open(&b, &server.url("/error"));
    if let Some(errors) = b.js_errors() {
        let errors = if errors.is_empty() {
            std::thread::sleep(Duration::from_millis(300));
            b.js_errors().unwrap_or_default()
        } else {
            errors
        };
        assert!(
            errors.iter().any(|e| e.contains("noSuchFunction")),
            "{errors:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The real pages.

/// Hub, registry, fixtures, git daemon and one builder host, with the tags, target and
/// packages of the builds below. Fields drop in order: browser first, builder last.
struct Setup {
    browser: Browser,
    hub: Hub,
    _registry: TestRegistry,
    fixtures: Fixtures,
    git: GitServer,
    _builder: BuilderProc,
    _tmp: tempfile::TempDir,
}

fn setup() -> Option<Setup> {
    if !tools_present() {
        return None;
    }
    let browser = Browser::start()?;
    let hub = Hub::start()?;
    let registry = TestRegistry::start();
    let fixtures = Fixtures::build(&registry.host_port());
    let git = GitServer::start(&fixtures.repos_dir);
    hub.koji_ok(&["add-tag", "--arches", "x86_64", "web-build"]);
    hub.koji_ok(&["add-tag", "web"]);
    hub.koji_ok(&["add-target", TARGET, "web-build", "web"]);
    for pkg in ["ticker-container", "failing-run-container"] {
        hub.koji_ok(&["add-pkg", "--owner", ADMIN, "web", pkg]);
    }
    let tmp = tempfile::Builder::new()
        .prefix("cb-web-")
        .tempdir()
        .expect("tempdir");
    let root = tmp.path().join("buildah-b1");
    let reg = registry.host_port();
    let builder = BuilderProc::start(
        &hub,
        "b1",
        &["x86_64"],
        &[
            "--registry",
            &reg,
            "--registry-insecure",
            "--buildah-root",
            root.to_str().expect("utf-8 path"),
        ],
    );
    hub.koji_ok(&["grant-cg-access", "b1", "atomic-reactor", "--new"]);
    Some(Setup {
        browser,
        hub,
        _registry: registry,
        fixtures,
        git,
        _builder: builder,
        _tmp: tmp,
    })
}

impl Setup {
    /// `http://127.0.0.1:PORT/koji/<page>`
    fn page(&self, page: &str) -> String {
        format!("http://127.0.0.1:{}/koji/{page}", self.hub.port())
    }

    /// A one-commit bare repo `<name>.git` next to the fixtures' repos (branch `main`), served
    /// by the git daemon; returns its `git://...#sha` source.
    fn repo(&self, name: &str, files: &[(&str, &str)]) -> String {
        self.fixtures.one_commit_repo(&self.git, name, files)
    }

    /// `koji call buildContainer SRC web-candidate OPTS` (the stock CLI has no `container-build`
    /// without the koji-containerbuild plugin; this is the call it makes, without waiting).
    fn submit(&self, src: &str, opts: &str) -> i64 {
        let out = self.hub.koji_ok(&[
            "call",
            "--python",
            "buildContainer",
            &format!("'{src}'"),
            &format!("'{TARGET}'"),
            opts,
        ]);
        out.trim()
            .parse()
            .unwrap_or_else(|e| panic!("buildContainer answer {out:?}: {e}"))
    }

    /// The first `createContainer` child of a `buildContainer` task, once it exists.
    fn child(&self, parent: i64) -> i64 {
        wait_for(
            Duration::from_secs(180),
            &format!("a createContainer child of task {parent}"),
            || {
                let out = self.hub.python_ok(&format!(
                    "import koji, os\n\
                     s = koji.ClientSession(os.environ['KOJI_URL'])\n\
                     for c in s.getTaskChildren({parent}):\n\
                     \x20   if c['method'] == 'createContainer':\n\
                     \x20       print(c['id'])\n"
                ));
                out.lines().next().and_then(|l| l.trim().parse().ok())
            },
        )
    }

    fn wait_end(&self, id: i64) -> i64 {
        wait_for(
            Duration::from_secs(300),
            &format!("task {id} to end"),
            || {
                let (st, _) = task_state(&self.hub, id);
                (st >= 2 && st != 4).then_some(st)
            },
        )
    }

    /// `getTaskResult` of a task, or its fault, as one line.
    fn outcome(&self, id: i64) -> String {
        self.hub.python_ok(&format!(
            "import koji, os\n\
             s = koji.ClientSession(os.environ['KOJI_URL'])\n\
             try:\n\
             \x20   print('RESULT', repr(s.getTaskResult({id})))\n\
             except Exception as e:\n\
             \x20   print('FAULT', getattr(e, 'faultCode', None), getattr(e, 'faultString', e))\n"
        ))
    }

    /// The build id of a finished non-scratch build (`koji_builds` of its result).
    fn build_id(&self, task: i64) -> i64 {
        let out = self.hub.python_ok(&format!(
            "import koji, os\n\
             s = koji.ClientSession(os.environ['KOJI_URL'])\n\
             print(s.getTaskResult({task})['koji_builds'][0])\n"
        ));
        out.trim()
            .parse()
            .unwrap_or_else(|e| panic!("koji_builds of task {task}: {out:?}: {e}"))
    }
}

#[test]
fn task_build_and_host_pages_in_a_browser() {
    let Some(s) = setup() else { return };
    let b = &s.browser;

    // A non-scratch build whose RUN prints a line a second; container.yaml's `autorebuild`
    // gives the result a user warning.
    let src = s.repo(
        "ticker",
        &[
            (
                "Dockerfile",
                &format!(
                    "FROM {}\n\
                     LABEL com.redhat.component=ticker-container name=ticker version=1.0\n\
                     RUN for i in $(seq 1 {TICKS}); do echo \"tick $i of {TICKS}\"; sleep 1; done\n",
                    s.fixtures.base_ref()
                ),
            ),
            ("container.yaml", "autorebuild:\n  from_latest: false\n"),
        ],
    );
    let parent = s.submit(&src, "{'git_branch': 'main'}");
    let child = s.child(parent);

    // The child's page while it runs: OPEN, the log growing in place.
    open(b, &s.page(&format!("taskinfo?taskID={child}")));
    assert_no_js_errors(b, "taskinfo (running)");
    for id in ["task-state", "log", "log-follow"] {
        assert!(
            b.try_find(&format!("#{id}")).is_some(),
            "taskinfo has no #{id}:\n{}",
            b.source()
        );
    }
    let state = text_of(b, "task-state").unwrap_or_default();
    assert!(
        ["OPEN", "FREE", "ASSIGNED"].contains(&state.trim()),
        "a running task's state: {state:?}"
    );
    b.wait_until(Duration::from_secs(30), "#task-state to show OPEN", |b| {
        (text_of(b, "task-state")?.trim() == "OPEN").then_some(())
    });
    let seen = b.wait_until(Duration::from_secs(240), "ticks in #log", |b| {
        let t = last_tick(&text_of(b, "log")?);
        (t >= 1).then_some(t)
    });
    assert!(
        seen < TICKS,
        "the page was opened while the RUN ticked, yet showed all {TICKS} ticks at once"
    );
    let grown = b.wait_until(Duration::from_secs(30), "#log to grow in place", |b| {
        let t = last_tick(&text_of(b, "log")?);
        (t >= seen + 2).then_some(t)
    });
    assert!(same_document(b), "the log grew by a reload, not in place");
    assert_eq!(
        text_of(b, "task-state").as_deref().map(str::trim),
        Some("OPEN")
    );
    let polls = requests_to(b, "/koji/tasklog");
    assert!(polls > 0, "no request to /koji/tasklog while the log grew");
    eprintln!("log grew from tick {seen} to {grown} with {polls} polls so far");

    // The live log, for the record and the README.
    b.wait_until(
        Duration::from_secs(15),
        "a few more ticks for the screenshot",
        |b| (last_tick(&text_of(b, "log")?) >= grown + 2).then_some(()),
    );
    let shot = full_page_screenshot(b, &artifacts_dir().join("taskinfo-live-log.png"));
    if std::env::var("UPDATE_SCREENSHOT").as_deref() == Ok("1") {
        let docs = common::repo_dir().join("docs");
        std::fs::create_dir_all(&docs).expect("create docs/");
        std::fs::copy(&shot, docs.join("taskinfo-live-log.png"))
            .expect("copy the screenshot to docs/");
        eprintln!("updated docs/taskinfo-live-log.png");
    }

    // Follow/pause toggles (its text or aria-pressed), and back.
    let following = follow_state(b);
    b.click(&b.find("#log-follow"));
    let paused = b.wait_until(Duration::from_secs(5), "#log-follow to toggle", |b| {
        let st = follow_state(b);
        (st != following).then_some(st)
    });
    eprintln!("follow button: {following:?} -> {paused:?}");
    b.click(&b.find("#log-follow"));
    b.wait_until(Duration::from_secs(5), "#log-follow to toggle back", |b| {
        (follow_state(b) == following).then_some(())
    });
    assert!(same_document(b));

    // The end: CLOSED without a reload, the whole log, no more polling.
    b.wait_until(
        Duration::from_secs(300),
        "#task-state to become CLOSED",
        |b| (text_of(b, "task-state")?.trim() == "CLOSED").then_some(()),
    );
    assert!(same_document(b), "the page reloaded to show the end");
    assert_eq!(task_state(&s.hub, child).0, CLOSED);
    let log = text_of(b, "log").unwrap_or_default();
    assert_eq!(
        last_tick(&log),
        TICKS,
        "the whole RUN output in #log:\n{log}"
    );
    // plugin-spec/web.md: the script marks the log done when it stops polling.
    b.wait_until(Duration::from_secs(30), "#log to be marked done", |b| {
        (b.attribute(&b.find("#log"), "data-done").as_deref() == Some("true")).then_some(())
    });
    let polls = requests_to(b, "/koji/tasklog");
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        requests_to(b, "/koji/tasklog"),
        polls,
        "the page kept polling /koji/tasklog after the task closed"
    );
    assert!(text_of(b, "task-fault").is_none_or(|f| f.trim().is_empty()));
    assert_no_js_errors(b, "taskinfo (closed)");

    // The parent: CLOSED, with the user warning.
    assert_eq!(s.wait_end(parent), CLOSED, "{}", s.outcome(parent));
    open(b, &s.page(&format!("taskinfo?taskID={parent}")));
    assert_eq!(
        text_of(b, "task-state").as_deref().map(str::trim),
        Some("CLOSED")
    );
    let warnings = text_of(b, "user-warnings")
        .unwrap_or_else(|| panic!("the parent's page has no #user-warnings:\n{}", b.source()));
    assert_contains(&warnings, "autorebuild", "#user-warnings");
    assert_no_js_errors(b, "taskinfo (parent)");

    // The build page: the RPM table filtered in the page, the layers.
    let build = s.build_id(parent);
    open(b, &s.page(&format!("buildinfo?buildID={build}")));
    assert!(b.try_find("#layers").is_some(), "buildinfo has no #layers");
    let rows = table_rows(b, "rpms");
    assert!(
        rows.len() >= 2 && rows.iter().all(|r| r.1),
        "the image's RPMs, all shown: {rows:?}"
    );
    assert!(
        rows.iter().any(|r| r.0.contains("cb-hello")),
        "cb-hello among the RPMs: {rows:?}"
    );
    b.send_keys(&b.find("#rpm-filter"), "cb-hello");
    let rows = b.wait_until(Duration::from_secs(5), "#rpms to be filtered", |b| {
        let rows = table_rows(b, "rpms");
        rows.iter().any(|r| !r.1).then_some(rows)
    });
    for (text, shown) in &rows {
        assert_eq!(
            *shown,
            text.contains("cb-hello"),
            "row {text:?} after filtering for cb-hello: {rows:?}"
        );
    }
    assert!(same_document(b), "the filter reloaded the page");
    b.screenshot(&artifacts_dir().join("buildinfo-filtered.png"));
    assert_no_js_errors(b, "buildinfo");

    // A failed build: the fault on the page.
    let src = format!(
        "{}#{}",
        s.git.url("failing-run"),
        s.fixtures.sha("failing-run")
    );
    let failed = s.submit(&src, "{'git_branch': 'main', 'scratch': True}");
    assert_eq!(s.wait_end(failed), FAILED);
    open(b, &s.page(&format!("taskinfo?taskID={failed}")));
    assert_eq!(
        text_of(b, "task-state").as_deref().map(str::trim),
        Some("FAILED")
    );
    let fault = b
        .try_find("#task-fault")
        .unwrap_or_else(|| panic!("a failed task's page has no #task-fault:\n{}", b.source()));
    assert!(b.is_displayed(&fault), "#task-fault is hidden");
    assert_contains(&b.text(&fault), "Image build failed.", "#task-fault");
    b.screenshot(&artifacts_dir().join("taskinfo-failed.png"));
    assert_no_js_errors(b, "taskinfo (failed)");

    // The task list and the host list.
    open(b, &s.page("tasks"));
    let rows = table_rows(b, "tasks");
    for id in [parent, child, failed] {
        assert!(
            rows.iter().any(|r| r.0.contains(&id.to_string())),
            "task {id} in #tasks: {rows:?}"
        );
    }
    assert!(
        rows.iter().any(|r| r.0.contains("buildContainer")),
        "{rows:?}"
    );
    assert_no_js_errors(b, "tasks");
    open(b, &s.page("hosts"));
    let rows = table_rows(b, "hosts");
    assert!(
        rows.iter().any(|r| r.0.contains("b1")),
        "b1 in #hosts: {rows:?}"
    );
    assert_no_js_errors(b, "hosts");
}
