//! What `rpm-manifest` reports (contract: `plugin-spec/rpm-manifest.md`, schema:
//! `plugin-spec/rpm-manifest.schema.json`): the final component list and, per layer, the RPMs
//! it added, removed, upgraded, downgraded or reinstalled and its drift (changes to RPM-owned
//! paths that rpm did not make). Plain data plus the text rendering; no I/O.

use std::fmt::Write as _;

use serde::Serialize;

use super::compress::Compression;
use super::types::{Component, Package, components};

/// Version of the report layout; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// One package, as the per-layer lists name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackageRef {
    /// `name-[epoch:]version-release.arch`, rpm's `%{NEVRA}`.
    pub nevra: String,
    pub name: String,
    pub epoch: Option<u32>,
    pub version: String,
    pub release: String,
    pub arch: Option<String>,
    /// `[epoch:]version-release`.
    pub evr: String,
}

impl From<&Package> for PackageRef {
    fn from(p: &Package) -> Self {
        let epoch = p.epoch.map(|e| format!("{e}:")).unwrap_or_default();
        PackageRef {
            nevra: p.nevra(),
            name: p.name.clone(),
            epoch: p.epoch,
            version: p.version.clone(),
            release: p.release.clone(),
            arch: p.arch.clone(),
            evr: format!("{epoch}{}-{}", p.version, p.release),
        }
    }
}

/// A package replaced by another of the same name in one layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionChange {
    pub name: String,
    pub from: PackageRef,
    pub to: PackageRef,
}

/// How a layer changed the rpmdb. Every list is sorted by name, then NEVRA.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PackageChanges {
    pub added: Vec<PackageRef>,
    pub removed: Vec<PackageRef>,
    /// The new EVR sorts after the old one (rpmvercmp).
    pub upgraded: Vec<VersionChange>,
    /// The new EVR sorts before the old one.
    pub downgraded: Vec<VersionChange>,
    /// Same EVR, but a new rpmdb entry (`rpm --reinstall`, a rebuilt package with the same
    /// NEVRA, an arch change at the same EVR, or an rpmdb rebuild that renumbered it).
    pub reinstalled: Vec<VersionChange>,
}

impl PackageChanges {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.upgraded.is_empty()
            && self.downgraded.is_empty()
            && self.reinstalled.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DriftChange {
    /// The path was absent before this layer (e.g. deleted by an earlier layer) and is back.
    Added,
    /// The layer carries a new version of a path that existed.
    Modified,
    /// The layer deleted the path (a whiteout, an opaque directory, or a file over a directory).
    Deleted,
}

/// A path owned by an RPM that the layer changed without changing that RPM in the rpmdb.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drift {
    /// Absolute path in the image.
    pub path: String,
    /// NEVRA of the owning package (the first by rpmdb instance when several own the path).
    pub package: String,
    /// NEVRAs of further owners, when the path is shared.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub other_owners: Vec<String>,
    pub change: DriftChange,
    /// `true`: the content in this layer differs from the package's FILEDIGESTS (or is no longer
    /// a regular file); `false`: same content (only metadata or the time changed); `null`:
    /// unknown (deleted, the package records no digest for it, e.g. a symlink, or an algorithm
    /// we do not compute).
    pub digest_mismatch: Option<bool>,
    /// The package marks the file `%config` (changes to it are often intended).
    pub config: bool,
}

/// One layer of the image, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerReport {
    /// 0 for the oldest layer.
    pub index: usize,
    /// The config's `rootfs.diff_ids` entry, or the sha256 of the uncompressed tar when the
    /// image gave none.
    pub diff_id: String,
    /// `created_by` of the config history entry this layer belongs to (empty-layer entries
    /// skipped), if any.
    pub created_by: Option<String>,
    /// How the layer blob was compressed.
    pub compression: Compression,
    /// The layer wrote or deleted files of the rpmdb, so it was read again.
    pub rpmdb_changed: bool,
    /// Packages installed after this layer (gpg-pubkey included).
    pub package_count: usize,
    pub packages: PackageChanges,
    pub drift: Vec<Drift>,
    /// Entries that were ignored (unsafe paths) and other oddities, e.g. a diff_id mismatch.
    pub warnings: Vec<String>,
}

