//! Per-layer RPM analysis of an image, one streaming pass over each layer tar.
//!
//! For every layer (oldest first) [`Analyzer::add_layer`] reads the tar once, without unpacking
//! it: it records the layer's entries (path, type, and for regular files that a package owns, a
//! content digest computed chunk by chunk in that package's algorithm), keeps only the rpmdb
//! files in a small [`Overlay`], and re-reads the database only when the layer touched it. Then
//! it applies the layer with OCI rules (whiteouts `.wh.NAME` and opaque directories
//! `.wh..wh..opq` hide what lower layers had; the layer's own entries stay), diffs the package
//! lists and reports drift: paths owned by a package the layer did not change in the rpmdb
//! that the layer added, modified or deleted.
//!
//! Memory grows with the number of paths in the image and entries in a layer, never with file
//! sizes. Tar entries with unsafe paths (`..` leaving the root) are skipped with a warning;
//! nothing from a layer is written anywhere but under a private temporary directory, by names
//! this module makes up.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use md5::Md5;
use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};

use super::compress::{self, Compression};
use super::error::RpmdbError;
use super::locate::LOCATIONS;
use super::overlay::{Blob, DB_NAMES, Node, Overlay, is_relevant};
use super::report::{Drift, DriftChange, LayerReport, PackageChanges, PackageRef, VersionChange};
use super::types::{DigestAlgo, Package};
use super::vercmp::package_evr_cmp;
use super::{Detail, locate, read_located};

/// Largest rpmdb file accepted from a layer. Fedora's and RHEL's full-system databases are
/// 100–300 MB; anything near this is broken or hostile.
pub const MAX_RPMDB_FILE: u64 = 1 << 30;

/// Database-named files kept per layer outside the database directories (see
/// [`Analyzer::wants_blob`]).
const MAX_SPECULATIVE: usize = 8;

/// rpm's FILEFLAGS bits that matter here.
pub const RPMFILE_CONFIG: u32 = 1 << 0;
pub const RPMFILE_GHOST: u32 = 1 << 6;

const S_IFMT: u16 = 0o170000;
const S_IFDIR: u16 = 0o040000;

/// Why an analysis failed. Layer numbers are 0-based, oldest first.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("layer {layer}: {source}")]
    Read {
        layer: usize,
        #[source]
        source: io::Error,
    },
    #[error("layer {layer}: rpmdb file /{path} is {size} bytes (limit {limit})")]
    RpmdbTooLarge {
        layer: usize,
        path: String,
        size: u64,
        limit: u64,
    },
    #[error("layer {layer}: reading the rpmdb: {source}")]
    Rpmdb {
        layer: usize,
        #[source]
        source: RpmdbError,
    },
    #[error("temporary directory: {0}")]
    Temp(#[source] io::Error),
}

/// One layer to analyze: identification from the image config, and its blob as stored (plain,
/// gzip or zstd tar; recognised by magic bytes).
pub struct LayerInput<'a> {
    /// `rootfs.diff_ids[i]` of the image config; when absent the report shows the sha256 of the
    /// uncompressed tar. A mismatch becomes a warning.
    pub diff_id: Option<String>,
    /// `created_by` of the matching (non-empty) history entry.
    pub created_by: Option<String>,
    pub reader: Box<dyn Read + 'a>,
}

#[derive(Debug, Clone, Copy)]
pub struct AnalyzeOptions {
    /// Package changes and drift per layer. Without it only the final package list is
    /// computed: no digests, no path tracking, and the rpmdb is read once at the end.
    pub per_layer: bool,
    /// Largest rpmdb file accepted ([`MAX_RPMDB_FILE`] by default).
    pub max_rpmdb_file: u64,
}

impl Default for AnalyzeOptions {
    fn default() -> Self {
        AnalyzeOptions {
            per_layer: false,
            max_rpmdb_file: MAX_RPMDB_FILE,
        }
    }
}

impl AnalyzeOptions {
    pub fn per_layer() -> Self {
        AnalyzeOptions {
            per_layer: true,
            ..Self::default()
        }
    }
}

