//! Content generators: Koji's `CGInitBuild`, `CGImport` and `CGRefundBuild`, CG access
//! (`grantCGAccess`, `revokeCGAccess`, `listCGs`), the buildroots an import records
//! (`getBuildroot`, and `listBuildroots` for `records`), build types (`listBTypes`, `addBType`)
//! and `tagBuild`, which puts an imported build into its destination tag.
//!
//! The rules and fault texts are Koji 1.36's (`kojihub.py`: `cg_init_build`, `cg_refund_build`,
//! `CG_Importer`, `new_build`/`recycle_build`, `import_archive_internal`, `tagBuild`,
//! `_tag_build`). Where this hub differs, on purpose (see `plugin-spec/cg-import.md`):
//! - RPM components of an archive that match no RPM the hub knows are kept with the archive
//!   (`listRPMs(imageID=)` lists them with negative ids) instead of being dropped;
//! - the import log `data/logs/cg_import.log` is always written and also says what matched;
//! - names, versions, releases, file names and directories from metadata must be plain path
//!   segments (no `/` in N-V-R, no `..` anywhere, nothing absolute);
//! - `rpm` outputs, Maven/Windows build types and draft builds are refused;
//! - `tagBuild` tags at once: its `tagBuild` task is created already CLOSED (or FAILED with the
//!   reason), where Koji has a builder run it.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use rusqlite::types::Value as Sql;
use serde_json::Value as J;

use crate::hub::convert;
use crate::hub::methods::users::lookup_user;
use crate::hub::upload::Adler32;
use crate::hub::{Ctx, Method, json_to_value, value_to_json};
use crate::params;
use crate::store::cg as store;
use crate::store::query::{self, Cond};
use crate::store::records::{self as rec, Named, Ref};
use crate::store::tasks;
use crate::store::users::UserRow;
use crate::xmlrpc::sig::{opt, req};
use crate::xmlrpc::value::{py_repr, py_str};
use crate::xmlrpc::wire::{self, python_float};
use crate::xmlrpc::{Args, Fault, FaultCode, Struct, Value};

use super::{KojiQueryOpts, query_opts, shape};

pub fn methods() -> Vec<Method> {
    vec![
        Method::write(
            "CGInitBuild",
            params![req("cg"), req("data")],
            "Reserve a build for a content generator: data {name, version, release[, epoch, source, extra]}; creates a BUILDING build owned by the caller and returns {build_id, token}.",
            cg_init_build,
        ),
        Method::write(
            "CGRefundBuild",
            params![req("cg"), req("build_id"), req("token"), opt("state", "3")],
            "Give up a reservation: the BUILDING build becomes FAILED (3) or CANCELED (4) and its N-V-R can be used again.",
            cg_refund_build,
        ),
        Method::write(
            "CGImport",
            params![req("metadata"), req("directory"), opt("token", "None")],
            "Import a content-generator build: metadata (dict, JSON text, or an uploaded .json file name, default metadata.json) describing outputs uploaded to work/<directory>; returns the build.",
            cg_import,
        ),
        Method::write(
            "grantCGAccess",
            params![req("user"), req("cg"), opt("create", "False")],
            "Allow a user to import as a content generator (admin); create=True creates the content generator.",
            grant_cg_access,
        ),
        Method::write(
            "revokeCGAccess",
            params![req("user"), req("cg")],
            "Take a user's content-generator access away (admin).",
            revoke_cg_access,
        ),
        Method::read(
            "listCGs",
            &[],
            "List content generators that have users: {name: {id, users: [user names]}}.",
            list_cgs,
        ),
        Method::read(
            "getBuildroot",
            params![req("buildrootID"), opt("strict", "False")],
            "Get a buildroot by id (content-generator buildroots: cg_name, cg_version, container_type/arch, host_os/arch, extra).",
            get_buildroot,
        ),
        Method::read(
            "listBTypes",
            params![opt("query", "None"), opt("queryOpts", "None")],
            "List build types, or the one named by query {name} or {id}.",
            list_btypes,
        ),
        Method::write(
            "addBType",
            params![req("name")],
            "Add a build type (admin).",
            add_btype,
        ),
        Method::write(
            "tagBuild",
            params![
                req("tag"),
                req("build"),
                opt("force", "False"),
                opt("fromtag", "None")
            ],
            "Tag a complete build (fromtag: move it); returns the id of a tagBuild task, which this hub runs at once (CLOSED, or FAILED with the reason).",
            tag_build,
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// Python-shaped errors and JSON helpers

/// A non-Koji exception as Koji's hub reports it (fault 1, `<class 'X'>: text`).
fn py_exc(class: &str, msg: impl std::fmt::Display) -> Fault {
    Fault::raw(
        FaultCode::Unknown as i32,
        format!("<class '{class}'>: {msg}"),
    )
}

fn key_error(key: &str) -> Fault {
    py_exc("KeyError", py_str(key))
}

fn no_such_file(path: &Path) -> Fault {
    py_exc(
        "FileNotFoundError",
        format!(
            "[Errno 2] No such file or directory: {}",
            py_str(&path.display().to_string())
        ),
    )
}

/// Python's `str()` of an XML-RPC value.
fn pystr(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => py_repr(other),
    }
}

fn arg<'a>(a: &'a Args, name: &str) -> &'a Value {
    a.get(name).unwrap_or(&Value::Nil)
}

/// Python's type name of a JSON value.
fn jtype(j: &J) -> &'static str {
    match j {
        J::Null => "NoneType",
        J::Bool(_) => "bool",
        J::Number(n) if n.is_f64() => "float",
        J::Number(_) => "int",
        J::String(_) => "str",
        J::Array(_) => "list",
        J::Object(_) => "dict",
    }
}

/// Python's `repr()` of a JSON value (as the parsed metadata would print).
fn jrepr(j: &J) -> String {
    py_repr(&json_to_value(j))
}

/// Python's `str()` of a JSON value.
fn jstr(j: &J) -> String {
    match j {
        J::String(s) => s.clone(),
        other => jrepr(other),
    }
}

/// Python truthiness of a JSON value.
fn py_truthy(j: &J) -> bool {
    match j {
        J::Null => false,
        J::Bool(b) => *b,
        J::Number(n) => n.as_f64() != Some(0.0),
        J::String(s) => !s.is_empty(),
        J::Array(a) => !a.is_empty(),
        J::Object(m) => !m.is_empty(),
    }
}

/// `obj[key]` with Python's errors.
fn get<'j>(obj: &'j J, key: &str) -> Result<&'j J, Fault> {
    match obj {
        J::Object(m) => m.get(key).ok_or_else(|| key_error(key)),
        J::Array(_) => Err(py_exc(
            "TypeError",
            "list indices must be integers or slices, not str",
        )),
        J::String(_) => Err(py_exc("TypeError", "string indices must be integers")),
        other => Err(py_exc(
            "TypeError",
            format!("'{}' object is not subscriptable", jtype(other)),
        )),
    }
}

/// `obj.get(key)`: `None` when absent or null.
fn get_opt<'j>(obj: &'j J, key: &str) -> Result<Option<&'j J>, Fault> {
    match obj {
        J::Object(m) => Ok(m.get(key).filter(|v| !v.is_null())),
        other => Err(py_exc(
            "AttributeError",
            format!("'{}' object has no attribute 'get'", jtype(other)),
        )),
    }
}

/// Iterating a list (a dict or string would not make sense in the metadata either).
fn items(j: &J) -> Result<&[J], Fault> {
    match j {
        J::Array(a) => Ok(a),
        other => Err(py_exc(
            "TypeError",
            format!("'{}' object is not iterable", jtype(other)),
        )),
    }
}

/// A string field; anything else is refused as Koji's `check_NVR` would trip over it.
fn text<'j>(j: &'j J, what: &str) -> Result<&'j str, Fault> {
    match j {
        J::String(s) => Ok(s),
        other => Err(Fault::generic(format!(
            "Invalid value for {what}: {}",
            jrepr(other)
        ))),
    }
}

/// Koji's `convert_value(v, cast=int)`.
fn to_int(j: &J) -> Result<i64, Fault> {
    let bad = || {
        Fault::parameter(format!(
            "Invalid type for value '{}': <class '{}'>, expected type <class 'int'>",
            jstr(j),
            jtype(j)
        ))
    };
    match j {
        J::Null => Err(Fault::parameter(
            "Invalid type, expected type <class 'int'>",
        )),
        J::Bool(b) => Ok(i64::from(*b)),
        J::Number(n) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite())
                    .map(|f| f.trunc() as i64)
            })
            .ok_or_else(bad),
        J::String(s) => s.trim().parse().map_err(|_| bad()),
        _ => Err(bad()),
    }
}

/// Python's `float(v)`.
fn to_float(j: &J) -> Result<f64, Fault> {
    match j {
        J::Number(n) => n
            .as_f64()
            .ok_or_else(|| py_exc("OverflowError", "int too large to convert to float")),
        J::Bool(b) => Ok(f64::from(u8::from(*b))),
        J::String(s) => s.trim().parse::<f64>().map_err(|_| {
            py_exc(
                "ValueError",
                format!("could not convert string to float: {}", py_str(s)),
            )
        }),
        other => Err(py_exc(
            "TypeError",
            format!(
                "float() argument must be a string or a real number, not '{}'",
                jtype(other)
            ),
        )),
    }
}

/// Python's `json.dumps(value, indent=...)` (ensure_ascii, Python's separators), for the raw
/// metadata written next to the build and for texts that quote JSON.
fn py_json(j: &J, indent: Option<usize>) -> String {
    let mut out = String::new();
    py_json_into(j, indent, 0, &mut out);
    out
}

fn py_json_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c.is_ascii() && (c as u32) >= 0x20 => out.push(c),
            c => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
}

fn py_json_into(j: &J, indent: Option<usize>, level: usize, out: &mut String) {
    let newline = |out: &mut String, level: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * level));
        }
    };
    let item_sep = if indent.is_some() { "," } else { ", " };
    match j {
        J::Null => out.push_str("null"),
        J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        J::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => out.push_str(&i.to_string()),
            (None, Some(u)) => out.push_str(&u.to_string()),
            _ => out.push_str(&python_float(n.as_f64().unwrap_or(0.0))),
        },
        J::String(s) => py_json_str(s, out),
        J::Array(a) if a.is_empty() => out.push_str("[]"),
        J::Array(a) => {
            out.push('[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, level + 1);
                py_json_into(v, indent, level + 1, out);
            }
            newline(out, level);
            out.push(']');
        }
        J::Object(m) if m.is_empty() => out.push_str("{}"),
        J::Object(m) => {
            out.push('{');
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, level + 1);
                py_json_str(k, out);
                out.push_str(": ");
                py_json_into(v, indent, level + 1, out);
            }
            newline(out, level);
            out.push('}');
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Paths

