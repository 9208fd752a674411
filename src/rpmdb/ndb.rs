//! The NDB backend (`Packages.db`, SUSE), after rpm's lib/backend/ndb/rpmpkg.c: a slot table
//! in the first `slotnpages` 4 KiB pages, each used slot pointing at a blob of 16-byte blocks
//! framed by `BlbS` ... `BlbE`. All little-endian.
//!
//! A slot is free when its block offset is 0 (rpm's test; the package index of a free slot is not
//! reliably 0). The blob's adler32 is checked, which rpm only does when it rewrites a blob: a
//! reader of untrusted images should not return packages from a torn write.

use std::collections::HashSet;
use std::path::Path;

use super::ReadAt;
use super::error::RpmdbError;
use super::header::{self, MAX_BLOB};
use super::types::Package;

const PAGE: u64 = 4096;
const SLOT: u64 = 16;
const BLK: u64 = 16;
const HEAD: u64 = 16;
const TAIL: u64 = 12;

fn le(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Calls `f` with every (pkgidx, header blob), in slot order.
pub fn walk(
    src: &dyn ReadAt,
    path: &Path,
    f: &mut dyn FnMut(u32, Vec<u8>) -> Result<(), RpmdbError>,
) -> Result<(), RpmdbError> {
    let corrupt = |reason: String| RpmdbError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let len = src.len();
    if len % BLK != 0 {
        return Err(corrupt(format!("size {len} is not a multiple of 16")));
    }
    let fileblks = len / BLK;
    let mut head = [0u8; 32];
    src.read_exact_at(&mut head, 0)
        .map_err(|e| corrupt(format!("header: {e}")))?;
    if &head[0..4] != b"RpmP" {
        return Err(corrupt("no RpmP magic".into()));
    }
    let version = le(&head, 4);
    if version != 0 {
        return Err(corrupt(format!("version {version}")));
    }
    let slotnpages = u64::from(le(&head, 12));
    if slotnpages == 0 || slotnpages * PAGE > len {
        return Err(corrupt(format!(
            "{slotnpages} slot pages in a {len}-byte file"
        )));
    }
    let min_blkoff = slotnpages * PAGE / BLK;
    let mut seen = HashSet::new();
    let mut page = vec![0u8; PAGE as usize];
    for p in 0..slotnpages {
        src.read_exact_at(&mut page, p * PAGE)
            .map_err(|e| corrupt(format!("slot page {p}: {e}")))?;
        // The first two slots of page 0 hold the file header.
        let first = if p == 0 { 2 } else { 0 };
        for s in first..(PAGE / SLOT) as usize {
            let slot = &page[s * SLOT as usize..(s + 1) * SLOT as usize];
            let slotno = p * (PAGE / SLOT) + s as u64;
            if &slot[0..4] != b"Slot" {
                return Err(corrupt(format!("slot {slotno}: no Slot magic")));
            }
            let (pkgidx, blkoff, blkcnt) =
                (le(slot, 4), u64::from(le(slot, 8)), u64::from(le(slot, 12)));
            if blkoff == 0 {
                continue;
            }
            if pkgidx == 0 || blkcnt == 0 || blkoff < min_blkoff || blkoff + blkcnt > fileblks {
                return Err(corrupt(format!(
                    "slot {slotno}: package {pkgidx} at block {blkoff}+{blkcnt} of {fileblks}"
                )));
            }
            if !seen.insert(pkgidx) {
                return Err(corrupt(format!("package {pkgidx} has two slots")));
            }
            let blob = read_blob(src, pkgidx, blkoff, blkcnt)
                .map_err(|reason| corrupt(format!("package {pkgidx} (slot {slotno}): {reason}")))?;
            f(pkgidx, blob)?;
        }
    }
    Ok(())
}

fn read_blob(src: &dyn ReadAt, pkgidx: u32, blkoff: u64, blkcnt: u64) -> Result<Vec<u8>, String> {
    let total = blkcnt * BLK;
    if total < HEAD + TAIL {
        return Err(format!("{blkcnt} blocks cannot hold a blob"));
    }
    if total > MAX_BLOB as u64 + HEAD + TAIL + BLK {
        return Err(format!("{blkcnt} blocks is larger than any header"));
    }
    let mut buf = vec![0u8; total as usize];
    src.read_exact_at(&mut buf, blkoff * BLK)
        .map_err(|e| e.to_string())?;
    if &buf[0..4] != b"BlbS" {
        return Err("no BlbS magic".into());
    }
    if le(&buf, 4) != pkgidx {
        return Err(format!("blob belongs to package {}", le(&buf, 4)));
    }
    let bloblen = u64::from(le(&buf, 12));
    if blkcnt != (HEAD + bloblen + TAIL).div_ceil(BLK) {
        return Err(format!("{bloblen}-byte blob in {blkcnt} blocks"));
    }
    let t = (total - TAIL) as usize;
    if &buf[t + 8..t + 12] != b"BlbE" {
        return Err("no BlbE magic".into());
    }
    if u64::from(le(&buf, t + 4)) != bloblen {
        return Err(format!(
            "head says {bloblen} bytes, tail says {}",
            le(&buf, t + 4)
        ));
    }
    let mut adler = adler2::Adler32::new();
    adler.write_slice(&buf[..t]);
    if adler.checksum() != le(&buf, t) {
        return Err("adler32 mismatch".into());
    }
    buf.truncate((HEAD + bloblen) as usize);
    buf.drain(..HEAD as usize);
    Ok(buf)
}

pub fn read(src: &dyn ReadAt, path: &Path) -> Result<Vec<Package>, RpmdbError> {
    let mut out = Vec::new();
    walk(src, path, &mut |instance, blob| {
        let pkg = header::parse_package(&blob, instance).map_err(|source| RpmdbError::Package {
            path: path.to_path_buf(),
            instance,
            source,
        })?;
        out.push(pkg);
        Ok(())
    })?;
    Ok(out)
}
