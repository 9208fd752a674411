//! Where `rpm-manifest` reads an image from: an OCI image layout directory, a docker-archive
//! (`.tar`, or compressed as `.tar.gz`/`.tar.zst`), a registry reference (`docker://...`,
//! copied with skopeo into a private OCI layout first), an rpmdb directory or an unpacked root
//! filesystem. Image sources are read layer by layer with [`super::layers`]; nothing is unpacked.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;

use super::compress::{self, Compression};
use super::error::RpmdbError;
use super::layers::{Analysis, AnalyzeOptions, Analyzer, LayerError, LayerInput, normalize};
use super::locate::locate_in;
use super::report::{Report, SourceInfo, SourceKind};

/// Largest JSON document (index, manifest, config) read into memory.
const MAX_JSON: u64 = 16 * 1024 * 1024;
/// Symlinks followed inside a docker-archive (its layer directories link to the layer tars).
const MAX_ARCHIVE_LINKS: u32 = 16;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("skopeo copy failed: {0}")]
    Skopeo(String),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error(transparent)]
    Rpmdb(#[from] RpmdbError),
}

fn io_err(path: &Path) -> impl Fn(io::Error) -> SourceError + '_ {
    move |source| SourceError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn invalid(msg: impl Into<String>) -> SourceError {
    SourceError::Invalid(msg.into())
}

#[derive(Debug, Clone)]
pub struct SourceOptions {
    /// Verify the registry's TLS certificate (`skopeo --src-tls-verify`); `false` also allows
    /// plain HTTP.
    pub tls_verify: bool,
    /// `skopeo` program (default: `skopeo` on PATH).
    pub skopeo: Option<PathBuf>,
}

impl Default for SourceOptions {
    /// TLS verification on, `skopeo` from PATH.
    fn default() -> Self {
        SourceOptions {
            tls_verify: true,
            skopeo: None,
        }
    }
}

/// One layer of an image, before it is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerMeta {
    pub diff_id: Option<String>,
    pub created_by: Option<String>,
    /// The uncompressed layer tar's size, where the source stores the layer as such (a
    /// docker-archive member; atomic-reactor's `layer_sizes` are these); `None` for OCI layouts,
    /// whose blobs are compressed.
    pub tar_size: Option<u64>,
    /// OCI layout: the blob file; docker-archive: the member name.
    blob: String,
}

#[derive(Debug)]
enum Inner {
    Layout {
        dir: PathBuf,
        _tmp: Option<tempfile::TempDir>,
    },
    /// Indexed when opened, so the report, the layers and the config share one pass over it.
    Archive(Box<DockerArchive>),
    Dir {
        path: PathBuf,
    },
}

/// An opened SOURCE.
#[derive(Debug)]
pub struct ImageSource {
    pub kind: SourceKind,
    /// SOURCE as given.
    pub reference: String,
    inner: Inner,
}

/// Opens SOURCE: `docker://REF` (copied with skopeo), `oci:DIR`, `docker-archive:FILE`, or a
/// path whose kind is recognised: a directory with `oci-layout` is an OCI layout, one holding
/// `rpmdb.sqlite`/`Packages.db`/`Packages` is an rpmdb directory, any other directory a root
/// filesystem; a file is a docker-archive.
pub fn open_source(spec: &str, opts: &SourceOptions) -> Result<ImageSource, SourceError> {
    let source = |kind, inner| ImageSource {
        kind,
        reference: spec.to_string(),
        inner,
    };
    if let Some(rest) = spec.strip_prefix("docker://") {
        if rest.is_empty() {
            return Err(invalid("docker:// needs an image reference"));
        }
        let tmp = tempfile::Builder::new()
            .prefix("containerbuild-rpm-manifest-pull-")
            .tempdir()
            .map_err(io_err(Path::new("$TMPDIR")))?;
        let dir = tmp.path().join("layout");
        skopeo_copy(spec, &dir, opts)?;
        return Ok(source(
            SourceKind::Registry,
            Inner::Layout {
                dir,
                _tmp: Some(tmp),
            },
        ));
    }
    if let Some(dir) = spec.strip_prefix("oci:") {
        return Ok(source(
            SourceKind::OciLayout,
            Inner::Layout {
                dir: PathBuf::from(dir),
                _tmp: None,
            },
        ));
    }
    if let Some(file) = spec.strip_prefix("docker-archive:") {
        let archive = DockerArchive::open(Path::new(file))?;
        return Ok(source(
            SourceKind::DockerArchive,
            Inner::Archive(Box::new(archive)),
        ));
    }
    let path = PathBuf::from(spec);
    let meta = std::fs::metadata(&path).map_err(io_err(&path))?;
    if meta.is_file() {
        let archive = DockerArchive::open(&path)?;
        return Ok(source(
            SourceKind::DockerArchive,
            Inner::Archive(Box::new(archive)),
        ));
    }
    if !meta.is_dir() {
        return Err(invalid(format!(
            "{spec}: not a file, a directory or a docker:// reference"
        )));
    }
    if path.join("oci-layout").is_file() {
        return Ok(source(
            SourceKind::OciLayout,
            Inner::Layout {
                dir: path,
                _tmp: None,
            },
        ));
    }
    let kind = if locate_in(&path, Path::new(""))?.is_some() {
        SourceKind::RpmdbDir
    } else {
        SourceKind::Rootfs
    };
    Ok(source(kind, Inner::Dir { path }))
}