/// The result: the packages of the final image and, with [`AnalyzeOptions::per_layer`], one
/// report per layer.
#[derive(Debug, Clone)]
pub struct Analysis {
    pub packages: Vec<Package>,
    pub layers: Vec<LayerReport>,
}

/// Analyzes a whole image: `layers` oldest first.
pub fn analyze<'a>(
    layers: impl IntoIterator<Item = LayerInput<'a>>,
    opts: AnalyzeOptions,
) -> Result<Analysis, LayerError> {
    let mut a = Analyzer::new(opts)?;
    for l in layers {
        a.add_layer(l)?;
    }
    a.finish()
}

/// What a tar entry is, after hard links and whiteouts are told apart.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    File,
    Dir,
    Symlink(String),
    /// A hard link to another path of the merged tree (normalised).
    Hardlink(String),
    Other,
    /// `.wh.NAME`: hides `path` of the lower layers.
    Whiteout,
    /// `.wh..wh..opq` in directory `path`: hides everything the lower layers had below it.
    Opaque,
}

#[derive(Debug)]
struct Entry {
    path: String,
    kind: Kind,
    /// Lower-case hex digests of a regular file's content, in the algorithms its owners use.
    digests: Vec<(DigestAlgo, String)>,
    blob: Option<Arc<Blob>>,
}

/// Streaming hashers for the algorithms rpm uses for FILEDIGESTS.
enum Hasher {
    Md5(Md5),
    Sha224(Sha224),
    Sha256(Sha256),
    Sha384(Sha384),
    Sha512(Sha512),
}

impl Hasher {
    fn new(algo: DigestAlgo) -> Option<Hasher> {
        Some(match algo {
            DigestAlgo::Md5 => Hasher::Md5(Md5::new()),
            DigestAlgo::Sha224 => Hasher::Sha224(Sha224::new()),
            DigestAlgo::Sha256 => Hasher::Sha256(Sha256::new()),
            DigestAlgo::Sha384 => Hasher::Sha384(Sha384::new()),
            DigestAlgo::Sha512 => Hasher::Sha512(Sha512::new()),
            DigestAlgo::Sha1 | DigestAlgo::Ripemd160 | DigestAlgo::Other(_) => return None,
        })
    }
    fn update(&mut self, b: &[u8]) {
        match self {
            Hasher::Md5(h) => h.update(b),
            Hasher::Sha224(h) => h.update(b),
            Hasher::Sha256(h) => h.update(b),
            Hasher::Sha384(h) => h.update(b),
            Hasher::Sha512(h) => h.update(b),
        }
    }
    fn hex(self) -> String {
        match self {
            Hasher::Md5(h) => hex(&h.finalize()),
            Hasher::Sha224(h) => hex(&h.finalize()),
            Hasher::Sha256(h) => hex(&h.finalize()),
            Hasher::Sha384(h) => hex(&h.finalize()),
            Hasher::Sha512(h) => hex(&h.finalize()),
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Counts and hashes (sha256) what passes through: the layer's diff_id.
struct DiffIdReader<R> {
    inner: R,
    hash: Sha256,
}

impl<R: Read> Read for DiffIdReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

/// A tar path as a relative path without `.`/`..`/empty components. `Err` when `..` would
/// leave the root. The root itself is `Ok("")`.
pub fn normalize(raw: &[u8]) -> Result<String, String> {
    let s = String::from_utf8_lossy(raw);
    let mut out: Vec<&str> = Vec::new();
    for c in s.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if out.pop().is_none() {
                    return Err(format!("path {s:?} leaves the root"));
                }
            }
            _ => out.push(c),
        }
    }
    Ok(out.join("/"))
}

/// Resolves a hard link's target: relative to the archive root, like every tar path.
fn link_target(raw: &[u8]) -> Result<String, String> {
    normalize(raw)
}

