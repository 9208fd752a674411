//! Big-file transfers through the hub: uploads into the hub's work directory and downloads from
//! `/kojifiles/`, against the release `containerbuild serve --builders 0` on loopback, compared
//! with `cp` on the same disk, plus the hub's memory before and after each transfer.
//!
//! A file of random data (1 GiB by default) is written in a temporary directory below the cargo
//! target directory (real disk, not tmpfs; the bench warns if it is tmpfs), which also holds the
//! hub's data directory. Measured, each ending with the destination file fsynced (`sync_all`)
//! inside the timed section, so all are equally durable:
//!
//! - `cp`: `cp SRC DST`, then fsync of DST: the disk's ceiling;
//! - rawUpload, streamed: one `POST /kojihub?filename=..&filepath=bench-upload&fileverify=adler32&
//!   offset=0&overwrite=1` (`application/octet-stream`, `Content-Length` the whole file, session
//!   headers of a logged-in user) over a plain HTTP/1.1 connection, the body sent straight from
//!   the file; the hub's size and adler32 are checked; then fsync of the file the hub wrote;
//! - rawUpload, builder client: `KojiClient::raw_upload` in 4 MiB chunks, as the builder's
//!   `TaskContext::upload_file` sends task output (one POST per chunk, adler32 of each chunk
//!   checked on both sides); then fsync of the file the hub wrote;
//! - download: `GET /kojifiles/` of the same file, hard-linked under the topdir's `work` directory
//!   (`bench-download/`), over a plain HTTP/1.1 connection, body written to a file; then fsync.
//!
//! The source file is page-cached (it was just written), as for every variant. Variants take
//! turns, one of each per round; figures are medians; MB = 10^6 bytes. The hub's VmHWM (peak
//! RSS) and VmRSS are read from `/proc/<pid>/status` before and after each transfer: they
//! should stay flat whatever the file size; the hub's CPU seconds per transfer (utime + stime
//! from `/proc/<pid>/stat`) are printed too. Between transfers everything is `sync`ed and the
//! files written are deleted.
//!
//! Run: `cargo bench --bench transfer`. Environment: `BENCH_MB` = file size in MiB (default
//! 1024), `BENCH_RUNS` = rounds (default 3).

#[path = "common/mod.rs"]
mod common;
use common::{Server, cpu_seconds, free_port, median, status_kib};

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use containerbuild::builder::client::{KojiClient, RetryPolicy};
use rand::{RngCore, SeedableRng};

const PASSWORD: &str = "bench-password";
/// The builder's upload chunk (`UPLOAD_CHUNK` in `src/builder/handlers.rs`).
const CHUNK: usize = 4 << 20;
const UPLOAD_DIR: &str = "bench-upload";
const DOWNLOAD_DIR: &str = "bench-download";
/// `statfs` magic of tmpfs.
const TMPFS_MAGIC: i64 = 0x0102_1994;

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(default)
}

fn is_tmpfs(p: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt as _;
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: statfs writes only the struct it is given; `c` is a valid C string.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return false;
    }
    st.f_type as i64 == TMPFS_MAGIC
}

fn sync_all_files() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
}

/// Writes `len` random bytes to `path` (fsynced); returns their adler32 as the hub reports it.
fn make_source(path: &Path, len: u64) -> String {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(0x7a11);
    let mut f = File::create(path).expect("create the source file");
    let mut adler = adler2::Adler32::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        rng.fill_bytes(&mut buf[..n]);
        adler.write_slice(&buf[..n]);
        f.write_all(&buf[..n]).expect("write the source file");
        left -= n as u64;
    }
    f.sync_all().expect("fsync the source file");
    format!("{:08x}", adler.checksum())
}

fn adler_of(path: &Path) -> String {
    let mut f = File::open(path).expect("open");
    let mut adler = adler2::Adler32::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        adler.write_slice(&buf[..n]);
    }
    format!("{:08x}", adler.checksum())
}

fn fsync(path: &Path) {
    File::open(path)
        .and_then(|f| f.sync_all())
        .unwrap_or_else(|e| panic!("fsync {}: {e}", path.display()));
}

/// Reads an HTTP/1.1 response head; returns the status and the headers (names lower-cased).
fn read_head(r: &mut impl BufRead) -> (u16, Vec<(String, String)>) {
    let mut line = String::new();
    r.read_line(&mut line).expect("status line");
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line).expect("header line");
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    (status, headers)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A logged-in session for the plain HTTP client.
struct Session {
    id: i64,
    key: String,
    callnum: i64,
}

