//! Tags, targets, packages, channels, hosts, builds, archives and RPMs: the records an admin
//! sets up and the build side reads.
//!
//! The views list their fields in alphabetical order of alias, because that is the order Koji's
//! `QueryProcessor` returns them in (it sorts columns by alias). Koji versions these tables with
//! create/revoke events; this store keeps only the current state, so `event=` queries on the
//! hub read the present.

use std::collections::{HashMap, HashSet};

use rusqlite::types::Value as Sql;
use rusqlite::{Connection, OptionalExtension, params};

use super::query::{Cond, View};
use super::{Field, Record, Result, StoreError, new_event};

/// Koji's `BUILD_STATES`.
pub const BUILD_BUILDING: i64 = 0;
pub const BUILD_COMPLETE: i64 = 1;
pub const BUILD_DELETED: i64 = 2;

/// `koji.BUILD_STATES` names.
pub fn build_state_name(state: i64) -> &'static str {
    match state {
        0 => "BUILDING",
        1 => "COMPLETE",
        2 => "DELETED",
        3 => "FAILED",
        4 => "CANCELED",
        _ => "UNKNOWN",
    }
}

/// How callers name a record: by id or by name (Koji's `name_or_id_clause`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ref<'a> {
    Id(i64),
    Name(&'a str),
}

/// The tables with a unique `(id, name)` pair that [`lookup`] can search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Named {
    Tag,
    Package,
    Channel,
    Host,
    Target,
    Volume,
    Permission,
    ContentGenerator,
    Btype,
}

impl Named {
    fn table(self) -> &'static str {
        match self {
            Named::Tag => "tags",
            Named::Package => "packages",
            Named::Channel => "channels",
            Named::Host => "hosts",
            Named::Target => "build_targets",
            Named::Volume => "volumes",
            Named::Permission => "permissions",
            Named::ContentGenerator => "content_generators",
            Named::Btype => "btypes",
        }
    }

    /// The table name Koji uses in "No such entry in table %s" messages.
    pub fn koji_table(self) -> &'static str {
        match self {
            Named::Tag => "tag",
            Named::Package => "package",
            Named::Channel => "channels",
            Named::Host => "host",
            Named::Target => "build_target",
            Named::Volume => "volume",
            Named::Permission => "permissions",
            Named::ContentGenerator => "content_generator",
            Named::Btype => "btype",
        }
    }
}

/// Koji's `lookup_name`: `(id, name)` of the row named by `r`, if any.
pub fn lookup(conn: &Connection, what: Named, r: Ref<'_>) -> Result<Option<(i64, String)>> {
    let t = what.table();
    Ok(match r {
        Ref::Id(id) => conn
            .prepare_cached(&format!("SELECT id, name FROM {t} WHERE id = ?1"))?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?,
        Ref::Name(n) => conn
            .prepare_cached(&format!("SELECT id, name FROM {t} WHERE name = ?1"))?
            .query_row([n], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?,
    })
}

/// Looks a channel up by name.
pub fn channel_id(conn: &Connection, name: &str) -> Result<Option<i64>> {
    Ok(lookup(conn, Named::Channel, Ref::Name(name))?.map(|(id, _)| id))
}

/// A field of a record by alias.
pub fn field<'a>(rec: &'a Record, name: &str) -> Option<&'a Field> {
    rec.iter().find(|(k, _)| k == name).map(|(_, f)| f)
}

/// An integer field of a record by alias.
pub fn field_int(rec: &Record, name: &str) -> Option<i64> {
    match field(rec, name) {
        Some(Field::Int(i)) => Some(*i),
        _ => None,
    }
}

/// A text field of a record by alias.
pub fn field_text<'a>(rec: &'a Record, name: &str) -> Option<&'a str> {
    match field(rec, name) {
        Some(Field::Text(t)) => Some(t),
        _ => None,
    }
}

/// A shell glob as a `LIKE ... ESCAPE '\'` pattern (Koji's `_prepareSearchTerms(.., 'glob')`).
pub fn glob_to_like(glob: &str) -> String {
    let mut out = String::with_capacity(glob.len() + 4);
    for c in glob.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '_' => out.push_str("\\_"),
            '%' => out.push_str("\\%"),
            '?' => out.push('_'),
            '*' => out.push('%'),
            c => out.push(c),
        }
    }
    out
}