/// Koji's `joinpath` check of one caller-given path segment, made strict: nothing absolute, no
/// `..` component anywhere, no NUL. Returns the plain components.
fn segment_parts(seg: &str) -> Result<Vec<&str>, Fault> {
    let bad = || py_exc("ValueError", format!("Invalid path segment: {seg}"));
    if seg.starts_with('/') || seg.contains('\0') {
        return Err(bad());
    }
    let mut parts = Vec::new();
    for p in seg.split('/') {
        match p {
            "" | "." => {}
            ".." => return Err(bad()),
            p => parts.push(p),
        }
    }
    Ok(parts)
}

/// `base` joined with caller-given segments, each checked by [`segment_parts`].
fn join_checked(base: &Path, segs: &[&str]) -> Result<PathBuf, Fault> {
    let mut out = base.to_path_buf();
    for s in segs {
        for p in segment_parts(s)? {
            out.push(p);
        }
    }
    Ok(out)
}

/// A build name, version or release becomes one directory level: it must be one.
fn check_dir_name(what: &str, v: &str) -> Result<(), Fault> {
    if v.is_empty() || v == "." || v == ".." || v.contains(['/', '\0']) {
        return Err(Fault::generic(format!(
            "Invalid {what} for a build directory: {}",
            py_str(v)
        )));
    }
    Ok(())
}

fn io_fault(what: &str, path: &Path, e: std::io::Error) -> Fault {
    tracing::error!(path = %path.display(), error = %e, "CG import: {what} failed");
    Fault::generic(format!("{what} failed for {}: {e}", path.display()))
}

/// `dst` relative to directory `from` (both absolute, below the topdir).
fn relative_to(dst: &Path, from: &Path) -> PathBuf {
    let d: Vec<_> = dst.components().collect();
    let f: Vec<_> = from.components().collect();
    let common = d.iter().zip(&f).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..f.len() {
        out.push("..");
    }
    for c in &d[common..] {
        out.push(c.as_os_str());
    }
    out
}

/// Koji's `safer_move`: rename, or copy and remove across file systems (the kernel copies;
/// nothing is buffered here).
fn safer_move(src: &Path, dst: &Path) -> Result<(), Fault> {
    if std::fs::symlink_metadata(dst).is_ok() {
        return Err(Fault::generic(format!(
            "Destination exists: {}",
            dst.display()
        )));
    }
    match std::fs::rename(src, dst) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            std::fs::copy(src, dst).map_err(|e| io_fault("copy", dst, e))?;
            if let Err(e) = std::fs::remove_file(src) {
                let _ = std::fs::remove_file(dst);
                return Err(io_fault("remove", src, e));
            }
            Ok(())
        }
        Err(e) => Err(io_fault("rename", src, e)),
    }
}

// ---------------------------------------------------------------------------------------------
// Checksums

enum Hasher {
    Md5(md5::Md5),
    Sha256(sha2::Sha256),
    Adler32(Adler32),
}

impl Hasher {
    /// Koji's `get_verify_class`.
    fn new(kind: &J) -> Result<Hasher, Fault> {
        use sha2::Digest as _;
        match kind {
            J::String(s) if s == "md5" => Ok(Hasher::Md5(md5::Md5::new())),
            J::String(s) if s == "sha256" => Ok(Hasher::Sha256(sha2::Sha256::new())),
            J::String(s) if s == "adler32" => Ok(Hasher::Adler32(Adler32::default())),
            other if !py_truthy(other) => {
                Err(py_exc("TypeError", "'NoneType' object is not callable"))
            }
            other => Err(Fault::generic(format!(
                "Unsupported verify type: {}",
                jstr(other)
            ))),
        }
    }

    fn update(&mut self, data: &[u8]) {
        use sha2::Digest as _;
        match self {
            Hasher::Md5(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
            Hasher::Adler32(h) => h.update(data),
        }
    }

    fn hexdigest(self) -> String {
        use sha2::Digest as _;
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        match self {
            Hasher::Md5(h) => hex(&h.finalize()),
            Hasher::Sha256(h) => hex(&h.finalize()),
            Hasher::Adler32(h) => h.hexdigest(),
        }
    }
}

/// Streams a file through a digest in 1 MiB reads.
fn file_digest(path: &Path, mut h: Hasher) -> Result<String, Fault> {
    let mut f = std::fs::File::open(path).map_err(|e| io_fault("open", path, e))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| io_fault("read", path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.hexdigest())
}

// ---------------------------------------------------------------------------------------------
// Lookups shared by the methods

/// Koji's `lookup_name('content_generator', info)`.
fn cg_lookup(ctx: &Ctx<'_>, info: &Value) -> Result<Option<(i64, String)>, Fault> {
    let r = match info {
        Value::Int(i) => Ref::Id(*i),
        Value::String(s) => Ref::Name(s),
        Value::Struct(d) if d.get("id").is_some() => match d.get("id").and_then(Value::as_int) {
            Some(i) => Ref::Id(i),
            None => {
                return Err(Fault::parameter(format!(
                    "Invalid name or id value: {}",
                    pystr(info)
                )));
            }
        },
        Value::Struct(d) if d.get("name").is_some() => match d.get("name") {
            Some(Value::String(s)) => Ref::Name(s),
            _ => {
                return Err(Fault::parameter(format!(
                    "Invalid name or id value: {}",
                    pystr(info)
                )));
            }
        },
        other => {
            return Err(Fault::parameter(format!(
                "Invalid name or id value: {}",
                pystr(other)
            )));
        }
    };
    Ok(rec::lookup(ctx.db, Named::ContentGenerator, r)?)
}

fn cg_strict(ctx: &Ctx<'_>, info: &Value) -> Result<(i64, String), Fault> {
    cg_lookup(ctx, info)?.ok_or_else(|| {
        Fault::generic(format!(
            "No such entry in table content_generator: {}",
            pystr(info)
        ))
    })
}

/// Koji's `assert_cg`: the caller must be logged in and have access to the content generator.
/// Returns the caller's user id.
fn assert_cg(ctx: &Ctx<'_>, cg_id: i64, cg_name: &str) -> Result<i64, Fault> {
    let Some(user) = ctx.auth.user() else {
        return Err(Fault::auth("Not logged-in"));
    };
    if !store::has_access(ctx.db, cg_id, user.id)? {
        return Err(Fault::auth(format!(
            "Content generator access required ({cg_name})"
        )));
    }
    Ok(user.id)
}

fn user_strict(ctx: &Ctx<'_>, info: &Value) -> Result<UserRow, Fault> {
    lookup_user(ctx, info)?
        .ok_or_else(|| Fault::generic(format!("No such user: {}", py_repr(info))))
}

/// Koji's `parse_NVR` (epoch prefix dropped).
fn parse_nvr(nvr: &str) -> Result<(String, String, String), Fault> {
    let bad = || Fault::generic(format!("invalid format: {nvr}"));
    let p2 = nvr.rfind('-').ok_or_else(bad)?;
    if p2 + 1 == nvr.len() {
        return Err(bad());
    }
    let p1 = nvr[..p2].rfind('-').ok_or_else(bad)?;
    if p1 + 1 == p2 {
        return Err(bad());
    }
    let name = &nvr[..p1];
    let name = name.split_once(':').map_or(name, |(_, n)| n);
    Ok((
        name.to_string(),
        nvr[p1 + 1..p2].to_string(),
        nvr[p2 + 1..].to_string(),
    ))
}

/// Koji's `get_build(info, strict=True)`: by id, N-V-R or {name, version, release}.
fn build_strict(ctx: &Ctx<'_>, info: &Value) -> Result<Struct, Fault> {
    let missing = || Fault::generic(format!("No such build: {}", py_repr(info)));
    let id = match info {
        Value::Int(i) => Some(*i),
        Value::String(s) => match s.trim().parse::<i64>() {
            Ok(i) => Some(i),
            Err(_) => {
                let (n, v, r) = parse_nvr(s)?;
                rec::find_build(ctx.db, &n, &v, &r)?
            }
        },
        Value::Struct(d) => match (d.get("name"), d.get("version"), d.get("release")) {
            (Some(n), Some(v), Some(r)) => {
                rec::find_build(ctx.db, &pystr(n), &pystr(v), &pystr(r))?
            }
            _ => {
                return Err(Fault::generic("did not provide name, version, and release"));
            }
        },
        other => {
            return Err(Fault::generic(format!(
                "Invalid type for argument: {}",
                other.type_name()
            )));
        }
    };
    let id = id.ok_or_else(missing)?;
    rec::get_build(ctx.db, id)?
        .map(convert::record)
        .ok_or_else(missing)
}

fn build_by_id(ctx: &Ctx<'_>, id: i64) -> Result<Struct, Fault> {
    rec::get_build(ctx.db, id)?
        .map(convert::record)
        .ok_or_else(|| Fault::generic(format!("No such build: {id}")))
}

fn int_field(s: &Struct, k: &str) -> Option<i64> {
    s.get(k).and_then(Value::as_int)
}

fn str_field(s: &Struct, k: &str) -> String {
    s.get(k).map(pystr).unwrap_or_default()
}

/// Koji's `BUILD_STATES` name, or the number when it has none.
fn state_name(state: i64) -> String {
    match crate::store::records::build_state_name(state) {
        "UNKNOWN" => state.to_string(),
        name => name.to_string(),
    }
}

/// Koji's `verify_name_internal` (default limits) plus the build-directory rule, then
/// `new_package(name, strict=False)`: the package id, created when new.
fn package_id(ctx: &Ctx<'_>, name: &str) -> Result<i64, Fault> {
    super::records::verify_name_str(name)?;
    check_dir_name("name", name)?;
    Ok(
        match rec::lookup(ctx.db, Named::Package, Ref::Name(name))? {
            Some((id, _)) => id,
            None => rec::create_package(ctx.db, name)?,
        },
    )
}

/// Koji's `check_NVR`: no `-` in version or release (plus the build-directory rule).
fn check_nvr(version: &str, release: &str) -> Result<(), Fault> {
    if version.contains('-') {
        return Err(Fault::generic(
            "The \"-\" character not allowed in version field",
        ));
    }
    if release.contains('-') {
        return Err(Fault::generic(
            "The \"-\" character not allowed in release field",
        ));
    }
    check_dir_name("version", version)?;
    check_dir_name("release", release)
}

/// What Koji's `new_build` inserts.
struct NewBuild {
    name: String,
    row: store::BuildRow,
}

/// Koji's `new_build(data, strict=False)`: a new build, or the FAILED/CANCELED one with the same
/// N-V-R recycled (`recycle_build`). `repr` renders Koji's `%r` of its data dict (given the
/// package id) for the "already exists" fault.
fn new_build(ctx: &Ctx<'_>, b: &mut NewBuild, repr: &dyn Fn(i64) -> String) -> Result<i64, Fault> {
    let pkg = package_id(ctx, &b.name)?;
    b.row.package_id = pkg;
    if let Some(task) = b.row.task_id
        && !store::task_exists(ctx.db, task)?
    {
        return Err(Fault::generic(format!("No such task: {task}")));
    }
    let Some(old_id) = rec::find_build(ctx.db, &b.name, &b.row.version, &b.row.release)? else {
        return Ok(store::insert_build(ctx.db, &b.row)?);
    };
    let old = build_by_id(ctx, old_id)?;
    let old_state = int_field(&old, "state").unwrap_or(-1);
    let old_task = int_field(&old, "task_id");
    match old_state {
        rec::BUILD_BUILDING => {
            if b.row.state == old_state && b.row.task_id == old_task {
                // The controlling task asked again: the same build.
                return Ok(old_id);
            }
            return Err(match old_task {
                Some(t) => Fault::generic(format!("Build already in progress (task {t})")),
                None => py_exc(
                    "TypeError",
                    "%d format: a real number is required, not NoneType",
                ),
            });
        }
        store::BUILD_FAILED | store::BUILD_CANCELED => {}
        other => {
            return Err(Fault::generic(format!(
                "Build already exists (id={old_id}, state={}): {}",
                state_name(other),
                repr(pkg)
            )));
        }
    }
    if let Some(block) = store::recycle_block(ctx.db, old_id)? {
        let what = match block {
            store::RecycleBlock::TagHistory => "has tag history",
            store::RecycleBlock::Rpms => "has rpm data",
            store::RecycleBlock::Archives => "has archive data",
        };
        return Err(Fault::generic(format!(
            "Build already exists. Unable to recycle, {what}"
        )));
    }
    store::recycle_build(ctx.db, old_id, &b.row)?;
    store::clear_reservation(ctx.db, old_id)?;
    Ok(old_id)
}

/// A new reservation token: 64 hex digits, as `secrets.token_hex(32)`.
fn generate_token() -> String {
    rand::random::<[u8; 32]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// CG access

fn grant_cg_access(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    ctx.require_perm("admin")?;
    let user = user_strict(ctx, arg(a, "user"))?;
    let info = arg(a, "cg");
    let (cg_id, cg_name) = match cg_lookup(ctx, info)? {
        Some(found) => found,
        None if a.flag("create", false) => match info {
            Value::String(name) => (store::create_cg(ctx.db, name)?, name.clone()),
            _ => return Err(Fault::generic("Name must be a string")),
        },
        None => cg_strict(ctx, info)?,
    };
    if !store::grant(ctx.db, cg_id, user.id, ctx.auth.user_id())? {
        return Err(Fault::generic(format!(
            "User already has access to content generator {cg_name}"
        )));
    }
    Ok(Value::Nil)
}

fn revoke_cg_access(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    ctx.require_perm("admin")?;
    let user = user_strict(ctx, arg(a, "user"))?;
    let (cg_id, _) = cg_strict(ctx, arg(a, "cg"))?;
    store::revoke(ctx.db, cg_id, user.id)?;
    Ok(Value::Nil)
}

fn list_cgs(ctx: &mut Ctx<'_>, _: &Args) -> Result<Value, Fault> {
    let mut out = Struct::new();
    let mut current: Option<(String, i64, Vec<Value>)> = None;
    for (id, name, user) in store::cg_users(ctx.db)? {
        match &mut current {
            Some((n, _, users)) if *n == name => users.push(Value::String(user)),
            _ => {
                if let Some((n, i, users)) = current.take() {
                    out.insert(n, Struct::new().with("id", i).with("users", users));
                }
                current = Some((name, id, vec![Value::String(user)]));
            }
        }
    }
    if let Some((n, i, users)) = current {
        out.insert(n, Struct::new().with("id", i).with("users", users));
    }
    Ok(Value::Struct(out))
}

// ---------------------------------------------------------------------------------------------
// CGInitBuild / CGRefundBuild

fn reject_draft(draft: bool) -> Result<(), Fault> {
    if draft {
        return Err(Fault::generic("Draft build not supported"));
    }
    Ok(())
}

/// An epoch as Koji's database would take it: an integer (or its text) or None.
fn epoch_value(v: Option<&Value>) -> Result<Option<i64>, Fault> {
    match v {
        None | Some(Value::Nil) => Ok(None),
        Some(Value::Int(i)) => Ok(Some(*i)),
        Some(Value::String(s)) if s.trim().parse::<i64>().is_ok() => Ok(s.trim().parse().ok()),
        Some(other) => Err(Fault::generic(format!(
            "Invalid epoch value: {}",
            py_repr(other)
        ))),
    }
}

/// A version or release from a request dict, as `check_NVR` reads it.
fn nvr_part<'v>(d: &'v Struct, key: &str) -> Result<&'v str, Fault> {
    match d.get(key) {
        None => Err(key_error(key)),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(py_exc(
            "TypeError",
            format!("argument of type '{}' is not iterable", other.type_name()),
        )),
    }
}

