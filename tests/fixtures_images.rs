//! The fixtures themselves: the RPMs, the `cb-base:1` image (busybox, dash, a working rpm and an
//! sqlite rpmdb where Fedora keeps it) pushed to a loopback registry, and the `plain` dist-git
//! repository, cloned over `git daemon` and built with buildah on top of that base.

#[path = "common/fixtures.rs"]
mod fixtures;

use std::path::Path;
use std::process::Command;

use fixtures::{Fixtures, GitServer, TestRegistry, buildah_cmd, output, run_ok, tools_present};

/// `rpm -qa` with the epoch when there is one: `cb-epoch-2:1.0-1`.
const NEVR: &str = "%{NAME}-%|EPOCH?{%{EPOCH}:}|%{VERSION}-%{RELEASE}\\n";

fn buildah(storage: &Path, args: &[&str]) -> String {
    run_ok(buildah_cmd(storage).args(args))
}

/// `buildah run --isolation chroot CTR -- ARGS...`
fn run_in(storage: &Path, ctr: &str, args: &[&str]) -> String {
    let mut full = vec!["run", "--isolation", "chroot", ctr, "--"];
    full.extend_from_slice(args);
    buildah(storage, &full)
}

fn lines(text: &str) -> Vec<&str> {
    let mut v: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    v.sort_unstable();
    v
}

#[test]
fn base_image_has_rpmdb_and_plain_layer_upgrades() {
    if !tools_present() {
        return;
    }
    let registry = TestRegistry::start();
    let fx = Fixtures::build(&registry.host_port());
    let base = fx.base_ref();

    // The RPMs, flat, with an epoch where the spec has one.
    for f in [
        "cb-filesystem-1.0-1.noarch.rpm",
        "cb-hello-1.0-1.noarch.rpm",
        "cb-hello-1.1-1.noarch.rpm",
        "cb-epoch-1.0-1.noarch.rpm",
        "cb-extra-1.0-1.noarch.rpm",
    ] {
        fx.rpm(f);
    }
    let epoch = run_ok(
        Command::new("rpm")
            .args(["-qp", "--qf", "%{EPOCH}"])
            .arg(fx.rpm("cb-epoch-1.0-1.noarch.rpm")),
    );
    assert_eq!(epoch, "2");

    // The pushed image, as the registry serves it.
    let inspect = run_ok(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        &format!("docker://{base}"),
    ]));
    assert!(
        inspect.contains(&format!("\"Digest\": \"{}\"", fx.base_digest)),
        "skopeo inspect does not show the pushed digest {}: {inspect}",
        fx.base_digest
    );

    // rpm inside the image, from a fresh storage that pulls the base from the registry.
    let storage = fx.scratch("buildah");
    let ctr = buildah(
        &storage,
        &[
            "from",
            "--quiet",
            "--tls-verify=false",
            &format!("docker://{base}"),
        ],
    );
    let qa = run_in(&storage, &ctr, &["rpm", "-qa", "--qf", NEVR]);
    assert_eq!(
        lines(&qa),
        ["cb-epoch-2:1.0-1", "cb-filesystem-1.0-1", "cb-hello-1.0-1"],
        "rpm -qa in the base image"
    );
    // The shell a Dockerfile RUN gets must reach the real rpm, not busybox's applet.
    let via_sh = run_in(
        &storage,
        &ctr,
        &[
            "/bin/sh",
            "-c",
            "rpm -q cb-hello && rpm --eval '%_dbpath %_db_backend' && cb-hello",
        ],
    );
    assert_eq!(
        lines(&via_sh),
        [
            "/usr/lib/sysimage/rpm sqlite",
            "cb-hello 1.0",
            "cb-hello-1.0-1.noarch"
        ]
    );
    let busybox = run_in(
        &storage,
        &ctr,
        &["sh", "-c", "echo hi | sed s/hi/ho/ && id -u"],
    );
    assert_eq!(lines(&busybox), ["0", "ho"]);

    // The rpmdb files, seen from the host through the container's root filesystem.
    let mnt = buildah(&storage, &["mount", &ctr]);
    let root = Path::new(&mnt);
    assert!(
        root.join("usr/lib/sysimage/rpm/rpmdb.sqlite").is_file(),
        "no /usr/lib/sysimage/rpm/rpmdb.sqlite in the image"
    );
    let link = std::fs::read_link(root.join("var/lib/rpm"))
        .unwrap_or_else(|e| panic!("/var/lib/rpm is not a symlink: {e}"));
    assert_eq!(link, Path::new("../../usr/lib/sysimage/rpm"));
    let host_qa = output(
        Command::new("rpm")
            .arg("--dbpath")
            .arg(root.join("usr/lib/sysimage/rpm"))
            .args(["-qa", "--qf", NEVR]),
    );
    assert!(
        host_qa.status.success(),
        "host rpm on the image's rpmdb: {}",
        String::from_utf8_lossy(&host_qa.stderr)
    );
    assert_eq!(
        lines(&String::from_utf8_lossy(&host_qa.stdout)),
        ["cb-epoch-2:1.0-1", "cb-filesystem-1.0-1", "cb-hello-1.0-1"],
        "host rpm -qa on the image's rpmdb"
    );
    buildah(&storage, &["umount", &ctr]);
    buildah(&storage, &["rm", &ctr]);

    // The plain dist-git repo over git://, at the commit make-repos.sh printed.
    let git = GitServer::start(&fx.repos_dir);
    let checkout = fx.scratch("plain");
    run_ok(
        Command::new("git")
            .args(["clone", "--quiet", "--branch", "main", &git.url("plain")])
            .arg(&checkout)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_TERMINAL_PROMPT", "0"),
    );
    let head = run_ok(
        Command::new("git")
            .arg("-C")
            .arg(&checkout)
            .args(["rev-parse", "HEAD"]),
    );
    assert_eq!(head, fx.sha("plain"));
    for name in [
        "plain",
        "multistage",
        "tags",
        "failing-run",
        "missing-label",
        "slow",
    ] {
        assert_eq!(fx.sha(name).len(), 40, "{name}");
    }
    let dockerfile = std::fs::read_to_string(checkout.join("Dockerfile")).expect("Dockerfile");
    assert!(
        dockerfile.starts_with(&format!("FROM {base}\n")),
        "{dockerfile}"
    );

    // Built on the base: cb-hello upgraded to 1.1, cb-extra added, the RPM files gone.
    buildah(
        &storage,
        &[
            "bud",
            "--quiet",
            "--isolation",
            "chroot",
            "--tls-verify=false",
            "-t",
            "localhost/plain:test",
            checkout.to_str().expect("utf-8 path"),
        ],
    );
    let ctr = buildah(&storage, &["from", "--quiet", "localhost/plain:test"]);
    let q = run_in(&storage, &ctr, &["rpm", "-q", "cb-hello", "cb-extra"]);
    assert_eq!(
        lines(&q),
        ["cb-extra-1.0-1.noarch", "cb-hello-1.1-1.noarch"],
        "rpm -q in the plain image"
    );
    let files = run_in(
        &storage,
        &ctr,
        &[
            "sh",
            "-c",
            "cb-hello; cat /etc/cb-plain-built; ls /tmp | wc -l",
        ],
    );
    assert_eq!(
        lines(&files),
        ["0", "cb-hello 1.1", "plain container built"]
    );
    buildah(&storage, &["rm", &ctr]);
}
