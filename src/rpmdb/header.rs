//! Header blobs, the unit every backend stores: `il`, `dl`, `il` index entries, a data store.
//!
//! The checks mirror rpm's `hdrblobVerifyInfo`/`hdrblobVerifyRegion` (lib/header.c), so a blob
//! rpm would refuse is refused here too, and one rpm reads gives the same values: in particular
//! install-time ("dribble") entries after the immutable region replace region entries with the
//! same tag, as `headerImport` does — that is where SIGMD5 and the signatures of an installed
//! package live.

use super::error::HeaderError;
use super::pgp;
use super::types::{Detail, DigestAlgo, FileEntry, Package};

/// rpm's `headerMaxbytes`: no legitimate header comes close, and it bounds allocations.
pub const MAX_BLOB: usize = 256 * 1024 * 1024;
const MAX_IL: u32 = 0xffff;
const MAX_DL: u32 = 0x0fff_ffff;

pub mod tag {
    pub const HEADERIMAGE: i32 = 61;
    pub const HEADERSIGNATURES: i32 = 62;
    pub const HEADERIMMUTABLE: i32 = 63;
    pub const I18NTABLE: i32 = 100;
    pub const SIGPGP: i32 = 259;
    pub const SIGMD5: i32 = 261;
    pub const SIGGPG: i32 = 262;
    pub const DSAHEADER: i32 = 267;
    pub const RSAHEADER: i32 = 268;
    pub const NAME: i32 = 1000;
    pub const VERSION: i32 = 1001;
    pub const RELEASE: i32 = 1002;
    pub const EPOCH: i32 = 1003;
    pub const SUMMARY: i32 = 1004;
    pub const BUILDTIME: i32 = 1006;
    pub const SIZE: i32 = 1009;
    pub const VENDOR: i32 = 1011;
    pub const LICENSE: i32 = 1014;
    pub const ARCH: i32 = 1022;
    pub const OLDFILENAMES: i32 = 1027;
    pub const FILESIZES: i32 = 1028;
    pub const FILEMODES: i32 = 1030;
    pub const FILEDIGESTS: i32 = 1035;
    pub const FILEFLAGS: i32 = 1037;
    pub const SOURCERPM: i32 = 1044;
    pub const DIRINDEXES: i32 = 1116;
    pub const BASENAMES: i32 = 1117;
    pub const DIRNAMES: i32 = 1118;
    pub const LONGFILESIZES: i32 = 5008;
    pub const LONGSIZE: i32 = 5009;
    pub const FILEDIGESTALGO: i32 = 5011;
    pub const MODULARITYLABEL: i32 = 5096;
}

const T_NULL: u32 = 0;
const T_CHAR: u32 = 1;
const T_INT8: u32 = 2;
const T_INT16: u32 = 3;
const T_INT32: u32 = 4;
const T_INT64: u32 = 5;
const T_STRING: u32 = 6;
const T_BIN: u32 = 7;
const T_STRING_ARRAY: u32 = 8;
const T_I18NSTRING: u32 = 9;

#[derive(Debug, Clone, Copy)]
struct Entry {
    tag: i32,
    typ: u32,
    count: u32,
    /// Position in the index, for error messages and the region/dribble rule.
    index: usize,
    /// Where the value starts in the data store.
    start: usize,
    /// Exclusive bound for the value: the next entry's start (or the end of the data store).
    /// Fixed-size values were checked against it in [`Header::parse`]; strings are checked
    /// against it when read.
    limit: usize,
}

/// A verified header: tag lookups see the dribble-over-region view rpm's `headerGet` sees.
///
/// The index is checked completely when the header is parsed (tags, types, counts, alignment,
/// offsets in order and inside the data store, fixed-size values inside their slot), but a
/// string value is only scanned for its NULs when it is read. A package has a few dozen entries
/// and the reader asks for a dozen of them; scanning every changelog and dependency string of
/// every header just to throw it away was most of the read time. A malformed string is still an
/// error, from the read that touches it.
#[derive(Debug)]
pub struct Header<'a> {
    data: &'a [u8],
    /// In index order, region entries first.
    entries: Vec<Entry>,
    /// Index of the first install-time ("dribble") entry.
    ril: usize,
}

