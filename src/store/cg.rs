//! Content-generator imports: CG access, build reservations, build types, CG buildroots,
//! archives and their RPM components (Koji's `cg_users`, `build_reservations`, `build_types`,
//! `buildroot*`, `archiveinfo`, `archive_rpm_components`), plus the components Koji would drop
//! because they match no RPM the hub knows (`archive_unknown_rpms`).
//!
//! Plain rows in, ids out; the Koji rules (who may do what, which texts) live in
//! `hub::methods::cg`. Every statement here is served by an index (see migration 3).

use rusqlite::types::Value as Sql;
use rusqlite::{Connection, OptionalExtension, params};

use super::query::{Cond, View};
use super::{Result, new_event, now_ts};

/// Koji's `BUILD_STATES` the import uses besides those in `records`.
pub const BUILD_FAILED: i64 = 3;
pub const BUILD_CANCELED: i64 = 4;

/// Koji's `BR_TYPES['EXTERNAL']`: a buildroot a content generator describes.
pub const BR_TYPE_EXTERNAL: i64 = 1;

/// Koji's `CHECKSUM_TYPES`.
pub fn checksum_type_id(name: &str) -> Option<i64> {
    match name {
        "md5" => Some(0),
        "sha1" => Some(1),
        "sha256" => Some(2),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Content generators and access

/// Creates a content generator; returns its id.
pub fn create_cg(conn: &Connection, name: &str) -> Result<i64> {
    conn.execute("INSERT INTO content_generators (name) VALUES (?1)", [name])?;
    Ok(conn.last_insert_rowid())
}

/// Whether `user_id` may import as content generator `cg_id`.
pub fn has_access(conn: &Connection, cg_id: i64, user_id: i64) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM cg_users WHERE cg_id = ?1 AND user_id = ?2")?
        .exists([cg_id, user_id])?)
}

/// Grants access; `false` when the user already had it.
pub fn grant(conn: &Connection, cg_id: i64, user_id: i64, creator: Option<i64>) -> Result<bool> {
    if has_access(conn, cg_id, user_id)? {
        return Ok(false);
    }
    let ev = new_event(conn)?;
    conn.execute(
        "INSERT INTO cg_users (cg_id, user_id, create_event, creator_id) VALUES (?1, ?2, ?3, ?4)",
        params![cg_id, user_id, ev, creator],
    )?;
    Ok(true)
}

/// Revokes access (nothing happens when there was none).
pub fn revoke(conn: &Connection, cg_id: i64, user_id: i64) -> Result<()> {
    new_event(conn)?;
    conn.execute(
        "DELETE FROM cg_users WHERE cg_id = ?1 AND user_id = ?2",
        [cg_id, user_id],
    )?;
    Ok(())
}

/// `(cg id, cg name, user name)` of every grant, by content generator then user.
pub fn cg_users(conn: &Connection) -> Result<Vec<(i64, String, String)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT cg.id, cg.name, u.name FROM cg_users cu \
         JOIN content_generators cg ON cg.id = cu.cg_id JOIN users u ON u.id = cu.user_id \
         ORDER BY cg.id, u.id",
    )?;
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

// ---------------------------------------------------------------------------------------------
// Reservations

/// The reservation token of a build, if it is reserved.
pub fn reservation_token(conn: &Connection, build_id: i64) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT token FROM build_reservations WHERE build_id = ?1")?
        .query_row([build_id], |r| r.get(0))
        .optional()?)
}

pub fn reserve(conn: &Connection, build_id: i64, token: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO build_reservations (build_id, token, created_ts) VALUES (?1, ?2, ?3)",
        params![build_id, token, now_ts()],
    )?;
    Ok(())
}

