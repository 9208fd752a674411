//! buildah engine and registry client against the real tools: Debian's buildah (vfs storage,
//! chroot isolation, run as root), skopeo and `docker-registry` (distribution v2) on a loopback
//! port.
//!
//! Every test has its own storage root, runroot and TMPDIR in a temp dir, and a base image built
//! there from busybox-static; the machine's default buildah storage is never touched.
//!
//! Environment: `CI` set -> missing tools (buildah, skopeo, docker-registry, /bin/busybox, or not
//! root) fail the run; otherwise the tests print "skipping" and pass.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use containerbuild::build::engine::{BudRequest, Buildah, BuildahConfig, EngineError, PushOptions};
use containerbuild::build::registry::{
    DOCKER_MANIFEST_LIST, DOCKER_MANIFEST_V2, ManifestEntry, Registry,
};
use tokio_util::sync::CancellationToken;

const BUSYBOX: &str = "/bin/busybox";
const BASE: &str = "localhost/cb-test-base:1";

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
    for t in ["buildah", "skopeo", "docker-registry"] {
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

/// A `docker-registry` on a free loopback port, storage in a temp dir, killed on drop.
struct TestRegistry {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl TestRegistry {
    fn start() -> TestRegistry {
        let mut last = String::new();
        for _ in 0..5 {
            let dir = tempfile::tempdir().expect("tempdir");
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
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
            let mut reg = TestRegistry {
                child,
                port,
                _dir: dir,
            };
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if http_status(port, "GET", "/v2/") == Some(200) {
                    return reg;
                }
                if let Ok(Some(st)) = reg.child.try_wait() {
                    last = format!(
                        "docker-registry exited with {st}: {}",
                        std::fs::read_to_string(reg._dir.path().join("registry.log"))
                            .unwrap_or_default()
                    );
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if last.is_empty() {
                last = "docker-registry did not answer GET /v2/ within 15 s".to_owned();
            }
            drop(reg);
        }
        panic!("cannot start docker-registry: {last}");
    }

    fn host_port(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill(); // by pid
        let _ = self.child.wait();
    }
}

/// Status of a minimal HTTP/1.0 request.
fn http_status(port: u16, method: &str, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    buf.split_whitespace().nth(1)?.parse().ok()
}

/// One test's buildah: private storage, runroot and TMPDIR under a temp dir.
struct Engine {
    dir: tempfile::TempDir,
    buildah: Buildah,
}

impl Engine {
    fn new() -> Engine {
        let dir = tempfile::Builder::new()
            .prefix("cb-engine-test-")
            .tempdir()
            .expect("tempdir");
        let buildah = Buildah::new(BuildahConfig::with_state_dir(&dir.path().join("buildah")));
        let e = Engine { dir, buildah };
        e.make_base();
        e
    }

    fn root(&self) -> String {
        self.dir.path().display().to_string()
    }

    /// buildah with this test's storage options, synchronously (fixtures only).
    fn buildah_sync(&self, args: &[&str]) -> String {
        let c = &self.buildah.config;
        let out = Command::new("buildah")
            .arg("--root")
            .arg(c.root.as_ref().unwrap())
            .arg("--runroot")
            .arg(c.runroot.as_ref().unwrap())
            .arg("--storage-driver")
            .arg(&c.storage_driver)
            .args(args)
            .env("TMPDIR", c.tmpdir.as_ref().unwrap())
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

    /// `BASE`: busybox-static with sh/echo/cat/sleep/false/true links, PATH=/bin.
    fn make_base(&self) {
        let c = &self.buildah.config;
        std::fs::create_dir_all(c.tmpdir.as_ref().unwrap()).unwrap();
        let rootfs = self.dir.path().join("rootfs");
        std::fs::create_dir_all(rootfs.join("bin")).unwrap();
        std::fs::copy(BUSYBOX, rootfs.join("bin/busybox")).unwrap();
        for l in ["sh", "echo", "cat", "sleep", "false", "true", "ls"] {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(l)).unwrap();
        }
        let ctr = self.buildah_sync(&["from", "scratch"]);
        self.buildah_sync(&["copy", &ctr, rootfs.to_str().unwrap(), "/"]);
        self.buildah_sync(&["config", "--env", "PATH=/bin", &ctr]);
        self.buildah_sync(&["commit", "--quiet", &ctr, BASE]);
        self.buildah_sync(&["rm", &ctr]);
    }

    /// A build context with `dockerfile` as its Dockerfile.
    fn context(&self, name: &str, dockerfile: &str) -> PathBuf {
        let d = self.dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("Dockerfile"), dockerfile).unwrap();
        d
    }

    /// Processes related to this test's storage: the root in their command line, or a root
    /// directory / cwd inside it (RUN commands are chrooted into TMPDIR).
    fn leftover_processes(&self) -> Vec<String> {
        let root = self.root();
        let mut found = Vec::new();
        let me = std::process::id().to_string();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.bytes().all(|b| b.is_ascii_digit()) || name == me {
                continue;
            }
            let p = e.path();
            let cmdline = std::fs::read(p.join("cmdline"))
                .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
                .unwrap_or_default();
            if let Ok(stat) = std::fs::read_to_string(p.join("stat"))
                && stat
                    .rsplit_once(')')
                    .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
            {
                continue; // zombies hold nothing
            }
            let link = |f: &str| {
                std::fs::read_link(p.join(f))
                    .map(|l| l.display().to_string())
                    .unwrap_or_default()
            };
            if cmdline.contains(&root)
                || link("root").starts_with(&root)
                || link("cwd").starts_with(&root)
            {
                found.push(format!("{name}: {cmdline}"));
            }
        }
        found
    }
}

type Lines = Arc<Mutex<Vec<String>>>;

fn collector() -> (Lines, impl FnMut(&str)) {
    let lines: Lines = Arc::default();
    let l2 = lines.clone();
    (lines, move |l: &str| l2.lock().unwrap().push(l.to_owned()))
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn bud_streams_push_matches_registry_and_labels_show() {
    if !tools_present() {
        return;
    }
    let reg = TestRegistry::start();
    let eng = Engine::new();
    let version = eng.buildah.version().await.expect("buildah --version");
    assert!(version.starts_with("buildah version "), "{version}");
    let ctx = eng.context(
        "two-layers",
        &format!(
            "FROM {BASE}\nRUN echo one > /one && echo first-layer-done\nRUN cat /one > /two && echo second-layer-done\n"
        ),
    );
    let lbl = labels(&[
        ("com.redhat.component", "foo-container"),
        ("name", "foo"),
        ("version", "1.0"),
        ("release", "1"),
        ("description", "two words = spaces"),
    ]);
    let dockerfile = ctx.join("Dockerfile");
    let mut req = BudRequest::new(&ctx, &dockerfile, "localhost/foo:build");
    req.labels = &lbl;
    let cancel = CancellationToken::new();

    // Lines must arrive while buildah runs, not at the end: record when each came.
    let start = Instant::now();
    let stamps: Arc<Mutex<Vec<(Duration, String)>>> = Arc::default();
    let s2 = stamps.clone();
    let id = eng
        .buildah
        .bud(&req, &cancel, move |l| {
            s2.lock().unwrap().push((start.elapsed(), l.to_owned()))
        })
        .await
        .expect("bud");
    let total = start.elapsed();
    let stamps = stamps.lock().unwrap().clone();
    let steps: Vec<_> = stamps
        .iter()
        .filter(|(_, l)| l.starts_with("STEP "))
        .collect();
    // FROM, 2x RUN, then buildah 1.28 makes one LABEL step per --label.
    assert_eq!(steps.len(), 3 + lbl.len(), "STEP lines: {stamps:?}");
    assert!(stamps.iter().any(|(_, l)| l == "second-layer-done"));
    assert!(
        steps[0].0 < total.saturating_sub(Duration::from_millis(100)),
        "first STEP line arrived only at the end ({:?} of {total:?})",
        steps[0].0
    );
    println!("bud: {total:?}, image {id}, {} lines", stamps.len());

    let info = eng
        .buildah
        .inspect("localhost/foo:build")
        .await
        .expect("inspect");
    assert_eq!(info.id, id);
    assert_eq!(info.config_digest, id);
    assert_eq!(info.labels["name"], "foo");
    assert_eq!(info.labels["description"], "two words = spaces");
    assert_eq!(info.architecture, "amd64");
    assert_eq!(info.manifest_media_type, DOCKER_MANIFEST_V2);
    assert_eq!(info.diff_ids.len(), 3, "busybox layer + 2 RUN layers");

    // Push and compare with what the registry serves.
    let registry = Registry::new(&reg.host_port(), true, None).unwrap();
    let dest = registry.pullspec("foo", "unique-1-x86_64");
    let (push_lines, sink) = collector();
    let t = Instant::now();
    let digest = eng
        .buildah
        .push(
            "localhost/foo:build",
            &dest,
            &PushOptions {
                tls_verify: registry.tls_verify(),
                ..Default::default()
            },
            &cancel,
            sink,
        )
        .await
        .expect("push");
    println!("push: {:?}, digest {digest}", t.elapsed());
    assert!(
        push_lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("Writing manifest"))
    );
    let client = registry.client().unwrap();
    let head = client
        .manifest_head("foo", "unique-1-x86_64")
        .await
        .unwrap()
        .expect("manifest in registry");
    assert_eq!(head.digest, digest);
    assert_eq!(head.media_type, DOCKER_MANIFEST_V2);
    assert_eq!(
        client
            .manifest_digest("foo", digest.as_str())
            .await
            .unwrap(),
        Some(digest.clone())
    );
    assert_eq!(client.manifest_digest("foo", "nope").await.unwrap(), None);
    assert_eq!(client.manifest_digest("nope", "x").await.unwrap(), None);

    // skopeo sees the labels and the digest.
    let out = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .arg(format!("docker://{dest}"))
        .output()
        .expect("skopeo");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["Digest"], digest.as_str());
    assert_eq!(v["Labels"]["com.redhat.component"], "foo-container");
    assert_eq!(v["Labels"]["version"], "1.0");
    assert_eq!(v["Labels"]["description"], "two words = spaces");

    // Floating tags by re-tagging in the registry: same digest.
    let tagged = client
        .tag("foo", "unique-1-x86_64", "latest")
        .await
        .unwrap();
    assert_eq!(tagged.digest, digest);
    assert_eq!(
        client.manifest_digest("foo", "latest").await.unwrap(),
        Some(digest.clone())
    );

    // A 2-arch manifest list over two pushed images (the base image plays the second arch).
    let base_digest = eng
        .buildah
        .push(
            BASE,
            &registry.pullspec("foo", "unique-1-aarch64"),
            &PushOptions {
                tls_verify: false,
                ..Default::default()
            },
            &cancel,
            |_| {},
        )
        .await
        .expect("push base");
    let base_head = client
        .manifest_head("foo", "unique-1-aarch64")
        .await
        .unwrap()
        .unwrap();
    let list = client
        .put_manifest_list(
            "foo",
            "unique-1",
            &[
                ManifestEntry {
                    digest: head.digest.clone(),
                    size: head.size,
                    media_type: head.media_type.clone(),
                    arch: "x86_64".into(),
                },
                ManifestEntry {
                    digest: base_digest.clone(),
                    size: base_head.size,
                    media_type: base_head.media_type.clone(),
                    arch: "aarch64".into(),
                },
            ],
        )
        .await
        .expect("manifest list");
    assert_eq!(list.media_type, DOCKER_MANIFEST_LIST);
    let list_head = client
        .manifest_head("foo", "unique-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(list_head.digest, list.digest);
    assert_eq!(list_head.media_type, DOCKER_MANIFEST_LIST);
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{}", registry.pullspec("foo", "unique-1")))
        .output()
        .expect("skopeo");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let raw: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(raw["manifests"][0]["digest"], digest.as_str());
    assert_eq!(raw["manifests"][1]["platform"]["architecture"], "arm64");
}

#[tokio::test]
async fn failing_run_names_the_step() {
    if !tools_present() {
        return;
    }
    let eng = Engine::new();
    let ctx = eng.context(
        "fails",
        &format!("FROM {BASE}\nRUN echo before\nRUN echo about to fail && \\\n    false\n"),
    );
    let dockerfile = ctx.join("Dockerfile");
    let req = BudRequest::new(&ctx, &dockerfile, "localhost/fails:1");
    let (lines, sink) = collector();
    let err = eng
        .buildah
        .bud(&req, &CancellationToken::new(), sink)
        .await
        .expect_err("RUN false must fail");
    println!("failure: {err:?}");
    match &err {
        EngineError::Failed {
            reason,
            status,
            tail,
        } => {
            assert_eq!(reason, "RUN exit status 1: echo about to fail && false");
            assert_eq!(*status, Some(1));
            assert!(tail.iter().any(|l| l == "about to fail"));
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    let f = err.to_fault();
    assert_eq!(f.code, 2001);
    assert_eq!(
        f.message,
        "Image build failed. RUN exit status 1: echo about to fail && false"
    );
    let lines = lines.lock().unwrap().clone();
    assert!(
        lines.iter().any(|l| l.starts_with("STEP 3/3: RUN")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("building at STEP")),
        "{lines:?}"
    );
    // --force-rm: no working container left behind.
    assert_eq!(eng.buildah_sync(&["containers", "--quiet"]), "");

    // A missing base image: buildah's own message.
    let ctx = eng.context("nobase", "FROM localhost/does-not-exist:1\nRUN true\n");
    let dockerfile = ctx.join("Dockerfile");
    let req = BudRequest::new(&ctx, &dockerfile, "localhost/nobase:1");
    let err = eng
        .buildah
        .bud(&req, &CancellationToken::new(), |_| {})
        .await
        .expect_err("missing base");
    println!("missing base: {}", err.reason());
    assert!(
        err.reason().contains("localhost/does-not-exist:1"),
        "{err:?}"
    );
}

#[tokio::test]
async fn cancel_kills_the_build_tree() {
    if !tools_present() {
        return;
    }
    let eng = Engine::new();
    let ctx = eng.context("sleeps", &format!("FROM {BASE}\nRUN sleep 30\n"));
    let dockerfile = ctx.join("Dockerfile");
    let req = BudRequest::new(&ctx, &dockerfile, "localhost/sleeps:1");
    let cancel = CancellationToken::new();
    let started = Arc::new(tokio::sync::Notify::new());
    let s2 = started.clone();
    let c2 = cancel.clone();
    let canceler = tokio::spawn(async move {
        s2.notified().await;
        // Let the RUN actually start (chroot setup, sleep running).
        tokio::time::sleep(Duration::from_millis(1500)).await;
        c2.cancel();
        Instant::now()
    });
    let result = eng
        .buildah
        .bud(&req, &cancel, |l| {
            if l.contains("RUN sleep 30") {
                started.notify_one();
            }
        })
        .await;
    let canceled_at = canceler.await.unwrap();
    let took = canceled_at.elapsed();
    println!("cancel -> return: {took:?}");
    assert_eq!(result, Err(EngineError::Canceled));
    assert!(took < Duration::from_secs(5), "cancel took {took:?}");
    assert_eq!(EngineError::Canceled.to_fault().code, 2002);
    let left = eng.leftover_processes();
    assert!(left.is_empty(), "processes left: {left:?}");

    // Same for a time limit.
    let mut req = BudRequest::new(&ctx, &dockerfile, "localhost/sleeps:2");
    req.timeout = Some(Duration::from_secs(3));
    let t = Instant::now();
    let result = eng
        .buildah
        .bud(&req, &CancellationToken::new(), |_| {})
        .await;
    println!("time limit 3 s -> return after {:?}", t.elapsed());
    assert!(
        matches!(result, Err(EngineError::TimedOut { limit, .. }) if limit == Duration::from_secs(3)),
        "{result:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(8));
    let left = eng.leftover_processes();
    assert!(left.is_empty(), "processes left: {left:?}");
    eng.buildah.rm_containers().await.expect("rm --all");
    assert_eq!(eng.buildah_sync(&["containers", "--quiet"]), "");
}

#[tokio::test]
async fn second_build_uses_the_layer_cache() {
    if !tools_present() {
        return;
    }
    let eng = Engine::new();
    let ctx = eng.context(
        "cached",
        &format!(
            "FROM {BASE}\nRUN sleep 2 && echo a > /a\nRUN sleep 1 && echo b > /b\nLABEL x=y\n"
        ),
    );
    let dockerfile = ctx.join("Dockerfile");
    let lbl = labels(&[("release", "1")]);
    let mut req = BudRequest::new(&ctx, &dockerfile, "localhost/cached:1");
    req.labels = &lbl;
    let cancel = CancellationToken::new();

    let (first_lines, sink) = collector();
    let t = Instant::now();
    let id1 = eng
        .buildah
        .bud(&req, &cancel, sink)
        .await
        .expect("first bud");
    let first = t.elapsed();

    let (second_lines, sink) = collector();
    let t = Instant::now();
    let id2 = eng
        .buildah
        .bud(&req, &cancel, sink)
        .await
        .expect("second bud");
    let second = t.elapsed();
    println!("first build {first:?}, second build (cached) {second:?}");

    assert!(
        !first_lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("Using cache"))
    );
    let second_lines = second_lines.lock().unwrap();
    let cached = second_lines
        .iter()
        .filter(|l| l.contains("Using cache"))
        .count();
    assert!(cached >= 2, "{second_lines:?}");
    assert_eq!(id1, id2);
    assert!(
        second * 2 < first,
        "cached build not much faster: {first:?} vs {second:?}"
    );
}

/// A stand-in for buildah (a shell script) to exercise the process handling without the tools.
fn fake_buildah(dir: &Path, script: &str) -> Buildah {
    use std::os::unix::fs::PermissionsExt as _;
    let bin = dir.join("fake-buildah");
    std::fs::write(&bin, format!("#!/bin/sh\n{script}\n")).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut config = BuildahConfig::with_state_dir(&dir.join("state"));
    config.binary = bin;
    // These tests check the process-group handling by host pids the script writes down; inside
    // the private PID namespace `$!` would be a namespace pid, meaningless out here.
    config.private_pid = false;
    Buildah::new(config)
}

/// Whether `pid` is still a live (non-zombie) process.
fn alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .is_some_and(|(_, r)| !r.trim_start().starts_with('Z'))
    })
}

