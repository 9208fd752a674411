//! The rpm header blob parser, fed blobs directly (every backend hands its blobs to it).
#![no_main]

use containerbuild::rpmdb::Detail;
use containerbuild::rpmdb::header::parse_package;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_package(data, 1, Detail::Files);
});
