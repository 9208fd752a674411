//! Layer analysis on hand-made layer tars and NDB databases: package changes, whiteouts and
//! opaque directories, drift with digests, hostile entries, compressed layers.

use std::io::Write;

use sha2::{Digest, Sha256};

use super::*;
use crate::rpmdb::header::tag;
use crate::rpmdb::report::DriftChange;
use crate::rpmdb::testutil::{bin, blob, i16s, i32s, ndb, s, sa};

const REG: u16 = 0o100644;
const DIR: u16 = 0o040755;

fn sha256_hex(b: &[u8]) -> String {
    hex(&Sha256::digest(b))
}

/// A package header: `files` are (path, mode, content, flags); regular files that are not
/// %ghost get the sha256 of their content as digest.
fn pkg(name: &str, version: &str, files: &[(&str, u16, &str, u32)]) -> Vec<u8> {
    let mut dirs: Vec<String> = Vec::new();
    let mut idx = Vec::new();
    let mut bases = Vec::new();
    let mut digests = Vec::new();
    for (path, mode, content, flags) in files {
        let (d, b) = path.rsplit_once('/').unwrap();
        let d = format!("{d}/");
        let i = dirs.iter().position(|x| *x == d).unwrap_or_else(|| {
            dirs.push(d.clone());
            dirs.len() - 1
        });
        idx.push(i as u32);
        bases.push(b.to_string());
        digests.push(if mode & S_IFMT == 0o100000 && flags & RPMFILE_GHOST == 0 {
            sha256_hex(content.as_bytes())
        } else {
            String::new()
        });
    }
    fn strs(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }
    let mut region = vec![
        s(tag::NAME, name),
        s(tag::VERSION, version),
        s(tag::RELEASE, "1"),
        s(tag::ARCH, "noarch"),
    ];
    if !files.is_empty() {
        region.extend([
            i32s(tag::FILESIZES, &vec![0; files.len()]),
            i16s(
                tag::FILEMODES,
                &files.iter().map(|f| f.1).collect::<Vec<_>>(),
            ),
            sa(tag::FILEDIGESTS, &strs(&digests)),
            i32s(
                tag::FILEFLAGS,
                &files.iter().map(|f| f.3).collect::<Vec<_>>(),
            ),
            i32s(tag::DIRINDEXES, &idx),
            sa(tag::BASENAMES, &strs(&bases)),
            sa(tag::DIRNAMES, &strs(&dirs)),
            i32s(tag::FILEDIGESTALGO, &[8]),
        ]);
    }
    let sigmd5: Vec<u8> = md5::Md5::digest(format!("{name}-{version}").as_bytes()).to_vec();
    blob(&region, &[bin(tag::SIGMD5, &sigmd5)])
}

/// A layer tar, written by hand so that hostile names are possible.
#[derive(Default)]
struct Tar(Vec<u8>);

impl Tar {
    fn entry(mut self, name: &str, typeflag: u8, link: &str, data: &[u8]) -> Self {
        self.raw(
            name.as_bytes(),
            typeflag,
            link.as_bytes(),
            data,
            data.len() as u64,
        );
        self
    }
    fn raw(&mut self, name: &[u8], typeflag: u8, link: &[u8], data: &[u8], size: u64) {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name);
        h[100..107].copy_from_slice(b"0000755");
        h[108..115].copy_from_slice(b"0000000");
        h[116..123].copy_from_slice(b"0000000");
        h[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
        h[136..147].copy_from_slice(b"00000000000");
        h[156] = typeflag;
        h[157..157 + link.len()].copy_from_slice(link);
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        self.0.extend_from_slice(&h);
        self.0.extend_from_slice(data);
        self.0.resize(self.0.len().div_ceil(512) * 512, 0);
    }
    fn file(self, name: &str, data: &[u8]) -> Self {
        self.entry(name, b'0', "", data)
    }
    fn dir(self, name: &str) -> Self {
        self.entry(name, b'5', "", b"")
    }
    fn symlink(self, name: &str, target: &str) -> Self {
        self.entry(name, b'2', target, b"")
    }
    fn hardlink(self, name: &str, target: &str) -> Self {
        self.entry(name, b'1', target, b"")
    }
    fn db(self, pkgs: &[(u32, Vec<u8>)]) -> Self {
        self.file("usr/lib/sysimage/rpm/Packages.db", &ndb(pkgs))
    }
    fn done(mut self) -> Vec<u8> {
        self.0.extend_from_slice(&[0u8; 1024]);
        self.0
    }
}

