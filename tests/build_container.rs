//! `buildContainer` end to end, with real parts only: the stock koji CLI and `koji.ClientSession`
//! against our hub, `containerbuild builder` processes with buildah, Debian's `docker-registry`
//! on loopback, the dist-git fixtures served by `git daemon`, the RPM-based fixture base image.
//!
//! Covered: a normal build (task tree, tags, labels seen by `skopeo inspect`, digest recorded,
//! image archive, `koji watch-logs` during the build), the release bump, isolated and scratch tag
//! sets, container.yaml tags, yum repo injection, every validation answered with its fault, a
//! failing RUN, cancel during RUN, and the 2-arch fan-out on two builder hosts. Imported builds
//! are checked through the koji CLI: each image archive's `extra.docker` (config digest, config,
//! layer sizes as atomic-reactor computes them, the base image's config digest per arch, none
//! for `FROM scratch`) and the buildroot's host RPMs.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::fixtures::{
    Fixtures, GitServer, TestRegistry, buildah_cmd, free_port, run_ok, tools_present, which,
};
use common::{ADMIN, BuilderProc, Hub, assert_contains, task_state, wait_for};

const CLOSED: i64 = 2;
const CANCELED: i64 = 3;
const FAILED: i64 = 5;
const TARGET: &str = "f40-candidate";

/// Hub, registry, fixtures, git daemon, and builders.
struct Setup {
    hub: Hub,
    registry: TestRegistry,
    fixtures: Fixtures,
    git: GitServer,
    builders: Vec<BuilderProc>,
    /// Extra bare repos made by a test, served by `extra_git`.
    _tmp: tempfile::TempDir,
}

/// A hub with tag `f40-build` (arches `build_arches`), tag `f40`, target `f40-candidate`,
/// packages of the fixture repos in `f40`; one builder per `(name, arches)`.
fn setup(build_arches: &str, hosts: &[(&str, &[&str])], extra: &[&str]) -> Option<Setup> {
    if !tools_present() {
        return None;
    }
    let hub = Hub::start()?;
    let registry = TestRegistry::start();
    let fixtures = Fixtures::build(&registry.host_port());
    let git = GitServer::start(&fixtures.repos_dir);
    hub.koji_ok(&["add-tag", "--arches", build_arches, "f40-build"]);
    hub.koji_ok(&["add-tag", "f40"]);
    hub.koji_ok(&["add-target", TARGET, "f40-build", "f40"]);
    for pkg in [
        "plain-container",
        "tags-container",
        "multistage-container",
        "failing-run-container",
        "slow-container",
        "multi-container",
        "blocked-container",
        "yumrepo-container",
    ] {
        hub.koji_ok(&["add-pkg", "--owner", ADMIN, "f40", pkg]);
    }
    hub.koji_ok(&["block-pkg", "f40", "blocked-container"]);
    let tmp = tempfile::Builder::new()
        .prefix("cb-build-")
        .tempdir()
        .expect("tempdir");
    let reg = registry.host_port();
    let mut builders = Vec::new();
    for (name, arches) in hosts {
        let root = tmp.path().join(format!("buildah-{name}"));
        let mut args = vec![
            "--registry",
            &reg,
            "--registry-insecure",
            "--buildah-root",
            root.to_str().expect("utf-8 path"),
        ];
        args.extend_from_slice(extra);
        builders.push(BuilderProc::start(&hub, name, arches, &args));
        // Builds are imported as atomic-reactor does: the host needs CG access.
        hub.koji_ok(&["grant-cg-access", name, "atomic-reactor", "--new"]);
    }
    Some(Setup {
        hub,
        registry,
        fixtures,
        git,
        builders,
        _tmp: tmp,
    })
}

impl Setup {
    /// `koji call buildContainer SRC f40-candidate OPTS`; returns the task id.
    fn submit_src(&self, src: &str, opts: &str) -> i64 {
        let out = self.hub.koji_ok(&[
            "call",
            "--python",
            "buildContainer",
            &format!("'{src}'"),
            &format!("'{TARGET}'"),
            opts,
        ]);
        out.trim()
            .parse()
            .unwrap_or_else(|e| panic!("buildContainer answer {out:?}: {e}"))
    }

    fn submit(&self, repo: &str, opts: &str) -> i64 {
        let src = format!("{}#{}", self.git.url(repo), self.fixtures.sha(repo));
        self.submit_src(&src, opts)
    }

    fn wait_end(&self, id: i64) -> i64 {
        wait_for(
            Duration::from_secs(300),
            &format!("task {id} to end"),
            || {
                let (st, _) = task_state(&self.hub, id);
                (st >= 2 && st != 4).then_some(st)
            },
        )
    }

    /// `RESULT <repr>` or `FAULT <code> <text>` for a finished task.
    fn outcome(&self, id: i64) -> String {
        self.hub.python_ok(&format!(
            r#"
import koji, os
s = koji.ClientSession(os.environ['KOJI_URL'])
try:
    print('RESULT', repr(s.getTaskResult({id})))
except Exception as e:
    print('FAULT', getattr(e, 'faultCode', None), getattr(e, 'faultString', e))
"#
        ))
    }

    /// The task's output file as text (or empty).
    fn output_text(&self, id: i64, name: &str) -> String {
        self.hub.python_ok(&format!(
            r#"
import koji, os, sys
s = koji.ClientSession(os.environ['KOJI_URL'])
try:
    sys.stdout.write(s.downloadTaskOutput({id}, {name:?}).decode('utf-8', 'replace'))
except koji.GenericError:
    pass
"#
        ))
    }

