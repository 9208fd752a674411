//! `containerbuild rpm-manifest` end to end.
//!
//! - `layered_image_every_source_kind`: one image built with buildah from the fixture base
//!   (`cb-base:1`) with a layer per case (upgrade, install, RPM-owned files deleted, a binary
//!   overwritten, a %config file edited), exported as docker-archive (`.tar`, `.tar.gz`), OCI
//!   layouts (gzip and zstd layers), pushed to a loopback registry, mounted as a rootfs; the
//!   per-layer report must name exactly those changes in the right layers, and the final
//!   package list must equal `rpm -qa` on the image's database. Needs the fixture tools (see
//!   `tests/common/fixtures.rs`); skips without them unless `CI` is set.
//! - `synthetic_archives_and_schema`: docker-archives this test writes itself around a real
//!   sqlite rpmdb from `../shared/fixtures/rpmdb` (plain, gzip and zstd compressed as a whole,
//!   layers out of order), and the report checked against `plugin-spec/rpm-manifest.schema.json`.
//!
//! The binary: `CONTAINERBUILD_BIN`, else the one cargo built for this run
//! (`target/release/containerbuild` under `cargo test --release`).

#[path = "common/fixtures.rs"]
mod fixtures;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use fixtures::{Fixtures, TestRegistry, buildah_cmd, run_ok, tools_present};

fn bin() -> PathBuf {
    std::env::var_os("CONTAINERBUILD_BIN")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_containerbuild")))
}

fn cli(args: &[&str]) -> Output {
    Command::new(bin())
        .arg("rpm-manifest")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run containerbuild")
}

/// `rpm-manifest ARGS` (JSON) that must succeed.
fn report(args: &[&str]) -> Value {
    let out = cli(args);
    assert!(
        out.status.success(),
        "rpm-manifest {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "rpm-manifest {args:?}: not JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn skip(what: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{what} (CI is set, so this is a failure)");
    }
    eprintln!("skipping: {what}");
}

// ---------------------------------------------------------------------------------------------
// A small structural JSON Schema check: type, const, enum, required, properties,
// additionalProperties: false, items, minimum and local $refs, which is all the schema uses
// (`pattern` is not checked).

fn schema() -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("plugin-spec/rpm-manifest.schema.json");
    serde_json::from_str(&std::fs::read_to_string(&p).expect("read the schema"))
        .expect("schema JSON")
}

fn validate(root: &Value, s: &Value, v: &Value, at: &str, errs: &mut Vec<String>) {
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let name = r.strip_prefix("#/$defs/").expect("local $ref");
        return validate(root, &root["$defs"][name], v, at, errs);
    }
    if let Some(c) = s.get("const")
        && v != c
    {
        errs.push(format!("{at}: {v} is not {c}"));
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array)
        && !e.contains(v)
    {
        errs.push(format!("{at}: {v} not in {e:?}"));
    }
    if let Some(t) = s.get("type") {
        let types: Vec<&str> = match t {
            Value::String(x) => vec![x.as_str()],
            Value::Array(xs) => xs.iter().filter_map(Value::as_str).collect(),
            _ => panic!("bad type in schema at {at}"),
        };
        let ok = types.iter().any(|t| match *t {
            "string" => v.is_string(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            "null" => v.is_null(),
            "array" => v.is_array(),
            "object" => v.is_object(),
            other => panic!("unknown type {other}"),
        });
        if !ok {
            errs.push(format!("{at}: {v} is not {types:?}"));
        }
    }
    if let (Some(min), Some(n)) = (s.get("minimum").and_then(Value::as_f64), v.as_f64())
        && n < min
    {
        errs.push(format!("{at}: {n} < {min}"));
    }
    if let Some(obj) = v.as_object() {
        for r in s
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let r = r.as_str().unwrap();
            if !obj.contains_key(r) {
                errs.push(format!("{at}: missing {r}"));
            }
        }
        let props = s.get("properties").and_then(Value::as_object);
        for (k, val) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(ps) => validate(root, ps, val, &format!("{at}.{k}"), errs),
                None if s.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    errs.push(format!("{at}: unexpected key {k}"))
                }
                None => {}
            }
        }
    }
    if let (Some(items), Some(arr)) = (s.get("items"), v.as_array()) {
        for (i, x) in arr.iter().enumerate() {
            validate(root, items, x, &format!("{at}[{i}]"), errs);
        }
    }
}