fn be32(b: &[u8], at: usize) -> u32 {
    // Callers index within checked bounds; the fallback keeps this total anyway.
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_be_bytes)
}

/// Size of one element of a fixed-size type; `None` for string types.
fn fixed_size(typ: u32) -> Option<usize> {
    match typ {
        T_CHAR | T_INT8 | T_BIN => Some(1),
        T_INT16 => Some(2),
        T_INT32 => Some(4),
        T_INT64 => Some(8),
        _ => None,
    }
}

/// Lossless when the bytes are UTF-8 (nearly always), U+FFFD replacements otherwise.
fn utf8(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => s.to_owned(),
        Err(_) => String::from_utf8_lossy(b).into_owned(),
    }
}

impl<'a> Header<'a> {
    pub fn parse(blob: &'a [u8]) -> Result<Self, HeaderError> {
        if blob.len() < 8 {
            return Err(HeaderError::TooShort { len: blob.len() });
        }
        let il = be32(blob, 0);
        let dl = be32(blob, 4);
        if il > MAX_IL {
            return Err(HeaderError::TooManyEntries { il });
        }
        if dl > MAX_DL {
            return Err(HeaderError::DataTooLarge { dl });
        }
        if il == 0 {
            return Err(HeaderError::Empty);
        }
        let expected = 8 + 16 * u64::from(il) + u64::from(dl);
        if blob.len() as u64 != expected {
            return Err(HeaderError::SizeMismatch {
                len: blob.len(),
                il,
                dl,
                expected,
            });
        }
        let il = il as usize;
        let ds = 8 + 16 * il;
        let data = &blob[ds..];
        let raw = |i: usize| {
            let at = 8 + 16 * i;
            (
                be32(blob, at) as i32,
                be32(blob, at + 4),
                be32(blob, at + 8) as i32,
                be32(blob, at + 12),
            )
        };

        // Region: entry 0 tagged 61/62/63 points at a trailer whose negative offset gives the
        // number of region entries. Anything after them was added at install time.
        let (tag0, type0, off0, count0) = raw(0);
        let (first, ril) = if tag0 == tag::HEADERIMMUTABLE
            || tag0 == tag::HEADERSIGNATURES
            || tag0 == tag::HEADERIMAGE
        {
            let region_err = |m: String| HeaderError::Region(m);
            if type0 != T_BIN || count0 != 16 {
                return Err(region_err(format!(
                    "region tag {tag0} has type {type0} count {count0}"
                )));
            }
            let trailer_end = i64::from(off0) + 16;
            if off0 < 0 || trailer_end > i64::from(dl) {
                return Err(region_err(format!("trailer offset {off0} outside data")));
            }
            let t = off0 as usize;
            let mut ttag = be32(data, t) as i32;
            let ttype = be32(data, t + 4);
            let toff = be32(data, t + 8) as i32;
            let tcount = be32(data, t + 12);
            if tag0 == tag::HEADERSIGNATURES && ttag == tag::HEADERIMAGE {
                ttag = tag::HEADERSIGNATURES;
            }
            if ttag != tag0 || ttype != T_BIN || tcount != 16 {
                return Err(region_err(format!(
                    "trailer {ttag}/{ttype}/{tcount} does not match region tag {tag0}"
                )));
            }
            let neg = -i64::from(toff);
            if neg <= 0 || neg % 16 != 0 || neg / 16 > il as i64 {
                return Err(region_err(format!(
                    "trailer offset {toff} for {il} entries"
                )));
            }
            (1, (neg / 16) as usize)
        } else if tag0 < tag::I18NTABLE {
            return Err(HeaderError::Region(format!(
                "entry 0 has tag {tag0}, neither a region tag nor a header tag"
            )));
        } else {
            // Legacy v3 header without a region: every entry is an ordinary one.
            (0, 0)
        };

        let mut entries: Vec<Entry> = Vec::with_capacity(il - first);
        // Smallest end of the previous value: its exact end for fixed sizes, one byte per
        // string for strings (each has at least its NUL).
        let mut prev_end = 0usize;
        for index in first..il {
            let (tag, typ, off, count) = raw(index);
            let bad = |reason: String| HeaderError::Entry { index, tag, reason };
            if tag < tag::I18NTABLE {
                return Err(bad("tag number below 100".into()));
            }
            if count == 0 || count > dl {
                return Err(bad(format!("count {count} for a {dl}-byte data store")));
            }
            if typ == T_STRING && count != 1 {
                return Err(bad(format!("STRING with count {count}")));
            }
            if off < 0 || off as u32 > dl {
                return Err(bad(format!("offset {off} outside the data store")));
            }
            let start = off as usize;
            if start < prev_end {
                return Err(bad(format!(
                    "data at {start} overlaps the previous entry's (ends at {prev_end})"
                )));
            }
            let min_len = match typ {
                T_STRING | T_STRING_ARRAY | T_I18NSTRING => count as usize,
                T_NULL => return Err(bad("NULL type".into())),
                other => match fixed_size(other) {
                    Some(size) => {
                        if !start.is_multiple_of(size) {
                            return Err(bad(format!("offset {start} not aligned to {size}")));
                        }
                        count as usize * size
                    }
                    None => return Err(bad(format!("invalid type {other}"))),
                },
            };
            let end = start
                .checked_add(min_len)
                .filter(|&e| e <= data.len())
                .ok_or_else(|| bad(format!("{min_len} bytes at {start} exceed the data store")))?;
            prev_end = end;
            entries.push(Entry {
                tag,
                typ,
                count,
                index,
                start,
                limit: data.len(),
            });
        }
        // Each value must end before the next one starts.
        for i in 1..entries.len() {
            entries[i - 1].limit = entries[i].start;
        }
        Ok(Header { data, entries, ril })
    }