pub fn clear_reservation(conn: &Connection, build_id: i64) -> Result<()> {
    conn.execute(
        "DELETE FROM build_reservations WHERE build_id = ?1",
        [build_id],
    )?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Builds

/// The columns Koji's `new_build` / `recycle_build` write.
#[derive(Debug, Clone)]
pub struct BuildRow {
    pub package_id: i64,
    pub version: String,
    pub release: String,
    pub epoch: Option<i64>,
    pub state: i64,
    pub task_id: Option<i64>,
    pub owner: i64,
    pub start_ts: Option<f64>,
    pub completion_ts: Option<f64>,
    pub source: Option<String>,
    /// JSON text.
    pub extra: Option<String>,
    pub cg_id: Option<i64>,
}

/// Inserts a new build (Koji's `new_build` without an existing N-V-R); returns its id.
pub fn insert_build(conn: &Connection, b: &BuildRow) -> Result<i64> {
    let ev = new_event(conn)?;
    conn.prepare_cached(
        "INSERT INTO builds (package_id, version, release, epoch, state, task_id, owner, \
         create_event, creation_ts, start_ts, completion_ts, source, extra, cg_id) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )?
    .execute(params![
        b.package_id,
        b.version,
        b.release,
        b.epoch,
        b.state,
        b.task_id,
        b.owner,
        ev,
        now_ts(),
        b.start_ts,
        b.completion_ts,
        b.source,
        b.extra,
        b.cg_id
    ])?;
    Ok(conn.last_insert_rowid())
}

/// What stops a FAILED or CANCELED build from being recycled (Koji's `recycle_build` checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecycleBlock {
    TagHistory,
    Rpms,
    Archives,
}

pub fn recycle_block(conn: &Connection, build_id: i64) -> Result<Option<RecycleBlock>> {
    let has = |sql: &str| -> Result<bool> { Ok(conn.prepare_cached(sql)?.exists([build_id])?) };
    Ok(if has("SELECT 1 FROM tag_listing WHERE build_id = ?1")? {
        Some(RecycleBlock::TagHistory)
    } else if has("SELECT 1 FROM rpms WHERE build_id = ?1")? {
        Some(RecycleBlock::Rpms)
    } else if has("SELECT 1 FROM archives WHERE build_id = ?1")? {
        Some(RecycleBlock::Archives)
    } else {
        None
    })
}

/// Koji's `recycle_build` update: the old build takes the new data and a new creation event;
/// its old build types go.
pub fn recycle_build(conn: &Connection, build_id: i64, b: &BuildRow) -> Result<()> {
    let ev = new_event(conn)?;
    conn.execute("DELETE FROM build_types WHERE build_id = ?1", [build_id])?;
    conn.execute(
        "UPDATE builds SET state = ?2, task_id = ?3, owner = ?4, start_ts = ?5, \
         completion_ts = ?6, epoch = ?7, source = ?8, extra = ?9, volume_id = 0, \
         cg_id = coalesce(?10, cg_id), create_event = ?11, creation_ts = ?12 WHERE id = ?1",
        params![
            build_id,
            b.state,
            b.task_id,
            b.owner,
            b.start_ts,
            b.completion_ts,
            b.epoch,
            b.source,
            b.extra,
            b.cg_id,
            ev,
            now_ts()
        ],
    )?;
    Ok(())
}

/// Ends a reserved build as refunded (FAILED or CANCELED), completion time now.
pub fn set_build_state(conn: &Connection, build_id: i64, state: i64) -> Result<()> {
    conn.execute(
        "UPDATE builds SET state = ?2, completion_ts = ?3 WHERE id = ?1",
        params![build_id, state, now_ts()],
    )?;
    Ok(())
}

/// Koji's `CG_Importer.update_build`: a reserved build becomes COMPLETE (completion time now).
pub fn complete_reserved(
    conn: &Connection,
    build_id: i64,
    extra: Option<&str>,
    owner: i64,
    source: Option<&str>,
    task_id: Option<i64>,
) -> Result<()> {
    conn.execute(
        "UPDATE builds SET state = 1, extra = ?2, owner = ?3, source = ?4, task_id = ?5, \
         completion_ts = ?6 WHERE id = ?1",
        params![build_id, extra, owner, source, task_id, now_ts()],
    )?;
    Ok(())
}

/// Gives a build a type (Koji's `new_typed_build` / `new_image_build`); idempotent.
pub fn add_build_type(conn: &Connection, build_id: i64, btype_id: i64) -> Result<()> {
    conn.execute(
        "INSERT OR IGNORE INTO build_types (build_id, btype_id) VALUES (?1, ?2)",
        [build_id, btype_id],
    )?;
    Ok(())
}

pub fn task_exists(conn: &Connection, task_id: i64) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM tasks WHERE id = ?1")?
        .exists([task_id])?)
}