fn split_parent(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("", path),
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// True for the database directories and what is below them: never drift.
fn in_rpmdb_dir(path: &str) -> bool {
    LOCATIONS
        .iter()
        .any(|loc| path == *loc || path.strip_prefix(loc).is_some_and(|r| r.starts_with('/')))
}

/// Paths strictly below `dir` in a sorted set.
fn descendants<'s>(set: &'s BTreeSet<String>, dir: &str) -> impl Iterator<Item = &'s String> {
    let prefix = if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    };
    set.range(prefix.clone()..)
        .take_while(move |k| k.starts_with(&prefix))
}

/// Owner of a path: (package index, file index) in the package list it was built from.
type Owner = (usize, usize);

fn owner_index(packages: &[Package]) -> HashMap<String, Vec<Owner>> {
    let mut idx: HashMap<String, Vec<Owner>> = HashMap::new();
    for (pi, p) in packages.iter().enumerate() {
        for (fi, f) in p.files.iter().enumerate() {
            if let Ok(path) = normalize(f.path.as_bytes())
                && !path.is_empty()
            {
                idx.entry(path).or_default().push((pi, fi));
            }
        }
    }
    idx
}

/// Identity of one rpmdb entry: the same package, not touched by rpm.
fn same_entry(a: &Package, b: &Package) -> bool {
    a.instance == b.instance && same_build(a, b)
}

fn same_build(a: &Package, b: &Package) -> bool {
    a.name == b.name
        && a.epoch == b.epoch
        && a.version == b.version
        && a.release == b.release
        && a.arch == b.arch
        && a.sigmd5 == b.sigmd5
}

/// The package changes between two rpmdb snapshots, and which packages of `before` are still
/// there untouched (by index into `before`).
pub fn diff_packages(before: &[Package], after: &[Package]) -> (PackageChanges, Vec<bool>) {
    let mut kept = vec![false; before.len()];
    let mut used = vec![false; after.len()];
    let mut by_instance: HashMap<u32, Vec<usize>> = HashMap::new();
    for (i, p) in after.iter().enumerate() {
        by_instance.entry(p.instance).or_default().push(i);
    }
    for (bi, b) in before.iter().enumerate() {
        if let Some(cands) = by_instance.get(&b.instance)
            && let Some(&ai) = cands
                .iter()
                .find(|&&ai| !used[ai] && same_entry(b, &after[ai]))
        {
            used[ai] = true;
            kept[bi] = true;
        }
    }
    let mut names: BTreeMap<&str, (Vec<usize>, Vec<usize>)> = BTreeMap::new();
    for (bi, b) in before.iter().enumerate() {
        if !kept[bi] {
            names.entry(&b.name).or_default().0.push(bi);
        }
    }
    for (ai, a) in after.iter().enumerate() {
        if !used[ai] {
            names.entry(&a.name).or_default().1.push(ai);
        }
    }
    let mut ch = PackageChanges::default();
    for (name, (mut olds, mut news)) in names {
        let mut pairs: Vec<(usize, usize)> = Vec::new();
        // Same build first (a reinstall), then same arch, then a single old and new of
        // different arches (noarch <-> arch moves).
        let take = |olds: &mut Vec<usize>,
                    news: &mut Vec<usize>,
                    pairs: &mut Vec<(usize, usize)>,
                    pred: &dyn Fn(&Package, &Package) -> bool| {
            let mut oi = 0;
            while oi < olds.len() {
                if let Some(ni) = news
                    .iter()
                    .position(|&n| pred(&before[olds[oi]], &after[n]))
                {
                    pairs.push((olds.remove(oi), news.remove(ni)));
                } else {
                    oi += 1;
                }
            }
        };
        take(&mut olds, &mut news, &mut pairs, &same_build);
        take(&mut olds, &mut news, &mut pairs, &|a, b| a.arch == b.arch);
        if olds.len() == 1 && news.len() == 1 {
            pairs.push((olds.remove(0), news.remove(0)));
        }
        for (o, n) in pairs {
            let change = VersionChange {
                name: name.to_string(),
                from: PackageRef::from(&before[o]),
                to: PackageRef::from(&after[n]),
            };
            match package_evr_cmp(&after[n], &before[o]) {
                std::cmp::Ordering::Greater => ch.upgraded.push(change),
                std::cmp::Ordering::Less => ch.downgraded.push(change),
                std::cmp::Ordering::Equal => ch.reinstalled.push(change),
            }
        }
        ch.removed
            .extend(olds.iter().map(|&o| PackageRef::from(&before[o])));
        ch.added
            .extend(news.iter().map(|&n| PackageRef::from(&after[n])));
    }
    let by_nevra = |a: &PackageRef, b: &PackageRef| (&a.name, &a.nevra).cmp(&(&b.name, &b.nevra));
    ch.added.sort_by(by_nevra);
    ch.removed.sort_by(by_nevra);
    for l in [&mut ch.upgraded, &mut ch.downgraded, &mut ch.reinstalled] {
        l.sort_by(|a, b| by_nevra(&a.to, &b.to));
    }
    (ch, kept)
}

