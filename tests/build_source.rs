//! `build::source` against real git: a repository served by `git daemon` on a loopback port the
//! test picks, checked out by commit id, branch, tag and other refs; the commit-on-branch check;
//! Koji's URL errors; `allowed_scms`; timeouts and cancel.
//!
//! Without `git daemon` the daemon tests print "skipping" and pass, except under CI (`CI` set),
//! where they fail.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use containerbuild::build::source::{
    AllowedScms, Git, ScmError, ScmUrl, checkout, verify_on_branch,
};

/// Runs git for the fixture, isolated from the user's and the system's configuration.
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

/// The `git-daemon` program itself: `git daemon` would run it as a child of `git`, and killing
/// `git` by pid would leave the daemon behind.
fn git_daemon_program() -> Option<PathBuf> {
    let out = Command::new("git").arg("--exec-path").output().ok()?;
    let program = Path::new(String::from_utf8_lossy(&out.stdout).trim()).join("git-daemon");
    (out.status.success() && program.exists()).then_some(program)
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// A repository with history on `main` and `other`, served by `git daemon`.
///
/// `main`: c1 (Dockerfile v1, sub/Dockerfile) <- c2 (Dockerfile v2, symlink `escape` -> /etc);
/// `other`: c1 <- c3 (other.txt); tag `v1` = c1; `refs/changes/1` = c4 (on no branch).
struct Fixture {
    tmp: tempfile::TempDir,
    daemon: Child,
    port: u16,
    c1: String,
    c2: String,
    c3: String,
    c4: String,
}

impl Fixture {
    /// None (after printing "skipping") when `git daemon` is missing outside CI.
    fn start() -> Option<Fixture> {
        let Some(daemon_program) = git_daemon_program() else {
            if std::env::var_os("CI").is_some() {
                panic!("git daemon is not available (install git)");
            }
            eprintln!("skipping: git daemon not available");
            return None;
        };
        let tmp = tempfile::tempdir().expect("tempdir");
        let work = tmp.path().join("work");
        std::fs::create_dir_all(work.join("sub")).unwrap();
        git(&work, &["init", "-q", "-b", "main"]);
        std::fs::write(work.join("Dockerfile"), "FROM scratch\nLABEL v=1\n").unwrap();
        std::fs::write(work.join("sub/Dockerfile"), "FROM scratch\nLABEL sub=1\n").unwrap();
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-q", "-m", "c1"]);
        let c1 = git(&work, &["rev-parse", "HEAD"]);
        git(&work, &["tag", "v1"]);
        git(&work, &["checkout", "-q", "-b", "other"]);
        std::fs::write(work.join("other.txt"), "other\n").unwrap();
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-q", "-m", "c3"]);
        let c3 = git(&work, &["rev-parse", "HEAD"]);
        git(&work, &["checkout", "-q", "-b", "detached", &c1]);
        std::fs::write(work.join("change.txt"), "change\n").unwrap();
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-q", "-m", "c4"]);
        let c4 = git(&work, &["rev-parse", "HEAD"]);
        git(&work, &["update-ref", "refs/changes/1", &c4]);
        git(&work, &["checkout", "-q", "main"]);
        git(&work, &["branch", "-q", "-D", "detached"]);
        std::fs::write(work.join("Dockerfile"), "FROM scratch\nLABEL v=2\n").unwrap();
        std::os::unix::fs::symlink("/etc", work.join("escape")).unwrap();
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-q", "-m", "c2"]);
        let c2 = git(&work, &["rev-parse", "HEAD"]);

        let srv = tmp.path().join("srv");
        std::fs::create_dir_all(&srv).unwrap();
        git(
            tmp.path(),
            &[
                "clone",
                "-q",
                "--mirror",
                work.to_str().unwrap(),
                srv.join("repo.git").to_str().unwrap(),
            ],
        );

        let port = free_port();
        let mut daemon = Command::new(daemon_program)
            .arg("--reuseaddr")
            .arg(format!("--base-path={}", srv.display()))
            .arg("--export-all")
            .arg("--listen=127.0.0.1")
            .arg(format!("--port={port}"))
            .arg(&srv)
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
        Some(Fixture {
            tmp,
            daemon,
            port,
            c1,
            c2,
            c3,
            c4,
        })
    }

    fn url(&self, rest: &str) -> String {
        format!("git://127.0.0.1:{}/repo.git{rest}", self.port)
    }

    fn dest(&self, name: &str) -> PathBuf {
        self.tmp.path().join("checkouts").join(name)
    }

    fn scm(&self, rest: &str) -> ScmUrl {
        ScmUrl::parse(&self.url(rest), &AllowedScms::allow_all()).expect("parse url")
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

fn text(log: &[u8]) -> String {
    String::from_utf8_lossy(log).into_owned()
}

#[test]
fn checkout_by_commit_id() {
    let Some(f) = Fixture::start() else { return };
    let dest = f.dest("sha");
    let mut log = Vec::new();
    let co = checkout(&f.scm(&format!("#{}", f.c2)), &dest, &mut log).expect("checkout");
    let log = text(&log);
    assert_eq!(co.commit, f.c2);
    assert_eq!(co.dir, dest);
    assert_eq!(co.source_dir, dest);
    assert_eq!(
        std::fs::read_to_string(dest.join("Dockerfile")).unwrap(),
        "FROM scratch\nLABEL v=2\n"
    );
    assert_eq!(git(&dest, &["rev-parse", "HEAD"]), f.c2);
    assert_eq!(git(&dest, &["status", "--porcelain"]), "");
    assert!(
        log.contains(&format!(
            "$ git clone --no-checkout -- {} {}\n",
            f.url(""),
            dest.display()
        )),
        "{log}"
    );
    assert!(log.contains("Cloning into"), "{log}");
    assert!(
        log.contains(&format!("$ git reset --hard {}\n", f.c2)),
        "{log}"
    );
    assert!(
        log.contains(&format!("HEAD is now at {}", &f.c2[..7])),
        "{log}"
    );
    assert!(!log.contains("git fetch"), "{log}");

    let mut log = Vec::new();
    verify_on_branch(&dest, &co.commit, "main", &mut log).expect("c2 is on main");
}

#[test]
fn checkout_by_branch_tag_short_id_and_ref() {
    let Some(f) = Fixture::start() else { return };
    let cases = [
        ("main", &f.c2, false),
        ("other", &f.c3, true),
        ("origin/other", &f.c3, false),
        ("v1", &f.c1, false),
        (&f.c1[..10], &f.c1, false),
        ("refs/changes/1", &f.c4, true),
    ];
    for (i, (rev, want, fetched)) in cases.into_iter().enumerate() {
        let dest = f.dest(&format!("rev{i}"));
        let mut log = Vec::new();
        let co = checkout(&f.scm(&format!("#{rev}")), &dest, &mut log)
            .unwrap_or_else(|e| panic!("{rev}: {e}\n{}", text(&log)));
        let log = text(&log);
        assert_eq!(&co.commit, want, "{rev}\n{log}");
        assert_eq!(git(&dest, &["rev-parse", "HEAD"]), *want, "{rev}");
        let remote_rev = rev.strip_prefix("origin/").unwrap_or(rev);
        assert_eq!(
            log.contains(&format!(
                "$ git fetch --end-of-options origin {remote_rev}\n"
            )),
            fetched,
            "{rev}\n{log}"
        );
    }
    // The branch's tree, not main's.
    assert!(f.dest("rev1").join("other.txt").exists());
    assert!(!f.dest("rev0").join("other.txt").exists());
}

#[test]
fn commit_must_be_on_the_branch() {
    let Some(f) = Fixture::start() else { return };
    let dest = f.dest("branch");
    let mut log = Vec::new();
    let co = checkout(&f.scm(&format!("#{}", f.c3)), &dest, &mut log).expect("checkout");
    assert_eq!(co.commit, f.c3);

    let err = verify_on_branch(&dest, &f.c3, "main", &mut log).unwrap_err();
    assert_eq!(
        err,
        ScmError::NotOnBranch(format!("Commit {} is not reachable in branch main", f.c3))
    );
    assert_eq!(err.fault().code, 1005);
    verify_on_branch(&dest, &f.c3, "other", &mut log).expect("c3 is on other");
    verify_on_branch(&dest, &f.c1, "other", &mut log).expect("c1 is an ancestor of other");
    let err = verify_on_branch(&dest, &f.c4, "main", &mut log).unwrap_err();
    assert!(matches!(err, ScmError::NotOnBranch(_)), "{err}");

    // A branch created after the clone is fetched.
    git(
        &f.tmp.path().join("srv/repo.git"),
        &["branch", "late", &f.c3],
    );
    let mut log = Vec::new();
    verify_on_branch(&dest, &f.c3, "late", &mut log).expect("c3 is on late");
    assert!(
        text(&log).contains(
            "$ git fetch --end-of-options origin +refs/heads/late:refs/remotes/origin/late\n"
        ),
        "{}",
        text(&log)
    );

    // A branch the repository does not have.
    let mut log = Vec::new();
    let err = verify_on_branch(&dest, &f.c3, "nope", &mut log).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Error running GIT command \"git fetch --end-of-options origin \
         +refs/heads/nope:refs/remotes/origin/nope\", see checkout-for-labels.log for details"
    );
    assert_eq!(err.fault().code, 1005);
    assert!(
        text(&log).contains("couldn't find remote ref"),
        "{}",
        text(&log)
    );

    // Arguments git must never see as options.
    let err = verify_on_branch(&dest, &f.c3, "--upload-pack=x", &mut log).unwrap_err();
    assert_eq!(err.to_string(), "Invalid git branch name: --upload-pack=x");
    assert_eq!(err.fault().code, 1000);
    let err = verify_on_branch(&dest, "--all", "main", &mut log).unwrap_err();
    assert_eq!(err.to_string(), "Invalid commit id: --all");
}

#[test]
fn failed_checkouts() {
    let Some(f) = Fixture::start() else { return };
    // A revision the server does not have.
    let zeros = "0".repeat(40);
    let dest = f.dest("unknown");
    let mut log = Vec::new();
    let err = checkout(&f.scm(&format!("#{zeros}")), &dest, &mut log).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "Error running GIT command \"git fetch --end-of-options origin {zeros}\", see \
             checkout-for-labels.log for details"
        )
    );
    assert_eq!(err.fault().code, 1005);
    assert!(
        text(&log).contains("git exited with exit status: 128"),
        "{}",
        text(&log)
    );

    // A repository the server does not have.
    let dest = f.dest("missing");
    let url = format!("git://127.0.0.1:{}/missing.git", f.port);
    let scm = ScmUrl::parse(&format!("{url}#main"), &AllowedScms::allow_all()).unwrap();
    let mut log = Vec::new();
    let err = checkout(&scm, &dest, &mut log).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "Error running GIT command \"git clone --no-checkout -- {url} {}\", see \
             checkout-for-labels.log for details",
            dest.display()
        )
    );
    assert!(text(&log).contains("fatal:"), "{}", text(&log));

    // The destination must be new (or empty).
    let dest = f.dest("taken");
    std::fs::create_dir_all(&dest).unwrap();
    std::fs::write(dest.join("x"), "x").unwrap();
    let err = checkout(&f.scm("#main"), &dest, &mut Vec::new()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("Error running GIT command \"git clone"),
        "{err}"
    );

    // A custom log name appears in the error.
    let err = Git::new()
        .log_name("other.log")
        .checkout(
            &f.scm(&format!("#{zeros}")),
            &f.dest("named"),
            &mut Vec::new(),
        )
        .unwrap_err();
    assert!(
        err.to_string().ends_with(", see other.log for details"),
        "{err}"
    );
}