fn cg_init_build(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let (cg_id, cg_name) = cg_strict(ctx, arg(a, "cg"))?;
    let user_id = assert_cg(ctx, cg_id, &cg_name)?;
    let mut data = match a.get("data") {
        Some(Value::Struct(s)) => s.clone(),
        other => {
            return Err(py_exc(
                "TypeError",
                format!(
                    "'{}' object does not support item assignment",
                    other.unwrap_or(&Value::Nil).type_name()
                ),
            ));
        }
    };
    // cg_init_build's own settings, in its order (they show in "already exists" texts).
    data.insert("owner", user_id);
    data.insert("state", rec::BUILD_BUILDING);
    data.insert("completion_time", Value::Nil);
    data.insert("cg_id", cg_id);
    if data.get("epoch").is_none() {
        data.insert("epoch", Value::Nil);
    }
    reject_draft(data.get("draft").is_some_and(Value::truthy))?;
    let version = nvr_part(&data, "version")?.to_string();
    let release = nvr_part(&data, "release")?.to_string();
    check_nvr(&version, &release)?;
    let name = match data.get("name") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::String(_)) | None | Some(Value::Nil) => {
            return Err(Fault::generic("No name or package id provided for build"));
        }
        Some(_) => return Err(Fault::generic("Name should be string")),
    };
    let extra = data.get("extra").map(value_to_json);
    let source = match data.get("source") {
        None | Some(Value::Nil) => None,
        Some(v) => Some(pystr(v)),
    };
    let task_id = match data.get("task_id") {
        None | Some(Value::Nil) => None,
        Some(v) => Some(to_int(&value_to_json(v))?),
    };
    let mut nb = NewBuild {
        name,
        row: store::BuildRow {
            package_id: 0,
            version,
            release,
            epoch: epoch_value(data.get("epoch"))?,
            state: rec::BUILD_BUILDING,
            task_id,
            owner: user_id,
            start_ts: Some(crate::store::now_ts()),
            completion_ts: None,
            source,
            extra: extra.as_ref().map(J::to_string),
            cg_id: Some(cg_id),
        },
    };
    // new_build's view of the data, for Koji's "%r" in its refusal.
    let repr = |pkg: i64| {
        let mut d = data.clone();
        if d.get("pkg_id").is_none() {
            d.insert("pkg_id", pkg);
        }
        match &extra {
            Some(e) => d.insert("extra", py_json(e, None)),
            None => d.insert("extra", Value::Nil),
        }
        for (k, v) in [
            ("start_time", Value::str("NOW")),
            ("source", Value::Nil),
            ("task_id", Value::Nil),
            ("volume_id", Value::Int(0)),
            ("draft", Value::Bool(false)),
        ] {
            if d.get(k).is_none() {
                d.insert(k, v);
            }
        }
        py_repr(&Value::Struct(d))
    };
    let build_id = new_build(ctx, &mut nb, &repr)?;
    if store::reservation_token(ctx.db, build_id)?.is_some() {
        return Err(Fault::generic("Build is already reserved"));
    }
    let token = generate_token();
    store::reserve(ctx.db, build_id, &token)?;
    tracing::info!(build_id, cg = %cg_name, "CGInitBuild: build reserved");
    Ok(Value::Struct(
        Struct::new()
            .with("build_id", build_id)
            .with("token", token),
    ))
}

fn cg_refund_build(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let state = match a.get("state") {
        None if !a.given("state") => store::BUILD_FAILED,
        v => v.and_then(Value::as_int).unwrap_or(-1),
    };
    if state != store::BUILD_FAILED && state != store::BUILD_CANCELED {
        return Err(Fault::generic(
            "Only FAILED/CANCELED build states are allowed",
        ));
    }
    let (cg_id, cg_name) = cg_strict(ctx, arg(a, "cg"))?;
    assert_cg(ctx, cg_id, &cg_name)?;
    let info = arg(a, "build_id");
    let binfo = build_strict(ctx, info)?;
    let build_id = int_field(&binfo, "id").unwrap_or(0);
    if int_field(&binfo, "state") != Some(rec::BUILD_BUILDING) {
        return Err(Fault::generic(format!(
            "Build ID {} is not in BUILDING state",
            pystr(info)
        )));
    }
    let token = store::reservation_token(ctx.db, build_id)?;
    if token.is_none() || token.as_deref() != a.get("token").and_then(Value::as_str) {
        return Err(Fault::generic(format!(
            "Token doesn't match build ID {}",
            pystr(info)
        )));
    }
    if int_field(&binfo, "cg_id") != Some(cg_id) {
        return Err(Fault::generic(format!(
            "Build ID {} is not reserved by this CG",
            pystr(info)
        )));
    }
    store::set_build_state(ctx.db, build_id, state)?;
    store::clear_reservation(ctx.db, build_id)?;
    tracing::info!(build_id, state, "CGRefundBuild: reservation released");
    Ok(Value::Nil)
}

// ---------------------------------------------------------------------------------------------
// CGImport

/// Largest metadata file `CGImport` reads from the upload directory.
const MAX_METADATA_FILE: u64 = 256 << 20;

/// Longest quote of bad metadata in a fault text.
const MAX_QUOTE: usize = 4096;

/// The build part of the metadata, checked (Koji's `prep_build`).
struct PrepBuild {
    name: String,
    version: String,
    release: String,
    epoch: Option<i64>,
    source: Option<String>,
    extra: serde_json::Map<String, J>,
    /// The reserved build, when a token was given.
    reserved: Option<i64>,
    start_ts: f64,
    completion_ts: f64,
    owner: Option<i64>,
    task_id: Option<i64>,
    /// `(btype, btype id)` from `extra.typeinfo` (legacy `extra.image` etc. included).
    typeinfo: Vec<(String, i64)>,
}

/// What a component of an output or buildroot turned out to be.
enum Component {
    /// A known RPM: `(id, n-v-r.a, md5 mismatch)`.
    Rpm(i64, String, bool),
    /// An RPM the hub does not know, kept with the archive (outputs only).
    UnknownRpm(store::UnknownRpm, String),
    /// A known archive.
    Archive(i64),
}

struct PrepBuildroot {
    key: String,
    row: store::BuildrootRow,
    components: Vec<Component>,
    tools: Vec<(String, String)>,
}

struct PrepArchive {
    btype: String,
    btype_id: i64,
    type_id: i64,
    checksum_type: i64,
    /// `extra.image.arch` of image archives.
    arch: Option<String>,
    components: Vec<Component>,
}