    /// The entry `headerGet` would return: the last install-time entry with the tag, else the
    /// first region entry with it.
    fn find(&self, tag: i32) -> Option<&Entry> {
        self.entries
            .iter()
            .rev()
            .take_while(|e| e.index >= self.ril)
            .find(|e| e.tag == tag)
            .or_else(|| {
                self.entries
                    .iter()
                    .take_while(|e| e.index < self.ril)
                    .find(|e| e.tag == tag)
            })
    }

    pub fn has(&self, tag: i32) -> bool {
        self.find(tag).is_some()
    }

    fn typed(
        &self,
        tag: i32,
        types: &[u32],
        expected: &'static str,
    ) -> Result<Option<Entry>, HeaderError> {
        match self.find(tag) {
            None => Ok(None),
            Some(e) if types.contains(&e.typ) => Ok(Some(*e)),
            Some(e) => Err(HeaderError::WrongType {
                tag,
                found: e.typ,
                expected,
            }),
        }
    }

    /// The first `n` NUL-terminated strings of `e`, checked to end before the next value.
    fn strings_of(&self, e: &Entry, n: u32) -> Result<Vec<&'a [u8]>, HeaderError> {
        let data: &'a [u8] = self.data;
        let area = &data[e.start..e.limit];
        let mut out = Vec::with_capacity(n as usize);
        let mut pos = 0usize;
        for _ in 0..n {
            let nul = memchr::memchr(0, &area[pos..]).ok_or_else(|| HeaderError::Entry {
                index: e.index,
                tag: e.tag,
                reason: format!(
                    "string {} not NUL-terminated before the next entry's data",
                    out.len()
                ),
            })?;
            out.push(&area[pos..pos + nul]);
            pos += nul + 1;
        }
        Ok(out)
    }

    /// A STRING, or the first (C locale) text of an I18NSTRING, which is what rpm prints.
    pub fn string(&self, tag: i32) -> Result<Option<String>, HeaderError> {
        let Some(e) = self.typed(tag, &[T_STRING, T_I18NSTRING], "STRING")? else {
            return Ok(None);
        };
        Ok(self.strings_of(&e, 1)?.first().map(|s| utf8(s)))
    }

    pub fn string_array(&self, tag: i32) -> Result<Option<Vec<String>>, HeaderError> {
        let Some(e) = self.typed(tag, &[T_STRING_ARRAY], "STRING_ARRAY")? else {
            return Ok(None);
        };
        Ok(Some(
            self.strings_of(&e, e.count)?
                .into_iter()
                .map(utf8)
                .collect(),
        ))
    }

    /// The raw bytes of a fixed-size value (checked to fit its slot when parsed).
    fn fixed_bytes(&self, e: &Entry) -> &'a [u8] {
        let data: &'a [u8] = self.data;
        let size = fixed_size(e.typ).unwrap_or(1);
        &data[e.start..e.start + e.count as usize * size]
    }

    pub fn bin(&self, tag: i32) -> Result<Option<&'a [u8]>, HeaderError> {
        Ok(self
            .typed(tag, &[T_BIN], "BIN")?
            .map(|e| self.fixed_bytes(&e)))
    }

    /// Integer values widened to u64; rpm treats INT8..INT32 as unsigned when printing.
    pub fn ints(&self, tag: i32) -> Result<Option<Vec<u64>>, HeaderError> {
        let Some(e) = self.typed(
            tag,
            &[T_CHAR, T_INT8, T_INT16, T_INT32, T_INT64],
            "an integer type",
        )?
        else {
            return Ok(None);
        };
        let b = self.fixed_bytes(&e);
        let v = match e.typ {
            T_CHAR | T_INT8 => b.iter().map(|&x| u64::from(x)).collect(),
            T_INT16 => b
                .chunks_exact(2)
                .map(|c| u64::from(u16::from_be_bytes([c[0], c[1]])))
                .collect(),
            T_INT32 => b
                .chunks_exact(4)
                .map(|c| u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
            _ => b
                .chunks_exact(8)
                .map(|c| {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(c);
                    u64::from_be_bytes(a)
                })
                .collect(),
        };
        Ok(Some(v))
    }

    /// The first value of an integer tag, without collecting the rest.
    pub fn int(&self, tag: i32) -> Result<Option<u64>, HeaderError> {
        let Some(e) = self.typed(
            tag,
            &[T_CHAR, T_INT8, T_INT16, T_INT32, T_INT64],
            "an integer type",
        )?
        else {
            return Ok(None);
        };
        let b = self.fixed_bytes(&e);
        let mut a = [0u8; 8];
        let size = fixed_size(e.typ).unwrap_or(1);
        a[8 - size..].copy_from_slice(&b[..size]);
        Ok(Some(u64::from_be_bytes(a)))
    }

    /// Whether the tag's value is a BIN, which `:pgpsig` requires.
    fn is_bin(&self, tag: i32) -> bool {
        self.find(tag).is_some_and(|e| e.typ == T_BIN)
    }
}

