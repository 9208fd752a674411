//! The sqlite backend: the input is a whole `rpmdb.sqlite`, so SQLite's reading of the file and
//! our reading of the `Packages` rows and their header blobs are both exercised.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use containerbuild::rpmdb::{Detail, sqlite};
use libfuzzer_sys::fuzz_target;

/// One directory per fuzzing process, kept for its lifetime (libFuzzer exits without unwinding,
/// so the OS temp cleaner or the next run's `rm` takes it).
fn db_path() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("containerbuild-fuzz-sqlite-")
            .tempdir()
            .expect("temporary directory")
            .keep();
        dir.join("rpmdb.sqlite")
    })
}

fuzz_target!(|data: &[u8]| {
    let path = db_path();
    std::fs::write(path, data).expect("write the database");
    let _ = sqlite::read(path, None, Detail::Files);
});