/// One streamed rawUpload of `src` as `<UPLOAD_DIR>/<name>`; checks the size and adler32.
fn upload_stream(port: u16, s: &mut Session, src: &Path, name: &str, len: u64, adler: &str) {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let head = format!(
        "POST /kojihub?filename={name}&filepath={UPLOAD_DIR}&fileverify=adler32&offset=0&overwrite=1 HTTP/1.1\r\n\
         Host: 127.0.0.1:{port}\r\nUser-Agent: koji/1\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {len}\r\nKoji-Session-Id: {}\r\nKoji-Session-Key: {}\r\n\
         Koji-Session-Callnum: {}\r\nConnection: close\r\n\r\n",
        s.id, s.key, s.callnum
    );
    s.callnum += 1;
    conn.write_all(head.as_bytes()).expect("send the head");
    let mut f = File::open(src).expect("open the source");
    let sent = std::io::copy(&mut f, &mut conn).expect("send the body");
    assert_eq!(sent, len);
    let mut r = BufReader::new(conn);
    let (status, _) = read_head(&mut r);
    let mut body = String::new();
    r.read_to_string(&mut body).expect("read the answer");
    assert_eq!(status, 200, "rawUpload: HTTP {status}: {body}");
    let answer = containerbuild::xmlrpc::wire::parse_response(body.as_bytes())
        .unwrap_or_else(|e| panic!("rawUpload answer {body:?}: {}", e.0))
        .unwrap_or_else(|f| panic!("rawUpload fault: {f:?}"));
    let st = answer.as_struct().expect("rawUpload answer struct");
    assert_eq!(
        st.get("size").and_then(|v| v.as_int()),
        Some(len as i64),
        "{body}"
    );
    assert_eq!(
        st.get("hexdigest").and_then(|v| v.as_str()),
        Some(adler),
        "{body}"
    );
}

/// The builder's way: `KojiClient::raw_upload` in `CHUNK`-byte pieces.
async fn upload_client(c: &KojiClient, src: &Path, name: &str) {
    use tokio::io::AsyncReadExt as _;
    let mut f = tokio::fs::File::open(src).await.expect("open the source");
    let mut buf = vec![0u8; CHUNK];
    let mut offset = 0u64;
    loop {
        let mut got = 0;
        while got < buf.len() {
            let n = f.read(&mut buf[got..]).await.expect("read the source");
            if n == 0 {
                break;
            }
            got += n;
        }
        if got == 0 && offset > 0 {
            break;
        }
        c.raw_upload(UPLOAD_DIR, name, offset, &buf[..got], offset == 0)
            .await
            .expect("raw_upload");
        offset += got as u64;
        if got < buf.len() {
            break;
        }
    }
}

/// `GET /kojifiles/<rel>` into `dst`; returns the body length.
fn download(port: u16, rel: &str, dst: &Path) -> u64 {
    let conn = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let mut w = &conn;
    write!(
        w,
        "GET /kojifiles/{rel} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: bench\r\nConnection: close\r\n\r\n"
    )
    .expect("send the request");
    let mut r = BufReader::with_capacity(1 << 16, &conn);
    let (status, headers) = read_head(&mut r);
    assert_eq!(status, 200, "GET /kojifiles/{rel}: HTTP {status}");
    let want: u64 = header(&headers, "content-length")
        .and_then(|v| v.parse().ok())
        .expect("content-length");
    let mut out = File::create(dst).expect("create the download");
    // What the head's reader already buffered, then the rest of the stream.
    let got = std::io::copy(&mut r, &mut out).expect("download");
    assert_eq!(got, want, "short download");
    got
}

struct Variant {
    label: &'static str,
    secs: Vec<f64>,
    /// (VmHWM before, VmHWM after, VmRSS after) per transfer, KiB.
    mem: Vec<(u64, u64, u64)>,
    /// CPU seconds the hub used per transfer.
    hub_cpu: Vec<f64>,
}

