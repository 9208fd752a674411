//! Native rpmdb read vs `rpm -qa`, on two sqlite databases:
//!
//! - the largest sqlite fixture (`../shared/fixtures/rpmdb/cbl-mariner-2.0`, 129 packages);
//! - a generated database of [`GEN_PACKAGES`] packages, built with the real rpm tools: one spec
//!   with a main package and 1999 subpackages (`cbbench-pkgNNNN`, each owning a directory of three
//!   small files under `/usr/share/cbbench/NNNN/`), one `rpmbuild -bb`, then `rpm --initdb` and
//!   `rpm -i --justdb` of all the RPMs. Generation takes a minute or two, so the database is
//!   cached under `target/bench-cache/rpmdb-2000/v<GEN_VERSION>/`; bump [`GEN_VERSION`] when the
//!   spec changes, or delete the directory to regenerate.
//!
//! Both go through [`bench_db`]: on a private copy of the database, `rpmdb::read_dir` (package
//! fields only, as `rpm -qa` reads them; the read with file lists is timed too) + atomic-reactor's
//! component form, against Debian's `rpm --dbpath DIR -qa --qf <atomic-reactor's format>`;
//! alternating runs, medians. Before timing, the package count is checked against plain
//! `rpm -qa`, and after it our fields are compared with rpm's output field by field.
//!
//! Run: `cargo bench --bench rpmdb_read` (env `BENCH_RUNS`, default 20, at least 3). Needs `rpm`
//! (and `rpmbuild` for the generated database); without them it says so and exits 0.

#[path = "common/mod.rs"]
mod common;
use common::median;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use containerbuild::rpmdb::{self, Detail, Package};

/// atomic-reactor's query (atomic_reactor/utils/rpm.py).
const QF: &str = "%{NAME};%{VERSION};%{RELEASE};%{ARCH};%{EPOCH};%{SIZE};%{SIGMD5};%{BUILDTIME};%{RPMTAG_MODULARITYLABEL};%{SIGPGP:pgpsig};%{SIGGPG:pgpsig};%{DSAHEADER:pgpsig};%{RSAHEADER:pgpsig}\\n";

/// The fields [`rpm_fields`] and [`our_fields`] produce, in [`QF`]'s order; the four signature
/// tags of [`QF`] become one key id, as atomic-reactor keeps it.
const FIELDS: [&str; 10] = [
    "name",
    "version",
    "release",
    "arch",
    "epoch",
    "size",
    "sigmd5",
    "buildtime",
    "modularitylabel",
    "signature key",
];

/// Packages in the generated database: the main package and `GEN_PACKAGES - 1` subpackages.
const GEN_PACKAGES: usize = 2000;
/// Version of the generated database; part of the cache path, so a change to [`spec`] or to
/// [`generate`] must bump it.
const GEN_VERSION: u32 = 1;
/// RPMs per `rpm -i --justdb` call, to keep argument lists short.
const INSTALL_BATCH: usize = 500;

/// rpm's sqlite backend, whatever the host's default.
const SQLITE: [&str; 2] = ["--define", "_db_backend sqlite"];

