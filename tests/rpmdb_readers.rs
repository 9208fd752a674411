//! The rpmdb readers against real databases: the go-rpmdb fixtures with their expected outputs,
//! Debian's `rpm` as an oracle for sqlite and BerkeleyDB, and a database this test makes itself
//! from a freshly signed RPM.
//!
//! Environment: `CI` set turns every skip (missing fixtures, missing rpm/gpg tools) into a
//! failure.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use containerbuild::rpmdb::{self, Component, DbFormat, Detail, DigestAlgo, Package};
use serde_json::Value;

/// `rpm -qa --qf` as atomic-reactor runs it (atomic_reactor/utils/rpm.py, with the modularity
/// label added in 2024).
const AR_QF: &str = "%{NAME};%{VERSION};%{RELEASE};%{ARCH};%{EPOCH};%{SIZE};%{SIGMD5};%{BUILDTIME};%{RPMTAG_MODULARITYLABEL};%{SIGPGP:pgpsig};%{SIGGPG:pgpsig};%{DSAHEADER:pgpsig};%{RSAHEADER:pgpsig}\\n";

fn skip(what: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{what} (CI is set, so this is a failure)");
    }
    eprintln!("skipping: {what}");
}

fn fixtures() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/rpmdb");
    if dir.is_dir() {
        Some(dir)
    } else {
        skip(&format!("{} is absent", dir.display()));
        None
    }
}

fn have(tool: &str) -> bool {
    let ok = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        skip(&format!("`{tool}` is not installed"));
    }
    ok
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn opt_str(v: &Option<String>) -> Value {
    v.as_ref().map_or(Value::Null, |s| Value::String(s.clone()))
}

fn opt_num<T: Into<u64> + Copy>(v: Option<T>) -> Value {
    v.map_or(Value::Null, |n| Value::from(n.into()))
}

/// The value our reader gives for an expected-JSON field name.
fn field(p: &Package, name: &str) -> Value {
    match name {
        "name" => Value::String(p.name.clone()),
        "version" => Value::String(p.version.clone()),
        "release" => Value::String(p.release.clone()),
        "epoch" => opt_num(p.epoch),
        "arch" => opt_str(&p.arch),
        "size" => opt_num(p.size),
        "sigmd5" => opt_str(&p.sigmd5),
        "signature_key_id" => opt_str(&p.signature_key),
        "sourcerpm" => opt_str(&p.sourcerpm),
        "license" => opt_str(&p.license),
        "vendor" => opt_str(&p.vendor),
        "summary" => opt_str(&p.summary),
        "modularitylabel" => opt_str(&p.modularitylabel),
        other => panic!("expected file has a field {other:?} this test does not know"),
    }
}

fn nvra(p: &Package) -> String {
    format!(
        "{}-{}-{}.{}",
        p.name,
        p.version,
        p.release,
        p.arch.as_deref().unwrap_or("(none)")
    )
}

