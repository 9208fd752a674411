//! The NDB slot/blob walker (`Packages.db`).
#![no_main]

use std::path::Path;

use containerbuild::rpmdb::{Detail, ndb};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ndb::read(&data, Path::new("Packages.db"), Detail::Files);
});