struct PrepOutput {
    /// `filename` as the metadata gives it.
    filename: String,
    /// The uploaded file.
    path: PathBuf,
    size: i64,
    checksum: String,
    br_key: String,
    metadata_only: bool,
    subdir: Option<String>,
    extra: Option<J>,
    /// `None` for a log.
    archive: Option<PrepArchive>,
}

struct Importer<'a, 'c> {
    ctx: &'a Ctx<'c>,
    /// The upload `directory` below the topdir's `work` directory.
    updir: PathBuf,
    metadata: J,
    raw: String,
    cg_id: i64,
    log: Vec<String>,
    /// Files moved into the build directory: `(upload path, final path)`.
    moved: Vec<(PathBuf, PathBuf)>,
    /// The build directory, once this import has claimed it (it did not exist before).
    build_dir: Option<PathBuf>,
}

/// The canonical `<topdir>/work`, created when missing (uploads create it anyway).
fn work_root(ctx: &Ctx<'_>) -> Result<PathBuf, Fault> {
    let work = ctx.hub.topdir().join("work");
    std::fs::create_dir_all(&work).map_err(|e| io_fault("mkdir", &work, e))?;
    work.canonicalize()
        .map_err(|e| io_fault("resolve", &work, e))
}

/// Quotes text for a fault, cut to [`MAX_QUOTE`] characters.
fn quote(s: &str) -> String {
    if s.chars().count() <= MAX_QUOTE {
        return py_str(s);
    }
    let cut: String = s.chars().take(MAX_QUOTE).collect();
    format!("{}...", py_str(&cut))
}

fn cg_import(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let directory = match a.get("directory") {
        Some(Value::String(s)) => s.clone(),
        other => {
            return Err(py_exc(
                "TypeError",
                format!(
                    "expected str, bytes or os.PathLike object, not {}",
                    other.unwrap_or(&Value::Nil).type_name()
                ),
            ));
        }
    };
    let work = work_root(ctx)?;
    let updir = join_checked(&work, &[&directory])?;
    let (metadata, raw) = load_metadata(&updir, a.get("metadata"))?;
    let mut imp = Importer {
        ctx,
        updir,
        metadata,
        raw,
        cg_id: 0,
        log: Vec::new(),
        moved: Vec::new(),
        build_dir: None,
    };
    let token = match a.get("token") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(pystr(other)),
    };
    match imp.run(&work, token.as_deref()) {
        Ok(v) => Ok(v),
        Err(f) => {
            imp.undo();
            Err(f)
        }
    }
}

/// Koji's `CG_Importer.get_metadata`: `(parsed, raw text)`.
fn load_metadata(updir: &Path, metadata: Option<&Value>) -> Result<(J, String), Fault> {
    let text = match metadata {
        Some(v @ Value::Struct(_)) => {
            let j = value_to_json(v);
            let raw = py_json(&j, Some(2));
            return Ok((j, raw));
        }
        None => read_metadata_file(updir, "metadata.json")?,
        Some(Value::String(s)) if s.ends_with(".json") => read_metadata_file(updir, s)?,
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(Fault::parameter(format!(
                "Invalid type for value '{}': <class '{}'>, expected type <class 'str'>",
                pystr(other),
                other.type_name()
            )));
        }
    };
    match serde_json::from_str::<J>(&text) {
        Ok(j) => Ok((j, text)),
        Err(_) => Err(Fault::generic(format!(
            "Invalid json data: {}",
            quote(&text)
        ))),
    }
}

