//! The rpmdb part of an image's merged filesystem, kept while its layers stream by: the two
//! database directories ([`LOCATIONS`]), their ancestors (so a symlink such as
//! `/var/lib/rpm -> ../../usr/lib/sysimage/rpm` or a whiteout of `/var` is seen) and the content
//! of the database files rpm reads ([`DB_NAMES`]), each kept in a private blob file.
//!
//! Nothing is written where an image says: node paths are normalised relative paths, symlink
//! targets are only strings resolved against these nodes (confined to the image root), and
//! [`Overlay::materialize`] builds a fresh directory from the nodes in which every ancestor of a
//! file it writes is a directory it created itself.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::locate::{DB_FILES, LOCATIONS};

/// The files of a database directory whose content is kept: the package files of the three
/// backends and sqlite's write-ahead log (needed when a layer left it non-empty).
pub const DB_NAMES: [&str; 4] = [DB_FILES[0], DB_FILES[1], DB_FILES[2], "rpmdb.sqlite-wal"];

/// Symlinks followed while resolving one path; Linux's own limit.
const MAX_SYMLINKS: u32 = 40;

/// A kept file's content; the file is deleted when the last node using it goes. `id` is unique
/// per analysis, so two states of the overlay can be compared.
#[derive(Debug)]
pub struct Blob {
    path: PathBuf,
    id: u64,
}

