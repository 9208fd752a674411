//! What a `buildContainer` task costs on top of building and pushing the same image by hand with
//! buildah, side by side in one invocation (absolute times drift on the benchmark machine):
//!
//! (a) warm, small image: the `plain` dist-git fixture (on the fixture base `cb-base:1`) as a
//!     `buildContainer` task (submit -> parent CLOSED seen by polling `getTaskInfo` every 10 ms)
//!     against `buildah bud --layers` + `buildah push` of the same Dockerfile by hand, in the same
//!     buildah storage as the builder, layer cache warm (one uncounted warm-up of each), runs
//!     alternating. Prints the medians, the fixed overhead median(task) - median(hand) (target
//!     <= 1 s) and a per-step timeline of the median task run from its task times and the
//!     time-stamped lines of its logs. For information it also times, in the same rotation, the
//!     hand build as the builder runs `bud`: one `LABEL` line with per-build values appended to
//!     the Dockerfile (the OSBS labels) and `--platform`.
//! (b) cold, ~200 MB image with 3 RUN layers (a repository the bench makes: each RUN writes
//!     70,000,000 bytes from /dev/urandom), every run with all images removed from that storage
//!     first (so the base image is pulled again too). Prints the medians and task/hand
//!     (target <= 1.05), plus the timeline of the median task run.
//!
//! Both are normal (not scratch) builds into the tag `bench` (packages `plain-container` and
//! `big-container` in its package list). Setup: a temp dir with Debian's `docker-registry`, the
//! fixtures (`fixtures/rpms/build.sh`, `fixtures/base-image/build.sh`,
//! `fixtures/dist-git/make-repos.sh`), `git daemon` and `containerbuild serve --builders 1
//! --registry ... --registry-insecure --buildah-root ...`, all on 127.0.0.1 on free ports and
//! stopped by pid at the end. Needs root, buildah, skopeo, docker-registry, git, rpm, rpmbuild,
//! dash and busybox-static; without them it says what is missing and exits 0.
//!
//! Run: `cargo bench --bench build_overhead`. Env: `BENCH_RUNS` (default 5) and
//! `BENCH_COLD_RUNS` (default 3) measured runs of (a) and (b), `0` skips that part;
//! `BENCH_VERBOSE=1` also prints the logs of each median task run to stderr;
//! `BENCH_SERVE_ARGS` adds arguments (split at white space) to `serve`, e.g. `--archive none`;
//! `CONTAINERBUILD_BIN` overrides the binary (default: the release `containerbuild` cargo builds
//! for the bench).

#[path = "common/mod.rs"]
mod common;
use common::{free_port, median};

use std::io::Write as _;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use containerbuild::builder::client::{KojiClient, RetryPolicy};
use containerbuild::xmlrpc::time::parse_iso;
use containerbuild::xmlrpc::{Struct, Value};

const CLOSED: i64 = 2;
const CANCELED: i64 = 3;
const FAILED: i64 = 5;
const POLL: Duration = Duration::from_millis(10);
const TASK_TIMEOUT: Duration = Duration::from_secs(900);
const BUILD_TAG: &str = "bench-build";
const DEST_TAG: &str = "bench";
const TARGET: &str = "bench-candidate";
/// Local name of the hand build with the task's LABEL line.
const LABELLED_LOCAL: &str = "localhost/bench-hand-labelled:latest";
/// Bytes each RUN step of the big image writes.
const BIG_LAYER_BYTES: u64 = 70_000_000;
/// The fixture's static busybox (the base image is made of it).
const BUSYBOX: &str = "/bin/busybox";

/// A server we started: SIGTERM by pid when dropped, SIGKILL after a grace period.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.exited() {
            return;
        }
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: signals the process this bench spawned, by its pid.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.exited() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn which(prog: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(prog))
            .find(|p| p.is_file())
    })
}

