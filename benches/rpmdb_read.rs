//! Native rpmdb read vs `rpm -qa`: the package list of the largest sqlite fixture
//! (`../shared/fixtures/rpmdb/cbl-mariner-2.0`) read by `rpmdb::read_dir` (package fields only,
//! as `rpm -qa` reads them; the read with file lists is printed too) + atomic-reactor's
//! component form, against Debian's `rpm --dbpath DIR -qa --qf <atomic-reactor's format>` on a
//! copy of the same database; alternating runs, medians.
//!
//! Run: `cargo bench --bench rpmdb_read` (env `BENCH_RUNS`, default 20).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// atomic-reactor's query (atomic_reactor/utils/rpm.py).
const QF: &str = "%{NAME};%{VERSION};%{RELEASE};%{ARCH};%{EPOCH};%{SIZE};%{SIGMD5};%{BUILDTIME};%{RPMTAG_MODULARITYLABEL};%{SIGPGP:pgpsig};%{SIGGPG:pgpsig};%{DSAHEADER:pgpsig};%{RSAHEADER:pgpsig}\\n";

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/rpmdb/cbl-mariner-2.0");
    if !fixture.join("rpmdb.sqlite").is_file() {
        println!("skipping: {} is absent", fixture.display());
        return;
    }
    if Command::new("rpm").arg("--version").output().is_err() {
        println!("skipping: no rpm program");
        return;
    }
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
        .max(3);
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        fixture.join("rpmdb.sqlite"),
        tmp.path().join("rpmdb.sqlite"),
    )
    .expect("copy");
    let dir = tmp.path();
    let (mut native, mut with_files, mut rpm) = (Vec::new(), Vec::new(), Vec::new());
    let mut counts = (0, 0);
    for _ in 0..runs {
        let t = Instant::now();
        let pkgs = containerbuild::rpmdb::read_dir(dir, containerbuild::rpmdb::Detail::Packages)
            .expect("read rpmdb");
        let comps = containerbuild::rpmdb::components(&pkgs);
        native.push(t.elapsed().as_secs_f64());
        counts.0 = comps.len();

        // The same read with the file lists the per-layer analysis needs, for comparison.
        let t = Instant::now();
        let full = containerbuild::rpmdb::read_dir(dir, containerbuild::rpmdb::Detail::Files)
            .expect("read rpmdb");
        with_files.push(t.elapsed().as_secs_f64());
        assert_eq!(full.len(), pkgs.len());

        let t = Instant::now();
        let out = Command::new("rpm")
            .arg("--dbpath")
            .arg(dir)
            .args(["--define", "_db_backend sqlite", "-qa", "--qf", QF])
            .output()
            .expect("rpm -qa");
        rpm.push(t.elapsed().as_secs_f64());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        counts.1 = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.starts_with("gpg-pubkey;"))
            .count();
    }
    let (n, f, r) = (
        median(&mut native),
        median(&mut with_files),
        median(&mut rpm),
    );
    println!(
        "rpmdb read, {} ({} packages native, {} by rpm), {runs} alternating runs:",
        fixture.display(),
        counts.0,
        counts.1
    );
    println!("  native read_dir + components  median {:.2} ms", n * 1e3);
    println!(
        "  native read_dir with files    median {:.2} ms ({:.1}x rpm)",
        f * 1e3,
        r / f
    );
    println!("  rpm --dbpath -qa --qf         median {:.2} ms", r * 1e3);
    println!(
        "  speed-up {:.1}x (target >= 10x: {})",
        r / n,
        if r / n >= 10.0 { "met" } else { "not met" }
    );
}
