//! `containerbuild rpm-manifest --layers` on a 10-layer image of about 500 MB: wall time and the
//! peak RSS of the `rpm-manifest` process, for a docker-archive (plain tar, layers read by
//! seeking) and an OCI layout (gzip layers, streamed). The same measurement on an image of the
//! same shape with layers a twelfth of the size (about 50 MB in all) shows whether RSS grows with
//! layer size; the per-layer analysis is meant to stream every layer (target: RSS independent of
//! layer size).
//!
//! The images are built with buildah (`bud --layers`, chroot isolation, vfs) from the fixture
//! base `cb-base:1` (`fixtures/base-image/build.sh`, pushed to a loopback `docker-registry`; the
//! fixtures come from `tests/common/fixtures.rs`). On top of the base (layer 0) nine RUN layers
//! each write DATA bytes from /dev/urandom (so nothing compresses), and besides:
//! layer 1 installs `cb-extra-1.0-1` (`rpm -i`), layer 2 upgrades `cb-hello` to 1.1
//! (`rpm -Uvh`), layer 3 deletes RPM-owned files (drift `deleted`), layer 4 writes its DATA
//! bytes over `/usr/share/cb-extra/file.txt` (drift `modified`, so a DATA-sized file is hashed);
//! layers 5-9 only add data. The RPMs are bind-mounted into the RUN steps from the build context,
//! so they add no layer. Each image is exported with `buildah push` as `docker-archive:` and as
//! `oci:` (gzip); the first run of every source is checked against those expectations.
//!
//! Runs alternate between the four sources (small archive, small layout, big archive, big
//! layout), all files in the page cache. Time is spawn -> exit of `containerbuild rpm-manifest
//! --layers SOURCE` (JSON to a file); peak RSS is `ru_maxrss` of that one process, from
//! `wait4`. Everything lives in temp dirs (buildah storage included) and is removed at the end;
//! the registry is stopped by pid.
//!
//! Run: `cargo bench --bench rpm_manifest_layers`. Env: `BENCH_RUNS` (default 5, at least 3);
//! `CONTAINERBUILD_BIN` overrides the binary (default: the release `containerbuild` cargo builds
//! for the bench). Needs root, buildah, skopeo, docker-registry, git, rpm, rpmbuild, dash and
//! busybox-static; without them it says what is missing and exits 0.

#[path = "common/mod.rs"]
mod common;
use common::median;

#[path = "../tests/common/fixtures.rs"]
mod fixtures;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::Value;

use fixtures::{BUSYBOX, Fixtures, TestRegistry, buildah_cmd, run_ok, which};

/// DATA of the big image: 9 layers of it plus the 11 MB base make about 500 MB.
const BIG_LAYER_BYTES: u64 = 54_000_000;
/// DATA of the small image (a twelfth): about 50 MB in all.
const SMALL_LAYER_BYTES: u64 = 4_500_000;
const LAYERS: usize = 10;
const EXTRA_RPM: &str = "cb-extra-1.0-1.noarch.rpm";
const HELLO_RPM: &str = "cb-hello-1.1-1.noarch.rpm";

/// The layers on top of the base; `@DATA@` is the byte count, `@BASE@` the base reference.
const CONTAINERFILE: &str = "\
FROM @BASE@
RUN --mount=type=bind,source=.,target=/ctx rpm -i /ctx/cb-extra-1.0-1.noarch.rpm && head -c @DATA@ /dev/urandom > /data1
RUN --mount=type=bind,source=.,target=/ctx rpm -Uvh /ctx/cb-hello-1.1-1.noarch.rpm && head -c @DATA@ /dev/urandom > /data2
RUN rm -rf /usr/share/doc/cb-hello /usr/share/cb-epoch/data.txt && head -c @DATA@ /dev/urandom > /data3
RUN head -c @DATA@ /dev/urandom > /usr/share/cb-extra/file.txt
RUN head -c @DATA@ /dev/urandom > /data5
RUN head -c @DATA@ /dev/urandom > /data6
RUN head -c @DATA@ /dev/urandom > /data7
RUN head -c @DATA@ /dev/urandom > /data8
RUN head -c @DATA@ /dev/urandom > /data9
";

