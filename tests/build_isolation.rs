//! What a Dockerfile's RUN can reach on a builder, with real parts only: the stock koji CLI
//! against our hub, a `containerbuild builder` with buildah (chroot isolation), the fixture base
//! image on one `docker-registry`, and the build pushed to a second `docker-registry` that
//! requires a login (htpasswd), given to the builder as `--registry-authfile`.
//!
//! One build whose RUN tries to read the registry auth file, the builder's password file and the
//! hub's database by their host paths, searches the filesystem for them, and dumps the command
//! line, environment and root of every process it can see. The test then proves: the RUN ran
//! in a PID and a mount namespace other than the builder's (it prints them into the build log);
//! it saw only a handful of processes, none of them the builder; none of the secrets (registry
//! password, its base64 auth token, the builder's password) appears in the build logs, in any
//! file of the hub's data directory (database, task outputs, CG metadata), in the hub's or the
//! builder's own log, or in the task results the hub serves.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::fixtures::{Fixtures, GitServer, TestRegistry, free_port, http_status, tools_present};
use common::{ADMIN, BuilderProc, Hub, host_password_file, task_state, wait_for};

const TARGET: &str = "f40-candidate";

/// `docker-registry` with htpasswd authentication on 127.0.0.1:<free port>; stopped by pid.
struct AuthRegistry {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl AuthRegistry {
    fn start(user: &str, password: &str) -> AuthRegistry {
        let dir = tempfile::Builder::new()
            .prefix("cb-auth-registry-")
            .tempdir()
            .expect("tempdir");
        // bcrypt, the only hash docker-registry's htpasswd accepts (libcrypt through Python).
        let hash = Command::new("python3")
            .args([
                "-W",
                "ignore",
                "-c",
                "import crypt, sys; print(crypt.crypt(sys.stdin.readline().strip(), \
                 crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=4096)))",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write as _;
                c.stdin
                    .take()
                    .expect("stdin")
                    .write_all(format!("{password}\n").as_bytes())?;
                c.wait_with_output()
            })
            .expect("bcrypt hash");
        let hash = String::from_utf8_lossy(&hash.stdout).trim().to_owned();
        assert!(hash.starts_with("$2"), "no bcrypt hash: {hash:?}");
        let htpasswd = dir.path().join("htpasswd");
        std::fs::write(&htpasswd, format!("{user}:{hash}\n")).expect("write htpasswd");
        let port = free_port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: 127.0.0.1:{port}\nauth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                dir.path().join("data").display(),
                htpasswd.display()
            ),
        )
        .expect("write registry config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("log");
        let log2 = log.try_clone().expect("clone log");
        let mut child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .expect("start docker-registry");
        let deadline = Instant::now() + Duration::from_secs(15);
        while http_status(port, "GET", "/v2/") != Some(401) {
            if let Ok(Some(st)) = child.try_wait() {
                panic!(
                    "docker-registry exited ({st}): {}",
                    std::fs::read_to_string(dir.path().join("registry.log")).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "auth registry did not answer 401 on /v2/"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        AuthRegistry {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for AuthRegistry {
    fn drop(&mut self) {
        // SAFETY: signals the registry this value started, by its pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// Every regular file below `dir` (symlinks not followed).
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => todo.push(e.path()),
                Ok(t) if t.is_file() => out.push(e.path()),
                _ => {}
            }
        }
    }
    out
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn ns(pid: &str, which: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{which}"))
        .map(|p| p.display().to_string())
        .unwrap_or_else(|e| panic!("readlink /proc/{pid}/ns/{which}: {e}"))
}

#[test]
fn run_cannot_read_builder_credentials_and_has_own_namespaces() {
    if !tools_present() || common::koji_bin().is_none() {
        return;
    }
    let Some(hub) = Hub::start() else { return };
    let registry = TestRegistry::start();
    let fixtures = Fixtures::build(&registry.host_port());
    let git = GitServer::start(&fixtures.repos_dir);
    let reg_user = "cbpush";
    let reg_password = common::random_password();
    let auth_reg = AuthRegistry::start(reg_user, &reg_password);
    let auth_host = format!("127.0.0.1:{}", auth_reg.port);
    let token = b64(&format!("{reg_user}:{reg_password}"));

    let tmp = tempfile::Builder::new()
        .prefix("cb-isolation-")
        .tempdir()
        .expect("tempdir");
    let authfile = tmp.path().join("registry-auth.json");
    std::fs::write(
        &authfile,
        serde_json::json!({"auths": {auth_host.clone(): {"auth": token}}}).to_string(),
    )
    .expect("write authfile");

    hub.koji_ok(&["add-tag", "--arches", "x86_64", "f40-build"]);
    hub.koji_ok(&["add-tag", "f40"]);
    hub.koji_ok(&["add-target", TARGET, "f40-build", "f40"]);
    hub.koji_ok(&["add-pkg", "--owner", ADMIN, "f40", "isolation-container"]);
    let root = tmp.path().join("buildah");
    let builder = BuilderProc::start(
        &hub,
        "iso.test",
        &["x86_64"],
        &[
            "--registry",
            &auth_host,
            "--registry-insecure",
            "--registry-authfile",
            authfile.to_str().expect("utf-8"),
            "--buildah-root",
            root.to_str().expect("utf-8"),
        ],
    );
    hub.koji_ok(&["grant-cg-access", "iso.test", "atomic-reactor", "--new"]);
    let builder_password = std::fs::read_to_string(host_password_file(&hub, "iso.test"))
        .expect("read builder password")
        .trim()
        .to_owned();
    let hub_db = hub.data_dir().join("containerbuild.sqlite");

    // The RUN: everything it reads goes into the build log, which the test then searches.
    let paths = [
        authfile.clone(),
        host_password_file(&hub, "iso.test"),
        hub_db.clone(),
    ]
    .iter()
    .map(|p| p.display().to_string())
    .collect::<Vec<_>>()
    .join(" ");
    let dockerfile = format!(
        "FROM {base}\n\
         LABEL com.redhat.component=isolation-container name=isolation version=1.0\n\
         RUN echo \"ISOLATION-NS pid=$(readlink /proc/self/ns/pid) mnt=$(readlink /proc/self/ns/mnt) \
         procs=$(ls -d /proc/[0-9]* | wc -l)\"; \
         for f in {paths}; do echo \"read $f\"; cat \"$f\"; done; \
         find / -xdev \\( -name 'registry-auth*' -o -name '*.password' -o -name '*.sqlite' \\) \
         2>/dev/null; \
         for p in /proc/[0-9]*; do echo \"== $p: $(tr '\\000' ' ' < $p/cmdline)\"; \
         tr '\\000' '\\n' < $p/environ; ls $p/root/ $p/cwd/; done 2>&1; \
         cat /proc/1/environ /proc/1/root/etc/hostname; echo ISOLATION-DONE\n",
        base = fixtures.base_ref()
    );
    let src = fixtures.one_commit_repo(&git, "isolation", &[("Dockerfile", &dockerfile)]);
    let out = hub.koji_ok(&[
        "call",
        "--python",
        "buildContainer",
        &format!("'{src}'"),
        &format!("'{TARGET}'"),
        "{'git_branch': 'main'}",
    ]);
    let id: i64 = out.trim().parse().expect("task id");
    let state = wait_for(Duration::from_secs(600), "the build to end", || {
        let (st, _) = task_state(&hub, id);
        (st >= 2 && st != 4).then_some(st)
    });

    // Everything the hub stores: its data directory (database, task outputs, metadata).
    let mut stored = Vec::new();
    for f in files(&hub.data_dir()) {
        stored.push((f.clone(), std::fs::read(&f).unwrap_or_default()));
    }
    let logs: String = stored
        .iter()
        .filter(|(p, _)| p.extension().is_some_and(|e| e == "log"))
        .map(|(_, d)| String::from_utf8_lossy(d).into_owned())
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(
        state,
        2,
        "the build failed; logs:\n{logs}\nbuilder:\n{}",
        builder.log()
    );
    assert!(
        logs.contains("ISOLATION-DONE"),
        "the RUN did not finish:\n{logs}"
    );

    // Namespaces: printed by the RUN, compared with the builder's.
    let line = logs
        .lines()
        .find(|l| l.starts_with("ISOLATION-NS "))
        .unwrap_or_else(|| panic!("no ISOLATION-NS line in:\n{logs}"));
    eprintln!("{line}");
    let builder_pid = builder.pid().expect("builder pid").to_string();
    let (b_pid, b_mnt) = (ns(&builder_pid, "pid"), ns(&builder_pid, "mnt"));
    eprintln!("builder: pid={b_pid} mnt={b_mnt}");
    let field = |k: &str| {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("no {k}= in {line}"))
            .to_owned()
    };
    assert!(field("pid").starts_with("pid:["), "{line}");
    assert_ne!(
        field("pid"),
        b_pid,
        "RUN shares the builder's PID namespace"
    );
    assert_ne!(
        field("mnt"),
        b_mnt,
        "RUN shares the builder's mount namespace"
    );
    let procs: usize = field("procs").parse().expect("procs");
    assert!(procs < 20, "RUN sees {procs} processes");
    assert!(
        !logs.contains("--password-file"),
        "RUN saw the builder's command line"
    );

    // No secret anywhere the hub stores or serves, nor in the hub's and builder's logs.
    let secrets = [
        ("registry password", reg_password.as_str()),
        ("registry auth token", token.as_str()),
        ("builder password", builder_password.as_str()),
    ];
    let results = hub.python_ok(&format!(
        r#"
import koji, os
s = koji.ClientSession(os.environ['KOJI_URL'])
for t in [{id}] + [c['id'] for c in s.getTaskChildren({id})]:
    print(repr(s.getTaskInfo(t, request=True)), repr(s.getTaskResult(t, raise_fault=False)))
    for f in s.listTaskOutput(t):
        print(f, s.downloadTaskOutput(t, f).decode('utf-8', 'replace'))
"#
    ));
    assert!(
        results.contains("ISOLATION-DONE"),
        "task outputs not served"
    );
    let builder_log = builder.log();
    let hub_log = hub.log();
    for (what, secret) in secrets {
        assert!(secret.len() >= 8, "{what} too short to search for");
        for (path, data) in &stored {
            assert!(!contains(data, secret), "{what} in {}", path.display());
        }
        assert!(!results.contains(secret), "{what} served by the hub");
        assert!(!builder_log.contains(secret), "{what} in the builder's log");
        assert!(!hub_log.contains(secret), "{what} in the hub's log");
    }
    // The push really used the credentials: the registry refuses anonymous clients.
    assert_eq!(http_status(auth_reg.port, "GET", "/v2/"), Some(401));
    assert!(
        results.contains(&auth_host),
        "the result names no repository in the authenticated registry:\n{results}"
    );
    drop(builder);
}
