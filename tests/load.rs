//! Load: many concurrent pollers against a hub that is running real container builds.
//!
//! 200 pollers (the koji CLI's `watch-task`/`list-tasks`/`download-task-output` calls:
//! `getTaskInfo`, `listTasks`, `downloadTaskOutput`) hammer the hub over keep-alive
//! connections while builders run 4 scratch `buildContainer` builds at a time and 20 `sleep`
//! tasks wait in the queue; every finished task is replaced, so the load stays constant.
//! Afterwards every task submitted must be CLOSED (none lost, none failed), no poller call may
//! have failed, and the hub's RSS must not have grown like a leak.
//!
//! The figures it prints (calls/s, p50/p99 per method, RSS) are the load benchmark:
//! `make load` runs it for 10 minutes (`LOAD_SECONDS=600`); `make test` runs a short smoke
//! version (`LOAD_SECONDS` unset: 30 s). Nothing here asserts on time.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use common::build_env;
use common::{ADMIN, BuilderProc, fault_code, fault_string};

const FREE: i64 = 0;
const CLOSED: i64 = 2;
const CANCELED: i64 = 3;
const FAILED: i64 = 5;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One keep-alive HTTP/1.1 connection to the hub, as `requests.Session` keeps one.
struct Conn {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

impl Conn {
    fn new(addr: SocketAddr) -> Conn {
        Conn {
            addr,
            stream: None,
            buf: Vec::with_capacity(64 * 1024),
        }
    }

    /// POSTs `body` to `/kojihub`; the response body. A call on a reused connection that the
    /// hub closed in the meantime is retried once on a new connection, as the koji client does.
    fn call(&mut self, headers: &str, body: &str) -> Result<String, String> {
        let reused = self.stream.is_some();
        match self.try_call(headers, body) {
            Ok(r) => Ok(r),
            Err(_) if reused => {
                self.stream = None;
                self.try_call(headers, body)
            }
            Err(e) => Err(e),
        }
    }

    fn try_call(&mut self, headers: &str, body: &str) -> Result<String, String> {
        if self.stream.is_none() {
            let s = TcpStream::connect_timeout(&self.addr, Duration::from_secs(10))
                .map_err(|e| format!("connect: {e}"))?;
            s.set_read_timeout(Some(Duration::from_secs(120)))
                .map_err(|e| e.to_string())?;
            s.set_nodelay(true).map_err(|e| e.to_string())?;
            self.stream = Some(s);
        }
        let r = self.exchange(headers, body);
        if r.is_err() {
            self.stream = None;
        }
        r
    }