/// Compares every field the expected file gives, collecting all mismatches by package and field.
fn compare_with_expected(db: &str, got: &[Package], expected: &Path) {
    let want: Vec<BTreeMap<String, Value>> =
        serde_json::from_str(&fs::read_to_string(expected).unwrap()).unwrap();
    let mut errors = Vec::new();
    if got.len() != want.len() {
        errors.push(format!(
            "{db}: {} packages read, {} expected",
            got.len(),
            want.len()
        ));
    }
    let mut by_key: BTreeMap<String, &Package> = BTreeMap::new();
    for p in got {
        if by_key.insert(nvra(p), p).is_some() {
            errors.push(format!("{db}: {} read twice", nvra(p)));
        }
    }
    for w in &want {
        let s = |k: &str| w[k].as_str().unwrap_or("(none)").to_string();
        let key = format!(
            "{}-{}-{}.{}",
            s("name"),
            s("version"),
            s("release"),
            s("arch")
        );
        let Some(p) = by_key.remove(&key) else {
            errors.push(format!("{db}: {key} expected but not read"));
            continue;
        };
        for (name, value) in w {
            let ours = field(p, name);
            if &ours != value {
                errors.push(format!(
                    "{db}: {key} field {name}: read {ours}, expected {value}"
                ));
            }
        }
    }
    for key in by_key.keys() {
        errors.push(format!("{db}: {key} read but not expected"));
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

#[test]
fn fixtures_match_their_expected_output() {
    let Some(dir) = fixtures() else { return };
    for (db, file, format) in [
        ("cbl-mariner-2.0", "rpmdb.sqlite", DbFormat::Sqlite),
        (
            "libuuid",
            "Packages",
            DbFormat::BerkeleyDb { swapped: false },
        ),
        ("sle15-bci", "Packages.db", DbFormat::Ndb),
    ] {
        let dbdir = dir.join(db);
        assert_eq!(
            rpmdb::detect_format(&dbdir.join(file)).unwrap(),
            Some(format)
        );
        let got = rpmdb::read_dir(&dbdir, Detail::Files).unwrap_or_else(|e| panic!("{db}: {e}"));
        compare_with_expected(db, &got, &dir.join(format!("{db}.expected.json")));
        // A database directory works with `open` too.
        assert_eq!(rpmdb::open(&dbdir, Detail::Files).unwrap(), got);
    }
}

#[test]
fn sle_ndb_signatures_and_files() {
    let Some(dir) = fixtures() else { return };
    let got = rpmdb::read_dir(&dir.join("sle15-bci"), Detail::Files).unwrap();
    // Not oracle-checked (no rpm reads NDB here), but NOTICE.md decodes the same key by hand.
    for p in &got {
        assert_eq!(
            p.signature_key.as_deref(),
            Some("70af9e8139db7c82"),
            "{}",
            p.name
        );
    }
    let bash = got.iter().find(|p| p.name == "bash").unwrap();
    let sh = bash
        .files
        .iter()
        .find(|f| f.path == "/usr/bin/bash")
        .expect("bash owns /usr/bin/bash");
    assert_eq!(sh.mode & 0o170000, 0o100000, "a regular file");
    assert!(sh.size > 0);
    assert_eq!(bash.digest_algo, DigestAlgo::Sha256);
    assert_eq!(sh.digest.as_deref().map(str::len), Some(64));
}

/// atomic-reactor's `parse_rpm_output` over rpm's output, plus SIZE and BUILDTIME, which it
/// queries but does not keep.
fn parse_rpm_output(out: &str) -> Vec<(Component, Option<u64>, Option<u64>)> {
    let none = |s: &str| (s != "(none)").then(|| s.to_string());
    let mut v = Vec::new();
    for line in out.lines() {
        let f: Vec<&str> = line.split(';').collect();
        if f.len() < 13 {
            continue;
        }
        let signature =
            f[9..13]
                .iter()
                .find_map(|s| none(s))
                .map(|s| match s.split_once("Key ID ") {
                    Some((_, id)) => id.to_string(),
                    None => s,
                });
        let c = Component {
            kind: "rpm".into(),
            name: f[0].into(),
            version: f[1].into(),
            release: f[2].into(),
            arch: none(f[3]),
            sigmd5: none(f[6]),
            signature,
            module: none(f[8]),
            epoch: none(f[4]).map(|e| e.parse().unwrap()),
        };
        let num = |s: &str| none(s).map(|n| n.parse::<u64>().unwrap());
        v.push((c, num(f[5]), num(f[7])));
    }
    v
}

/// Runs Debian's rpm on a private copy of `dbdir` and compares its atomic-reactor output with
/// ours, field by field. Returns rpm's list (gpg-pubkey included).
fn compare_with_rpm(label: &str, dbdir: &Path, backend: &str, ours: &[Package]) -> usize {
    let tmp = tempfile::tempdir().unwrap();
    for e in fs::read_dir(dbdir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            fs::copy(e.path(), tmp.path().join(e.file_name())).unwrap();
        }
    }
    let out = run(Command::new("rpm")
        .arg("--dbpath")
        .arg(tmp.path())
        .args(["--define", &format!("_db_backend {backend}")])
        .args(["-qa", "--qf", &AR_QF.replace("\\n", "\n")]));
    let theirs = parse_rpm_output(&out);
    let mut errors = Vec::new();
    let key = |c: &Component| {
        format!(
            "{}-{}-{}.{}",
            c.name,
            c.version,
            c.release,
            c.arch.as_deref().unwrap_or("(none)")
        )
    };
    let ours_by: BTreeMap<String, &Package> =
        ours.iter().map(|p| (key(&Component::from(p)), p)).collect();
    if ours_by.len() != theirs.len() {
        errors.push(format!(
            "{label}: rpm lists {} packages, we read {}",
            theirs.len(),
            ours_by.len()
        ));
    }
    for (c, size, buildtime) in &theirs {
        let k = key(c);
        let Some(p) = ours_by.get(&k) else {
            errors.push(format!("{label}: rpm lists {k}, we do not"));
            continue;
        };
        let mine = Component::from(*p);
        let pairs = [
            (
                "epoch",
                format!("{:?}", mine.epoch),
                format!("{:?}", c.epoch),
            ),
            (
                "sigmd5",
                format!("{:?}", mine.sigmd5),
                format!("{:?}", c.sigmd5),
            ),
            (
                "signature",
                format!("{:?}", mine.signature),
                format!("{:?}", c.signature),
            ),
            (
                "module",
                format!("{:?}", mine.module),
                format!("{:?}", c.module),
            ),
            ("size", format!("{:?}", p.size), format!("{size:?}")),
            (
                "buildtime",
                format!("{:?}", p.buildtime),
                format!("{buildtime:?}"),
            ),
        ];
        for (name, a, b) in pairs {
            if a != b {
                errors.push(format!(
                    "{label}: {k} field {name}: we read {a}, rpm says {b}"
                ));
            }
        }
    }
    // The component list is rpm's minus gpg-pubkey, in whatever order.
    let mut want: Vec<Component> = theirs
        .into_iter()
        .map(|(c, _, _)| c)
        .filter(|c| c.name != "gpg-pubkey")
        .collect();
    let mut got = rpmdb::components(ours);
    want.sort_by_key(key);
    got.sort_by_key(key);
    if errors.is_empty() {
        assert_eq!(got, want, "{label}: component lists differ");
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    ours_by.len()
}

#[test]
fn sqlite_and_bdb_fixtures_agree_with_rpm() {
    let Some(dir) = fixtures() else { return };
    if !have("rpm") {
        return;
    }
    let mariner = dir.join("cbl-mariner-2.0");
    let n = compare_with_rpm(
        "cbl-mariner",
        &mariner,
        "sqlite",
        &rpmdb::read_dir(&mariner, Detail::Files).unwrap(),
    );
    assert_eq!(n, 129);
    let uuid = dir.join("libuuid");
    compare_with_rpm(
        "libuuid",
        &uuid,
        "bdb_ro",
        &rpmdb::read_dir(&uuid, Detail::Files).unwrap(),
    );
}

/// Every file under `dir` with its bytes, to prove a read changed nothing.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_symlink() {
                out.insert(
                    e.path(),
                    fs::read_link(e.path())
                        .unwrap()
                        .into_os_string()
                        .into_encoded_bytes(),
                );
            } else {
                out.insert(e.path(), fs::read(e.path()).unwrap());
            }
        }
    }
    out
}