fn missing_requirements(bin: &Path) -> Vec<String> {
    let mut missing: Vec<String> = [
        "buildah",
        "skopeo",
        "docker-registry",
        "git",
        "rpm",
        "rpmbuild",
        "dash",
        "sync",
    ]
    .into_iter()
    .filter(|t| which(t).is_none())
    .map(str::to_owned)
    .collect();
    if !Path::new(BUSYBOX).is_file() {
        missing.push(format!("{BUSYBOX} (busybox-static)"));
    }
    if !bin.is_file() {
        missing.push(format!("{} (cargo build --release)", bin.display()));
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        missing.push("root (buildah with vfs and chroot isolation runs as root)".to_owned());
    }
    missing
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Starts `cmd` with its output in `log` and waits until 127.0.0.1:`port` accepts connections.
fn start_server(mut cmd: Command, port: u16, log: PathBuf, what: &str) -> Proc {
    let out = std::fs::File::create(&log).expect("server log");
    let err = out.try_clone().expect("server log");
    let child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let mut p = Proc { child, log };
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(!p.exited(), "{what} exited; its log:\n{}", tail(&p.log));
        assert!(
            Instant::now() < deadline,
            "{what} does not listen on 127.0.0.1:{port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    p
}

/// Runs `cmd` (stdin closed) and returns its trimmed stdout; a failure ends the bench with its
/// stderr.
fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A git program without user or system configuration, with a fixed identity.
fn git_program(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = Command::new(program);
    c.env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_AUTHOR_NAME", "Bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "Bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.com");
    c
}

fn git() -> Command {
    let mut c = git_program("git");
    c.args(["-c", "commit.gpgsign=false", "-c", "init.templateDir="]);
    c
}

/// buildah on the builder's storage (`--buildah-root` of serve).
struct Storage {
    root: PathBuf,
}

impl Storage {
    fn cmd(&self) -> Command {
        let mut c = Command::new("buildah");
        c.arg("--root")
            .arg(self.root.join("storage"))
            .arg("--runroot")
            .arg(self.root.join("run"))
            .args(["--storage-driver", "vfs"])
            .env("TMPDIR", self.root.join("tmp"));
        c
    }

    /// Removes every image (the base included) and flushes the page cache's dirty data, so the
    /// next build starts cold and does not pay for the previous one's writeback.
    fn clear(&self) {
        run_ok(self.cmd().args(["rmi", "--all", "--force"]));
        run_ok(&mut Command::new("sync"));
    }
}

/// Seconds of `buildah bud` and of `buildah push` of the image built by hand from the context
/// `dir` with `dockerfile`, with the flags the builder uses (docker format, layer cache, chroot
/// isolation, insecure registry) and optionally its `--platform`.
fn hand_build(
    st: &Storage,
    dir: &Path,
    dockerfile: &Path,
    platform: Option<&str>,
    local: &str,
    dest: &str,
) -> (f64, f64) {
    let t = Instant::now();
    let mut bud = st.cmd();
    bud.args([
        "bud",
        "--layers",
        "--isolation",
        "chroot",
        "--format",
        "docker",
        "--tls-verify=false",
    ]);
    if let Some(p) = platform {
        bud.arg(format!("--platform={p}"));
    }
    run_ok(bud.args(["-t", local, "-f"]).arg(dockerfile).arg(dir));
    let bud = t.elapsed().as_secs_f64();
    let t = Instant::now();
    run_ok(st.cmd().args([
        "push",
        "--format",
        "v2s2",
        "--tls-verify=false",
        local,
        &format!("docker://{dest}"),
    ]));
    (bud, t.elapsed().as_secs_f64())
}

/// `buildah bud --platform` for a Koji arch, as the builder passes it.
fn platform_of(arch: &str) -> Option<&'static str> {
    match arch {
        "x86_64" => Some("linux/amd64"),
        "aarch64" => Some("linux/arm64/v8"),
        "ppc64le" => Some("linux/ppc64le"),
        "s390x" => Some("linux/s390x"),
        _ => None,
    }
}

/// The Dockerfile of `tree` with one `LABEL` line appended the way the builder appends the OSBS
/// labels (`release`, `build-date` and `vcs-ref` differ per build), written to `path`.
fn write_labelled(tree: &Path, path: &Path, run: usize) {
    let df = std::fs::read_to_string(tree.join("Dockerfile")).expect("Dockerfile");
    let labels = format!(
        "LABEL \"release\"=\"hand{run}\" \"build-date\"=\"{:.6}\" \"architecture\"=\"{}\" \"vcs-type\"=\"git\" \"vcs-ref\"=\"hand-{run}\"",
        now(),
        std::env::consts::ARCH
    );
    std::fs::write(path, format!("{df}\n{labels}\n")).expect("labelled Dockerfile");
}