/// What SOURCE was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    OciLayout,
    DockerArchive,
    Registry,
    RpmdbDir,
    Rootfs,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::OciLayout => "oci-layout",
            SourceKind::DockerArchive => "docker-archive",
            SourceKind::Registry => "registry",
            SourceKind::RpmdbDir => "rpmdb-dir",
            SourceKind::Rootfs => "rootfs",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceInfo {
    pub kind: SourceKind,
    /// SOURCE as given on the command line.
    pub reference: String,
}

/// The whole `rpm-manifest` output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub source: SourceInfo,
    /// Number of `components` (gpg-pubkey excluded).
    pub package_count: usize,
    /// atomic-reactor's component list of the final image, in rpmdb order.
    pub components: Vec<Component>,
    /// Present only with `--layers`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layers: Option<Vec<LayerReport>>,
}

impl Report {
    pub fn new(source: SourceInfo, packages: &[Package], layers: Option<Vec<LayerReport>>) -> Self {
        let components = components(packages);
        Report {
            schema_version: SCHEMA_VERSION,
            source,
            package_count: components.len(),
            components,
            layers,
        }
    }

    /// Pretty JSON with a final newline.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_else(|e| {
            // Serialising plain strings and numbers cannot fail; keep the output valid anyway.
            format!("{{\"error\": {:?}}}", e.to_string())
        });
        s.push('\n');
        s
    }

    /// The human-readable form: per layer `+` added, `-` removed, `↑` upgraded, `↓` downgraded,
    /// `~` reinstalled, `!` drift; then the final package list.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "source: {} ({})",
            clean(&self.source.reference),
            self.source.kind.as_str()
        );
        if let Some(layers) = &self.layers {
            for l in layers {
                let _ = writeln!(out);
                let _ = writeln!(
                    out,
                    "layer {} {} ({} packages{})",
                    l.index,
                    l.diff_id,
                    l.package_count,
                    if l.rpmdb_changed {
                        ", rpmdb changed"
                    } else {
                        ""
                    }
                );
                if let Some(c) = &l.created_by {
                    let _ = writeln!(out, "  created by: {}", one_line(c, 160));
                }
                let p = &l.packages;
                for a in &p.added {
                    let _ = writeln!(out, "  + {}", clean(&a.nevra));
                }
                for r in &p.removed {
                    let _ = writeln!(out, "  - {}", clean(&r.nevra));
                }
                for (sym, list) in [
                    ("↑", &p.upgraded),
                    ("↓", &p.downgraded),
                    ("~", &p.reinstalled),
                ] {
                    for c in list {
                        let _ = writeln!(
                            out,
                            "  {sym} {}.{} {} -> {}",
                            clean(&c.name),
                            clean(c.to.arch.as_deref().unwrap_or("(none)")),
                            clean(&c.from.evr),
                            clean(&c.to.evr)
                        );
                    }
                }
                for d in &l.drift {
                    let mut notes = Vec::new();
                    match d.digest_mismatch {
                        Some(true) => notes.push("digest mismatch"),
                        Some(false) => notes.push("same content"),
                        None => {}
                    }
                    if d.config {
                        notes.push("%config");
                    }
                    let notes = if notes.is_empty() {
                        String::new()
                    } else {
                        format!(" [{}]", notes.join(", "))
                    };
                    let change = match d.change {
                        DriftChange::Added => "added",
                        DriftChange::Modified => "modified",
                        DriftChange::Deleted => "deleted",
                    };
                    let _ = writeln!(
                        out,
                        "  ! {change} {} ({}){notes}",
                        clean(&d.path),
                        clean(&d.package)
                    );
                }
                for w in &l.warnings {
                    let _ = writeln!(out, "  warning: {}", clean(w));
                }
            }
            let _ = writeln!(out);
        }
        let _ = writeln!(out, "packages ({}):", self.package_count);
        for c in &self.components {
            let epoch = c.epoch.map(|e| format!("{e}:")).unwrap_or_default();
            let nevra = format!(
                "{}-{epoch}{}-{}.{}",
                c.name,
                c.version,
                c.release,
                c.arch.as_deref().unwrap_or("(none)")
            );
            let _ = writeln!(out, "  {}", clean(&nevra));
        }
        out
    }
}

/// `s` on one line, shortened to about `max` characters.
fn one_line(s: &str, max: usize) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let flat = flat.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        return flat;
    }
    let mut cut: String = flat.chars().take(max).collect();
    cut.push('…');
    cut
}

/// Control characters (a newline in a hostile file name) escaped, so one record stays one line.
fn clean(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}