fn make_writable(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(0o644)).unwrap();
}

/// A non-empty `-wal` holds committed transactions the main file does not have yet; reading with
/// `immutable=1` would silently miss them.
#[test]
fn sqlite_wal_is_honoured_and_image_files_are_untouched() {
    let Some(dir) = fixtures() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    fs::create_dir(&work).unwrap();
    let db = work.join("rpmdb.sqlite");
    fs::copy(dir.join("cbl-mariner-2.0/rpmdb.sqlite"), &db).unwrap();
    make_writable(&db);

    // An image root whose database a live connection has changed without checkpointing:
    // copy db + wal while the connection still holds them.
    let root = tmp.path().join("root");
    let image_db = root.join("usr/lib/sysimage/rpm");
    fs::create_dir_all(&image_db).unwrap();
    fs::create_dir_all(root.join("var/lib")).unwrap();
    symlink("../../usr/lib/sysimage/rpm", root.join("var/lib/rpm")).unwrap();
    let before = rpmdb::read_dir(&work, Detail::Files).unwrap();
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        // rpm's index tables reference Packages; they do not matter to the reader.
        conn.pragma_update(None, "foreign_keys", false).unwrap();
        conn.execute("DELETE FROM Packages WHERE hnum > 100", [])
            .unwrap();
        conn.execute(
            "INSERT INTO Packages (hnum, blob) SELECT 500, blob FROM Packages WHERE hnum = 1",
            [],
        )
        .unwrap();
        for name in ["rpmdb.sqlite", "rpmdb.sqlite-wal", "rpmdb.sqlite-shm"] {
            fs::copy(work.join(name), image_db.join(name)).unwrap();
        }
        assert!(
            fs::metadata(image_db.join("rpmdb.sqlite-wal"))
                .unwrap()
                .len()
                > 0
        );
    }
    let image_before = snapshot(&root);

    let got = rpmdb::open(&root, Detail::Files).unwrap();
    assert_eq!(
        snapshot(&root),
        image_before,
        "reading changed the image's files"
    );
    let instances: Vec<u32> = got.iter().map(|p| p.instance).collect();
    assert_eq!(instances.len(), 101, "hnum 1..=100 plus 500");
    assert_eq!(instances.last(), Some(&500));
    assert_eq!(got[100].name, before[0].name);

    // Without the log the same file shows its checkpointed state: the log is what made the
    // difference.
    fs::remove_file(image_db.join("rpmdb.sqlite-wal")).unwrap();
    fs::remove_file(image_db.join("rpmdb.sqlite-shm")).unwrap();
    let stale = rpmdb::open(&root, Detail::Files).unwrap();
    assert_eq!(stale.len(), before.len());
    // ... and reading in place with immutable=1 created nothing beside it.
    let names: Vec<_> = fs::read_dir(&image_db)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("rpmdb.sqlite")]);
}