#[test]
fn module_directory() {
    let Some(f) = Fixture::start() else { return };
    let dest = f.dest("module");
    let co = checkout(&f.scm("?sub#main"), &dest, &mut Vec::new()).expect("checkout");
    assert_eq!(co.source_dir, dest.join("sub"));
    assert_eq!(
        std::fs::read_to_string(co.source_dir.join("Dockerfile")).unwrap(),
        "FROM scratch\nLABEL sub=1\n"
    );
    // A module that is a symlink out of the checkout, or missing, is refused.
    for module in ["escape", "absent"] {
        let err = checkout(
            &f.scm(&format!("?{module}#main")),
            &f.dest(module),
            &mut Vec::new(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "Module {module} is not a directory in {} at {}",
                f.url(&format!("?{module}#main")),
                f.c2
            )
        );
    }
}

#[test]
fn allowed_scms_with_the_served_repository() {
    let Some(f) = Fixture::start() else { return };
    let url = f.url("#main");
    let allowed = AllowedScms::parse("127.0.0.1*:/repo.git");
    let scm = ScmUrl::parse(&url, &allowed).expect("allowed");
    checkout(&scm, &f.dest("allowed"), &mut Vec::new()).expect("checkout");
    for config in ["!127.0.0.1*:/repo.git *:*", "127.0.0.1*:/other.git", ""] {
        let err = ScmUrl::parse(&url, &AllowedScms::parse(config)).unwrap_err();
        assert_eq!(
            err,
            ScmError::NotAllowed(format!(
                "127.0.0.1:{}:/repo.git is not in the list of allowed SCMs",
                f.port
            )),
            "{config:?}"
        );
        assert_eq!(err.fault().code, 1005);
    }
}