    fn exchange(&mut self, headers: &str, body: &str) -> Result<String, String> {
        let addr = self.addr;
        let stream = self.stream.as_mut().ok_or("no connection")?;
        let req = format!(
            "POST /kojihub HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/xml\r\n\
             Content-Length: {}\r\n{headers}\r\n{body}",
            body.len()
        );
        stream
            .write_all(req.as_bytes())
            .map_err(|e| format!("write: {e}"))?;
        self.buf.clear();
        let mut chunk = [0u8; 16384];
        let head_end = loop {
            if let Some(p) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p;
            }
            let n = stream.read(&mut chunk).map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err("connection closed before the response".into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).to_ascii_lowercase();
        let status = head.split_whitespace().nth(1).unwrap_or("").to_owned();
        if status != "200" {
            return Err(format!("HTTP status {status}"));
        }
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or("response without Content-Length")?;
        let start = head_end + 4;
        while self.buf.len() < start + len {
            let n = stream.read(&mut chunk).map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err("connection closed inside the response body".into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        if head.contains("connection: close") {
            self.stream = None;
        }
        Ok(String::from_utf8_lossy(&self.buf[start..start + len]).into_owned())
    }
}

fn call_body(method: &str, params: &[String]) -> String {
    let mut s =
        format!("<?xml version=\"1.0\"?><methodCall><methodName>{method}</methodName><params>");
    for p in params {
        s.push_str("<param><value>");
        s.push_str(p);
        s.push_str("</value></param>");
    }
    s.push_str("</params></methodCall>");
    s
}

fn int(v: i64) -> String {
    format!("<int>{v}</int>")
}

fn string(v: &str) -> String {
    format!("<string>{}</string>", common::xml_escape(v))
}

/// Every `<int>` value of struct members called `name`, in document order.
fn member_ints(body: &str, name: &str) -> Vec<i64> {
    let tag = format!("<name>{name}</name>");
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(p) = rest.find(&tag) {
        rest = &rest[p + tag.len()..];
        let v = rest.trim_start();
        let v = v.strip_prefix("<value>").unwrap_or(v).trim_start();
        let v = v
            .strip_prefix("<int>")
            .or_else(|| v.strip_prefix("<i4>"))
            .or_else(|| v.strip_prefix("<i8>"));
        if let Some(v) = v
            && let Some(end) = v.find('<')
            && let Ok(n) = v[..end].trim().parse()
        {
            out.push(n);
        }
    }
    out
}

/// Every `<string>` value in `body` (the answer of `listTaskOutput`).
fn strings(body: &str) -> Vec<String> {
    body.split("<string>")
        .skip(1)
        .filter_map(|s| s.split_once("</string>").map(|(v, _)| v.to_owned()))
        .collect()
}

/// The `n`th-percentile of sorted `v` in milliseconds.
fn pct(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let i = ((v.len() as f64 - 1.0) * p / 100.0).round() as usize;
    v[i.min(v.len() - 1)] * 1000.0
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// What the pollers can ask about; filled in by the driver as tasks appear and finish.
#[derive(Default)]
struct Targets {
    tasks: Vec<i64>,
    outputs: Vec<(i64, String)>,
}

const OPS: [&str; 3] = ["getTaskInfo", "listTasks", "downloadTaskOutput"];

#[derive(Default)]
struct PollerStats {
    lat: [Vec<f64>; 3],
    errors: Vec<String>,
}

fn poller(
    addr: SocketAddr,
    idx: usize,
    think: Duration,
    stop: Arc<AtomicBool>,
    targets: Arc<RwLock<Targets>>,
    error_count: Arc<AtomicU64>,
) -> PollerStats {
    let mut conn = Conn::new(addr);
    let mut st = PollerStats::default();
    // A small xorshift per poller: spread the calls over all known tasks and files.
    let mut rnd = 0x9E37_79B9_7F4A_7C15u64 ^ (idx as u64 + 1).wrapping_mul(0x2545_F491_4F6C_DD1D);
    let mut next = move || {
        rnd ^= rnd << 13;
        rnd ^= rnd >> 7;
        rnd ^= rnd << 17;
        rnd
    };
    let list_tasks = call_body(
        "listTasks",
        &[
            "<struct><member><name>state</name><value><array><data><value><int>0</int></value>\
             <value><int>1</int></value><value><int>4</int></value></data></array></value></member>\
             <member><name>decode</name><value><boolean>1</boolean></value></member></struct>"
                .to_owned(),
            "<struct><member><name>order</name><value><string>priority,create_time</string>\
             </value></member></struct>"
                .to_owned(),
        ],
    );
    let mut op = idx % 3;
    while !stop.load(Ordering::Relaxed) {
        let body = {
            let t = targets.read().unwrap_or_else(|e| e.into_inner());
            match op {
                0 if !t.tasks.is_empty() => {
                    let id = t.tasks[(next() % t.tasks.len() as u64) as usize];
                    Some(call_body("getTaskInfo", &[int(id)]))
                }
                1 => Some(list_tasks.clone()),
                2 if !t.outputs.is_empty() => {
                    let (id, name) = &t.outputs[(next() % t.outputs.len() as u64) as usize];
                    Some(call_body(
                        "downloadTaskOutput",
                        &[int(*id), string(name), int(0), int(102_400)],
                    ))
                }
                _ => None,
            }
        };
        if let Some(body) = body {
            let t0 = Instant::now();
            let r = conn.call("", &body);
            let dt = t0.elapsed().as_secs_f64();
            match r {
                Ok(resp) if fault_code(&resp).is_none() => st.lat[op].push(dt),
                Ok(resp) => {
                    error_count.fetch_add(1, Ordering::Relaxed);
                    st.errors.push(format!(
                        "{}: fault {:?} {:?}",
                        OPS[op],
                        fault_code(&resp),
                        fault_string(&resp)
                    ));
                }
                Err(e) => {
                    error_count.fetch_add(1, Ordering::Relaxed);
                    st.errors.push(format!("{}: {e}", OPS[op]));
                }
            }
            std::thread::sleep(think);
        }
        op = (op + 1) % 3;
    }
    st
}

/// The driver's admin connection: submits tasks and watches them.
struct Driver {
    conn: Conn,
    headers: String,
}

impl Driver {
    fn call(&mut self, method: &str, params: &[String]) -> String {
        let body = call_body(method, params);
        let resp = self
            .conn
            .call(&self.headers, &body)
            .unwrap_or_else(|e| panic!("driver {method}: {e}"));
        assert!(
            fault_code(&resp).is_none(),
            "driver {method} failed: {resp}"
        );
        resp
    }

    fn new_id(&mut self, method: &str, params: &[String]) -> i64 {
        let resp = self.call(method, params);
        member_ints(&format!("<name>x</name>{}", strip_params(&resp)), "x")
            .first()
            .copied()
            .unwrap_or_else(|| panic!("{method} returned no task id: {resp}"))
    }

    fn state(&mut self, id: i64) -> i64 {
        let resp = self.call("getTaskInfo", &[int(id)]);
        member_ints(&resp, "state")
            .first()
            .copied()
            .unwrap_or_else(|| panic!("getTaskInfo({id}) without state: {resp}"))
    }
}

/// The value part of a `methodResponse` (for a scalar answer).
fn strip_params(resp: &str) -> &str {
    resp.split_once("<param>")
        .map(|(_, r)| r)
        .and_then(|r| r.split_once("</param>"))
        .map(|(v, _)| v)
        .unwrap_or(resp)
}

#[test]
fn pollers_builds_and_queue_under_load() {
    let Some((hub, registry, fixtures, git)) = build_env("f40-candidate") else {
        return;
    };
    let seconds = env_u64("LOAD_SECONDS", 30);
    let pollers = env_u64("LOAD_POLLERS", 200) as usize;
    let think = Duration::from_millis(env_u64("LOAD_THINK_MS", 100));
    let builds_in_flight = env_u64("LOAD_BUILDS", 4) as usize;
    let queued = env_u64("LOAD_QUEUED", 20) as usize;

    hub.koji_ok(&["add-pkg", "--owner", ADMIN, "f40", "plain-container"]);
    let tmp = tempfile::Builder::new()
        .prefix("cb-load-")
        .tempdir()
        .expect("tempdir");
    let reg = registry.host_port();
    // Two builder hosts, each with room for two builds (a parent and its buildArch child each)
    // and one more task: the sleep tasks queue behind the builds.
    let mut builders = Vec::new();
    for name in ["load1", "load2"] {
        let root = tmp.path().join(format!("buildah-{name}"));
        builders.push(BuilderProc::start(
            &hub,
            name,
            &["x86_64"],
            &[
                "--registry",
                &reg,
                "--registry-insecure",
                "--maxjobs",
                "5",
                "--buildah-root",
                root.to_str().expect("utf-8 path"),
            ],
        ));
    }
    let src = format!("{}#{}", git.url("plain"), fixtures.sha("plain"));

    let (sid, skey) = hub.raw_login(ADMIN, hub.admin_password());
    let mut driver = Driver {
        conn: Conn::new(hub.addr()),
        headers: format!("Koji-Session-Id: {sid}\r\nKoji-Session-Key: {skey}\r\n"),
    };
    let build_call = |d: &mut Driver| {
        d.new_id(
            "buildContainer",
            &[
                string(&src),
                string("f40-candidate"),
                "<struct><member><name>scratch</name><value><boolean>1</boolean></value></member>\
                 <member><name>git_branch</name><value><string>main</string></value></member>\
                 </struct>"
                    .to_owned(),
            ],
        )
    };
    let sleep_call = |d: &mut Driver| {
        d.new_id(
            "makeTask",
            &[
                string("sleep"),
                "<array><data><value><int>3</int></value></data></array>".to_owned(),
            ],
        )
    };

    let targets = Arc::new(RwLock::new(Targets::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let error_count = Arc::new(AtomicU64::new(0));
    let hub_pid = hub.pid().expect("hub pid");

    // Submit the initial load before the pollers start, so they have tasks to ask about.
    let mut builds: Vec<i64> = (0..builds_in_flight)
        .map(|_| build_call(&mut driver))
        .collect();
    let mut sleeps: Vec<i64> = (0..queued).map(|_| sleep_call(&mut driver)).collect();
    let mut submitted: Vec<i64> = builds.iter().chain(&sleeps).copied().collect();
    targets
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .tasks
        .extend(&submitted);

    let rss_samples = Arc::new(Mutex::new(Vec::<(f64, u64)>::new()));
    let t_start = Instant::now();
    let sampler = {
        let stop = stop.clone();
        let samples = rss_samples.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let r = rss_kib(hub_pid);
                samples
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((t_start.elapsed().as_secs_f64(), r));
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    };
    let addr = hub.addr();
    let handles: Vec<_> = (0..pollers)
        .map(|i| {
            let (stop, targets, errs) = (stop.clone(), targets.clone(), error_count.clone());
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || poller(addr, i, think, stop, targets, errs))
                .expect("spawn poller")
        })
        .collect();

    // Keep the load constant until the time is up: replace every finished task.
    let deadline = t_start + Duration::from_secs(seconds);
    let mut finished_builds = 0usize;
    let mut finished_sleeps = 0usize;
    let mut max_queued = 0usize;
    let mut bad: Vec<(i64, i64)> = Vec::new();
    while Instant::now() < deadline {
        let mut new_tasks = Vec::new();
        let mut free_now = 0usize;
        for kind in 0..2 {
            let list = if kind == 0 { &mut builds } else { &mut sleeps };
            let mut keep = Vec::with_capacity(list.len());
            for &id in list.iter() {
                let st = driver.state(id);
                match st {
                    CLOSED => {
                        if kind == 0 {
                            finished_builds += 1;
                        } else {
                            finished_sleeps += 1;
                        }
                    }
                    CANCELED | FAILED => bad.push((id, st)),
                    _ => {
                        if st == FREE {
                            free_now += 1;
                        }
                        keep.push(id);
                    }
                }
                if st == CLOSED && kind == 0 {
                    // The finished build's task tree and its files become poll targets.
                    let kids = driver.call("getTaskChildren", &[int(id)]);
                    let mut t = targets.write().unwrap_or_else(|e| e.into_inner());
                    for kid in member_ints(&kids, "id") {
                        t.tasks.push(kid);
                        let out = driver.call("listTaskOutput", &[int(kid)]);
                        for name in strings(&out) {
                            t.outputs.push((kid, name));
                        }
                    }
                }
            }
            *list = keep;
        }
        max_queued = max_queued.max(free_now);
        while builds.len() < builds_in_flight {
            let id = build_call(&mut driver);
            builds.push(id);
            new_tasks.push(id);
        }
        while sleeps.len() < queued {
            let id = sleep_call(&mut driver);
            sleeps.push(id);
            new_tasks.push(id);
        }
        submitted.extend(&new_tasks);
        targets
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .tasks
            .extend(&new_tasks);
        std::thread::sleep(Duration::from_millis(500));
    }
    stop.store(true, Ordering::Relaxed);
    let mut stats = PollerStats::default();
    for h in handles {
        let s = h.join().expect("poller thread");
        for (all, mine) in stats.lat.iter_mut().zip(s.lat) {
            all.extend(mine);
        }
        stats.errors.extend(s.errors);
    }
    let load_secs = t_start.elapsed().as_secs_f64();
    let _ = sampler.join();

    // Drain: every task submitted must end CLOSED.
    let drain_deadline = Instant::now() + Duration::from_secs(600);
    for &id in &submitted {
        loop {
            let st = driver.state(id);
            if st == CLOSED {
                break;
            }
            if st == CANCELED || st == FAILED {
                if !bad.contains(&(id, st)) {
                    bad.push((id, st));
                }
                break;
            }
            assert!(
                Instant::now() < drain_deadline,
                "task {id} still in state {st} after the drain period; builder logs:\n{}\n{}",
                builders[0].log(),
                builders[1].log()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    let samples = rss_samples
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let warm = samples
        .iter()
        .find(|(t, _)| *t >= load_secs * 0.1)
        .or(samples.first())
        .map_or(0, |s| s.1);
    let peak = samples.iter().map(|s| s.1).max().unwrap_or(0);
    let end = samples.last().map_or(0, |s| s.1);
    let total: usize = stats.lat.iter().map(Vec::len).sum();
    println!(
        "load: {load_secs:.0} s, {pollers} pollers (think {} ms), {builds_in_flight} builds in \
         flight, {queued} sleep tasks kept queued (at most {max_queued} FREE at once)",
        think.as_millis()
    );
    println!(
        "calls: {total} ok, {:.0}/s, errors {}",
        total as f64 / load_secs,
        stats.errors.len()
    );
    for (name, lat) in OPS.iter().zip(stats.lat.iter_mut()) {
        lat.sort_by(f64::total_cmp);
        println!(
            "  {name:<20} {:>8} calls  p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>8.2} ms",
            lat.len(),
            pct(lat, 50.0),
            pct(lat, 99.0),
            pct(lat, 100.0)
        );
    }
    println!(
        "tasks: {} submitted, builds closed {finished_builds} during the run, sleep tasks \
         closed {finished_sleeps}; all closed after the drain: {}",
        submitted.len(),
        bad.is_empty()
    );
    println!(
        "hub RSS: {:.1} MB at 10% of the run, peak {:.1} MB, end {:.1} MB",
        warm as f64 / 1024.0,
        peak as f64 / 1024.0,
        end as f64 / 1024.0
    );

    assert!(
        stats.errors.is_empty(),
        "{} poller calls failed; first ones: {:#?}",
        stats.errors.len(),
        &stats.errors[..stats.errors.len().min(10)]
    );
    assert!(
        bad.is_empty(),
        "tasks that did not close: {bad:?}; builder logs:\n{}\n{}",
        builders[0].log(),
        builders[1].log()
    );
    assert!(
        stats.lat.iter().all(|l| !l.is_empty()),
        "every kind of poll ran at least once"
    );
    // A leak grows with the number of calls; the hub's working set does not.
    assert!(
        end <= warm + 100 * 1024,
        "hub RSS grew from {warm} KiB to {end} KiB under constant load"
    );
}