    /// `(id, method, arch, state, host_id)` of each child.
    fn children(&self, id: i64) -> Vec<(i64, String, String, i64, Option<i64>)> {
        let out = self.hub.python_ok(&format!(
            r#"
import koji, os
s = koji.ClientSession(os.environ['KOJI_URL'])
for c in s.getTaskChildren({id}):
    print(c['id'], c['method'], c['arch'], c['state'], c['host_id'])
"#
        ));
        out.lines()
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (
                    f[0].parse().expect("id"),
                    f[1].to_owned(),
                    f[2].to_owned(),
                    f[3].parse().expect("state"),
                    f[4].parse().ok(),
                )
            })
            .collect()
    }

    fn skopeo_inspect(&self, spec: &str) -> serde_json::Value {
        let out = run_ok(
            Command::new("skopeo")
                .args(["inspect", "--tls-verify=false"])
                .arg(format!("docker://{spec}")),
        );
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("skopeo inspect {spec}: {e}: {out}"))
    }

    fn skopeo_raw(&self, spec: &str) -> serde_json::Value {
        let out = run_ok(
            Command::new("skopeo")
                .args(["inspect", "--raw", "--tls-verify=false"])
                .arg(format!("docker://{spec}")),
        );
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("skopeo inspect --raw {spec}: {e}"))
    }
}