/// A swapped (big-endian, e.g. s390x) BerkeleyDB has the same packages: convert the libuuid
/// fixture's page fields to the other byte order and read it again.
#[test]
fn swapped_berkeleydb_reads_the_same() {
    let Some(dir) = fixtures() else { return };
    let mut b = fs::read(dir.join("libuuid/Packages")).unwrap();
    let s32 = |b: &mut [u8], at: usize| b[at..at + 4].reverse();
    let s16 = |b: &mut [u8], at: usize| b[at..at + 2].reverse();
    let u16le = |b: &[u8], at: usize| usize::from(u16::from_le_bytes([b[at], b[at + 1]]));
    let pagesize = u32::from_le_bytes(b[20..24].try_into().unwrap()) as usize;
    let last = u32::from_le_bytes(b[32..36].try_into().unwrap()) as usize;
    // Meta page: every u32 from byte 8 to 224 except the bytes at 24..28.
    for at in (8..224).step_by(4).filter(|&a| a != 24) {
        s32(&mut b, at);
    }
    for pg in 1..=last {
        let p = &mut b[pg * pagesize..(pg + 1) * pagesize];
        let typ = p[25];
        let n = u16le(p, 20);
        if typ == 2 || typ == 13 {
            for i in 0..n {
                let off = u16le(p, 26 + 2 * i);
                if p[off] == 3 {
                    s32(p, off + 4);
                    s32(p, off + 8);
                } else if i % 2 == 0 && p[off] == 1 {
                    // Keys are header numbers in the writer's byte order.
                    s32(p, off + 1);
                }
                s16(p, 26 + 2 * i);
            }
        }
        for at in [8, 12, 16] {
            s32(p, at);
        }
        s16(p, 20);
        s16(p, 22);
    }
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("Packages"), &b).unwrap();
    assert_eq!(
        rpmdb::detect_format(&tmp.path().join("Packages")).unwrap(),
        Some(DbFormat::BerkeleyDb { swapped: true })
    );
    let swapped = rpmdb::read_dir(tmp.path(), Detail::Files).unwrap();
    let native = rpmdb::read_dir(&dir.join("libuuid"), Detail::Files).unwrap();
    assert_eq!(swapped, native);
    assert_eq!(native.len(), 1);
    assert_eq!(native[0].signature_key.as_deref(), Some("199e2f91fd431d51"));
}

const SPEC: &str = r#"Name: cbsigned
Epoch: 3
Version: 1.0
Release: 1
Summary: rpmdb reader test package
License: MIT
BuildArch: noarch

%global debug_package %{nil}

%description
Made by containerbuild's rpmdb tests.