// ---------------------------------------------------------------------------------------------
// Build types and archive types

/// `listBTypes`.
pub const BTYPES: View = View {
    from: "btypes bt",
    fields: &[("id", "bt.id"), ("name", "bt.name")],
    hidden: &[],
    default_order: "bt.id",
    key: None,
};

pub fn create_btype(conn: &Connection, name: &str) -> Result<i64> {
    conn.execute("INSERT INTO btypes (name) VALUES (?1)", [name])?;
    Ok(conn.last_insert_rowid())
}

/// Koji's `get_archive_type(filename=...)`: the type whose extension list holds the longest
/// suffix of the lower-cased file name (`tar.gz` before `gz`). `(id, name)`. The table is a
/// handful of rows, read whole.
pub fn archive_type_for(conn: &Connection, filename: &str) -> Result<Option<(i64, String)>> {
    let mut stmt = conn.prepare_cached("SELECT id, name, extensions FROM archive_types")?;
    let types = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let lower = filename.to_lowercase();
    let parts: Vec<&str> = lower.split('.').collect();
    for start in 0..parts.len() {
        let ext = parts[start..].join(".");
        let found: Vec<&(i64, String, String)> = types
            .iter()
            .filter(|(_, _, exts)| exts.split_whitespace().any(|e| e.to_lowercase() == ext))
            .collect();
        if let Some((id, name, _)) = found.first() {
            return Ok(Some((*id, name.clone())));
        }
    }
    Ok(None)
}

// ---------------------------------------------------------------------------------------------
// Buildroots

/// One content-generator buildroot (Koji's `BuildRoot.cg_new`).
#[derive(Debug, Clone)]
pub struct BuildrootRow {
    pub cg_id: i64,
    pub cg_version: Option<String>,
    pub container_type: Option<String>,
    pub container_arch: Option<String>,
    pub host_os: Option<String>,
    pub host_arch: Option<String>,
    /// JSON text.
    pub extra: Option<String>,
}

