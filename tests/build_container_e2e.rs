//! `buildContainer` end to end: the stock koji CLI creates the task on the hub, a
//! `containerbuild builder` (with `--registry`) checks out a dist-git repo served by
//! `git daemon`, builds it with buildah on a busybox base pulled from a loopback
//! `docker-registry`, pushes and tags, and the task result names pull specs that exist.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Hub, assert_contains, containerbuild_bin, random_password, task_state, wait_for};
use containerbuild::build::registry::Registry;

const BUSYBOX: &str = "/bin/busybox";
const CLOSED: i64 = 2;
const FAILED: i64 = 5;

fn which(prog: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(prog))
            .find(|p| p.is_file())
    })
}

/// True when the tools are here; otherwise prints why and returns false (panics under CI).
fn tools_present() -> bool {
    let mut missing = Vec::new();
    for t in ["buildah", "docker-registry", "git"] {
        if which(t).is_none() {
            missing.push(t.to_owned());
        }
    }
    if !Path::new(BUSYBOX).is_file() {
        missing.push(format!("{BUSYBOX} (busybox-static)"));
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        missing.push("root (buildah with vfs + chroot isolation runs as root)".to_owned());
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

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn http_status(port: u16, method: &str, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    buf.split_whitespace().nth(1)?.parse().ok()
}

/// A `docker-registry` on a free loopback port, storage in a temp dir, killed on drop.
struct TestRegistry {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl TestRegistry {
    fn start() -> TestRegistry {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let reg = TestRegistry {
            child,
            port,
            _dir: dir,
        };
        wait_for(Duration::from_secs(15), "docker-registry up", || {
            (http_status(port, "GET", "/v2/") == Some(200)).then_some(())
        });
        reg
    }

    fn host_port(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Whether `name:tag` exists (manifest HEAD through the crate's registry client).
    fn has(&self, name: &str, tag: &str) -> bool {
        let reg = Registry::new(&self.host_port(), true, None).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            reg.client()
                .unwrap()
                .manifest_head(name, tag)
                .await
                .unwrap()
                .is_some()
        })
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill(); // by pid
        let _ = self.child.wait();
    }
}

/// buildah with a private storage under `dir`.
fn buildah(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("buildah")
        .arg("--root")
        .arg(dir.join("storage"))
        .arg("--runroot")
        .arg(dir.join("run"))
        .arg("--storage-driver")
        .arg("vfs")
        .args(args)
        .env("TMPDIR", dir.join("tmp"))
        .stdin(Stdio::null())
        .output()
        .expect("run buildah");
    assert!(
        out.status.success(),
        "buildah {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Builds the busybox base image and pushes it as `<registry>/base:1`.
fn push_base(dir: &Path, registry: &str) {
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::copy(BUSYBOX, rootfs.join("bin/busybox")).unwrap();
    for l in ["sh", "echo", "cat", "sleep", "false", "true", "ls"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(l)).unwrap();
    }
    let ctr = buildah(dir, &["from", "scratch"]);
    buildah(dir, &["copy", &ctr, rootfs.to_str().unwrap(), "/"]);
    buildah(dir, &["config", "--env", "PATH=/bin", &ctr]);
    buildah(dir, &["commit", "--quiet", &ctr, "localhost/cb-e2e-base:1"]);
    buildah(dir, &["rm", &ctr]);
    buildah(
        dir,
        &[
            "push",
            "--tls-verify=false",
            "localhost/cb-e2e-base:1",
            &format!("docker://{registry}/base:1"),
        ],
    );
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=Fixture",
            "-c",
            "user.email=fixture@example.com",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Bare repositories under `srv`, served by `git daemon` (the program itself, killed by pid).
struct GitServer {
    daemon: Child,
    port: u16,
}

impl GitServer {
    fn start(srv: &Path) -> GitServer {
        let out = Command::new("git").arg("--exec-path").output().unwrap();
        let program = Path::new(String::from_utf8_lossy(&out.stdout).trim()).join("git-daemon");
        let port = free_port();
        let mut daemon = Command::new(program)
            .arg("--reuseaddr")
            .arg(format!("--base-path={}", srv.display()))
            .arg("--export-all")
            .arg("--listen=127.0.0.1")
            .arg(format!("--port={port}"))
            .arg(srv)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start git daemon");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = daemon.try_wait() {
                panic!("git daemon exited: {status}");
            }
            assert!(Instant::now() < deadline, "git daemon did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        GitServer { daemon, port }
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

/// A dist-git repo `<name>.git` on branch `main` with `dockerfile`; returns the commit.
fn dist_git(root: &Path, name: &str, dockerfile: &str) -> String {
    let work = root.join("work").join(name);
    std::fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "-q", "-b", "main"]);
    std::fs::write(work.join("Dockerfile"), dockerfile).unwrap();
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "init"]);
    let sha = git(&work, &["rev-parse", "HEAD"]);
    let srv = root.join("srv");
    std::fs::create_dir_all(&srv).unwrap();
    git(
        root,
        &[
            "clone",
            "-q",
            "--bare",
            work.to_str().unwrap(),
            srv.join(format!("{name}.git")).to_str().unwrap(),
        ],
    );
    sha
}

/// A `containerbuild builder` child process, SIGTERM (by pid) on drop.
struct Builder {
    child: Option<Child>,
    log: PathBuf,
}

impl Builder {
    fn start(hub: &Hub, name: &str, extra: &[&str]) -> Builder {
        hub.koji_ok(&["add-host", name, "x86_64"]);
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
        let pwfile = hub.dir().join(format!("{name}.password"));
        std::fs::write(&pwfile, format!("{password}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&pwfile, std::fs::Permissions::from_mode(0o600)).unwrap();
        let log = hub.dir().join(format!("builder-{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = Command::new(containerbuild_bin())
            .args(["builder", "--hub", &hub.url(), "--user", name])
            .arg("--password-file")
            .arg(&pwfile)
            .arg("--workdir")
            .arg(hub.dir().join(format!("work-{name}")))
            .args(["--poll-interval", "1"])
            .args(extra)
            .env("CONTAINERBUILD_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn builder");
        Builder {
            child: Some(child),
            log,
        }
    }
}

impl Drop for Builder {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: signals the builder process we started, by its pid.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(20);
            while !matches!(c.try_wait(), Ok(Some(_))) {
                if Instant::now() > deadline {
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        if std::thread::panicking() {
            eprintln!(
                "---- builder log ----\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

/// Everything a build needs: hub with tag/target/package, registry with the base image,
/// dist-git repos `foo` (good) and `bad` (failing RUN), one builder.
struct Setup {
    hub: Hub,
    registry: TestRegistry,
    _git: GitServer,
    git_port: u16,
    foo_sha: String,
    bad_sha: String,
    _builder: Builder,
    _tmp: tempfile::TempDir,
}

fn setup() -> Option<Setup> {
    if !tools_present() {
        return None;
    }
    let hub = Hub::start()?;
    let tmp = tempfile::Builder::new()
        .prefix("cb-e2e-")
        .tempdir()
        .expect("tempdir");
    let registry = TestRegistry::start();
    let reg = registry.host_port();
    push_base(&tmp.path().join("base"), &reg);
    let foo_sha = dist_git(
        tmp.path(),
        "foo",
        &format!(
            "FROM {reg}/base:1\nLABEL com.redhat.component=foo-container name=foo version=1.0\nRUN echo built > /built\n"
        ),
    );
    let bad_sha = dist_git(
        tmp.path(),
        "bad",
        &format!(
            "FROM {reg}/base:1\nLABEL com.redhat.component=bad-container name=bad version=1.0\nRUN echo about to fail && false\n"
        ),
    );
    let git = GitServer::start(&tmp.path().join("srv"));
    hub.koji_ok(&["add-tag", "--arches", "x86_64", "f40-build"]);
    hub.koji_ok(&["add-tag", "f40"]);
    hub.koji_ok(&["add-target", "f40-candidate", "f40-build", "f40"]);
    hub.koji_ok(&["add-pkg", "--owner", common::ADMIN, "f40", "foo-container"]);
    let root = tmp.path().join("builder-buildah");
    let builder = Builder::start(
        &hub,
        "b1",
        &[
            "--registry",
            &reg,
            "--registry-insecure",
            "--buildah-root",
            root.to_str().unwrap(),
        ],
    );
    let git_port = git.port;
    Some(Setup {
        hub,
        registry,
        _git: git,
        git_port,
        foo_sha,
        bad_sha,
        _builder: builder,
        _tmp: tmp,
    })
}

fn build_container(s: &Setup, repo: &str, sha: &str, opts: &str) -> i64 {
    let src = format!("'git://127.0.0.1:{}/{repo}.git#{sha}'", s.git_port);
    let out = s.hub.koji_ok(&[
        "call",
        "--python",
        "buildContainer",
        &src,
        "'f40-candidate'",
        opts,
    ]);
    out.trim()
        .parse()
        .unwrap_or_else(|e| panic!("buildContainer answer {out:?}: {e}"))
}

fn wait_end(s: &Setup, id: i64) -> i64 {
    wait_for(
        Duration::from_secs(300),
        &format!("task {id} to end"),
        || {
            let (st, _) = task_state(&s.hub, id);
            (st >= 2).then_some(st)
        },
    )
}

#[test]
fn scratch_build_is_pushed_and_logged() {
    let Some(s) = setup() else { return };
    let id = build_container(
        &s,
        "foo",
        &s.foo_sha,
        "{'git_branch': 'main', 'scratch': True}",
    );
    let state = wait_end(&s, id);
    let out = s.hub.python(&format!(
        r#"
import koji, os
s = koji.ClientSession(os.environ['KOJI_URL'])
try:
    r = s.getTaskResult({id})
    print('RESULT', repr(r))
except Exception as e:
    print('FAULT', getattr(e, 'faultCode', None), e)
print('OUTPUT', sorted(s.listTaskOutput({id})))
log = s.downloadTaskOutput({id}, 'x86_64.log')
print('LOG', log.decode('utf-8', 'replace'))
"#
    ));
    let text = format!("{}\n{}", out.1, out.2);
    assert_eq!(state, CLOSED, "task state; {text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("RESULT "))
        .unwrap_or_else(|| panic!("no result: {text}"));
    assert_contains(line, "'repositories': [", "repositories");
    assert_contains(line, "'koji_builds': []", "koji_builds");
    assert!(!line.contains("user_warnings"), "{line}");
    let prefix = format!("'{}/foo:f40-candidate-", s.registry.host_port());
    let start = line.find(&prefix).unwrap_or_else(|| panic!("{line}"));
    let spec = &line[start + 1..];
    let spec = &spec[..spec.find('\'').unwrap()];
    let tag = spec.rsplit_once(':').unwrap().1;
    assert!(s.registry.has("foo", tag), "{spec} is not in the registry");
    assert!(
        s.registry.has("foo", &format!("{tag}-x86_64")),
        "per-arch image missing"
    );
    assert_contains(&text, "'x86_64.log'", "arch log in listTaskOutput");
    assert_contains(&text, "'checkout-for-labels.log'", "checkout log");
    assert_contains(&text, "STEP", "build output in x86_64.log");
}

#[test]
fn failing_run_fails_the_task_with_2001() {
    let Some(s) = setup() else { return };
    let id = build_container(
        &s,
        "bad",
        &s.bad_sha,
        "{'git_branch': 'main', 'scratch': True}",
    );
    let state = wait_end(&s, id);
    let out = s.hub.python(&format!(
        r#"
import koji, os
s = koji.ClientSession(os.environ['KOJI_URL'])
try:
    r = s.getTaskResult({id})
    print('RESULT', repr(r))
except Exception as e:
    print('FAULT', getattr(e, 'faultCode', None), e)
log = s.downloadTaskOutput({id}, 'x86_64.log')
print('LOG', log.decode('utf-8', 'replace'))
"#
    ));
    let text = format!("{}\n{}", out.1, out.2);
    assert_eq!(state, FAILED, "task state; {text}");
    assert_contains(&text, "FAULT 2001", "fault code");
    assert_contains(&text, "Image build failed.", "fault text");
    assert_contains(&text, "about to fail", "RUN output in x86_64.log");
}