fn input(bytes: Vec<u8>) -> LayerInput<'static> {
    LayerInput {
        diff_id: None,
        created_by: None,
        reader: Box::new(io::Cursor::new(bytes)),
    }
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn zstd(b: &[u8]) -> Vec<u8> {
    ruzstd::encoding::compress_to_vec(b, ruzstd::encoding::CompressionLevel::Fastest)
}

fn base_pkg() -> Vec<u8> {
    pkg(
        "base",
        "1",
        &[
            ("/etc/conf", REG, "a=1\n", RPMFILE_CONFIG),
            ("/etc/base.txt", REG, "base\n", 0),
            ("/etc/ghost", REG, "", RPMFILE_GHOST),
        ],
    )
}

fn hello(version: &str) -> Vec<u8> {
    pkg(
        "hello",
        version,
        &[
            ("/usr/bin/hello", REG, &format!("hello {version}\n"), 0),
            ("/usr/share/doc/hello", DIR, "", 0),
            ("/usr/share/doc/hello/README", REG, "doc\n", 0),
        ],
    )
}

fn drift_of(l: &LayerReport) -> Vec<(String, DriftChange, Option<bool>, bool, String)> {
    l.drift
        .iter()
        .map(|d| {
            (
                d.path.clone(),
                d.change,
                d.digest_mismatch,
                d.config,
                d.package.clone(),
            )
        })
        .collect()
}

fn names(v: &[PackageRef]) -> Vec<&str> {
    v.iter().map(|p| p.nevra.as_str()).collect()
}

/// The image every scenario test starts from: base and hello 1.0, in a merged-/usr layout with
/// the rpmdb at /usr/lib/sysimage/rpm and /var/lib/rpm a symlink to it.
fn base_layer() -> Vec<u8> {
    Tar::default()
        .dir("etc/")
        .file("etc/conf", b"a=1\n")
        .file("etc/base.txt", b"base\n")
        .dir("usr/")
        .dir("usr/bin/")
        .file("usr/bin/hello", b"hello 1.0\n")
        .dir("usr/share/doc/hello/")
        .file("usr/share/doc/hello/README", b"doc\n")
        .dir("usr/lib/sysimage/rpm/")
        .dir("var/lib/")
        .symlink("var/lib/rpm", "../../usr/lib/sysimage/rpm")
        .db(&[(1, base_pkg()), (2, hello("1.0"))])
        .file("usr/lib/sysimage/rpm/Index.db", b"index")
        .done()
}