pub fn insert_buildroot(conn: &Connection, br: &BuildrootRow) -> Result<i64> {
    conn.execute(
        "INSERT INTO buildroots (br_type, cg_id, cg_version, container_type, container_arch, \
         host_os, host_arch, extra) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            BR_TYPE_EXTERNAL,
            br.cg_id,
            br.cg_version,
            br.container_type,
            br.container_arch,
            br.host_os,
            br.host_arch,
            br.extra
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// `buildroot_tools_info`; a repeated tool name keeps the last version.
pub fn add_buildroot_tool(conn: &Connection, br: i64, tool: &str, version: &str) -> Result<()> {
    conn.execute(
        "INSERT OR REPLACE INTO buildroot_tools (buildroot_id, tool, version) VALUES (?1, ?2, ?3)",
        params![br, tool, version],
    )?;
    Ok(())
}

/// `(tool, version)` pairs of a buildroot.
pub fn buildroot_tools(conn: &Connection, br: i64) -> Result<Vec<(String, String)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT tool, version FROM buildroot_tools WHERE buildroot_id = ?1 ORDER BY tool",
    )?;
    let v = stmt
        .query_map([br], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(v)
}

pub fn add_buildroot_rpm(conn: &Connection, br: i64, rpm_id: i64) -> Result<()> {
    conn.execute(
        "INSERT OR IGNORE INTO buildroot_listing (buildroot_id, rpm_id) VALUES (?1, ?2)",
        [br, rpm_id],
    )?;
    Ok(())
}

pub fn add_buildroot_archive(conn: &Connection, br: i64, archive_id: i64) -> Result<()> {
    conn.execute(
        "INSERT OR IGNORE INTO buildroot_archives (buildroot_id, archive_id) VALUES (?1, ?2)",
        [br, archive_id],
    )?;
    Ok(())
}

/// `listBuildroots` / `getBuildroot` (Koji's `query_buildroots` fields; this hub has only
/// content-generator buildroots, so the standard-buildroot fields are empty).
pub const BUILDROOTS: View = View {
    from: "buildroots br LEFT JOIN content_generators cg ON cg.id = br.cg_id",
    fields: &[
        ("arch", "br.container_arch"),
        ("br_type", "br.br_type"),
        ("cg_id", "br.cg_id"),
        ("cg_name", "cg.name"),
        ("cg_version", "br.cg_version"),
        ("container_arch", "br.container_arch"),
        ("container_type", "br.container_type"),
        ("create_event_id", "NULL"),
        ("create_event_time", "NULL"),
        ("create_ts", "NULL"),
        ("extra", "br.extra"),
        ("host_arch", "br.host_arch"),
        ("host_id", "NULL"),
        ("host_name", "NULL"),
        ("host_os", "br.host_os"),
        ("id", "br.id"),
        ("repo_create_event_id", "NULL"),
        ("repo_create_event_time", "NULL"),
        ("repo_id", "NULL"),
        ("repo_state", "NULL"),
        ("retire_event_id", "NULL"),
        ("retire_event_time", "NULL"),
        ("retire_ts", "NULL"),
        ("state", "NULL"),
        ("tag_id", "NULL"),
        ("tag_name", "NULL"),
        ("task_id", "NULL"),
    ],
    hidden: &[],
    default_order: "br.id",
    key: None,
};

/// Only buildroots that used RPM `rpm_id`.
pub fn buildroots_with_rpm(rpm_id: i64) -> Cond {
    Cond::Raw(
        "br.id IN (SELECT buildroot_id FROM buildroot_listing WHERE rpm_id = ?1)",
        vec![Sql::Integer(rpm_id)],
    )
}

/// Only buildroots that used archive `archive_id`.
pub fn buildroots_with_archive(archive_id: i64) -> Cond {
    Cond::Raw(
        "br.id IN (SELECT buildroot_id FROM buildroot_archives WHERE archive_id = ?1)",
        vec![Sql::Integer(archive_id)],
    )
}

// ---------------------------------------------------------------------------------------------
// Archives and components

/// One `archiveinfo` row (plus `image_archives.arch`, kept in `archives.arch`).
#[derive(Debug, Clone)]
pub struct ArchiveRow {
    pub type_id: i64,
    pub btype_id: i64,
    pub build_id: i64,
    pub buildroot_id: Option<i64>,
    pub filename: String,
    pub size: i64,
    pub checksum: String,
    pub checksum_type: i64,
    pub metadata_only: bool,
    /// JSON text.
    pub extra: Option<String>,
    pub arch: Option<String>,
}

pub fn insert_archive(conn: &Connection, a: &ArchiveRow) -> Result<i64> {
    conn.execute(
        "INSERT INTO archives (type_id, btype_id, build_id, buildroot_id, filename, size, \
         checksum, checksum_type, metadata_only, extra, arch) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            a.type_id,
            a.btype_id,
            a.build_id,
            a.buildroot_id,
            a.filename,
            a.size,
            a.checksum,
            a.checksum_type,
            a.metadata_only,
            a.extra,
            a.arch
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// `archive_rpm_components`: a known RPM is part of an archive.
pub fn add_archive_rpm(conn: &Connection, archive_id: i64, rpm_id: i64) -> Result<()> {
    conn.execute(
        "INSERT OR IGNORE INTO archive_rpm_components (archive_id, rpm_id) VALUES (?1, ?2)",
        [archive_id, rpm_id],
    )?;
    Ok(())
}

/// `archive_components`: a known archive is part of an archive.
pub fn add_archive_component(conn: &Connection, archive_id: i64, component_id: i64) -> Result<()> {
    conn.execute(
        "INSERT OR IGNORE INTO archive_components (archive_id, component_id) VALUES (?1, ?2)",
        [archive_id, component_id],
    )?;
    Ok(())
}

/// An RPM component no known RPM matches, kept with its archive.
#[derive(Debug, Clone, PartialEq)]
pub struct UnknownRpm {
    pub name: String,
    pub version: String,
    pub release: String,
    pub epoch: Option<i64>,
    pub arch: Option<String>,
    pub sigmd5: Option<String>,
    pub size: Option<i64>,
    pub buildtime: Option<i64>,
    /// JSON text: the component's other fields (signature, module, ...).
    pub extra: Option<String>,
}

/// Stores an unknown component; returns its row id (listed as RPM id `-row id`).
pub fn add_unknown_rpm(conn: &Connection, archive_id: i64, r: &UnknownRpm) -> Result<i64> {
    conn.execute(
        "INSERT INTO archive_unknown_rpms (archive_id, name, version, release, epoch, arch, \
         sigmd5, size, buildtime, extra) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            archive_id,
            r.name,
            r.version,
            r.release,
            r.epoch,
            r.arch,
            r.sigmd5,
            r.size,
            r.buildtime,
            r.extra
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// A known RPM by N-V-R.A (the internal one; this hub has no external repos):
/// `(id, payloadhash, draft)`. Served by the `rpms` UNIQUE index.
pub fn find_rpm(
    conn: &Connection,
    name: &str,
    version: &str,
    release: &str,
    arch: &str,
) -> Result<Option<(i64, String, bool)>> {
    Ok(conn
        .prepare_cached(
            "SELECT id, payloadhash, draft FROM rpms WHERE name = ?1 AND version = ?2 \
             AND release = ?3 AND arch = ?4 AND external_repo_id = 0",
        )?
        .query_row([name, version, release, arch], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? != 0))
        })
        .optional()?)
}

/// Archives by file name and size (Koji's `match_file` lookup): `(id, checksum,
/// checksum_type)`.
pub fn archives_named(
    conn: &Connection,
    filename: &str,
    size: i64,
) -> Result<Vec<(i64, String, i64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, checksum, checksum_type FROM archives WHERE filename = ?1 AND size = ?2 \
         ORDER BY id",
    )?;
    let v = stmt
        .query_map(params![filename, size], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(v)
}

/// The fields of an archive a `kojifile` component is checked against.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchiveCore {
    pub build_id: i64,
    pub filename: String,
    pub size: i64,
    pub checksum: String,
    pub checksum_type: i64,
}

pub fn archive_core(conn: &Connection, id: i64) -> Result<Option<ArchiveCore>> {
    Ok(conn
        .prepare_cached(
            "SELECT build_id, filename, size, checksum, checksum_type FROM archives WHERE id = ?1",
        )?
        .query_row([id], |r| {
            Ok(ArchiveCore {
                build_id: r.get(0)?,
                filename: r.get(1)?,
                size: r.get(2)?,
                checksum: r.get(3)?,
                checksum_type: r.get(4)?,
            })
        })
        .optional()?)
}

/// `listRPMs(imageID=...)`: the known RPMs linked to an archive and the unknown components kept
/// with it (id `-row id`, no build, payloadhash = their sigmd5), in the aliases of
/// `records::RPMS` plus the hidden `image_id`. Known RPMs come first, then the unknown ones in
/// metadata order. The `image_id` condition is pushed into both branches of the union, where the
/// primary key of `archive_rpm_components` and the `archive_unknown_rpms_archive` index serve it.
pub const IMAGE_RPMS: View = View {
    from: "(SELECT c.archive_id AS image_id, r.id AS id, r.name AS name, r.version AS version, \
           r.release AS release, r.epoch AS epoch, r.arch AS arch, r.draft AS draft, \
           r.payloadhash AS payloadhash, r.size AS size, r.buildtime AS buildtime, \
           r.build_id AS build_id, r.buildroot_id AS buildroot_id, \
           r.external_repo_id AS external_repo_id, \
           CASE WHEN r.external_repo_id = 0 THEN 'INTERNAL' END AS external_repo_name, \
           r.metadata_only AS metadata_only, r.extra AS extra \
           FROM archive_rpm_components c JOIN rpms r ON r.id = c.rpm_id \
           UNION ALL \
           SELECT u.archive_id, -u.id, u.name, u.version, u.release, u.epoch, u.arch, 0, \
           u.sigmd5, u.size, u.buildtime, NULL, NULL, NULL, NULL, 0, u.extra \
           FROM archive_unknown_rpms u) r",
    fields: &[
        ("arch", "r.arch"),
        ("build_id", "r.build_id"),
        ("buildroot_id", "r.buildroot_id"),
        ("buildtime", "r.buildtime"),
        ("draft", "r.draft"),
        ("epoch", "r.epoch"),
        ("external_repo_id", "r.external_repo_id"),
        ("external_repo_name", "r.external_repo_name"),
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
    hidden: &[("image_id", "r.image_id")],
    default_order: "r.id < 0, abs(r.id)",
    key: None,
};

/// `listRPMs(componentBuildrootID=...)`: RPMs used in a buildroot, with Koji's two extra fields.
pub const BUILDROOT_RPMS: View = View {
    from: "buildroot_listing bl JOIN rpms r ON r.id = bl.rpm_id",
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
        ("component_buildroot_id", "bl.buildroot_id"),
        ("is_update", "bl.is_update"),
    ],
    hidden: &[],
    default_order: "r.id",
    key: None,
};

/// `listArchives(componentBuildrootID=...)`: archives used in a buildroot, with Koji's two
/// extra fields.
pub const BUILDROOT_ARCHIVES: View = View {
    from: "buildroot_archives ba JOIN archives a ON a.id = ba.archive_id \
           JOIN archive_types at ON at.id = a.type_id JOIN btypes bt ON bt.id = a.btype_id",
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
        ("component_buildroot_id", "ba.buildroot_id"),
        ("project_dep", "ba.project_dep"),
    ],
    hidden: &[],
    default_order: "a.id",
    key: None,
};

