//! The BerkeleyDB hash page walker (`Packages`), in the byte order its magic says, as the reader
//! does for a file found in an image, and in both orders when the magic is neither.
#![no_main]

use std::path::Path;

use containerbuild::rpmdb::{DbFormat, Detail, bdb, locate::format_of};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let orders: &[bool] = match format_of(data) {
        Some(DbFormat::BerkeleyDb { swapped }) => &[swapped][..],
        _ => &[false, true][..],
    };
    for &swapped in orders {
        let _ = bdb::read(&data, Path::new("Packages"), swapped, Detail::Files);
    }
});
