//! The BerkeleyDB hash backend (`Packages`), read without libdb, as rpm's own `bdb_ro` does.
//!
//! Iteration follows rpm (lib/backend/bdb_ro.cc): every bucket from 0 to `max_bucket`, each
//! through its chain of hash pages, and large values through chains of overflow pages. Walking
//! buckets rather than scanning all pages means freed pages with stale packages are never read.
//! Page fields are in the writing host's byte order (`swapped` = the other one); header blobs
//! are big-endian regardless. Every page number, offset and length is checked, every chain is
//! bounded by the page count, so a damaged file gives an error, not a panic or a hang.

use std::path::Path;

use super::ReadAt;
use super::error::RpmdbError;
use super::header::{self, MAX_BLOB};
use super::types::{Detail, Package};

const PAGE_HEADER: usize = 26;
const P_HASH_UNSORTED: u8 = 2;
const P_OVERFLOW: u8 = 7;
const P_HASHMETA: u8 = 8;
const P_HASH: u8 = 13;
const H_KEYDATA: u8 = 1;
const H_OFFPAGE: u8 = 3;

struct Db<'a> {
    src: &'a dyn ReadAt,
    path: &'a Path,
    swapped: bool,
    pagesize: usize,
    last_pgno: u32,
}

impl Db<'_> {
    fn corrupt(&self, reason: impl Into<String>) -> RpmdbError {
        RpmdbError::Corrupt {
            path: self.path.to_path_buf(),
            reason: reason.into(),
        }
    }

    fn u16(&self, b: &[u8], at: usize) -> Result<u16, RpmdbError> {
        let s: [u8; 2] = b
            .get(at..at + 2)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| self.corrupt(format!("field at {at} past the page")))?;
        Ok(if self.swapped {
            u16::from_be_bytes(s)
        } else {
            u16::from_le_bytes(s)
        })
    }

    fn u32(&self, b: &[u8], at: usize) -> Result<u32, RpmdbError> {
        let s: [u8; 4] = b
            .get(at..at + 4)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| self.corrupt(format!("field at {at} past the page")))?;
        Ok(if self.swapped {
            u32::from_be_bytes(s)
        } else {
            u32::from_le_bytes(s)
        })
    }

    /// Reads page `pgno` into `buf`, checking that it is one and claims to be itself.
    fn page(&self, pgno: u32, buf: &mut [u8]) -> Result<u8, RpmdbError> {
        if pgno == 0 || pgno > self.last_pgno {
            return Err(self.corrupt(format!("page number {pgno} outside 1..={}", self.last_pgno)));
        }
        let off = u64::from(pgno) * self.pagesize as u64;
        self.src
            .read_exact_at(buf, off)
            .map_err(|e| self.corrupt(format!("page {pgno}: {e}")))?;
        let stored = self.u32(buf, 8)?;
        if stored != pgno {
            return Err(self.corrupt(format!("page {pgno} says it is page {stored}")));
        }
        Ok(buf[25])
    }

    /// A value stored off-page: `tlen` bytes along the overflow chain starting at `pgno`.
    fn overflow(&self, mut pgno: u32, tlen: u32, instance: u32) -> Result<Vec<u8>, RpmdbError> {
        let tlen = tlen as usize;
        let room = self.pagesize - PAGE_HEADER;
        if tlen == 0 || tlen > MAX_BLOB || tlen > room.saturating_mul(self.last_pgno as usize) {
            return Err(self.corrupt(format!(
                "package {instance}: overflow value of {tlen} bytes"
            )));
        }
        let mut out = Vec::with_capacity(tlen);
        let mut page = vec![0u8; self.pagesize];
        let mut pages = 0u32;
        while out.len() < tlen {
            pages += 1;
            if pages > self.last_pgno {
                return Err(self.corrupt(format!(
                    "package {instance}: overflow chain longer than the file (a cycle?)"
                )));
            }
            let typ = self.page(pgno, &mut page)?;
            if typ != P_OVERFLOW {
                return Err(self.corrupt(format!(
                    "package {instance}: page {pgno} in an overflow chain has type {typ}"
                )));
            }
            let plen = usize::from(self.u16(&page, 22)?);
            if plen == 0 || plen > room || plen > tlen - out.len() {
                return Err(self.corrupt(format!(
                    "package {instance}: overflow page {pgno} holds {plen} bytes"
                )));
            }
            out.extend_from_slice(&page[PAGE_HEADER..PAGE_HEADER + plen]);
            pgno = self.u32(&page, 16)?;
        }
        Ok(out)
    }

    /// The key/value pairs of one hash page, as (instance, value) with key 0 (rpm's counter
    /// record) left out.
    fn hash_page(
        &self,
        pgno: u32,
        page: &[u8],
        f: &mut dyn FnMut(u32, Vec<u8>) -> Result<(), RpmdbError>,
    ) -> Result<(), RpmdbError> {
        let n = usize::from(self.u16(page, 20)?);
        let index_end = PAGE_HEADER + 2 * n;
        if index_end > self.pagesize {
            return Err(self.corrupt(format!("page {pgno}: {n} entries do not fit")));
        }
        let offset = |i: usize| -> Result<usize, RpmdbError> {
            let o = usize::from(self.u16(page, PAGE_HEADER + 2 * i)?);
            if o < index_end || o >= self.pagesize {
                return Err(self.corrupt(format!("page {pgno}: item {i} at offset {o}")));
            }
            Ok(o)
        };
        // Items are packed downwards from the end of the page: item i ends where item i-1
        // starts.
        let item = |i: usize| -> Result<&[u8], RpmdbError> {
            let start = offset(i)?;
            let end = if i == 0 {
                self.pagesize
            } else {
                offset(i - 1)?
            };
            if end <= start {
                return Err(self.corrupt(format!("page {pgno}: item {i} has no bytes")));
            }
            Ok(&page[start..end])
        };
        for pair in 0..n / 2 {
            let key = item(2 * pair)?;
            let instance = match key {
                [H_KEYDATA, k @ ..] if k.len() == 4 => {
                    let k: [u8; 4] = [k[0], k[1], k[2], k[3]];
                    if self.swapped {
                        u32::from_be_bytes(k)
                    } else {
                        u32::from_le_bytes(k)
                    }
                }
                _ => {
                    return Err(self.corrupt(format!(
                        "page {pgno}: key {pair} is not a 4-byte header number"
                    )));
                }
            };
            if instance == 0 {
                continue;
            }
            let value = item(2 * pair + 1)?;
            let blob = match value.first() {
                Some(&H_KEYDATA) => value[1..].to_vec(),
                Some(&H_OFFPAGE) if value.len() == 12 => {
                    let pg = self.u32(value, 4)?;
                    let tlen = self.u32(value, 8)?;
                    self.overflow(pg, tlen, instance)?
                }
                other => {
                    return Err(self.corrupt(format!(
                        "package {instance}: unsupported item type {other:?} ({} bytes) on page {pgno}",
                        value.len()
                    )));
                }
            };
            f(instance, blob)?;
        }
        Ok(())
    }
}