/// Runs `cmd`; panics with its stderr unless it succeeds.
fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{:?}: {e}", cmd.get_program()));
    assert!(
        out.status.success(),
        "{:?} {:?} failed ({}): {}",
        cmd.get_program(),
        cmd.get_args().take(8).collect::<Vec<_>>(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn rpm(dbdir: &Path) -> Command {
    let mut c = Command::new("rpm");
    c.arg("--dbpath").arg(dbdir).args(SQLITE);
    c
}

fn have(prog: &str) -> bool {
    Command::new(prog).arg("--version").output().is_ok()
}

/// One line of rpm's [`QF`] output as [`FIELDS`]: the first present signature tag, reduced to
/// its key id (`RSA/SHA256, <date>, Key ID <16 hex>`).
fn rpm_fields(line: &str) -> [String; 10] {
    let f: Vec<&str> = line.split(';').collect();
    assert_eq!(f.len(), 13, "rpm printed an unexpected line: {line}");
    let signature = f[9..]
        .iter()
        .find(|s| **s != "(none)")
        .map(|s| s.split_once("Key ID ").map_or(*s, |(_, id)| id))
        .unwrap_or("(none)");
    std::array::from_fn(|i| (if i < 9 { f[i] } else { signature }).to_string())
}

/// Our [`Package`] as [`FIELDS`], absent values printed the way rpm prints them.
fn our_fields(p: &Package) -> [String; 10] {
    fn opt<T: ToString>(v: Option<T>) -> String {
        v.map_or_else(|| "(none)".to_string(), |v| v.to_string())
    }
    [
        p.name.clone(),
        p.version.clone(),
        p.release.clone(),
        opt(p.arch.as_deref()),
        opt(p.epoch),
        opt(p.size),
        opt(p.sigmd5.as_deref()),
        opt(p.buildtime),
        opt(p.modularitylabel.as_deref()),
        opt(p.signature_key.as_deref()),
    ]
}

/// Compares our packages with rpm's [`QF`] output field by field, matched by
/// name-version-release.arch; panics listing the differences.
fn compare_with_rpm(label: &str, ours: &[Package], rpm_out: &str) {
    let by_nvra = |rows: Vec<[String; 10]>, who: &str| {
        let n = rows.len();
        let map: BTreeMap<String, [String; 10]> = rows
            .into_iter()
            .map(|f| (format!("{}-{}-{}.{}", f[0], f[1], f[2], f[3]), f))
            .collect();
        assert_eq!(map.len(), n, "{label}: {who} lists a package twice");
        map
    };
    let ours = by_nvra(ours.iter().map(our_fields).collect(), "our read");
    let theirs = by_nvra(rpm_out.lines().map(rpm_fields).collect(), "rpm");
    let mut errors = Vec::new();
    for (k, t) in &theirs {
        let Some(o) = ours.get(k) else {
            errors.push(format!("rpm lists {k}, we do not"));
            continue;
        };
        for (i, name) in FIELDS.iter().enumerate() {
            if o[i] != t[i] {
                errors.push(format!("{k} {name}: we read {:?}, rpm {:?}", o[i], t[i]));
            }
        }
    }
    errors.extend(
        ours.keys()
            .filter(|k| !theirs.contains_key(*k))
            .map(|k| format!("we read {k}, rpm does not list it")),
    );
    assert!(
        errors.is_empty(),
        "{label}: {} differences from rpm, first ones:\n{}",
        errors.len(),
        errors[..errors.len().min(20)].join("\n")
    );
}

/// The measurement, the same for every database: a private copy of `src` (rpm may write next
/// to the database), the package count checked (plain `rpm -qa`, our read, `expected` when
/// given), `runs` alternating runs, rpm's output compared with ours field by field, and one line
/// of results.
fn bench_db(label: &str, src: &Path, expected: Option<usize>, runs: usize) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    for e in std::fs::read_dir(src).expect("read database dir") {
        let e = e.expect("read database dir");
        if e.file_type().expect("file type").is_file() {
            std::fs::copy(e.path(), dir.join(e.file_name())).expect("copy database");
        }
    }

    // `rpm -qa | wc -l`: gpg-pubkey included, as in our read.
    let listed = String::from_utf8(run(rpm(dir).arg("-qa")).stdout)
        .expect("rpm -qa output")
        .lines()
        .count();
    let read = rpmdb::read_dir(dir, Detail::Packages)
        .expect("read rpmdb")
        .len();
    assert_eq!(
        listed, read,
        "{label}: rpm -qa lists {listed}, we read {read}"
    );
    if let Some(n) = expected {
        assert_eq!(read, n, "{label}: {read} packages, expected {n}");
    }

    let (mut native, mut with_files, mut by_rpm) = (Vec::new(), Vec::new(), Vec::new());
    let (mut last_pkgs, mut last_out) = (Vec::new(), Vec::new());
    let mut components = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let pkgs = rpmdb::read_dir(dir, Detail::Packages).expect("read rpmdb");
        let comps = rpmdb::components(&pkgs);
        native.push(t.elapsed().as_secs_f64());
        components = comps.len();

        // The same read with the file lists the per-layer analysis needs, for comparison.
        let t = Instant::now();
        let full = rpmdb::read_dir(dir, Detail::Files).expect("read rpmdb");
        with_files.push(t.elapsed().as_secs_f64());
        assert_eq!(full.len(), pkgs.len());

        let t = Instant::now();
        let out = run(rpm(dir).args(["-qa", "--qf", QF]));
        by_rpm.push(t.elapsed().as_secs_f64());
        (last_pkgs, last_out) = (pkgs, out.stdout);
    }
    let rpm_out = String::from_utf8(last_out).expect("rpm output is UTF-8");
    compare_with_rpm(label, &last_pkgs, &rpm_out);

    let (n, f, r) = (median(&native), median(&with_files), median(&by_rpm));
    println!(
        "{label}: {read} packages ({components} components), rpm median {:.2} ms, ours median \
         {:.2} ms (with file lists {:.2} ms), ratio {:.1}x, target >= 10x: {}",
        r * 1e3,
        n * 1e3,
        f * 1e3,
        r / n,
        if r / n >= 10.0 { "met" } else { "not met" }
    );
}

