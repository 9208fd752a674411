//! Hub throughput: XML-RPC calls/s and latency percentiles at 1, 8, 32 and 128 concurrent
//! keep-alive clients, against the release `containerbuild serve` process on loopback, plus the
//! hub's RSS idle and after load. Prints one line per figure; BENCHMARKS.md records them.
//!
//! Run: `cargo bench --bench hub_throughput` (env `BENCH_SECONDS` = seconds per point, default 5;
//! `BENCH_TASKS` = tasks in the database, default 1000, of which the newest 1000 are FREE and
//! the rest CLOSED; `BENCH_BUILDS` = builds, default 100; `BENCH_ONLY` = run only the calls whose
//! name starts with it; `BENCH_CLIENTS` = comma-separated client counts; `BENCH_HUB_WRAPPER` = a
//! command to run the hub under, e.g. `valgrind --tool=callgrind`).

#[path = "common/mod.rs"]
mod common;
use common::{Server, cpu_seconds, free_port, status_kib};

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use containerbuild::store::Store;
use containerbuild::store::tasks::{NewTask, create};
use containerbuild::xmlrpc::wire::write_call;
use containerbuild::xmlrpc::{Struct, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `n` `buildContainer` tasks and `builds` builds. Only the newest `OPEN_TASKS` tasks stay
/// FREE; older ones are CLOSED, as on a long-lived hub, so `listTasks` over the open states
/// answers the same rows at every database size and the scale figure shows the indexes alone.
fn populate(dir: &Path, n: i64, builds: i64) {
    use containerbuild::store::cg::{BuildRow, insert_build};
    let store = Store::open(dir).expect("store");
    store
        .write(|tx| -> Result<(), containerbuild::store::StoreError> {
            let owner = containerbuild::store::users::create(tx, "bench", 0, 0, None, None)?;
            let mut opts = Struct::new();
            opts.insert("git_branch", "main");
            opts.insert("scratch", true);
            for i in 0..n {
                let req = write_call(
                    "buildContainer",
                    &[
                        Value::str(format!("git://pkgs.example/containers/app{i}#0123456789abcdef0123456789abcdef01234567")),
                        Value::str("f40-container-candidate"),
                        Value::Struct(opts.clone()),
                    ],
                );
                let t = NewTask {
                    method: "buildContainer".into(),
                    arch: "noarch".into(),
                    owner,
                    channel_id: 2,
                    priority: 20,
                    parent: None,
                    label: None,
                    request_xml: req,
                };
                create(tx, &t)?;
            }
            tx.execute(
                "UPDATE tasks SET state = 2, start_ts = create_ts, completion_ts = create_ts + 60 \
                 WHERE id <= ?1",
                [n - OPEN_TASKS],
            )?;
            let packages: Vec<i64> = (0..PACKAGES.min(builds.max(1)))
                .map(|p| containerbuild::store::records::create_package(tx, &format!("app{p}-container")))
                .collect::<Result<_, _>>()?;
            for b in 0..builds {
                let p = (b % packages.len() as i64) as usize;
                insert_build(
                    tx,
                    &BuildRow {
                        package_id: packages[p],
                        version: "1.0".into(),
                        release: format!("{}", b / packages.len() as i64 + 1),
                        epoch: None,
                        state: 1,
                        task_id: Some(b % n.max(1) + 1),
                        owner,
                        start_ts: Some(1.0e9),
                        completion_ts: Some(1.0e9 + 60.0),
                        source: Some(format!("git://pkgs.example/containers/app{p}#0123456789abcdef0123456789abcdef01234567")),
                        extra: Some(r#"{"container_koji_task_id": 1, "image": {"autorebuild": false}}"#.into()),
                        cg_id: None,
                    },
                )?;
            }
            Ok(())
        })
        .expect("populate");
}

/// Tasks left FREE by [`populate`].
const OPEN_TASKS: i64 = 1000;
/// Packages the builds are spread over.
const PACKAGES: i64 = 1000;

/// One keep-alive HTTP/1.1 connection sending the same POST repeatedly.
async fn one_call(
    stream: &mut TcpStream,
    request: &[u8],
    buf: &mut Vec<u8>,
) -> std::io::Result<()> {
    stream.write_all(request).await?;
    buf.clear();
    let mut tmp = [0u8; 16384];
    loop {
        let n = stream.read(&mut tmp).await?;
        if n == 0 {
            return Err(std::io::Error::other("connection closed"));
        }
        buf.extend_from_slice(&tmp[..n]);
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..pos]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| std::io::Error::other("no content-length"))?;
            while buf.len() < pos + 4 + len {
                let n = stream.read(&mut tmp).await?;
                if n == 0 {
                    return Err(std::io::Error::other("short body"));
                }
                buf.extend_from_slice(&tmp[..n]);
            }
            if !buf.starts_with(b"HTTP/1.1 200")
                || buf[pos + 4..].windows(7).any(|w| w == b"<fault>")
            {
                return Err(std::io::Error::other(
                    String::from_utf8_lossy(buf).into_owned(),
                ));
            }
            return Ok(());
        }
    }
}

