//! Image archive compression: `build::archive::gzip_parallel` (independent 4 MiB gzip members,
//! one compressing thread per core) against single-thread baselines, on a generated
//! docker-archive-like tar.
//!
//! The tar is built by this bench in a temporary directory below the cargo target directory (real
//! disk): `manifest.json`, a config JSON and a few uncompressed layer tars named by their SHA-256,
//! as `buildah push docker-archive:` writes them. About a third of the layer bytes are random
//! (incompressible, like the already compressed files images carry); the rest are copies of the
//! files found under `/usr/bin` and `/usr/share` (executables, text, locale data), repeated under
//! other paths when there are too few of them, or generated text when there are none.
//!
//! Measured, each on the same tar (page-cached: it is read once before timing), all writing their
//! output to a file in the same directory, no fsync:
//!
//! - ours, `default_threads()` threads, at the builder's level (`ARCHIVE_LEVEL` = 1 in
//!   `src/builder/container.rs`), through a 1 MiB `BufWriter` as the builder writes it; this
//!   includes the MD5 and SHA-256 of the output that the builder records (the gzip and zstd CLIs
//!   hash nothing);
//! - ours with one thread (same code, same level): the single-thread baseline;
//! - GNU `gzip -1 -c` and `gzip -6 -c` (gzip's default level), output redirected to a file;
//! - `zstd -1 -T0` and `zstd -1 -T1`, when a `zstd` program is installed.
//!
//! The variants take turns (one of each per round) and each figure is the median over the rounds;
//! throughput is uncompressed input per second, MB = 10^6 bytes. CPU seconds are user + system
//! time of the whole bench process (ours: every thread, including reading and writing) or of the
//! child process; input MB per CPU second is the figure least disturbed by other load on the
//! machine. Sizes are compared too: zlib-rs' level 1 is zlib-ng's `deflate_quick` (static Huffman
//! codes), not GNU gzip's level 1, so it compresses less.
//!
//! Run: `cargo bench --bench archive`. Environment: `BENCH_MB` = tar size in MiB (default 300),
//! `BENCH_RUNS` = rounds (default 3), `BENCH_THREADS` = threads of the parallel variant (default
//! the machine's parallelism), `BENCH_LEVEL` = our gzip level (default the builder's, 1).

#[path = "common/mod.rs"]
mod common;
use common::median;

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use containerbuild::build::archive::{default_threads, gzip_parallel};
use rand::{RngCore, SeedableRng};
use sha2::Digest as _;

/// The builder's archive level (`ARCHIVE_LEVEL` in `src/builder/container.rs`, private there).
const BUILDER_LEVEL: u32 = 1;
/// Layers in the generated image.
const LAYERS: usize = 4;
/// Largest corpus file taken from the system directories.
const MAX_FILE: u64 = 16 << 20;

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(default)
}

/// Regular files below `dirs` (symlinks not followed), sorted, until `budget` bytes.
fn corpus(dirs: &[&str], budget: u64) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut total = 0u64;
    let mut stack: Vec<PathBuf> = dirs.iter().rev().map(PathBuf::from).collect();
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut entries: Vec<_> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
        entries.sort();
        let mut subdirs = Vec::new();
        for p in entries {
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if m.is_dir() {
                subdirs.push(p);
            } else if m.is_file() && m.len() > 0 && m.len() <= MAX_FILE {
                if total >= budget {
                    return out;
                }
                total += m.len();
                out.push((p, m.len()));
            }
        }
        stack.extend(subdirs.into_iter().rev());
    }
    out
}

/// Text standing in for system files when none are readable.
fn synthetic_text(i: u64, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 64);
    let mut k = i;
    while v.len() < len {
        k = k
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let _ = writeln!(
            v,
            "{:08x} option-{} = value {} # entry {} of the configuration",
            k >> 32,
            (k >> 40) % 97,
            (k >> 20) % 1000,
            i
        );
    }
    v.truncate(len);
    v
}