%install
mkdir -p %{buildroot}/usr/share/cbsigned
printf 'hello\n' > %{buildroot}/usr/share/cbsigned/hello.txt

%files
%dir /usr/share/cbsigned
/usr/share/cbsigned/hello.txt
"#;

/// A package this test signs itself, installed into an image-like root with rpm's sqlite
/// backend (and the signing key imported, which adds a `gpg-pubkey` entry).
#[test]
fn signed_package_in_a_root_matches_rpm() {
    if !(have("rpm") && have("rpmbuild") && have("rpmsign") && have("gpg")) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let gnupg = t.join("g");
    fs::create_dir(&gnupg).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&gnupg, fs::Permissions::from_mode(0o700)).unwrap();
    }
    let gpg = || {
        let mut c = Command::new("gpg");
        c.env("GNUPGHOME", &gnupg).arg("--batch");
        c
    };
    run(gpg().args([
        "--passphrase",
        "",
        "--quick-gen-key",
        "CB Test Signer <cb-test@example.invalid>",
        "rsa2048",
        "sign",
        "never",
    ]));
    let listing = run(gpg().args(["--with-colons", "--list-keys"]));
    let keyid = listing
        .lines()
        .find(|l| l.starts_with("pub:"))
        .and_then(|l| l.split(':').nth(4))
        .expect("gpg lists the new key")
        .to_lowercase();
    let pubkey = t.join("key.asc");
    fs::write(&pubkey, run(gpg().args(["--armor", "--export"]))).unwrap();

    let top = t.join("build");
    fs::create_dir(&top).unwrap();
    let spec = t.join("cbsigned.spec");
    fs::write(&spec, SPEC).unwrap();
    run(Command::new("rpmbuild")
        .arg("-bb")
        .args(["--define", &format!("_topdir {}", top.display())])
        .args(["--define", "_build_id_links none"])
        .arg(&spec));
    let rpm_file = top.join("RPMS/noarch/cbsigned-1.0-1.noarch.rpm");
    // Debian's rpm names /usr/bin/gpg2, which Debian no longer ships.
    let gpg_bin = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join("gpg"))
        .find(|p| p.is_file())
        .expect("gpg is on PATH");
    run(Command::new("rpmsign")
        .arg("--addsign")
        .args(["--define", &format!("__gpg {}", gpg_bin.display())])
        .args(["--define", "_gpg_name CB Test Signer"])
        .args(["--define", &format!("_gpg_path {}", gnupg.display())])
        .arg(&rpm_file)
        .env("GNUPGHOME", &gnupg));

    let root = t.join("root");
    let dbdir = root.join("usr/lib/sysimage/rpm");
    fs::create_dir_all(&dbdir).unwrap();
    fs::create_dir_all(root.join("var/lib")).unwrap();
    // An absolute link: inside the image it means the root's /usr, not the host's.
    symlink("/usr/lib/sysimage/rpm", root.join("var/lib/rpm")).unwrap();
    let rpm = || {
        let mut c = Command::new("rpm");
        c.arg("--dbpath")
            .arg(&dbdir)
            .args(["--define", "_db_backend sqlite"]);
        c
    };
    run(rpm().arg("--initdb"));
    run(rpm().arg("--import").arg(&pubkey));
    run(rpm()
        .args(["-i", "--justdb", "--nodeps", "--noscripts", "--notriggers"])
        .arg(&rpm_file));

    let before = snapshot(&root);
    let got = rpmdb::open(&root, Detail::Files).unwrap();
    assert_eq!(snapshot(&root), before, "reading changed the image's files");

    let n = compare_with_rpm("signed", &dbdir, "sqlite", &got);
    assert_eq!(n, 2, "cbsigned and gpg-pubkey");
    let pkg = got.iter().find(|p| p.name == "cbsigned").unwrap();
    assert_eq!(pkg.epoch, Some(3));
    assert_eq!(pkg.signature_key.as_deref(), Some(keyid.as_str()));
    assert_eq!(pkg.arch.as_deref(), Some("noarch"));
    assert_eq!(pkg.license.as_deref(), Some("MIT"));
    assert_eq!(pkg.sourcerpm.as_deref(), Some("cbsigned-1.0-1.src.rpm"));
    let hello = pkg
        .files
        .iter()
        .find(|f| f.path == "/usr/share/cbsigned/hello.txt")
        .expect("file list has hello.txt");
    assert_eq!(hello.size, 6);
    assert_eq!(hello.mode, 0o100644);
    assert_eq!(pkg.digest_algo, DigestAlgo::Sha256);
    assert_eq!(
        hello.digest.as_deref(),
        Some("5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03")
    );
    let dir = pkg
        .files
        .iter()
        .find(|f| f.path == "/usr/share/cbsigned")
        .unwrap();
    assert_eq!(dir.mode & 0o170000, 0o040000);
    assert_eq!(dir.digest, None);

    let key = got.iter().find(|p| p.is_gpg_pubkey()).unwrap();
    assert_eq!(key.arch, None);
    let comps = rpmdb::components(&got);
    assert_eq!(comps.len(), 1);
    let json = serde_json::to_value(&comps[0]).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "type": "rpm", "name": "cbsigned", "version": "1.0", "release": "1",
            "arch": "noarch", "sigmd5": pkg.sigmd5, "signature": keyid,
            "module": null, "epoch": 3
        })
    );
}