fn field(v: &Value, k: &str) -> Value {
    v.as_struct()
        .and_then(|s| s.get(k))
        .cloned()
        .unwrap_or(Value::Nil)
}

fn ts(v: &Value, k: &str) -> Option<f64> {
    match field(v, k) {
        Value::Double(d) => Some(d),
        Value::Int(i) => Some(i as f64),
        _ => None,
    }
}

/// (epoch seconds, what happened), in time order.
type Events = Vec<(f64, String)>;

/// One task run: its id, wall time (submit -> CLOSED seen) and time line.
struct TaskRun {
    id: i64,
    wall: f64,
    events: Events,
    /// (name, text) of the logs the time line was read from.
    logs: Vec<(String, String)>,
}

struct Hub {
    c: KojiClient,
    rt: tokio::runtime::Runtime,
}

impl Hub {
    fn call(&self, method: &str, args: Vec<Value>) -> Value {
        self.rt
            .block_on(self.c.call(method, args))
            .unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    fn call_kw(&self, method: &str, args: Vec<Value>, kw: Struct) -> Value {
        self.rt
            .block_on(self.c.call_kw(method, args, kw))
            .unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    /// A task output file as text ("" when it does not exist).
    fn output(&self, id: i64, name: &str) -> String {
        match self.rt.block_on(
            self.c
                .call("downloadTaskOutput", vec![Value::Int(id), Value::str(name)]),
        ) {
            Ok(Value::String(s)) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(s.as_bytes())
                    .expect("base64 task output");
                String::from_utf8_lossy(&bytes).into_owned()
            }
            _ => String::new(),
        }
    }

    /// `buildContainer(src, TARGET, {'git_branch': 'main'})`, polled with `getTaskInfo` every
    /// 10 ms until CLOSED; then its time line (read after the timing).
    fn build(&self, src: &str) -> TaskRun {
        let opts = Struct::new().with("git_branch", "main");
        let t0_epoch = now();
        let t0 = Instant::now();
        let id = self
            .call(
                "buildContainer",
                vec![Value::str(src), Value::str(TARGET), Value::from(opts)],
            )
            .as_int()
            .expect("task id");
        let (wall, seen) = loop {
            let info = self.call("getTaskInfo", vec![Value::Int(id)]);
            let state = field(&info, "state").as_int().unwrap_or(-1);
            if state == CLOSED {
                break (t0.elapsed().as_secs_f64(), now());
            }
            if state == FAILED || state == CANCELED {
                let r = self
                    .rt
                    .block_on(self.c.call("getTaskResult", vec![Value::Int(id)]));
                panic!(
                    "task {id} ended in state {state}: {r:?}\nosbs-build.log:\n{}",
                    self.output(id, "osbs-build.log")
                );
            }
            assert!(t0.elapsed() < TASK_TIMEOUT, "task {id} did not end");
            std::thread::sleep(POLL);
        };
        let (events, logs) = self.timeline(id, t0_epoch, seen);
        TaskRun {
            id,
            wall,
            events,
            logs,
        }
    }

    /// Task times, the time-stamped lines of the parent's `osbs-build.log` and of each child's
    /// `<arch>.log`, and starts derived from the durations those lines print, in time order.
    fn timeline(&self, id: i64, t0: f64, seen: f64) -> (Events, Vec<(String, String)>) {
        let mut ev = vec![(t0, "client: buildContainer call starts".to_owned())];
        let mut logs = Vec::new();
        let info = self.call("getTaskInfo", vec![Value::Int(id)]);
        task_times(&mut ev, &info, "parent buildContainer");
        let osbs = self.output(id, "osbs-build.log");
        stamped_lines(&mut ev, &osbs, "parent");
        logs.push((format!("task {id} osbs-build.log"), osbs));
        let children = self.call("getTaskChildren", vec![Value::Int(id)]);
        for c in children.as_array().unwrap_or_default() {
            let cid = field(c, "id").as_int().unwrap_or(0);
            let arch = field(c, "arch").as_str().unwrap_or("noarch").to_owned();
            let method = field(c, "method").as_str().unwrap_or("?").to_owned();
            task_times(&mut ev, c, &format!("child {method} {cid}"));
            let text = self.output(cid, &format!("{arch}.log"));
            stamped_lines(&mut ev, &text, &format!("child {arch}.log"));
            logs.push((format!("task {cid} {arch}.log"), text));
        }
        ev.push((seen, "client: sees parent CLOSED".to_owned()));
        ev.sort_by(|a, b| a.0.total_cmp(&b.0));
        (ev, logs)
    }
}

fn task_times(ev: &mut Events, info: &Value, who: &str) {
    for (k, what) in [
        ("create_ts", "created"),
        ("start_ts", "opened by the builder"),
        ("completion_ts", "closed"),
    ] {
        if let Some(t) = ts(info, k) {
            ev.push((t, format!("{who} {what} ({k})")));
        }
    }
}

/// Lines starting with a Koji time stamp; for "... in X s" lines also the derived start.
fn stamped_lines(ev: &mut Events, log: &str, who: &str) {
    for line in log.lines() {
        let Some(t) = line.get(..32).and_then(parse_iso) else {
            continue;
        };
        let text = line[32..].trim();
        if let Some(secs) = text
            .strip_suffix(" s")
            .and_then(|r| r.rsplit_once(" in "))
            .and_then(|(_, n)| n.parse::<f64>().ok())
        {
            let step = text.split_whitespace().next().unwrap_or("step");
            ev.push((
                t - secs,
                format!("{who}: ({step} starts: stamp minus its {secs} s)"),
            ));
        }
        ev.push((t, format!("{who}: {text}")));
    }
}

/// The 1, 5 and 15 minute load averages (other work on the machine skews absolute times).
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
            (lo.min(*x), hi.max(*x))
        })
}

