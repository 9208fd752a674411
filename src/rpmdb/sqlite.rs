//! The sqlite backend (`rpmdb.sqlite`, table `Packages(hnum, blob)`).
//!
//! The image's files are never opened writable, because SQLite would create `-wal`/`-shm` files
//! beside them or checkpoint into them. Without a write-ahead log the database is opened with
//! `immutable=1`, which reads in place. With a non-empty `-wal` that flag would silently ignore
//! the log and return stale packages (an image whose last rpm transaction was never
//! checkpointed), so the database and its log are copied into a private directory and the copy is
//! opened normally, which replays the log. The `-shm` file is not copied: SQLite rebuilds it from
//! the log, and a stale one from another machine could only mislead it.

use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_encode};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use super::error::RpmdbError;
use super::header;
use super::types::{Detail, Package};

/// Characters kept as they are in a `file:` URI path; everything else is percent-encoded so that
/// `?`, `#` and `%` in a path cannot be read as URI syntax.
const URI_PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn sqlite_err(path: &Path) -> impl Fn(rusqlite::Error) -> RpmdbError + '_ {
    move |source| RpmdbError::Sqlite {
        path: path.to_path_buf(),
        source,
    }
}

/// A directory only this process can use, removed when dropped.
struct PrivateDir(PathBuf);

impl PrivateDir {
    fn new() -> io::Result<Self> {
        let base = std::env::temp_dir();
        let mut last = None;
        for _ in 0..16 {
            let p = base.join(format!(
                "containerbuild-rpmdb-{}-{:016x}",
                std::process::id(),
                rand::random::<u64>()
            ));
            match fs::DirBuilder::new().mode(0o700).create(&p) {
                Ok(()) => return Ok(PrivateDir(p)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no temporary directory")))
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Copies `from` to a new file `to` that we own and may write (the source may be read-only).
fn copy_private(from: &Path, to: &Path) -> Result<(), RpmdbError> {
    let mut src = fs::File::open(from).map_err(|e| RpmdbError::Io {
        path: from.to_path_buf(),
        source: e,
    })?;
    let mut dst = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)
        .map_err(|e| RpmdbError::Io {
            path: to.to_path_buf(),
            source: e,
        })?;
    io::copy(&mut src, &mut dst).map_err(|e| RpmdbError::Io {
        path: from.to_path_buf(),
        source: e,
    })?;
    Ok(())
}

/// Reads every package of the sqlite database `db`; `wal` is its `-wal` file, if there is one.
pub fn read(db: &Path, wal: Option<&Path>, detail: Detail) -> Result<Vec<Package>, RpmdbError> {
    let wal_len = match wal {
        Some(w) => fs::metadata(w)
            .map_err(|e| RpmdbError::Io {
                path: w.to_path_buf(),
                source: e,
            })?
            .len(),
        None => 0,
    };
    match wal {
        Some(w) if wal_len > 0 => {
            tracing::debug!(db = %db.display(), wal_len, "rpmdb has a write-ahead log; reading a private copy");
            let tmp = PrivateDir::new().map_err(|e| RpmdbError::Io {
                path: std::env::temp_dir(),
                source: e,
            })?;
            let copy = tmp.0.join("rpmdb.sqlite");
            copy_private(db, &copy)?;
            copy_private(w, &tmp.0.join("rpmdb.sqlite-wal"))?;
            let conn = Connection::open_with_flags(
                &copy,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(sqlite_err(db))?;
            let packages = query(&conn, db, detail);
            drop(conn);
            drop(tmp);
            packages
        }
        _ => {
            let abs = std::path::absolute(db).map_err(|e| RpmdbError::Io {
                path: db.to_path_buf(),
                source: e,
            })?;
            let uri = format!(
                "file:{}?immutable=1",
                percent_encode(abs.as_os_str().as_bytes(), URI_PATH)
            );
            let conn = Connection::open_with_flags(
                &uri,
                OpenFlags::SQLITE_OPEN_READ_ONLY
                    | OpenFlags::SQLITE_OPEN_URI
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(sqlite_err(db))?;
            // Header blobs span overflow pages; mapping the file saves a read() per page.
            conn.pragma_update(None, "mmap_size", 256i64 << 20)
                .map_err(sqlite_err(db))?;
            query(&conn, db, detail)
        }
    }
}

fn query(conn: &Connection, path: &Path, detail: Detail) -> Result<Vec<Package>, RpmdbError> {
    let mut stmt = conn
        .prepare("SELECT hnum, blob FROM Packages ORDER BY hnum")
        .map_err(sqlite_err(path))?;
    let mut rows = stmt.query([]).map_err(sqlite_err(path))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(sqlite_err(path))? {
        let hnum: i64 = row.get(0).map_err(sqlite_err(path))?;
        let instance = u32::try_from(hnum).map_err(|_| RpmdbError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("hnum {hnum} is not a header instance number"),
        })?;
        let blob = match row.get_ref(1).map_err(sqlite_err(path))? {
            ValueRef::Blob(b) => b,
            other => {
                return Err(RpmdbError::Corrupt {
                    path: path.to_path_buf(),
                    reason: format!(
                        "package {instance}: blob is {:?}, not a BLOB",
                        other.data_type()
                    ),
                });
            }
        };
        let pkg = header::parse_package(blob, instance, detail).map_err(|source| {
            RpmdbError::Package {
                path: path.to_path_buf(),
                instance,
                source,
            }
        })?;
        out.push(pkg);
    }
    Ok(out)
}