fn file_header(size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(1_700_000_000);
    h.set_uid(0);
    h.set_gid(0);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

/// Writes the docker-archive-like tar of about `target` bytes to `path`; returns its size and
/// the random and compressible byte counts.
fn generate(path: &Path, target: u64) -> std::io::Result<(u64, u64, u64)> {
    let want_text = target * 2 / 3;
    let files = corpus(&["/usr/bin", "/usr/share"], want_text);
    let corpus_bytes: u64 = files.iter().map(|f| f.1).sum();
    println!(
        "corpus: {} files, {:.1} MB from /usr/bin and /usr/share{}",
        files.len(),
        corpus_bytes as f64 / 1e6,
        if corpus_bytes < want_text {
            " (repeated under other paths to fill the compressible part)"
        } else {
            ""
        }
    );
    let mut rng = rand::rngs::SmallRng::seed_from_u64(0x5eed);
    let per_layer = target / LAYERS as u64;
    let (mut random_total, mut text_total) = (0u64, 0u64);
    let mut next_file = 0usize;
    let mut copy = 0usize;
    let mut blob = 0usize;
    let mut layer_names = Vec::new();
    let mut out = tar::Builder::new(BufWriter::with_capacity(1 << 20, File::create(path)?));
    for _ in 0..LAYERS {
        let mut layer = tar::Builder::new(Vec::with_capacity(per_layer as usize + (8 << 20)));
        let (mut lr, mut lt) = (0u64, 0u64);
        while lr + lt < per_layer {
            if lr * 2 < lt {
                // Incompressible: a "compressed" payload of 64 KiB .. 4 MiB.
                let len = (64 << 10) + (rng.next_u64() % (4 << 20)) as usize;
                let mut data = vec![0u8; len];
                rng.fill_bytes(&mut data);
                let name = format!("usr/lib/payload/blob-{blob:05}.xz");
                blob += 1;
                layer.append_data(&mut file_header(len as u64, 0o644), name, &data[..])?;
                lr += len as u64;
            } else if files.is_empty() {
                let len = (16 << 10) + (rng.next_u64() % (1 << 20)) as usize;
                let data = synthetic_text(blob as u64, len);
                let name = format!("etc/generated/conf-{blob:05}.conf");
                blob += 1;
                layer.append_data(&mut file_header(len as u64, 0o644), name, &data[..])?;
                lt += len as u64;
            } else {
                let (src, _) = &files[next_file];
                next_file += 1;
                if next_file == files.len() {
                    next_file = 0;
                    copy += 1;
                }
                let Ok(data) = std::fs::read(src) else {
                    continue;
                };
                let rel = src.strip_prefix("/").unwrap_or(src).to_string_lossy();
                let name = if copy == 0 {
                    rel.into_owned()
                } else {
                    format!("opt/copy{copy}/{rel}")
                };
                layer.append_data(&mut file_header(data.len() as u64, 0o755), name, &data[..])?;
                lt += data.len() as u64;
            }
        }
        let layer = layer.into_inner()?;
        let digest = hex(&sha2::Sha256::digest(&layer));
        let name = format!("{digest}.tar");
        out.append_data(
            &mut file_header(layer.len() as u64, 0o644),
            &name,
            &layer[..],
        )?;
        layer_names.push(name);
        random_total += lr;
        text_total += lt;
    }
    let config = format!(
        "{{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{{\"type\":\"layers\",\"diff_ids\":[{}]}}}}",
        layer_names
            .iter()
            .map(|n| format!("\"sha256:{}\"", n.trim_end_matches(".tar")))
            .collect::<Vec<_>>()
            .join(",")
    );
    let config_name = format!("{}.json", hex(&sha2::Sha256::digest(config.as_bytes())));
    out.append_data(
        &mut file_header(config.len() as u64, 0o644),
        &config_name,
        config.as_bytes(),
    )?;
    let manifest = format!(
        "[{{\"Config\":\"{config_name}\",\"RepoTags\":[\"localhost/bench:latest\"],\"Layers\":[{}]}}]",
        layer_names
            .iter()
            .map(|n| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(",")
    );
    out.append_data(
        &mut file_header(manifest.len() as u64, 0o644),
        "manifest.json",
        manifest.as_bytes(),
    )?;
    let mut w = out.into_inner()?;
    w.flush()?;
    drop(w);
    Ok((std::fs::metadata(path)?.len(), random_total, text_total))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// User + system CPU seconds of `who` (`RUSAGE_SELF` or `RUSAGE_CHILDREN`).
fn cpu_seconds(who: libc::c_int) -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a rusage struct.
    if unsafe { libc::getrusage(who, &mut ru) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

#[derive(Clone)]
enum Variant {
    Ours {
        threads: usize,
    },
    Cli {
        program: &'static str,
        args: Vec<&'static str>,
    },
}

struct Case {
    label: String,
    variant: Variant,
    out: PathBuf,
    secs: Vec<f64>,
    cpu: Vec<f64>,
    size: u64,
}

fn run_case(case: &mut Case, input: &Path, level: u32) {
    let _ = std::fs::remove_file(&case.out);
    match &case.variant {
        Variant::Ours { threads } => {
            let cpu0 = cpu_seconds(libc::RUSAGE_SELF);
            let t0 = Instant::now();
            let f = File::open(input).expect("open the tar");
            let w = BufWriter::with_capacity(1 << 20, File::create(&case.out).expect("output"));
            let stats = gzip_parallel(f, w, *threads, level).expect("gzip_parallel");
            case.secs.push(t0.elapsed().as_secs_f64());
            case.cpu.push(cpu_seconds(libc::RUSAGE_SELF) - cpu0);
            case.size = stats.size;
        }
        Variant::Cli { program, args } => {
            let cpu0 = cpu_seconds(libc::RUSAGE_CHILDREN);
            let t0 = Instant::now();
            let status = Command::new(program)
                .args(args)
                .arg(input)
                .stdin(Stdio::null())
                .stdout(File::create(&case.out).expect("output"))
                .status()
                .unwrap_or_else(|e| panic!("{program}: {e}"));
            case.secs.push(t0.elapsed().as_secs_f64());
            case.cpu.push(cpu_seconds(libc::RUSAGE_CHILDREN) - cpu0);
            assert!(status.success(), "{program} {args:?} failed: {status}");
            case.size = std::fs::metadata(&case.out).map(|m| m.len()).unwrap_or(0);
        }
    }
}

fn program_works(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn main() {
    let mib = env_num("BENCH_MB", 300) as u64;
    let runs = env_num("BENCH_RUNS", 3);
    let threads = env_num("BENCH_THREADS", default_threads());
    let level = std::env::var("BENCH_LEVEL")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(BUILDER_LEVEL)
        .min(9);
    let dir = tempfile::Builder::new()
        .prefix("archive-bench")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("tempdir");
    let tar_path = dir.path().join("image.tar");
    let t0 = Instant::now();
    let (tar_len, random, text) = generate(&tar_path, mib << 20).expect("generate the tar");
    println!(
        "tar: {:.1} MB ({:.1} MB random, {:.1} MB from files; {LAYERS} layers) generated in {:.1} s",
        tar_len as f64 / 1e6,
        random as f64 / 1e6,
        text as f64 / 1e6,
        t0.elapsed().as_secs_f64()
    );
    // Page-cache the input, so every variant reads it from memory.
    let mut sink = vec![0u8; 1 << 20];
    let mut f = File::open(&tar_path).expect("open the tar");
    while f.read(&mut sink).expect("read the tar") > 0 {}

    let out = |name: &str| dir.path().join(name);
    let mut cases = vec![
        Case {
            label: format!("ours, {threads} threads, level {level}"),
            variant: Variant::Ours { threads },
            out: out("ours-n.tar.gz"),
            secs: vec![],
            cpu: vec![],
            size: 0,
        },
        Case {
            label: format!("ours, 1 thread, level {level}"),
            variant: Variant::Ours { threads: 1 },
            out: out("ours-1.tar.gz"),
            secs: vec![],
            cpu: vec![],
            size: 0,
        },
    ];
    let gzip = program_works("gzip");
    if gzip {
        for (label, level) in [("gzip -1", "-1"), ("gzip -6", "-6")] {
            cases.push(Case {
                label: label.to_string(),
                variant: Variant::Cli {
                    program: "gzip",
                    args: vec![level, "-c"],
                },
                out: out(&format!("gzip{level}.tar.gz")),
                secs: vec![],
                cpu: vec![],
                size: 0,
            });
        }
    } else {
        println!("gzip: not installed, no gzip baseline");
    }
    if program_works("zstd") {
        for (label, t) in [("zstd -1 -T0", "-T0"), ("zstd -1 -T1", "-T1")] {
            cases.push(Case {
                label: label.to_string(),
                variant: Variant::Cli {
                    program: "zstd",
                    args: vec!["-1", t, "-q", "-c"],
                },
                out: out(&format!("zstd{t}.tar.zst")),
                secs: vec![],
                cpu: vec![],
                size: 0,
            });
        }
    } else {
        println!("zstd: not installed, no zstd figures");
    }

    for round in 0..runs {
        // Start each round with a different variant, so none always follows the same one.
        let n = cases.len();
        for i in 0..n {
            run_case(&mut cases[(i + round) % n], &tar_path, level);
        }
    }
    // Our output is a valid gzip file.
    if gzip {
        let ok = Command::new("gzip")
            .arg("-t")
            .arg(&cases[0].out)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "gzip -t refuses our archive");
        println!("gzip -t accepts our multi-member archive");
    }
    for c in &cases {
        let _ = std::fs::remove_file(&c.out);
    }

    let mbps = |c: &Case| tar_len as f64 / 1e6 / median(&c.secs);
    println!(
        "\n{runs} rounds, median; input {:.1} MB; output files on the same disk as the input",
        tar_len as f64 / 1e6
    );
    println!(
        "{:<28} {:>9} {:>9} {:>17} {:>9} {:>10} {:>12} {:>7}",
        "variant", "MB/s", "median s", "range s", "cpu s", "MB/cpu-s", "output MB", "ratio"
    );
    for c in &cases {
        let lo = c.secs.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = c.secs.iter().copied().fold(0.0, f64::max);
        println!(
            "{:<28} {:>9.1} {:>9.2} {:>8.2}-{:<8.2} {:>9.2} {:>10.1} {:>12.1} {:>6.1}%",
            c.label,
            mbps(c),
            median(&c.secs),
            lo,
            hi,
            median(&c.cpu),
            tar_len as f64 / 1e6 / median(&c.cpu).max(1e-9),
            c.size as f64 / 1e6,
            100.0 * c.size as f64 / tar_len as f64
        );
    }
    let find = |label: &str| cases.iter().find(|c| c.label.starts_with(label));
    let ours_n = &cases[0];
    let ours_1 = &cases[1];
    println!();
    println!(
        "ours {threads} threads / ours 1 thread: {:.2}x",
        mbps(ours_n) / mbps(ours_1)
    );
    if let Some(g1) = find("gzip -1") {
        let r = mbps(ours_n) / mbps(g1);
        println!(
            "ours {threads} threads / gzip -1: {r:.2}x (target >= 1.8x on 2 cores: {})",
            if r >= 1.8 { "met" } else { "not met" }
        );
        println!("ours 1 thread / gzip -1: {:.2}x", mbps(ours_1) / mbps(g1));
        println!(
            "size ours / gzip -1: {:.4} (members of {} MiB)",
            ours_n.size as f64 / g1.size.max(1) as f64,
            containerbuild::build::archive::BLOCK >> 20
        );
    }
    if let Some(g6) = find("gzip -6") {
        println!(
            "ours {threads} threads / gzip -6: {:.2}x",
            mbps(ours_n) / mbps(g6)
        );
    }
    if let Some(z) = find("zstd -1 -T0") {
        println!(
            "ours {threads} threads / zstd -1 -T0: {:.2}x",
            mbps(ours_n) / mbps(z)
        );
    }
}
