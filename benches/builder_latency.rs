//! Builder latencies with the embedded builder of `containerbuild serve --builders 1`:
//!
//! 1. dispatch: task submitted (`makeTask('sleep', [0])`) -> OPEN on an idle builder, from the
//!    client's clock before the call to the task's `start_ts` (same machine, same clock);
//! 2. live logs: a line written by a running task (each `sleep.log` line carries the time it was
//!    written) -> first returned by `downloadTaskOutput`, polled every `POLL_MS`.
//!
//! Run: `cargo bench --bench builder_latency` (env `BENCH_TASKS`, default 200).

#[path = "common/mod.rs"]
mod common;
use common::Server;

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use containerbuild::builder::client::{KojiClient, RetryPolicy};
use containerbuild::xmlrpc::time::parse_iso;
use containerbuild::xmlrpc::{Struct, Value};

const POLL_MS: u64 = 10;

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(((v.len() as f64 * p) as usize).min(v.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0.0)
}

fn field(v: &Value, k: &str) -> Value {
    v.as_struct()
        .and_then(|s| s.get(k))
        .cloned()
        .unwrap_or(Value::Nil)
}

async fn task_info(c: &KojiClient, id: i64) -> Value {
    c.call("getTaskInfo", vec![Value::Int(id)])
        .await
        .expect("getTaskInfo")
}

async fn make_sleep(c: &KojiClient, secs: i64) -> i64 {
    c.call(
        "makeTask",
        vec![Value::str("sleep"), Value::Array(vec![Value::Int(secs)])],
    )
    .await
    .expect("makeTask")
    .as_int()
    .expect("task id")
}

async fn wait_state(c: &KojiClient, id: i64, done: &[i64]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let info = task_info(c, id).await;
        if field(&info, "state")
            .as_int()
            .is_some_and(|s| done.contains(&s))
        {
            return info;
        }
        assert!(Instant::now() < deadline, "task {id} stuck: {info:?}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn run(port: u16, n: usize) {
    let url = format!("http://127.0.0.1:{port}/kojihub");
    let c = KojiClient::new(&url, RetryPolicy::DAEMON).expect("client");
    c.login("admin", "bench-password").await.expect("login");
    // Wait for the embedded builder to report ready.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut kw = Struct::new();
        kw.insert("ready", true);
        let hosts = c.call_kw("listHosts", vec![], kw).await.expect("listHosts");
        if hosts.as_array().is_some_and(|h| !h.is_empty()) {
            break;
        }
        assert!(Instant::now() < deadline, "no builder became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Warm-up task.
    let id = make_sleep(&c, 0).await;
    wait_state(&c, id, &[2, 3, 5]).await;

    let mut open = Vec::with_capacity(n);
    for _ in 0..n {
        let t0 = now();
        let id = make_sleep(&c, 0).await;
        let info = wait_state(&c, id, &[2, 3, 5]).await;
        let start = field(&info, "start_ts");
        let start = match start {
            Value::Double(d) => d,
            other => panic!("task {id} has no start_ts: {other:?}"),
        };
        open.push((start - t0) * 1000.0);
    }
    let med = pct(&mut open, 0.5);
    let p99 = pct(&mut open, 0.99);
    println!(
        "dispatch submit->OPEN over {n} tasks: median {med:.1} ms, p99 {p99:.1} ms, max {:.1} ms",
        open.last().copied().unwrap_or(0.0)
    );

    // Live log latency.
    let id = make_sleep(&c, 15).await;
    wait_state(&c, id, &[1]).await;
    let mut offset = 0i64;
    let mut pending = String::new();
    let mut lat = Vec::new();
    let b64 = base64::engine::general_purpose::STANDARD;
    loop {
        let mut kw = Struct::new();
        kw.insert("offset", offset);
        kw.insert("size", 65536);
        match c
            .call_kw(
                "downloadTaskOutput",
                vec![Value::Int(id), Value::str("sleep.log")],
                kw,
            )
            .await
        {
            Ok(Value::String(s)) if !s.is_empty() => {
                let seen = now();
                let bytes = b64.decode(s.as_bytes()).expect("base64");
                offset += bytes.len() as i64;
                pending.push_str(&String::from_utf8_lossy(&bytes));
                while let Some(pos) = pending.find('\n') {
                    let line: String = pending.drain(..=pos).collect();
                    if let Some(stamp) = line.get(..32).and_then(parse_iso) {
                        lat.push((seen - stamp) * 1000.0);
                    }
                }
            }
            _ => {}
        }
        let state = field(&task_info(&c, id).await, "state")
            .as_int()
            .unwrap_or(0);
        if state != 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
    }
    let k = lat.len();
    let med = pct(&mut lat, 0.5);
    let p99 = pct(&mut lat, 0.99);
    println!(
        "log line written->downloadTaskOutput over {k} lines (polling every {POLL_MS} ms): median {med:.0} ms, p99 {p99:.0} ms, max {:.0} ms",
        lat.last().copied().unwrap_or(0.0)
    );
}

fn main() {
    let n: usize = std::env::var("BENCH_TASKS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = env!("CARGO_BIN_EXE_containerbuild");
    let mut add = Command::new(bin)
        .args([
            "user",
            "add",
            "admin",
            "--admin",
            "--password-stdin",
            "--data-dir",
        ])
        .arg(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("user add");
    {
        use std::io::Write;
        let mut stdin = add.stdin.take().expect("stdin");
        stdin.write_all(b"bench-password\n").expect("password");
    }
    assert!(add.wait().expect("user add").success());
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let _server = Server(
        Command::new(bin)
            .args(["serve", "--builders", "1", "--data-dir"])
            .arg(dir.path())
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("CONTAINERBUILD_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn hub"),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(port, n));
}