fn hex(b: &[u8]) -> String {
    // Table lookup: `write!("{:02x}")` per byte was a twentieth of a 2000-package read.
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(DIGITS[usize::from(x >> 4)] as char);
        s.push(DIGITS[usize::from(x & 15)] as char);
    }
    s
}

/// Key id of the first present signature tag, in atomic-reactor's order. Like
/// atomic-reactor, a present but unreadable first tag does not fall through to the next one.
fn signature_key(h: &Header<'_>) -> Option<String> {
    for t in [tag::SIGPGP, tag::SIGGPG, tag::DSAHEADER, tag::RSAHEADER] {
        if !h.has(t) {
            continue;
        }
        if !h.is_bin(t) {
            tracing::warn!(tag = t, "signature tag is not a BIN value; no key id");
            return None;
        }
        let Ok(Some(packet)) = h.bin(t) else {
            return None;
        };
        return match pgp::key_id(packet) {
            Ok(id) => Some(hex(&id)),
            Err(e) => {
                tracing::warn!(tag = t, error = %e, "unreadable OpenPGP signature; no key id");
                None
            }
        };
    }
    None
}

fn u32_field(h: &Header<'_>, t: i32) -> Result<Option<u32>, HeaderError> {
    // 32-bit tags hold at most u32::MAX, so the conversion cannot fail for them; an INT64 that
    // does not fit is treated as a type error rather than truncated.
    match h.int(t)? {
        None => Ok(None),
        Some(v) => u32::try_from(v)
            .map(Some)
            .map_err(|_| HeaderError::WrongType {
                tag: t,
                found: T_INT64,
                expected: "INT32",
            }),
    }
}