fn summary(label: &str, v: &[f64]) -> String {
    let (lo, hi) = min_max(v);
    format!(
        "{label}: median {:.3} s (min {lo:.3}, max {hi:.3}; runs {})",
        median(v),
        v.iter()
            .map(|x| format!("{x:.3}"))
            .collect::<Vec<_>>()
            .join(" ")
    )
}

/// The run whose wall time is the median (the upper middle one for an even count).
fn median_run(runs: &[TaskRun]) -> &TaskRun {
    let mut idx: Vec<usize> = (0..runs.len()).collect();
    idx.sort_by(|a, b| runs[*a].wall.total_cmp(&runs[*b].wall));
    &runs[idx[idx.len() / 2]]
}

fn print_timeline(run: &TaskRun) {
    println!(
        "  per-step time line of task {} (the median run, {:.3} s); +t from the call, dt since the previous line:",
        run.id, run.wall
    );
    let t0 = run.events.first().map_or(0.0, |e| e.0);
    let mut prev = t0;
    for (t, what) in &run.events {
        let mut text = what.clone();
        if text.len() > 110 {
            let mut cut = 107;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push_str("...");
        }
        println!("    +{:7.3}  dt {:6.3}  {text}", t - t0, t - prev);
        prev = *t;
    }
    if std::env::var_os("BENCH_VERBOSE").is_some() {
        for (name, text) in &run.logs {
            eprintln!("--- {name}\n{text}");
        }
    }
}

fn met(ok: bool) -> &'static str {
    if ok { "MET" } else { "NOT MET" }
}

/// A dist-git repository with a ~200 MB image of 3 RUN layers, bare in `repos/big.git`; returns
/// the work tree and the commit.
fn make_big_repo(tmp: &Path, repos: &Path, registry: &str) -> (PathBuf, String) {
    let tree = tmp.join("big-work");
    std::fs::create_dir_all(&tree).expect("big work tree");
    let mut df = format!(
        "FROM {registry}/cb-base:1\nLABEL com.redhat.component=big-container name=big version=1.0\n"
    );
    for i in 1..=3 {
        df.push_str(&format!(
            "RUN head -c {BIG_LAYER_BYTES} /dev/urandom > /data{i}\n"
        ));
    }
    std::fs::write(tree.join("Dockerfile"), df).expect("big Dockerfile");
    run_ok(
        git()
            .arg("-C")
            .arg(&tree)
            .args(["init", "-q", "-b", "main"]),
    );
    run_ok(git().arg("-C").arg(&tree).args(["add", "Dockerfile"]));
    run_ok(
        git()
            .arg("-C")
            .arg(&tree)
            .args(["commit", "-q", "-m", "big: 3 RUN layers"]),
    );
    let sha = run_ok(git().arg("-C").arg(&tree).args(["rev-parse", "HEAD"]));
    run_ok(
        git()
            .args(["clone", "-q", "--bare"])
            .arg(&tree)
            .arg(repos.join("big.git")),
    );
    (tree, sha)
}

