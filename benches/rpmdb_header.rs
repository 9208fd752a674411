//! Header blob parsing alone, without the database read around it.
//!
//! `rpmdb_read` times whole reads against `rpm -qa`; this isolates the parser so a change to it
//! shows up undiluted by sqlite. The blobs are the real ones of the largest sqlite fixture
//! (`../shared/fixtures/rpmdb/cbl-mariner-2.0`), loaded once up front; each iteration parses every
//! header, at `Detail::Packages` (what a package list needs) and at `Detail::Files` (what the
//! per-layer analysis needs), to show what the file lists cost.
//!
//! Run: `cargo bench --bench rpmdb_header` (skips with a message when the fixture is absent).

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use containerbuild::rpmdb::Detail;
use containerbuild::rpmdb::header::parse_package;
use criterion::{Criterion, Throughput};

/// `(hnum, blob)` of every row, in `rpmdb.sqlite`'s order.
fn load(db: &Path) -> Vec<(u32, Vec<u8>)> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open rpmdb.sqlite");
    let mut stmt = conn
        .prepare("SELECT hnum, blob FROM Packages ORDER BY hnum")
        .expect("prepare");
    stmt.query_map([], |r| {
        Ok((
            u32::try_from(r.get::<_, i64>(0)?).expect("hnum fits u32"),
            r.get::<_, Vec<u8>>(1)?,
        ))
    })
    .expect("query")
    .collect::<Result<_, _>>()
    .expect("rows")
}

fn main() {
    let db = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/rpmdb/cbl-mariner-2.0/rpmdb.sqlite");
    if !db.is_file() {
        println!("skipping: {} is absent", db.display());
        return;
    }
    let headers = load(&db);
    let bytes: usize = headers.iter().map(|(_, b)| b.len()).sum();
    println!(
        "{} headers, {:.1} MiB of blobs",
        headers.len(),
        bytes as f64 / (1024.0 * 1024.0)
    );
    // A header that fails to parse would make the loop cheaper than a real read; refuse that.
    for (hnum, blob) in &headers {
        parse_package(blob, *hnum, Detail::Files)
            .unwrap_or_else(|e| panic!("header {hnum} does not parse: {e}"));
    }

    let mut c = Criterion::default().configure_from_args();
    let mut g = c.benchmark_group("parse rpmdb headers");
    // A whole pass takes milliseconds, so short runs still collect plenty of iterations and both
    // levels finish well under a minute on a shared machine.
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(headers.len() as u64));
    for (name, detail) in [("Packages", Detail::Packages), ("Files", Detail::Files)] {
        g.bench_function(name, |b| {
            b.iter(|| {
                for (hnum, blob) in &headers {
                    black_box(parse_package(black_box(blob), *hnum, detail).ok());
                }
            })
        });
    }
    g.finish();
    c.final_summary();
}