/// The spec of the generated database: `cbbench` (epoch 1, owning `/usr/share/cbbench` and
/// `0000/`) and subpackages `cbbench-pkg0001`... each owning its `NNNN/` directory and the three
/// files [`write_sources`] puts there. No dependency generators, brp scripts or debuginfo: they
/// only cost time.
fn spec(packages: usize) -> String {
    let mut s = String::from(
        "%global debug_package %{nil}\n\
         %define __os_install_post %{nil}\n\
         Name: cbbench\n\
         Version: 1.0\n\
         Release: 1\n\
         Epoch: 1\n\
         Summary: containerbuild rpmdb benchmark, main package\n\
         License: MIT\n\
         BuildArch: noarch\n\
         AutoReqProv: no\n\
         \n\
         %description\n\
         Generated by containerbuild's rpmdb_read benchmark.\n\
         \n\
         %install\n\
         mkdir -p %{buildroot}/usr/share\n\
         cp -a %{_sourcedir}/cbbench %{buildroot}/usr/share/\n\
         \n\
         %files\n\
         %dir /usr/share/cbbench\n\
         /usr/share/cbbench/0000\n",
    );
    for i in 1..packages {
        write!(
            s,
            "\n%package -n cbbench-pkg{i:04}\n\
             Summary: containerbuild rpmdb benchmark, subpackage {i}\n\
             AutoReqProv: no\n\
             Requires: cbbench = %{{epoch}}:%{{version}}-%{{release}}\n\
             \n\
             %description -n cbbench-pkg{i:04}\n\
             Subpackage {i} of the generated benchmark database.\n\
             \n\
             %files -n cbbench-pkg{i:04}\n\
             /usr/share/cbbench/{i:04}\n"
        )
        .expect("write to String");
    }
    s
}

/// `SOURCES/cbbench/NNNN/{README,NNNN.conf,data.txt}`, copied into the build root by [`spec`]'s
/// `%install`; sizes vary with NNNN.
fn write_sources(sources: &Path, packages: usize) {
    for i in 0..packages {
        let d = sources.join(format!("cbbench/{i:04}"));
        std::fs::create_dir_all(&d).expect("create source dir");
        let files = [
            ("README".to_string(), format!("cbbench package {i}\n")),
            (
                format!("{i:04}.conf"),
                format!("id = {i}\nname = \"cbbench-pkg{i:04}\"\n"),
            ),
            (
                "data.txt".to_string(),
                "0123456789abcdef\n".repeat(1 + i % 37),
            ),
        ];
        for (name, text) in files {
            std::fs::write(d.join(name), text).expect("write source file");
        }
    }
}