fn missing_requirements(bin: &Path) -> Vec<String> {
    let mut missing: Vec<String> = [
        "buildah",
        "skopeo",
        "docker-registry",
        "git",
        "rpm",
        "rpmbuild",
        "dash",
    ]
    .into_iter()
    .filter(|t| which(t).is_none())
    .map(str::to_owned)
    .collect();
    if !Path::new(BUSYBOX).is_file() {
        missing.push(format!("{BUSYBOX} (busybox-static)"));
    }
    if !bin.is_file() {
        missing.push(format!("{} (cargo build --release)", bin.display()));
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        missing.push("root (buildah with vfs and chroot isolation runs as root)".to_owned());
    }
    missing
}

fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
            (lo.min(*x), hi.max(*x))
        })
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// Bytes of a file or, recursively, a directory.
fn disk_size(p: &Path) -> u64 {
    let meta = std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    if meta.is_dir() {
        std::fs::read_dir(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .map(|e| disk_size(&e.expect("dir entry").path()))
            .sum()
    } else {
        meta.len()
    }
}

/// Removes every container and image of a bench storage when dropped, also after a panic, so
/// nothing is left mounted or locked when the temp dir goes.
struct StorageGuard(PathBuf);

impl Drop for StorageGuard {
    fn drop(&mut self) {
        for args in [&["rm", "--all"][..], &["rmi", "--all", "--force"][..]] {
            let _ = buildah_cmd(&self.0)
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// One image, exported both ways.
struct Image {
    label: String,
    layer_bytes: u64,
    /// (source kind, path).
    sources: Vec<(&'static str, PathBuf)>,
}

/// Builds the 10-layer image with DATA = `layer_bytes` in `storage` and exports it under `out`.
fn build_image(
    storage: &Path,
    ctx: &Path,
    base: &str,
    out: &Path,
    name: &str,
    layer_bytes: u64,
) -> Image {
    let file = ctx.join(format!("Containerfile.{name}"));
    std::fs::write(
        &file,
        CONTAINERFILE
            .replace("@BASE@", base)
            .replace("@DATA@", &layer_bytes.to_string()),
    )
    .expect("write Containerfile");
    let image = format!("localhost/bench-rpm-manifest-{name}:1");
    let t = Instant::now();
    run_ok(
        buildah_cmd(storage)
            .args([
                "bud",
                "--quiet",
                "--layers",
                "--isolation",
                "chroot",
                "--tls-verify=false",
                "-t",
                &image,
                "-f",
            ])
            .arg(&file)
            .arg(ctx),
    );
    let archive = out.join(format!("{name}.tar"));
    let layout = out.join(format!("{name}-oci"));
    run_ok(
        buildah_cmd(storage)
            .args(["push", "--quiet", &image])
            .arg(format!("docker-archive:{}", archive.display())),
    );
    run_ok(
        buildah_cmd(storage)
            .args(["push", "--quiet", &image])
            .arg(format!("oci:{}", layout.display())),
    );
    eprintln!(
        "setup: {name} image (DATA {layer_bytes} bytes) built and exported in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    Image {
        label: name.to_owned(),
        layer_bytes,
        sources: vec![("docker-archive", archive), ("oci-layout", layout)],
    }
}

/// One run of `cmd` (stdout to `out`): (wall seconds, peak RSS bytes, user+sys CPU seconds).
fn measure(cmd: &mut Command, out: &Path) -> (f64, u64, f64) {
    let stdout = File::create(out).expect("report file");
    let stderr_path = out.with_extension("stderr");
    let stderr = File::create(&stderr_path).expect("stderr file");
    let t = Instant::now();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let pid = libc::pid_t::try_from(child.id()).expect("pid");
    let mut status = 0;
    // SAFETY: rusage is plain data; all zeroes is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for (and reaps) the child this function spawned, by its pid; `child` is
    // not waited for again.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    let wall = t.elapsed().as_secs_f64();
    drop(child);
    assert_eq!(r, pid, "wait4: {}", std::io::Error::last_os_error());
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{cmd:?} failed (status {status:#x}): {}",
        std::fs::read_to_string(&stderr_path).unwrap_or_default()
    );
    let cpu = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    // ru_maxrss is in KiB on Linux.
    let rss = u64::try_from(ru.ru_maxrss).unwrap_or(0) * 1024;
    (wall, rss, cpu(ru.ru_utime) + cpu(ru.ru_stime))
}

fn strings<'a>(v: &'a Value, key: &str, field: &str) -> Vec<&'a str> {
    v[key]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x[field].as_str()).collect())
        .unwrap_or_default()
}

/// The report must show the layers the Containerfile made.
fn check_report(path: &Path, what: &str) {
    let text = std::fs::read_to_string(path).expect("report");
    let r: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: not JSON: {e}"));
    let ls = r["layers"].as_array().expect("layers");
    assert_eq!(ls.len(), LAYERS, "{what}: layer count");
    assert_eq!(r["package_count"], 4, "{what}: package_count");
    let added: Vec<&str> = ls[1]["packages"]["added"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["nevra"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(added, ["cb-extra-1.0-1.noarch"], "{what}: layer 1 added");
    assert_eq!(
        strings(&ls[2]["packages"], "upgraded", "name"),
        ["cb-hello"],
        "{what}: layer 2 upgraded"
    );
    let deleted: Vec<&str> = ls[3]["drift"]
        .as_array()
        .expect("drift")
        .iter()
        .filter(|d| d["change"] == "deleted")
        .filter_map(|d| d["path"].as_str())
        .collect();
    assert!(
        deleted.contains(&"/usr/share/cb-epoch/data.txt")
            && deleted.contains(&"/usr/share/doc/cb-hello/README"),
        "{what}: layer 3 drift {deleted:?}"
    );
    let modified = &ls[4]["drift"][0];
    assert!(
        modified["path"] == "/usr/share/cb-extra/file.txt"
            && modified["change"] == "modified"
            && modified["digest_mismatch"] == true,
        "{what}: layer 4 drift {}",
        ls[4]["drift"]
    );
    for (i, l) in ls.iter().enumerate() {
        assert_eq!(
            l["warnings"],
            serde_json::json!([]),
            "{what}: layer {i} warnings"
        );
    }
}

struct Figures {
    walls: Vec<f64>,
    rss: Vec<f64>,
    cpu: Vec<f64>,
}

fn main() {
    let bin = std::env::var_os("CONTAINERBUILD_BIN")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_containerbuild")));
    let missing = missing_requirements(&bin);
    if !missing.is_empty() {
        println!(
            "rpm_manifest_layers: skipped, missing: {} (scripts/ensure-deps.sh installs the tools)",
            missing.join(", ")
        );
        return;
    }
    let runs = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(5)
        .max(3);

    // Dropped in reverse order: the storage is emptied, then the temp dirs go, then the
    // registry stops.
    let registry = TestRegistry::start();
    eprintln!(
        "setup: fixture RPMs and base image {}/{}",
        registry.host_port(),
        fixtures::BASE_IMAGE
    );
    let fx = Fixtures::build(&registry.host_port());
    let _base_guard = StorageGuard(fx.base_storage.clone());
    let storage = fx.scratch("buildah");
    let _guard = StorageGuard(storage.clone());
    let ctx = fx.scratch("context");
    for f in [EXTRA_RPM, HELLO_RPM] {
        std::fs::copy(fx.rpm(f), ctx.join(f)).expect("copy RPM into the context");
    }
    let out = fx.scratch("exports");
    let images = [
        build_image(
            &storage,
            &ctx,
            &fx.base_ref(),
            &out,
            "small",
            SMALL_LAYER_BYTES,
        ),
        build_image(&storage, &ctx, &fx.base_ref(), &out, "big", BIG_LAYER_BYTES),
    ];
    // The bench only reads the exports; the images need not stay in the storage.
    run_ok(buildah_cmd(&storage).args(["rmi", "--all", "--force"]));

    let reports = fx.scratch("reports");
    let cases: Vec<(&Image, &str, &Path)> = images
        .iter()
        .flat_map(|img| img.sources.iter().map(move |(k, p)| (img, *k, p.as_path())))
        .collect();
    let mut figures: Vec<Figures> = cases
        .iter()
        .map(|_| Figures {
            walls: Vec::new(),
            rss: Vec::new(),
            cpu: Vec::new(),
        })
        .collect();
    for run in 0..=runs {
        for (i, (img, kind, path)) in cases.iter().enumerate() {
            let report = reports.join(format!("{}-{kind}.json", img.label));
            let (wall, rss, cpu) = measure(
                Command::new(&bin)
                    .args(["rpm-manifest", "--layers"])
                    .arg(path),
                &report,
            );
            if run == 0 {
                // Uncounted warm-up (page cache), and the output check.
                check_report(&report, &format!("{} {kind}", img.label));
                continue;
            }
            eprintln!(
                "run {run}/{runs}: {} {kind}: {wall:.3} s, peak RSS {:.1} MB",
                img.label,
                mb(rss)
            );
            figures[i].walls.push(wall);
            figures[i].rss.push(mb(rss));
            figures[i].cpu.push(cpu);
        }
    }

    println!(
        "rpm_manifest_layers: {} cores, {LAYERS}-layer images (cb-base:1 + 9 RUN layers of DATA random bytes), {runs} runs each after one uncounted, alternating, page cache warm; load average at the end: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "unknown".to_owned())
    );
    // The floor: the same binary doing nothing.
    let floor: Vec<f64> = (0..runs)
        .map(|_| {
            mb(measure(
                Command::new(&bin).arg("--version"),
                &reports.join("version"),
            )
            .1)
        })
        .collect();
    println!(
        "  (floor) containerbuild --version: peak RSS median {:.1} MB",
        median(&floor)
    );
    let mut rss_medians = Vec::new();
    for ((img, kind, path), f) in cases.iter().zip(&figures) {
        let size = disk_size(path);
        let (lo, hi) = min_max(&f.walls);
        let wall = median(&f.walls);
        let (_, rss_hi) = min_max(&f.rss);
        let rss = median(&f.rss);
        println!(
            "  {:<5} DATA {:>5.1} MB  {kind:<14} {:>6.1} MB: time median {wall:.3} s (min {lo:.3}, max {hi:.3}; {:.0} MB/s), cpu median {:.3} s, peak RSS median {rss:.1} MB (max {rss_hi:.1})",
            img.label,
            mb(img.layer_bytes),
            mb(size),
            mb(size) / wall,
            median(&f.cpu),
        );
        rss_medians.push(((*kind).to_owned(), img.layer_bytes, rss));
    }
    let growth = mb(BIG_LAYER_BYTES - SMALL_LAYER_BYTES);
    let mut independent = true;
    for kind in ["docker-archive", "oci-layout"] {
        let of = |bytes: u64| {
            rss_medians
                .iter()
                .find(|(k, b, _)| k == kind && *b == bytes)
                .map_or(0.0, |r| r.2)
        };
        let (small, big) = (of(SMALL_LAYER_BYTES), of(BIG_LAYER_BYTES));
        let delta = big - small;
        // Independent: RSS grows by less than a tenth of what each layer grew by.
        let ok = delta < growth / 10.0;
        independent &= ok;
        println!(
            "  {kind:<14} peak RSS small -> big: {small:.1} -> {big:.1} MB ({delta:+.1} MB, {:.2}x) for +{growth:.1} MB per layer",
            big / small
        );
    }
    println!(
        "  RSS independent of layer size (grows by < 10% of the layer growth): {}",
        if independent { "yes" } else { "NO" }
    );
}