/// The repositories of a `RESULT {...}` line, in order.
fn repositories(outcome: &str) -> Vec<String> {
    let line = outcome
        .lines()
        .find(|l| l.starts_with("RESULT "))
        .unwrap_or_else(|| panic!("no result: {outcome}"));
    let start = line.find("'repositories': [").expect("repositories") + 17;
    let end = start + line[start..].find(']').expect("end of list");
    line[start..end]
        .split(", ")
        .map(|s| s.trim_matches('\'').to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

fn tag_of(spec: &str) -> &str {
    spec.rsplit_once(':').expect("tag").1
}

/// The image archives of an imported build, as `koji call --json-output listArchives` gives them.
fn image_archives(s: &Setup, nvr: &str) -> Vec<serde_json::Value> {
    let build: serde_json::Value =
        serde_json::from_str(&s.hub.koji_ok(&["call", "--json-output", "getBuild", nvr]))
            .expect("getBuild JSON");
    let id = build["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no build {nvr}"));
    let archives: serde_json::Value = serde_json::from_str(&s.hub.koji_ok(&[
        "call",
        "--json-output",
        "listArchives",
        &format!("buildID={id}"),
    ]))
    .expect("listArchives JSON");
    archives
        .as_array()
        .expect("archive list")
        .iter()
        .filter(|a| {
            a["filename"]
                .as_str()
                .is_some_and(|f| f.ends_with(".tar.gz"))
        })
        .cloned()
        .collect()
}

/// The config digest of the image `spec` names (for a manifest list: its `oci_arch` image).
fn config_digest(s: &Setup, spec: &str, oci_arch: &str) -> String {
    let raw = s.skopeo_raw(spec);
    if let Some(list) = raw["manifests"].as_array() {
        let m = list
            .iter()
            .find(|m| m["platform"]["architecture"] == oci_arch)
            .unwrap_or_else(|| panic!("no {oci_arch} image in {raw}"));
        let repo = spec.rsplit_once(':').expect("tag").0;
        let digest = m["digest"].as_str().expect("digest");
        return config_digest(s, &format!("{repo}@{digest}"), oci_arch);
    }
    raw["config"]["digest"]
        .as_str()
        .unwrap_or_else(|| panic!("no config digest: {raw}"))
        .to_owned()
}

/// atomic-reactor's `get_uncompressed_image_layer_sizes`, run on an image archive.
fn atomic_reactor_layer_sizes(archive: &Path) -> serde_json::Value {
    let out = run_ok(
        Command::new("python3")
            .arg("-c")
            .arg(
                r#"
import json, sys, tarfile
with tarfile.open(sys.argv[1]) as tar:
    manifest = json.load(tar.extractfile('manifest.json'))
    layers = manifest[0]['Layers']
    config = json.load(tar.extractfile(manifest[0]['Config']))
    print(json.dumps([{"diff_id": d, "size": tar.getmember(l).size}
                      for d, l in zip(config['rootfs']['diff_ids'], layers)]))
"#,
            )
            .arg(archive),
    );
    serde_json::from_str(&out).expect("layer sizes JSON")
}

/// True when this machine has an rpmdb where the builder looks for the build host's RPMs (a
/// Debian host has none).
fn host_has_rpmdb() -> bool {
    ["var/lib/rpm", "usr/lib/sysimage/rpm"].iter().any(|d| {
        ["rpmdb.sqlite", "Packages.db", "Packages"]
            .iter()
            .any(|f| Path::new("/").join(d).join(f).is_file())
    })
}

#[test]
fn normal_isolated_and_scratch_builds() {
    let Some(s) = setup("x86_64", &[("b1", &["x86_64"])], &[]) else {
        return;
    };
    let reg = s.registry.host_port();
    let plain_sha = s.fixtures.sha("plain").to_owned();

    // A normal build, watched with the stock CLI while it runs.
    let id = s.submit("plain", "{'git_branch': 'main'}");
    let watch = s
        .hub
        .koji_command(&["--noauth".to_owned()], &["watch-logs", &id.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("koji watch-logs");
    assert_eq!(s.wait_end(id), CLOSED, "{}", s.outcome(id));
    let watched = watch.wait_with_output().expect("watch-logs output");
    let watched = format!(
        "{}\n{}",
        String::from_utf8_lossy(&watched.stdout),
        String::from_utf8_lossy(&watched.stderr)
    );
    assert_contains(&watched, &format!("{id}:DEFAULT:x86_64.log:"), "watch-logs");
    assert_contains(&watched, "STEP 1/", "build lines in watch-logs");
    assert_contains(&watched, "cb-hello", "RUN output in watch-logs");

    let outcome = s.outcome(id);
    assert_contains(&outcome, "'koji_builds': ['", "koji_builds");
    assert!(!outcome.contains("user_warnings"), "{outcome}");
    let repos = repositories(&outcome);
    let tags: Vec<&str> = repos.iter().map(|r| tag_of(r)).collect();
    assert_eq!(tags.len(), 4, "{repos:?}");
    assert_eq!(tags[0], "1.0-1", "primary first: {repos:?}");
    assert!(tags[1].starts_with("f40-candidate-"), "unique: {repos:?}");
    assert_eq!(&tags[2..], ["latest", "1.0"], "floating: {repos:?}");
    for r in &repos {
        assert!(r.starts_with(&format!("{reg}/plain:")), "{r}");
    }

    // The task tree: one createContainer child for x86_64, with the image archive.
    let kids = s.children(id);
    assert_eq!(kids.len(), 1, "{kids:?}");
    let (child, method, arch, state, _) = &kids[0];
    assert_eq!(
        (method.as_str(), arch.as_str(), *state),
        ("createContainer", "x86_64", CLOSED)
    );
    let child_result = s.outcome(*child);
    assert_contains(&child_result, "'arch': 'x86_64'", "child result");
    let listing = s.hub.python_ok(&format!(
        r#"
import koji, os
s = koji.ClientSession(os.environ['KOJI_URL'])
for name, info in sorted(s.listTaskOutput({child}, stat=True).items()):
    print(name, info['st_size'])
"#
    ));
    let archive = listing
        .lines()
        .find(|l| l.starts_with("docker-image-") && l.contains(".x86_64.tar.gz "))
        .unwrap_or_else(|| panic!("no image archive in {listing}"));
    let (archive_name, size) = archive.split_once(' ').expect("name size");
    assert!(size.parse::<u64>().expect("size") > 1000, "{archive}");
    assert_contains(
        &child_result,
        archive_name,
        "archive named in the child result",
    );
    // The RPM manifest: atomic-reactor's components (the layer upgraded cb-hello to 1.1 and
    // installed cb-extra) and the per-layer report as task output.
    assert_contains(&child_result, "'name': 'cb-hello'", "components");
    assert_contains(&child_result, "'version': '1.1'", "upgraded cb-hello");
    assert_contains(&child_result, "'name': 'cb-extra'", "installed cb-extra");
    assert_contains(&child_result, "'type': 'rpm'", "component type");
    assert!(!child_result.contains("gpg-pubkey"), "{child_result}");
    assert!(
        listing.contains("x86_64-rpm-manifest.json "),
        "per-layer report missing: {listing}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&s.output_text(*child, "x86_64-rpm-manifest.json")).expect("JSON");
    let layers = report["layers"].as_array().expect("layers");
    let upgraded = layers
        .iter()
        .flat_map(|l| {
            l["packages"]["upgraded"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|u| u["name"].as_str().unwrap_or("").to_owned())
        .collect::<Vec<_>>();
    assert_eq!(upgraded, ["cb-hello"], "{report}");

    // The archive is a docker-archive tarball that gzip and tar read.
    let dl = s.fixtures.scratch("archive");
    run_ok(
        s.hub
            .koji_command(
                &["--noauth".to_owned()],
                &["download-task", "--all", &child.to_string()],
            )
            .current_dir(&dl),
    );
    let file =
        walk_find(&dl, archive_name).unwrap_or_else(|| panic!("{archive_name} not downloaded"));
    let list = run_ok(Command::new("tar").arg("-tzf").arg(&file));
    assert_contains(&list, "manifest.json", "docker-archive manifest");

    // Labels and digest as a registry client sees them.
    let primary = &repos[0];
    let inspect = s.skopeo_inspect(primary);
    let labels = &inspect["Labels"];
    for (k, v) in [
        ("com.redhat.component", "plain-container"),
        ("name", "plain"),
        ("version", "1.0"),
        ("release", "1"),
        ("architecture", "x86_64"),
        ("vcs-type", "git"),
        ("vcs-ref", plain_sha.as_str()),
    ] {
        assert_eq!(labels[k].as_str(), Some(v), "label {k}: {inspect}");
    }
    assert!(labels["build-date"].as_str().is_some(), "{inspect}");
    let digest = inspect["Digest"].as_str().expect("digest").to_owned();
    assert_contains(
        &child_result,
        &format!("'digest': '{digest}'"),
        "digest recorded",
    );
    for r in &repos {
        assert_eq!(
            s.skopeo_inspect(r)["Digest"].as_str(),
            Some(digest.as_str()),
            "{r} is the same image"
        );
    }
    // pushed_bytes: the manifest plus the config and layer blobs it lists.
    let raw = s.skopeo_raw(primary);
    let blobs: u64 = raw["config"]["size"].as_u64().expect("config size")
        + raw["layers"]
            .as_array()
            .expect("layers")
            .iter()
            .map(|l| l["size"].as_u64().expect("layer size"))
            .sum::<u64>();
    let pushed: u64 = child_result
        .split("'pushed_bytes': ")
        .nth(1)
        .and_then(|r| r.split([',', '}']).next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no pushed_bytes in {child_result}"));
    let manifest_len = pushed.checked_sub(blobs).expect("pushed_bytes >= blobs");
    assert!(
        (100..16384).contains(&manifest_len),
        "pushed_bytes {pushed} = blobs {blobs} + a manifest of {manifest_len} bytes"
    );
    // The hub counted the push and the imported build (`plugin-spec/metrics.md`).
    let (status, _, body) = s.hub.raw_get("/metrics");
    assert_eq!(status, 200);
    let metrics = body;
    let value = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /metrics"))
    };
    assert!(value("containerbuild_pushed_bytes_total ") >= pushed);
    assert!(value("containerbuild_builds{state=\"COMPLETE\"} ") >= 1);

    // A second build of the same version gets the next release.
    let id2 = s.submit("plain", "{'git_branch': 'main'}");
    assert_eq!(s.wait_end(id2), CLOSED, "{}", s.outcome(id2));
    let repos2 = repositories(&s.outcome(id2));
    assert_eq!(tag_of(&repos2[0]), "1.0-2", "{repos2:?}");
    assert_eq!(
        s.skopeo_inspect(&repos2[0])["Labels"]["release"].as_str(),
        Some("2")
    );

    // The first build is a Koji build: buildinfo, its image archive and the image's RPMs.
    let info = s.hub.koji_ok(&["buildinfo", "plain-container-1.0-1"]);
    assert_contains(&info, "State: COMPLETE", "buildinfo state");
    assert_contains(&info, archive_name, "image archive in buildinfo");
    let rpms = s.hub.python_ok(
        r#"
import koji, os
s = koji.ClientSession(os.environ['KOJI_URL'])
b = s.getBuild('plain-container-1.0-1')
for a in s.listArchives(buildID=b['id']):
    if a['filename'].endswith('.tar.gz'):
        for r in s.listRPMs(imageID=a['id']):
            print('RPM', r['name'], r['version'], r['release'], r['arch'])
print('TAGGED', [t['name'] for t in s.listTags(build=b['id'])])
"#,
    );
    assert_contains(&rpms, "RPM cb-hello 1.1 1 noarch", "listRPMs(imageID=)");
    assert_contains(&rpms, "RPM cb-extra 1.0 1 noarch", "listRPMs(imageID=)");
    assert_contains(&rpms, "TAGGED ['f40']", "tagged into the destination tag");

    // Its archive's extra.docker, as atomic-reactor fills it: the registry's config digest and
    // config (without container_config), the uncompressed layer sizes of the docker-archive in
    // config diff_id order, and the base image's config digest.
    let archives = image_archives(&s, "plain-container-1.0-1");
    assert_eq!(archives.len(), 1, "{archives:?}");
    let docker = &archives[0]["extra"]["docker"];
    let registry_config: serde_json::Value = serde_json::from_str(&run_ok(
        Command::new("skopeo")
            .args(["inspect", "--config", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{primary}")),
    ))
    .expect("config JSON");
    let config_id = config_digest(&s, primary, "amd64");
    assert_eq!(docker["id"].as_str(), Some(config_id.as_str()), "{docker}");
    assert_eq!(
        archive_name,
        format!(
            "docker-image-{}.x86_64.tar.gz",
            config_id.trim_start_matches("sha256:")
        )
    );
    let mut expected_config = registry_config.clone();
    expected_config
        .as_object_mut()
        .expect("config object")
        .remove("container_config");
    assert!(registry_config.get("container_config").is_some());
    assert_eq!(
        docker["config"], expected_config,
        "config without container_config"
    );
    let layer_sizes = docker["layer_sizes"].as_array().expect("layer_sizes");
    assert!(!layer_sizes.is_empty(), "{docker}");
    let diff_ids: Vec<&serde_json::Value> = layer_sizes.iter().map(|l| &l["diff_id"]).collect();
    let config_diff_ids: Vec<&serde_json::Value> = registry_config["rootfs"]["diff_ids"]
        .as_array()
        .expect("diff_ids")
        .iter()
        .collect();
    assert_eq!(diff_ids, config_diff_ids, "layer_sizes in diff_id order");
    assert!(
        layer_sizes.iter().all(|l| l["size"].as_u64() > Some(0)),
        "{docker}"
    );
    assert_eq!(docker["layer_sizes"], atomic_reactor_layer_sizes(&file));
    assert_eq!(
        docker["parent_id"].as_str(),
        Some(config_digest(&s, &s.fixtures.base_ref(), "amd64").as_str()),
        "parent_id is the base image's config digest"
    );
    // The buildroot lists the build host's RPMs: none on a host without an rpmdb (Debian).
    let metadata: serde_json::Value =
        serde_json::from_str(&s.output_text(id, "metadata.json")).expect("metadata.json");
    let host_rpms = metadata["buildroots"][0]["components"]
        .as_array()
        .unwrap_or_else(|| panic!("no buildroot components: {metadata}"));
    if host_has_rpmdb() {
        assert!(
            !host_rpms.is_empty() && host_rpms.iter().all(|c| c["type"] == "rpm"),
            "{host_rpms:?}"
        );
    } else {
        assert!(host_rpms.is_empty(), "{host_rpms:?}");
    }

    // Isolated: primary and unique only.
    let id3 = s.submit(
        "plain",
        "{'git_branch': 'main', 'isolated': True, 'release': '1.1'}",
    );
    assert_eq!(s.wait_end(id3), CLOSED, "{}", s.outcome(id3));
    let repos3 = repositories(&s.outcome(id3));
    let tags3: Vec<&str> = repos3.iter().map(|r| tag_of(r)).collect();
    assert_eq!(tags3.len(), 2, "{repos3:?}");
    assert_eq!(tags3[0], "1.0-1.1");
    assert!(tags3[1].starts_with("f40-candidate-"), "{repos3:?}");

    // Scratch: unique only; container.yaml tags do not apply.
    let id4 = s.submit("tags", "{'git_branch': 'main', 'scratch': True}");
    assert_eq!(s.wait_end(id4), CLOSED, "{}", s.outcome(id4));
    let repos4 = repositories(&s.outcome(id4));
    assert_eq!(repos4.len(), 1, "{repos4:?}");
    assert!(
        tag_of(&repos4[0]).starts_with("f40-candidate-"),
        "{repos4:?}"
    );

    // A layer that deletes RPM-owned files behind rpm's back: user warnings name them.
    let src = extra_repo(
        &s,
        "drifty",
        &format!(
            "FROM {}\nLABEL com.redhat.component=drifty-container name=drifty version=1\nRUN rm -rf /usr/share/doc/cb-hello\n",
            s.fixtures.base_ref()
        ),
    );
    let id6 = s.submit_src(&src, "{'git_branch': 'main', 'scratch': True}");
    assert_eq!(s.wait_end(id6), CLOSED, "{}", s.outcome(id6));
    let out6 = s.outcome(id6);
    assert_contains(&out6, "'user_warnings': [", "drift as user warnings");
    assert_contains(&out6, "deleted /usr/share/doc/cb-hello", "deleted path");
    assert_contains(&out6, "owned by cb-hello-1.0-1", "owning package");

    // container.yaml tags replace latest/{version}.
    let id5 = s.submit("tags", "{'git_branch': 'main'}");
    assert_eq!(s.wait_end(id5), CLOSED, "{}", s.outcome(id5));
    let repos5 = repositories(&s.outcome(id5));
    let tags5: Vec<&str> = repos5.iter().map(|r| tag_of(r)).collect();
    assert_eq!(tags5[0], "1.0-1", "{repos5:?}");
    assert_eq!(&tags5[2..], ["tagone", "tagtwo"], "{repos5:?}");
    for r in &repos5 {
        assert!(s.skopeo_inspect(r)["Digest"].is_string(), "{r} pullable");
    }

    // FROM scratch: imported without parent_id, with its one layer's size.
    s.hub
        .koji_ok(&["add-pkg", "--owner", ADMIN, "f40", "scratchy-container"]);
    let src = extra_repo_files(
        &s,
        "scratchy",
        &[
            (
                "Dockerfile",
                "FROM scratch\nLABEL com.redhat.component=scratchy-container name=scratchy version=1\nCOPY hello.txt /\n",
            ),
            ("hello.txt", "hello from scratch\n"),
        ],
    );
    let id7 = s.submit_src(&src, "{'git_branch': 'main'}");
    assert_eq!(s.wait_end(id7), CLOSED, "{}", s.outcome(id7));
    let archives = image_archives(&s, "scratchy-container-1-1");
    assert_eq!(archives.len(), 1, "{archives:?}");
    let docker = &archives[0]["extra"]["docker"];
    assert!(docker.get("parent_id").is_none(), "{docker}");
    let layer_sizes = docker["layer_sizes"].as_array().expect("layer_sizes");
    assert_eq!(layer_sizes.len(), 1, "{docker}");
    assert_eq!(
        layer_sizes[0]["diff_id"], docker["config"]["rootfs"]["diff_ids"][0],
        "{docker}"
    );
    assert!(docker["config"].get("container_config").is_none());
}

fn walk_find(dir: &Path, name: &str) -> Option<std::path::PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if p.is_dir() {
            if let Some(f) = walk_find(&p, name) {
                return Some(f);
            }
        } else if e.file_name().to_string_lossy() == name {
            return Some(p);
        }
    }
    None
}

#[test]
fn every_validation_is_a_koji_fault() {
    // kojid's allowed_scms: the first matching entry decides (hosts carry the port).
    let Some(s) = setup(
        "x86_64",
        &[("b1", &["x86_64"])],
        &["--allowed-scms", "!127.0.0.1*:/denied.git 127.0.0.1*:/*"],
    ) else {
        return;
    };
    let plain = format!("{}#{}", s.git.url("plain"), s.fixtures.sha("plain"));
    let https = plain.replace("git://", "https://");
    let no_rev = s.git.url("plain");
    let with_password = plain.replace("git://", "git://user:secret@");
    let unknown_commit = format!("{}#{}", s.git.url("plain"), "0".repeat(40));
    let missing_label = format!(
        "{}#{}",
        s.git.url("missing-label"),
        s.fixtures.sha("missing-label")
    );
    let slow = format!("{}#{}", s.git.url("slow"), s.fixtures.sha("slow"));
    let cases: Vec<(String, String, i64, String)> = vec![
        (
            plain.clone(),
            "{'git_branch': 'main', 'scratch': True, 'isolated': True}".into(),
            1005,
            "Build cannot be both isolated and scratch".into(),
        ),
        (
            plain.clone(),
            "{}".into(),
            1005,
            "Git branch must be specified".into(),
        ),
        (
            plain.clone(),
            "{'git_branch': 'main', 'isolated': True}".into(),
            2001,
            "The release parameter is required for isolated builds.".into(),
        ),
        (
            plain.clone(),
            "{'git_branch': 'main', 'isolated': True, 'release': 'abc'}".into(),
            2001,
            "For isolated builds, the release value must be in the format".into(),
        ),
        (
            plain.clone(),
            "{'git_branch': 'main', 'arch_override': 'x86_64'}".into(),
            1005,
            "arch-override is only allowed for isolated or scratch builds".into(),
        ),
        (
            plain.clone(),
            "{'git_branch': 'main', 'skip_build': True}".into(),
            1005,
            "'skip_build' functionality has been removed".into(),
        ),
        (
            plain.clone(),
            "{'git_branch': 'main', 'bogus': 1}".into(),
            1,
            "Additional properties are not allowed ('bogus' was unexpected)".into(),
        ),
        (
            plain.clone(),
            "{'git_branch': 'main', 'compose_ids': [1]}".into(),
            2001,
            "Unsupported option compose_ids".into(),
        ),
        (
            https,
            "{'git_branch': 'main'}".into(),
            1000,
            "Invalid scheme in scm url".into(),
        ),
        (
            no_rev,
            "{'git_branch': 'main'}".into(),
            1000,
            "Could not find the fragment element".into(),
        ),
        (
            with_password,
            "{'git_branch': 'main'}".into(),
            1000,
            "username:password format not supported".into(),
        ),
        (
            unknown_commit,
            "{'git_branch': 'main'}".into(),
            1005,
            "0000000000".into(),
        ),
        (
            plain.clone(),
            "{'git_branch': 'other'}".into(),
            1005,
            "refs/heads/other".into(),
        ),
        (
            missing_label,
            "{'git_branch': 'main'}".into(),
            1005,
            "Required LABELs haven't been found in Dockerfile: version (or Version).".into(),
        ),
        (
            plain.clone(),
            "{'git_branch': 'main', 'koji_parent_build': 'nosuch-1-1'}".into(),
            2001,
            "Koji build, nosuch-1-1, not found".into(),
        ),
        (
            plain.clone(),
            "{'git_branch': 'main', 'yum_repourls': ['ftp://example.invalid/x.repo']}".into(),
            1005,
            "only http:// and https:// URLs can be fetched".into(),
        ),
        (
            slow,
            "{'git_branch': 'main', 'scratch': True, 'arch_override': 'ppc64le'}".into(),
            1005,
            "No matching arches were found".into(),
        ),
    ];
    let ids: Vec<i64> = cases
        .iter()
        .map(|(src, opts, _, _)| s.submit_src(src, opts))
        .collect();
    // Target and package checks.
    let bad_target = s.hub.koji_ok(&[
        "call",
        "--python",
        "buildContainer",
        &format!("'{plain}'"),
        "'nosuch-target'",
        "{'git_branch': 'main'}",
    ]);
    let bad_target: i64 = bad_target.trim().parse().expect("task id");
    let mut failures = Vec::new();
    for (id, (src, opts, code, text)) in ids.iter().zip(&cases) {
        let st = s.wait_end(*id);
        let out = s.outcome(*id);
        if st != FAILED || !out.contains(&format!("FAULT {code} ")) || !out.contains(text.as_str())
        {
            failures.push(format!(
                "{src} {opts}: state {st}, want {code} {text:?}, got {out}"
            ));
        }
    }
    assert_eq!(s.wait_end(bad_target), FAILED);
    assert_contains(
        &s.outcome(bad_target),
        "FAULT 1005 Target `nosuch-target` not found",
        "unknown target",
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Allow-list: a component missing from the tag, and a blocked one.
    for (repo_name, component, text) in [
        (
            "blocked",
            "blocked-container",
            "package (container)  blocked-container is blocked for tag f40".to_owned(),
        ),
        (
            "unlisted",
            "unlisted-container",
            "package (container) unlisted-container not in list for tag f40".to_owned(),
        ),
    ] {
        let src = extra_repo(
            &s,
            repo_name,
            &format!(
                "FROM {}\nLABEL com.redhat.component={component} name={repo_name} version=1\n",
                s.fixtures.base_ref()
            ),
        );
        let id = s.submit_src(&src, "{'git_branch': 'main'}");
        assert_eq!(s.wait_end(id), FAILED);
        let out = s.outcome(id);
        assert_contains(&out, &format!("FAULT 1005 {text}"), repo_name);
    }

    // A repository the builder's allowed_scms denies.
    let denied = extra_repo(
        &s,
        "denied",
        &format!(
            "FROM {}\nLABEL com.redhat.component=plain-container name=plain version=1\n",
            s.fixtures.base_ref()
        ),
    );
    let id = s.submit_src(&denied, "{'git_branch': 'main'}");
    assert_eq!(s.wait_end(id), FAILED);
    assert_contains(
        &s.outcome(id),
        "/denied.git is not in the list of allowed SCMs",
        "allowed_scms",
    );

    // Anonymous callers cannot submit.
    let anon = s.hub.koji_noauth(&[
        "call",
        "--python",
        "buildContainer",
        &format!("'{plain}'"),
        &format!("'{TARGET}'"),
        "{'git_branch': 'main'}",
    ]);
    assert_ne!(anon.0, 0, "{anon:?}");
}

/// A one-commit bare repo `<name>.git` next to the fixtures' repos, on branch `main`; returns
/// its `git://...#sha` source.
fn extra_repo(s: &Setup, name: &str, dockerfile: &str) -> String {
    extra_repo_files(s, name, &[("Dockerfile", dockerfile)])
}

/// [`extra_repo`] with any files.
fn extra_repo_files(s: &Setup, name: &str, files: &[(&str, &str)]) -> String {
    s.fixtures.one_commit_repo(&s.git, name, files)
}

/// `(pid, parent pid, command line)` of every process.
fn processes() -> Vec<(u32, u32, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let (Ok(cmd), Ok(stat)) = (
            std::fs::read(e.path().join("cmdline")),
            std::fs::read_to_string(e.path().join("stat")),
        ) else {
            continue;
        };
        // `pid (comm) state ppid ...`; comm may hold spaces, so split after the last ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        out.push((pid, ppid, String::from_utf8_lossy(&cmd).replace('\0', " ")));
    }
    out
}

/// Processes whose command line mentions `needle`, and all their descendants.
fn trees_mentioning(needle: &str) -> Vec<(u32, String)> {
    let all = processes();
    let mut pids: Vec<u32> = all
        .iter()
        .filter(|(_, _, c)| c.contains(needle))
        .map(|(p, _, _)| *p)
        .collect();
    let mut i = 0;
    while i < pids.len() {
        let parent = pids[i];
        for (p, pp, _) in &all {
            if *pp == parent && !pids.contains(p) {
                pids.push(*p);
            }
        }
        i += 1;
    }
    all.into_iter()
        .filter(|(p, _, _)| pids.contains(p))
        .map(|(p, _, c)| (p, c))
        .collect()
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn failing_run_and_cancel_during_run() {
    let Some(s) = setup("x86_64", &[("b1", &["x86_64"])], &[]) else {
        return;
    };
    // A failing RUN: 2001, the failing line in the parent's and the child's x86_64.log.
    let id = s.submit("failing-run", "{'git_branch': 'main', 'scratch': True}");
    assert_eq!(s.wait_end(id), FAILED);
    let out = s.outcome(id);
    assert_contains(&out, "FAULT 2001 Image build failed.", "fault");
    let log = s.output_text(id, "x86_64.log");
    assert_contains(
        &log,
        "about to fail",
        "RUN output in the parent's x86_64.log",
    );
    assert_contains(&log, "Image build failed.", "reason at the end of the log");
    let kids = s.children(id);
    assert_eq!(kids.len(), 1);
    assert_eq!(kids[0].3, FAILED, "{kids:?}");

    // Cancel while RUN sleeps: everything CANCELED, no buildah left for this builder.
    let id = s.submit("slow", "{'git_branch': 'main', 'scratch': True}");
    wait_for(Duration::from_secs(120), "the slow RUN to start", || {
        s.output_text(id, "x86_64.log")
            .contains("sleeping for 300 seconds")
            .then_some(())
    });
    // buildah of this builder (its storage is `<buildah-root>/storage`) and the RUN's shell,
    // with everything below them (the `sleep`). The log's `STEP 3/4: RUN echo "sleeping ..."`
    // line comes before the shell runs, so the sleep is waited for.
    let storage = format!("{}/storage", s._tmp.path().join("buildah-b1").display());
    let running = wait_for(Duration::from_secs(60), "the RUN's sleep to run", || {
        let mut running = trees_mentioning(&storage);
        running.extend(trees_mentioning("sleeping for 300 seconds"));
        running
            .iter()
            .any(|(_, c)| c.starts_with("sleep 300"))
            .then_some(running)
    });
    s.hub.koji_ok(&["cancel", &id.to_string()]);
    assert_eq!(task_state(&s.hub, id).0, CANCELED);
    let kids = s.children(id);
    assert_eq!(kids.len(), 1);
    wait_for(Duration::from_secs(30), "the child to be canceled", || {
        (task_state(&s.hub, kids[0].0).0 == CANCELED).then_some(())
    });
    wait_for(
        Duration::from_secs(30),
        "buildah and the RUN's processes to be gone",
        || running.iter().all(|(p, _)| !alive(*p)).then_some(()),
    );
    // container.yaml's buildtime_limit: the build is killed when it passes.
    let src = extra_repo_files(
        &s,
        "limited",
        &[
            (
                "Dockerfile",
                &format!(
                    "FROM {}\nLABEL com.redhat.component=slow-container name=limited version=1\nRUN echo waiting && sleep 120\n",
                    s.fixtures.base_ref()
                ),
            ),
            ("container.yaml", "buildtime_limit: 3\n"),
        ],
    );
    let id = s.submit_src(&src, "{'git_branch': 'main', 'scratch': True}");
    assert_eq!(s.wait_end(id), FAILED);
    assert_contains(
        &s.outcome(id),
        "exceeded its time limit of 3 s",
        "buildtime_limit",
    );

    // The builder takes the next build at once.
    let id = s.submit("plain", "{'git_branch': 'main', 'scratch': True}");
    assert_eq!(s.wait_end(id), CLOSED, "{}", s.outcome(id));
}

#[test]
fn yum_repourls_are_mounted_for_run() {
    // Also a builder without image archives: the Koji build gets OSBS 2's placeholder.
    let Some(s) = setup("x86_64", &[("b1", &["x86_64"])], &["--archive", "none"]) else {
        return;
    };
    if which("python3").is_none() {
        panic!("python3 is needed to serve the repo file");
    }
    let www = s.fixtures.scratch("www");
    std::fs::write(
        www.join("test.repo"),
        "[cb-test]\nname=containerbuild test repo\nbaseurl=http://127.0.0.1/none\n",
    )
    .expect("write repo file");
    let port = free_port();
    let mut server = Command::new("python3")
        .args(["-m", "http.server", "--bind", "127.0.0.1"])
        .arg(port.to_string())
        .current_dir(&www)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 -m http.server");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill(); // by pid
            let _ = self.0.wait();
        }
    }
    let _ = &mut server;
    let _server = Kill(server);
    wait_for(Duration::from_secs(10), "http.server up", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    let src = extra_repo(
        &s,
        "yumrepo",
        &format!(
            "FROM {}\nLABEL com.redhat.component=yumrepo-container name=yumrepo version=1\nRUN cat /etc/yum.repos.d/test-*.repo\n",
            s.fixtures.base_ref()
        ),
    );
    let id = s.submit_src(
        &src,
        &format!("{{'git_branch': 'main', 'yum_repourls': ['http://127.0.0.1:{port}/test.repo']}}"),
    );
    assert_eq!(s.wait_end(id), CLOSED, "{}", s.outcome(id));
    assert_contains(&s.outcome(id), "'koji_builds': ['", "imported");
    let info = s.hub.koji_ok(&["buildinfo", "yumrepo-container-1-1"]);
    assert_contains(&info, "State: COMPLETE", "buildinfo");
    assert_contains(&info, ".x86_64.tar.gz", "placeholder image archive");
    // The placeholder's extra.docker still describes the image (read from a plain tar).
    let archives = image_archives(&s, "yumrepo-container-1-1");
    let docker = &archives[0]["extra"]["docker"];
    assert_eq!(
        docker["parent_id"].as_str(),
        Some(config_digest(&s, &s.fixtures.base_ref(), "amd64").as_str()),
        "{docker}"
    );
    assert_eq!(
        docker["layer_sizes"].as_array().map(Vec::len),
        docker["config"]["rootfs"]["diff_ids"]
            .as_array()
            .map(Vec::len),
        "{docker}"
    );
    assert!(
        docker["layer_sizes"][0]["size"].as_u64() > Some(0),
        "{docker}"
    );
    let log = s.output_text(id, "x86_64.log");
    assert_contains(
        &log,
        "name=containerbuild test repo",
        "repo file visible to RUN",
    );
    // Not committed into the image.
    let spec = &repositories(&s.outcome(id))[0];
    let storage = s.fixtures.scratch("inspect-storage");
    let ctr = run_ok(
        buildah_cmd(&storage)
            .args(["from", "--tls-verify=false"])
            .arg(format!("docker://{spec}")),
    );
    // buildah leaves the bind mount's target behind as an empty file; the content is not in
    // the image.
    let content = run_ok(buildah_cmd(&storage).args([
        "run",
        "--isolation",
        "chroot",
        &ctr,
        "--",
        "sh",
        "-c",
        "cat /etc/yum.repos.d/test-*.repo 2>/dev/null; true",
    ]));
    assert!(
        content.trim().is_empty(),
        "repo content committed: {content}"
    );
    run_ok(buildah_cmd(&storage).args(["rm", &ctr]));
}

/// Pushes a busybox base image for `arches` (OCI names) as a manifest list `<reg>/<name>:1`.
fn push_multiarch_base(s: &Setup, name: &str, arches: &[&str]) -> String {
    let storage = s.fixtures.scratch(&format!("mbase-{name}"));
    let rootfs = storage.join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).expect("rootfs");
    std::fs::copy(common::fixtures::BUSYBOX, rootfs.join("bin/busybox")).expect("busybox");
    for l in ["sh", "echo", "sleep", "cat"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(l)).expect("symlink");
    }
    let b = |args: &[&str]| run_ok(buildah_cmd(&storage).args(args));
    let list = format!("localhost/{name}:1");
    b(&["manifest", "create", &list]);
    for a in arches {
        let ctr = b(&["from", "--arch", a, "scratch"]);
        b(&["copy", &ctr, rootfs.to_str().expect("utf-8"), "/"]);
        b(&[
            "config",
            "--arch",
            a,
            "--os",
            "linux",
            "--env",
            "PATH=/bin",
            &ctr,
        ]);
        let img = format!("localhost/{name}-{a}:1");
        b(&["commit", "--quiet", &ctr, &img]);
        b(&["rm", &ctr]);
        b(&[
            "manifest",
            "add",
            &list,
            &format!("containers-storage:{img}"),
        ]);
    }
    let dest = format!("{}/{name}:1", s.registry.host_port());
    b(&[
        "manifest",
        "push",
        "--all",
        "--tls-verify=false",
        &list,
        &format!("docker://{dest}"),
    ]);
    dest
}

#[test]
fn two_arches_fan_out_to_two_hosts() {
    let Some(s) = setup(
        "x86_64 aarch64",
        &[("b1", &["x86_64"]), ("b2", &["aarch64"])],
        &[],
    ) else {
        return;
    };
    let b1 = common::host_id(&s.hub, "b1");
    let b2 = common::host_id(&s.hub, "b2");

    // Both arches build: a manifest list under the unique tag, children on their own hosts.
    let base = push_multiarch_base(&s, "mbase", &["amd64", "arm64"]);
    let src = extra_repo(
        &s,
        "multi",
        &format!(
            "FROM {base}\nLABEL com.redhat.component=multi-container name=multi version=1\nRUN echo built for this platform\n"
        ),
    );
    let id = s.submit_src(&src, "{'git_branch': 'main'}");
    assert_eq!(s.wait_end(id), CLOSED, "{}", s.outcome(id));
    let mut kids = s.children(id);
    kids.sort_by(|a, b| a.2.cmp(&b.2));
    assert_eq!(kids.len(), 2, "{kids:?}");
    assert_eq!(kids[0].2, "aarch64");
    assert_eq!(kids[0].4, Some(b2), "aarch64 child on b2: {kids:?}");
    assert_eq!(kids[1].2, "x86_64");
    assert_eq!(kids[1].4, Some(b1), "x86_64 child on b1: {kids:?}");
    assert!(
        kids.iter()
            .all(|k| k.1 == "createContainer" && k.3 == CLOSED)
    );
    let repos = repositories(&s.outcome(id));
    let unique = repos
        .iter()
        .find(|r| tag_of(r).starts_with("f40-candidate-"))
        .expect("unique tag");
    let raw = s.skopeo_raw(unique);
    let mut platforms: Vec<String> = raw["manifests"]
        .as_array()
        .unwrap_or_else(|| panic!("not a manifest list: {raw}"))
        .iter()
        .map(|m| {
            m["platform"]["architecture"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    platforms.sort();
    assert_eq!(platforms, ["amd64", "arm64"], "{raw}");
    for r in &repos {
        assert!(s.skopeo_raw(r)["manifests"].is_array(), "{r} is the list");
    }
    let log = s.output_text(id, "aarch64.log");
    assert_contains(&log, "built for this platform", "aarch64.log in the parent");
    // Each arch's archive names its own base image as parent, and its own layers.
    let archives = image_archives(&s, "multi-container-1-1");
    assert_eq!(archives.len(), 2, "{archives:?}");
    for a in &archives {
        let docker = &a["extra"]["docker"];
        let oci_arch = match a["extra"]["image"]["arch"].as_str() {
            Some("x86_64") => "amd64",
            Some("aarch64") => "arm64",
            other => panic!("arch {other:?}: {a}"),
        };
        assert_eq!(
            docker["parent_id"].as_str(),
            Some(config_digest(&s, &base, oci_arch).as_str()),
            "{oci_arch} parent"
        );
        assert_eq!(docker["config"]["architecture"], oci_arch, "{docker}");
        let diff_ids: Vec<&serde_json::Value> = docker["layer_sizes"]
            .as_array()
            .expect("layer_sizes")
            .iter()
            .map(|l| &l["diff_id"])
            .collect();
        let config_ids: Vec<&serde_json::Value> = docker["config"]["rootfs"]["diff_ids"]
            .as_array()
            .expect("diff_ids")
            .iter()
            .collect();
        assert_eq!(diff_ids, config_ids, "{docker}");
    }

    // One arch fails (the base has no arm64 image): the parent fails with that fault and the
    // x86_64 child, still sleeping, is canceled.
    let base = push_multiarch_base(&s, "amd64only", &["amd64"]);
    let src = extra_repo(
        &s,
        "halfbroken",
        &format!(
            "FROM {base}\nLABEL com.redhat.component=multi-container name=multi version=2\nRUN echo x86 started && sleep 300\n"
        ),
    );
    let id = s.submit_src(&src, "{'git_branch': 'main', 'scratch': True}");
    assert_eq!(s.wait_end(id), FAILED, "{}", s.outcome(id));
    assert_contains(
        &s.outcome(id),
        "FAULT 2001 Image build failed.",
        "parent fault",
    );
    let kids = wait_for(Duration::from_secs(60), "both children to end", || {
        let k = s.children(id);
        k.iter().all(|c| c.3 >= 2 && c.3 != 4).then_some(k)
    });
    let state_of = |arch: &str| kids.iter().find(|k| k.2 == arch).map(|k| k.3);
    assert_eq!(state_of("aarch64"), Some(FAILED), "{kids:?}");
    assert_eq!(state_of("x86_64"), Some(CANCELED), "{kids:?}");
    assert_eq!(s.builders.len(), 2);
}