/// Feeds layers one at a time (oldest first), e.g. straight from a docker-archive stream.
pub struct Analyzer {
    opts: AnalyzeOptions,
    work: tempfile::TempDir,
    next_name: u64,
    overlay: Overlay,
    /// Packages after the last layer, and who owns which path among them.
    packages: Vec<Package>,
    owners: HashMap<String, Vec<Owner>>,
    /// [`Analyzer::db_dirs`] for the layer being read.
    db_dirs: Vec<String>,
    /// Database-named files kept outside database directories in the layer being read.
    speculative: usize,
    /// Every path of the merged tree (per-layer mode only).
    tree: BTreeSet<String>,
    /// The rpmdb changed since it was last read (final-list mode reads it once at the end).
    stale: bool,
    layers: Vec<LayerReport>,
    count: usize,
}

impl Analyzer {
    pub fn new(opts: AnalyzeOptions) -> Result<Self, LayerError> {
        let work = tempfile::Builder::new()
            .prefix("containerbuild-rpm-manifest-")
            .tempdir()
            .map_err(LayerError::Temp)?;
        Ok(Analyzer {
            opts,
            work,
            next_name: 0,
            overlay: Overlay::new(),
            packages: Vec::new(),
            owners: HashMap::new(),
            db_dirs: Vec::new(),
            speculative: 0,
            tree: BTreeSet::new(),
            stale: false,
            layers: Vec::new(),
            count: 0,
        })
    }

    fn fresh_path(&mut self, what: &str) -> PathBuf {
        self.next_name += 1;
        self.work.path().join(format!("{what}-{}", self.next_name))
    }

    /// The directories rpm reads the database from, as of the start of a layer: the
    /// [`LOCATIONS`] and where their symlinks lead (a layer diff records the real path, e.g.
    /// `srv/rpmdb/Packages` when `/var/lib/rpm` links to `/srv/rpmdb`).
    fn db_dirs(&self) -> Vec<String> {
        let mut dirs: Vec<String> = LOCATIONS.iter().map(|l| l.to_string()).collect();
        for loc in LOCATIONS {
            if let Some(r) = self.overlay.resolve_parent(&format!("{loc}/x")) {
                let d = split_parent(&r).0.to_string();
                if !dirs.contains(&d) {
                    dirs.push(d);
                }
            }
        }
        dirs
    }

    /// True when the content of a regular file at `path` may be an rpmdb file to keep: a
    /// database file name in a database directory, or (at most [`MAX_SPECULATIVE`] per layer)
    /// elsewhere, in case a symlink later in the same layer makes its directory one.
    fn wants_blob(&mut self, path: &str) -> bool {
        let (dir, name) = split_parent(path);
        if !DB_NAMES.contains(&name) {
            return false;
        }
        if self.db_dirs.iter().any(|d| d == dir)
            || self
                .overlay
                .resolve_parent(path)
                .is_some_and(|r| self.db_dirs.iter().any(|d| d == split_parent(&r).0))
        {
            return true;
        }
        if self.speculative < MAX_SPECULATIVE {
            self.speculative += 1;
            return true;
        }
        false
    }

