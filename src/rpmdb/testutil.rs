//! Hand-made databases for the unit tests: small enough to reason about byte by byte, so each
//! corruption test can break exactly one thing.

use super::header::tag;

pub const BIN: u32 = 7;
pub const INT16: u32 = 3;
pub const INT32: u32 = 4;
pub const STRING: u32 = 6;
pub const STRING_ARRAY: u32 = 8;

/// One index entry: tag, type, count, data bytes.
pub type Ent = (i32, u32, u32, Vec<u8>);

pub fn s(tag: i32, v: &str) -> Ent {
    (tag, STRING, 1, [v.as_bytes(), b"\0"].concat())
}

pub fn sa(tag: i32, v: &[&str]) -> Ent {
    let data = v
        .iter()
        .flat_map(|x| [x.as_bytes(), b"\0"].concat())
        .collect();
    (tag, STRING_ARRAY, v.len() as u32, data)
}

pub fn i32s(tag: i32, v: &[u32]) -> Ent {
    (
        tag,
        INT32,
        v.len() as u32,
        v.iter().flat_map(|x| x.to_be_bytes()).collect(),
    )
}

pub fn i16s(tag: i32, v: &[u16]) -> Ent {
    (
        tag,
        INT16,
        v.len() as u32,
        v.iter().flat_map(|x| x.to_be_bytes()).collect(),
    )
}

pub fn bin(tag: i32, v: &[u8]) -> Ent {
    (tag, BIN, v.len() as u32, v.to_vec())
}

fn align(typ: u32) -> usize {
    match typ {
        3 => 2,
        4 => 4,
        5 => 8,
        _ => 1,
    }
}

/// A header blob the way rpm writes an installed one: region tag 63, the region entries, the
/// trailer, then the install-time entries with their data after the trailer.
pub fn blob(region: &[Ent], dribble: &[Ent]) -> Vec<u8> {
    let mut data = Vec::new();
    let mut index = Vec::new();
    let put = |e: &Ent, data: &mut Vec<u8>, index: &mut Vec<[u8; 16]>| {
        while !data.len().is_multiple_of(align(e.1)) {
            data.push(0);
        }
        let mut ent = [0u8; 16];
        ent[0..4].copy_from_slice(&e.0.to_be_bytes());
        ent[4..8].copy_from_slice(&e.1.to_be_bytes());
        ent[8..12].copy_from_slice(&(data.len() as u32).to_be_bytes());
        ent[12..16].copy_from_slice(&e.2.to_be_bytes());
        index.push(ent);
        data.extend_from_slice(&e.3);
    };
    for e in region {
        put(e, &mut data, &mut index);
    }
    let ril = region.len() as i32 + 1;
    let trailer_at = data.len() as u32;
    data.extend_from_slice(&tag::HEADERIMMUTABLE.to_be_bytes());
    data.extend_from_slice(&BIN.to_be_bytes());
    data.extend_from_slice(&(-(ril * 16)).to_be_bytes());
    data.extend_from_slice(&16u32.to_be_bytes());
    for e in dribble {
        put(e, &mut data, &mut index);
    }
    let mut region_ent = [0u8; 16];
    region_ent[0..4].copy_from_slice(&tag::HEADERIMMUTABLE.to_be_bytes());
    region_ent[4..8].copy_from_slice(&BIN.to_be_bytes());
    region_ent[8..12].copy_from_slice(&trailer_at.to_be_bytes());
    region_ent[12..16].copy_from_slice(&16u32.to_be_bytes());
    let il = index.len() as u32 + 1;
    let mut out = Vec::new();
    out.extend_from_slice(&il.to_be_bytes());
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(&region_ent);
    for e in index {
        out.extend_from_slice(&e);
    }
    out.extend_from_slice(&data);
    out
}

/// A minimal valid package header named `name`.
pub fn package(name: &str) -> Vec<u8> {
    blob(
        &[
            s(tag::NAME, name),
            s(tag::VERSION, "1.0"),
            s(tag::RELEASE, "1"),
            s(tag::ARCH, "noarch"),
        ],
        &[],
    )
}

pub const PAGESIZE: usize = 512;

