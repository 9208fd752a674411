//! Fixtures for the container build tests, built at run time from `fixtures/`: the test RPMs
//! (`fixtures/rpms/build.sh`), the `cb-base:1` base image with a real rpmdb pushed to a loopback
//! `docker-registry` (`fixtures/base-image/build.sh`), and the dist-git repositories
//! (`fixtures/dist-git/make-repos.sh`) served by `git daemon`. Servers listen on 127.0.0.1 on
//! free ports and are killed by pid when dropped. Every command gets an argument vector, and a
//! failing command fails the test with its stderr.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The static busybox the base image is made of (Debian package `busybox-static`).
pub const BUSYBOX: &str = "/bin/busybox";
/// Name and tag of the base image in the test registry.
pub const BASE_IMAGE: &str = "cb-base:1";

/// The checkout this test binary belongs to.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `prog` on `PATH`, if any.
pub fn which(prog: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(prog))
            .find(|p| p.is_file())
    })
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// True when everything the fixtures need is here; otherwise prints why and returns false, so
/// the caller can skip. Under CI (env `CI` set) a missing tool is a failure instead.
pub fn tools_present() -> bool {
    let mut missing = Vec::new();
    for t in [
        "buildah",
        "skopeo",
        "docker-registry",
        "git",
        "rpm",
        "rpmbuild",
        "dash",
    ] {
        if which(t).is_none() {
            missing.push(t.to_owned());
        }
    }
    if !Path::new(BUSYBOX).is_file() {
        missing.push(format!("{BUSYBOX} (busybox-static)"));
    }
    if !is_root() {
        missing.push("root (buildah with vfs and chroot isolation runs as root)".to_owned());
    }
    if missing.is_empty() {
        return true;
    }
    let msg = format!(
        "missing: {} (scripts/ensure-deps.sh installs them)",
        missing.join(", ")
    );
    if std::env::var_os("CI").is_some() {
        panic!("{msg}");
    }
    eprintln!("skipping: {msg}");
    false
}

/// A loopback port nobody listened on a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free loopback port")
        .port()
}

/// Polls `f` every 50 ms until it returns `Some`, panicking with `what` after `timeout`.
pub fn wait_until<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Status code of a plain HTTP/1.0 request to 127.0.0.1:`port`, if one arrives.
pub fn http_status(port: u16, method: &str, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    buf.split_whitespace().nth(1)?.parse().ok()
}