    /// Reads one layer and applies it.
    pub fn add_layer(&mut self, input: LayerInput<'_>) -> Result<(), LayerError> {
        let layer = self.count;
        self.count += 1;
        let read_err = |source| LayerError::Read { layer, source };
        self.db_dirs = self.db_dirs();
        self.speculative = 0;
        let (compression, reader) = compress::decompress(input.reader).map_err(read_err)?;
        let mut counted = DiffIdReader {
            inner: reader,
            hash: Sha256::new(),
        };
        let mut warnings = Vec::new();
        let mut entries: Vec<Entry> = Vec::new();
        {
            let mut archive = tar::Archive::new(&mut counted);
            for e in archive.entries().map_err(read_err)? {
                let mut e = e.map_err(read_err)?;
                if let Some(entry) = self.read_entry(layer, &mut e, &mut warnings)? {
                    entries.push(entry);
                }
            }
        }
        // The tar's end-of-archive blocks and any padding belong to the diff_id too.
        io::copy(&mut counted, &mut io::sink()).map_err(read_err)?;
        let computed = format!("sha256:{}", hex(&counted.hash.finalize()));
        let diff_id = match input.diff_id {
            Some(d) => {
                if d != computed {
                    warnings.push(format!(
                        "content is {computed}, the config says diff_id {d}"
                    ));
                }
                d
            }
            None => computed,
        };
        self.apply(
            layer,
            diff_id,
            input.created_by,
            compression,
            entries,
            warnings,
        )
    }

    fn read_entry<R: Read>(
        &mut self,
        layer: usize,
        e: &mut tar::Entry<'_, R>,
        warnings: &mut Vec<String>,
    ) -> Result<Option<Entry>, LayerError> {
        let read_err = |source| LayerError::Read { layer, source };
        let path = match normalize(&e.path_bytes()) {
            Ok(p) => p,
            Err(why) => {
                warnings.push(format!("skipped tar entry: {why}"));
                return Ok(None);
            }
        };
        if path.is_empty() {
            return Ok(None);
        }
        let (dir, name) = split_parent(&path);
        if let Some(hidden) = name.strip_prefix(".wh.") {
            if hidden == ".wh..opq" {
                return Ok(Some(Entry {
                    path: dir.to_string(),
                    kind: Kind::Opaque,
                    digests: Vec::new(),
                    blob: None,
                }));
            }
            if hidden.starts_with(".wh.") || hidden.is_empty() {
                // aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): not content.
                return Ok(None);
            }
            return Ok(Some(Entry {
                path: join(dir, hidden),
                kind: Kind::Whiteout,
                digests: Vec::new(),
                blob: None,
            }));
        }
        let et = e.header().entry_type();
        let kind = if et.is_dir() {
            Kind::Dir
        } else if et.is_symlink() {
            let target = e
                .link_name_bytes()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            Kind::Symlink(target)
        } else if et.is_hard_link() {
            match e.link_name_bytes().map(|b| link_target(&b)) {
                Some(Ok(t)) if !t.is_empty() => Kind::Hardlink(t),
                _ => {
                    warnings.push(format!("skipped hard link /{path}: unsafe or empty target"));
                    return Ok(None);
                }
            }
        } else if et.is_file() || et == tar::EntryType::Continuous || et.is_gnu_sparse() {
            Kind::File
        } else if et.is_character_special() || et.is_block_special() || et.is_fifo() {
            Kind::Other
        } else {
            // PAX global headers and other metadata-only records.
            return Ok(None);
        };
        let mut digests = Vec::new();
        let mut blob = None;
        if kind == Kind::File {
            let keep = self.wants_blob(&path);
            let mut hashers: Vec<(DigestAlgo, Hasher)> = Vec::new();
            if self.opts.per_layer
                && let Some(owners) = self.owners.get(&path)
            {
                for &(pi, fi) in owners {
                    let p = &self.packages[pi];
                    if p.files[fi].digest.is_some()
                        && !hashers.iter().any(|(a, _)| *a == p.digest_algo)
                        && let Some(h) = Hasher::new(p.digest_algo)
                    {
                        hashers.push((p.digest_algo, h));
                    }
                }
            }
            if keep || !hashers.is_empty() {
                let size = e.size();
                let limit = self.opts.max_rpmdb_file;
                if keep && size > limit {
                    return Err(LayerError::RpmdbTooLarge {
                        layer,
                        path,
                        size,
                        limit,
                    });
                }
                let mut out = if keep {
                    let p = self.fresh_path("blob");
                    let f = fs::File::create(&p).map_err(read_err)?;
                    Some((Blob::new(p, self.next_name), io::BufWriter::new(f)))
                } else {
                    None
                };
                let mut buf = vec![0u8; 64 * 1024];
                let mut total = 0u64;
                loop {
                    let n = e.read(&mut buf).map_err(read_err)?;
                    if n == 0 {
                        break;
                    }
                    total += n as u64;
                    if keep && total > limit {
                        return Err(LayerError::RpmdbTooLarge {
                            layer,
                            path,
                            size: total,
                            limit,
                        });
                    }
                    for (_, h) in &mut hashers {
                        h.update(&buf[..n]);
                    }
                    if let Some((_, w)) = &mut out {
                        w.write_all(&buf[..n]).map_err(read_err)?;
                    }
                }
                if let Some((b, w)) = out {
                    w.into_inner().map_err(|e| read_err(e.into_error()))?;
                    blob = Some(b);
                }
                digests = hashers.into_iter().map(|(a, h)| (a, h.hex())).collect();
            }
        }
        Ok(Some(Entry {
            path,
            kind,
            digests,
            blob,
        }))
    }