/// Calls `f` with every (instance, header blob) in the database, in bucket order.
pub fn walk(
    src: &dyn ReadAt,
    path: &Path,
    swapped: bool,
    f: &mut dyn FnMut(u32, Vec<u8>) -> Result<(), RpmdbError>,
) -> Result<(), RpmdbError> {
    let corrupt = |reason: String| RpmdbError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let mut meta = [0u8; 512];
    src.read_exact_at(&mut meta, 0)
        .map_err(|e| corrupt(format!("meta page: {e}")))?;
    let mut db = Db {
        src,
        path,
        swapped,
        pagesize: 512,
        last_pgno: 0,
    };
    let version = db.u32(&meta, 16)?;
    if !(8..=10).contains(&version) {
        return Err(corrupt(format!("unsupported hash version {version}")));
    }
    let pagesize = db.u32(&meta, 20)?;
    if !(512..=65536).contains(&pagesize) || !pagesize.is_power_of_two() {
        return Err(corrupt(format!("page size {pagesize}")));
    }
    if meta[24] != 0 {
        return Err(corrupt("encrypted database".into()));
    }
    if meta[25] != P_HASHMETA {
        return Err(corrupt(format!("meta page type {} (not hash)", meta[25])));
    }
    db.pagesize = pagesize as usize;
    db.last_pgno = db.u32(&meta, 32)?;
    let max_bucket = db.u32(&meta, 72)?;
    let file_pages = src.size() / u64::from(pagesize);
    if u64::from(db.last_pgno) >= file_pages {
        return Err(corrupt(format!(
            "last page {} but the file has {file_pages} pages",
            db.last_pgno
        )));
    }
    if max_bucket >= db.last_pgno {
        return Err(corrupt(format!(
            "{} buckets in {} pages",
            u64::from(max_bucket) + 1,
            db.last_pgno
        )));
    }
    let mut spares = [0u32; 32];
    for (i, s) in spares.iter_mut().enumerate() {
        *s = db.u32(&meta, 96 + 4 * i)?;
    }

    let mut page = vec![0u8; db.pagesize];
    // Each hash page belongs to exactly one bucket chain; seeing one twice means a cycle.
    let mut seen = vec![false; db.last_pgno as usize + 1];
    for bucket in 0..=max_bucket {
        let bits = (u32::BITS - bucket.leading_zeros()) as usize;
        let mut pgno = spares
            .get(bits)
            .and_then(|s| bucket.checked_add(*s))
            .ok_or_else(|| corrupt(format!("bucket {bucket} has no page")))?;
        loop {
            let slot = seen
                .get_mut(pgno as usize)
                .ok_or_else(|| corrupt(format!("bucket {bucket}: page {pgno} past the end")))?;
            if *slot {
                return Err(corrupt(format!("bucket {bucket}: page {pgno} seen twice")));
            }
            *slot = true;
            let typ = db.page(pgno, &mut page)?;
            if typ != P_HASH && typ != P_HASH_UNSORTED {
                return Err(corrupt(format!(
                    "bucket {bucket}: page {pgno} has type {typ}, not a hash page"
                )));
            }
            db.hash_page(pgno, &page, f)?;
            pgno = db.u32(&page, 16)?;
            if pgno == 0 {
                break;
            }
        }
    }
    Ok(())
}