fn main() {
    let mib = env_num("BENCH_MB", 1024) as u64;
    let runs = env_num("BENCH_RUNS", 3);
    let len = mib << 20;
    let dir = tempfile::Builder::new()
        .prefix("transfer-bench")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("tempdir");
    if is_tmpfs(dir.path()) {
        println!("WARNING: the temporary directory is on tmpfs: the figures measure memory");
    }
    let data = dir.path().join("hub");
    let topdir = data.join("topdir");
    let src = dir.path().join("source.bin");
    let t0 = Instant::now();
    let adler = make_source(&src, len);
    println!(
        "source: {:.1} MB of random data written in {:.1} s (adler32 {adler})",
        len as f64 / 1e6,
        t0.elapsed().as_secs_f64()
    );

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
        .arg(&data)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("user add");
    {
        let mut stdin = add.stdin.take().expect("stdin");
        writeln!(stdin, "{PASSWORD}").expect("password");
    }
    assert!(add.wait().expect("user add").success());
    let port = free_port();
    let server = Server(
        Command::new(bin)
            .args(["serve", "--builders", "0", "--data-dir"])
            .arg(&data)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("CONTAINERBUILD_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the hub"),
    );
    let pid = server.0.id();
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the hub did not start listening");
        std::thread::sleep(Duration::from_millis(50));
    }

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let url = format!("http://127.0.0.1:{port}/kojihub");
    let client = KojiClient::new(&url, RetryPolicy::DAEMON).expect("client");
    rt.block_on(client.login("admin", PASSWORD)).expect("login");
    let plain = KojiClient::new(&url, RetryPolicy::DAEMON).expect("client");
    let info = rt.block_on(async {
        plain.login("admin", PASSWORD).await.expect("login");
        plain.session().await.expect("session")
    });
    let mut session = Session {
        id: info.id,
        key: info.key,
        callnum: 0,
    };

    // The download source: the same file, hard-linked into the topdir.
    let dl_dir = topdir.join("work").join(DOWNLOAD_DIR);
    std::fs::create_dir_all(&dl_dir).expect("mkdir in the topdir");
    std::fs::hard_link(&src, dl_dir.join("source.bin")).expect("link into the topdir");
    let dl_rel = format!("work/{DOWNLOAD_DIR}/source.bin");
    let up_dir = topdir.join("work").join(UPLOAD_DIR);

    let (hwm0, rss0) = (status_kib(pid, "VmHWM:"), status_kib(pid, "VmRSS:"));
    println!("hub {pid} before any transfer: VmHWM {hwm0} KiB, VmRSS {rss0} KiB");

    let mut variants: Vec<Variant> = [
        "cp + fsync",
        "rawUpload streamed",
        "rawUpload client 4 MiB",
        "download /kojifiles/",
    ]
    .into_iter()
    .map(|label| Variant {
        label,
        secs: Vec::new(),
        mem: Vec::new(),
        hub_cpu: Vec::new(),
    })
    .collect();
    let n = variants.len();
    for round in 0..runs {
        for i in 0..n {
            let k = (i + round) % n;
            sync_all_files();
            let (hwm_before, _) = (status_kib(pid, "VmHWM:"), status_kib(pid, "VmRSS:"));
            let cpu_before = cpu_seconds(pid);
            let name = format!("r{round}-v{k}.bin");
            let t0 = Instant::now();
            let written = match k {
                0 => {
                    let dst = dir.path().join(&name);
                    let st = Command::new("cp").arg(&src).arg(&dst).status().expect("cp");
                    assert!(st.success(), "cp failed: {st}");
                    fsync(&dst);
                    dst
                }
                1 => {
                    upload_stream(port, &mut session, &src, &name, len, &adler);
                    let dst = up_dir.join(&name);
                    fsync(&dst);
                    dst
                }
                2 => {
                    rt.block_on(upload_client(&client, &src, &name));
                    let dst = up_dir.join(&name);
                    fsync(&dst);
                    dst
                }
                _ => {
                    let dst = dir.path().join(&name);
                    download(port, &dl_rel, &dst);
                    fsync(&dst);
                    dst
                }
            };
            let secs = t0.elapsed().as_secs_f64();
            let hub_cpu = cpu_seconds(pid) - cpu_before;
            let (hwm_after, rss_after) = (status_kib(pid, "VmHWM:"), status_kib(pid, "VmRSS:"));
            let got = std::fs::metadata(&written).map(|m| m.len()).unwrap_or(0);
            assert_eq!(got, len, "{}: wrong size", variants[k].label);
            if round == 0 && k != 0 {
                assert_eq!(
                    adler_of(&written),
                    adler,
                    "{}: wrong bytes",
                    variants[k].label
                );
            }
            std::fs::remove_file(&written).expect("remove");
            println!(
                "round {round} {:<24} {:>7.2} s {:>8.1} MB/s   hub cpu {hub_cpu:.2} s, VmHWM {hwm_before} -> {hwm_after} KiB, VmRSS {rss_after} KiB",
                variants[k].label,
                secs,
                len as f64 / 1e6 / secs
            );
            variants[k].hub_cpu.push(hub_cpu);
            variants[k].secs.push(secs);
            variants[k].mem.push((hwm_before, hwm_after, rss_after));
        }
    }

    let cp = median(&variants[0].secs);
    println!(
        "\n{runs} rounds, median, {:.1} MB file; every variant ends with its destination fsynced",
        len as f64 / 1e6
    );
    println!(
        "{:<24} {:>9} {:>9} {:>8} {:>11} {:>22}",
        "variant", "median s", "MB/s", "vs cp", "hub cpu s", "hub VmHWM growth KiB"
    );
    for v in &variants {
        let med = median(&v.secs);
        let growth = v
            .mem
            .iter()
            .map(|m| m.1.saturating_sub(m.0))
            .max()
            .unwrap_or(0);
        println!(
            "{:<24} {:>9.2} {:>9.1} {:>8.2} {:>11.2} {:>22}",
            v.label,
            med,
            len as f64 / 1e6 / med,
            cp / med,
            median(&v.hub_cpu),
            growth
        );
    }
    let (hwm1, rss1) = (status_kib(pid, "VmHWM:"), status_kib(pid, "VmRSS:"));
    println!(
        "hub VmHWM {hwm0} -> {hwm1} KiB over all transfers ({:.1} MB moved through it); VmRSS now {rss1} KiB",
        (3 * runs) as f64 * len as f64 / 1e6
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&up_dir);
}