fn files(h: &Header<'_>) -> Result<Vec<FileEntry>, HeaderError> {
    let paths: Vec<String> = match h.string_array(tag::BASENAMES)? {
        Some(base) => {
            let dirs = h.string_array(tag::DIRNAMES)?.unwrap_or_default();
            let idx = h.ints(tag::DIRINDEXES)?.unwrap_or_default();
            if idx.len() != base.len() {
                return Err(HeaderError::Files(format!(
                    "{} BASENAMES but {} DIRINDEXES",
                    base.len(),
                    idx.len()
                )));
            }
            base.iter()
                .zip(&idx)
                .map(|(b, &i)| {
                    let d = usize::try_from(i)
                        .ok()
                        .and_then(|i| dirs.get(i))
                        .ok_or_else(|| {
                            HeaderError::Files(format!(
                                "DIRINDEXES value {i} but only {} DIRNAMES",
                                dirs.len()
                            ))
                        })?;
                    let mut p = String::with_capacity(d.len() + b.len());
                    p.push_str(d);
                    p.push_str(b);
                    Ok(p)
                })
                .collect::<Result<_, HeaderError>>()?
        }
        // Headers written before rpm 4.0 list whole paths; rpm converts them on load.
        None => h.string_array(tag::OLDFILENAMES)?.unwrap_or_default(),
    };
    let n = paths.len();
    let per_file = |t: i32, name: &str, v: Option<Vec<u64>>| -> Result<Vec<u64>, HeaderError> {
        match v {
            None => Ok(vec![0; n]),
            Some(v) if v.len() == n => Ok(v),
            Some(v) => Err(HeaderError::Files(format!(
                "{} {name} (tag {t}) for {n} files",
                v.len()
            ))),
        }
    };
    let sizes = match h.ints(tag::LONGFILESIZES)? {
        Some(v) => per_file(tag::LONGFILESIZES, "LONGFILESIZES", Some(v))?,
        None => per_file(tag::FILESIZES, "FILESIZES", h.ints(tag::FILESIZES)?)?,
    };
    let modes = per_file(tag::FILEMODES, "FILEMODES", h.ints(tag::FILEMODES)?)?;
    let flags = per_file(tag::FILEFLAGS, "FILEFLAGS", h.ints(tag::FILEFLAGS)?)?;
    let digests = match h.string_array(tag::FILEDIGESTS)? {
        None => vec![String::new(); n],
        Some(v) if v.len() == n => v,
        Some(v) => {
            return Err(HeaderError::Files(format!(
                "{} FILEDIGESTS for {n} files",
                v.len()
            )));
        }
    };
    Ok(paths
        .into_iter()
        .zip(digests)
        .enumerate()
        .map(|(i, (path, digest))| FileEntry {
            path,
            digest: (!digest.is_empty()).then_some(digest),
            // FILEMODES is INT16 and FILEFLAGS INT32, so these never truncate real data.
            mode: modes[i] as u16,
            size: sizes[i],
            flags: flags[i] as u32,
        })
        .collect())
}

