//! Test harness: runs the real `containerbuild` hub on a free local port and drives it with the
//! stock Koji CLI (PyPI `koji==1.36.1`, installed into `.venv` by `make test`), its Python
//! library, or a minimal raw HTTP/1.1 client for wire-level checks.
//!
//! Environment:
//! - `KOJI_BIN`: the `koji` executable; default `<repo>/.venv/bin/koji`. Its sibling `python`
//!   is used for `Hub::python`.
//! - `CONTAINERBUILD_BIN`: the hub binary; default the binary cargo built for this test run
//!   (`target/release/containerbuild` under `cargo test --release`).
//! - `CI`: when set, a missing koji CLI is a hard failure instead of a skip.

#![allow(dead_code)]

pub mod browser;
pub mod fixtures;

use std::collections::hash_map::RandomState;
use std::fs::{File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long the hub may take to answer its first `getAPIVersion`.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Upper bound for one koji CLI / Python invocation; a hung client fails the test instead of
/// hanging the whole run.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);
/// Read/write timeout of the raw HTTP client.
const RAW_TIMEOUT: Duration = Duration::from_secs(60);

/// The admin user every hub starts with.
pub const ADMIN: &str = "kojiadmin";

/// Exit status, stdout, stderr of a client invocation.
pub type Output = (i32, String, String);

/// Status, headers (names lower-cased, in wire order), body of a raw HTTP response.
pub type RawResponse = (u16, Vec<(String, String)>, String);

/// The `koji` executable, or `None` (after printing why) when it is not installed and the run is
/// not CI. Tests start with `let Some(hub) = Hub::start() else { return };`, which calls this.
pub fn koji_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("KOJI_BIN").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(p.exists(), "KOJI_BIN={} does not exist", p.display());
        return Some(p);
    }
    let p = repo_dir().join(".venv/bin/koji");
    if p.exists() {
        return Some(p);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "koji CLI not found: set KOJI_BIN or create .venv with koji==1.36.1 (run `make test`)"
        );
    }
    eprintln!("skipping: koji CLI not installed (run make test)");
    None
}

/// The repository root (where Cargo.toml lives).
pub fn repo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The hub binary under test.
pub fn containerbuild_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("CONTAINERBUILD_BIN").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_BIN_EXE_containerbuild"))
}