fn main() {
    let bin = std::env::var_os("CONTAINERBUILD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_containerbuild")));
    let missing = missing_requirements(&bin);
    if !missing.is_empty() {
        println!(
            "build_overhead: skipped, missing: {} (scripts/ensure-deps.sh installs the tools)",
            missing.join(", ")
        );
        return;
    }
    let warm_runs = env_usize("BENCH_RUNS", 5);
    let cold_runs = env_usize("BENCH_COLD_RUNS", 3);
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let arch = std::env::consts::ARCH;

    // Declared first, dropped last: every server below is stopped before it is removed.
    let tmp = tempfile::Builder::new()
        .prefix("cb-bench-overhead-")
        .tempdir()
        .expect("tempdir");
    let dir = tmp.path();

    // Registry.
    let reg_port = free_port();
    let reg_config = dir.join("registry.yml");
    std::fs::write(
        &reg_config,
        format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{reg_port}\n",
            dir.join("registry").display()
        ),
    )
    .expect("registry config");
    let mut cmd = Command::new("docker-registry");
    cmd.arg("serve").arg(&reg_config);
    let _registry = start_server(cmd, reg_port, dir.join("registry.log"), "docker-registry");
    let registry = format!("127.0.0.1:{reg_port}");

    // Fixtures.
    eprintln!("setup: fixture RPMs, base image {registry}/cb-base:1, dist-git repositories");
    let rpms = dir.join("rpms");
    let repos = dir.join("git");
    run_ok(Command::new(fixtures.join("rpms/build.sh")).arg(&rpms));
    run_ok(
        Command::new(fixtures.join("base-image/build.sh"))
            .args(["--registry", &registry, "--storage"])
            .arg(dir.join("base"))
            .arg("--rpms")
            .arg(&rpms),
    );
    let made = run_ok(
        Command::new(fixtures.join("dist-git/make-repos.sh"))
            .args(["--registry", &registry, "--rpms"])
            .arg(&rpms)
            .arg(&repos),
    );
    let plain_sha = made
        .lines()
        .find_map(|l| l.strip_prefix("plain "))
        .expect("make-repos.sh made no plain repository")
        .trim()
        .to_owned();
    let (big_tree, big_sha) = make_big_repo(dir, &repos, &registry);
    let plain_tree = dir.join("plain-work");
    run_ok(
        git()
            .args(["clone", "-q"])
            .arg(repos.join("plain.git"))
            .arg(&plain_tree),
    );

    // git daemon.
    let git_port = free_port();
    let exec_path = run_ok(git().arg("--exec-path"));
    let mut cmd = git_program(Path::new(&exec_path).join("git-daemon"));
    cmd.args(["--export-all", "--reuseaddr", "--listen=127.0.0.1"])
        .arg(format!("--base-path={}", repos.display()))
        .arg(format!("--port={git_port}"))
        .arg(&repos);
    let _git = start_server(cmd, git_port, dir.join("git-daemon.log"), "git daemon");

    // Hub with one embedded builder.
    let serve_extra = std::env::var("BENCH_SERVE_ARGS").unwrap_or_default();
    let data = dir.join("hub");
    let password = format!(
        "{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    );
    let mut add = Command::new(&bin)
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
        .expect("containerbuild user add");
    add.stdin
        .take()
        .expect("stdin")
        .write_all(format!("{password}\n").as_bytes())
        .expect("password");
    assert!(add.wait().expect("user add").success(), "user add failed");
    let buildah_root = dir.join("buildah");
    let hub_port = free_port();
    let mut cmd = Command::new(&bin);
    cmd.arg("serve")
        .arg("--data-dir")
        .arg(&data)
        .args(["--listen", &format!("127.0.0.1:{hub_port}")])
        .args([
            "--builders",
            "1",
            "--registry",
            &registry,
            "--registry-insecure",
        ])
        .arg("--buildah-root")
        .arg(&buildah_root)
        .args(serve_extra.split_whitespace())
        .env("CONTAINERBUILD_LOG", "warn");
    let hub_proc = start_server(cmd, hub_port, dir.join("hub.log"), "containerbuild serve");
    let st = Storage { root: buildah_root };
    std::fs::create_dir_all(st.root.join("tmp")).expect("buildah tmp");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let c = KojiClient::new(
        &format!("http://127.0.0.1:{hub_port}/kojihub"),
        RetryPolicy::NONE,
    )
    .expect("client");
    let hub = Hub { c, rt };
    hub.rt
        .block_on(hub.c.login("admin", &password))
        .expect("login");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let hosts = hub.call_kw("listHosts", vec![], Struct::new().with("ready", true));
        if hosts.as_array().is_some_and(|h| !h.is_empty()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no builder became ready; hub log:\n{}",
            tail(&hub_proc.log)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    hub.call_kw(
        "createTag",
        vec![Value::str(BUILD_TAG)],
        Struct::new().with("arches", arch),
    );
    hub.call("createTag", vec![Value::str(DEST_TAG)]);
    hub.call(
        "createBuildTarget",
        vec![
            Value::str(TARGET),
            Value::str(BUILD_TAG),
            Value::str(DEST_TAG),
        ],
    );
    for pkg in ["plain-container", "big-container"] {
        hub.call_kw(
            "packageListAdd",
            vec![Value::str(DEST_TAG), Value::str(pkg)],
            Struct::new().with("owner", "admin"),
        );
    }
    let plain_src = format!("git://127.0.0.1:{git_port}/plain.git#{plain_sha}");
    let big_src = format!("git://127.0.0.1:{git_port}/big.git#{big_sha}");

    println!(
        "build_overhead: {} cores, builder storage vfs, chroot isolation, registry and hub on loopback; load average at start: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg()
    );
    if !serve_extra.trim().is_empty() {
        println!(
            "serve runs with the extra arguments: {}",
            serve_extra.trim()
        );
    }

    let plain = Image {
        tree: &plain_tree,
        src: &plain_src,
        local: "localhost/bench-hand-plain:latest",
        dest_repo: format!("{registry}/plain"),
    };
    let big = Image {
        tree: &big_tree,
        src: &big_src,
        local: "localhost/bench-hand-big:latest",
        dest_repo: format!("{registry}/big"),
    };
    if warm_runs > 0 {
        warm(&hub, &st, &plain, warm_runs);
    }
    if cold_runs > 0 {
        cold(&hub, &st, &big, cold_runs);
    }
    println!();
    println!("load average at the end: {}", loadavg());
}

/// What one side of the comparison builds.
struct Image<'a> {
    tree: &'a Path,
    src: &'a str,
    local: &'a str,
    dest_repo: String,
}

