//! Finding the database inside an unpacked image root.
//!
//! Paths are resolved the way the image's own rpm would see them after a chroot: a symlink's
//! absolute target starts again at the root and `..` stops at the root. Following them on the host
//! instead would let an image point `/var/lib/rpm` at the builder's own files.

use std::ffi::OsString;
use std::fs;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use super::error::RpmdbError;
use super::types::DbFormat;

/// Where atomic-reactor looks, in its order (rpmqa.py): `/var/lib/rpm` first, then the rpm ≥ 4.17
/// location that Fedora ≥ 36 and RHEL 10 use.
pub const LOCATIONS: [&str; 2] = ["var/lib/rpm", "usr/lib/sysimage/rpm"];

/// The package files of the three backends, newest format first: after a backend conversion the
/// old file may linger, never the reverse. Index files (`Name`, `Index.db`, `__db.*`) are ignored.
pub const DB_FILES: [&str; 3] = ["rpmdb.sqlite", "Packages.db", "Packages"];

/// Symlinks followed while resolving one path; Linux's own limit.
const MAX_SYMLINKS: u32 = 40;

/// A database found on disk. All paths are host paths with every symlink already resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub file: PathBuf,
    pub format: DbFormat,
    /// The sqlite write-ahead log beside `file`, when one exists (even empty).
    pub wal: Option<PathBuf>,
}

enum Part {
    Parent,
    Name(OsString),
}

fn parts(p: &Path) -> impl DoubleEndedIterator<Item = Part> + '_ {
    p.components().filter_map(|c| match c {
        Component::Normal(n) => Some(Part::Name(n.to_os_string())),
        Component::ParentDir => Some(Part::Parent),
        Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
    })
}