/// A throwaway password, unique per call; good enough for a hub that lives for one test.
pub fn random_password() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let mut out = String::from("pw-");
    for i in 0..2 {
        let mut h = RandomState::new().build_hasher();
        h.write_usize(N.fetch_add(1, Ordering::Relaxed));
        h.write_u32(std::process::id());
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        h.write_usize(i);
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

/// A running hub with its own data directory, port, koji config and admin account.
pub struct Hub {
    dir: tempfile::TempDir,
    port: u16,
    password: String,
    koji: PathBuf,
    child: Option<Child>,
    counter: AtomicUsize,
    /// Extra `--config FILE.toml` for `serve` (see [`Hub::start_with_config`]).
    hub_config: Option<PathBuf>,
    /// Extra `serve` arguments (see [`Hub::start_with_args`]); without `--builders` the harness
    /// passes `--builders 0`, so tests see no embedded builder unless they ask for one.
    serve_args: Vec<String>,
}

impl Hub {
    /// Starts a fresh hub, or returns `None` when the koji CLI is missing outside CI.
    pub fn start() -> Option<Hub> {
        Self::start_inner(None, &[])
    }

    /// Like [`Hub::start`], but writes `toml` to `hub.toml` in the tempdir and passes it to
    /// `serve --config` (keys: data_dir, listen, max_request_length, session_renewal_timeout,
    /// check_client_ip, disable_url_sessions). The harness's `--data-dir` / `--listen` flags
    /// still win over the file.
    pub fn start_with_config(toml: &str) -> Option<Hub> {
        Self::start_inner(Some(toml), &[])
    }

    /// [`Hub::start_with_args`] plus a `serve --config` TOML file.
    pub fn start_with_args_and_config(args: &[&str], toml: &str) -> Option<Hub> {
        Self::start_inner(Some(toml), args)
    }

    /// Like [`Hub::start`], with extra `serve` arguments, e.g. `["--builders", "1"]`.
    pub fn start_with_args(args: &[&str]) -> Option<Hub> {
        Self::start_inner(None, args)
    }

    /// Like [`Hub::start_with_config`], but runs `prepare` on the (empty) data directory before
    /// the admin user is created and the hub starts, e.g. to mount a small tmpfs there.
    pub fn start_prepared(toml: &str, prepare: impl FnOnce(&Path)) -> Option<Hub> {
        Self::start_inner_prepared(Some(toml), &[], prepare)
    }

    fn start_inner(toml: Option<&str>, args: &[&str]) -> Option<Hub> {
        Self::start_inner_prepared(toml, args, |_| {})
    }

    fn start_inner_prepared(
        toml: Option<&str>,
        args: &[&str],
        prepare: impl FnOnce(&Path),
    ) -> Option<Hub> {
        let koji = koji_bin()?;
        let dir = tempfile::Builder::new()
            .prefix("containerbuild-test-")
            .tempdir()
            .expect("create tempdir");
        let port = free_port();
        let password = random_password();
        let mut hub = Hub {
            dir,
            port,
            password,
            koji,
            child: None,
            counter: AtomicUsize::new(0),
            hub_config: None,
            serve_args: args.iter().map(|a| a.to_string()).collect(),
        };
        if let Some(t) = toml {
            let p = hub.dir.path().join("hub.toml");
            std::fs::write(&p, t).expect("write hub config");
            hub.hub_config = Some(p);
        }
        std::fs::create_dir_all(hub.data_dir()).expect("create data dir");
        prepare(&hub.data_dir());
        hub.write_config();
        hub.add_user_cli(ADMIN, &hub.password, true);
        hub.spawn();
        Some(hub)
    }

    /// Stops the hub and starts it again on the same data directory and port.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Kills the hub process (if running) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The hub process's pid while it runs (for RSS sampling or a hard kill by pid).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `http://127.0.0.1:PORT/kojihub`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/kojihub", self.port)
    }

    /// The temporary directory holding data dir, config, logs and client output.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The hub's `--data-dir`.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The koji client config (`[koji]` password profile, `[anon]` noauth profile).
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("koji.conf")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("hub.log")
    }

    /// Everything the hub wrote to stdout/stderr so far (across restarts).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn admin_password(&self) -> &str {
        &self.password
    }

    pub fn koji_bin(&self) -> &Path {
        &self.koji
    }

    /// Runs `containerbuild user add NAME --data-dir DIR --password-stdin [--admin]`.
    /// Works while the hub runs (the store is SQLite in WAL mode).
    /// `koji add-host NAME x86_64`, then a password for the host user; returns the password.
    pub fn add_host_cli(&self, name: &str) -> String {
        self.koji_ok(&["add-host", name, "x86_64"]);
        let pw = random_password();
        let dir = self.data_dir();
        let out = self.containerbuild(
            &[
                "user",
                "passwd",
                name,
                "--data-dir",
                dir.to_str().expect("utf-8 data dir"),
                "--password-stdin",
            ],
            &format!("{pw}\n"),
        );
        assert_eq!(out.0, 0, "user passwd {name}: {out:?}");
        pw
    }

    pub fn add_user_cli(&self, name: &str, password: &str, admin: bool) -> Output {
        let mut cmd = Command::new(containerbuild_bin());
        cmd.args(["user", "add", name, "--data-dir"])
            .arg(self.data_dir())
            .arg("--password-stdin");
        if admin {
            cmd.arg("--admin");
        }
        let out = run_with_stdin(cmd, &format!("{password}\n"));
        assert_eq!(
            out.0, 0,
            "containerbuild user add {name} failed:\nstdout: {}\nstderr: {}",
            out.1, out.2
        );
        out
    }

    /// Runs `containerbuild ARGS...` (e.g. `user passwd NAME --data-dir DIR --password-stdin`)
    /// with `stdin` as standard input; never asserts on the exit status.
    pub fn containerbuild(&self, args: &[&str], stdin: &str) -> Output {
        let mut cmd = Command::new(containerbuild_bin());
        cmd.args(args);
        let out = run_with_stdin(cmd, stdin);
        eprintln!(
            "$ containerbuild {}\n[exit {}]\n{}{}",
            args.join(" "),
            out.0,
            out.1,
            out.2
        );
        out
    }

    /// `koji -c CONF --user kojiadmin --password PW ARGS...`
    pub fn koji(&self, args: &[&str]) -> Output {
        self.koji_as(ADMIN, &self.password, args)
    }

    /// `koji -c CONF --user USER --password PW ARGS...`
    pub fn koji_as(&self, user: &str, password: &str, args: &[&str]) -> Output {
        let mut global: Vec<String> = vec!["--user".into(), user.into(), "--password".into()];
        global.push(password.into());
        self.run_koji(&global, args)
    }

    /// `koji -c CONF --noauth ARGS...`
    pub fn koji_noauth(&self, args: &[&str]) -> Output {
        self.run_koji(&["--noauth".to_string()], args)
    }

    /// `koji -c CONF -p PROFILE ARGS...` (profiles: `koji`, `anon`).
    pub fn koji_profile(&self, profile: &str, args: &[&str]) -> Output {
        self.run_koji(&["-p".to_string(), profile.to_string()], args)
    }

    fn run_koji(&self, global: &[String], args: &[&str]) -> Output {
        let cmd = self.koji_command(global, args);
        let label = format!("koji {}", args.join(" "));
        self.run_client(cmd, &label)
    }

    /// The configured `koji -c CONF GLOBAL... ARGS...` command, for a client the test runs in
    /// the background (e.g. `watch-logs` during a build); the test waits for or kills it.
    pub fn koji_command(&self, global: &[String], args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.koji);
        cmd.arg("-c")
            .arg(self.config_path())
            .args(global)
            .args(args);
        self.client_env(&mut cmd);
        cmd
    }

    /// Runs a Python script with the venv interpreter next to `KOJI_BIN`, with `KOJI_URL`,
    /// `KOJI_USER` (kojiadmin) and `KOJI_PASSWORD` in the environment.
    pub fn python(&self, script: &str) -> Output {
        let python = self
            .koji
            .parent()
            .expect("KOJI_BIN has a parent dir")
            .join("python");
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.path().join(format!("script-{n}.py"));
        std::fs::write(&path, script).expect("write python script");
        let mut cmd = Command::new(python);
        cmd.arg(&path)
            .env("KOJI_URL", self.url())
            .env("KOJI_USER", ADMIN)
            .env("KOJI_PASSWORD", &self.password);
        self.client_env(&mut cmd);
        self.run_client(cmd, &format!("python script-{n}.py"))
    }

    /// Starts a Python script (venv interpreter, the environment of [`Hub::python`]) in the
    /// background with stdout and stderr appended to `log`; the caller stops it by pid.
    pub fn python_spawn(&self, script: &str, log: &Path) -> Child {
        let python = self
            .koji
            .parent()
            .expect("KOJI_BIN has a parent dir")
            .join("python");
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.path().join(format!("script-{n}.py"));
        std::fs::write(&path, script).expect("write python script");
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open script log");
        let err = out.try_clone().expect("clone log handle");
        let mut cmd = Command::new(python);
        cmd.arg(&path)
            .env("KOJI_URL", self.url())
            .env("KOJI_USER", ADMIN)
            .env("KOJI_PASSWORD", &self.password)
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        self.client_env(&mut cmd);
        cmd.spawn().expect("spawn python script")
    }

    fn client_env(&self, cmd: &mut Command) {
        cmd.env("HOME", self.dir.path())
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONIOENCODING", "utf-8")
            .env("LANG", "C.UTF-8")
            .env("LC_ALL", "C.UTF-8")
            .env("TZ", "UTC")
            .env_remove("KRB5CCNAME")
            .env_remove("PYTHONPATH")
            .env_remove("REQUESTS_CA_BUNDLE")
            .env_remove("http_proxy")
            .env_remove("https_proxy")
            .env_remove("HTTP_PROXY")
            .env_remove("HTTPS_PROXY")
            .env("NO_PROXY", "*")
            .env("no_proxy", "*");
    }

    /// Runs a client with stdout/stderr captured in files (no pipe deadlocks) and a timeout.
    fn run_client(&self, mut cmd: Command, label: &str) -> Output {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let out_path = self.dir.path().join(format!("client-{n}.out"));
        let err_path = self.dir.path().join(format!("client-{n}.err"));
        cmd.stdin(Stdio::null())
            .stdout(File::create(&out_path).expect("create stdout file"))
            .stderr(File::create(&err_path).expect("create stderr file"));
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {label}: {e}"));
        let deadline = Instant::now() + CLIENT_TIMEOUT;
        let status = loop {
            if let Some(st) = child.try_wait().expect("wait for client") {
                break st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{label} timed out after {CLIENT_TIMEOUT:?}\nstdout: {}\nstderr: {}\nhub log:\n{}",
                    std::fs::read_to_string(&out_path).unwrap_or_default(),
                    std::fs::read_to_string(&err_path).unwrap_or_default(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stdout = read_lossy(&out_path);
        let stderr = read_lossy(&err_path);
        let code = status.code().unwrap_or(-1);
        eprintln!("$ {label}\n[exit {code}]\n{stdout}{stderr}");
        (code, stdout, stderr)
    }

    /// Asserts a koji command (as kojiadmin) exits 0 and returns its stdout.
    pub fn koji_ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.koji(args);
        assert_eq!(
            code,
            0,
            "koji {} failed\nstdout: {out}\nstderr: {err}\nhub log:\n{}",
            args.join(" "),
            self.log_tail()
        );
        out
    }

    /// Asserts a Python script exits 0 and returns its stdout.
    pub fn python_ok(&self, script: &str) -> String {
        let (code, out, err) = self.python(script);
        assert_eq!(
            code,
            0,
            "python failed\nstdout: {out}\nstderr: {err}\nhub log:\n{}",
            self.log_tail()
        );
        out
    }

    /// The last 8 KiB of the hub log, for assertion messages.
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let mut start = log.len().saturating_sub(8192);
        while !log.is_char_boundary(start) {
            start += 1;
        }
        log[start..].to_string()
    }

    /// POSTs an XML-RPC body to `/kojihub`.
    pub fn raw_call(&self, xml_body: &str) -> RawResponse {
        self.raw_post("/kojihub", &[], xml_body.as_bytes())
    }

    /// POSTs an XML-RPC body to `/kojihub` with extra request headers (e.g. the
    /// `Koji-Session-Id` / `-Key` / `-Callnum` triple).
    pub fn raw_call_with(&self, headers: &[(&str, &str)], xml_body: &str) -> RawResponse {
        self.raw_post("/kojihub", headers, xml_body.as_bytes())
    }

    /// A minimal HTTP/1.1 POST over `std::net` (`Connection: close`); handles `Content-Length`,
    /// chunked and read-to-EOF bodies. The body is written from a separate thread so a server
    /// that answers before reading everything (e.g. an oversize request) does not deadlock us.
    pub fn raw_post(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> RawResponse {
        raw_http(self.addr(), "POST", path, headers, body)
            .unwrap_or_else(|e| panic!("raw POST {path}: {e}\nhub log:\n{}", self.log_tail()))
    }

    /// A minimal HTTP/1.1 GET.
    pub fn raw_get(&self, path: &str) -> RawResponse {
        raw_http(self.addr(), "GET", path, &[], b"")
            .unwrap_or_else(|e| panic!("raw GET {path}: {e}\nhub log:\n{}", self.log_tail()))
    }

    /// Logs in over raw XML-RPC and returns (session-id, session-key) as strings, ready for the
    /// `Koji-Session-Id` / `Koji-Session-Key` headers.
    pub fn raw_login(&self, user: &str, password: &str) -> (String, String) {
        let body = call_xml(
            "login",
            &[
                &format!("<string>{}</string>", xml_escape(user)),
                &format!("<string>{}</string>", xml_escape(password)),
            ],
        );
        let (status, _, resp) = self.raw_call(&body);
        assert_eq!(status, 200, "login HTTP status; body: {resp}");
        assert!(fault_code(&resp).is_none(), "login failed: {resp}");
        let id =
            member_value(&resp, "session-id").unwrap_or_else(|| panic!("no session-id in {resp}"));
        let key = member_value(&resp, "session-key")
            .unwrap_or_else(|| panic!("no session-key in {resp}"));
        (id, key)
    }

    fn write_config(&self) {
        let p = self.port;
        let conf = format!(
            "[koji]\n\
             server = http://127.0.0.1:{p}/kojihub\n\
             weburl = http://127.0.0.1:{p}/koji\n\
             topurl = http://127.0.0.1:{p}/kojifiles\n\
             authtype = password\n\
             \n\
             [anon]\n\
             server = http://127.0.0.1:{p}/kojihub\n\
             weburl = http://127.0.0.1:{p}/koji\n\
             topurl = http://127.0.0.1:{p}/kojifiles\n\
             authtype = noauth\n"
        );
        std::fs::write(self.config_path(), conf).expect("write koji config");
    }

    fn spawn(&mut self) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open hub log");
        let log2 = log.try_clone().expect("clone log handle");
        let mut cmd = Command::new(containerbuild_bin());
        cmd.arg("serve");
        if let Some(c) = &self.hub_config {
            cmd.arg("--config").arg(c);
        }
        if !self.serve_args.iter().any(|a| a == "--builders") {
            cmd.args(["--builders", "0"]);
        }
        cmd.args(&self.serve_args);
        let child = cmd
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .env("RUST_BACKTRACE", "1")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", containerbuild_bin().display()));
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        let probe = call_xml("getAPIVersion", &[]);
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(st)) = child.try_wait()
            {
                panic!("hub exited during startup ({st})\nlog:\n{}", self.log());
            }
            // An HTTPS hub (`--tls-cert`) cannot be probed with plain HTTP: its start line
            // says it listens.
            if self.serve_args.iter().any(|a| a == "--tls-cert")
                && TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200)).is_ok()
                && self.log().contains("listening on https://")
            {
                return;
            }
            if TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200)).is_ok()
                && let Ok((200, _, body)) =
                    raw_http(self.addr(), "POST", "/kojihub", &[], probe.as_bytes())
                && body.contains("<methodResponse")
            {
                return;
            }
            if Instant::now() > deadline {
                self.stop();
                panic!(
                    "hub did not answer getAPIVersion on port {} within {START_TIMEOUT:?}\nlog:\n{}",
                    self.port,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!(
                "---- hub log ({}) ----\n{}",
                self.log_path().display(),
                self.log_tail()
            );
        }
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

fn read_lossy(p: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned()
}

fn run_with_stdin(mut cmd: Command, input: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {:?}: {e}", cmd.get_program()));
    {
        let mut stdin = child.stdin.take().expect("stdin");
        let _ = stdin.write_all(input.as_bytes());
    }
    let out = child.wait_with_output().expect("wait");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The minimal HTTP/1.1 client behind `Hub::raw_post`.
pub fn raw_http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<RawResponse, String> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(RAW_TIMEOUT))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(RAW_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: koji/1\r\n");
    if method != "GET" || !body.is_empty() {
        head.push_str(&format!(
            "Content-Type: text/xml\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("Connection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");

    let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
    let mut payload = head.into_bytes();
    payload.extend_from_slice(body);
    // Write errors (the server may answer and close before reading an oversize body) are not
    // fatal: what matters is the response we can read.
    let write_thread =
        std::thread::spawn(move || writer.write_all(&payload).map_err(|e| e.to_string()));

    let mut reader = stream;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    let header_end = loop {
        if let Some(pos) = find(&buf, b"\r\n\r\n") {
            break pos;
        }
        match reader.read(&mut chunk) {
            Ok(0) => {
                let w = write_thread.join().ok().and_then(|r| r.err());
                return Err(format!(
                    "connection closed before response headers (got {} bytes; write error: {w:?})",
                    buf.len()
                ));
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => {
                let w = write_thread.join().ok().and_then(|r| r.err());
                return Err(format!("read response headers: {e} (write error: {w:?})"));
            }
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).into_owned();
    let mut rest = buf[header_end + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line: {status_line:?}"))?;
    let mut hdrs = Vec::new();
    for line in lines {
        if let Some((k, v)) = line.split_once(':') {
            hdrs.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let content_length = header(&hdrs, "content-length").and_then(|v| v.parse::<usize>().ok());
    let chunked = header(&hdrs, "transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));

    let body = if method == "HEAD" || status == 204 || status == 304 {
        Vec::new()
    } else if let Some(len) = content_length {
        while rest.len() < len {
            match reader.read(&mut chunk) {
                Ok(0) => return Err(format!("body truncated: {} of {len} bytes", rest.len())),
                Ok(n) => rest.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(format!("read body: {e}")),
            }
        }
        rest.truncate(len);
        rest
    } else {
        // Read to EOF (we sent Connection: close), then undo chunking if present.
        loop {
            match reader.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => rest.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) => return Err(format!("read body: {e}")),
            }
        }
        if chunked { dechunk(&rest)? } else { rest }
    };
    drop(write_thread); // detach: never block on a write the server will not read
    Ok((status, hdrs, String::from_utf8_lossy(&body).into_owned()))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = find(data, b"\r\n").ok_or("chunk size line without CRLF")?;
        let line = std::str::from_utf8(&data[..eol]).map_err(|e| e.to_string())?;
        let size_str = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_str, 16)
            .map_err(|e| format!("chunk size {size_str:?}: {e}"))?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size..];
        data = data.strip_prefix(b"\r\n").unwrap_or(data);
    }
}

/// Looks up a (lower-cased) header name.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    let name = name.to_ascii_lowercase();
    headers
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.as_str())
}

/// Escapes text for an XML element body.
pub fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Builds a `<methodCall>` from already-serialised values (the inside of `<value>`, e.g.
/// `<int>1</int>` or `<string>x</string>`).
pub fn call_xml(method: &str, values: &[&str]) -> String {
    let mut s = format!(
        "<?xml version='1.0'?>\n<methodCall>\n<methodName>{}</methodName>\n<params>\n",
        xml_escape(method)
    );
    for v in values {
        s.push_str(&format!("<param>\n<value>{v}</value>\n</param>\n"));
    }
    s.push_str("</params>\n</methodCall>\n");
    s
}

/// The `faultCode` of a fault response, or `None` for a normal response.
pub fn fault_code(body: &str) -> Option<i64> {
    if !body.contains("<fault>") {
        return None;
    }
    member_value(body, "faultCode").and_then(|v| v.parse().ok())
}

/// The `faultString` of a fault response.
pub fn fault_string(body: &str) -> Option<String> {
    if !body.contains("<fault>") {
        return None;
    }
    member_value(body, "faultString")
}

/// The text of the first scalar value of the struct member `name` in an XML-RPC document
/// (`<int>`, `<i4>`, `<i8>`, `<string>`, `<boolean>`, or a bare `<value>text</value>`),
/// with the basic XML entities decoded. Good enough for faults and login answers.
pub fn member_value(body: &str, name: &str) -> Option<String> {
    let tag = format!("<name>{name}</name>");
    let after = &body[body.find(&tag)? + tag.len()..];
    let after = &after[after.find("<value>")? + "<value>".len()..];
    let end = after.find("</value>")?;
    let mut inner = after[..end].trim();
    // Strip one typed element if present.
    if let Some(rest) = inner.strip_prefix('<') {
        let close = rest.find('>')?;
        let tagname = &rest[..close];
        if tagname.ends_with('/') {
            return Some(String::new());
        }
        let content = &rest[close + 1..];
        let closing = format!("</{tagname}>");
        inner = content.strip_suffix(closing.as_str()).unwrap_or(content);
    }
    Some(
        inner
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

/// Starts a hub (optionally with a TOML config) or returns from the test when the koji CLI is
/// missing outside CI (see [`koji_bin`]).
#[macro_export]
macro_rules! hub {
    () => {
        match $crate::common::Hub::start() {
            Some(h) => h,
            None => return,
        }
    };
    ($toml:expr) => {
        match $crate::common::Hub::start_with_config($toml) {
            Some(h) => h,
            None => return,
        }
    };
}

/// Asserts that `haystack` contains `needle`, showing `what` and the whole text otherwise.
pub fn assert_contains(haystack: &str, needle: &str, what: &str) {
    assert!(
        haystack.contains(needle),
        "{what}: expected {needle:?} in:\n{haystack}"
    );
}

/// `(state, host_id)` of a task, from a raw `getTaskInfo`.
pub fn task_state(hub: &Hub, id: i64) -> (i64, Option<i64>) {
    let (_, _, body) = hub.raw_call(&call_xml("getTaskInfo", &[&format!("<int>{id}</int>")]));
    let state = member_value(&body, "state")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no state for task {id}: {body}"));
    let host = member_value(&body, "host_id").and_then(|s| s.parse().ok());
    (state, host)
}

/// The id of host `name`.
pub fn host_id(hub: &Hub, name: &str) -> i64 {
    let (_, _, body) = hub.raw_call(&call_xml("getHost", &[&format!("<string>{name}</string>")]));
    member_value(&body, "id")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no host {name}: {body}"))
}

/// Polls until `f` returns `Some`, or panics with `what` after `timeout`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The password file of host `name` (written by [`register_host`]).
pub fn host_password_file(hub: &Hub, name: &str) -> PathBuf {
    hub.dir().join(format!("{name}.password"))
}

/// The work directory a [`BuilderProc`] of host `name` uses.
pub fn host_workdir(hub: &Hub, name: &str) -> PathBuf {
    hub.dir().join(format!("work-{name}"))
}

/// `koji add-host NAME ARCHES...`, `koji add-host-to-channel NAME container`, and a fresh
/// password set with `containerbuild user passwd` and written to a 0600 file; returns it.
pub fn register_host(hub: &Hub, name: &str, arches: &[&str]) -> String {
    let mut add = vec!["add-host", name];
    add.extend_from_slice(arches);
    hub.koji_ok(&add);
    hub.koji_ok(&["add-host-to-channel", name, "container"]);
    let password = random_password();
    let data_dir = hub.data_dir();
    let out = hub.containerbuild(
        &[
            "user",
            "passwd",
            name,
            "--data-dir",
            data_dir.to_str().expect("utf-8 path"),
            "--password-stdin",
        ],
        &format!("{password}\n"),
    );
    assert_eq!(out.0, 0, "user passwd {name}: {out:?}");
    let pwfile = host_password_file(hub, name);
    std::fs::write(&pwfile, format!("{password}\n")).expect("write password file");
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&pwfile, std::fs::Permissions::from_mode(0o600))
        .expect("chmod password file");
    password
}

/// A `containerbuild builder` process for a host, logging to `<hub dir>/builder-<name>.log`
/// (appended, so a restarted builder keeps one log); SIGTERM by pid on drop, SIGKILL if it does
/// not exit within 20 s. Its log is printed when the test panics.
pub struct BuilderProc {
    child: Option<Child>,
    pub name: String,
    pub log: PathBuf,
    pub workdir: PathBuf,
}

impl BuilderProc {
    /// Registers host `name` with `arches` ([`register_host`]) and starts its builder.
    pub fn start(hub: &Hub, name: &str, arches: &[&str], extra: &[&str]) -> BuilderProc {
        register_host(hub, name, arches);
        BuilderProc::spawn(hub, name, extra)
    }

    /// Starts `containerbuild builder` for an already registered host.
    pub fn spawn(hub: &Hub, name: &str, extra: &[&str]) -> BuilderProc {
        let log = hub.dir().join(format!("builder-{name}.log"));
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open builder log");
        let err = out.try_clone().expect("clone log handle");
        let workdir = host_workdir(hub, name);
        let child = Command::new(containerbuild_bin())
            .args(["builder", "--hub", &hub.url(), "--user", name])
            .arg("--password-file")
            .arg(host_password_file(hub, name))
            .arg("--workdir")
            .arg(&workdir)
            .args(["--poll-interval", "1"])
            .args(extra)
            .env("CONTAINERBUILD_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn builder");
        BuilderProc {
            child: Some(child),
            name: name.to_owned(),
            log,
            workdir,
        }
    }

    /// A builder the test started itself (e.g. with `--cert` instead of a password), stopped
    /// like the others when dropped.
    pub fn adopt(child: Child, name: &str, log: PathBuf, workdir: PathBuf) -> BuilderProc {
        BuilderProc {
            child: Some(child),
            name: name.to_owned(),
            log,
            workdir,
        }
    }

    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }

    /// SIGKILL (a crash: no `host.freeTasks`, no logout) and reap.
    pub fn kill_hard(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then up to `within` for a clean exit (SIGKILL after that); the exit code.
    pub fn terminate(&mut self, within: Duration) -> Option<i32> {
        let mut child = self.child.take()?;
        // SAFETY: signals the builder process this value started, by its pid.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                return st.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for BuilderProc {
    fn drop(&mut self) {
        self.terminate(Duration::from_secs(20));
        if std::thread::panicking() {
            eprintln!("---- builder {} log ----\n{}", self.name, self.log());
        }
    }
}

/// The `RESULT {json}` line a Python script printed.
pub fn result_json(out: &str) -> serde_json::Value {
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("no RESULT line in:\n{out}"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("bad RESULT json {line}: {e}"))
}

/// The environment every build test starts from: a hub, a registry holding the fixture base
/// image, the dist-git fixtures served by `git daemon`, tags `f40-build` (x86_64) and `f40`
/// and `target` between them. `None` when the tools or the koji CLI are missing outside CI.
pub fn build_env(
    target: &str,
) -> Option<(
    Hub,
    fixtures::TestRegistry,
    fixtures::Fixtures,
    fixtures::GitServer,
)> {
    if !fixtures::tools_present() {
        return None;
    }
    let hub = Hub::start()?;
    let registry = fixtures::TestRegistry::start();
    let fixtures = fixtures::Fixtures::build(&registry.host_port());
    let git = fixtures::GitServer::start(&fixtures.repos_dir);
    hub.koji_ok(&["add-tag", "--arches", "x86_64", "f40-build"]);
    hub.koji_ok(&["add-tag", "f40"]);
    hub.koji_ok(&["add-target", target, "f40-build", "f40"]);
    Some((hub, registry, fixtures, git))
}