/// Builds the [`GEN_PACKAGES`]-package database into `db` with rpmbuild and `rpm -i --justdb`,
/// printing how long each step took.
fn generate(db: &Path) {
    let top = tempfile::tempdir().expect("tempdir");
    let sources = top.path().join("SOURCES");
    let spec_file = top.path().join("cbbench.spec");
    write_sources(&sources, GEN_PACKAGES);
    std::fs::write(&spec_file, spec(GEN_PACKAGES)).expect("write spec");

    let t = Instant::now();
    let mut topdir = std::ffi::OsString::from("_topdir ");
    topdir.push(top.path());
    run(Command::new("rpmbuild")
        .arg("-bb")
        .arg("--define")
        .arg(&topdir)
        .args(["--define", "_build_id_links none"])
        .arg(&spec_file));
    let built = t.elapsed().as_secs_f64();
    let mut rpms: Vec<PathBuf> = std::fs::read_dir(top.path().join("RPMS/noarch"))
        .expect("rpmbuild wrote RPMS/noarch")
        .map(|e| e.expect("read RPMS/noarch").path())
        .filter(|p| p.extension().is_some_and(|x| x == "rpm"))
        .collect();
    rpms.sort();
    assert_eq!(
        rpms.len(),
        GEN_PACKAGES,
        "rpmbuild wrote {} RPMs",
        rpms.len()
    );

    let t = Instant::now();
    run(rpm(db).arg("--initdb"));
    for batch in rpms.chunks(INSTALL_BATCH) {
        run(rpm(db)
            .args(["-i", "--justdb", "--nodeps", "--noscripts", "--notriggers"])
            .args(["--ignorearch", "--ignoreos"])
            .args(batch));
    }
    let installed = t.elapsed().as_secs_f64();
    println!(
        "generated {GEN_PACKAGES}-package rpmdb in {:.1} s (rpmbuild -bb {built:.1} s, \
         rpm --initdb + -i --justdb {installed:.1} s)",
        built + installed
    );
}

/// The cached generated database, made first when absent. Built in a temp dir next to the
/// cache and renamed into place once complete, so an interrupted run leaves no half database.
fn generated_db() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let parent = target.join(format!("bench-cache/rpmdb-{GEN_PACKAGES}"));
    let cached = parent.join(format!("v{GEN_VERSION}"));
    if cached.join("rpmdb.sqlite").is_file() {
        println!("generated rpmdb: cached in {}", cached.display());
        return cached;
    }
    std::fs::create_dir_all(&parent).expect("create bench cache dir");
    let staging = tempfile::Builder::new()
        .prefix(".staging-")
        .tempdir_in(&parent)
        .expect("tempdir in bench cache");
    println!("generated rpmdb: building {GEN_PACKAGES} packages (one time, a minute or two)");
    generate(staging.path());
    if let Err(e) = std::fs::rename(staging.path(), &cached) {
        // Another run may have finished first; its database is as good as ours.
        assert!(
            cached.join("rpmdb.sqlite").is_file(),
            "rename into {}: {e}",
            cached.display()
        );
    }
    println!("generated rpmdb: cached in {}", cached.display());
    cached
}

fn main() {
    if !have("rpm") {
        println!("skipping: no rpm program");
        return;
    }
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
        .max(3);
    println!(
        "rpmdb read: native read_dir(Detail::Packages) + components vs rpm --dbpath -qa --qf \
         <atomic-reactor's format>, {runs} alternating runs, medians"
    );

    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/rpmdb/cbl-mariner-2.0");
    if fixture.join("rpmdb.sqlite").is_file() {
        bench_db("fixture cbl-mariner-2.0", &fixture, None, runs);
    } else {
        println!(
            "fixture cbl-mariner-2.0: skipped, {} is absent",
            fixture.display()
        );
    }

    if have("rpmbuild") {
        let db = generated_db();
        bench_db(
            &format!("generated {GEN_PACKAGES}"),
            &db,
            Some(GEN_PACKAGES),
            runs,
        );
    } else {
        println!("generated {GEN_PACKAGES}: skipped, no rpmbuild program");
    }
}