/// A literal prefix as a `LIKE` pattern.
pub fn prefix_to_like(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 2);
    for c in prefix.chars() {
        if matches!(c, '\\' | '_' | '%') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

// ---------------------------------------------------------------------------------------------
// Tags

const TAGS_FROM: &str = "tags t LEFT JOIN permissions p ON p.id = t.perm_id";

/// `listTags` (and `getTag` without `extra`).
pub const TAGS: View = View {
    from: TAGS_FROM,
    fields: &[
        ("arches", "t.arches"),
        ("id", "t.id"),
        ("locked", "t.locked"),
        ("maven_include_all", "t.maven_include_all"),
        ("maven_support", "t.maven_support"),
        ("name", "t.name"),
        ("perm", "p.name"),
        ("perm_id", "t.perm_id"),
    ],
    hidden: &[],
    default_order: "t.id",
    key: None,
};

/// `getTag`: the tag fields, then `extra` (JSON text), as Koji appends it.
pub const TAG_CONFIG: View = View {
    from: TAGS_FROM,
    fields: &[
        ("arches", "t.arches"),
        ("id", "t.id"),
        ("locked", "t.locked"),
        ("maven_include_all", "t.maven_include_all"),
        ("maven_support", "t.maven_support"),
        ("name", "t.name"),
        ("perm", "p.name"),
        ("perm_id", "t.perm_id"),
        ("extra", "t.extra"),
    ],
    hidden: &[],
    default_order: "t.id",
    key: None,
};

/// `listTags(package=..)`: tags listing a package, with the listing's owner and flags.
pub const TAGS_BY_PACKAGE: View = View {
    from: "tags t LEFT JOIN permissions p ON p.id = t.perm_id \
           JOIN tag_packages tp ON tp.tag_id = t.id JOIN users u ON u.id = tp.owner",
    fields: &[
        ("arches", "t.arches"),
        ("blocked", "tp.blocked"),
        ("extra_arches", "tp.extra_arches"),
        ("id", "t.id"),
        ("locked", "t.locked"),
        ("maven_include_all", "t.maven_include_all"),
        ("maven_support", "t.maven_support"),
        ("name", "t.name"),
        ("owner_id", "u.id"),
        ("owner_name", "u.name"),
        ("perm", "p.name"),
        ("perm_id", "t.perm_id"),
    ],
    hidden: &[("package_id", "tp.package_id")],
    default_order: "t.id",
    key: None,
};

/// Only tags the build is tagged into.
pub fn tags_of_build(build_id: i64) -> Cond {
    Cond::Raw(
        "t.id IN (SELECT tag_id FROM tag_listing WHERE build_id = ?1)",
        vec![Sql::Integer(build_id)],
    )
}

/// A tag as one record of [`TAG_CONFIG`].
pub fn get_tag(conn: &Connection, r: Ref<'_>) -> Result<Option<Record>> {
    let cond = match r {
        Ref::Id(id) => Cond::Eq("id", Sql::Integer(id)),
        Ref::Name(n) => Cond::Eq("name", Sql::Text(n.to_string())),
    };
    Ok(super::query::rows(conn, &TAG_CONFIG, &[cond])?
        .into_iter()
        .next())
}

/// A tag's own `extra` map.
pub fn tag_extra(
    conn: &Connection,
    tag_id: i64,
) -> Result<serde_json::Map<String, serde_json::Value>> {
    let text: Option<String> = conn
        .prepare_cached("SELECT extra FROM tags WHERE id = ?1")?
        .query_row([tag_id], |r| r.get(0))
        .optional()?;
    Ok(
        match text
            .as_deref()
            .map(serde_json::from_str::<serde_json::Value>)
        {
            Some(Ok(serde_json::Value::Object(m))) => m,
            _ => serde_json::Map::new(),
        },
    )
}

/// A tag's settings (`tag_config` plus `tag_extra` in Koji).
#[derive(Debug, Clone, PartialEq)]
pub struct TagConfig {
    pub name: String,
    /// Space-separated arches; Koji stores `''` for "none given".
    pub arches: Option<String>,
    pub perm_id: Option<i64>,
    pub locked: bool,
    pub maven_support: bool,
    pub maven_include_all: bool,
    pub extra: serde_json::Map<String, serde_json::Value>,
}

pub fn create_tag(conn: &Connection, c: &TagConfig) -> Result<i64> {
    if lookup(conn, Named::Tag, Ref::Name(&c.name))?.is_some() {
        return Err(StoreError::Conflict(format!(
            "A tag with the name '{}' already exists",
            c.name
        )));
    }
    let ev = new_event(conn)?;
    conn.execute(
        "INSERT INTO tags (name, arches, perm_id, locked, maven_support, maven_include_all, \
         extra, create_event) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            c.name,
            c.arches,
            c.perm_id,
            c.locked,
            c.maven_support,
            c.maven_include_all,
            serde_json::Value::Object(c.extra.clone()).to_string(),
            ev
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Overwrites a tag's settings (name included).
pub fn update_tag(conn: &Connection, id: i64, c: &TagConfig) -> Result<()> {
    new_event(conn)?;
    conn.execute(
        "UPDATE tags SET name = ?2, arches = ?3, perm_id = ?4, locked = ?5, maven_support = ?6, \
         maven_include_all = ?7, extra = ?8 WHERE id = ?1",
        params![
            id,
            c.name,
            c.arches,
            c.perm_id,
            c.locked,
            c.maven_support,
            c.maven_include_all,
            serde_json::Value::Object(c.extra.clone()).to_string()
        ],
    )?;
    Ok(())
}

/// The current settings of a tag.
pub fn tag_config(conn: &Connection, id: i64) -> Result<Option<TagConfig>> {
    let row = conn
        .prepare_cached(
            "SELECT name, arches, perm_id, locked, maven_support, maven_include_all FROM tags \
             WHERE id = ?1",
        )?
        .query_row([id], |r| {
            Ok(TagConfig {
                name: r.get(0)?,
                arches: r.get(1)?,
                perm_id: r.get(2)?,
                locked: r.get(3)?,
                maven_support: r.get(4)?,
                maven_include_all: r.get(5)?,
                extra: serde_json::Map::new(),
            })
        })
        .optional()?;
    match row {
        Some(mut c) => {
            c.extra = tag_extra(conn, id)?;
            Ok(Some(c))
        }
        None => Ok(None),
    }
}

// ---------------------------------------------------------------------------------------------
// Inheritance

/// One `tag_inheritance` row. `name` is the parent's name, or the child's for
/// [`descendants_data`].
#[derive(Debug, Clone, PartialEq)]
pub struct InheritLink {
    pub tag_id: i64,
    pub parent_id: i64,
    pub name: String,
    pub priority: i64,
    pub maxdepth: Option<i64>,
    pub intransitive: bool,
    pub noconfig: bool,
    pub pkg_filter: String,
}

fn links(conn: &Connection, sql: &str, tag_id: i64) -> Result<Vec<InheritLink>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let v = stmt
        .query_map([tag_id], |r| {
            Ok(InheritLink {
                tag_id: r.get(0)?,
                parent_id: r.get(1)?,
                name: r.get(2)?,
                priority: r.get(3)?,
                maxdepth: r.get(4)?,
                intransitive: r.get(5)?,
                noconfig: r.get(6)?,
                pkg_filter: r.get(7)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(v)
}

/// Koji's `readInheritanceData`: a tag's parents by priority.
pub fn inheritance_data(conn: &Connection, tag_id: i64) -> Result<Vec<InheritLink>> {
    links(
        conn,
        "SELECT i.tag_id, i.parent_id, t.name, i.priority, i.maxdepth, i.intransitive, \
         i.noconfig, i.pkg_filter FROM tag_inheritance i JOIN tags t ON t.id = i.parent_id \
         WHERE i.tag_id = ?1 ORDER BY i.priority, i.parent_id",
        tag_id,
    )
}

/// Koji's `readDescendantsData`: a tag's children by priority.
pub fn descendants_data(conn: &Connection, tag_id: i64) -> Result<Vec<InheritLink>> {
    links(
        conn,
        "SELECT i.tag_id, i.parent_id, t.name, i.priority, i.maxdepth, i.intransitive, \
         i.noconfig, i.pkg_filter FROM tag_inheritance i JOIN tags t ON t.id = i.tag_id \
         WHERE i.parent_id = ?1 ORDER BY i.priority, i.tag_id",
        tag_id,
    )
}

/// Adds (or replaces) one inheritance link.
pub fn add_inheritance(conn: &Connection, link: &InheritLink) -> Result<()> {
    new_event(conn)?;
    let dup: Option<i64> = conn
        .prepare_cached(
            "SELECT parent_id FROM tag_inheritance WHERE tag_id = ?1 AND priority = ?2 \
             AND parent_id != ?3",
        )?
        .query_row(params![link.tag_id, link.priority, link.parent_id], |r| {
            r.get(0)
        })
        .optional()?;
    if let Some(other) = dup {
        return Err(StoreError::Conflict(format!(
            "Multiple parent tags ([{other}, {}]) cannot have the same priority value ({}) on \
             child tag {}",
            link.parent_id, link.priority, link.tag_id
        )));
    }
    conn.execute(
        "INSERT OR REPLACE INTO tag_inheritance (tag_id, parent_id, priority, maxdepth, \
         intransitive, noconfig, pkg_filter) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            link.tag_id,
            link.parent_id,
            link.priority,
            link.maxdepth,
            link.intransitive,
            link.noconfig,
            link.pkg_filter
        ],
    )?;
    Ok(())
}

/// One node of [`full_inheritance`].
#[derive(Debug, Clone, PartialEq)]
pub struct FullLink {
    pub link: InheritLink,
    pub currdepth: i64,
    pub nextdepth: Option<i64>,
    /// The package filters in force along the path to this node.
    pub filter: Vec<String>,
}

/// Koji's `readFullInheritance`: the ordered, pruned walk of a tag's ancestors (or, with
/// `reverse`, descendants).
pub fn full_inheritance(conn: &Connection, tag_id: i64, reverse: bool) -> Result<Vec<FullLink>> {
    let mut walk = Walk {
        conn,
        reverse,
        order: Vec::new(),
        hist: HashMap::new(),
    };
    walk.recurse(tag_id, &HashSet::new(), 0, None, false, &[])?;
    Ok(walk.order)
}

struct Walk<'c> {
    conn: &'c Connection,
    reverse: bool,
    order: Vec<FullLink>,
    hist: HashMap<i64, Vec<FullLink>>,
}

impl Walk<'_> {
    fn recurse(
        &mut self,
        tag_id: i64,
        top: &HashSet<i64>,
        currdepth: i64,
        maxdepth: Option<i64>,
        mut noconfig: bool,
        pfilter: &[String],
    ) -> Result<()> {
        if maxdepth.is_some_and(|m| m < 1) {
            return Ok(());
        }
        let currdepth = currdepth + 1;
        let mut top = top.clone();
        top.insert(tag_id);
        let node = if self.reverse {
            descendants_data(self.conn, tag_id)?
        } else {
            inheritance_data(self.conn, tag_id)?
        };
        for link in node {
            let id = if self.reverse {
                link.tag_id
            } else {
                link.parent_id
            };
            if top.contains(&id) {
                // An inheritance loop: pruned, as Koji does.
                continue;
            }
            if link.intransitive && top.len() > 1 && !self.reverse {
                continue;
            }
            let nextdepth = if self.reverse {
                if link.maxdepth.is_some_and(|m| m < currdepth - 1) {
                    continue;
                }
                None
            } else {
                match (link.maxdepth, maxdepth) {
                    (None, None) => None,
                    (None, Some(m)) => Some(m - 1),
                    (Some(n), None) => Some(n),
                    (Some(n), Some(m)) => Some(n.min(m) - 1),
                }
            };
            if link.noconfig {
                noconfig = true;
            }
            let mut filter = pfilter.to_vec();
            if !link.pkg_filter.is_empty() {
                filter.push(link.pkg_filter.clone());
            }
            if let Some(previous) = self.hist.get(&id) {
                let mut rescan = true;
                for p in previous {
                    let mut sufficient = true;
                    match (nextdepth, p.nextdepth) {
                        (None, Some(_)) => sufficient = false,
                        (Some(n), Some(last)) if last < n => sufficient = false,
                        _ => {}
                    }
                    if p.link.noconfig && !noconfig {
                        sufficient = false;
                    }
                    if !p.filter.is_empty() {
                        sufficient = false;
                    }
                    if sufficient {
                        rescan = false;
                    }
                }
                if !rescan {
                    continue;
                }
            }
            let intransitive = link.intransitive;
            let node = FullLink {
                link,
                currdepth,
                nextdepth,
                filter: filter.clone(),
            };
            self.hist.entry(id).or_default().push(node.clone());
            self.order.push(node);
            if intransitive && self.reverse {
                continue;
            }
            self.recurse(id, &top, currdepth, nextdepth, noconfig, &filter)?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Build targets

/// `getBuildTargets`.
pub const TARGETS: View = View {
    from: "build_targets bt JOIN tags t1 ON t1.id = bt.build_tag \
           JOIN tags t2 ON t2.id = bt.dest_tag",
    fields: &[
        ("build_tag", "bt.build_tag"),
        ("build_tag_name", "t1.name"),
        ("dest_tag", "bt.dest_tag"),
        ("dest_tag_name", "t2.name"),
        ("id", "bt.id"),
        ("name", "bt.name"),
    ],
    hidden: &[],
    default_order: "bt.id",
    key: None,
};

pub fn create_target(conn: &Connection, name: &str, build_tag: i64, dest_tag: i64) -> Result<i64> {
    new_event(conn)?;
    conn.execute(
        "INSERT INTO build_targets (name, build_tag, dest_tag) VALUES (?1, ?2, ?3)",
        params![name, build_tag, dest_tag],
    )?;
    Ok(conn.last_insert_rowid())
}

pub fn update_target(
    conn: &Connection,
    id: i64,
    name: &str,
    build_tag: i64,
    dest_tag: i64,
) -> Result<()> {
    new_event(conn)?;
    conn.execute(
        "UPDATE build_targets SET name = ?2, build_tag = ?3, dest_tag = ?4 WHERE id = ?1",
        params![id, name, build_tag, dest_tag],
    )?;
    Ok(())
}

pub fn delete_target(conn: &Connection, id: i64) -> Result<()> {
    new_event(conn)?;
    conn.execute("DELETE FROM build_targets WHERE id = ?1", [id])?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Packages

/// `listPackages()` without filters: every package.
pub const PACKAGES: View = View {
    from: "packages pk",
    fields: &[("package_id", "pk.id"), ("package_name", "pk.name")],
    hidden: &[],
    default_order: "pk.id",
    key: None,
};

/// Package listings of tags (`readPackageList`).
pub const TAG_PACKAGES: View = View {
    from: "tag_packages tp JOIN packages pk ON pk.id = tp.package_id \
           JOIN tags t ON t.id = tp.tag_id JOIN users u ON u.id = tp.owner",
    fields: &[
        ("blocked", "tp.blocked"),
        ("extra_arches", "tp.extra_arches"),
        ("owner_id", "u.id"),
        ("owner_name", "u.name"),
        ("package_id", "pk.id"),
        ("package_name", "pk.name"),
        ("tag_id", "t.id"),
        ("tag_name", "t.name"),
    ],
    hidden: &[],
    default_order: "pk.name, t.id",
    key: None,
};

pub fn create_package(conn: &Connection, name: &str) -> Result<i64> {
    conn.execute("INSERT INTO packages (name) VALUES (?1)", [name])?;
    Ok(conn.last_insert_rowid())
}

/// Filters of [`package_list`]; at least one of the ids should be set.
#[derive(Debug, Clone, Copy, Default)]
pub struct PkgListQuery {
    pub tag_id: Option<i64>,
    pub user_id: Option<i64>,
    pub pkg_id: Option<i64>,
    pub inherit: bool,
    pub with_dups: bool,
    pub with_blocked: bool,
}

/// Whether a package name passes one inheritance `pkg_filter` (Python `re.match`). Without a
/// regex engine, only literal patterns (the common case: a name prefix) are evaluated; a
/// pattern with regex syntax lets every package through.
fn filter_allows(pattern: &str, name: &str) -> bool {
    if pattern.chars().any(|c| "\\.^$*+?{}[]|()".contains(c)) {
        return true;
    }
    name.starts_with(pattern)
}

/// Koji's `readPackageList`: one entry per package (all of them with `with_dups`), the tag's
/// own entries first and then, with `inherit`, the entries its ancestors contribute.
pub fn package_list(conn: &Connection, q: &PkgListQuery) -> Result<Vec<Record>> {
    let mut conds = Vec::new();
    if let Some(u) = q.user_id {
        conds.push(Cond::Eq("owner_id", Sql::Integer(u)));
    }
    if let Some(p) = q.pkg_id {
        conds.push(Cond::Eq("package_id", Sql::Integer(p)));
    }
    if !q.with_blocked {
        conds.push(Cond::Eq("blocked", Sql::Integer(0)));
    }
    let query = |tag: Option<i64>| -> Result<Vec<Record>> {
        let mut c = conds.clone();
        if let Some(t) = tag {
            c.push(Cond::Eq("tag_id", Sql::Integer(t)));
        }
        super::query::rows(conn, &TAG_PACKAGES, &c)
    };
    let mut out: Vec<Record> = Vec::new();
    let mut index: HashMap<i64, usize> = HashMap::new();
    for rec in query(q.tag_id)? {
        let pkg = field_int(&rec, "package_id").unwrap_or(0);
        match index.get(&pkg) {
            // Later rows replace earlier ones for the same package, as Koji's dict does.
            Some(&i) if !q.with_dups => out[i] = rec,
            _ => {
                index.insert(pkg, out.len());
                out.push(rec);
            }
        }
    }
    let Some(tag_id) = q.tag_id else {
        return Ok(out);
    };
    if !q.inherit {
        return Ok(out);
    }
    for node in full_inheritance(conn, tag_id, false)? {
        for rec in query(Some(node.link.parent_id))? {
            let pkg = field_int(&rec, "package_id").unwrap_or(0);
            if !q.with_dups && index.contains_key(&pkg) {
                continue;
            }
            let name = field_text(&rec, "package_name").unwrap_or("");
            if !node.filter.iter().all(|p| filter_allows(p, name)) {
                continue;
            }
            index.entry(pkg).or_insert(out.len());
            out.push(rec);
        }
    }
    Ok(out)
}

/// Adds or replaces a package's entry in a tag's package list.
pub fn pkglist_set(
    conn: &Connection,
    tag_id: i64,
    pkg_id: i64,
    owner: i64,
    blocked: bool,
    extra_arches: Option<&str>,
) -> Result<()> {
    let ev = new_event(conn)?;
    conn.execute(
        "INSERT OR REPLACE INTO tag_packages (tag_id, package_id, owner, blocked, extra_arches, \
         create_event) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![tag_id, pkg_id, owner, blocked, extra_arches, ev],
    )?;
    Ok(())
}

/// Changes only the owner of a package-list entry.
pub fn pkglist_set_owner(conn: &Connection, tag_id: i64, pkg_id: i64, owner: i64) -> Result<()> {
    new_event(conn)?;
    conn.execute(
        "UPDATE tag_packages SET owner = ?3 WHERE tag_id = ?1 AND package_id = ?2",
        params![tag_id, pkg_id, owner],
    )?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Channels and hosts

/// `getChannel` / `listChannels`.
pub const CHANNELS: View = View {
    from: "channels c",
    fields: &[
        ("comment", "c.comment"),
        ("description", "c.description"),
        ("enabled", "c.enabled"),
        ("id", "c.id"),
        ("name", "c.name"),
    ],
    hidden: &[],
    default_order: "c.id",
    key: None,
};

/// Only the channels a host is subscribed to.
pub fn channels_of_host(host_id: i64) -> Cond {
    Cond::Raw(
        "c.id IN (SELECT channel_id FROM host_channels WHERE host_id = ?1)",
        vec![Sql::Integer(host_id)],
    )
}

pub fn create_channel(conn: &Connection, name: &str, description: Option<&str>) -> Result<i64> {
    conn.execute(
        "INSERT INTO channels (name, description) VALUES (?1, ?2)",
        params![name, description],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Sets a channel's name, description and comment.
pub fn update_channel(
    conn: &Connection,
    id: i64,
    name: &str,
    description: Option<&str>,
    comment: Option<&str>,
) -> Result<()> {
    conn.execute(
        "UPDATE channels SET name = ?2, description = ?3, comment = ?4 WHERE id = ?1",
        params![id, name, description, comment],
    )?;
    Ok(())
}

/// Enables or disables a channel, optionally setting its comment.
pub fn set_channel_enabled(
    conn: &Connection,
    id: i64,
    enabled: bool,
    comment: Option<&str>,
) -> Result<()> {
    conn.execute(
        "UPDATE channels SET enabled = ?2, comment = coalesce(?3, comment) WHERE id = ?1",
        params![id, enabled, comment],
    )?;
    Ok(())
}

pub fn host_in_channel(conn: &Connection, host_id: i64, channel_id: i64) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM host_channels WHERE host_id = ?1 AND channel_id = ?2")?
        .query_row([host_id, channel_id], |_| Ok(()))
        .optional()?
        .is_some())
}

pub fn add_host_to_channel(conn: &Connection, host_id: i64, channel_id: i64) -> Result<()> {
    new_event(conn)?;
    conn.execute(
        "INSERT OR IGNORE INTO host_channels (host_id, channel_id) VALUES (?1, ?2)",
        [host_id, channel_id],
    )?;
    Ok(())
}

pub fn remove_host_from_channel(conn: &Connection, host_id: i64, channel_id: i64) -> Result<()> {
    new_event(conn)?;
    conn.execute(
        "DELETE FROM host_channels WHERE host_id = ?1 AND channel_id = ?2",
        [host_id, channel_id],
    )?;
    Ok(())
}

/// `getHost` / `listHosts`.
pub const HOSTS: View = View {
    from: "hosts h",
    fields: &[
        ("arches", "h.arches"),
        ("capacity", "h.capacity"),
        ("comment", "h.comment"),
        ("description", "h.description"),
        ("enabled", "h.enabled"),
        ("id", "h.id"),
        ("name", "h.name"),
        ("ready", "h.ready"),
        ("task_load", "h.task_load"),
        ("update_ts", "h.update_ts"),
        ("user_id", "h.user_id"),
    ],
    hidden: &[],
    default_order: "h.id",
    key: None,
};

/// Only hosts subscribed to a channel.
pub fn hosts_in_channel(channel_id: i64) -> Cond {
    Cond::Raw(
        "h.id IN (SELECT host_id FROM host_channels WHERE channel_id = ?1)",
        vec![Sql::Integer(channel_id)],
    )
}

/// Only hosts supporting at least one of `arches` (whole-word match, like Koji's `\m(..)\M`).
pub fn hosts_with_arches(arches: &[String]) -> Cond {
    let list = serde_json::Value::from(arches.to_vec()).to_string();
    Cond::Raw(
        "EXISTS (SELECT 1 FROM json_each(?1) j \
         WHERE instr(' ' || h.arches || ' ', ' ' || j.value || ' ') > 0)",
        vec![Sql::Text(list)],
    )
}

/// Creates a host (enabled, capacity 2.0) subscribed to the `default` channel.
pub fn create_host(conn: &Connection, user_id: i64, name: &str, arches: &str) -> Result<i64> {
    let default = channel_id(conn, "default")?
        .ok_or_else(|| StoreError::NotFound("query returned no rows".into()))?;
    new_event(conn)?;
    conn.execute(
        "INSERT INTO hosts (user_id, name, arches) VALUES (?1, ?2, ?3)",
        params![user_id, name, arches],
    )?;
    let id = conn.last_insert_rowid();
    conn.execute(
        "INSERT INTO host_channels (host_id, channel_id) VALUES (?1, ?2)",
        [id, default],
    )?;
    Ok(id)
}

/// A host's editable settings (`host_config` in Koji).
#[derive(Debug, Clone, PartialEq)]
pub struct HostConfig {
    pub arches: String,
    pub capacity: f64,
    pub description: Option<String>,
    pub comment: Option<String>,
    pub enabled: bool,
}

pub fn host_config(conn: &Connection, id: i64) -> Result<Option<HostConfig>> {
    Ok(conn
        .prepare_cached(
            "SELECT arches, capacity, description, comment, enabled FROM hosts WHERE id = ?1",
        )?
        .query_row([id], |r| {
            Ok(HostConfig {
                arches: r.get(0)?,
                capacity: r.get(1)?,
                description: r.get(2)?,
                comment: r.get(3)?,
                enabled: r.get(4)?,
            })
        })
        .optional()?)
}

pub fn update_host(conn: &Connection, id: i64, c: &HostConfig) -> Result<()> {
    new_event(conn)?;
    conn.execute(
        "UPDATE hosts SET arches = ?2, capacity = ?3, description = ?4, comment = ?5, \
         enabled = ?6 WHERE id = ?1",
        params![
            id,
            c.arches,
            c.capacity,
            c.description,
            c.comment,
            c.enabled
        ],
    )?;
    Ok(())
}

/// When the host's user last used a session (Koji's `getLastHostUpdate`).
pub fn last_host_update(conn: &Connection, host_id: i64) -> Result<Option<f64>> {
    Ok(conn
        .prepare_cached(
            "SELECT max(s.update_ts) FROM sessions s JOIN hosts h ON h.user_id = s.user_id \
             WHERE h.id = ?1",
        )?
        .query_row([host_id], |r| r.get(0))?)
}

/// Changes a user's type (addHost's `force` turns a normal user into a host).
pub fn set_usertype(conn: &Connection, user_id: i64, usertype: i64) -> Result<()> {
    conn.execute(
        "UPDATE users SET usertype = ?2 WHERE id = ?1",
        params![user_id, usertype],
    )?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Builds

const BUILDS_FROM: &str = "builds b JOIN packages pk ON pk.id = b.package_id \
     JOIN volumes v ON v.id = b.volume_id JOIN users u ON u.id = b.owner \
     LEFT JOIN content_generators cg ON cg.id = b.cg_id";

/// `getBuild` (and, less `id`/`cg_id`/`cg_name`, `listBuilds`).
pub const BUILDS: View = View {
    from: BUILDS_FROM,
    fields: &[
        ("build_id", "b.id"),
        ("cg_id", "b.cg_id"),
        ("completion_time_ts", "b.completion_ts"),
        ("creation_event_id", "b.create_event"),
        ("creation_time_ts", "b.creation_ts"),
        ("draft", "b.draft"),
        ("epoch", "b.epoch"),
        ("extra", "b.extra"),
        ("id", "b.id"),
        ("name", "pk.name"),
        ("nvr", "pk.name || '-' || b.version || '-' || b.release"),
        ("owner_id", "u.id"),
        ("owner_name", "u.name"),
        ("package_id", "pk.id"),
        ("package_name", "pk.name"),
        ("promoter_id", "NULL"),
        ("promoter_name", "NULL"),
        ("promotion_time_ts", "NULL"),
        ("release", "b.release"),
        ("source", "b.source"),
        ("start_time_ts", "b.start_ts"),
        ("state", "b.state"),
        ("task_id", "b.task_id"),
        ("version", "b.version"),
        ("volume_id", "v.id"),
        ("volume_name", "v.name"),
        ("cg_name", "cg.name"),
    ],
    hidden: &[],
    default_order: "b.id",
    key: None,
};

/// `listTagged`: tagged builds with the tag and the tagging event.
pub const TAGGED: View = View {
    from: "tag_listing tl JOIN tags t ON t.id = tl.tag_id JOIN builds b ON b.id = tl.build_id \
           JOIN packages pk ON pk.id = b.package_id JOIN volumes v ON v.id = b.volume_id \
           JOIN users u ON u.id = b.owner",
    fields: &[
        ("build_id", "b.id"),
        ("completion_time_ts", "b.completion_ts"),
        ("create_event", "tl.create_event"),
        ("creation_event_id", "b.create_event"),
        ("creation_time_ts", "b.creation_ts"),
        ("draft", "b.draft"),
        ("epoch", "b.epoch"),
        ("extra", "b.extra"),
        ("id", "b.id"),
        ("name", "pk.name"),
        ("nvr", "pk.name || '-' || b.version || '-' || b.release"),
        ("owner_id", "u.id"),
        ("owner_name", "u.name"),
        ("package_id", "pk.id"),
        ("package_name", "pk.name"),
        ("promoter_id", "NULL"),
        ("promoter_name", "NULL"),
        ("promotion_time_ts", "NULL"),
        ("release", "b.release"),
        ("start_time_ts", "b.start_ts"),
        ("state", "b.state"),
        ("tag_id", "t.id"),
        ("tag_name", "t.name"),
        ("task_id", "b.task_id"),
        ("version", "b.version"),
        ("volume_id", "v.id"),
        ("volume_name", "v.name"),
    ],
    hidden: &[],
    default_order: "tl.create_event DESC, b.id DESC",
    key: None,
};

/// Only builds of a build type: builds with archives of that btype, or with RPMs for `rpm`, or
/// given that type by a content-generator import (`build_types`).
/// Works on both [`BUILDS`] and [`TAGGED`] (both alias the build table `b`).
pub fn builds_of_btype(btype_id: i64, is_rpm: bool) -> Cond {
    if is_rpm {
        Cond::Raw(
            "(b.id IN (SELECT build_id FROM rpms WHERE build_id IS NOT NULL) \
             OR b.id IN (SELECT build_id FROM archives WHERE btype_id = ?1) \
             OR b.id IN (SELECT build_id FROM build_types WHERE btype_id = ?1))",
            vec![Sql::Integer(btype_id)],
        )
    } else {
        Cond::Raw(
            "(b.id IN (SELECT build_id FROM archives WHERE btype_id = ?1) \
             OR b.id IN (SELECT build_id FROM build_types WHERE btype_id = ?1))",
            vec![Sql::Integer(btype_id)],
        )
    }
}

/// Koji's `find_build_id` for an N-V-R.
pub fn find_build(
    conn: &Connection,
    name: &str,
    version: &str,
    release: &str,
) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached(
            "SELECT b.id FROM builds b JOIN packages pk ON pk.id = b.package_id \
             WHERE pk.name = ?1 AND b.version = ?2 AND b.release = ?3",
        )?
        .query_row([name, version, release], |r| r.get(0))
        .optional()?)
}

/// One build as a [`BUILDS`] record.
pub fn get_build(conn: &Connection, id: i64) -> Result<Option<Record>> {
    Ok(
        super::query::rows(conn, &BUILDS, &[Cond::Eq("id", Sql::Integer(id))])?
            .into_iter()
            .next(),
    )
}

/// The release of the newest non-draft building, complete or deleted build of `name-version`.
pub fn latest_release(conn: &Connection, name: &str, version: &str) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached(
            "SELECT b.release FROM builds b JOIN packages pk ON pk.id = b.package_id \
             WHERE pk.name = ?1 AND b.version = ?2 AND b.state IN (?3, ?4, ?5) AND NOT b.draft \
             ORDER BY b.id DESC LIMIT 1",
        )?
        .query_row(
            params![name, version, BUILD_COMPLETE, BUILD_DELETED, BUILD_BUILDING],
            |r| r.get(0),
        )
        .optional()?)
}

/// The build types a build has: the btypes of its archives, `rpm` if it has RPMs, and those a
/// content-generator import gave it (`build_types`).
pub fn build_btypes(conn: &Connection, build_id: i64) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT bt.name FROM btypes bt WHERE bt.id IN \
         (SELECT btype_id FROM archives WHERE build_id = ?1) \
         OR bt.id IN (SELECT btype_id FROM build_types WHERE build_id = ?1) \
         OR (bt.name = 'rpm' AND EXISTS (SELECT 1 FROM rpms WHERE build_id = ?1)) \
         ORDER BY bt.id",
    )?;
    let v = stmt
        .query_map([build_id], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(v)
}

/// Koji's `readTaggedBuilds` (current state only): complete builds tagged into `tag_id` (and,
/// with `inherit`, its ancestors), newest tagging first, skipping packages that are not listed
/// (or are blocked) in the tag. `latest` = N keeps the N newest builds per package (0 = all).
pub fn tagged_builds(
    conn: &Connection,
    tag_id: i64,
    inherit: bool,
    latest: i64,
    extra_conds: &[Cond],
) -> Result<Vec<Record>> {
    let mut taglist = vec![tag_id];
    if inherit {
        taglist.extend(
            full_inheritance(conn, tag_id, false)?
                .into_iter()
                .map(|n| n.link.parent_id),
        );
    }
    let packages: HashMap<i64, bool> = package_list(
        conn,
        &PkgListQuery {
            tag_id: Some(tag_id),
            inherit: true,
            with_blocked: true,
            ..PkgListQuery::default()
        },
    )?
    .iter()
    .map(|r| {
        (
            field_int(r, "package_id").unwrap_or(0),
            field_int(r, "blocked").unwrap_or(0) != 0,
        )
    })
    .collect();
    let mut seen: HashMap<i64, i64> = HashMap::new();
    let mut out = Vec::new();
    for t in taglist {
        let mut conds = vec![
            Cond::Eq("tag_id", Sql::Integer(t)),
            Cond::Eq("state", Sql::Integer(BUILD_COMPLETE)),
        ];
        conds.extend(extra_conds.iter().cloned());
        for rec in super::query::rows(conn, &TAGGED, &conds)? {
            let pkg = field_int(&rec, "package_id").unwrap_or(0);
            match packages.get(&pkg) {
                None | Some(true) => continue,
                Some(false) => {}
            }
            if latest > 0 {
                let n = seen.entry(pkg).or_insert(0);
                if *n >= latest {
                    continue;
                }
                *n += 1;
            }
            out.push(rec);
        }
    }
    Ok(out)
}

/// `listVolumes`.
pub const VOLUMES: View = View {
    from: "volumes vol",
    fields: &[("id", "vol.id"), ("name", "vol.name")],
    hidden: &[],
    default_order: "vol.id",
    key: None,
};

// ---------------------------------------------------------------------------------------------
// Archives and RPMs

/// `listArchives`; `arch` is only meaningful for image archives.
pub const ARCHIVES: View = View {
    from: "archives a JOIN archive_types at ON at.id = a.type_id \
           JOIN btypes bt ON bt.id = a.btype_id",
    fields: &[
        ("btype", "bt.name"),
        ("btype_id", "a.btype_id"),
        ("build_id", "a.build_id"),
        ("buildroot_id", "a.buildroot_id"),
        ("checksum", "a.checksum"),
        ("checksum_type", "a.checksum_type"),
        ("compression_type", "at.compression_type"),
        ("extra", "a.extra"),
        ("filename", "a.filename"),
        ("id", "a.id"),
        ("metadata_only", "a.metadata_only"),
        ("size", "a.size"),
        ("type_description", "at.description"),
        ("type_extensions", "at.extensions"),
        ("type_id", "a.type_id"),
        ("type_name", "at.name"),
        ("arch", "a.arch"),
    ],
    hidden: &[],
    default_order: "a.id",
    key: None,
};

/// Only the archives that are components of archive `image_id`.
pub fn archives_in_image(image_id: i64) -> Cond {
    Cond::Raw(
        "a.id IN (SELECT component_id FROM archive_components WHERE archive_id = ?1)",
        vec![Sql::Integer(image_id)],
    )
}

/// `listRPMs` / `getRPM` (external repo 0 is Koji's `INTERNAL`).
pub const RPMS: View = View {
    from: "rpms r",
    fields: &[
        ("arch", "r.arch"),
        ("build_id", "r.build_id"),
        ("buildroot_id", "r.buildroot_id"),
        ("buildtime", "r.buildtime"),
        ("draft", "r.draft"),
        ("epoch", "r.epoch"),
        ("external_repo_id", "r.external_repo_id"),
        (
            "external_repo_name",
            "CASE WHEN r.external_repo_id = 0 THEN 'INTERNAL' END",
        ),
        ("extra", "r.extra"),
        ("id", "r.id"),
        ("metadata_only", "r.metadata_only"),
        ("name", "r.name"),
        ("nvr", "r.name || '-' || r.version || '-' || r.release"),
        ("payloadhash", "r.payloadhash"),
        ("release", "r.release"),
        ("size", "r.size"),
        ("version", "r.version"),
    ],
    hidden: &[],
    default_order: "r.id",
    key: None,
};

/// Only the RPMs that are components of archive `image_id`.
pub fn rpms_in_image(image_id: i64) -> Cond {
    Cond::Raw(
        "r.id IN (SELECT rpm_id FROM archive_rpm_components WHERE archive_id = ?1)",
        vec![Sql::Integer(image_id)],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::store::query::rows;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        (dir, s)
    }

    fn tag(name: &str, arches: Option<&str>) -> TagConfig {
        TagConfig {
            name: name.into(),
            arches: arches.map(str::to_string),
            perm_id: None,
            locked: false,
            maven_support: false,
            maven_include_all: false,
            extra: serde_json::Map::new(),
        }
    }

    fn link(child: i64, parent: i64, priority: i64) -> InheritLink {
        InheritLink {
            tag_id: child,
            parent_id: parent,
            name: String::new(),
            priority,
            maxdepth: None,
            intransitive: false,
            noconfig: false,
            pkg_filter: String::new(),
        }
    }

    #[test]
    fn tags_and_inheritance() {
        let (_d, s) = store();
        s.write(|tx| -> Result<()> {
            let base = create_tag(tx, &tag("base", Some("x86_64")))?;
            let mid = create_tag(tx, &tag("mid", None))?;
            let top = create_tag(tx, &tag("top", None))?;
            assert!(matches!(
                create_tag(tx, &tag("top", None)),
                Err(StoreError::Conflict(_))
            ));
            add_inheritance(tx, &link(mid, base, 0))?;
            add_inheritance(tx, &link(top, mid, 0))?;
            // A loop back to the top is pruned.
            add_inheritance(tx, &link(base, top, 0))?;
            let full = full_inheritance(tx, top, false)?;
            let ids: Vec<(i64, i64)> = full
                .iter()
                .map(|n| (n.link.parent_id, n.currdepth))
                .collect();
            assert_eq!(ids, vec![(mid, 1), (base, 2)]);
            let rev = full_inheritance(tx, base, true)?;
            assert_eq!(rev[0].link.tag_id, mid);
            assert!(matches!(
                add_inheritance(tx, &link(top, base, 0)),
                Err(StoreError::Conflict(_))
            ));
            let rec = get_tag(tx, Ref::Name("base"))?.unwrap();
            assert_eq!(field_text(&rec, "arches"), Some("x86_64"));
            assert_eq!(field_text(&rec, "extra"), Some("{}"));
            let mut c = tag_config(tx, mid)?.unwrap();
            c.extra.insert("k".into(), serde_json::json!(1));
            c.name = "middle".into();
            update_tag(tx, mid, &c)?;
            assert_eq!(tag_extra(tx, mid)?.get("k"), Some(&serde_json::json!(1)));
            assert_eq!(
                lookup(tx, Named::Tag, Ref::Id(mid))?,
                Some((mid, "middle".to_string()))
            );
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn package_lists_follow_inheritance() {
        let (_d, s) = store();
        s.write(|tx| -> Result<()> {
            let owner = crate::store::users::create(tx, "owner", 0, 0, None, None)?;
            let parent = create_tag(tx, &tag("parent", None))?;
            let child = create_tag(tx, &tag("child", None))?;
            add_inheritance(tx, &link(child, parent, 0))?;
            let foo = create_package(tx, "foo")?;
            let bar = create_package(tx, "bar")?;
            pkglist_set(tx, parent, foo, owner, false, None)?;
            pkglist_set(tx, parent, bar, owner, false, Some("ppc64le"))?;
            pkglist_set(tx, child, bar, owner, true, None)?;
            let q = PkgListQuery {
                tag_id: Some(child),
                inherit: true,
                with_blocked: true,
                ..PkgListQuery::default()
            };
            let l = package_list(tx, &q)?;
            let names: Vec<(&str, i64)> = l
                .iter()
                .map(|r| {
                    (
                        field_text(r, "package_name").unwrap(),
                        field_int(r, "tag_id").unwrap(),
                    )
                })
                .collect();
            assert_eq!(names, vec![("bar", child), ("foo", parent)]);
            let dups = package_list(
                tx,
                &PkgListQuery {
                    with_dups: true,
                    ..q
                },
            )?;
            assert_eq!(dups.len(), 3);
            let own = package_list(
                tx,
                &PkgListQuery {
                    inherit: false,
                    with_blocked: false,
                    ..q
                },
            )?;
            assert!(own.is_empty());
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn hosts_channels_and_tagged_builds() {
        let (_d, s) = store();
        s.write(|tx| -> Result<()> {
            let user = crate::store::users::create(tx, "b1", 0, 1, None, None)?;
            let host = create_host(tx, user, "b1", "x86_64 aarch64")?;
            let hosts = rows(tx, &HOSTS, &[hosts_with_arches(&["aarch64".into()])])?;
            assert_eq!(hosts.len(), 1);
            assert!(rows(tx, &HOSTS, &[hosts_with_arches(&["x86".into()])])?.is_empty());
            let default = channel_id(tx, "default")?.unwrap();
            assert!(host_in_channel(tx, host, default)?);
            let chans = rows(tx, &CHANNELS, &[channels_of_host(host)])?;
            assert_eq!(chans.len(), 1);
            let mut c = host_config(tx, host)?.unwrap();
            assert_eq!(c.capacity, 2.0);
            c.enabled = false;
            update_host(tx, host, &c)?;
            assert!(!host_config(tx, host)?.unwrap().enabled);

            let t = create_tag(tx, &tag("f40", None))?;
            let pkg = create_package(tx, "foo")?;
            pkglist_set(tx, t, pkg, user, false, None)?;
            let ev = new_event(tx)?;
            for rel in ["1", "2"] {
                tx.execute(
                    "INSERT INTO builds (package_id, version, release, state, owner, \
                     create_event, creation_ts) VALUES (?1, '1.0', ?2, 1, ?3, ?4, 0)",
                    params![pkg, rel, user, ev],
                )?;
                let b = tx.last_insert_rowid();
                tx.execute(
                    "INSERT INTO tag_listing (tag_id, build_id, create_event) VALUES (?1, ?2, ?3)",
                    params![t, b, ev],
                )?;
            }
            assert_eq!(find_build(tx, "foo", "1.0", "2")?, Some(2));
            assert_eq!(latest_release(tx, "foo", "1.0")?.as_deref(), Some("2"));
            let all = tagged_builds(tx, t, false, 0, &[])?;
            assert_eq!(all.len(), 2);
            let latest = tagged_builds(tx, t, false, 1, &[])?;
            assert_eq!(field_text(&latest[0], "nvr"), Some("foo-1.0-2"));
            assert_eq!(latest.len(), 1);
            assert_eq!(build_btypes(tx, 1)?, Vec::<String>::new());
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn globs() {
        assert_eq!(glob_to_like("f4?_*"), "f4_\\_%");
        assert_eq!(prefix_to_like("a_b%"), "a\\_b\\%%");
        assert!(filter_allows("foo", "foobar"));
        assert!(!filter_allows("foo", "bar"));
        assert!(filter_allows("^b.*", "anything"));
    }
}