fn assert_schema(r: &Value, what: &str) {
    let root = schema();
    let mut errs = Vec::new();
    validate(&root, &root, r, "$", &mut errs);
    assert!(
        errs.is_empty(),
        "{what} does not match the schema:\n{}",
        errs.join("\n")
    );
}

#[test]
fn schema_checker_catches_mistakes() {
    let root = schema();
    let bad = json!({"schema_version": 2, "source": {"kind": "tarball"}, "package_count": -1,
                     "components": [{"type": "rpm"}], "extra": true});
    let mut errs = Vec::new();
    validate(&root, &root, &bad, "$", &mut errs);
    for want in [
        "$.schema_version",
        "$.source: missing reference",
        "$.source.kind",
        "$.package_count",
        "$.components[0]: missing name",
        "unexpected key extra",
    ] {
        assert!(
            errs.iter().any(|e| e.contains(want)),
            "{want} not in {errs:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers over reports.

fn layers(r: &Value) -> &Vec<Value> {
    r["layers"].as_array().expect("layers")
}

fn nevras(l: &Value, list: &str) -> Vec<String> {
    l["packages"][list]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["nevra"].as_str().unwrap().to_owned())
        .collect()
}

/// (name, from evr, to evr) of a layer's upgraded/downgraded/reinstalled list.
fn changes(l: &Value, list: &str) -> Vec<(String, String, String)> {
    l["packages"][list]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["from"]["evr"].as_str().unwrap().to_owned(),
                c["to"]["evr"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// (path, change, package, digest_mismatch, config) of a layer's drift.
fn drift(l: &Value) -> Vec<(String, String, String, Value, bool)> {
    l["drift"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["path"].as_str().unwrap().to_owned(),
                d["change"].as_str().unwrap().to_owned(),
                d["package"].as_str().unwrap().to_owned(),
                d["digest_mismatch"].clone(),
                d["config"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// `name-[epoch:]version-release.arch sigmd5` of the report's components.
fn component_lines(r: &Value) -> BTreeSet<String> {
    r["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let epoch = c["epoch"]
                .as_u64()
                .map(|e| format!("{e}:"))
                .unwrap_or_default();
            format!(
                "{}-{epoch}{}-{}.{} {}",
                c["name"].as_str().unwrap(),
                c["version"].as_str().unwrap(),
                c["release"].as_str().unwrap(),
                c["arch"].as_str().unwrap_or("(none)"),
                c["sigmd5"].as_str().unwrap_or("(none)")
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The layered image.

const CONTAINERFILE: &str = "\
FROM @BASE@
COPY cb-hello-1.1-1.noarch.rpm cb-extra-1.0-1.noarch.rpm /tmp/
RUN rpm -Uvh /tmp/cb-hello-1.1-1.noarch.rpm
RUN rpm -i /tmp/cb-extra-1.0-1.noarch.rpm && rm -f /tmp/cb-hello-1.1-1.noarch.rpm /tmp/cb-extra-1.0-1.noarch.rpm
LABEL purpose=rpm-manifest-test
RUN rm -rf /usr/share/doc/cb-hello /usr/share/doc/cb-filesystem/README
COPY cb-hello-override /usr/bin/cb-hello
RUN echo fixture=2 > /etc/cb-filesystem/settings.conf
";

/// What every image source must report for the image above.
fn check_layers(r: &Value, what: &str) {
    let ls = layers(r);
    assert_eq!(ls.len(), 7, "{what}: layers");
    let created = |i: usize| ls[i]["created_by"].as_str().unwrap_or("").to_owned();
    for (i, l) in ls.iter().enumerate() {
        assert_eq!(l["index"], i, "{what}");
        assert_eq!(l["warnings"], json!([]), "{what}: layer {i} warnings");
    }

    // 0: the base image: its three packages, no drift.
    assert_eq!(
        nevras(&ls[0], "added"),
        [
            "cb-epoch-2:1.0-1.noarch",
            "cb-filesystem-1.0-1.noarch",
            "cb-hello-1.0-1.noarch"
        ],
        "{what}: base layer"
    );
    assert_eq!(ls[0]["rpmdb_changed"], true);
    assert_eq!(drift(&ls[0]), [], "{what}: base layer drift");

    // 1: COPY of the RPM files to /tmp: nothing for the rpmdb.
    assert!(created(1).contains("COPY"), "{what}: {}", created(1));
    assert_eq!(ls[1]["rpmdb_changed"], false, "{what}");
    assert_eq!(ls[1]["package_count"], 3, "{what}");

    // 2: the upgrade, and only that.
    assert!(created(2).contains("rpm -Uvh"), "{what}: {}", created(2));
    assert_eq!(
        changes(&ls[2], "upgraded"),
        [(
            "cb-hello".to_owned(),
            "1.0-1".to_owned(),
            "1.1-1".to_owned()
        )],
        "{what}: upgrade layer"
    );
    for list in ["added", "removed"] {
        assert_eq!(nevras(&ls[2], list), Vec::<String>::new(), "{what}: {list}");
    }
    assert_eq!(changes(&ls[2], "downgraded"), []);
    assert_eq!(changes(&ls[2], "reinstalled"), []);

    // 3: the install.
    assert!(created(3).contains("rpm -i"), "{what}: {}", created(3));
    assert_eq!(nevras(&ls[3], "added"), ["cb-extra-1.0-1.noarch"], "{what}");
    assert_eq!(changes(&ls[3], "upgraded"), []);
    assert_eq!(ls[3]["package_count"], 4, "{what}");

    // Layers that changed RPMs only through rpm have no drift.
    for (i, l) in ls.iter().enumerate().take(4).skip(1) {
        assert_eq!(drift(l), [], "{what}: layer {i} drift");
    }

    // 4 (after the empty LABEL layer): RPM-owned files deleted.
    assert!(created(4).contains("rm -rf"), "{what}: {}", created(4));
    assert_eq!(ls[4]["rpmdb_changed"], false, "{what}");
    let null = Value::Null;
    assert_eq!(
        drift(&ls[4]),
        [
            (
                "/usr/share/doc/cb-filesystem/README".to_owned(),
                "deleted".to_owned(),
                "cb-filesystem-1.0-1.noarch".to_owned(),
                null.clone(),
                false
            ),
            (
                "/usr/share/doc/cb-hello/README".to_owned(),
                "deleted".to_owned(),
                "cb-hello-1.1-1.noarch".to_owned(),
                null.clone(),
                false
            ),
        ],
        "{what}: deletion layer"
    );

    // 5: a binary overwritten by COPY.
    assert_eq!(
        drift(&ls[5]),
        [(
            "/usr/bin/cb-hello".to_owned(),
            "modified".to_owned(),
            "cb-hello-1.1-1.noarch".to_owned(),
            Value::Bool(true),
            false
        )],
        "{what}: overwrite layer"
    );

    // 6: a %config file edited by RUN.
    assert_eq!(
        drift(&ls[6]),
        [(
            "/etc/cb-filesystem/settings.conf".to_owned(),
            "modified".to_owned(),
            "cb-filesystem-1.0-1.noarch".to_owned(),
            Value::Bool(true),
            true
        )],
        "{what}: config layer"
    );
    for (i, l) in ls.iter().enumerate().skip(4) {
        for list in ["added", "removed"] {
            assert_eq!(nevras(l, list), Vec::<String>::new(), "{what}: {i} {list}");
        }
        assert_eq!(changes(l, "upgraded"), [], "{what}: {i}");
    }
    assert_eq!(r["package_count"], 4, "{what}");
}

fn diff_ids(r: &Value) -> Vec<String> {
    layers(r)
        .iter()
        .map(|l| l["diff_id"].as_str().unwrap().to_owned())
        .collect()
}

fn compressions(r: &Value) -> BTreeSet<String> {
    layers(r)
        .iter()
        .map(|l| l["compression"].as_str().unwrap().to_owned())
        .collect()
}

fn gzip_file(src: &Path, dst: &Path) {
    let mut e = flate2::write::GzEncoder::new(
        std::fs::File::create(dst).unwrap(),
        flate2::Compression::fast(),
    );
    std::io::copy(&mut std::fs::File::open(src).unwrap(), &mut e).unwrap();
    e.finish().unwrap();
}

#[test]
fn layered_image_every_source_kind() {
    if !tools_present() {
        return;
    }
    let registry = TestRegistry::start();
    let fx = Fixtures::build(&registry.host_port());
    let storage = fx.scratch("buildah");
    let buildah = |args: &[&str]| run_ok(buildah_cmd(&storage).args(args));

    // Build context: the two RPMs, the file that overwrites /usr/bin/cb-hello.
    let ctx = fx.scratch("context");
    for f in ["cb-hello-1.1-1.noarch.rpm", "cb-extra-1.0-1.noarch.rpm"] {
        std::fs::copy(fx.rpm(f), ctx.join(f)).unwrap();
    }
    std::fs::write(
        ctx.join("cb-hello-override"),
        "#!/bin/sh\necho overridden\n",
    )
    .unwrap();
    std::fs::write(
        ctx.join("Containerfile"),
        CONTAINERFILE.replace("@BASE@", &fx.base_ref()),
    )
    .unwrap();
    let image = "localhost/rpm-manifest-test:1";
    buildah(&[
        "bud",
        "--quiet",
        "--layers",
        "--isolation",
        "chroot",
        "--tls-verify=false",
        "-t",
        image,
        "-f",
        ctx.join("Containerfile").to_str().unwrap(),
        ctx.to_str().unwrap(),
    ]);

    // Every export.
    let out = fx.scratch("exports");
    let archive = out.join("image.tar");
    let archive_gz = out.join("image.tar.gz");
    let layout = out.join("layout");
    let layout_zstd = out.join("layout-zstd");
    let s = |p: &Path| p.to_str().unwrap().to_owned();
    buildah(&[
        "push",
        "--quiet",
        image,
        &format!("docker-archive:{}", s(&archive)),
    ]);
    gzip_file(&archive, &archive_gz);
    buildah(&["push", "--quiet", image, &format!("oci:{}", s(&layout))]);
    buildah(&[
        "push",
        "--quiet",
        "--compression-format",
        "zstd",
        image,
        &format!("oci:{}", s(&layout_zstd)),
    ]);
    let remote = format!("{}/rpm-manifest-test:1", registry.host_port());
    buildah(&[
        "push",
        "--quiet",
        "--tls-verify=false",
        image,
        &format!("docker://{remote}"),
    ]);
    let ctr = buildah(&["from", "--quiet", image]);
    let rootfs = PathBuf::from(buildah(&["mount", &ctr]));
    let rpmdb_dir = rootfs.join("usr/lib/sysimage/rpm");

    // Per-layer reports from every image kind.
    let from_archive = report(&[&s(&archive), "--layers"]);
    assert_eq!(from_archive["source"]["kind"], "docker-archive");
    check_layers(&from_archive, "docker-archive .tar");
    assert_eq!(
        compressions(&from_archive),
        BTreeSet::from(["none".to_owned()])
    );
    assert_schema(&from_archive, "the docker-archive report");

    let from_gz = report(&[&s(&archive_gz), "--layers"]);
    check_layers(&from_gz, "docker-archive .tar.gz");

    let from_layout = report(&[&s(&layout), "--layers", "--format", "json"]);
    assert_eq!(from_layout["source"]["kind"], "oci-layout");
    check_layers(&from_layout, "OCI layout");
    assert_eq!(
        compressions(&from_layout),
        BTreeSet::from(["gzip".to_owned()])
    );

    let from_zstd = report(&[&s(&layout_zstd), "--layers"]);
    check_layers(&from_zstd, "OCI layout, zstd");
    assert_eq!(
        compressions(&from_zstd),
        BTreeSet::from(["zstd".to_owned()])
    );

    let docker_ref = format!("docker://{remote}");
    let from_registry = report(&[&docker_ref, "--layers", "--tls-verify=false"]);
    assert_eq!(from_registry["source"]["kind"], "registry");
    check_layers(&from_registry, "registry");
    assert_schema(&from_registry, "the registry report");

    for other in [&from_gz, &from_layout, &from_zstd, &from_registry] {
        assert_eq!(
            diff_ids(other),
            diff_ids(&from_archive),
            "same image, same diff_ids"
        );
        assert_eq!(other["components"], from_archive["components"]);
    }

    // The plain HTTP registry with TLS verification on: skopeo's error, exit status 1.
    let refused = cli(&[&docker_ref]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("skopeo"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // The text form of the same report.
    let text = cli(&[&s(&archive), "--layers", "--format", "text"]);
    assert!(text.status.success());
    let text = String::from_utf8(text.stdout).unwrap();
    eprintln!("{text}");
    for want in [
        "  + cb-hello-1.0-1.noarch",
        "  ↑ cb-hello.noarch 1.0-1 -> 1.1-1",
        "  + cb-extra-1.0-1.noarch",
        "  ! deleted /usr/share/doc/cb-hello/README (cb-hello-1.1-1.noarch)",
        "  ! modified /usr/bin/cb-hello (cb-hello-1.1-1.noarch) [digest mismatch]",
        "  ! modified /etc/cb-filesystem/settings.conf (cb-filesystem-1.0-1.noarch) [digest mismatch, %config]",
        "packages (4):",
        "  cb-epoch-2:1.0-1.noarch",
    ] {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }

    // Directories: the final list only; --layers is refused.
    let from_rootfs = report(&[&s(&rootfs)]);
    assert_eq!(from_rootfs["source"]["kind"], "rootfs");
    assert!(from_rootfs.get("layers").is_none());
    let from_dbdir = report(&[&s(&rpmdb_dir)]);
    assert_eq!(from_dbdir["source"]["kind"], "rpmdb-dir");
    assert_schema(&from_dbdir, "the rpmdb-dir report");
    let no_layers = cli(&[&s(&rootfs), "--layers"]);
    assert!(!no_layers.status.success());
    assert!(String::from_utf8_lossy(&no_layers.stderr).contains("no layers"));
    let final_list = report(&[&s(&archive)]);
    assert!(final_list.get("layers").is_none());
    for r in [&from_rootfs, &from_dbdir, &final_list] {
        assert_eq!(r["components"], from_archive["components"]);
    }

    // rpm itself on a copy of the image's database (it writes -shm/-wal files beside it).
    let db_copy = fx.scratch("rpmdb-copy");
    for e in std::fs::read_dir(&rpmdb_dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), db_copy.join(e.file_name())).unwrap();
        }
    }
    let qa = run_ok(Command::new("rpm").arg("--dbpath").arg(&db_copy).args([
        "-qa",
        "--qf",
        "%{NAME}-%|EPOCH?{%{EPOCH}:}|%{VERSION}-%{RELEASE}.%{ARCH} %{SIGMD5}\\n",
    ]));
    let rpm_lines: BTreeSet<String> = qa
        .lines()
        .filter(|l| !l.starts_with("gpg-pubkey-"))
        .map(str::to_owned)
        .collect();
    assert_eq!(component_lines(&from_archive), rpm_lines, "rpm -qa");
    assert_eq!(rpm_lines.len(), 4);

    buildah(&["umount", &ctr]);
    buildah(&["rm", &ctr]);
}

// ---------------------------------------------------------------------------------------------
// Hand-made docker-archives around a real rpmdb.

fn tar_append(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, path, data).unwrap();
}

fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (p, d) in files {
        tar_append(&mut b, p, d);
    }
    b.into_inner().unwrap()
}

fn sha256(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// A docker-archive of `layers` (uncompressed tars; stored gzip-compressed where `gz`), in
/// archive order `order`, with a config whose history has an empty-layer entry in the middle.
fn docker_archive(layers: &[(Vec<u8>, bool)], order: &[usize]) -> Vec<u8> {
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|(t, _)| format!("sha256:{}", sha256(t)))
        .collect();
    let mut history = vec![json!({"created_by": "layer 0"})];
    history.push(json!({"created_by": "LABEL a=b", "empty_layer": true}));
    for i in 1..layers.len() {
        history.push(json!({"created_by": format!("layer {i}")}));
    }
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    }))
    .unwrap();
    let config_name = format!("{}.json", sha256(&config));
    let names: Vec<String> = layers
        .iter()
        .map(|(t, _)| format!("{}.tar", sha256(t)))
        .collect();
    let manifest = serde_json::to_vec(&json!([{
        "Config": config_name,
        "RepoTags": ["localhost/synthetic:1"],
        // The second layer through a legacy `<id>/layer.tar` symlink.
        "Layers": names.iter().enumerate().map(|(i, n)| if i == 1 {
            "legacy/layer.tar".to_owned()
        } else {
            n.clone()
        }).collect::<Vec<_>>(),
    }]))
    .unwrap();
    let mut b = tar::Builder::new(Vec::new());
    for &i in order {
        let (t, gz) = &layers[i];
        let data = if *gz {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(t).unwrap();
            e.finish().unwrap()
        } else {
            t.clone()
        };
        tar_append(&mut b, &names[i], &data);
    }
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, "legacy/layer.tar", format!("../{}", names[1]))
        .unwrap();
    tar_append(&mut b, &config_name, &config);
    tar_append(&mut b, "manifest.json", &manifest);
    b.into_inner().unwrap()
}

#[test]
fn synthetic_archives_and_schema() {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/rpmdb/cbl-mariner-2.0");
    if !fixture.is_dir() {
        return skip(&format!("{} is absent", fixture.display()));
    }
    let db = std::fs::read(fixture.join("rpmdb.sqlite")).unwrap();
    let packages =
        containerbuild::rpmdb::read_dir(&fixture, containerbuild::rpmdb::Detail::Files).unwrap();
    // A regular file some package owns, with its digest.
    let (owner, file) = packages
        .iter()
        .flat_map(|p| p.files.iter().map(move |f| (p, f)))
        .find(|(_, f)| f.mode & 0o170000 == 0o100000 && f.digest.is_some() && f.flags & 64 == 0)
        .expect("an owned regular file");
    let owned = file.path.trim_start_matches('/').to_owned();

    let layer0 = tar_of(&[
        ("var/lib/rpm/rpmdb.sqlite", &db),
        (&owned, b"as the image had it"),
    ]);
    let layer1 = tar_of(&[(&owned, b"replaced")]);
    let layer2 = tar_of(&[("etc/motd", b"hello")]);
    let tars = [(layer0, false), (layer1, true), (layer2, false)];

    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("image.tar");
    std::fs::write(&plain, docker_archive(&tars, &[0, 1, 2])).unwrap();
    let gz = dir.path().join("image.tar.gz");
    gzip_file(&plain, &gz);
    let zst = dir.path().join("image.tar.zst");
    std::fs::write(
        &zst,
        ruzstd::encoding::compress_to_vec(
            std::fs::read(&plain).unwrap().as_slice(),
            ruzstd::encoding::CompressionLevel::Fastest,
        ),
    )
    .unwrap();
    let shuffled = dir.path().join("shuffled.tar.gz");
    let tmp = dir.path().join("shuffled.tar");
    std::fs::write(&tmp, docker_archive(&tars, &[2, 0, 1])).unwrap();
    gzip_file(&tmp, &shuffled);

    let expected: BTreeSet<String> = {
        let r = json!({"components": serde_json::to_value(containerbuild::rpmdb::components(&packages)).unwrap()});
        component_lines(&r)
    };
    let mut first: Option<Value> = None;
    for p in [&plain, &gz, &zst, &shuffled] {
        let what = p.display().to_string();
        let r = report(&[p.to_str().unwrap(), "--layers"]);
        assert_schema(&r, &what);
        assert_eq!(component_lines(&r), expected, "{what}");
        let ls = layers(&r);
        assert_eq!(ls.len(), 3, "{what}");
        assert_eq!(ls[0]["created_by"], "layer 0");
        assert_eq!(
            ls[1]["created_by"], "layer 1",
            "{what}: empty_layer skipped"
        );
        assert_eq!(ls[1]["compression"], "gzip");
        assert_eq!(nevras(&ls[0], "added").len(), packages.len(), "{what}");
        assert_eq!(drift(&ls[0]), [], "{what}: installed in the same layer");
        assert_eq!(
            drift(&ls[1]),
            [(
                format!("/{owned}"),
                "modified".to_owned(),
                owner.nevra(),
                Value::Bool(true),
                file.flags & 1 != 0
            )],
            "{what}"
        );
        assert_eq!(drift(&ls[2]), [], "{what}");
        for l in ls {
            assert_eq!(l["warnings"], json!([]), "{what}");
        }
        match &first {
            None => first = Some(r),
            Some(f) => assert_eq!(layers(f), ls, "{what}: same layers as the plain archive"),
        }
    }

    // Not an archive at all: a clear error, exit status 1.
    let junk = dir.path().join("junk.tar");
    std::fs::write(&junk, tar_of(&[("hello", b"world")])).unwrap();
    let out = cli(&[junk.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no manifest.json"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