impl Blob {
    pub fn new(path: PathBuf, id: u64) -> Arc<Blob> {
        Arc::new(Blob { path, id })
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Blob {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

#[derive(Debug, Clone)]
pub enum Node {
    Dir,
    /// A regular file; `None` when its content is not needed (index files such as `Name`).
    File(Option<Arc<Blob>>),
    Symlink(String),
    /// Devices, fifos: present, never read.
    Other,
}

/// True for paths the overlay keeps: a database directory, anything below one, or an ancestor
/// of one (`var`, `var/lib`, `usr`, `usr/lib`, `usr/lib/sysimage`).
pub fn is_relevant(path: &str) -> bool {
    LOCATIONS.iter().any(|loc| {
        path == *loc
            || path
                .strip_prefix(loc)
                .is_some_and(|rest| rest.starts_with('/'))
            || loc
                .strip_prefix(path)
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

/// `dir/` prefix for range scans of descendants.
fn under(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("{path}/")
    }
}

#[derive(Debug, Default)]
pub struct Overlay {
    nodes: BTreeMap<String, Node>,
}

impl Overlay {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    /// What decides the database rpm would find: kept files, database-named files without
    /// content, symlinks. Equal fingerprints, same database.
    pub fn fingerprint(&self) -> Vec<(String, String)> {
        self.nodes
            .iter()
            .filter_map(|(p, n)| {
                let key = match n {
                    Node::File(Some(b)) => format!("f{}", b.id),
                    Node::File(None) if DB_NAMES.contains(&p.rsplit('/').next()?) => "f".into(),
                    Node::Symlink(t) => format!("l{t}"),
                    _ => return None,
                };
                Some((p.clone(), key))
            })
            .collect()
    }

    /// Drops the kept files whose directory `keep` refuses (database-named files a layer had
    /// that turned out not to be in a database directory).
    pub fn prune_files(&mut self, keep: impl Fn(&str) -> bool) {
        self.nodes.retain(|p, n| {
            !matches!(n, Node::File(Some(_))) || keep(p.rsplit_once('/').map_or("", |(d, _)| d))
        });
    }

    /// Removes the nodes strictly below `dir`; true when there were any.
    pub fn clear_below(&mut self, dir: &str) -> bool {
        let prefix = under(dir);
        let doomed: Vec<String> = self
            .nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect();
        for k in &doomed {
            self.nodes.remove(k);
        }
        !doomed.is_empty()
    }

    /// Removes `path` and everything below it; true when anything was there.
    pub fn remove(&mut self, path: &str) -> bool {
        let below = self.clear_below(path);
        self.nodes.remove(path).is_some() || below
    }

    /// Resolves every component of `path` but the last through the symlink nodes, as the
    /// image's own processes would (absolute targets restart at the root, `..` stops there).
    /// `None` on a symlink loop.
    pub fn resolve_parent(&self, path: &str) -> Option<String> {
        let mut parts: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        let last = parts.pop()?;
        let mut pending: Vec<String> = parts.iter().rev().map(|s| s.to_string()).collect();
        let mut cur: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(c) = pending.pop() {
            match c.as_str() {
                "" | "." => continue,
                ".." => {
                    cur.pop();
                    continue;
                }
                _ => {}
            }
            cur.push(c);
            if let Some(Node::Symlink(target)) = self.nodes.get(&cur.join("/")) {
                hops += 1;
                if hops > MAX_SYMLINKS {
                    return None;
                }
                cur.pop();
                if target.starts_with('/') {
                    cur.clear();
                }
                pending.extend(target.split('/').rev().map(str::to_string));
            }
        }
        cur.push(last.to_string());
        Some(cur.join("/"))
    }

    /// Puts `node` at `path` (already resolved), with overlay rules: a non-directory replaces
    /// whatever was there including everything below; a directory keeps what is below an
    /// existing directory; a file or symlink used as an ancestor becomes a directory.
    pub fn insert(&mut self, path: &str, node: Node) {
        let mut ancestor = String::new();
        for part in path
            .split('/')
            .collect::<Vec<_>>()
            .split_last()
            .map_or(&[][..], |(_, p)| p)
        {
            if !ancestor.is_empty() {
                ancestor.push('/');
            }
            ancestor.push_str(part);
            if matches!(self.nodes.get(&ancestor), Some(n) if !matches!(n, Node::Dir)) {
                self.nodes.insert(ancestor.clone(), Node::Dir);
            }
        }
        if !matches!(node, Node::Dir) {
            self.clear_below(path);
        }
        self.nodes.insert(path.to_string(), node);
    }

    /// Writes the nodes below `root` (a new, empty directory): directories, symlinks (never
    /// followed here), and hard links to the kept blobs. Files without kept content are left out.
    pub fn materialize(&self, root: &Path) -> io::Result<()> {
        for (path, node) in &self.nodes {
            let dest = root.join(path);
            match node {
                Node::Dir => {
                    ensure_dirs(root, path, true)?;
                }
                Node::File(Some(blob)) => {
                    ensure_dirs(root, path, false)?;
                    if fs::hard_link(blob.path(), &dest).is_err() {
                        fs::copy(blob.path(), &dest)?;
                    }
                }
                Node::Symlink(target) => {
                    ensure_dirs(root, path, false)?;
                    std::os::unix::fs::symlink(target, &dest)?;
                }
                Node::File(None) | Node::Other => {}
            }
        }
        Ok(())
    }
}

/// Creates the directories of `path` below `root` (all of them, or all but the last component),
/// refusing to pass through anything that is not a real directory.
fn ensure_dirs(root: &Path, path: &str, including_last: bool) -> io::Result<()> {
    let parts: Vec<&str> = path.split('/').collect();
    let n = if including_last {
        parts.len()
    } else {
        parts.len().saturating_sub(1)
    };
    let mut cur = root.to_path_buf();
    for part in &parts[..n] {
        if part.is_empty() || *part == "." || *part == ".." {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("unsafe path {path:?}"),
            ));
        }
        cur.push(part);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} is not a directory", cur.display()),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir(&cur)?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relevance() {
        for p in [
            "var",
            "var/lib",
            "var/lib/rpm",
            "var/lib/rpm/Packages",
            "usr/lib/sysimage",
            "usr/lib/sysimage/rpm/rpmdb.sqlite",
        ] {
            assert!(is_relevant(p), "{p}");
        }
        for p in [
            "var/lib/rpmx",
            "var/lib/dnf",
            "usr/bin",
            "etc",
            "var/lib/rpm-state",
        ] {
            assert!(!is_relevant(p), "{p}");
        }
    }

    #[test]
    fn resolution_stays_inside() {
        let mut o = Overlay::new();
        o.insert("usr/lib/sysimage/rpm", Node::Dir);
        o.insert(
            "var/lib/rpm",
            Node::Symlink("../../usr/lib/sysimage/rpm".into()),
        );
        assert_eq!(
            o.resolve_parent("var/lib/rpm/rpmdb.sqlite").unwrap(),
            "usr/lib/sysimage/rpm/rpmdb.sqlite"
        );
        o.insert("var/lib/rpm", Node::Symlink("../../../../../../etc".into()));
        assert_eq!(o.resolve_parent("var/lib/rpm/x").unwrap(), "etc/x");
        o.insert("var/lib/rpm", Node::Symlink("/usr/lib/sysimage/rpm".into()));
        assert_eq!(
            o.resolve_parent("var/lib/rpm/x").unwrap(),
            "usr/lib/sysimage/rpm/x"
        );
        o.insert("var/lib/rpm", Node::Symlink("rpm".into()));
        assert_eq!(o.resolve_parent("var/lib/rpm/x"), None, "loop");
    }

    #[test]
    fn materialize_never_follows_image_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let blob_path = tmp.path().join("blob");
        fs::write(&blob_path, b"db").unwrap();
        let mut o = Overlay::new();
        // An absolute symlink to a host directory, and a file "below" it: insert turns the
        // symlink into a directory, so the file lands inside the root.
        let outside = tmp.path().join("outside");
        fs::create_dir(&outside).unwrap();
        o.insert(
            "var/lib/rpm",
            Node::Symlink(outside.to_string_lossy().into_owned()),
        );
        o.insert(
            "var/lib/rpm/Packages",
            Node::File(Some(Blob::new(blob_path, 1))),
        );
        let root = tmp.path().join("root");
        fs::create_dir(&root).unwrap();
        o.materialize(&root).unwrap();
        assert_eq!(fs::read(root.join("var/lib/rpm/Packages")).unwrap(), b"db");
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
        // Removing the node drops the blob file.
        assert!(o.remove("var"));
        assert!(o.is_empty());
        assert!(!tmp.path().join("blob").exists());
    }
}