#[test]
fn package_changes_whiteouts_and_drift() {
    let layers = vec![
        base_layer(),
        // rpm -U hello-1.1 (zstd): new content, new rpmdb entry.
        zstd(
            &Tar::default()
                .dir("usr/bin/")
                .file("usr/bin/hello", b"hello 1.1\n")
                .dir("usr/lib/sysimage/rpm/")
                .db(&[(1, base_pkg()), (3, hello("1.1"))])
                .done(),
        ),
        // rm -rf /usr/share/doc/hello; an edited %config file; a %ghost created; a touched
        // binary (same content); a file nobody owns (gzip).
        gzip(
            &Tar::default()
                .dir("usr/share/doc/")
                .file("usr/share/doc/.wh.hello", b"")
                .file("etc/conf", b"a=2\n")
                .file("etc/ghost", b"made at run time\n")
                .file("usr/bin/hello", b"hello 1.1\n")
                .file("etc/unowned", b"x")
                .done(),
        ),
        // An opaque /etc with some files put back: base.txt is gone, conf is back as packaged.
        Tar::default()
            .dir("etc/")
            .file("etc/.wh..wh..opq", b"")
            .file("etc/conf", b"a=1\n")
            .file("etc/new", b"new")
            .done(),
        // The README returns, as packaged; /usr/bin/hello becomes a symlink; /etc/base.txt
        // returns as a hard link to the README (so with the README's content).
        Tar::default()
            .dir("usr/share/doc/hello/")
            .file("usr/share/doc/hello/README", b"doc\n")
            .symlink("usr/bin/hello", "busybox")
            .hardlink("etc/base.txt", "usr/share/doc/hello/README")
            .done(),
        // The rpmdb goes away (rpm --rebuilddb gone wrong, or microdnf cleanup).
        Tar::default()
            .dir("usr/lib/sysimage/")
            .file("usr/lib/sysimage/.wh.rpm", b"")
            .done(),
    ];
    let a = analyze(layers.into_iter().map(input), AnalyzeOptions::per_layer()).unwrap();
    let l = &a.layers;
    assert_eq!(l.len(), 6);

    assert_eq!(
        names(&l[0].packages.added),
        ["base-1-1.noarch", "hello-1.0-1.noarch"]
    );
    assert!(l[0].drift.is_empty());
    assert!(l[0].rpmdb_changed);
    assert_eq!(l[0].compression, Compression::None);
    assert!(l[0].diff_id.starts_with("sha256:"));

    assert_eq!(l[1].compression, Compression::Zstd);
    assert_eq!(l[1].packages.upgraded.len(), 1);
    let up = &l[1].packages.upgraded[0];
    assert_eq!(
        (up.from.evr.as_str(), up.to.evr.as_str()),
        ("1.0-1", "1.1-1")
    );
    assert!(l[1].packages.added.is_empty() && l[1].packages.removed.is_empty());
    assert!(
        l[1].drift.is_empty(),
        "rpm changed hello itself: {:?}",
        l[1].drift
    );

    assert_eq!(l[2].compression, Compression::Gzip);
    assert!(!l[2].rpmdb_changed);
    assert!(l[2].packages.is_empty());
    use DriftChange::*;
    assert_eq!(
        drift_of(&l[2]),
        [
            (
                "/etc/conf".into(),
                Modified,
                Some(true),
                true,
                "base-1-1.noarch".into()
            ),
            (
                "/usr/bin/hello".into(),
                Modified,
                Some(false),
                false,
                "hello-1.1-1.noarch".into()
            ),
            (
                "/usr/share/doc/hello/README".into(),
                Deleted,
                None,
                false,
                "hello-1.1-1.noarch".into()
            ),
        ]
    );

    assert_eq!(
        drift_of(&l[3]),
        [
            (
                "/etc/base.txt".into(),
                Deleted,
                None,
                false,
                "base-1-1.noarch".into()
            ),
            (
                "/etc/conf".into(),
                Modified,
                Some(false),
                true,
                "base-1-1.noarch".into()
            ),
        ],
        "the opaque /etc hides base.txt and the ghost; conf is back as packaged"
    );

    assert_eq!(
        drift_of(&l[4]),
        [
            (
                "/etc/base.txt".into(),
                Added,
                Some(true),
                false,
                "base-1-1.noarch".into()
            ),
            (
                "/usr/bin/hello".into(),
                Modified,
                Some(true),
                false,
                "hello-1.1-1.noarch".into()
            ),
            (
                "/usr/share/doc/hello/README".into(),
                Added,
                Some(false),
                false,
                "hello-1.1-1.noarch".into()
            ),
        ]
    );

    assert!(l[5].rpmdb_changed);
    assert_eq!(
        names(&l[5].packages.removed),
        ["base-1-1.noarch", "hello-1.1-1.noarch"]
    );
    assert_eq!(l[5].package_count, 0);
    assert!(
        l[5].drift.is_empty(),
        "packages removed from the rpmdb own nothing"
    );
    assert!(a.packages.is_empty());
}

#[test]
fn final_list_mode_reads_the_rpmdb_once() {
    let layers = vec![
        base_layer(),
        gzip(
            &Tar::default()
                .db(&[
                    (1, base_pkg()),
                    (3, hello("1.1")),
                    (4, pkg("extra", "2", &[])),
                ])
                .done(),
        ),
        Tar::default().file("etc/conf", b"changed").done(),
    ];
    let a = analyze(layers.into_iter().map(input), AnalyzeOptions::default()).unwrap();
    assert!(a.layers.is_empty());
    let nevras: Vec<String> = a.packages.iter().map(Package::nevra).collect();
    assert_eq!(
        nevras,
        ["base-1-1.noarch", "hello-1.1-1.noarch", "extra-2-1.noarch"]
    );
}

#[test]
fn rpmdb_through_symlinked_directories() {
    // An older layout: the database in /var/lib/rpm, and a later layer writing it through
    // /usr/lib/sysimage/rpm, a symlink to it.
    let layers = vec![
        Tar::default()
            .dir("var/lib/rpm/")
            .file("var/lib/rpm/Packages.db", &ndb(&[(1, base_pkg())]))
            .dir("usr/lib/sysimage/")
            .symlink("usr/lib/sysimage/rpm", "../../../var/lib/rpm")
            .done(),
        Tar::default()
            .file(
                "usr/lib/sysimage/rpm/Packages.db",
                &ndb(&[(1, base_pkg()), (2, hello("1.0"))]),
            )
            .done(),
    ];
    let a = analyze(layers.into_iter().map(input), AnalyzeOptions::per_layer()).unwrap();
    assert_eq!(names(&a.layers[1].packages.added), ["hello-1.0-1.noarch"]);
    assert_eq!(a.packages.len(), 2);
}

