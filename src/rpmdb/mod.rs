//! The installed-package database of an unpacked image, read without the `rpm` binary.
//!
//! atomic-reactor runs the build host's `rpm -qa` against the image's database; a Debian builder
//! has no matching rpm (no NDB, BerkeleyDB only read-only), and a host rpm can also misread or
//! modify an image's files. So the three backends (sqlite, BerkeleyDB hash, NDB) and the header
//! format are parsed here, with rpm's own rules where they decide what `rpm -qa` would print.
//!
//! - [`types`]: what comes out ([`Package`], [`Component`]); no I/O.
//! - [`header`]: header blobs; [`pgp`]: signature key ids.
//! - [`sqlite`], [`bdb`], [`ndb`]: the backends; [`locate`]: finding the database in a root.
//! - [`layers`]: per-layer analysis of an image's layer tars (package changes, drift), with
//!   [`overlay`] (the rpmdb files of the merged tree), [`compress`] (gzip/zstd by magic) and
//!   [`vercmp`] (rpm's version order); [`image`]: OCI layouts, docker-archives, registry
//!   references and directories as sources; [`report`]: the `rpm-manifest` output.

pub mod bdb;
pub mod compress;
pub mod error;
pub mod header;
pub mod image;
pub mod layers;
pub mod locate;
pub mod ndb;
pub mod overlay;
pub mod pgp;
pub mod report;
pub mod sqlite;
#[cfg(test)]
mod testutil;
pub mod types;
pub mod vercmp;

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

pub use error::{HeaderError, PgpError, RpmdbError};
pub use locate::{LOCATIONS, Located, detect_format, locate, resolve_in_root};
pub use types::{Component, DbFormat, Detail, DigestAlgo, FileEntry, Package, components};

/// Positioned reads, so the page-based backends can read a large file page by page and tests can
/// hand them bytes.
pub trait ReadAt {
    fn size(&self) -> u64;
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
}

impl ReadAt for &[u8] {
    fn size(&self) -> u64 {
        <[u8]>::len(self) as u64
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let src = usize::try_from(offset)
            .ok()
            .and_then(|o| o.checked_add(buf.len()).map(|e| (o, e)))
            .and_then(|(o, e)| self.get(o..e))
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

struct FileSource {
    file: File,
    len: u64,
}

impl ReadAt for FileSource {
    fn size(&self) -> u64 {
        self.len
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(&self.file, buf, offset)
    }
}

fn open_source(path: &Path) -> Result<FileSource, RpmdbError> {
    let io_err = |source| RpmdbError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    let len = file.metadata().map_err(io_err)?.len();
    Ok(FileSource { file, len })
}

/// Reads a database [`locate`] found. Packages come sorted by instance number, which for every
/// backend is the order they were first installed in.
pub fn read_located(db: &Located, detail: Detail) -> Result<Vec<Package>, RpmdbError> {
    let mut packages = match db.format {
        DbFormat::Sqlite => sqlite::read(&db.file, db.wal.as_deref(), detail)?,
        DbFormat::BerkeleyDb { swapped } => {
            bdb::read(&open_source(&db.file)?, &db.file, swapped, detail)?
        }
        DbFormat::Ndb => ndb::read(&open_source(&db.file)?, &db.file, detail)?,
    };
    packages.sort_by_key(|p| p.instance);
    tracing::debug!(file = %db.file.display(), format = ?db.format, count = packages.len(), "read rpmdb");
    Ok(packages)
}

/// Reads the database in `dbdir` (a directory holding `rpmdb.sqlite`, `Packages.db` or
/// `Packages`). Symlinks in it are resolved as if `dbdir` were `/`, so they cannot lead out of it.
pub fn read_dir(dbdir: &Path, detail: Detail) -> Result<Vec<Package>, RpmdbError> {
    match locate::locate_in(dbdir, Path::new(""))? {
        Some(db) => read_located(&db, detail),
        None => Err(RpmdbError::NotFound {
            root: dbdir.to_path_buf(),
        }),
    }
}

/// Reads the packages of an image root (looking in [`LOCATIONS`]) or, when `path` itself holds
/// a database file, of that database directory. [`RpmdbError::NotFound`] when there is none,
/// which for a `FROM scratch` image means an empty component list.
pub fn open(path: &Path, detail: Detail) -> Result<Vec<Package>, RpmdbError> {
    if let Some(db) = locate::locate_in(path, Path::new(""))? {
        return read_located(&db, detail);
    }
    match locate(path)? {
        Some(db) => {
            tracing::info!(file = %db.file.display(), "found rpmdb");
            read_located(&db, detail)
        }
        None => Err(RpmdbError::NotFound {
            root: path.to_path_buf(),
        }),
    }
}