/// Runs `cmd` (stdin closed) and returns its output, failing the test when it cannot start.
pub fn output(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Runs `cmd` and returns its trimmed stdout; a non-zero exit fails the test with its stderr.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = output(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `buildah` with a private storage under `storage_dir`: `--root DIR/storage --runroot DIR/run
/// --storage-driver vfs`, `TMPDIR=DIR/tmp`, stdin closed. Add `--isolation chroot` to `run` and
/// `bud` yourself.
pub fn buildah_cmd(storage_dir: &Path) -> Command {
    let tmp = storage_dir.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap_or_else(|e| panic!("create {}: {e}", tmp.display()));
    let mut cmd = Command::new("buildah");
    cmd.arg("--root")
        .arg(storage_dir.join("storage"))
        .arg("--runroot")
        .arg(storage_dir.join("run"))
        .arg("--storage-driver")
        .arg("vfs")
        .env("TMPDIR", tmp)
        .stdin(Stdio::null());
    cmd
}

/// Stops a child we started: SIGTERM by its pid, SIGKILL after `grace`, then reaps it.
fn stop_child(child: &mut Child, grace: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: signals the process we spawned, by its pid.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill(); // SIGKILL, by pid
    let _ = child.wait();
}

/// Debian's `docker-registry` on 127.0.0.1:<free port>, storage (with deletes enabled) in a
/// temp dir, stopped by pid when dropped.
pub struct TestRegistry {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl TestRegistry {
    pub fn start() -> TestRegistry {
        let dir = tempfile::Builder::new()
            .prefix("cb-registry-")
            .tempdir()
            .expect("registry tempdir");
        let port = free_port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap_or_else(|e| panic!("write {}: {e}", config.display()));
        let log_path = dir.path().join("registry.log");
        let log = std::fs::File::create(&log_path)
            .unwrap_or_else(|e| panic!("create {}: {e}", log_path.display()));
        let log2 = log.try_clone().expect("clone log file handle");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .unwrap_or_else(|e| panic!("start docker-registry: {e}"));
        let mut reg = TestRegistry { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(15);
        while http_status(port, "GET", "/v2/") != Some(200) {
            if let Ok(Some(status)) = reg.child.try_wait() {
                panic!("docker-registry exited ({status}):\n{}", reg.log());
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not answer on port {port}:\n{}",
                reg.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        reg
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the registry (SIGTERM, SIGKILL after 5 s), keeping its storage and port for
    /// [`TestRegistry::start_again`]: a registry that is down.
    pub fn stop(&mut self) {
        stop_child(&mut self.child, Duration::from_secs(5));
    }

    /// Starts the stopped registry again on the same port and storage, and waits until it
    /// answers.
    pub fn start_again(&mut self) {
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.path().join("registry.log"))
            .expect("open registry log");
        let log2 = log.try_clone().expect("clone log file handle");
        self.child = Command::new("docker-registry")
            .arg("serve")
            .arg(self.dir.path().join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .unwrap_or_else(|e| panic!("start docker-registry: {e}"));
        let deadline = Instant::now() + Duration::from_secs(15);
        while http_status(self.port, "GET", "/v2/") != Some(200) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("docker-registry exited ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not answer again on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `127.0.0.1:PORT`, what image references and `--registry` take.
    pub fn host_port(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The registry's own log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        stop_child(&mut self.child, Duration::from_secs(5));
    }
}

/// The bare repositories under a directory, served read-only by the `git-daemon` program (from
/// `git --exec-path`) on 127.0.0.1:<free port>, stopped by pid when dropped.
pub struct GitServer {
    child: Child,
    pub port: u16,
}

impl GitServer {
    pub fn start(srv_dir: &Path) -> GitServer {
        let exec_path = run_ok(Command::new("git").arg("--exec-path"));
        let program = Path::new(&exec_path).join("git-daemon");
        let port = free_port();
        let mut child = Command::new(&program)
            .arg("--reuseaddr")
            .arg("--export-all")
            .arg(format!("--base-path={}", srv_dir.display()))
            .arg("--listen=127.0.0.1")
            .arg(format!("--port={port}"))
            .arg(srv_dir)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("git daemon exited: {status}");
            }
            if Instant::now() > deadline {
                stop_child(&mut child, Duration::from_secs(1));
                panic!("git daemon did not listen on port {port}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        GitServer { child, port }
    }

    /// `git://127.0.0.1:PORT/<name>.git`
    pub fn url(&self, name: &str) -> String {
        format!("git://127.0.0.1:{}/{name}.git", self.port)
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        stop_child(&mut self.child, Duration::from_secs(2));
    }
}

/// Everything under `fixtures/`, built into a temp dir: RPMs, the base image (pushed to the
/// registry as [`BASE_IMAGE`]) and bare dist-git repositories.
pub struct Fixtures {
    /// `*.noarch.rpm` from `fixtures/rpms/build.sh`.
    pub rpms_dir: PathBuf,
    /// `<name>.git` bare repositories; serve them with [`GitServer::start`].
    pub repos_dir: PathBuf,
    /// The buildah storage the base image was built in (see [`buildah_cmd`]).
    pub base_storage: PathBuf,
    /// Digest of the pushed base image manifest (`sha256:...`).
    pub base_digest: String,
    registry: String,
    shas: BTreeMap<String, String>,
    dir: tempfile::TempDir,
}

fn script(path: &str) -> Command {
    let mut cmd = Command::new(repo_root().join(path));
    cmd.current_dir(repo_root());
    cmd
}

impl Fixtures {
    /// Builds all fixtures against the registry at `registry_host_port` (`127.0.0.1:PORT`).
    pub fn build(registry_host_port: &str) -> Fixtures {
        let dir = tempfile::Builder::new()
            .prefix("cb-fixtures-")
            .tempdir()
            .expect("fixtures tempdir");
        let rpms_dir = dir.path().join("rpms");
        let repos_dir = dir.path().join("repos");
        let base_storage = dir.path().join("base");
        let tmp = dir.path().join("tmp");
        std::fs::create_dir_all(&tmp).unwrap_or_else(|e| panic!("create {}: {e}", tmp.display()));

        run_ok(
            script("fixtures/rpms/build.sh")
                .arg(&rpms_dir)
                .env("TMPDIR", &tmp),
        );
        let digest = run_ok(
            script("fixtures/base-image/build.sh")
                .arg("--registry")
                .arg(registry_host_port)
                .arg("--storage")
                .arg(&base_storage)
                .arg("--rpms")
                .arg(&rpms_dir)
                .arg("--name")
                .arg(BASE_IMAGE),
        );
        let base_digest = digest
            .lines()
            .last()
            .filter(|l| l.starts_with("sha256:"))
            .unwrap_or_else(|| panic!("base-image/build.sh printed no digest: {digest:?}"))
            .to_owned();
        let listing = run_ok(
            script("fixtures/dist-git/make-repos.sh")
                .arg("--registry")
                .arg(registry_host_port)
                .arg("--rpms")
                .arg(&rpms_dir)
                .arg(&repos_dir)
                .env("TMPDIR", &tmp),
        );
        let shas: BTreeMap<String, String> = listing
            .lines()
            .map(|l| {
                let (name, sha) = l
                    .split_once(' ')
                    .unwrap_or_else(|| panic!("make-repos.sh line {l:?}"));
                assert_eq!(sha.len(), 40, "make-repos.sh line {l:?}");
                (name.to_owned(), sha.to_owned())
            })
            .collect();
        assert!(
            shas.contains_key("plain"),
            "make-repos.sh printed {listing:?}"
        );
        Fixtures {
            rpms_dir,
            repos_dir,
            base_storage,
            base_digest,
            registry: registry_host_port.to_owned(),
            shas,
            dir,
        }
    }

    /// The commit of dist-git repository `name` (its one commit on branch `main`).
    pub fn sha(&self, name: &str) -> &str {
        self.shas
            .get(name)
            .unwrap_or_else(|| panic!("no dist-git fixture {name:?}; have {:?}", self.shas.keys()))
    }

    /// Names of the dist-git repositories.
    pub fn repo_names(&self) -> Vec<&str> {
        self.shas.keys().map(String::as_str).collect()
    }

    /// `HOST:PORT/cb-base:1`
    pub fn base_ref(&self) -> String {
        format!("{}/{BASE_IMAGE}", self.registry)
    }

    /// Path of a fixture RPM by file name, e.g. `cb-hello-1.1-1.noarch.rpm`.
    pub fn rpm(&self, file: &str) -> PathBuf {
        let p = self.rpms_dir.join(file);
        assert!(p.is_file(), "no fixture RPM {}", p.display());
        p
    }

    /// A scratch directory inside the fixtures' temp dir, created on demand.
    pub fn scratch(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join("scratch").join(name);
        std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("create {}: {e}", p.display()));
        p
    }

    /// A one-commit bare repo `<name>.git` next to the dist-git fixtures (branch `main`), so
    /// `git` serves it; returns its `git://...#sha` source.
    pub fn one_commit_repo(&self, git: &GitServer, name: &str, files: &[(&str, &str)]) -> String {
        let work = self.scratch(&format!("work-{name}"));
        let run = |args: &[&str], dir: &Path| {
            run_ok(
                Command::new("git")
                    .args([
                        "-c",
                        "user.name=Fixture",
                        "-c",
                        "user.email=fixture@example.com",
                    ])
                    .args(["-c", "commit.gpgsign=false"])
                    .args(args)
                    .current_dir(dir)
                    .env("GIT_CONFIG_GLOBAL", "/dev/null")
                    .env("GIT_CONFIG_NOSYSTEM", "1"),
            )
        };
        run(&["init", "-q", "-b", "main"], &work);
        for (file, text) in files {
            std::fs::write(work.join(file), text).expect("write repo file");
        }
        run(&["add", "-A"], &work);
        run(&["commit", "-q", "-m", "init"], &work);
        let sha = run(&["rev-parse", "HEAD"], &work);
        let bare = self.repos_dir.join(format!("{name}.git"));
        let (work_s, bare_s) = (work.to_str().expect("utf-8"), bare.to_str().expect("utf-8"));
        run(&["clone", "-q", "--bare", work_s, bare_s], &work);
        format!("{}#{}", git.url(name), sha.trim())
    }
}