/// Alternating runs: hand (bud + push, and their sum), optionally hand as the task runs bud
/// (LABEL line appended, `--platform`), and tasks.
struct Runs {
    hand: Vec<f64>,
    buds: Vec<f64>,
    pushes: Vec<f64>,
    like_task: Vec<f64>,
    like_task_buds: Vec<f64>,
    tasks: Vec<TaskRun>,
}

/// `n` rounds of: hand build, [hand build as the task runs bud,] task; `before` runs ahead of
/// every build.
fn alternate(
    hub: &Hub,
    st: &Storage,
    img: &Image,
    n: usize,
    part: &str,
    like_task: bool,
    before: impl Fn(),
) -> Runs {
    let mut r = Runs {
        hand: Vec::new(),
        buds: Vec::new(),
        pushes: Vec::new(),
        like_task: Vec::new(),
        like_task_buds: Vec::new(),
        tasks: Vec::new(),
    };
    let labelled = st.root.join("tmp").join("Dockerfile.labelled");
    for i in 1..=n {
        before();
        let (bud, push) = hand_build(
            st,
            img.tree,
            &img.tree.join("Dockerfile"),
            None,
            img.local,
            &format!("{}:hand-{i}", img.dest_repo),
        );
        r.hand.push(bud + push);
        r.buds.push(bud);
        r.pushes.push(push);
        let mut also = String::new();
        if like_task {
            before();
            write_labelled(img.tree, &labelled, i);
            let (bud, push) = hand_build(
                st,
                img.tree,
                &labelled,
                platform_of(std::env::consts::ARCH),
                LABELLED_LOCAL,
                &format!("{}:hand-labelled-{i}", img.dest_repo),
            );
            r.like_task.push(bud + push);
            r.like_task_buds.push(bud);
            // As the builder does after its push: the image does not stay in the storage.
            run_ok(st.cmd().args(["rmi", LABELLED_LOCAL]));
            also = format!(", hand with LABEL line {:.3} s", bud + push);
        }
        before();
        let run = hub.build(img.src);
        eprintln!(
            "{part} run {i}/{n}: hand {:.3} s{also}, task {} {:.3} s",
            bud + push,
            run.id,
            run.wall
        );
        r.tasks.push(run);
    }
    r
}