#[test]
fn rpmdb_directory_elsewhere_behind_a_symlink() {
    // /var/lib/rpm links to /srv/rpmdb; rpm's writes show up in layer diffs at the real path.
    let layers = vec![
        Tar::default()
            .dir("srv/rpmdb/")
            .file("srv/rpmdb/Packages.db", &ndb(&[(1, base_pkg())]))
            .symlink("var/lib/rpm", "/srv/rpmdb")
            .done(),
        Tar::default()
            .file(
                "srv/rpmdb/Packages.db",
                &ndb(&[(1, base_pkg()), (2, hello("1.0"))]),
            )
            .done(),
        Tar::default().file("srv/rpmdb/.wh.Packages.db", b"").done(),
    ];
    let a = analyze(layers.into_iter().map(input), AnalyzeOptions::per_layer()).unwrap();
    assert_eq!(a.layers[0].package_count, 1);
    assert_eq!(names(&a.layers[1].packages.added), ["hello-1.0-1.noarch"]);
    assert_eq!(a.layers[2].packages.removed.len(), 2);
}

#[test]
fn hostile_entries_are_skipped_and_nothing_leaves_the_work_dir() {
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().to_string_lossy().into_owned();
    let mut t = Tar::default()
        .file("../../../../tmp/evil", b"x")
        .file("usr/../../evil2", b"x")
        .file("/abs/ok", b"fine")
        .symlink("var/lib/rpm", &target)
        .file("var/lib/rpm/Packages.db", &ndb(&[(1, base_pkg())]))
        .symlink("usr/lib/sysimage/rpm", "../../../../../../..")
        .hardlink("usr/lib/sysimage/rpm/Packages", "../../../../etc/shadow");
    // A GNU long name with `..` in it.
    let long = format!("{}/../../../../../../../../x", "a/".repeat(2));
    t = t.entry("././@LongLink", b'L', "", format!("{long}\0").as_bytes());
    t = t.file("placeholder", b"y");
    let a = analyze([input(t.done())], AnalyzeOptions::per_layer()).unwrap();
    let w = &a.layers[0].warnings;
    assert_eq!(
        w.iter().filter(|w| w.contains("leaves the root")).count(),
        3,
        "{w:?}"
    );
    assert!(w.iter().any(|w| w.contains("hard link")), "{w:?}");
    // The database written "through" the absolute symlink lands at that path inside the image,
    // where rpm finds it through the same link; the host directory stays untouched.
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    assert_eq!(a.packages.len(), 1);
}

#[test]
fn oversized_rpmdb_files_are_refused() {
    let mut t = Tar::default();
    // The header claims 3 GiB; nothing is read before the size is checked.
    t.raw(
        b"usr/lib/sysimage/rpm/rpmdb.sqlite",
        b'0',
        b"",
        b"",
        3 << 30,
    );
    let err = analyze([input(t.0)], AnalyzeOptions::default()).unwrap_err();
    assert!(matches!(err, LayerError::RpmdbTooLarge { .. }), "{err}");
    let small = AnalyzeOptions {
        max_rpmdb_file: 10,
        ..AnalyzeOptions::default()
    };
    let t = Tar::default().db(&[(1, base_pkg())]).done();
    let err = analyze([input(t)], small).unwrap_err();
    assert!(err.to_string().contains("limit 10"), "{err}");
}

#[test]
fn diff_id_is_checked() {
    let t = Tar::default().file("a", b"b").done();
    let want = format!("sha256:{}", sha256_hex(&t));
    let a = analyze(
        [
            LayerInput {
                diff_id: Some(want.clone()),
                created_by: Some("RUN x".into()),
                reader: Box::new(io::Cursor::new(gzip(&t))),
            },
            LayerInput {
                diff_id: Some("sha256:0000".into()),
                created_by: None,
                reader: Box::new(io::Cursor::new(t.clone())),
            },
        ],
        AnalyzeOptions::per_layer(),
    )
    .unwrap();
    assert_eq!(a.layers[0].diff_id, want);
    assert!(a.layers[0].warnings.is_empty());
    assert_eq!(a.layers[0].created_by.as_deref(), Some("RUN x"));
    assert!(
        a.layers[1].warnings[0].contains(&want),
        "{:?}",
        a.layers[1].warnings
    );
}