/// A little-endian BerkeleyDB hash `Packages` with one bucket: the counter record, `inline`
/// stored on the hash page as instance 1, and `big` on an overflow chain as instance 2.
/// Pages: 0 meta, 1 bucket 0, 2.. overflow.
pub fn bdb(inline: &[u8], big: &[u8]) -> Vec<u8> {
    let room = PAGESIZE - 26;
    let ovl_pages = big.len().div_ceil(room).max(1);
    let last = 1 + ovl_pages as u32;
    let mut f = vec![0u8; PAGESIZE * (last as usize + 1)];
    let put32 = |f: &mut [u8], at: usize, v: u32| f[at..at + 4].copy_from_slice(&v.to_le_bytes());
    let put16 = |f: &mut [u8], at: usize, v: u16| f[at..at + 2].copy_from_slice(&v.to_le_bytes());
    // Meta page.
    put32(&mut f, 12, 0x0006_1561);
    put32(&mut f, 16, 9);
    put32(&mut f, 20, PAGESIZE as u32);
    f[25] = 8;
    put32(&mut f, 32, last);
    put32(&mut f, 72, 0); // max_bucket
    put32(&mut f, 76, 1);
    put32(&mut f, 96, 1); // spares[0]: bucket 0 is page 1
    // Hash page 1.
    let p = PAGESIZE;
    put32(&mut f, p + 8, 1);
    f[p + 25] = 13;
    let mut items: Vec<Vec<u8>> = Vec::new();
    let key = |n: u32| [vec![1u8], n.to_le_bytes().to_vec()].concat();
    items.push(key(0));
    items.push([vec![1u8], 7u32.to_le_bytes().to_vec()].concat());
    items.push(key(1));
    items.push([&[1u8][..], inline].concat());
    items.push(key(2));
    let mut off = vec![3u8, 0, 0, 0];
    off.extend_from_slice(&2u32.to_le_bytes());
    off.extend_from_slice(&(big.len() as u32).to_le_bytes());
    items.push(off);
    put16(&mut f, p + 20, items.len() as u16);
    let mut end = PAGESIZE;
    for (i, it) in items.iter().enumerate() {
        let start = end - it.len();
        f[p + start..p + end].copy_from_slice(it);
        put16(&mut f, p + 26 + 2 * i, start as u16);
        end = start;
    }
    // Overflow chain.
    for (i, chunk) in big.chunks(room).enumerate() {
        let pg = 2 + i;
        let o = pg * PAGESIZE;
        put32(&mut f, o + 8, pg as u32);
        let next = if i + 1 < ovl_pages { pg as u32 + 1 } else { 0 };
        put32(&mut f, o + 16, next);
        put16(&mut f, o + 22, chunk.len() as u16);
        f[o + 25] = 7;
        f[o + 26..o + 26 + chunk.len()].copy_from_slice(chunk);
    }
    f
}

/// An NDB `Packages.db` with one slot page and the given packages as (pkgidx, blob).
pub fn ndb(pkgs: &[(u32, Vec<u8>)]) -> Vec<u8> {
    let mut f = vec![0u8; 4096];
    f[0..4].copy_from_slice(b"RpmP");
    f[12..16].copy_from_slice(&1u32.to_le_bytes());
    for slot in 2..256 {
        f[slot * 16..slot * 16 + 4].copy_from_slice(b"Slot");
    }
    for (n, (idx, blob)) in pkgs.iter().enumerate() {
        let blkoff = f.len() / 16;
        let blkcnt = (16 + blob.len() + 12).div_ceil(16);
        let mut b = Vec::new();
        b.extend_from_slice(b"BlbS");
        b.extend_from_slice(&idx.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&(blob.len() as u32).to_le_bytes());
        b.extend_from_slice(blob);
        b.resize(blkcnt * 16 - 12, 0);
        let mut a = adler2::Adler32::new();
        a.write_slice(&b);
        b.extend_from_slice(&a.checksum().to_le_bytes());
        b.extend_from_slice(&(blob.len() as u32).to_le_bytes());
        b.extend_from_slice(b"BlbE");
        f.extend_from_slice(&b);
        let s = (2 + n) * 16;
        f[s + 4..s + 8].copy_from_slice(&idx.to_le_bytes());
        f[s + 8..s + 12].copy_from_slice(&(blkoff as u32).to_le_bytes());
        f[s + 12..s + 16].copy_from_slice(&(blkcnt as u32).to_le_bytes());
    }
    f
}

/// Deterministic bytes for fuzz-style tests (xorshift), so failures reproduce.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