fn print_runs(r: &Runs) -> (f64, f64) {
    let task_walls: Vec<f64> = r.tasks.iter().map(|t| t.wall).collect();
    println!(
        "  {}",
        summary("hand  buildah bud --layers + buildah push", &r.hand)
    );
    println!(
        "        of which bud median {:.3} s, push median {:.3} s",
        median(&r.buds),
        median(&r.pushes)
    );
    if !r.like_task.is_empty() {
        println!(
            "  {}",
            summary(
                "hand, Dockerfile + the task's LABEL line, --platform (information)",
                &r.like_task
            )
        );
        println!(
            "        of which bud median {:.3} s",
            median(&r.like_task_buds)
        );
    }
    println!(
        "  {}",
        summary("task  buildContainer submit -> CLOSED seen", &task_walls)
    );
    (median(&r.hand), median(&task_walls))
}

/// (a) Warm, small image: fixed overhead.
fn warm(hub: &Hub, st: &Storage, img: &Image, n: usize) {
    eprintln!("(a) warm-up: one hand build and one task of plain (not counted)");
    hand_build(
        st,
        img.tree,
        &img.tree.join("Dockerfile"),
        None,
        img.local,
        &format!("{}:hand-warmup", img.dest_repo),
    );
    hub.build(img.src);
    let r = alternate(hub, st, img, n, "(a)", true, || {});
    println!();
    println!(
        "(a) warm small image: fixtures/dist-git/plain on cb-base:1, {n} runs each, alternating, layer cache warm"
    );
    let (hand, task) = print_runs(&r);
    let overhead = task - hand;
    println!(
        "  fixed overhead median(task) - median(hand) = {overhead:.3} s; target <= 1 s: {}",
        met(overhead <= 1.0)
    );
    let paired: Vec<f64> = r
        .tasks
        .iter()
        .zip(&r.hand)
        .map(|(t, h)| t.wall - h)
        .collect();
    println!(
        "  {}",
        summary("(check) task - hand within each round", &paired)
    );
    print_timeline(median_run(&r.tasks));
    let images = run_ok(st.cmd().args(["images", "--all", "--quiet"]));
    println!(
        "  builder storage after (a): {} images (intermediate ones included)",
        images.lines().count()
    );
}

/// (b) Cold, ~200 MB image with 3 RUN layers: ratio.
fn cold(hub: &Hub, st: &Storage, img: &Image, n: usize) {
    let r = alternate(hub, st, img, n, "(b)", false, || st.clear());
    st.clear();
    println!();
    println!(
        "(b) cold ~{} MB image, 3 RUN layers of {BIG_LAYER_BYTES} random bytes on cb-base:1, {n} runs each, alternating, all images removed before each run",
        3 * BIG_LAYER_BYTES / 1_000_000
    );
    let (hand, task) = print_runs(&r);
    let ratio = task / hand;
    println!(
        "  ratio median(task) / median(hand) = {ratio:.3}; target <= 1.05: {}",
        met(ratio <= 1.05)
    );
    let paired: Vec<f64> = r
        .tasks
        .iter()
        .zip(&r.hand)
        .map(|(t, h)| t.wall / h)
        .collect();
    let (lo, hi) = min_max(&paired);
    println!(
        "  (check) task / hand within each round: median {:.3} (min {lo:.3}, max {hi:.3})",
        median(&paired)
    );
    print_timeline(median_run(&r.tasks));
}
