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
use super::types::{Detail, Package};

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
    let len = src.size();
    if !len.is_multiple_of(BLK) {
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

pub fn read(src: &dyn ReadAt, path: &Path, detail: Detail) -> Result<Vec<Package>, RpmdbError> {
    let mut out = Vec::new();
    walk(src, path, &mut |instance, blob| {
        let pkg = header::parse_package(&blob, instance, detail).map_err(|source| {
            RpmdbError::Package {
                path: path.to_path_buf(),
                instance,
                source,
            }
        })?;
        out.push(pkg);
        Ok(())
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpmdb::testutil::*;

    fn read_bytes(b: &[u8]) -> Result<Vec<Package>, RpmdbError> {
        read(&b, Path::new("Packages.db"), Detail::Files)
    }

    fn reason(r: Result<Vec<Package>, RpmdbError>) -> String {
        match r {
            Err(RpmdbError::Corrupt { reason, .. }) => reason,
            other => panic!("expected a corrupt-database error, got {other:?}"),
        }
    }

    fn two() -> Vec<u8> {
        ndb(&[(5, package("five")), (9, package("nine"))])
    }

    fn set32(f: &mut [u8], at: usize, v: u32) {
        f[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }

    #[test]
    fn reads_slots() {
        let got = read_bytes(&two()).unwrap();
        let names: Vec<_> = got.iter().map(|p| (p.instance, p.name.as_str())).collect();
        assert_eq!(names, [(5, "five"), (9, "nine")]);
    }

    /// A way to damage a database file, and what the error must mention.
    type Damage<'a> = (Box<dyn Fn(&mut Vec<u8>) + 'a>, &'static str);

    #[test]
    fn damage_is_reported() {
        let f = two();
        let slot = 2 * 16;
        let blob = 4096;
        let cases: Vec<Damage<'_>> = vec![
            (Box::new(|b| b[0] = b'X'), "magic"),
            (Box::new(|b| set32(b, 4, 1)), "version"),
            (Box::new(|b| set32(b, 12, 1000)), "slot pages"),
            (Box::new(|b| b.push(0)), "multiple of 16"),
            (Box::new(|b| b[slot + 16] = b'x'), "Slot magic"),
            (Box::new(|b| set32(b, slot + 8, 10)), "at block"),
            (Box::new(|b| set32(b, slot + 12, 1 << 30)), "at block"),
            (Box::new(|b| set32(b, slot + 4, 0)), "package 0"),
            (Box::new(|b| set32(b, slot + 16 + 4, 5)), "two slots"),
            (Box::new(|b| b[blob] = b'x'), "BlbS"),
            (Box::new(|b| set32(b, blob + 4, 6)), "belongs to package 6"),
            (Box::new(|b| set32(b, blob + 12, 3)), "blocks"),
            (Box::new(|b| b[blob + 20] ^= 1), "adler32"),
        ];
        for (damage, want) in cases {
            let mut b = f.clone();
            damage(&mut b);
            let r = reason(read_bytes(&b));
            assert!(r.contains(want), "{want}: {r}");
        }
        // Tail damage: the first blob's tail sits right before the second blob.
        let second = u32::from_le_bytes(f[slot + 16 + 8..slot + 16 + 12].try_into().unwrap());
        let tail = second as usize * 16 - 12;
        let mut b = f.clone();
        b[tail + 8] = b'x';
        assert!(reason(read_bytes(&b)).contains("BlbE"));
        let mut b = f.clone();
        set32(&mut b, tail + 4, 1);
        assert!(reason(read_bytes(&b)).contains("tail says"));
    }

    #[test]
    fn a_broken_header_names_its_package() {
        let mut bad = package("bad");
        bad[7] ^= 1;
        let f = ndb(&[(5, package("five")), (9, bad)]);
        assert!(matches!(
            read_bytes(&f),
            Err(RpmdbError::Package { instance: 9, .. })
        ));
    }

    #[test]
    fn truncations_flips_and_noise_never_panic() {
        let f = two();
        for n in (0..f.len()).step_by(5) {
            assert!(read_bytes(&f[..n]).is_err(), "truncated to {n}");
        }
        for i in (0..f.len()).filter(|i| *i < 96 || *i >= 4096) {
            let mut b = f.clone();
            b[i] ^= 0xff;
            let _ = read_bytes(&b);
        }
        for seed in 0..64 {
            let mut b = noise(seed, 8192);
            b[..32].copy_from_slice(&f[..32]);
            let _ = read_bytes(&b);
            b[32..4096].copy_from_slice(&f[32..4096]);
            let _ = read_bytes(&b);
        }
    }
}