/// `skopeo copy --src-tls-verify=BOOL docker://REF oci:DIR`, as an argument vector.
fn skopeo_copy(spec: &str, dir: &Path, opts: &SourceOptions) -> Result<(), SourceError> {
    let program = opts
        .skopeo
        .clone()
        .unwrap_or_else(|| PathBuf::from("skopeo"));
    let mut dest = std::ffi::OsString::from("oci:");
    dest.push(dir.as_os_str());
    let out = Command::new(&program)
        .arg("copy")
        .arg("--quiet")
        .arg(format!("--src-tls-verify={}", opts.tls_verify))
        .arg(spec)
        .arg(dest)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| SourceError::Skopeo(format!("cannot run {}: {e}", program.display())))?;
    if !out.status.success() {
        return Err(SourceError::Skopeo(format!(
            "{} ({})",
            String::from_utf8_lossy(&out.stderr).trim(),
            out.status
        )));
    }
    Ok(())
}

impl ImageSource {
    /// True for images (layers can be listed); false for rpmdb and rootfs directories.
    pub fn has_layers(&self) -> bool {
        !matches!(self.inner, Inner::Dir { .. })
    }

    pub fn info(&self) -> SourceInfo {
        SourceInfo {
            kind: self.kind,
            reference: self.reference.clone(),
        }
    }

    /// The layers, oldest first, with their config diff_ids and history.
    pub fn layers(&self) -> Result<Vec<LayerMeta>, SourceError> {
        match &self.inner {
            Inner::Layout { dir, .. } => Ok(layout_layers(dir)?.1),
            Inner::Archive(a) => Ok(a.layers.clone()),
            Inner::Dir { .. } => Err(self.no_layers()),
        }
    }

    /// The image config blob, byte for byte (its sha256 is the image id).
    pub fn config(&self) -> Result<Vec<u8>, SourceError> {
        match &self.inner {
            Inner::Layout { dir, .. } => Ok(layout_layers(dir)?.0),
            Inner::Archive(a) => Ok(a.config.clone()),
            Inner::Dir { .. } => Err(self.no_layers()),
        }
    }

    fn no_layers(&self) -> SourceError {
        invalid(format!(
            "{} is a {} directory: it has no layers (use an OCI layout, a docker-archive or a docker:// reference)",
            self.reference,
            self.kind.as_str()
        ))
    }

    /// Runs the analysis over all layers (images only).
    pub fn analyze(&self, opts: AnalyzeOptions) -> Result<Analysis, SourceError> {
        match &self.inner {
            Inner::Layout { dir, .. } => {
                let (_, layers) = layout_layers(dir)?;
                let mut a = Analyzer::new(opts)?;
                for l in layers {
                    let path = PathBuf::from(&l.blob);
                    let f = File::open(&path).map_err(io_err(&path))?;
                    a.add_layer(LayerInput {
                        diff_id: l.diff_id,
                        created_by: l.created_by,
                        reader: Box::new(f),
                    })?;
                }
                Ok(a.finish()?)
            }
            Inner::Archive(a) => a.analyze(opts),
            Inner::Dir { .. } => Err(self.no_layers()),
        }
    }