fn http_post(port: u16, body: &str) -> Vec<u8> {
    format!(
        "POST /kojihub HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: koji/1\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

struct Point {
    calls_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    bytes: usize,
}

async fn run_point(
    port: u16,
    clients: usize,
    seconds: f64,
    make_body: impl Fn(usize) -> String,
) -> Point {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let mut handles = Vec::new();
    for c in 0..clients {
        let body = http_post(port, &make_body(c));
        handles.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("connect");
            s.set_nodelay(true).expect("nodelay");
            let mut lat = Vec::new();
            let mut buf = Vec::new();
            let mut size = 0;
            while Instant::now() < deadline {
                let t = Instant::now();
                one_call(&mut s, &body, &mut buf).await.expect("call");
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
                size = buf.len();
            }
            (lat, size)
        }));
    }
    let start = Instant::now();
    let mut all = Vec::new();
    let mut bytes = 0;
    for h in handles {
        let (l, b) = h.await.expect("client");
        all.extend(l);
        bytes = b;
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    };
    Point {
        calls_per_s: all.len() as f64 / elapsed,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        bytes,
    }
}

fn main() {
    let seconds: f64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    let ntasks: i64 = std::env::var("BENCH_TASKS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let client_counts: Vec<usize> = std::env::var("BENCH_CLIENTS")
        .ok()
        .map(|s| s.split(',').filter_map(|c| c.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 8, 32, 128]);
    let nbuilds: i64 = std::env::var("BENCH_BUILDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let dir = tempfile::tempdir().expect("tempdir");
    let t0 = Instant::now();
    populate(dir.path(), ntasks, nbuilds);
    let populated = t0.elapsed().as_secs_f64();
    let port = free_port();
    let bin = env!("CARGO_BIN_EXE_containerbuild");
    // `BENCH_HUB_WRAPPER` runs the hub under a profiler, e.g. `valgrind --tool=callgrind`.
    let wrapper = std::env::var("BENCH_HUB_WRAPPER").unwrap_or_default();
    let mut argv: Vec<String> = wrapper.split_whitespace().map(str::to_string).collect();
    argv.push(bin.to_string());
    let server = Server(
        Command::new(&argv[0])
            .args(&argv[1..])
            .args(["serve", "--data-dir"])
            .arg(dir.path())
            .args(["--listen", &format!("127.0.0.1:{port}"), "--builders", "0"])
            .env("CONTAINERBUILD_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn hub"),
    );
    let pid = server.0.id();
    for _ in 0..2000 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "hub_throughput: {ntasks} tasks ({} FREE) and {nbuilds} builds in the database (made in {populated:.1} s), {seconds} s per point, {} cores",
        OPEN_TASKS.min(ntasks),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!("rss idle: {} KiB", status_kib(pid, "VmRSS:"));
    let n = ntasks.max(1) as usize;
    let get_task_info = |c: usize| {
        let mut kw = Struct::new();
        kw.insert("request", true);
        kw.insert("__starstar", true);
        write_call(
            "getTaskInfo",
            &[Value::Int(((c * 7919) % n + 1) as i64), Value::Struct(kw)],
        )
    };
    let list_tasks = |_: usize| {
        let opts = Struct::new()
            .with("decode", true)
            .with("state", Value::Array(vec![Value::Int(0), Value::Int(1)]));
        let q = Struct::new().with("order", "-id").with("limit", 50);
        write_call("listTasks", &[Value::Struct(opts), Value::Struct(q)])
    };
    let nb = nbuilds.max(1) as usize;
    let get_build = |c: usize| write_call("getBuild", &[Value::Int(((c * 7919) % nb + 1) as i64)]);
    let multicall = |c: usize| {
        let calls: Vec<Value> = (0..10)
            .map(|i| {
                Value::Struct(Struct::new().with("methodName", "getTaskInfo").with(
                    "params",
                    Value::Array(vec![Value::Int(((c * 31 + i) % n + 1) as i64)]),
                ))
            })
            .collect();
        write_call("multiCall", &[Value::Array(calls)])
    };
    for (name, f) in [
        (
            "getTaskInfo(request=True)",
            &get_task_info as &dyn Fn(usize) -> String,
        ),
        ("listTasks(limit=50, decode)", &list_tasks),
        ("multiCall(10 x getTaskInfo)", &multicall),
        ("getBuild", &get_build),
    ] {
        if !only.is_empty() && !name.starts_with(only.as_str()) {
            continue;
        }
        for &clients in &client_counts {
            let cpu0 = cpu_seconds(pid);
            let p = rt.block_on(run_point(port, clients, seconds, f));
            let cpu_us = (cpu_seconds(pid) - cpu0) * 1e6 / (p.calls_per_s * seconds).max(1.0);
            println!(
                "{name:<30} clients={clients:<4} calls/s={:>9.0}  p50={:>7.3} ms  p99={:>7.3} ms  hub cpu/call={cpu_us:>6.1} us  response={} B",
                p.calls_per_s, p.p50_ms, p.p99_ms, p.bytes
            );
        }
    }
    println!(
        "rss after load: {} KiB (peak {} KiB)",
        status_kib(pid, "VmRSS:"),
        status_kib(pid, "VmHWM:")
    );
    drop(server);
}