    /// Applies a read layer: deletions, then additions, then the rpmdb and the report.
    fn apply(
        &mut self,
        layer: usize,
        diff_id: String,
        created_by: Option<String>,
        compression: Compression,
        entries: Vec<Entry>,
        mut warnings: Vec<String>,
    ) -> Result<(), LayerError> {
        let per_layer = self.opts.per_layer;
        let fingerprint = self.overlay.fingerprint();
        // Paths of the lower layers this layer hides.
        let mut deleted: BTreeSet<String> = BTreeSet::new();
        for e in &entries {
            match e.kind {
                Kind::Whiteout => {
                    self.overlay_remove(&e.path);
                    if per_layer {
                        let gone: Vec<String> = std::iter::once(&e.path)
                            .filter(|p| self.tree.contains(*p))
                            .cloned()
                            .chain(descendants(&self.tree, &e.path).cloned())
                            .collect();
                        for g in gone {
                            self.tree.remove(&g);
                            deleted.insert(g);
                        }
                    }
                }
                Kind::Opaque => {
                    self.overlay_clear_below(&e.path);
                    if per_layer {
                        let gone: Vec<String> = descendants(&self.tree, &e.path).cloned().collect();
                        for g in gone {
                            self.tree.remove(&g);
                            deleted.insert(g);
                        }
                    }
                }
                _ => {}
            }
        }
        // Entries with whether their path existed before this layer.
        let mut changed: Vec<(&Entry, bool)> = Vec::new();
        let mut layer_digests: HashMap<&str, &[(DigestAlgo, String)]> = HashMap::new();
        for e in &entries {
            if matches!(e.kind, Kind::Whiteout | Kind::Opaque) {
                continue;
            }
            self.overlay_add(e);
            if !e.digests.is_empty() {
                layer_digests.insert(&e.path, &e.digests);
            }
            if !per_layer {
                continue;
            }
            let existed = self.tree.contains(&e.path) || deleted.remove(&e.path);
            if e.kind != Kind::Dir {
                // A non-directory replaces a lower directory and everything below it.
                let gone: Vec<String> = descendants(&self.tree, &e.path).cloned().collect();
                for g in gone {
                    self.tree.remove(&g);
                    deleted.insert(g);
                }
            }
            self.tree.insert(e.path.clone());
            changed.push((e, existed));
        }
        // Paths deleted and then re-created by this very layer are modifications, not deletions.
        deleted.retain(|p| !self.tree.contains(p));

        // Database-named files this layer had outside the database directories (as they are
        // after this layer's symlinks) are not the database.
        let db_dirs = self.db_dirs();
        self.overlay
            .prune_files(|dir| db_dirs.iter().any(|d| d == dir));
        let rpmdb_changed = self.overlay.fingerprint() != fingerprint;
        if rpmdb_changed {
            self.stale = true;
        }
        if !per_layer {
            return Ok(());
        }

        let before = std::mem::take(&mut self.packages);
        let after = if self.stale {
            self.read_rpmdb(layer)?
        } else {
            before.clone()
        };
        let (packages, kept) = diff_packages(&before, &after);

        let mut drift = Vec::new();
        let owners_of = |path: &str| -> Vec<Owner> {
            self.owners
                .get(path)
                .map(|v| v.iter().copied().filter(|&(pi, _)| kept[pi]).collect())
                .unwrap_or_default()
        };
        for (e, existed) in &changed {
            if in_rpmdb_dir(&e.path) {
                continue;
            }
            let owners = owners_of(&e.path);
            let Some(&(pi, fi)) = owners.first() else {
                continue;
            };
            let fe = &before[pi].files[fi];
            if fe.flags & RPMFILE_GHOST != 0 {
                continue;
            }
            let owned_dir = fe.mode & S_IFMT == S_IFDIR;
            if owned_dir && e.kind == Kind::Dir {
                continue;
            }
            let algo = before[pi].digest_algo;
            let mismatch = match (&fe.digest, &e.kind) {
                (Some(want), Kind::File) => e
                    .digests
                    .iter()
                    .find(|(a, _)| *a == algo)
                    .map(|(_, got)| !got.eq_ignore_ascii_case(want)),
                (Some(want), Kind::Hardlink(t)) => layer_digests
                    .get(t.as_str())
                    .and_then(|d| d.iter().find(|(a, _)| *a == algo))
                    .map(|(_, got)| !got.eq_ignore_ascii_case(want)),
                (Some(_), _) => Some(true),
                (None, _) if owned_dir => Some(true),
                (None, _) => None,
            };
            drift.push(Drift {
                path: format!("/{}", e.path),
                package: before[pi].nevra(),
                other_owners: owners[1..]
                    .iter()
                    .map(|&(p, _)| before[p].nevra())
                    .collect(),
                change: if *existed {
                    DriftChange::Modified
                } else {
                    DriftChange::Added
                },
                digest_mismatch: mismatch,
                config: fe.flags & RPMFILE_CONFIG != 0,
            });
        }
        for path in &deleted {
            if in_rpmdb_dir(path) {
                continue;
            }
            let owners = owners_of(path);
            let Some(&(pi, fi)) = owners.first() else {
                continue;
            };
            let fe = &before[pi].files[fi];
            if fe.flags & RPMFILE_GHOST != 0 || fe.mode & S_IFMT == S_IFDIR {
                continue;
            }
            drift.push(Drift {
                path: format!("/{path}"),
                package: before[pi].nevra(),
                other_owners: owners[1..]
                    .iter()
                    .map(|&(p, _)| before[p].nevra())
                    .collect(),
                change: DriftChange::Deleted,
                digest_mismatch: None,
                config: fe.flags & RPMFILE_CONFIG != 0,
            });
        }
        drift.sort_by(|a, b| a.path.cmp(&b.path));
        drift.dedup_by(|a, b| a.path == b.path);

        if self.stale {
            self.set_packages(after);
        } else {
            self.packages = before;
        }
        warnings.dedup();
        self.layers.push(LayerReport {
            index: layer,
            diff_id,
            created_by,
            compression,
            rpmdb_changed,
            package_count: self.packages.len(),
            packages,
            drift,
            warnings,
        });
        Ok(())
    }