fn io_err(path: &Path, source: io::Error) -> RpmdbError {
    RpmdbError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Resolves `rel` inside `root` as if `root` were `/`. `None` when some component does not
/// exist (or a non-directory is used as one).
pub fn resolve_in_root(root: &Path, rel: &Path) -> Result<Option<PathBuf>, RpmdbError> {
    let mut pending: Vec<Part> = parts(rel).rev().collect();
    let mut cur = root.to_path_buf();
    let mut depth = 0usize;
    let mut hops = 0;
    while let Some(part) = pending.pop() {
        let name = match part {
            Part::Parent => {
                if depth > 0 {
                    cur.pop();
                    depth -= 1;
                }
                continue;
            }
            Part::Name(n) => n,
        };
        let candidate = cur.join(&name);
        let meta = match fs::symlink_metadata(&candidate) {
            Ok(m) => m,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(io_err(&candidate, e)),
        };
        if meta.file_type().is_symlink() {
            hops += 1;
            if hops > MAX_SYMLINKS {
                return Err(RpmdbError::SymlinkLoop {
                    path: rel.to_path_buf(),
                    root: root.to_path_buf(),
                });
            }
            let target = fs::read_link(&candidate).map_err(|e| io_err(&candidate, e))?;
            if target.has_root() {
                cur = root.to_path_buf();
                depth = 0;
            }
            pending.extend(parts(&target).rev());
            continue;
        }
        if !pending.is_empty() && !meta.is_dir() {
            return Ok(None);
        }
        cur = candidate;
        depth += 1;
    }
    Ok(Some(cur))
}

/// The backend of `path` by its magic bytes; `None` for an empty file (rpm leaves those behind
/// when it creates a database it never fills).
pub fn detect_format(path: &Path) -> Result<Option<DbFormat>, RpmdbError> {
    let mut head = Vec::with_capacity(16);
    fs::File::open(path)
        .and_then(|f| f.take(16).read_to_end(&mut head))
        .map_err(|e| io_err(path, e))?;
    if head.is_empty() {
        return Ok(None);
    }
    format_of(&head)
        .map(Some)
        .ok_or_else(|| RpmdbError::UnknownFormat {
            path: path.to_path_buf(),
        })
}

/// Recognises the first 16 bytes of a database file.
pub fn format_of(head: &[u8]) -> Option<DbFormat> {
    if head.starts_with(b"SQLite format 3\0") {
        return Some(DbFormat::Sqlite);
    }
    if head.starts_with(b"RpmP") {
        return Some(DbFormat::Ndb);
    }
    match head.get(12..16)? {
        [0x61, 0x15, 0x06, 0x00] => Some(DbFormat::BerkeleyDb { swapped: false }),
        [0x00, 0x06, 0x15, 0x61] => Some(DbFormat::BerkeleyDb { swapped: true }),
        _ => None,
    }
}

/// The database in directory `dir` (relative to `root`), if any.
pub fn locate_in(root: &Path, dir: &Path) -> Result<Option<Located>, RpmdbError> {
    for name in DB_FILES {
        let Some(file) = resolve_in_root(root, &dir.join(name))? else {
            continue;
        };
        let meta = fs::metadata(&file).map_err(|e| io_err(&file, e))?;
        if !meta.is_file() {
            continue;
        }
        let Some(format) = detect_format(&file)? else {
            continue;
        };
        let wal = if format == DbFormat::Sqlite {
            let mut wal_name = file.file_name().unwrap_or_default().to_os_string();
            wal_name.push("-wal");
            // `file` is resolved, so its parent lies inside root and has no symlinks left.
            let parent = file.parent().unwrap_or(root);
            let rel = parent.strip_prefix(root).unwrap_or(Path::new(""));
            resolve_in_root(root, &rel.join(wal_name))?
                .filter(|w| fs::metadata(w).is_ok_and(|m| m.is_file()))
        } else {
            None
        };
        return Ok(Some(Located { file, format, wal }));
    }
    Ok(None)
}

/// The image's database: the first of [`LOCATIONS`] that holds one.
pub fn locate(root: &Path) -> Result<Option<Located>, RpmdbError> {
    for loc in LOCATIONS {
        if let Some(found) = locate_in(root, Path::new(loc))? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn magic() {
        assert_eq!(format_of(b"SQLite format 3\0xyz"), Some(DbFormat::Sqlite));
        assert_eq!(format_of(b"RpmP\0\0\0\0"), Some(DbFormat::Ndb));
        let mut bdb = [0u8; 16];
        bdb[12..].copy_from_slice(&0x0006_1561u32.to_le_bytes());
        assert_eq!(
            format_of(&bdb),
            Some(DbFormat::BerkeleyDb { swapped: false })
        );
        bdb[12..].copy_from_slice(&0x0006_1561u32.to_be_bytes());
        assert_eq!(
            format_of(&bdb),
            Some(DbFormat::BerkeleyDb { swapped: true })
        );
        // A BerkeleyDB btree (rpm's index files) is not a package database.
        bdb[12..].copy_from_slice(&0x0005_3162u32.to_le_bytes());
        assert_eq!(format_of(&bdb), None);
        assert_eq!(format_of(b"short"), None);
    }

    #[test]
    fn symlinks_stay_inside_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let outside = tmp.path().join("outside");
        fs::create_dir_all(root.join("usr/lib/sysimage/rpm")).unwrap();
        fs::create_dir_all(root.join("var/lib")).unwrap();
        fs::create_dir_all(outside.join("usr/lib/sysimage/rpm")).unwrap();
        fs::write(root.join("usr/lib/sysimage/rpm/x"), b"in").unwrap();
        fs::write(outside.join("usr/lib/sysimage/rpm/x"), b"out").unwrap();

        // Relative, with more `..` than there are levels: clamped at the root.
        symlink(
            "../../../../../usr/lib/sysimage/rpm",
            root.join("var/lib/rpm"),
        )
        .unwrap();
        let got = resolve_in_root(&root, Path::new("/var/lib/rpm/x"))
            .unwrap()
            .unwrap();
        assert_eq!(got, root.join("usr/lib/sysimage/rpm/x"));

        // Absolute: starts again at the root, not at the host's `/`.
        fs::remove_file(root.join("var/lib/rpm")).unwrap();
        symlink(
            outside.join("usr/lib/sysimage/rpm"),
            root.join("var/lib/rpm"),
        )
        .unwrap();
        assert_eq!(
            resolve_in_root(&root, Path::new("var/lib/rpm/x")).unwrap(),
            None,
            "the host path does not exist inside the root"
        );
        fs::remove_file(root.join("var/lib/rpm")).unwrap();
        symlink("/usr/lib/sysimage/rpm", root.join("var/lib/rpm")).unwrap();
        assert_eq!(
            resolve_in_root(&root, Path::new("var/lib/rpm/x"))
                .unwrap()
                .unwrap(),
            root.join("usr/lib/sysimage/rpm/x")
        );

        // Loops end with an error.
        symlink("b", root.join("a")).unwrap();
        symlink("a", root.join("b")).unwrap();
        assert!(matches!(
            resolve_in_root(&root, Path::new("a/x")),
            Err(RpmdbError::SymlinkLoop { .. })
        ));
        // A file used as a directory is simply absent.
        assert_eq!(
            resolve_in_root(&root, Path::new("usr/lib/sysimage/rpm/x/y")).unwrap(),
            None
        );
    }
}