#[tokio::test]
async fn sigterm_ignored_means_sigkill_after_the_grace() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("child.pid");
    // Ignored signals stay ignored across exec, so the sleep ignores SIGTERM too.
    let b = fake_buildah(
        dir.path(),
        &format!(
            "trap '' TERM\necho 'STEP 1/1: RUN sleep'\nsleep 60 &\necho $! > {}\nwait",
            pidfile.display()
        ),
    );
    let ctx = dir.path();
    let df = dir.path().join("Dockerfile");
    let req = BudRequest::new(ctx, &df, "localhost/x:1");
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    let (lines, sink) = collector();
    let t = Instant::now();
    let r = tokio::join!(b.bud(&req, &cancel, sink), async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        c2.cancel();
    })
    .0;
    let took = t.elapsed();
    println!("SIGTERM ignored: canceled after {took:?}");
    assert_eq!(r, Err(EngineError::Canceled));
    assert!(took >= Duration::from_millis(2400), "no grace: {took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(lines.lock().unwrap().as_slice(), ["STEP 1/1: RUN sleep"]);
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    assert!(!alive(pid.trim()), "grandchild {pid} survived");
}

#[tokio::test]
async fn a_stray_child_holding_the_pipes_does_not_hang_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("child.pid");
    let b = fake_buildah(
        dir.path(),
        &format!("sleep 60 &\necho $! > {}\necho removed", pidfile.display()),
    );
    let t = Instant::now();
    b.rm_containers().await.expect("exit status 0");
    let took = t.elapsed();
    println!("stray child: returned after {took:?}");
    assert!(took < Duration::from_secs(4), "{took:?}");
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    while alive(pid.trim()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!alive(pid.trim()), "stray {pid} survived");
}

