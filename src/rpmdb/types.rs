//! What the readers return. Plain data, no I/O, so the content-generator code can build and test
//! manifests without touching a database.

use serde::Serialize;

/// The on-disk backend, as recognised by its magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DbFormat {
    /// `rpmdb.sqlite`: Fedora ≥ 33, RHEL 9+, CBL-Mariner 2.
    Sqlite,
    /// BerkeleyDB hash `Packages`: RHEL ≤ 8, Amazon Linux 2. `swapped` = written on a host of the
    /// other byte order (s390x images read on x86_64), which changes the page fields only.
    BerkeleyDb { swapped: bool },
    /// NDB `Packages.db`: SUSE.
    Ndb,
}

/// File digest algorithm (RPMTAG_FILEDIGESTALGO, OpenPGP hash numbers). Kept per package because
/// the digests in [`FileEntry::digest`] mean nothing without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DigestAlgo {
    /// Also what an absent tag means: rpm < 4.6 only wrote MD5 digests.
    Md5,
    Sha1,
    Ripemd160,
    Sha256,
    Sha384,
    Sha512,
    Sha224,
    /// A number rpm does not define; kept rather than refused, the file list is still useful.
    Other(u32),
}

impl DigestAlgo {
    pub fn from_pgp(n: u32) -> Self {
        match n {
            1 => Self::Md5,
            2 => Self::Sha1,
            3 => Self::Ripemd160,
            8 => Self::Sha256,
            9 => Self::Sha384,
            10 => Self::Sha512,
            11 => Self::Sha224,
            other => Self::Other(other),
        }
    }
}

/// How much of each header a read decodes. The file lists are most of a header's data, and only
/// the per-layer analysis needs them; a package list alone reads several times faster without.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// Every [`Package`] field except [`Package::files`], which stays empty.
    Packages,
    /// Everything, including the file lists.
    Files,
}

/// One entry of a package's file list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileEntry {
    /// `DIRNAMES[DIRINDEXES[i]] + BASENAMES[i]`; bytes that are not UTF-8 become U+FFFD (rpm does
    /// not promise an encoding, and manifests are JSON).
    pub path: String,
    /// Lower-case hex in the package's [`Package::digest_algo`]; `None` where rpm stores an empty
    /// string (directories, symlinks, ghost files) or the package has no digests at all.
    pub digest: Option<String>,
    /// `st_mode` as packaged (type and permission bits).
    pub mode: u16,
    /// LONGFILESIZES when present (files ≥ 4 GiB), else FILESIZES.
    pub size: u64,
    /// RPMFILE_* bits (config, doc, ghost, ...).
    pub flags: u32,
}

/// One installed package, as rpm itself would report it from the same header.
///
/// Optional fields are `None` exactly when rpm's `--qf` prints `(none)`: an absent tag is not the
/// same as an empty or zero value (an absent EPOCH sorts differently from epoch 0).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Package {
    /// The header's instance number in the database (sqlite `hnum`, BerkeleyDB key, NDB pkgidx);
    /// rpm's `%{DBINSTANCE}`. Errors name packages by it.
    pub instance: u32,
    pub name: String,
    pub version: String,
    pub release: String,
    pub epoch: Option<u32>,
    /// Absent for `gpg-pubkey` pseudo-packages.
    pub arch: Option<String>,
    /// Installed size: LONGSIZE when present (≥ 4 GiB), else SIZE.
    pub size: Option<u64>,
    /// SIGMD5 as lower-case hex: what Koji compares with an RPM's `payloadhash`.
    pub sigmd5: Option<String>,
    pub buildtime: Option<u64>,
    pub modularitylabel: Option<String>,
    /// 16 lower-case hex digits of the signing key id, taken from the first present of SIGPGP,
    /// SIGGPG, DSAHEADER, RSAHEADER (atomic-reactor's order). `None` when none is present, or when
    /// the first present one is not a readable OpenPGP signature (atomic-reactor would then record
    /// rpm's error text instead of a key id).
    pub signature_key: Option<String>,
    /// Absent for source packages and `gpg-pubkey`.
    pub sourcerpm: Option<String>,
    pub license: Option<String>,
    pub vendor: Option<String>,
    pub summary: Option<String>,
    pub digest_algo: DigestAlgo,
    pub files: Vec<FileEntry>,
}

impl Package {
    /// `name-[epoch:]version-release.arch`, the way rpm's `%{NEVRA}` prints it, for messages.
    pub fn nevra(&self) -> String {
        let epoch = self.epoch.map(|e| format!("{e}:")).unwrap_or_default();
        let arch = self.arch.as_deref().unwrap_or("(none)");
        format!(
            "{}-{epoch}{}-{}.{arch}",
            self.name, self.version, self.release
        )
    }

    /// rpm's public-key pseudo-packages (`rpm --import`): not software, atomic-reactor drops them.
    pub fn is_gpg_pubkey(&self) -> bool {
        self.name == "gpg-pubkey"
    }
}

/// atomic-reactor's RPM component, the element of `components` in Koji content-generator metadata
/// (atomic_reactor/utils/rpm.py `parse_rpm_output`). Field order is atomic-reactor's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Component {
    /// Always `"rpm"`.
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub version: String,
    pub release: String,
    pub arch: Option<String>,
    pub sigmd5: Option<String>,
    pub signature: Option<String>,
    pub module: Option<String>,
    pub epoch: Option<u32>,
}

impl From<&Package> for Component {
    fn from(p: &Package) -> Self {
        Component {
            kind: "rpm".to_string(),
            name: p.name.clone(),
            version: p.version.clone(),
            release: p.release.clone(),
            arch: p.arch.clone(),
            sigmd5: p.sigmd5.clone(),
            signature: p.signature_key.clone(),
            module: p.modularitylabel.clone(),
            epoch: p.epoch,
        }
    }
}

/// The component list atomic-reactor records for an image: every package but `gpg-pubkey`, in
/// the given order.
pub fn components(packages: &[Package]) -> Vec<Component> {
    packages
        .iter()
        .filter(|p| !p.is_gpg_pubkey())
        .map(Component::from)
        .collect()
}