fn read_metadata_file(updir: &Path, name: &str) -> Result<String, Fault> {
    let path = join_checked(updir, &[name])?;
    let meta = match std::fs::metadata(&path) {
        Ok(m) => m,
        Err(_) => return Err(Fault::generic(format!("No such file: {name}"))),
    };
    if !meta.is_file() {
        return Err(Fault::generic(format!("No such file: {name}")));
    }
    if meta.len() > MAX_METADATA_FILE {
        return Err(Fault::generic(format!(
            "Metadata file too large: {name} ({} bytes, at most {MAX_METADATA_FILE})",
            meta.len()
        )));
    }
    let bytes = std::fs::read(&path).map_err(|e| io_fault("read", &path, e))?;
    String::from_utf8(bytes).map_err(|e| {
        py_exc(
            "UnicodeDecodeError",
            format!(
                "'utf-8' codec can't decode byte at position {}: invalid utf-8",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

impl Importer<'_, '_> {
    fn run(&mut self, work: &Path, token: Option<&str>) -> Result<Value, Fault> {
        let metaver = get(&self.metadata, "metadata_version")?;
        if !matches!(metaver.as_f64(), Some(v) if v == 0.0) && metaver != &J::Bool(false) {
            return Err(Fault::generic(format!(
                "No such metadata version: {}",
                jrepr(metaver)
            )));
        }
        self.assert_cg_access()?;
        let build = self.prep_build(token)?;
        let brs = self.prep_brs()?;
        let outputs = self.prep_outputs(work, &brs, &build)?;
        // The `cg_import` policy is Koji's default (`all :: allow`); the volume is DEFAULT.
        // The build directory hangs off the resolved topdir, like the uploads, so the symlinks
        // left in the upload directory are relative paths between the two.
        let topdir = work.parent().unwrap_or(work);
        let build_dir = topdir.join(format!(
            "packages/{}/{}/{}",
            build.name, build.version, build.release
        ));
        if std::fs::symlink_metadata(&build_dir).is_ok() {
            // prep_build has ruled out a finished build of this NVR, and only an import writes
            // under packages/, inside its write transaction: the directory is what an import
            // that died before its commit (a kill, a power cut) moved there. Koji would refuse
            // the retry forever; the files belong to no build, so they go.
            tracing::warn!(dir = %build_dir.display(), "removing the files of an import that never committed");
            let removed = if build_dir.is_dir() {
                std::fs::remove_dir_all(&build_dir)
            } else {
                std::fs::remove_file(&build_dir)
            };
            removed.map_err(|e| {
                Fault::generic(format!(
                    "Destination directory already exists: {} (and cannot be removed: {e})",
                    build_dir.display()
                ))
            })?;
        }
        self.build_dir = Some(build_dir.clone());
        let build_id = self.get_build(&build)?;
        let br_ids = self.import_brs(&brs)?;
        self.import_outputs(build_id, &build_dir, &outputs, &br_ids)?;
        // import_metadata, then the import log (Koji's move_cg_log_file).
        std::fs::create_dir_all(&build_dir).map_err(|e| io_fault("mkdir", &build_dir, e))?;
        let meta_path = build_dir.join("metadata.json");
        std::fs::write(&meta_path, self.raw.as_bytes())
            .map_err(|e| io_fault("write", &meta_path, e))?;
        let logs = build_dir.join("data/logs");
        std::fs::create_dir_all(&logs).map_err(|e| io_fault("mkdir", &logs, e))?;
        let log_path = logs.join("cg_import.log");
        if std::fs::symlink_metadata(&log_path).is_ok() {
            return Err(Fault::generic(format!(
                "Destination exists: {}",
                log_path.display()
            )));
        }
        self.log("CG import was SUCCESSFUL.".into());
        let mut text = self.log.join("\n");
        text.push('\n');
        std::fs::write(&log_path, text).map_err(|e| io_fault("write", &log_path, e))?;
        let binfo = build_by_id(self.ctx, build_id)?;
        tracing::info!(
            build_id,
            nvr = %str_field(&binfo, "nvr"),
            outputs = outputs.len(),
            "CGImport: build imported"
        );
        Ok(Value::Struct(binfo))
    }

    fn log(&mut self, line: String) {
        tracing::debug!(line = %line, "CG import log");
        self.log.push(line);
    }

    /// Undoes the file moves of a failed import and removes the build directory it claimed.
    fn undo(&mut self) {
        for (src, dst) in self.moved.drain(..).rev() {
            if std::fs::symlink_metadata(&src).is_ok_and(|m| m.file_type().is_symlink())
                && let Err(e) = std::fs::remove_file(&src)
            {
                tracing::error!(path = %src.display(), error = %e, "CG import undo: remove symlink");
                continue;
            }
            if let Err(f) = safer_move(&dst, &src) {
                tracing::error!(from = %dst.display(), to = %src.display(), fault = %f.message, "CG import undo: move back");
            }
        }
        if let Some(dir) = self.build_dir.take()
            && std::fs::symlink_metadata(&dir).is_ok()
            && let Err(e) = std::fs::remove_dir_all(&dir)
        {
            tracing::error!(path = %dir.display(), error = %e, "CG import undo: remove build dir");
        }
    }

    /// Koji's `assert_cg_access`: one content generator for all buildroots, and the caller's
    /// access to it.
    fn assert_cg_access(&mut self) -> Result<(), Fault> {
        let mut cg: Option<(i64, String)> = None;
        for br in items(get(&self.metadata, "buildroots")?)? {
            let name = get(get(br, "content_generator")?, "name")?;
            let found = match name {
                J::String(s) => rec::lookup(self.ctx.db, Named::ContentGenerator, Ref::Name(s))?,
                J::Number(n) => match n.as_i64() {
                    Some(i) => rec::lookup(self.ctx.db, Named::ContentGenerator, Ref::Id(i))?,
                    None => None,
                },
                other => {
                    return Err(Fault::parameter(format!(
                        "Invalid name or id value: {}",
                        jstr(other)
                    )));
                }
            };
            let found = found.ok_or_else(|| {
                Fault::generic(format!(
                    "No such entry in table content_generator: {}",
                    jstr(name)
                ))
            })?;
            match &cg {
                None => cg = Some(found),
                Some((id, _)) if *id != found.0 => {
                    return Err(Fault::generic(
                        "Koji now support only one content-generator per import",
                    ));
                }
                Some(_) => {}
            }
        }
        let Some((cg_id, cg_name)) = cg else {
            // Koji's assert_cg(None) finds no content generator.
            return Err(Fault::generic(
                "No such entry in table content_generator: None",
            ));
        };
        assert_cg(self.ctx, cg_id, &cg_name)?;
        self.cg_id = cg_id;
        Ok(())
    }

    /// Koji's `get_task_id_from_metadata`: `build.task_id`, or OSBS's
    /// `build.extra.container_koji_task_id` (they must agree).
    fn task_id(&self) -> Result<Option<i64>, Fault> {
        let b = get(&self.metadata, "build")?;
        let mut task_id = None;
        if let J::Object(m) = b
            && let Some(t) = m.get("task_id")
        {
            task_id = Some(to_int(t)?);
        }
        let extra = match b {
            J::Object(m) => m.get("extra"),
            _ => None,
        };
        if let Some(J::Object(e)) = extra
            && let Some(t) = e.get("container_koji_task_id")
        {
            let t2 = to_int(t)?;
            if let Some(t1) = task_id
                && t1 != t2
            {
                return Err(Fault::generic(format!(
                    "CG provided non-matching task_id {t1} and container_koji_task_id {t2}"
                )));
            }
            return Ok(Some(t2));
        }
        Ok(task_id)
    }

    fn prep_build(&mut self, token: Option<&str>) -> Result<PrepBuild, Fault> {
        let b = get(&self.metadata, "build")?.clone();
        let draft = get_opt(&b, "draft")?.is_some_and(py_truthy);
        let reserved_id = get_opt(&b, "build_id")?.filter(|v| py_truthy(v)).cloned();
        let mut reserved = None;
        if let Some(bid) = reserved_id {
            let id = to_int(&bid)?;
            let binfo = build_strict(self.ctx, &Value::Int(id))?;
            let build_token = store::reservation_token(self.ctx.db, id)?;
            let task_id = self.task_id()?;
            if build_token.is_none() || build_token.as_deref() != token {
                return Err(Fault::generic(format!("Token doesn't match build ID {id}")));
            }
            if int_field(&binfo, "cg_id") != Some(self.cg_id) {
                return Err(Fault::generic(format!(
                    "Build ID {id} is not reserved by this CG"
                )));
            }
            if let Some(t) = int_field(&binfo, "task_id")
                && t != 0
                && Some(t) != task_id
            {
                return Err(Fault::generic(format!("Build is owned by task {t}")));
            }
            if int_field(&binfo, "state") != Some(rec::BUILD_BUILDING) {
                return Err(Fault::generic(format!(
                    "Build ID {id} is not in BUILDING state"
                )));
            }
            if binfo.get("draft").is_some_and(Value::truthy) != draft {
                return Err(Fault::generic(format!(
                    "Draft field does not match reservation (build id = {id})"
                )));
            }
            let same = |k: &str| -> Result<bool, Fault> {
                Ok(json_to_value(get(&b, k)?) == *binfo.get(k).unwrap_or(&Value::Nil))
            };
            if !same("name")? || !same("version")? || !same("release")? {
                return Err(Fault::generic(format!("Build ({id}) NVR is different")));
            }
            if let J::Object(m) = &b
                && let Some(e) = m.get("epoch")
                && json_to_value(e) != *binfo.get("epoch").unwrap_or(&Value::Nil)
            {
                return Err(Fault::generic(format!("Build ({id}) epoch is different")));
            }
            reserved = Some(id);
        } else if token.is_some() {
            return Err(Fault::generic(
                "Reservation token given, but no build_id in metadata",
            ));
        } else {
            let (n, v, r) = match (
                get_opt(&b, "name")?,
                get_opt(&b, "version")?,
                get_opt(&b, "release")?,
            ) {
                (Some(n), Some(v), Some(r)) => (jstr(n), jstr(v), jstr(r)),
                _ => {
                    return Err(Fault::generic("did not provide name, version, and release"));
                }
            };
            if let Some(id) = rec::find_build(self.ctx.db, &n, &v, &r)? {
                let old = build_by_id(self.ctx, id)?;
                let state = int_field(&old, "state").unwrap_or(-1);
                if state != store::BUILD_FAILED && state != store::BUILD_CANCELED {
                    return Err(Fault::generic(format!(
                        "Build already exists: {} (id={id})",
                        str_field(&old, "nvr")
                    )));
                }
            }
        }
        // dslice(build, [name, version, release, extra, source]) is strict.
        let name = get(&b, "name")?;
        let version = get(&b, "version")?;
        let release = get(&b, "release")?;
        let extra = get(&b, "extra")?.clone();
        let source = get(&b, "source")?;
        let epoch = match get_opt(&b, "epoch")? {
            None => None,
            Some(e) => Some(to_int(e)?),
        };
        reject_draft(draft)?;
        let start_ts = to_float(get(&b, "start_time")?)?;
        let completion_ts = to_float(get(&b, "end_time")?)?;
        let task_id = self.task_id()?;
        let owner = match get_opt(&b, "owner")? {
            None => None,
            Some(J::String(s)) if s.is_empty() => None,
            Some(J::String(s)) => Some(user_strict(self.ctx, &Value::String(s.clone()))?.id),
            Some(other) => {
                return Err(Fault::generic(format!(
                    "Invalid owner format (expected username): {}",
                    jstr(other)
                )));
            }
        };
        let nvr_text = |j: &J| -> Result<String, Fault> {
            match j {
                J::String(s) => Ok(s.clone()),
                other => Err(py_exc(
                    "TypeError",
                    format!("argument of type '{}' is not iterable", jtype(other)),
                )),
            }
        };
        let (version, release) = (nvr_text(version)?, nvr_text(release)?);
        check_nvr(&version, &release)?;
        let name = text(name, "name")?.to_string();
        check_dir_name("name", &name)?;
        // Build types: extra.typeinfo, plus the legacy top-level maven/win/image keys.
        let mut extra = match extra {
            J::Object(m) => m,
            J::Null => {
                return Err(py_exc(
                    "AttributeError",
                    "'NoneType' object has no attribute 'setdefault'",
                ));
            }
            other => {
                return Err(py_exc(
                    "AttributeError",
                    format!("'{}' object has no attribute 'setdefault'", jtype(&other)),
                ));
            }
        };
        let mut typeinfo = match extra.remove("typeinfo") {
            None => serde_json::Map::new(),
            Some(J::Object(t)) => t,
            Some(other) => {
                return Err(py_exc(
                    "AttributeError",
                    format!("'{}' object has no attribute 'setdefault'", jtype(&other)),
                ));
            }
        };
        for legacy in ["maven", "win", "image"] {
            if let Some(v) = extra.get(legacy) {
                if typeinfo.contains_key(legacy) {
                    return Err(Fault::generic(format!(
                        "Duplicate typeinfo for {}",
                        py_str(legacy)
                    )));
                }
                typeinfo.insert(legacy.to_string(), v.clone());
            }
        }
        let mut types = Vec::new();
        for bt in typeinfo.keys() {
            let (id, name) = rec::lookup(self.ctx.db, Named::Btype, Ref::Name(bt))?
                .ok_or_else(|| Fault::generic(format!("No such entry in table btype: {bt}")))?;
            if name == "maven" || name == "win" {
                return Err(Fault::generic(format!(
                    "{name} builds are not supported by this hub"
                )));
            }
            types.push((name, id));
        }
        extra.insert("typeinfo".into(), J::Object(typeinfo));
        Ok(PrepBuild {
            name,
            version,
            release,
            epoch,
            source: match source {
                J::Null => None,
                other => Some(jstr(other)),
            },
            extra,
            reserved,
            start_ts,
            completion_ts,
            owner,
            task_id,
            typeinfo: types,
        })
    }

    /// Koji's `prep_brs` / `prep_buildroot`.
    fn prep_brs(&mut self) -> Result<Vec<PrepBuildroot>, Fault> {
        let outputs = items(get(&self.metadata, "output")?)?.to_vec();
        let mut used = std::collections::HashSet::new();
        for o in &outputs {
            used.insert(get(o, "buildroot_id")?.to_string());
        }
        let brs = items(get(&self.metadata, "buildroots")?)?.to_vec();
        let mut out: Vec<PrepBuildroot> = Vec::new();
        for br in &brs {
            let fake = get(br, "id")?;
            let key = fake.to_string();
            if !used.contains(&key) {
                return Err(Fault::generic(format!(
                    "Buildroot id not used in output: {}",
                    jrepr(fake)
                )));
            }
            if out.iter().any(|p| p.key == key) {
                return Err(Fault::generic(format!(
                    "Duplicate buildroot id in metadata: {}",
                    jrepr(fake)
                )));
            }
            let opt_text = |j: &J| match j {
                J::Null => None,
                other => Some(jstr(other)),
            };
            let cgi = get(br, "content_generator")?;
            let container = get(br, "container")?;
            let host = get(br, "host")?;
            let row = store::BuildrootRow {
                cg_id: self.cg_id,
                cg_version: opt_text(get(cgi, "version")?),
                container_type: opt_text(get(container, "type")?),
                container_arch: opt_text(get(container, "arch")?),
                host_os: opt_text(get(host, "os")?),
                host_arch: opt_text(get(host, "arch")?),
                extra: get_opt(br, "extra")?.map(J::to_string),
            };
            let components = self.match_components(get(br, "components")?, None)?;
            // BuildRoot.setTools: nothing for an empty value, else each {name, version}.
            let mut tools = Vec::new();
            let tool_list = get(br, "tools")?;
            if py_truthy(tool_list) {
                for t in items(tool_list)? {
                    tools.push((jstr(get(t, "name")?), jstr(get(t, "version")?)));
                }
            }
            out.push(PrepBuildroot {
                key,
                row,
                components,
                tools,
            });
        }
        Ok(out)
    }

    /// Koji's `match_components`. `output` names the archive for components of an output:
    /// unknown RPMs are then kept instead of ignored.
    fn match_components(
        &mut self,
        components: &J,
        output: Option<&str>,
    ) -> Result<Vec<Component>, Fault> {
        let mut out = Vec::new();
        for comp in items(components)? {
            let kind = get(comp, "type")?;
            match kind.as_str() {
                Some("rpm") => {
                    if let Some(c) = self.match_rpm(comp, output)? {
                        out.push(c);
                    }
                }
                Some("file") => {
                    if let Some(id) = self.match_file(comp)? {
                        out.push(Component::Archive(id));
                    }
                }
                Some("kojifile") => out.push(Component::Archive(self.match_kojifile(comp)?)),
                _ => {
                    return Err(Fault::generic(format!(
                        "No such component type: {}",
                        jstr(kind)
                    )));
                }
            }
        }
        Ok(out)
    }

    fn match_rpm(&mut self, comp: &J, output: Option<&str>) -> Result<Option<Component>, Fault> {
        if comp.get("location").is_some() {
            return Err(Fault::generic("External rpms not allowed"));
        }
        if comp.get("id").is_some() {
            return Err(Fault::generic("Unexpected 'id' field in component"));
        }
        let name = get(comp, "name")?;
        let version = get(comp, "version")?;
        let release = get(comp, "release")?;
        let arch = get(comp, "arch")?;
        let found = match (name, version, release, arch) {
            (J::String(n), J::String(v), J::String(r), J::String(a)) => {
                store::find_rpm(self.ctx.db, n, v, r, a)?
            }
            _ => None,
        };
        if let Some((id, payloadhash, draft)) = found {
            if draft {
                return Err(Fault::generic("Draft rpm not supported"));
            }
            let sigmd5 = get(comp, "sigmd5")?;
            let mismatch = sigmd5.as_str() != Some(payloadhash.as_str());
            if mismatch {
                self.log(format!(
                    "IGNORING rpm component (md5 mismatch): {}",
                    jrepr(comp)
                ));
            }
            let nvra = format!(
                "{}-{}-{}.{}",
                jstr(name),
                jstr(version),
                jstr(release),
                jstr(arch)
            );
            return Ok(Some(Component::Rpm(id, nvra, mismatch)));
        }
        let Some(filename) = output else {
            self.log(format!("IGNORING unmatched rpm component: {}", jrepr(comp)));
            return Ok(None);
        };
        // Unlike Koji: keep it with the archive.
        let bad = || {
            Fault::generic(format!(
                "Invalid rpm component in {filename}: {}",
                jrepr(comp)
            ))
        };
        let s = |j: &J| j.as_str().map(str::to_string).ok_or_else(bad);
        let opt_s = |j: Option<&J>| -> Result<Option<String>, Fault> {
            match j {
                None | Some(J::Null) => Ok(None),
                Some(J::String(x)) => Ok(Some(x.clone())),
                Some(_) => Err(bad()),
            }
        };
        let opt_i = |j: Option<&J>| -> Result<Option<i64>, Fault> {
            match j {
                None | Some(J::Null) => Ok(None),
                Some(J::Number(n)) => n.as_i64().map(Some).ok_or_else(bad),
                Some(_) => Err(bad()),
            }
        };
        let J::Object(m) = comp else {
            return Err(bad());
        };
        let mut rest = serde_json::Map::new();
        for (k, v) in m {
            if !matches!(
                k.as_str(),
                "type"
                    | "name"
                    | "version"
                    | "release"
                    | "epoch"
                    | "arch"
                    | "sigmd5"
                    | "size"
                    | "buildtime"
            ) {
                rest.insert(k.clone(), v.clone());
            }
        }
        let unknown = store::UnknownRpm {
            name: s(name)?,
            version: s(version)?,
            release: s(release)?,
            epoch: opt_i(m.get("epoch"))?,
            arch: opt_s(Some(arch))?,
            sigmd5: opt_s(m.get("sigmd5"))?,
            size: opt_i(m.get("size"))?,
            buildtime: opt_i(m.get("buildtime"))?,
            extra: Some(J::Object(rest).to_string()),
        };
        Ok(Some(Component::UnknownRpm(unknown, jrepr(comp))))
    }

    fn match_file(&mut self, comp: &J) -> Result<Option<i64>, Fault> {
        let filename = jstr(get(comp, "filename")?);
        let size = to_int(get(comp, "filesize")?)?;
        let mut type_mismatches = 0;
        for (id, checksum, ctype) in store::archives_named(self.ctx.db, &filename, size)? {
            let want = get(comp, "checksum_type")?;
            let want = want
                .as_str()
                .and_then(store::checksum_type_id)
                .ok_or_else(|| key_error(&jstr(want)))?;
            if ctype != want {
                type_mismatches += 1;
                continue;
            }
            if Some(checksum.as_str()) == get(comp, "checksum")?.as_str() {
                return Ok(Some(id));
            }
        }
        let sum = comp.get("checksum").map(jstr).unwrap_or_default();
        self.log(format!(
            "Failed to match archive {filename} (size {size}, sum {sum}"
        ));
        if type_mismatches > 0 {
            self.log(format!(
                "Match failed with {type_mismatches} type mismatches"
            ));
        }
        self.log(format!("IGNORING unmatched archive: {}", jrepr(comp)));
        Ok(None)
    }

    fn match_kojifile(&mut self, comp: &J) -> Result<i64, Fault> {
        let id = to_int(get(comp, "archive_id")?)?;
        let store::ArchiveCore {
            build_id,
            filename,
            size,
            checksum,
            checksum_type: ctype,
        } = store::archive_core(self.ctx.db, id)?
            .ok_or_else(|| Fault::generic(format!("No such archive: {id}")))?;
        let build = build_by_id(self.ctx, build_id)?;
        for key in ["nvr", "filename"] {
            if comp.get(key).is_none() {
                return Err(Fault::generic(format!(
                    "{key} field missing for component, archive_id={id}"
                )));
            }
        }
        let ctype_name = match ctype {
            0 => "md5",
            1 => "sha1",
            _ => "sha256",
        };
        let expected: [(&str, J); 5] = [
            ("nvr", J::String(str_field(&build, "nvr"))),
            ("filename", J::String(filename)),
            ("filesize", J::from(size)),
            ("checksum", J::String(checksum)),
            ("checksum_type", J::String(ctype_name.into())),
        ];
        for (key, want) in expected {
            if let Some(got) = comp.get(key)
                && got != &want
            {
                return Err(Fault::generic(format!(
                    "Component field {key} does not match for archive_id={id}: {} != {}",
                    jstr(&want),
                    jstr(got)
                )));
            }
        }
        Ok(id)
    }

    /// Koji's `prep_outputs` (+ `prep_archive`): every upload is checked (size and checksum)
    /// before anything is written.
    fn prep_outputs(
        &mut self,
        work: &Path,
        brs: &[PrepBuildroot],
        build: &PrepBuild,
    ) -> Result<Vec<PrepOutput>, Fault> {
        let outputs = items(get(&self.metadata, "output")?)?.to_vec();
        let mut out = Vec::new();
        for o in &outputs {
            let metadata_only = get_opt(o, "metadata_only")?.is_some_and(py_truthy);
            let relpath = match get_opt(o, "relpath")? {
                None => String::new(),
                Some(r) => jstr(r),
            };
            let filename = match get(o, "filename")? {
                J::String(s) => s.clone(),
                other => jstr(other),
            };
            let path = join_checked(&self.updir, &[&relpath, &filename])?;
            // The upload must be a regular file really inside the work directory.
            let is_log = o.get("type").and_then(J::as_str) == Some("log");
            let not_regular = |p: &Path| {
                Fault::generic(if is_log {
                    format!(
                        "Error importing build log. {} is not a regular file.",
                        p.display()
                    )
                } else {
                    format!(
                        "Error importing archive file, {} is not a regular file",
                        p.display()
                    )
                })
            };
            let meta = match std::fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(_) => return Err(no_such_file(&path)),
            };
            if !meta.is_file() {
                return Err(not_regular(&path));
            }
            let inside = path
                .parent()
                .and_then(|p| p.canonicalize().ok())
                .is_some_and(|p| p.starts_with(work));
            if !inside {
                return Err(py_exc(
                    "ValueError",
                    format!("Invalid path segment: {}", path.display()),
                ));
            }
            let size = meta.len();
            let want_size = get(o, "filesize")?;
            if want_size.as_u64() != Some(size) {
                return Err(Fault::generic(format!(
                    "File size {size} for {filename} (expected {}) doesn't match. Corrupted upload?",
                    jstr(want_size)
                )));
            }
            let hasher = Hasher::new(get(o, "checksum_type")?)?;
            let want_sum = get(o, "checksum")?;
            let sum = file_digest(&path, hasher)?;
            if want_sum.as_str() != Some(sum.as_str()) {
                return Err(Fault::generic(format!(
                    "File checksum mismatch for {filename}: {} != {sum}",
                    jstr(want_sum)
                )));
            }
            let br = get(o, "buildroot_id")?;
            let br_key = br.to_string();
            if !brs.iter().any(|b| b.key == br_key) {
                return Err(Fault::generic(format!(
                    "Missing buildroot metadata for id {}",
                    jrepr(br)
                )));
            }
            let kind = get(o, "type")?;
            let subdir = match get_opt(o, "subdir")? {
                None => None,
                Some(s) => {
                    let s = jstr(s);
                    segment_parts(&s)?;
                    Some(s).filter(|s| !s.is_empty())
                }
            };
            let archive = match kind.as_str() {
                Some("log") => {
                    if subdir.is_none() && base_name(&filename) == "cg_import.log" {
                        return Err(Fault::generic(format!(
                            "Error importing build log. {} already exists.",
                            work.parent()
                                .unwrap_or(work)
                                .join(format!(
                                    "packages/{}/{}/{}/data/logs/cg_import.log",
                                    build.name, build.version, build.release
                                ))
                                .display()
                        )));
                    }
                    None
                }
                Some("rpm") => {
                    return Err(Fault::generic(format!(
                        "Importing rpm outputs is not supported by this hub: {filename}"
                    )));
                }
                _ => Some(self.prep_archive(
                    o,
                    &filename,
                    subdir.as_deref(),
                    metadata_only,
                    build,
                )?),
            };
            out.push(PrepOutput {
                filename: filename.clone(),
                path,
                size: i64::try_from(size).unwrap_or(i64::MAX),
                checksum: sum,
                br_key,
                metadata_only,
                subdir,
                extra: get_opt(o, "extra")?.cloned(),
                archive,
            });
        }
        Ok(out)
    }

    /// Koji's `prep_archive` plus the checks `import_archive_internal` would make later.
    fn prep_archive(
        &mut self,
        o: &J,
        filename: &str,
        subdir: Option<&str>,
        metadata_only: bool,
        build: &PrepBuild,
    ) -> Result<PrepArchive, Fault> {
        let empty = J::Object(serde_json::Map::new());
        let extra = match o.get("extra") {
            None => &empty,
            Some(e @ J::Object(_)) => e,
            Some(other) => {
                return Err(py_exc(
                    "TypeError",
                    format!("'{}' object is not iterable", jtype(other)),
                ));
            }
        };
        let mut btype: Option<(String, J)> = None;
        if let J::Object(m) = extra {
            for key in ["maven", "win", "image"] {
                if let Some(v) = m.get(key) {
                    if btype.is_some() {
                        return Err(Fault::generic(format!(
                            "Output file has multiple types: {filename}"
                        )));
                    }
                    btype = Some((key.to_string(), v.clone()));
                    if subdir.is_some() {
                        return Err(Fault::generic("subdir field not allowed for legacy btypes"));
                    }
                }
            }
            if let Some(ti) = m.get("typeinfo") {
                let J::Object(ti) = ti else {
                    return Err(py_exc(
                        "TypeError",
                        format!("'{}' object is not iterable", jtype(ti)),
                    ));
                };
                for (key, v) in ti {
                    match &btype {
                        Some((b, _)) if b == key => {
                            return Err(Fault::generic(format!(
                                "Duplicate typeinfo for: {}",
                                py_str(key)
                            )));
                        }
                        Some(_) => {
                            return Err(Fault::generic(format!(
                                "Output file has multiple types: {filename}"
                            )));
                        }
                        None => btype = Some((key.clone(), v.clone())),
                    }
                }
            }
        }
        let Some((btype, type_info)) = btype else {
            return Err(Fault::generic(format!("No typeinfo for: {filename}")));
        };
        let Some((_, btype_id)) = build.typeinfo.iter().find(|(b, _)| *b == btype) else {
            return Err(Fault::generic(format!(
                "Output type {btype} not listed in build types"
            )));
        };
        let arch = if btype == "image" {
            Some(jstr(get(&type_info, "arch")?))
        } else {
            None
        };
        let want_type = get(o, "checksum_type")?;
        let checksum_type = match want_type.as_str().and_then(store::checksum_type_id) {
            Some(t) => t,
            None => return Err(key_error(&jstr(want_type))),
        };
        if metadata_only && !matches!(want_type.as_str(), Some("md5" | "sha256")) {
            return Err(Fault::generic(format!(
                "Unsupported checksum type: {}",
                jstr(want_type)
            )));
        }
        let base = if metadata_only {
            filename.to_string()
        } else {
            base_name(filename).to_string()
        };
        let (type_id, _) = store::archive_type_for(self.ctx.db, &base)?
            .ok_or_else(|| Fault::generic(format!("unsupported file extension: {base}")))?;
        let components = match o.get("components") {
            None => Vec::new(),
            Some(c) => self.match_components(c, Some(filename))?,
        };
        Ok(PrepArchive {
            btype,
            btype_id: *btype_id,
            type_id,
            checksum_type,
            arch,
            components,
        })
    }

    /// Koji's `CG_Importer.get_build`: the reserved build completed, or a new (recycled) one;
    /// then its build types.
    fn get_build(&mut self, b: &PrepBuild) -> Result<i64, Fault> {
        let caller = self.ctx.auth.user_id().unwrap_or(0);
        let extra = J::Object(b.extra.clone()).to_string();
        if let Some(t) = b.task_id
            && !store::task_exists(self.ctx.db, t)?
        {
            return Err(Fault::generic(format!("No such task: {t}")));
        }
        let build_id = match b.reserved {
            Some(id) => {
                store::complete_reserved(
                    self.ctx.db,
                    id,
                    Some(&extra),
                    b.owner.unwrap_or(caller),
                    b.source.as_deref(),
                    b.task_id,
                )?;
                store::clear_reservation(self.ctx.db, id)?;
                id
            }
            None => {
                let mut nb = NewBuild {
                    name: b.name.clone(),
                    row: store::BuildRow {
                        package_id: 0,
                        version: b.version.clone(),
                        release: b.release.clone(),
                        epoch: b.epoch,
                        state: rec::BUILD_COMPLETE,
                        task_id: b.task_id,
                        owner: b.owner.unwrap_or(caller),
                        start_ts: Some(b.start_ts),
                        completion_ts: Some(b.completion_ts),
                        source: b.source.clone(),
                        extra: Some(extra),
                        cg_id: Some(self.cg_id),
                    },
                };
                let nvr = format!("{}-{}-{}", b.name, b.version, b.release);
                new_build(self.ctx, &mut nb, &|_| nvr.clone())?
            }
        };
        for (_, btype_id) in &b.typeinfo {
            store::add_build_type(self.ctx.db, build_id, *btype_id)?;
        }
        Ok(build_id)
    }

    /// Koji's `import_brs`: `buildroot key -> new buildroot id`.
    fn import_brs(&mut self, brs: &[PrepBuildroot]) -> Result<Vec<(String, i64)>, Fault> {
        let mut ids = Vec::new();
        for br in brs {
            let id = store::insert_buildroot(self.ctx.db, &br.row)?;
            for c in &br.components {
                match c {
                    Component::Rpm(rpm, _, _) => store::add_buildroot_rpm(self.ctx.db, id, *rpm)?,
                    Component::Archive(a) => store::add_buildroot_archive(self.ctx.db, id, *a)?,
                    Component::UnknownRpm(..) => {}
                }
            }
            for (tool, version) in &br.tools {
                store::add_buildroot_tool(self.ctx.db, id, tool, version)?;
            }
            ids.push((br.key.clone(), id));
        }
        Ok(ids)
    }

    fn import_outputs(
        &mut self,
        build_id: i64,
        build_dir: &Path,
        outputs: &[PrepOutput],
        br_ids: &[(String, i64)],
    ) -> Result<(), Fault> {
        for o in outputs {
            let br = br_ids
                .iter()
                .find(|(k, _)| *k == o.br_key)
                .map(|(_, id)| *id)
                .ok_or_else(|| Fault::generic(format!("Unable to map buildroot {}", o.br_key)))?;
            let Some(a) = &o.archive else {
                // import_build_log
                if o.metadata_only {
                    continue;
                }
                let mut dir = build_dir.join("data/logs");
                if let Some(s) = &o.subdir {
                    dir = join_checked(&dir, &[s])?;
                }
                let dst = dir.join(base_name(&o.filename));
                if std::fs::symlink_metadata(&dst).is_ok() {
                    return Err(Fault::generic(format!(
                        "Error importing build log. {} already exists.",
                        dst.display()
                    )));
                }
                self.move_and_symlink(&o.path, &dst, true)?;
                continue;
            };
            let filename = if o.metadata_only {
                o.filename.clone()
            } else {
                base_name(&o.filename).to_string()
            };
            let archive_id = store::insert_archive(
                self.ctx.db,
                &store::ArchiveRow {
                    type_id: a.type_id,
                    btype_id: a.btype_id,
                    build_id,
                    buildroot_id: Some(br),
                    filename: filename.clone(),
                    size: o.size,
                    checksum: o.checksum.clone(),
                    checksum_type: a.checksum_type,
                    metadata_only: o.metadata_only,
                    extra: o.extra.as_ref().map(J::to_string),
                    arch: a.arch.clone(),
                },
            )?;
            if !o.metadata_only {
                let mut dir = if a.btype == "image" {
                    build_dir.join("images")
                } else {
                    build_dir.join("files").join(&a.btype)
                };
                if a.btype != "image"
                    && let Some(s) = &o.subdir
                {
                    dir = join_checked(&dir, &[s])?;
                }
                let dst = dir.join(&filename);
                if std::fs::symlink_metadata(&dst).is_ok() {
                    return Err(Fault::generic(format!(
                        "Error importing archive file, {} already exists",
                        dst.display()
                    )));
                }
                self.move_and_symlink(&o.path, &dst, false)?;
            }
            self.import_components(archive_id, &filename, &a.components)?;
        }
        Ok(())
    }

    /// Koji's `import_components`, plus the unknown RPMs this hub keeps; the import log says
    /// what matched.
    fn import_components(
        &mut self,
        archive_id: i64,
        filename: &str,
        components: &[Component],
    ) -> Result<(), Fault> {
        let (mut known, mut kept, mut archives) = (0, 0, 0);
        for c in components {
            match c {
                Component::Rpm(id, nvra, mismatch) => {
                    store::add_archive_rpm(self.ctx.db, archive_id, *id)?;
                    known += 1;
                    self.log(format!(
                        "Archive {archive_id} ({filename}): rpm component {nvra} matched rpm {id}{}",
                        if *mismatch { " (sigmd5 differs)" } else { "" }
                    ));
                }
                Component::UnknownRpm(r, repr) => {
                    let row = store::add_unknown_rpm(self.ctx.db, archive_id, r)?;
                    kept += 1;
                    self.log(format!(
                        "Archive {archive_id} ({filename}): KEEPING unmatched rpm component as rpm id -{row}: {repr}"
                    ));
                }
                Component::Archive(id) => {
                    store::add_archive_component(self.ctx.db, archive_id, *id)?;
                    archives += 1;
                }
            }
        }
        if !components.is_empty() {
            self.log(format!(
                "Archive {archive_id} ({filename}): {} components: {known} rpms matched known rpms, {kept} unknown rpms kept, {archives} archives matched",
                components.len()
            ));
        }
        Ok(())
    }

    /// Koji's `move_and_symlink`: the upload moves into the build directory and a relative
    /// symlink takes its place. Regular files only; the move is recorded for [`Self::undo`].
    fn move_and_symlink(&mut self, src: &Path, dst: &Path, log: bool) -> Result<(), Fault> {
        let meta = std::fs::symlink_metadata(src).map_err(|_| no_such_file(src))?;
        if !meta.is_file() {
            return Err(Fault::generic(if log {
                format!(
                    "Error importing build log. {} is not a regular file.",
                    src.display()
                )
            } else {
                format!(
                    "Error importing archive file, {} is not a regular file",
                    src.display()
                )
            }));
        }
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io_fault("mkdir", parent, e))?;
        }
        safer_move(src, dst)?;
        self.moved.push((src.to_path_buf(), dst.to_path_buf()));
        let target = relative_to(dst, src.parent().unwrap_or(Path::new("/")));
        std::os::unix::fs::symlink(&target, src).map_err(|e| io_fault("symlink", src, e))?;
        Ok(())
    }
}

/// `os.path.basename`.
fn base_name(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

// ---------------------------------------------------------------------------------------------
// Buildroots and build types

/// `listBuildroots` (registered in `records`): content-generator buildroots only, so the
/// host, tag, state, task and repo filters match nothing.
pub fn list_buildroots(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let q = query_opts(a.opt_struct("queryOpts")?)?;
    let empty = |q: &KojiQueryOpts| {
        Ok(if q.opts.count_only {
            Value::Int(0)
        } else {
            Value::Array(Vec::new())
        })
    };
    for k in ["hostID", "tagID", "state", "taskID"] {
        if a.get(k).is_some() {
            return empty(&q);
        }
    }
    if a.get("repoID").is_some_and(Value::truthy) {
        return empty(&q);
    }
    let int = |v: &Value| -> Result<i64, Fault> {
        match v {
            Value::Int(i) => Ok(*i),
            Value::String(s) => s.trim().parse().map_err(|_| {
                Fault::parameter(format!(
                    "Invalid type for value '{s}': <class 'str'>, expected type <class 'int'>"
                ))
            }),
            other => Err(Fault::parameter(format!(
                "Invalid type for value '{}': <class '{}'>, expected type <class 'int'>",
                pystr(other),
                other.type_name()
            ))),
        }
    };
    let mut conds = Vec::new();
    match a.get("buildrootID") {
        None => {}
        Some(Value::Array(l)) => conds.push(Cond::In(
            "id",
            l.iter()
                .map(int)
                .map(|r| r.map(Sql::Integer))
                .collect::<Result<_, _>>()?,
        )),
        Some(v) => conds.push(Cond::Eq("id", Sql::Integer(int(v)?))),
    }
    if let Some(r) = a.get("rpmID") {
        conds.push(store::buildroots_with_rpm(int(r)?));
    }
    if let Some(r) = a.get("archiveID") {
        conds.push(store::buildroots_with_archive(int(r)?));
    }
    let sel = query::select(ctx.db, &store::BUILDROOTS, &conds, &q.opts)?;
    Ok(shape(sel, q.as_list, |_| {}))
}

fn get_buildroot(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let info = arg(a, "buildrootID");
    let id = match info {
        Value::Int(i) => *i,
        Value::String(s) if s.trim().parse::<i64>().is_ok() => s.trim().parse().unwrap_or(0),
        other => {
            return Err(Fault::parameter(format!(
                "Invalid type for value '{}': <class '{}'>, expected type <class 'int'>",
                pystr(other),
                other.type_name()
            )));
        }
    };
    let found = query::rows(
        ctx.db,
        &store::BUILDROOTS,
        &[Cond::Eq("id", Sql::Integer(id))],
    )?
    .into_iter()
    .next();
    match found {
        Some(r) => Ok(Value::Struct(convert::record(r))),
        None if a.flag("strict", false) => Err(Fault::generic(format!("No such buildroot: {id}"))),
        None => Ok(Value::Nil),
    }
}

fn list_btypes(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let q = query_opts(a.opt_struct("queryOpts")?)?;
    let mut conds = Vec::new();
    if let Some(query) = a.opt_struct("query")? {
        if let Some(n) = query.get("name") {
            conds.push(Cond::Eq("name", Sql::Text(pystr(n))));
        }
        if let Some(i) = query.get("id") {
            match i.as_int() {
                Some(i) => conds.push(Cond::Eq("id", Sql::Integer(i))),
                None => return Ok(Value::Array(Vec::new())),
            }
        }
    }
    let sel = query::select(ctx.db, &store::BTYPES, &conds, &q.opts)?;
    Ok(shape(sel, q.as_list, |_| {}))
}

fn add_btype(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    ctx.require_perm("admin")?;
    let name = match arg(a, "name") {
        Value::String(s) => s.clone(),
        _ => return Err(Fault::generic("Name should be string")),
    };
    super::records::verify_name_str(&name)?;
    if rec::lookup(ctx.db, Named::Btype, Ref::Name(&name))?.is_some() {
        return Err(Fault::generic("btype already exists"));
    }
    store::create_btype(ctx.db, &name)?;
    Ok(Value::Nil)
}

// ---------------------------------------------------------------------------------------------
// tagBuild

/// Koji's `check_tag_access` + `assert_tag_access` for a user.
fn assert_tag_access(ctx: &Ctx<'_>, tag_id: i64, user_id: i64, force: bool) -> Result<(), Fault> {
    let perms = crate::store::users::perms(ctx.db, user_id)?;
    let has = |p: &str| perms.iter().any(|x| x == p);
    let tag = rec::tag_config(ctx.db, tag_id)?
        .ok_or_else(|| Fault::generic(format!("No such tagInfo: {tag_id}")))?;
    let reason = if tag.locked {
        Some("tag is locked".to_string())
    } else if let Some(perm_id) = tag.perm_id {
        let (_, needed) =
            rec::lookup(ctx.db, Named::Permission, Ref::Id(perm_id))?.ok_or_else(|| {
                Fault::generic(format!("No such entry in table permissions: {perm_id}"))
            })?;
        (!has(&needed)).then(|| format!("tag requires {needed} permission"))
    } else {
        None
    };
    match reason {
        Some(r) if !(force && has("admin")) => Err(Fault::not_allowed(r)),
        _ => Ok(()),
    }
}

/// Koji's `host.tagBuild` after its checks: untag from `fromtag`, then `_tag_build` (access as
/// the task owner; an existing tagging is refused unless forced).
fn host_tag_build(
    ctx: &Ctx<'_>,
    user: &UserRow,
    (tag_id, tag_name): (i64, &str),
    build_id: i64,
    nvr: &str,
    fromtag: Option<&(i64, String)>,
    force: bool,
) -> Result<(), Fault> {
    if let Some((ft, ft_name)) = fromtag {
        assert_tag_access(ctx, *ft, user.id, force)?;
        if !store::untag(ctx.db, *ft, build_id)? {
            return Err(Fault::tag(format!("build {nvr} not in tag {ft_name}")));
        }
    }
    assert_tag_access(ctx, tag_id, user.id, force)?;
    if store::is_tagged(ctx.db, tag_id, build_id)? && !force {
        return Err(Fault::tag(format!(
            "build {nvr} already tagged ({tag_name})"
        )));
    }
    store::tag(ctx.db, tag_id, build_id, user.id)?;
    Ok(())
}

fn tag_build(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let user = ctx.auth.require_login()?.user.clone();
    let build = build_strict(ctx, arg(a, "build"))?;
    let tag_info = arg(a, "tag");
    let tag_ref = match tag_info {
        Value::Int(i) => Ref::Id(*i),
        Value::String(s) => Ref::Name(s),
        Value::Struct(d) => match (d.get("id").and_then(Value::as_int), d.get("name")) {
            (Some(i), _) => Ref::Id(i),
            (None, Some(Value::String(s))) => Ref::Name(s),
            _ => {
                return Err(Fault::parameter(format!(
                    "Invalid name or id value: {}",
                    pystr(tag_info)
                )));
            }
        },
        other => {
            return Err(Fault::parameter(format!(
                "Invalid tagInfo type: {}",
                other.type_name()
            )));
        }
    };
    let (tag_id, tag_name) = rec::lookup(ctx.db, Named::Tag, tag_ref)?
        .ok_or_else(|| Fault::generic(format!("No such tagInfo: {}", py_repr(tag_info))))?;
    let force = a.flag("force", false);
    let fromtag = match a.get("fromtag").filter(|v| v.truthy()) {
        None => None,
        Some(info) => {
            let r = match info {
                Value::Int(i) => Ref::Id(*i),
                Value::String(s) => Ref::Name(s),
                other => {
                    return Err(Fault::parameter(format!(
                        "Invalid name or id value: {}",
                        pystr(other)
                    )));
                }
            };
            Some(rec::lookup(ctx.db, Named::Tag, r)?.ok_or_else(|| {
                Fault::generic(format!("No such entry in table tag: {}", pystr(info)))
            })?)
        }
    };
    let build_id = int_field(&build, "id").unwrap_or(0);
    let nvr = str_field(&build, "nvr");
    let state = int_field(&build, "state").unwrap_or(-1);
    if state != rec::BUILD_COMPLETE {
        return Err(Fault::tag(format!(
            "build {nvr} not complete: state {}",
            state_name(state)
        )));
    }
    assert_tag_access(ctx, tag_id, user.id, force)?;
    if let Some((ft, _)) = &fromtag {
        assert_tag_access(ctx, *ft, user.id, force)?;
    }
    // Package list check (with inheritance); an admin's force lists the package.
    let pkg_id = int_field(&build, "package_id").unwrap_or(0);
    let listed = rec::package_list(
        ctx.db,
        &rec::PkgListQuery {
            tag_id: Some(tag_id),
            pkg_id: Some(pkg_id),
            inherit: true,
            with_blocked: true,
            ..rec::PkgListQuery::default()
        },
    )?;
    let name = str_field(&build, "name");
    let pkg_error = match listed.first() {
        None => Some(format!("Package {name} not in list for {tag_name}")),
        Some(r) if rec::field_int(r, "blocked").unwrap_or(0) != 0 => {
            Some(format!("Package {name} blocked in {tag_name}"))
        }
        Some(_) => None,
    };
    if let Some(e) = pkg_error {
        if force && ctx.has_perm("admin")? {
            let extra_arches = listed
                .first()
                .and_then(|r| rec::field_text(r, "extra_arches"))
                .map(str::to_string);
            rec::pkglist_set(
                ctx.db,
                tag_id,
                pkg_id,
                user.id,
                false,
                extra_arches.as_deref(),
            )?;
            tracing::info!(tag = %tag_name, build = %nvr, "package list entry added by force");
        } else {
            return Err(Fault::tag(e));
        }
    }
    // The `tag` policy is not configured: Koji then allows (MissingPolicyOk).
    let fromtag_id = fromtag.as_ref().map(|(id, _)| *id);
    let request = wire::write_call(
        "tagBuild",
        &[
            Value::Int(tag_id),
            Value::Int(build_id),
            Value::Bool(force),
            fromtag_id.map_or(Value::Nil, Value::Int),
        ],
    );
    let task_id = tasks::make(
        ctx.db,
        &tasks::TaskSpec {
            method: "tagBuild".into(),
            request_xml: request,
            owner: Some(user.id),
            priority: Some(10),
            arch: Some("noarch".into()),
            ..tasks::TaskSpec::default()
        },
    )?;
    // What the tagBuild task does on a builder (host.tagBuild), done here and now.
    ctx.db
        .execute_batch("SAVEPOINT tag_build")
        .map_err(crate::store::StoreError::from)?;
    let done = host_tag_build(
        ctx,
        &user,
        (tag_id, &tag_name),
        build_id,
        &nvr,
        fromtag.as_ref(),
        force,
    );
    let end = match done {
        Ok(()) => {
            ctx.db
                .execute_batch("RELEASE tag_build")
                .map_err(crate::store::StoreError::from)?;
            tracing::info!(task_id, tag = %tag_name, build = %nvr, "tagBuild: tagged");
            (tasks::CLOSED, wire::write_response(&Value::Nil))
        }
        Err(f) => {
            ctx.db
                .execute_batch("ROLLBACK TO tag_build; RELEASE tag_build")
                .map_err(crate::store::StoreError::from)?;
            tracing::info!(task_id, fault = %f.message, "tagBuild: task failed");
            (tasks::FAILED, wire::write_fault(&f))
        }
    };
    store::mark_started(ctx.db, task_id)?;
    tasks::finish(ctx.db, task_id, end.0, &end.1)?;
    Ok(Value::Int(task_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_json_dumps() {
        let j: J = serde_json::from_str(r#"{"a": [1, 2.5, "é\n"], "b": {}, "c": []}"#).unwrap();
        assert_eq!(
            py_json(&j, None),
            r#"{"a": [1, 2.5, "\u00e9\n"], "b": {}, "c": []}"#
        );
        assert_eq!(
            py_json(&j, Some(2)),
            "{\n  \"a\": [\n    1,\n    2.5,\n    \"\\u00e9\\n\"\n  ],\n  \"b\": {},\n  \"c\": []\n}"
        );
    }

    #[test]
    fn path_segments() {
        assert_eq!(segment_parts("a/./b//c").unwrap(), vec!["a", "b", "c"]);
        assert!(segment_parts("").unwrap().is_empty());
        for bad in ["../x", "a/../b", "/etc", "..", "a\0b"] {
            let f = segment_parts(bad).unwrap_err();
            assert_eq!(f.code, 1);
            assert!(
                f.message
                    .starts_with("<class 'ValueError'>: Invalid path segment")
            );
        }
        assert!(check_dir_name("name", "foo").is_ok());
        for bad in ["", ".", "..", "a/b"] {
            assert!(check_dir_name("name", bad).is_err());
        }
    }

    #[test]
    fn relative_links() {
        assert_eq!(
            relative_to(
                Path::new("/t/packages/n/v/r/images/f"),
                Path::new("/t/uploads/up/dir")
            ),
            PathBuf::from("../../../packages/n/v/r/images/f")
        );
    }

    #[test]
    fn nvr_parsing() {
        assert_eq!(
            parse_nvr("foo-bar-1.0-1.el9").unwrap(),
            ("foo-bar".into(), "1.0".into(), "1.el9".into())
        );
        assert!(parse_nvr("foo").is_err());
        assert!(parse_nvr("foo-1-").is_err());
    }

    #[test]
    fn python_conversions() {
        assert_eq!(to_int(&J::from("12")).unwrap(), 12);
        assert_eq!(to_int(&J::from(3.9)).unwrap(), 3);
        assert!(to_int(&J::from("x")).is_err());
        assert_eq!(to_float(&J::from("1.5")).unwrap(), 1.5);
        assert_eq!(
            to_float(&J::Null).unwrap_err().message,
            "<class 'TypeError'>: float() argument must be a string or a real number, not 'NoneType'"
        );
        assert_eq!(
            get(&J::Null, "x").unwrap_err().message,
            "<class 'TypeError'>: 'NoneType' object is not subscriptable"
        );
    }
}