/// Reads one installed package from its header blob. `instance` only labels the result; the
/// file list is decoded only for [`Detail::Files`].
pub fn parse_package(blob: &[u8], instance: u32, detail: Detail) -> Result<Package, HeaderError> {
    let h = Header::parse(blob)?;
    let required = |t: i32, name: &'static str| -> Result<String, HeaderError> {
        h.string(t)?.ok_or(HeaderError::Missing(t, name))
    };
    let size = match h.int(tag::LONGSIZE)? {
        Some(v) => Some(v),
        None => h.int(tag::SIZE)?,
    };
    Ok(Package {
        instance,
        name: required(tag::NAME, "NAME")?,
        version: required(tag::VERSION, "VERSION")?,
        release: required(tag::RELEASE, "RELEASE")?,
        epoch: u32_field(&h, tag::EPOCH)?,
        arch: h.string(tag::ARCH)?,
        size,
        sigmd5: h.bin(tag::SIGMD5)?.map(hex),
        buildtime: h.int(tag::BUILDTIME)?,
        modularitylabel: h.string(tag::MODULARITYLABEL)?,
        signature_key: signature_key(&h),
        sourcerpm: h.string(tag::SOURCERPM)?,
        license: h.string(tag::LICENSE)?,
        vendor: h.string(tag::VENDOR)?,
        summary: h.string(tag::SUMMARY)?,
        digest_algo: DigestAlgo::from_pgp(u32_field(&h, tag::FILEDIGESTALGO)?.unwrap_or(1)),
        files: match detail {
            Detail::Files => files(&h)?,
            Detail::Packages => Vec::new(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpmdb::testutil::*;

    #[test]
    fn reads_a_minimal_package() {
        let p = parse_package(&package("foo"), 7, Detail::Files).unwrap();
        assert_eq!(p.instance, 7);
        assert_eq!(p.nevra(), "foo-1.0-1.noarch");
        assert_eq!(p.epoch, None, "absent EPOCH is not 0");
        assert_eq!(p.size, None);
        assert_eq!(p.digest_algo, DigestAlgo::Md5);
        assert!(p.files.is_empty());
    }

    #[test]
    fn epoch_zero_is_kept_apart_from_absent() {
        let b = blob(
            &[
                s(tag::NAME, "a"),
                s(tag::VERSION, "1"),
                s(tag::RELEASE, "1"),
                i32s(tag::EPOCH, &[0]),
            ],
            &[],
        );
        assert_eq!(parse_package(&b, 1, Detail::Files).unwrap().epoch, Some(0));
    }

    #[test]
    fn install_time_entries_override_region_entries() {
        let b = blob(
            &[
                s(tag::NAME, "a"),
                s(tag::VERSION, "1"),
                s(tag::RELEASE, "1"),
                bin(tag::SIGMD5, &[0x11; 16]),
                s(tag::LICENSE, "GPL"),
            ],
            &[bin(tag::SIGMD5, &[0xab; 16]), i32s(tag::SIZE, &[42])],
        );
        let p = parse_package(&b, 1, Detail::Files).unwrap();
        assert_eq!(
            p.sigmd5.as_deref(),
            Some("abababababababababababababababab")
        );
        assert_eq!(p.size, Some(42));
        assert_eq!(p.license.as_deref(), Some("GPL"));
    }

    #[test]
    fn file_list() {
        let b = blob(
            &[
                s(tag::NAME, "a"),
                s(tag::VERSION, "1"),
                s(tag::RELEASE, "1"),
                i32s(tag::FILESIZES, &[0, 6]),
                i16s(tag::FILEMODES, &[0o40755, 0o100644]),
                sa(tag::FILEDIGESTS, &["", "abcd"]),
                i32s(tag::FILEFLAGS, &[0, 1]),
                i32s(tag::DIRINDEXES, &[0, 1]),
                sa(tag::BASENAMES, &["d", "f"]),
                sa(tag::DIRNAMES, &["/", "/d/"]),
                i32s(tag::FILEDIGESTALGO, &[8]),
            ],
            &[],
        );
        let p = parse_package(&b, 1, Detail::Files).unwrap();
        assert_eq!(p.digest_algo, DigestAlgo::Sha256);
        assert_eq!(
            p.files,
            vec![
                FileEntry {
                    path: "/d".into(),
                    digest: None,
                    mode: 0o40755,
                    size: 0,
                    flags: 0
                },
                FileEntry {
                    path: "/d/f".into(),
                    digest: Some("abcd".into()),
                    mode: 0o100644,
                    size: 6,
                    flags: 1
                },
            ]
        );
    }

    #[test]
    fn inconsistent_file_lists_are_errors() {
        let base = [
            s(tag::NAME, "a"),
            s(tag::VERSION, "1"),
            s(tag::RELEASE, "1"),
        ];
        let with = |extra: Vec<Ent>| {
            let mut v = base.to_vec();
            v.extend(extra);
            parse_package(&blob(&v, &[]), 3, Detail::Files)
        };
        let e = with(vec![
            i32s(tag::DIRINDEXES, &[5]),
            sa(tag::BASENAMES, &["f"]),
            sa(tag::DIRNAMES, &["/"]),
        ]);
        assert!(matches!(e, Err(HeaderError::Files(_))), "{e:?}");
        let e = with(vec![
            i32s(tag::DIRINDEXES, &[0, 0]),
            sa(tag::BASENAMES, &["f"]),
            sa(tag::DIRNAMES, &["/"]),
        ]);
        assert!(matches!(e, Err(HeaderError::Files(_))), "{e:?}");
        let e = with(vec![
            i16s(tag::FILEMODES, &[1, 2]),
            i32s(tag::DIRINDEXES, &[0]),
            sa(tag::BASENAMES, &["f"]),
            sa(tag::DIRNAMES, &["/"]),
        ]);
        assert!(matches!(e, Err(HeaderError::Files(_))), "{e:?}");
    }

    #[test]
    fn missing_and_mistyped_tags() {
        let b = blob(&[s(tag::VERSION, "1"), s(tag::RELEASE, "1")], &[]);
        assert_eq!(
            parse_package(&b, 1, Detail::Files).unwrap_err(),
            HeaderError::Missing(tag::NAME, "NAME")
        );
        let b = blob(
            &[
                i32s(tag::NAME, &[1]),
                s(tag::VERSION, "1"),
                s(tag::RELEASE, "1"),
            ],
            &[],
        );
        assert!(matches!(
            parse_package(&b, 1, Detail::Files),
            Err(HeaderError::WrongType { tag: tag::NAME, .. })
        ));
    }

    #[test]
    fn signature_key_from_first_present_tag() {
        let mut v3 = vec![0x89, 0, 16, 3, 5, 0, 0, 0, 0, 0];
        v3.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        v3.push(1);
        let mut other = v3.clone();
        other[10..18].copy_from_slice(&[9; 8]);
        let base = vec![
            s(tag::NAME, "a"),
            s(tag::VERSION, "1"),
            s(tag::RELEASE, "1"),
        ];
        let pkg = |extra: Vec<Ent>| {
            let mut v = base.clone();
            v.extend(extra);
            parse_package(&blob(&v, &[]), 1, Detail::Files)
                .unwrap()
                .signature_key
        };
        assert_eq!(
            pkg(vec![bin(tag::SIGPGP, &v3), bin(tag::RSAHEADER, &other)]).as_deref(),
            Some("0102030405060708")
        );
        assert_eq!(
            pkg(vec![bin(tag::RSAHEADER, &other)]).as_deref(),
            Some("0909090909090909")
        );
        // An unreadable SIGPGP does not fall through to RSAHEADER (atomic-reactor would print
        // rpm's error text for it).
        assert_eq!(
            pkg(vec![
                bin(tag::SIGPGP, &[0x89, 0, 1, 9]),
                bin(tag::RSAHEADER, &other)
            ]),
            None
        );
        assert_eq!(pkg(vec![]), None);
    }

    fn set32(b: &mut [u8], at: usize, v: u32) {
        b[at..at + 4].copy_from_slice(&v.to_be_bytes());
    }

    #[test]
    fn malformed_blobs_are_errors() {
        let good = package("foo");
        let il = be32(&good, 0) as usize;
        let ds = 8 + 16 * il;
        let err = |b: &[u8]| parse_package(b, 1, Detail::Files).unwrap_err();

        assert_eq!(err(&[0; 4]), HeaderError::TooShort { len: 4 });
        let mut b = good.clone();
        set32(&mut b, 0, 0x1_0000);
        assert_eq!(err(&b), HeaderError::TooManyEntries { il: 0x1_0000 });
        let mut b = good.clone();
        set32(&mut b, 4, 0xffff_ffff);
        assert!(matches!(err(&b), HeaderError::DataTooLarge { .. }));
        let mut b = good.clone();
        set32(&mut b, 0, 0);
        assert!(matches!(err(&b), HeaderError::Empty));
        // Trailing garbage and a missing last byte.
        assert!(matches!(
            err(&[&good[..], &[0]].concat()),
            HeaderError::SizeMismatch { .. }
        ));
        assert!(matches!(
            err(&good[..good.len() - 1]),
            HeaderError::SizeMismatch { .. }
        ));

        // Region tag with the wrong type; trailer pointing outside; trailer count too big.
        let mut b = good.clone();
        set32(&mut b, 8 + 4, 4);
        assert!(matches!(err(&b), HeaderError::Region(_)));
        let mut b = good.clone();
        set32(&mut b, 8 + 8, 0x7fff_0000);
        assert!(matches!(err(&b), HeaderError::Region(_)));
        let trailer = ds + be32(&good, 8 + 8) as usize;
        let mut b = good.clone();
        set32(&mut b, trailer + 8, (-(16 * 100i32)) as u32);
        assert!(matches!(err(&b), HeaderError::Region(_)));
        let mut b = good.clone();
        set32(&mut b, trailer, 62);
        assert!(matches!(err(&b), HeaderError::Region(_)));

        // Entry 1 (NAME): huge count, offset outside, STRING with count 2, bad type, tag < 100.
        let e1 = 8 + 16;
        for (field, value) in [
            (12, 0xffff_ffff),
            (8, 0x7fff_ffff),
            (12, 2),
            (4, 12),
            (4, 0),
            (0, 99),
        ] {
            let mut b = good.clone();
            set32(&mut b, e1 + field, value);
            assert!(
                matches!(err(&b), HeaderError::Entry { index: 1, .. }),
                "field {field} = {value}: {:?}",
                err(&b)
            );
        }
        // A string without its NUL: the next entry's data then overlaps.
        let mut b = good.clone();
        let name_at = ds + be32(&good, e1 + 8) as usize;
        b[name_at + 3] = b'x';
        assert!(
            matches!(err(&b), HeaderError::Entry { .. }),
            "{:?}",
            err(&b)
        );
        // Misaligned INT32.
        let b = blob(&[s(tag::NAME, "ab"), i32s(tag::SIZE, &[1])], &[]);
        let mut b2 = b.clone();
        let size_ent = 8 + 16 * 2;
        let off = be32(&b, size_ent + 8);
        set32(&mut b2, size_ent + 8, off - 1);
        assert!(matches!(err(&b2), HeaderError::Entry { index: 2, .. }));
    }

    #[test]
    fn every_truncation_and_byte_flip_is_handled() {
        let mut v3 = vec![0x89, 0, 16, 3, 5, 0, 0, 0, 0, 0];
        v3.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8, 1]);
        let full = blob(
            &[
                s(tag::NAME, "a"),
                s(tag::VERSION, "1"),
                s(tag::RELEASE, "1"),
                i32s(tag::DIRINDEXES, &[0]),
                sa(tag::BASENAMES, &["f"]),
                sa(tag::DIRNAMES, &["/"]),
            ],
            &[bin(tag::SIGPGP, &v3), i32s(tag::EPOCH, &[2])],
        );
        assert!(parse_package(&full, 1, Detail::Files).is_ok());
        for n in 0..full.len() {
            assert!(
                parse_package(&full[..n], 1, Detail::Files).is_err(),
                "truncated to {n}"
            );
        }
        for i in 0..full.len() {
            for v in [0x00, 0x7f, 0x80, 0xff] {
                let mut b = full.clone();
                b[i] = v;
                let _ = parse_package(&b, 1, Detail::Files);
            }
        }
        for seed in 0..200 {
            let mut b = noise(seed, 8 + 16 * 4 + 64);
            b[0..4].copy_from_slice(&4u32.to_be_bytes());
            b[4..8].copy_from_slice(&64u32.to_be_bytes());
            let _ = parse_package(&b, 1, Detail::Files);
        }
    }
}