pub fn read(
    src: &dyn ReadAt,
    path: &Path,
    swapped: bool,
    detail: Detail,
) -> Result<Vec<Package>, RpmdbError> {
    let mut out = Vec::new();
    walk(src, path, swapped, &mut |instance, blob| {
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
    use crate::rpmdb::header::tag;
    use crate::rpmdb::testutil::*;

    const ROOM: usize = PAGESIZE - PAGE_HEADER;

    fn big() -> Vec<u8> {
        let license = "L".repeat(1100);
        blob(
            &[
                s(tag::NAME, "big"),
                s(tag::VERSION, "2"),
                s(tag::RELEASE, "1"),
                s(tag::LICENSE, &license),
            ],
            &[],
        )
    }

    fn read_bytes(b: &[u8]) -> Result<Vec<Package>, RpmdbError> {
        read(&b, Path::new("Packages"), false, Detail::Files)
    }

    fn reason(r: Result<Vec<Package>, RpmdbError>) -> String {
        match r {
            Err(RpmdbError::Corrupt { reason, .. }) => reason,
            other => panic!("expected a corrupt-database error, got {other:?}"),
        }
    }

    fn set32(f: &mut [u8], at: usize, v: u32) {
        f[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }

    #[test]
    fn inline_and_overflow_values() {
        let big = big();
        assert!(big.len() > 2 * ROOM, "spans three overflow pages");
        let f = bdb(&package("small"), &big);
        let got = read_bytes(&f).unwrap();
        let names: Vec<_> = got.iter().map(|p| (p.instance, p.name.as_str())).collect();
        assert_eq!(names, [(1, "small"), (2, "big")]);
        assert_eq!(got[1].license.as_deref().map(str::len), Some(1100));
    }

    #[test]
    fn overflow_chain_damage() {
        let big = big();
        let f = bdb(&package("small"), &big);
        let last_ovl = 4 * PAGESIZE;
        // Chain ends early.
        let mut b = f.clone();
        set32(&mut b, 3 * PAGESIZE + 16, 0);
        assert!(reason(read_bytes(&b)).contains("page number 0"));
        // A page of the chain is not an overflow page.
        let mut b = f.clone();
        b[3 * PAGESIZE + 25] = 13;
        assert!(reason(read_bytes(&b)).contains("type 13"));
        // Zero bytes on a page would never finish.
        let mut b = f.clone();
        b[3 * PAGESIZE + 22..3 * PAGESIZE + 24].copy_from_slice(&[0, 0]);
        assert!(reason(read_bytes(&b)).contains("holds 0 bytes"));
        // A cycle of one-byte pages: bounded by the page count, not by the claimed length.
        let mut b = f.clone();
        b[last_ovl + 22..last_ovl + 24].copy_from_slice(&1u16.to_le_bytes());
        set32(&mut b, last_ovl + 16, 4);
        // ... and the off-page item claims a longer value than the chain holds.
        let p1 = PAGESIZE;
        let off = u16::from_le_bytes([b[p1 + 26 + 10], b[p1 + 26 + 11]]) as usize;
        assert_eq!(b[p1 + off], H_OFFPAGE);
        set32(&mut b, p1 + off + 8, (3 * ROOM) as u32);
        assert!(reason(read_bytes(&b)).contains("cycle"));
        // Claimed length beyond anything the file can hold, and zero.
        let mut b = f.clone();
        set32(&mut b, p1 + off + 8, u32::MAX);
        assert!(reason(read_bytes(&b)).contains("overflow value"));
        set32(&mut b, p1 + off + 8, 0);
        assert!(reason(read_bytes(&b)).contains("overflow value"));
        // Start page outside the file.
        let mut b = f.clone();
        set32(&mut b, p1 + off + 4, 99);
        assert!(reason(read_bytes(&b)).contains("outside"));
    }

    #[test]
    fn hash_page_damage() {
        let f = bdb(&package("small"), &big());
        let p1 = PAGESIZE;
        // A bucket chain looping on itself.
        let mut b = f.clone();
        set32(&mut b, p1 + 16, 1);
        assert!(reason(read_bytes(&b)).contains("seen twice"));
        // Page that does not say it is itself (garbage page).
        let mut b = f.clone();
        b[p1..p1 + PAGESIZE].copy_from_slice(&noise(3, PAGESIZE));
        assert!(read_bytes(&b).is_err());
        // Entry count beyond the page, item offsets into the index or past the page.
        let mut b = f.clone();
        b[p1 + 20..p1 + 22].copy_from_slice(&400u16.to_le_bytes());
        assert!(reason(read_bytes(&b)).contains("do not fit"));
        let mut b = f.clone();
        b[p1 + 26..p1 + 28].copy_from_slice(&2u16.to_le_bytes());
        assert!(reason(read_bytes(&b)).contains("item 0"));
        let mut b = f.clone();
        b[p1 + 28..p1 + 30].copy_from_slice(&600u16.to_le_bytes());
        assert!(reason(read_bytes(&b)).contains("item 1"));
        // Unsupported item type (H_DUPLICATE) for a value.
        let mut b = f.clone();
        let off = u16::from_le_bytes([b[p1 + 26 + 6], b[p1 + 26 + 7]]) as usize;
        b[p1 + off] = 2;
        assert!(reason(read_bytes(&b)).contains("unsupported item type"));
        // A key that is not a 4-byte number.
        let mut b = f.clone();
        let off = u16::from_le_bytes([b[p1 + 26 + 4], b[p1 + 26 + 5]]) as usize;
        b[p1 + off] = 3;
        assert!(reason(read_bytes(&b)).contains("key"));
    }

    #[test]
    fn meta_page_damage() {
        let f = bdb(&package("small"), &big());
        for (at, value, what) in [
            (16, 7, "version"),
            (20, 1000, "page size"),
            (20, 1 << 20, "page size"),
            (32, 1000, "last page"),
            (72, 50, "buckets"),
        ] {
            let mut b = f.clone();
            set32(&mut b, at, value);
            assert!(reason(read_bytes(&b)).contains(what), "{what}");
        }
        let mut b = f.clone();
        b[24] = 1;
        assert!(reason(read_bytes(&b)).contains("encrypted"));
        let mut b = f.clone();
        b[25] = 9;
        assert!(reason(read_bytes(&b)).contains("not hash"));
        assert!(read_bytes(&f[..100]).is_err());
    }

    #[test]
    fn a_broken_header_names_its_package() {
        let mut small = package("small");
        small[3] = 0x7f; // il no longer matches the length
        let f = bdb(&small, &big());
        match read_bytes(&f) {
            Err(RpmdbError::Package {
                instance, source, ..
            }) => {
                assert_eq!(instance, 1);
                assert!(matches!(
                    source,
                    crate::rpmdb::HeaderError::SizeMismatch { .. }
                ));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn truncations_flips_and_noise_never_panic() {
        let f = bdb(&package("small"), &big());
        for n in (0..f.len()).step_by(7) {
            assert!(read_bytes(&f[..n]).is_err(), "truncated to {n}");
        }
        for i in 0..f.len() {
            let mut b = f.clone();
            b[i] ^= 0xff;
            let _ = read_bytes(&b);
        }
        for seed in 0..64 {
            let mut b = noise(seed, 6 * PAGESIZE);
            // Keep it looking like a hash database so the page walk is exercised.
            b[..PAGESIZE].copy_from_slice(&f[..PAGESIZE]);
            let _ = read_bytes(&b);
        }
    }
}