/// A loopback port that accepts connections (the kernel's backlog) and never answers.
fn silent_server() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().unwrap().port();
    (l, port)
}

/// Processes whose command line mentions `needle` (zombies have none).
fn processes_with(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(needle) {
                found.push(cmdline);
            }
        }
    }
    found
}

#[test]
fn git_commands_time_out() {
    if Command::new("git").arg("--version").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "git is not installed");
        eprintln!("skipping: git not installed");
        return;
    }
    let (_server, port) = silent_server();
    let tmp = tempfile::tempdir().unwrap();
    let scm = ScmUrl::parse(
        &format!("git://127.0.0.1:{port}/hang.git#main"),
        &AllowedScms::allow_all(),
    )
    .unwrap();
    let mut log = Vec::new();
    let started = Instant::now();
    let err = Git::new()
        .timeout(Duration::from_secs(1))
        .checkout(&scm, &tmp.path().join("co"), &mut log)
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        err.to_string(),
        format!(
            "Timed out after 1 s running GIT command \"git clone --no-checkout -- \
             git://127.0.0.1:{port}/hang.git {}\", see checkout-for-labels.log for details",
            tmp.path().join("co").display()
        )
    );
    assert_eq!(err.fault().code, 1005);
    assert_eq!(
        processes_with(&format!("127.0.0.1:{port}/")),
        Vec::<String>::new()
    );
    assert!(
        text(&log).ends_with("timed out after 1 s; killed\n"),
        "{}",
        text(&log)
    );
}