    /// The `rpm-manifest` report: components, and per-layer details when `per_layer`.
    pub fn report(&self, per_layer: bool) -> Result<Report, SourceError> {
        if let Inner::Dir { path } = &self.inner {
            if per_layer {
                return Err(self.no_layers());
            }
            let packages = super::open(path, super::Detail::Packages)?;
            return Ok(Report::new(self.info(), &packages, None));
        }
        let a = self.analyze(AnalyzeOptions {
            per_layer,
            ..AnalyzeOptions::default()
        })?;
        Ok(Report::new(
            self.info(),
            &a.packages,
            per_layer.then_some(a.layers),
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Image configs and OCI layouts.

#[derive(Deserialize, Default)]
struct Config {
    #[serde(default)]
    rootfs: Option<RootFs>,
    #[serde(default)]
    history: Option<Vec<History>>,
}

#[derive(Deserialize, Default)]
struct RootFs {
    #[serde(default)]
    diff_ids: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct History {
    #[serde(default)]
    created_by: Option<String>,
    #[serde(default)]
    empty_layer: Option<bool>,
}

/// Pairs `n` layers with the config's diff_ids and its non-empty history entries, in order.
/// `blobs`: each layer's blob and, where known, its uncompressed tar size.
fn pair_config(
    config: &[u8],
    blobs: Vec<(String, Option<u64>)>,
) -> Result<Vec<LayerMeta>, SourceError> {
    let c: Config = serde_json::from_slice(config)
        .map_err(|e| invalid(format!("image config is not valid JSON: {e}")))?;
    let diff_ids = c.rootfs.and_then(|r| r.diff_ids).unwrap_or_default();
    if !diff_ids.is_empty() && diff_ids.len() != blobs.len() {
        return Err(invalid(format!(
            "the image has {} layers but its config lists {} diff_ids",
            blobs.len(),
            diff_ids.len()
        )));
    }
    let created: Vec<Option<String>> = c
        .history
        .unwrap_or_default()
        .into_iter()
        .filter(|h| h.empty_layer != Some(true))
        .map(|h| h.created_by)
        .collect();
    Ok(blobs
        .into_iter()
        .enumerate()
        .map(|(i, (blob, tar_size))| LayerMeta {
            diff_id: diff_ids.get(i).cloned(),
            created_by: created.get(i).cloned().flatten(),
            tar_size,
            blob,
        })
        .collect())
}

fn read_json_file(path: &Path) -> Result<Vec<u8>, SourceError> {
    let f = File::open(path).map_err(io_err(path))?;
    let mut buf = Vec::new();
    f.take(MAX_JSON + 1)
        .read_to_end(&mut buf)
        .map_err(io_err(path))?;
    if buf.len() as u64 > MAX_JSON {
        return Err(invalid(format!(
            "{}: larger than {MAX_JSON} bytes",
            path.display()
        )));
    }
    Ok(buf)
}

#[derive(Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    digest: String,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Deserialize)]
struct Platform {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
}

#[derive(Deserialize)]
struct IndexOrManifest {
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
}

/// `blobs/ALG/HEX` for a digest, refusing anything that is not `alg:hex`.
fn blob_path(dir: &Path, digest: &str) -> Result<PathBuf, SourceError> {
    let bad = || invalid(format!("invalid digest {digest:?}"));
    let (alg, hex) = digest.split_once(':').ok_or_else(bad)?;
    let alg_ok = !alg.is_empty()
        && alg
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let hex_ok = hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit());
    if !alg_ok || !hex_ok {
        return Err(bad());
    }
    Ok(dir.join("blobs").join(alg).join(hex))
}

/// Docker/OCI platform name of this machine's architecture.
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        "x86" => "386",
        other => other,
    }
}

/// The config blob and the layers of the layout's image.
fn layout_layers(dir: &Path) -> Result<(Vec<u8>, Vec<LayerMeta>), SourceError> {
    let mut doc: IndexOrManifest =
        serde_json::from_slice(&read_json_file(&dir.join("index.json"))?)
            .map_err(|e| invalid(format!("{}/index.json: {e}", dir.display())))?;
    // Descend through (nested) indexes to one image manifest.
    for _ in 0..4 {
        let Some(manifests) = doc.manifests.take() else {
            break;
        };
        let images: Vec<&Descriptor> = manifests
            .iter()
            .filter(|d| {
                d.platform
                    .as_ref()
                    .is_none_or(|p| p.os != "unknown" && p.architecture != "unknown")
            })
            .collect();
        let chosen = match images.as_slice() {
            [] => return Err(invalid(format!("{}: no image manifest", dir.display()))),
            [one] => *one,
            many => {
                let arch = host_arch();
                let matching: Vec<&&Descriptor> = many
                    .iter()
                    .filter(|d| d.platform.as_ref().is_some_and(|p| p.architecture == arch))
                    .collect();
                match matching.as_slice() {
                    [one] => **one,
                    _ => {
                        return Err(invalid(format!(
                            "{}: {} manifests and not exactly one for {arch}; copy a single image",
                            dir.display(),
                            many.len()
                        )));
                    }
                }
            }
        };
        tracing::debug!(digest = %chosen.digest, media_type = ?chosen.media_type, "manifest");
        let path = blob_path(dir, &chosen.digest)?;
        doc = serde_json::from_slice(&read_json_file(&path)?)
            .map_err(|e| invalid(format!("{}: {e}", path.display())))?;
    }
    let (Some(config), Some(layers)) = (doc.config, doc.layers) else {
        return Err(invalid(format!(
            "{}: the manifest has no config or layers",
            dir.display()
        )));
    };
    let config = read_json_file(&blob_path(dir, &config.digest)?)?;
    let blobs = layers
        .iter()
        .map(|l| blob_path(dir, &l.digest).map(|p| (p.to_string_lossy().into_owned(), None)))
        .collect::<Result<Vec<_>, _>>()?;
    let layers = pair_config(&config, blobs)?;
    Ok((config, layers))
}

// ---------------------------------------------------------------------------------------------
// docker-archive

#[derive(Deserialize)]
struct ArchiveManifest {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

#[derive(Debug, Clone)]
enum Member {
    /// Data offset in the (uncompressed) archive and size.
    File {
        offset: u64,
        size: u64,
    },
    Symlink(String),
}

/// A docker-archive (`docker save`, `buildah push docker-archive:`), plain or compressed.
#[derive(Debug)]
struct DockerArchive {
    path: PathBuf,
    compression: Compression,
    /// Member names in archive order, with what they are.
    members: Vec<(String, Member)>,
    layers: Vec<LayerMeta>,
    config: Vec<u8>,
}

fn open_stream(path: &Path) -> Result<Box<dyn Read>, SourceError> {
    let f = File::open(path).map_err(io_err(path))?;
    let (_, r) = compress::decompress(Box::new(f)).map_err(io_err(path))?;
    Ok(r)
}

fn compression_of(path: &Path) -> Result<Compression, SourceError> {
    let mut head = [0u8; 8];
    let mut f = File::open(path).map_err(io_err(path))?;
    let n = f.read(&mut head).map_err(io_err(path))?;
    compress::detect(&head[..n]).map_err(io_err(path))
}

impl DockerArchive {
    /// Lists the members (one pass; seeks over data when the archive is not compressed) and
    /// reads manifest.json and the image config.
    fn open(path: &Path) -> Result<DockerArchive, SourceError> {
        let compression = compression_of(path)?;
        let mut members = Vec::new();
        let mut json: HashMap<String, Vec<u8>> = HashMap::new();
        if compression == Compression::None {
            let f = File::open(path).map_err(io_err(path))?;
            let mut ar = tar::Archive::new(BufReader::new(f));
            for e in ar.entries_with_seek().map_err(io_err(path))? {
                let e = e.map_err(io_err(path))?;
                index_member(e, &mut members, &mut json).map_err(io_err(path))?;
            }
        } else {
            let mut ar = tar::Archive::new(open_stream(path)?);
            for e in ar.entries().map_err(io_err(path))? {
                let e = e.map_err(io_err(path))?;
                index_member(e, &mut members, &mut json).map_err(io_err(path))?;
            }
        }
        let manifest = json.get("manifest.json").ok_or_else(|| {
            invalid(format!(
                "{}: no manifest.json (not a docker-archive)",
                path.display()
            ))
        })?;
        let manifests: Vec<ArchiveManifest> = serde_json::from_slice(manifest)
            .map_err(|e| invalid(format!("{}: manifest.json: {e}", path.display())))?;
        let m = match manifests.as_slice() {
            [] => {
                return Err(invalid(format!(
                    "{}: manifest.json lists no image",
                    path.display()
                )));
            }
            [one] => one,
            [first, ..] => {
                tracing::warn!(
                    archive = %path.display(),
                    images = manifests.len(),
                    "docker-archive holds several images; using the first"
                );
                first
            }
        };
        let by_name: HashMap<&str, &Member> =
            members.iter().map(|(n, m)| (n.as_str(), m)).collect();
        let resolve = |name: &str| -> Result<String, SourceError> {
            resolve_member(&by_name, name)
                .ok_or_else(|| invalid(format!("{}: no member {name:?}", path.display())))
        };
        let config_name = resolve(&m.config)?;
        let config = json.get(&config_name).ok_or_else(|| {
            invalid(format!(
                "{}: config {config_name:?} missing or larger than {MAX_JSON} bytes",
                path.display()
            ))
        })?;
        let blobs = m
            .layers
            .iter()
            .map(|l| {
                let name = resolve(l)?;
                let size = match by_name.get(name.as_str()) {
                    Some(Member::File { size, .. }) => Some(*size),
                    _ => None,
                };
                Ok((name, size))
            })
            .collect::<Result<Vec<_>, SourceError>>()?;
        let layers = pair_config(config, blobs)?;
        let config = config.clone();
        drop(by_name);
        Ok(DockerArchive {
            path: path.to_path_buf(),
            compression,
            members,
            layers,
            config,
        })
    }

    fn analyze(&self, opts: AnalyzeOptions) -> Result<Analysis, SourceError> {
        let mut a = Analyzer::new(opts)?;
        if self.compression == Compression::None {
            let offsets: HashMap<&str, (u64, u64)> = self
                .members
                .iter()
                .filter_map(|(n, m)| match m {
                    Member::File { offset, size } => Some((n.as_str(), (*offset, *size))),
                    Member::Symlink(_) => None,
                })
                .collect();
            for l in &self.layers {
                let &(offset, size) = offsets
                    .get(l.blob.as_str())
                    .ok_or_else(|| invalid(format!("no layer member {:?}", l.blob)))?;
                let mut f = File::open(&self.path).map_err(io_err(&self.path))?;
                f.seek(SeekFrom::Start(offset))
                    .map_err(io_err(&self.path))?;
                a.add_layer(LayerInput {
                    diff_id: l.diff_id.clone(),
                    created_by: l.created_by.clone(),
                    reader: Box::new(BufReader::new(f).take(size)),
                })?;
            }
            return Ok(a.finish()?);
        }
        // Compressed: stream the archive again and take the layers as they come, which works
        // when the archive stores them in image order (buildah, skopeo and docker do).
        let order: HashMap<&str, usize> = self
            .members
            .iter()
            .enumerate()
            .map(|(i, (n, _))| (n.as_str(), i))
            .collect();
        let positions: Vec<usize> = self
            .layers
            .iter()
            .map(|l| order.get(l.blob.as_str()).copied().unwrap_or(usize::MAX))
            .collect();
        if !positions.windows(2).all(|w| w[0] < w[1]) {
            // Layers stored out of order or shared: decompress to a private file and seek.
            tracing::info!(archive = %self.path.display(), "layers not in image order; decompressing to a temporary file");
            let mut tmp = tempfile::NamedTempFile::new().map_err(io_err(Path::new("$TMPDIR")))?;
            io::copy(&mut open_stream(&self.path)?, tmp.as_file_mut())
                .map_err(io_err(&self.path))?;
            return DockerArchive::open(tmp.path())?.analyze(opts);
        }
        let mut next = 0;
        let mut ar = tar::Archive::new(open_stream(&self.path)?);
        for e in ar.entries().map_err(io_err(&self.path))? {
            let Some(l) = self.layers.get(next) else {
                break;
            };
            let e = e.map_err(io_err(&self.path))?;
            let name = normalize(&e.path_bytes()).unwrap_or_default();
            if name != l.blob {
                continue;
            }
            next += 1;
            a.add_layer(LayerInput {
                diff_id: l.diff_id.clone(),
                created_by: l.created_by.clone(),
                reader: Box::new(e),
            })?;
        }
        if next < self.layers.len() {
            return Err(invalid(format!(
                "{}: layer {:?} not found on the second pass",
                self.path.display(),
                self.layers[next].blob
            )));
        }
        Ok(a.finish()?)
    }
}

fn index_member<R: Read>(
    mut e: tar::Entry<'_, R>,
    members: &mut Vec<(String, Member)>,
    json: &mut HashMap<String, Vec<u8>>,
) -> io::Result<()> {
    let Ok(name) = normalize(&e.path_bytes()) else {
        return Ok(());
    };
    let et = e.header().entry_type();
    if et.is_symlink() || et.is_hard_link() {
        let target = e
            .link_name_bytes()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        // Hard link targets are archive paths; symlink targets are relative to the link.
        let target = if et.is_hard_link() {
            format!("/{target}")
        } else {
            target
        };
        members.push((name, Member::Symlink(target)));
        return Ok(());
    }
    if !et.is_file() {
        return Ok(());
    }
    let size = e.size();
    if name.ends_with(".json") && size <= MAX_JSON {
        let mut buf = Vec::with_capacity(size as usize);
        (&mut e).take(MAX_JSON).read_to_end(&mut buf)?;
        json.insert(name.clone(), buf);
    }
    members.push((
        name,
        Member::File {
            offset: e.raw_file_position(),
            size,
        },
    ));
    Ok(())
}

/// Follows symlink members (`<id>/layer.tar -> ../<digest>.tar`) inside the archive.
fn resolve_member(by_name: &HashMap<&str, &Member>, name: &str) -> Option<String> {
    let mut cur = normalize(name.as_bytes()).ok()?;
    for _ in 0..MAX_ARCHIVE_LINKS {
        match by_name.get(cur.as_str())? {
            Member::File { .. } => return Some(cur),
            Member::Symlink(target) => {
                let joined = if let Some(abs) = target.strip_prefix('/') {
                    abs.to_string()
                } else {
                    let dir = cur.rsplit_once('/').map_or("", |(d, _)| d);
                    format!("{dir}/{target}")
                };
                // `..` above the archive root is clamped, as for any path in an archive.
                let mut parts: Vec<&str> = Vec::new();
                for c in joined.split('/') {
                    match c {
                        "" | "." => {}
                        ".." => {
                            parts.pop();
                        }
                        _ => parts.push(c),
                    }
                }
                cur = parts.join("/");
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_make_safe_paths() {
        let d = Path::new("/l");
        let hex = "a".repeat(64);
        assert_eq!(
            blob_path(d, &format!("sha256:{hex}")).unwrap(),
            Path::new("/l/blobs/sha256").join(&hex)
        );
        for bad in [
            "sha256:../../etc/passwd",
            "sha256",
            "../x:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "sha256:abc",
            "SHA256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ] {
            assert!(blob_path(d, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn history_pairs_with_non_empty_layers() {
        let cfg = br#"{"rootfs":{"type":"layers","diff_ids":["sha256:a","sha256:b"]},
            "history":[{"created_by":"base"},{"created_by":"LABEL x","empty_layer":true},
                       {"created_by":"RUN y"}]}"#;
        let l = pair_config(cfg, vec![("1".into(), None), ("2".into(), Some(5))]).unwrap();
        assert_eq!(l[0].created_by.as_deref(), Some("base"));
        assert_eq!(l[1].created_by.as_deref(), Some("RUN y"));
        assert_eq!(l[1].diff_id.as_deref(), Some("sha256:b"));
        assert_eq!(l[1].tar_size, Some(5));
        assert!(pair_config(cfg, vec![("1".into(), None)]).is_err());
    }

    #[test]
    fn archive_symlinks_resolve_inside() {
        let f = Member::File { offset: 0, size: 1 };
        let l1 = Member::Symlink("../abc.tar".into());
        let l2 = Member::Symlink("../../../../abc.tar".into());
        let lp = Member::Symlink("loop".into());
        let by_name: HashMap<&str, &Member> = [
            ("abc.tar", &f),
            ("id/layer.tar", &l1),
            ("id2/layer.tar", &l2),
            ("loop", &lp),
        ]
        .into_iter()
        .collect();
        assert_eq!(resolve_member(&by_name, "id/layer.tar").unwrap(), "abc.tar");
        assert_eq!(
            resolve_member(&by_name, "id2/layer.tar").unwrap(),
            "abc.tar"
        );
        assert_eq!(resolve_member(&by_name, "loop"), None);
        assert_eq!(resolve_member(&by_name, "missing"), None);
    }
}