// ---------------------------------------------------------------------------------------------
// Tagging

/// Whether a build is tagged into a tag.
pub fn is_tagged(conn: &Connection, tag_id: i64, build_id: i64) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM tag_listing WHERE tag_id = ?1 AND build_id = ?2")?
        .exists([tag_id, build_id])?)
}

/// Tags a build (replacing an existing tagging, which Koji does as revoke + create).
pub fn tag(conn: &Connection, tag_id: i64, build_id: i64, user_id: i64) -> Result<()> {
    let ev = new_event(conn)?;
    conn.execute(
        "INSERT OR REPLACE INTO tag_listing (tag_id, build_id, create_event, owner) \
         VALUES (?1, ?2, ?3, ?4)",
        params![tag_id, build_id, ev, user_id],
    )?;
    Ok(())
}

/// Untags a build; returns whether it was tagged.
pub fn untag(conn: &Connection, tag_id: i64, build_id: i64) -> Result<bool> {
    new_event(conn)?;
    Ok(conn.execute(
        "DELETE FROM tag_listing WHERE tag_id = ?1 AND build_id = ?2",
        [tag_id, build_id],
    )? > 0)
}

/// Marks a task created and ended by the hub itself (no host ran it): start now, then
/// `tasks::finish`.
pub fn mark_started(conn: &Connection, task_id: i64) -> Result<()> {
    conn.execute(
        "UPDATE tasks SET start_ts = ?2 WHERE id = ?1",
        params![task_id, now_ts()],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::store::query::rows;
    use crate::store::records::{self, field_int, field_text};

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        (dir, s)
    }

    #[test]
    fn archive_types_match_the_longest_extension() {
        let (_d, s) = store();
        s.read(|c| -> Result<()> {
            let t = archive_type_for(c, "docker-image-sha256:ab.x86_64.tar.gz")?;
            assert_eq!(t.map(|t| t.1).as_deref(), Some("tar"));
            let t = archive_type_for(c, "ICM-x86_64.JSON")?;
            assert_eq!(t.map(|t| t.1).as_deref(), Some("json"));
            assert_eq!(
                archive_type_for(c, "x.log")?.map(|t| t.1).as_deref(),
                Some("log")
            );
            assert!(archive_type_for(c, "image.qcow2")?.is_none());
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn access_reservations_and_image_rpms() {
        let (_d, s) = store();
        s.write(|tx| -> Result<()> {
            let user = crate::store::users::create(tx, "osbs", 0, 0, None, None)?;
            let cg = create_cg(tx, "atomic-reactor")?;
            assert!(!has_access(tx, cg, user)?);
            assert!(grant(tx, cg, user, None)?);
            assert!(!grant(tx, cg, user, None)?);
            assert!(has_access(tx, cg, user)?);
            assert_eq!(
                cg_users(tx)?,
                vec![(cg, "atomic-reactor".to_string(), "osbs".to_string())]
            );
            let pkg = records::create_package(tx, "foo")?;
            let b = BuildRow {
                package_id: pkg,
                version: "1".into(),
                release: "1".into(),
                epoch: None,
                state: records::BUILD_BUILDING,
                task_id: None,
                owner: user,
                start_ts: Some(1.0),
                completion_ts: None,
                source: None,
                extra: None,
                cg_id: Some(cg),
            };
            let id = insert_build(tx, &b)?;
            reserve(tx, id, "t0k")?;
            assert_eq!(reservation_token(tx, id)?.as_deref(), Some("t0k"));
            clear_reservation(tx, id)?;
            assert!(reservation_token(tx, id)?.is_none());
            assert_eq!(recycle_block(tx, id)?, None);
            let image = insert_archive(
                tx,
                &ArchiveRow {
                    type_id: 1,
                    btype_id: 4,
                    build_id: id,
                    buildroot_id: None,
                    filename: "docker-image-x.x86_64.tar.gz".into(),
                    size: 3,
                    checksum: "abc".into(),
                    checksum_type: 0,
                    metadata_only: false,
                    extra: None,
                    arch: Some("x86_64".into()),
                },
            )?;
            assert_eq!(recycle_block(tx, id)?, Some(RecycleBlock::Archives));
            tx.execute(
                "INSERT INTO rpms (name, version, release, arch, payloadhash, size, buildtime) \
                 VALUES ('bash', '5', '1', 'x86_64', 'aa', 1, 2)",
                [],
            )?;
            let known = tx.last_insert_rowid();
            assert_eq!(
                find_rpm(tx, "bash", "5", "1", "x86_64")?,
                Some((known, "aa".to_string(), false))
            );
            add_archive_rpm(tx, image, known)?;
            for n in ["zlib", "acl"] {
                add_unknown_rpm(
                    tx,
                    image,
                    &UnknownRpm {
                        name: n.into(),
                        version: "1".into(),
                        release: "2".into(),
                        epoch: None,
                        arch: Some("x86_64".into()),
                        sigmd5: Some("00".into()),
                        size: None,
                        buildtime: None,
                        extra: Some("{\"signature\":null}".into()),
                    },
                )?;
            }
            let recs = rows(
                tx,
                &IMAGE_RPMS,
                &[Cond::Eq("image_id", Sql::Integer(image))],
            )?;
            let names: Vec<(&str, i64)> = recs
                .iter()
                .map(|r| (field_text(r, "name").unwrap(), field_int(r, "id").unwrap()))
                .collect();
            assert_eq!(names, vec![("bash", known), ("zlib", -1), ("acl", -2)]);
            assert_eq!(field_text(&recs[1], "payloadhash"), Some("00"));
            assert!(rows(tx, &IMAGE_RPMS, &[Cond::Eq("image_id", Sql::Integer(99))])?.is_empty());
            Ok(())
        })
        .unwrap();
    }

    /// The union view must not scan: both branches are searched through their indexes.
    #[test]
    fn image_rpms_query_uses_indexes() {
        let (_d, s) = store();
        s.read(|c| -> Result<()> {
            let sql = format!(
                "EXPLAIN QUERY PLAN SELECT r.id FROM {} WHERE r.image_id = ?1",
                IMAGE_RPMS.from
            );
            let mut stmt = c.prepare(&sql)?;
            let plan: Vec<String> = stmt
                .query_map([1], |r| r.get::<_, String>(3))?
                .collect::<rusqlite::Result<_>>()?;
            let text = plan.join("\n");
            assert!(
                !text.contains("SCAN c") && !text.contains("SCAN u"),
                "{text}"
            );
            assert!(text.contains("archive_unknown_rpms_archive"), "{text}");
            Ok(())
        })
        .unwrap();
    }
}