#[test]
fn cancel_flag_stops_git() {
    if Command::new("git").arg("--version").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "git is not installed");
        eprintln!("skipping: git not installed");
        return;
    }
    let (_server, port) = silent_server();
    let tmp = tempfile::tempdir().unwrap();
    let scm = ScmUrl::parse(
        &format!("git://127.0.0.1:{port}/hang.git#main"),
        &AllowedScms::allow_all(),
    )
    .unwrap();
    let flag = Arc::new(AtomicBool::new(false));
    let raise = {
        let flag = flag.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            flag.store(true, Ordering::Relaxed);
        })
    };
    let started = Instant::now();
    let mut log = Vec::new();
    let err = Git::new()
        .cancel_flag(flag)
        .checkout(&scm, &tmp.path().join("co"), &mut log)
        .unwrap_err();
    raise.join().unwrap();
    assert_eq!(err, ScmError::Canceled);
    assert_eq!(
        processes_with(&format!("127.0.0.1:{port}/")),
        Vec::<String>::new()
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(text(&log).ends_with("canceled; killed\n"), "{}", text(&log));
}

#[test]
fn koji_url_errors() {
    let all = AllowedScms::allow_all();
    let cases = [
        (
            "https://src.example.com/containers/foo.git#abc",
            "Invalid scheme in scm url. Valid schemes are: git+http:// git+https:// git+ssh:// \
             git://",
        ),
        (
            "git://src.example.com/containers/foo.git",
            "Unable to parse SCM URL: git://src.example.com/containers/foo.git . Could not find \
             the fragment element.",
        ),
        (
            "git+https://user:secret@src.example.com/containers/foo.git#abc",
            "username:password format not supported: user:***",
        ),
    ];
    for (url, msg) in cases {
        let err = ScmUrl::parse(url, &all).unwrap_err();
        assert_eq!(err, ScmError::InvalidUrl(msg.to_string()), "{url}");
        let fault = err.fault();
        assert_eq!((fault.code, fault.message.as_str()), (1000, msg));
    }
    // A user name alone is fine, and git+ssh:// needs one (Koji's checkout rule).
    let scm = ScmUrl::parse("git+ssh://src.example.com/containers/foo.git#abc", &all).unwrap();
    let err = checkout(&scm, Path::new("/nonexistent/never"), &mut Vec::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "No user specified for repository access scheme: git+ssh://"
    );
    assert_eq!(err.fault().code, 1005);
    let scm = ScmUrl::parse("git+ssh://me@src.example.com/containers/foo.git#abc", &all).unwrap();
    assert_eq!(scm.user(), Some("me"));
    assert_eq!(
        scm.clone_url().unwrap(),
        "git+ssh://me@src.example.com/containers/foo.git"
    );
}