#[test]
fn garbage_layers_fail_with_the_layer_number() {
    let err = analyze(
        [
            input(base_layer()),
            input(gzip(b"not a tar at all, just some bytes")),
        ],
        AnalyzeOptions::per_layer(),
    )
    .unwrap_err();
    assert!(err.to_string().starts_with("layer 1:"), "{err}");
}

fn p(name: &str, epoch: Option<u32>, v: &str, arch: &str, instance: u32) -> Package {
    Package {
        instance,
        name: name.into(),
        version: v.into(),
        release: "1".into(),
        epoch,
        arch: Some(arch.into()),
        size: None,
        sigmd5: Some(format!("{name}{v}{arch}")),
        buildtime: None,
        modularitylabel: None,
        signature_key: None,
        sourcerpm: None,
        license: None,
        vendor: None,
        summary: None,
        digest_algo: DigestAlgo::Sha256,
        files: Vec::new(),
    }
}

#[test]
fn package_diff_rules() {
    let before = vec![
        p("kernel", None, "6.1", "x86_64", 1),
        p("glibc", None, "2.38", "x86_64", 2),
        p("glibc", None, "2.38", "i686", 3),
        p("tool", Some(1), "1.0", "noarch", 4),
        p("py", None, "3.12~rc1", "noarch", 5),
        p("gone", None, "1", "noarch", 6),
        p("same", None, "1", "noarch", 7),
    ];
    let after = vec![
        p("kernel", None, "6.1", "x86_64", 1),
        p("kernel", None, "6.2", "x86_64", 10),
        p("glibc", None, "2.39", "x86_64", 11),
        p("glibc", None, "2.39", "i686", 12),
        p("tool", None, "9.0", "x86_64", 13),
        p("py", None, "3.12", "noarch", 14),
        p("same", None, "1", "noarch", 15),
        p("new", None, "1", "noarch", 16),
    ];
    let (ch, kept) = diff_packages(&before, &after);
    assert_eq!(kept, [true, false, false, false, false, false, false]);
    assert_eq!(names(&ch.added), ["kernel-6.2-1.x86_64", "new-1-1.noarch"]);
    assert_eq!(names(&ch.removed), ["gone-1-1.noarch"]);
    let ups: Vec<(&str, &str)> = ch
        .upgraded
        .iter()
        .map(|c| (c.from.nevra.as_str(), c.to.nevra.as_str()))
        .collect();
    assert_eq!(
        ups,
        [
            ("glibc-2.38-1.i686", "glibc-2.39-1.i686"),
            ("glibc-2.38-1.x86_64", "glibc-2.39-1.x86_64"),
            ("py-3.12~rc1-1.noarch", "py-3.12-1.noarch"),
        ]
    );
    // An epoch wins over any version: 1:1.0 -> 9.0 is a downgrade, and an arch change.
    assert_eq!(ch.downgraded.len(), 1);
    assert_eq!(ch.downgraded[0].from.evr, "1:1.0-1");
    assert_eq!(ch.downgraded[0].to.nevra, "tool-9.0-1.x86_64");
    assert_eq!(ch.reinstalled.len(), 1);
    assert_eq!(ch.reinstalled[0].to.nevra, "same-1-1.noarch");
}

#[test]
fn damaged_layers_are_errors_not_panics() {
    use crate::rpmdb::testutil::noise;
    let good = base_layer();
    let compressed = [gzip(&good), zstd(&good)];
    let mut inputs: Vec<Vec<u8>> = Vec::new();
    for seed in 1..40u64 {
        inputs.push(noise(seed, (seed as usize * 977) % 5000));
        // A valid tar with bytes flipped in its headers and data.
        let mut flipped = good.clone();
        let n = noise(seed, 8);
        for (i, b) in n.iter().enumerate() {
            let at = (usize::from(*b) * 131 + i * 4099 + seed as usize * 17) % flipped.len();
            flipped[at] ^= 0xa5;
        }
        inputs.push(flipped);
    }
    for cut in (0..good.len()).step_by(good.len() / 37 + 1) {
        inputs.push(good[..cut].to_vec());
    }
    for c in &compressed {
        for cut in (0..c.len()).step_by(c.len() / 13 + 1) {
            inputs.push(c[..cut].to_vec());
        }
    }
    for bytes in inputs {
        for opts in [AnalyzeOptions::per_layer(), AnalyzeOptions::default()] {
            // Ok or Err, never a panic or a hang.
            let _ = analyze([input(base_layer()), input(bytes.clone())], opts);
        }
    }
}