#[test]
fn missing_database_and_unknown_files() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(matches!(
        rpmdb::open(tmp.path(), Detail::Files),
        Err(rpmdb::RpmdbError::NotFound { .. })
    ));
    let dbdir = tmp.path().join("var/lib/rpm");
    fs::create_dir_all(&dbdir).unwrap();
    // Empty files are what rpm leaves when it never wrote a database: not one.
    fs::write(dbdir.join("rpmdb.sqlite"), b"").unwrap();
    assert!(matches!(
        rpmdb::open(tmp.path(), Detail::Files),
        Err(rpmdb::RpmdbError::NotFound { .. })
    ));
    // A file with a database's name but no known magic is an error, not silently skipped.
    fs::write(dbdir.join("Packages"), b"this is not a database at all").unwrap();
    let err = rpmdb::open(tmp.path(), Detail::Files).unwrap_err();
    assert!(
        matches!(err, rpmdb::RpmdbError::UnknownFormat { .. }),
        "{err}"
    );
    // A symlink pointing out of the root is resolved inside it, where nothing is.
    fs::remove_file(dbdir.join("Packages")).unwrap();
    fs::remove_file(dbdir.join("rpmdb.sqlite")).unwrap();
    if let Some(dir) = fixtures() {
        symlink(
            dir.join("libuuid/Packages").canonicalize().unwrap(),
            dbdir.join("Packages"),
        )
        .unwrap();
        assert!(matches!(
            rpmdb::open(tmp.path(), Detail::Files),
            Err(rpmdb::RpmdbError::NotFound { .. })
        ));
    }
}

#[test]
fn damaged_sqlite_files_are_errors() {
    let Some(dir) = fixtures() else { return };
    let good = fs::read(dir.join("cbl-mariner-2.0/rpmdb.sqlite")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("rpmdb.sqlite");
    // Truncated mid-file, a header page only, and valid magic followed by garbage.
    let mut garbage = b"SQLite format 3\0".to_vec();
    garbage.extend((0..8192u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    for bytes in [&good[..good.len() / 2], &good[..4096], &garbage[..]] {
        fs::write(&db, bytes).unwrap();
        let err = rpmdb::read_dir(tmp.path(), Detail::Files).unwrap_err();
        assert!(
            matches!(
                err,
                rpmdb::RpmdbError::Sqlite { .. } | rpmdb::RpmdbError::Package { .. }
            ),
            "{err}"
        );
    }
    // A blob that is not a header names its package.
    fs::write(&db, &good).unwrap();
    make_writable(&db);
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute("UPDATE Packages SET blob = x'00000001' WHERE hnum = 7", [])
            .unwrap();
    }
    for f in ["rpmdb.sqlite-wal", "rpmdb.sqlite-shm"] {
        let _ = fs::remove_file(tmp.path().join(f));
    }
    let err = rpmdb::read_dir(tmp.path(), Detail::Files).unwrap_err();
    assert!(
        matches!(err, rpmdb::RpmdbError::Package { instance: 7, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("package 7"), "{err}");
}