    fn set_packages(&mut self, packages: Vec<Package>) {
        self.owners = owner_index(&packages);
        self.packages = packages;
        self.stale = false;
    }

    fn overlay_remove(&mut self, path: &str) {
        if self.overlay.is_empty() {
            return;
        }
        if let Some(p) = self.overlay.resolve_parent(path) {
            self.overlay.remove(&p);
        }
    }

    fn overlay_clear_below(&mut self, dir: &str) {
        if self.overlay.is_empty() {
            return;
        }
        if dir.is_empty() {
            self.overlay.clear_below("");
        } else if let Some(d) = self.overlay.resolve_parent(dir) {
            self.overlay.clear_below(&d);
        }
    }

    /// Records an entry in the rpmdb overlay when it matters there: on the way to the database
    /// directories, or a kept database file (wherever its directory leads; rpm follows the
    /// same links, and files outside database directories are pruned after the layer).
    fn overlay_add(&mut self, e: &Entry) {
        if !is_relevant(&e.path) && e.blob.is_none() {
            return;
        }
        let Some(target) = self.overlay.resolve_parent(&e.path) else {
            return;
        };
        if !is_relevant(&target) && e.blob.is_none() {
            return;
        }
        let node = match &e.kind {
            Kind::Dir => {
                if matches!(self.overlay.get(&target), Some(Node::Dir)) {
                    return;
                }
                Node::Dir
            }
            Kind::File if DB_NAMES.contains(&split_parent(&target).1) => Node::File(e.blob.clone()),
            Kind::File => Node::File(None),
            Kind::Symlink(t) => Node::Symlink(t.clone()),
            Kind::Hardlink(t) => {
                let src = self.overlay.resolve_parent(t);
                match src.as_deref().and_then(|s| self.overlay.get(s)) {
                    Some(Node::File(b)) => Node::File(b.clone()),
                    _ => Node::File(None),
                }
            }
            Kind::Other => Node::Other,
            Kind::Whiteout | Kind::Opaque => return,
        };
        self.overlay.insert(&target, node);
    }