#[tokio::test]
async fn failures_without_an_error_line_and_missing_binaries() {
    let dir = tempfile::tempdir().unwrap();
    let b = fake_buildah(dir.path(), "echo some output\necho last words >&2\nexit 3");
    match b.rm_containers().await {
        Err(EngineError::Failed { reason, status, .. }) => {
            assert_eq!(reason, "buildah rm --all exited with status 3: last words");
            assert_eq!(status, Some(3));
        }
        other => panic!("{other:?}"),
    }
    // A token canceled before the start: nothing runs.
    let df = dir.path().join("Dockerfile");
    let req = BudRequest::new(dir.path(), &df, "localhost/x:1");
    let cancel = CancellationToken::new();
    cancel.cancel();
    assert_eq!(
        b.bud(&req, &cancel, |_| panic!("ran")).await,
        Err(EngineError::Canceled)
    );
    assert!(PushOptions::default().tls_verify);

    let mut config = BuildahConfig::with_state_dir(dir.path());
    config.binary = dir.path().join("no-such-buildah");
    let err = Buildah::new(config).rm_containers().await.unwrap_err();
    assert!(matches!(err, EngineError::Spawn { .. }), "{err:?}");
    assert!(
        err.to_fault()
            .message
            .starts_with("Image build failed. cannot run ")
    );
}
