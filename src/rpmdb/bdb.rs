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
use super::types::Package;

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
    let file_pages = src.len() / u64::from(pagesize);
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

pub fn read(src: &dyn ReadAt, path: &Path, swapped: bool) -> Result<Vec<Package>, RpmdbError> {
    let mut out = Vec::new();
    walk(src, path, swapped, &mut |instance, blob| {
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