    /// Reads the database the overlay holds now; no database means no packages.
    fn read_rpmdb(&mut self, layer: usize) -> Result<Vec<Package>, LayerError> {
        let root = self.fresh_path("root");
        let result = (|| {
            fs::create_dir(&root).map_err(|source| LayerError::Read { layer, source })?;
            self.overlay
                .materialize(&root)
                .map_err(|source| LayerError::Read { layer, source })?;
            let rpmdb_err = |source| LayerError::Rpmdb { layer, source };
            // File lists only matter for drift, which only the per-layer analysis reports.
            let detail = if self.opts.per_layer {
                Detail::Files
            } else {
                Detail::Packages
            };
            match locate(&root).map_err(rpmdb_err)? {
                Some(db) => read_located(&db, detail).map_err(rpmdb_err),
                None => Ok(Vec::new()),
            }
        })();
        let _ = fs::remove_dir_all(&root);
        result.map_err(|e| strip_root(e, &root))
    }

    /// The packages after all layers, and the layer reports.
    pub fn finish(mut self) -> Result<Analysis, LayerError> {
        if self.stale {
            let last = self.count.saturating_sub(1);
            let packages = self.read_rpmdb(last)?;
            self.set_packages(packages);
        }
        Ok(Analysis {
            packages: self.packages,
            layers: self.layers,
        })
    }
}

/// Error paths name the private copy; show them as image paths instead.
fn strip_root(e: LayerError, root: &Path) -> LayerError {
    let fix = |p: &mut PathBuf| {
        if let Ok(rel) = p.strip_prefix(root) {
            *p = Path::new("/").join(rel);
        }
    };
    match e {
        LayerError::Rpmdb { layer, mut source } => {
            match &mut source {
                RpmdbError::NotFound { root: p }
                | RpmdbError::Io { path: p, .. }
                | RpmdbError::UnknownFormat { path: p }
                | RpmdbError::Sqlite { path: p, .. }
                | RpmdbError::Corrupt { path: p, .. }
                | RpmdbError::Package { path: p, .. } => fix(p),
                RpmdbError::SymlinkLoop { path, root: r } => {
                    fix(path);
                    fix(r);
                }
            }
            LayerError::Rpmdb { layer, source }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests;
