//! Tags, inheritance, build targets, package lists, channels, hosts, and the read side of
//! builds, archives and RPMs (the corresponding parts of Koji's `kojihub.py`).
//!
//! Names, parameters, defaults, return shapes and fault texts follow Koji 1.36. This hub keeps
//! only the current state of its records, so `event=` arguments are accepted and ignored.

use crate::xmlrpc::value::py_repr;
use std::cmp::Ordering;
use std::path::Path;

use rusqlite::types::Value as Sql;

use crate::hub::convert;
use crate::hub::{Ctx, Method, value_to_json};
use crate::params;
use crate::store::query::{self, Cond, Selected};
use crate::store::records::{self as rec, InheritLink, Named, PkgListQuery, Ref};
use crate::store::users::{self, UserRef, UserRow};
use crate::xmlrpc::sig::{opt, req};
use crate::xmlrpc::{Args, Fault, FaultCode, Struct, Value};

use super::{KojiQueryOpts, query_opts, shape};

pub fn methods() -> Vec<Method> {
    let mut v = tag_methods();
    v.extend(package_methods());
    v.extend(host_methods());
    v.extend(build_methods());
    v.extend(compat_methods());
    v
}

/// Calls `koji taginfo` makes that this hub answers with "nothing configured".
fn compat_methods() -> Vec<Method> {
    vec![
        Method::read(
            "getTagGroups",
            params![
                req("tag"),
                opt("event", "None"),
                opt("inherit", "True"),
                opt("incl_pkgs", "True"),
                opt("incl_reqs", "True"),
                opt("incl_blocked", "False"),
            ],
            "Return the comps groups of a tag (this hub has none).",
            get_tag_groups,
        ),
        Method::read(
            "getRepo",
            params![
                req("tag"),
                opt("state", "None"),
                opt("event", "None"),
                opt("dist", "False"),
                opt("min_event", "None"),
            ],
            "Return the current repo of a tag (this hub generates none, so None).",
            get_repo,
        ),
        Method::read(
            "mavenEnabled",
            &[],
            "Whether Maven support is enabled (it is not).",
            |_, _| Ok(Value::Bool(false)),
        ),
        Method::read(
            "winEnabled",
            &[],
            "Whether Windows support is enabled (it is not).",
            |_, _| Ok(Value::Bool(false)),
        ),
    ]
}

fn tag_methods() -> Vec<Method> {
    vec![
        Method::write(
            "createTag",
            params![
                req("name"),
                opt("parent", "None"),
                opt("arches", "None"),
                opt("perm", "None"),
                opt("locked", "False"),
                opt("maven_support", "False"),
                opt("maven_include_all", "False"),
                opt("extra", "None"),
            ],
            "Create a new tag (parent: inherit from it at priority 0); returns its id.",
            create_tag,
        ),
        Method::write(
            "editTag2",
            params![req("tagInfo")],
            "Edit a tag: name, arches, locked, perm, maven_support, maven_include_all, extra \
             (merged), remove_extra, block_extra.",
            edit_tag2,
        )
        .varkw("kwargs"),
        Method::read(
            "getTag",
            params![
                req("tagInfo"),
                opt("strict", "False"),
                opt("event", "None"),
                opt("blocked", "False"),
            ],
            "Get a tag by id or name: {id, name, perm_id, perm, arches, locked, maven_support, \
             maven_include_all, extra}.",
            get_tag,
        ),
        Method::read(
            "listTags",
            params![
                opt("build", "None"),
                opt("package", "None"),
                opt("perms", "True"),
                opt("queryOpts", "None"),
                opt("pattern", "None"),
            ],
            "List tags, optionally those of a build or a package, or matching a glob pattern.",
            list_tags,
        ),
        Method::read(
            "getBuildConfig",
            params![req("tag"), opt("event", "None")],
            "Return a tag with arches and extra resolved through inheritance.",
            get_build_config,
        ),
        Method::read(
            "getInheritanceData",
            params![req("tag"), opt("event", "None")],
            "Return the inheritance links of a tag to its parents.",
            get_inheritance_data,
        ),
        Method::read(
            "getFullInheritance",
            params![req("tag"), opt("event", "None"), opt("reverse", "False")],
            "Return the full, ordered inheritance of a tag (descendants with reverse=True).",
            get_full_inheritance,
        )
        .varkw("kwargs"),
        Method::read(
            "getTagExternalRepos",
            params![
                opt("tag_info", "None"),
                opt("repo_info", "None"),
                opt("event", "None"),
            ],
            "List tag/external repo associations (this hub has no external repos).",
            get_tag_external_repos,
        ),
        Method::write(
            "createBuildTarget",
            params![req("name"), req("build_tag"), req("dest_tag")],
            "Create a new build target.",
            create_build_target,
        ),
        Method::write(
            "editBuildTarget",
            params![
                req("buildTargetInfo"),
                req("name"),
                req("build_tag"),
                req("dest_tag"),
            ],
            "Set the name, build tag and destination tag of a build target.",
            edit_build_target,
        ),
        Method::write(
            "deleteBuildTarget",
            params![req("buildTargetInfo")],
            "Delete a build target.",
            delete_build_target,
        ),
        Method::read(
            "getBuildTargets",
            params![
                opt("info", "None"),
                opt("event", "None"),
                opt("buildTagID", "None"),
                opt("destTagID", "None"),
                opt("queryOpts", "None"),
            ],
            "List build targets, optionally by name/id, build tag or destination tag.",
            get_build_targets,
        ),
        Method::read(
            "getBuildTarget",
            params![req("info"), opt("event", "None"), opt("strict", "False")],
            "Get one build target by name or id: {id, name, build_tag, build_tag_name, \
             dest_tag, dest_tag_name}.",
            get_build_target,
        ),
    ]
}

fn package_methods() -> Vec<Method> {
    vec![
        Method::write(
            "packageListAdd",
            params![
                req("taginfo"),
                req("pkginfo"),
                opt("owner", "None"),
                opt("block", "None"),
                opt("extra_arches", "None"),
                opt("force", "False"),
                opt("update", "False"),
            ],
            "Add a package to a tag's package list (or update its entry).",
            package_list_add,
        ),
        Method::write(
            "packageListBlock",
            params![req("taginfo"), req("pkginfo"), opt("force", "False")],
            "Block a listed package in a tag (and the tags inheriting from it).",
            package_list_block,
        ),
        Method::write(
            "packageListUnblock",
            params![req("taginfo"), req("pkginfo"), opt("force", "False")],
            "Lift a block of the package in this tag (an inherited one by an unblocked entry here).",
            package_list_unblock,
        ),
        Method::read(
            "getPackageConfig",
            params![req("tag"), req("pkg"), opt("event", "None")],
            "Return the package-list entry of a package in a tag (following inheritance).",
            get_package_config,
        ),
        Method::read(
            "listPackages",
            params![
                opt("tagID", "None"),
                opt("userID", "None"),
                opt("pkgID", "None"),
                opt("prefix", "None"),
                opt("inherited", "False"),
                opt("with_dups", "False"),
                opt("event", "None"),
                opt("queryOpts", "None"),
                opt("with_owners", "True"),
                opt("with_blocked", "True"),
            ],
            "List packages, or package-list entries of a tag, owner or package.",
            list_packages,
        ),
        Method::read(
            "getPackageID",
            params![req("name"), opt("strict", "False")],
            "Return the id of a package by name, or None.",
            get_package_id,
        ),
        Method::read(
            "getPackage",
            params![req("info"), opt("strict", "False"), opt("create", "False")],
            "Return {id, name} of a package by id or name.",
            get_package,
        ),
    ]
}

fn host_methods() -> Vec<Method> {
    vec![
        Method::write(
            "addChannel",
            params![req("channel_name"), opt("description", "None")],
            "Add a channel; returns its id.",
            add_channel,
        ),
        Method::write(
            "editChannel",
            params![req("channelInfo")],
            "Edit a channel's name, description or comment; returns whether it changed.",
            edit_channel,
        )
        .varkw("kw"),
        Method::write(
            "enableChannel",
            params![req("channelname"), opt("comment", "None")],
            "Mark a channel as enabled.",
            |c, a| set_channel_enabled(c, a, true),
        ),
        Method::write(
            "disableChannel",
            params![req("channelname"), opt("comment", "None")],
            "Mark a channel as disabled.",
            |c, a| set_channel_enabled(c, a, false),
        ),
        Method::read(
            "getChannel",
            params![req("channelInfo"), opt("strict", "False")],
            "Get a channel by id or name: {id, name, description, enabled, comment}.",
            get_channel,
        ),
        Method::read(
            "listChannels",
            params![
                opt("hostID", "None"),
                opt("event", "None"),
                opt("enabled", "None"),
            ],
            "List channels, optionally those of a host.",
            list_channels,
        ),
        Method::write(
            "addHost",
            params![
                req("hostname"),
                req("arches"),
                opt("krb_principal", "None"),
                opt("force", "False"),
            ],
            "Add a builder host (and its host user); returns the host id.",
            add_host,
        ),
        Method::read(
            "getHost",
            params![
                req("hostInfo"),
                opt("strict", "False"),
                opt("event", "None")
            ],
            "Get a host by id or name.",
            get_host,
        ),
        Method::write(
            "editHost",
            params![req("hostInfo")],
            "Edit a host's arches, capacity, description or comment; returns whether it changed.",
            edit_host,
        )
        .varkw("kw"),
        Method::write(
            "enableHost",
            params![req("hostname")],
            "Mark a host as enabled.",
            |c, a| set_host_enabled(c, a, true),
        ),
        Method::write(
            "disableHost",
            params![req("hostname")],
            "Mark a host as disabled.",
            |c, a| set_host_enabled(c, a, false),
        ),
        Method::write(
            "addHostToChannel",
            params![
                req("hostname"),
                req("channel_name"),
                opt("create", "False"),
                opt("force", "False"),
            ],
            "Subscribe a host to a channel (create=True creates the channel).",
            add_host_to_channel,
        ),
        Method::write(
            "removeHostFromChannel",
            params![req("hostname"), req("channel_name")],
            "Unsubscribe a host from a channel.",
            remove_host_from_channel,
        ),
        Method::read(
            "listHosts",
            params![
                opt("arches", "None"),
                opt("channelID", "None"),
                opt("ready", "None"),
                opt("enabled", "None"),
                opt("userID", "None"),
                opt("queryOpts", "None"),
            ],
            "List builder hosts.",
            list_hosts,
        ),
        Method::read(
            "getLastHostUpdate",
            params![req("hostID"), opt("ts", "False")],
            "Return when the host last contacted the hub (None if never).",
            get_last_host_update,
        ),
    ]
}

fn build_methods() -> Vec<Method> {
    vec![
        Method::read(
            "getBuild",
            params![req("buildInfo"), opt("strict", "False")],
            "Get a build by id, N-V-R or {name, version, release}.",
            get_build,
        ),
        Method::read(
            "listBuilds",
            params![
                opt("packageID", "None"),
                opt("userID", "None"),
                opt("taskID", "None"),
                opt("prefix", "None"),
                opt("state", "None"),
                opt("volumeID", "None"),
                opt("source", "None"),
                opt("createdBefore", "None"),
                opt("createdAfter", "None"),
                opt("completeBefore", "None"),
                opt("completeAfter", "None"),
                opt("type", "None"),
                opt("typeInfo", "None"),
                opt("queryOpts", "None"),
                opt("pattern", "None"),
                opt("cgID", "None"),
                opt("draft", "None"),
            ],
            "List builds matching the given filters.",
            list_builds,
        ),
        Method::read(
            "listTagged",
            params![
                req("tag"),
                opt("event", "None"),
                opt("inherit", "False"),
                opt("prefix", "None"),
                opt("latest", "False"),
                opt("package", "None"),
                opt("owner", "None"),
                opt("type", "None"),
                opt("strict", "True"),
                opt("extra", "False"),
                opt("draft", "None"),
            ],
            "List the complete builds tagged into a tag.",
            list_tagged,
        ),
        Method::read(
            "getNextRelease",
            params![req("build_info"), opt("incr", "1")],
            "Return the next release for {name, version}: the latest release incremented.",
            get_next_release,
        ),
        Method::read("listVolumes", &[], "List storage volumes.", list_volumes),
        Method::read(
            "getVolume",
            params![req("volume"), opt("strict", "False")],
            "Look a storage volume up by id or name.",
            get_volume,
        ),
        Method::read(
            "getBuildType",
            params![req("buildInfo"), opt("strict", "False")],
            "Return the build's types and their type info.",
            get_build_type,
        ),
        Method::read(
            "getMavenBuild",
            params![req("buildInfo"), opt("strict", "False")],
            "Return Maven data of a build (this hub has no Maven builds).",
            |c, a| typed_build(c, a, "maven"),
        ),
        Method::read(
            "getWinBuild",
            params![req("buildInfo"), opt("strict", "False")],
            "Return Windows data of a build (this hub has no Windows builds).",
            |c, a| typed_build(c, a, "Windows"),
        ),
        Method::read(
            "getImageBuild",
            params![req("buildInfo"), opt("strict", "False")],
            "Return {build_id} if the build is an image build.",
            |c, a| typed_build(c, a, "image"),
        ),
        Method::read(
            "getBuildLogs",
            params![req("build")],
            "List the log files of a build: [{name, dir, path}].",
            get_build_logs,
        ),
        Method::read(
            "listArchives",
            params![
                opt("buildID", "None"),
                opt("buildrootID", "None"),
                opt("componentBuildrootID", "None"),
                opt("hostID", "None"),
                opt("type", "None"),
                opt("filename", "None"),
                opt("size", "None"),
                opt("checksum", "None"),
                opt("checksum_type", "None"),
                opt("typeInfo", "None"),
                opt("queryOpts", "None"),
                opt("imageID", "None"),
                opt("archiveID", "None"),
                opt("strict", "False"),
            ],
            "List archives matching the given filters.",
            list_archives,
        ),
        Method::read(
            "getArchive",
            params![req("archive_id"), opt("strict", "False")],
            "Get an archive by id.",
            get_archive,
        ),
        Method::read(
            "listRPMs",
            params![
                opt("buildID", "None"),
                opt("buildrootID", "None"),
                opt("imageID", "None"),
                opt("componentBuildrootID", "None"),
                opt("hostID", "None"),
                opt("arches", "None"),
                opt("queryOpts", "None"),
                opt("draft", "None"),
            ],
            "List RPMs of a build, buildroot or image.",
            list_rpms,
        ),
        Method::read(
            "getRPM",
            params![
                req("rpminfo"),
                opt("strict", "False"),
                opt("multi", "False")
            ],
            "Get an RPM by id, N-V-R.A or {name, version, release, arch}.",
            get_rpm,
        ),
        Method::read(
            "getRPMHeaders",
            params![
                opt("rpmID", "None"),
                opt("taskID", "None"),
                opt("filepath", "None"),
                opt("headers", "None"),
                opt("strict", "False"),
            ],
            "Return requested RPM header values (this hub reads none: always {}).",
            get_rpm_headers,
        ),
        Method::read(
            "listBuildroots",
            params![
                opt("hostID", "None"),
                opt("tagID", "None"),
                opt("state", "None"),
                opt("rpmID", "None"),
                opt("archiveID", "None"),
                opt("taskID", "None"),
                opt("buildrootID", "None"),
                opt("repoID", "None"),
                opt("queryOpts", "None"),
            ],
            "List buildroots (the content-generator buildroots CGImport records).",
            list_buildroots,
        ),
        Method::read(
            "queryRPMSigs",
            params![
                opt("rpm_id", "None"),
                opt("sigkey", "None"),
                opt("queryOpts", "None"),
            ],
            "List RPM signatures (this hub records none).",
            query_rpm_sigs,
        ),
        Method::read(
            "getChangelogEntries",
            params![
                opt("buildID", "None"),
                opt("taskID", "None"),
                opt("filepath", "None"),
                opt("author", "None"),
                opt("before", "None"),
                opt("after", "None"),
                opt("queryOpts", "None"),
                opt("strict", "False"),
            ],
            "Return changelog entries of a build's SRPM (this hub reads none).",
            get_changelog_entries,
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// Shared helpers

/// Python's `str()` of a value, for fault texts that use `%s`.
fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => py_repr(other),
    }
}

/// Python's `type()` as printed, e.g. `<class 'float'>`.
fn py_type(v: &Value) -> String {
    format!("<class '{}'>", v.type_name())
}

/// Koji's `name_or_id_clause`: an int is an id, a string a name, a dict has `id` or `name`.
fn name_or_id(info: &Value) -> Result<Ref<'_>, Fault> {
    let bad = || Fault::parameter(format!("Invalid name or id value: {}", py_repr(info)));
    match info {
        Value::Int(i) => Ok(Ref::Id(*i)),
        Value::Bool(b) => Ok(Ref::Id(i64::from(*b))),
        Value::String(s) => Ok(Ref::Name(s)),
        Value::Struct(d) => match (d.get("id"), d.get("name")) {
            (Some(Value::Int(i)), _) => Ok(Ref::Id(*i)),
            (Some(Value::String(s)), _) => s.trim().parse().map(Ref::Id).map_err(|_| bad()),
            (Some(_), _) => Err(bad()),
            (None, Some(Value::String(n))) => Ok(Ref::Name(n)),
            _ => Err(bad()),
        },
        _ => Err(bad()),
    }
}

/// Koji's `lookup_name(table, info)`.
fn lookup(ctx: &Ctx<'_>, what: Named, info: &Value) -> Result<Option<(i64, String)>, Fault> {
    Ok(rec::lookup(ctx.db, what, name_or_id(info)?)?)
}

/// Koji's `lookup_name(table, info, strict=True)`.
fn lookup_strict(ctx: &Ctx<'_>, what: Named, info: &Value) -> Result<(i64, String), Fault> {
    lookup(ctx, what, info)?.ok_or_else(|| {
        Fault::generic(format!(
            "No such entry in table {}: {}",
            what.koji_table(),
            py_str(info)
        ))
    })
}

fn arg<'a>(a: &'a Args, name: &str) -> &'a Value {
    const NIL: &Value = &Value::Nil;
    a.get(name).unwrap_or(NIL)
}

fn int_value(v: &Value) -> Result<i64, Fault> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::Bool(b) => Ok(i64::from(*b)),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| Fault::parameter(format!("Invalid int value: {}", py_repr(v)))),
        other => Err(Fault::parameter(format!(
            "Invalid int value: {}",
            py_repr(other)
        ))),
    }
}

/// Koji's `verify_name_internal` with the default `MaxNameLengthInternal` and
/// `RegexNameInternal`.
fn verify_name_internal(name: &Value) -> Result<&str, Fault> {
    let Value::String(name) = name else {
        return Err(Fault::generic("Name should be string"));
    };
    verify_name_str(name)
}

/// [`verify_name_internal`] on a string (also used by the content-generator import).
pub(super) fn verify_name_str(name: &str) -> Result<&str, Fault> {
    if name.chars().count() > 256 {
        return Err(Fault::generic(format!(
            "Name {name} is too long. Max length is 256 characters"
        )));
    }
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_.+-".contains(c))
    {
        return Err(Fault::generic(format!(
            "Name {name} does not match RegexNameInternal value"
        )));
    }
    Ok(name)
}

/// Koji's `parse_arches`: a comma/space separated string (only spaces when `strict`) or a
/// list, normalised to a space-separated string.
fn parse_arches(v: &Value, strict: bool, allow_none: bool) -> Result<String, Fault> {
    let list: Vec<String> = match v {
        Value::Nil if allow_none => Vec::new(),
        Value::Array(a) => a
            .iter()
            .map(|x| match x {
                Value::String(s) => Ok(s.clone()),
                other => Err(Fault::generic(format!("Invalid arch: {}", py_repr(other)))),
            })
            .collect::<Result<_, _>>()?,
        Value::String(s) => {
            let s = if strict {
                s.clone()
            } else {
                s.replace(',', " ")
            };
            s.split_whitespace().map(str::to_string).collect()
        }
        other => {
            return Err(Fault::generic(format!(
                "Invalid arches: {}",
                py_repr(other)
            )));
        }
    };
    for arch in &list {
        if !arch
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(Fault::generic("Architecture can be only [a-zA-Z0-9_-]"));
        }
    }
    Ok(list.join(" "))
}

/// Koji's `get_user(userInfo)`: id, name (or Kerberos principal), or `{id|name|krb_principal}`.
fn find_user(ctx: &Ctx<'_>, info: &Value) -> Result<Option<UserRow>, Fault> {
    let db = ctx.db;
    Ok(match info {
        Value::Int(id) => users::get(db, &UserRef::Id(*id))?,
        Value::String(s) => match users::get(db, &UserRef::Name(s))? {
            Some(u) => Some(u),
            None => users::get_by_krb(db, s)?,
        },
        Value::Struct(d) => {
            if let Some(id) = d.get("id").and_then(Value::as_int) {
                users::get(db, &UserRef::Id(id))?
            } else if let Some(n) = d.get("name").and_then(Value::as_str) {
                users::get(db, &UserRef::Name(n))?
            } else if let Some(k) = d.get("krb_principal").and_then(Value::as_str) {
                users::get_by_krb(db, k)?
            } else {
                None
            }
        }
        other => {
            return Err(Fault::generic(format!(
                "Invalid type for userInfo: {}",
                py_type(other)
            )));
        }
    })
}

fn find_user_strict(ctx: &Ctx<'_>, info: &Value) -> Result<UserRow, Fault> {
    find_user(ctx, info)?.ok_or_else(|| Fault::generic(format!("No such user: {}", py_repr(info))))
}

/// What an empty query result looks like under `queryOpts`.
fn empty(q: &KojiQueryOpts) -> Value {
    if q.opts.count_only {
        Value::Int(0)
    } else {
        Value::Array(Vec::new())
    }
}

/// Python-ish ordering of two values for sorting result lists.
fn py_cmp(a: &Value, b: &Value) -> Ordering {
    let num = |v: &Value| match v {
        Value::Int(i) => Some(*i as f64),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        Value::Double(d) => Some(*d),
        _ => None,
    };
    match (a, b) {
        (Value::Nil, Value::Nil) => Ordering::Equal,
        (Value::Nil, _) => Ordering::Less,
        (_, Value::Nil) => Ordering::Greater,
        (Value::String(x), Value::String(y)) => x.cmp(y),
        _ => match (num(a), num(b)) {
            (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
            _ => Ordering::Equal,
        },
    }
}

/// Koji's `_applyQueryOpts` for results assembled in memory, plus `asList`.
fn finish(mut items: Vec<Struct>, q: &KojiQueryOpts) -> Value {
    if !q.opts.order.is_empty() {
        items.sort_by(|a, b| {
            for (k, desc) in &q.opts.order {
                let o = py_cmp(
                    a.get(k).unwrap_or(&Value::Nil),
                    b.get(k).unwrap_or(&Value::Nil),
                );
                let o = if *desc { o.reverse() } else { o };
                if o != Ordering::Equal {
                    return o;
                }
            }
            Ordering::Equal
        });
    }
    let offset = q.opts.offset.unwrap_or(0).max(0) as usize;
    let mut items: Vec<Struct> = items.into_iter().skip(offset).collect();
    if let Some(l) = q.opts.limit.filter(|l| *l > 0) {
        items.truncate(l as usize);
    }
    if q.opts.count_only {
        return Value::Int(items.len() as i64);
    }
    Value::Array(
        items
            .into_iter()
            .map(|s| {
                if q.as_list {
                    let mut pairs: Vec<(String, Value)> = s.into_iter().collect();
                    pairs.sort_by(|a, b| a.0.cmp(&b.0));
                    Value::Array(pairs.into_iter().map(|(_, v)| v).collect())
                } else {
                    Value::Struct(s)
                }
            })
            .collect(),
    )
}

fn first(recs: Vec<crate::store::Record>) -> Option<Struct> {
    recs.into_iter().next().map(convert::record)
}

fn json_map(v: &Value) -> serde_json::Map<String, serde_json::Value> {
    match value_to_json(v) {
        serde_json::Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// Tags

/// Koji's `get_tag` (non-strict); `blocked` shows extra values as `[blocked, value]` pairs.
fn tag_struct(ctx: &Ctx<'_>, info: &Value, blocked: bool) -> Result<Option<Struct>, Fault> {
    let Some(r) = rec::get_tag(ctx.db, name_or_id(info)?)? else {
        return Ok(None);
    };
    let mut s = convert::record(r);
    if !matches!(s.get("extra"), Some(Value::Struct(_))) {
        s.insert("extra", Struct::new());
    }
    if blocked && let Some(Value::Struct(extra)) = s.remove("extra") {
        let pairs: Struct = extra
            .into_iter()
            .map(|(k, v)| (k, Value::Array(vec![Value::Bool(false), v])))
            .collect();
        s.insert("extra", pairs);
    }
    Ok(Some(s))
}

fn tag_strict(ctx: &Ctx<'_>, info: &Value) -> Result<Struct, Fault> {
    tag_struct(ctx, info, false)?
        .ok_or_else(|| Fault::generic(format!("No such tagInfo: {}", py_repr(info))))
}

fn id_of(s: &Struct) -> i64 {
    s.get("id").and_then(Value::as_int).unwrap_or(0)
}

fn name_of(s: &Struct) -> String {
    s.get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn create_tag(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    ctx.require_perm("tag")?;
    let name = verify_name_internal(arg(a, "name"))?;
    let arches = parse_arches(arg(a, "arches"), true, true)?;
    if a.flag("maven_support", false) || a.flag("maven_include_all", false) {
        return Err(Fault::generic("Maven support not enabled"));
    }
    if rec::lookup(ctx.db, Named::Tag, Ref::Name(name))?.is_some() {
        return Err(Fault::generic(format!(
            "A tag with the name '{name}' already exists"
        )));
    }
    let parent = match a.get("parent") {
        Some(p) if p.truthy() => Some(id_of(&tag_struct(ctx, p, false)?.ok_or_else(|| {
            Fault::generic(format!("Parent tag '{}' could not be found", py_str(p)))
        })?)),
        _ => None,
    };
    let perm_id = match a.get("perm") {
        Some(p) => Some(lookup_strict(ctx, Named::Permission, p)?.0),
        None => None,
    };
    let extra = match a.get("extra") {
        None => serde_json::Map::new(),
        Some(v @ Value::Struct(_)) => json_map(v),
        Some(other) => {
            return Err(Fault::generic(format!(
                "Invalid extra: {}, expected a dict",
                py_repr(other)
            )));
        }
    };
    let cfg = rec::TagConfig {
        name: name.to_string(),
        arches: Some(arches),
        perm_id,
        locked: a.flag("locked", false),
        maven_support: false,
        maven_include_all: false,
        extra,
    };
    let id = rec::create_tag(ctx.db, &cfg)?;
    if let Some(parent_id) = parent {
        rec::add_inheritance(
            ctx.db,
            &InheritLink {
                tag_id: id,
                parent_id,
                name: String::new(),
                priority: 0,
                maxdepth: None,
                intransitive: false,
                noconfig: false,
                pkg_filter: String::new(),
            },
        )?;
    }
    Ok(Value::Int(id))
}

fn string_list(v: &Value, what: &str) -> Result<Vec<String>, Fault> {
    match v {
        Value::Nil => Ok(Vec::new()),
        Value::Array(a) => Ok(a.iter().map(py_str).collect()),
        other => Err(Fault::parameter(format!(
            "Invalid type for value '{}': {}, expected type <class 'list'> ({what})",
            py_str(other),
            py_type(other)
        ))),
    }
}

fn edit_tag2(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    ctx.require_perm("tag")?;
    let kw = &a.kwargs;
    if kw.get("maven_support").is_some() || kw.get("maven_include_all").is_some() {
        return Err(Fault::generic("Maven support not enabled"));
    }
    let remove_extra = string_list(
        kw.get("remove_extra").unwrap_or(&Value::Nil),
        "remove_extra",
    )?;
    let block_extra = string_list(kw.get("block_extra").unwrap_or(&Value::Nil), "block_extra")?;
    let tag = tag_strict(ctx, arg(a, "tagInfo"))?;
    let id = id_of(&tag);
    let mut cfg = rec::tag_config(ctx.db, id)?.ok_or_else(|| {
        Fault::generic(format!("No such tagInfo: {}", py_repr(arg(a, "tagInfo"))))
    })?;
    let orig = cfg.clone();
    let perm = kw.get("perm_id").or_else(|| kw.get("perm"));
    if let Some(p) = perm {
        cfg.perm_id = match p {
            Value::Nil => None,
            p => Some(lookup_strict(ctx, Named::Permission, p)?.0),
        };
    }
    if let Some(n) = kw.get("name").filter(|n| n.truthy())
        && n.as_str() != Some(cfg.name.as_str())
    {
        let n = verify_name_internal(n)?;
        if let Some((other, _)) = rec::lookup(ctx.db, Named::Tag, Ref::Name(n))? {
            return Err(Fault::generic(format!(
                "Name {n} already taken by tag {other}"
            )));
        }
        cfg.name = n.to_string();
    }
    if let Some(v) = kw.get("arches") {
        cfg.arches = match v {
            Value::Nil => None,
            v if v.truthy() => Some(parse_arches(v, true, true)?),
            v => Some(py_str(v)),
        };
    }
    if let Some(v) = kw.get("locked") {
        cfg.locked = v.truthy();
    }
    if let Some(extra) = kw.get("extra") {
        let Value::Struct(extra) = extra else {
            return Err(Fault::generic(format!(
                "Invalid extra: {}, expected a dict",
                py_repr(extra)
            )));
        };
        if let Some(k) = extra
            .keys()
            .find(|k| remove_extra.iter().chain(&block_extra).any(|r| r == k))
        {
            return Err(Fault::generic(format!(
                "Can not both add/update and remove tag-extra: '{k}'"
            )));
        }
        for (k, v) in extra.iter() {
            cfg.extra.insert(k.to_string(), value_to_json(v));
        }
    }
    // Blocking an inherited key is approximated by dropping the tag's own value: this hub does
    // not record blocked extra entries.
    for k in &block_extra {
        cfg.extra.remove(k);
    }
    if kw.get("remove_extra").is_some() {
        let missing: Vec<&str> = remove_extra
            .iter()
            .filter(|k| !orig.extra.contains_key(*k))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(Fault::generic(format!(
                "Tag: {} doesn't have extra: {}",
                orig.name,
                missing.join(", ")
            )));
        }
        for k in &remove_extra {
            cfg.extra.remove(k);
        }
    }
    if cfg != orig {
        rec::update_tag(ctx.db, id, &cfg)?;
    }
    Ok(Value::Nil)
}

fn get_tag(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let info = arg(a, "tagInfo");
    match tag_struct(ctx, info, a.flag("blocked", false))? {
        Some(mut s) => {
            if let Some(ev) = a.get("event").filter(|e| e.as_str() != Some("auto")) {
                s.insert("query_event", ev.clone());
            }
            Ok(Value::Struct(s))
        }
        None if a.flag("strict", false) => Err(Fault::generic(format!(
            "No such tagInfo: {}",
            py_repr(info)
        ))),
        None => Ok(Value::Nil),
    }
}

fn list_tags(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let q = query_opts(a.opt_struct("queryOpts")?)?;
    let (build, package) = (a.get("build"), a.get("package"));
    if build.is_some() && package.is_some() {
        return Err(Fault::generic(
            "only one of build and package may be specified",
        ));
    }
    let mut conds = Vec::new();
    let mut view = &rec::TAGS;
    if let Some(b) = build {
        let binfo = build_struct(ctx, b, false)?
            .ok_or_else(|| Fault::generic(format!("No such build: {}", py_str(b))))?;
        conds.push(rec::tags_of_build(id_of(&binfo)));
    }
    if let Some(p) = package {
        let (pkg_id, _) = lookup(ctx, Named::Package, p)?
            .ok_or_else(|| Fault::generic(format!("No such package: {}", py_str(p))))?;
        view = &rec::TAGS_BY_PACKAGE;
        conds.push(Cond::Eq("package_id", Sql::Integer(pkg_id)));
    }
    if let Some(pattern) = a.opt_str("pattern")? {
        conds.push(Cond::Like("name", rec::glob_to_like(pattern)));
    }
    let sel = query::select(ctx.db, view, &conds, &q.opts)?;
    let perms = a.flag("perms", true);
    Ok(shape(sel, q.as_list, |s| {
        if !perms {
            s.remove("perm_id");
            s.remove("perm");
        }
    }))
}

fn id_name(id: i64, name: &str) -> Struct {
    Struct::new().with("id", id).with("name", name)
}

fn get_build_config(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let mut s = tag_strict(ctx, arg(a, "tag"))?;
    let mut arches = s.get("arches").cloned().unwrap_or(Value::Nil);
    let mut extra = match s.get("extra") {
        Some(Value::Struct(e)) => e.clone(),
        _ => Struct::new(),
    };
    let mut arches_from = Value::Nil;
    let mut extra_from = Struct::new();
    for node in rec::full_inheritance(ctx.db, id_of(&s), false)? {
        if node.link.noconfig {
            continue;
        }
        let Some(anc) = tag_struct(ctx, &Value::Int(node.link.parent_id), false)? else {
            continue;
        };
        let from = id_name(id_of(&anc), &name_of(&anc));
        if arches.is_nil() && !anc.get("arches").unwrap_or(&Value::Nil).is_nil() {
            arches = anc.get("arches").cloned().unwrap_or(Value::Nil);
            arches_from = Value::Struct(from.clone());
        }
        if let Some(Value::Struct(ae)) = anc.get("extra") {
            for (k, v) in ae.iter() {
                if extra.get(k).is_none() {
                    extra.insert(k, v.clone());
                    extra_from.insert(k, from.clone());
                }
            }
        }
    }
    s.insert("arches", arches);
    s.insert("extra", extra);
    if let Some(ev) = a.get("event").filter(|e| e.as_str() != Some("auto")) {
        s.insert("query_event", ev.clone());
    }
    s.insert(
        "config_inheritance",
        Struct::new()
            .with("extra", extra_from)
            .with("arches", arches_from),
    );
    Ok(Value::Struct(s))
}

/// One inheritance link as Koji shows it (columns in alphabetical order, then `child_id`, or
/// `tag_id` for descendants).
fn link_struct(l: &InheritLink, reverse: bool) -> Struct {
    let s = Struct::new()
        .with("intransitive", l.intransitive)
        .with("maxdepth", l.maxdepth)
        .with("name", l.name.as_str())
        .with("noconfig", l.noconfig)
        .with("parent_id", l.parent_id)
        .with("pkg_filter", l.pkg_filter.as_str())
        .with("priority", l.priority);
    if reverse {
        s.with("tag_id", l.tag_id)
    } else {
        s.with("child_id", l.tag_id)
    }
}

fn get_inheritance_data(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let (id, _) = lookup_strict(ctx, Named::Tag, arg(a, "tag"))?;
    Ok(Value::Array(
        rec::inheritance_data(ctx.db, id)?
            .iter()
            .map(|l| Value::Struct(link_struct(l, false)))
            .collect(),
    ))
}

fn get_full_inheritance(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    for (k, v) in a.kwargs.iter() {
        if k == "stops" || k == "jumps" {
            if v.truthy() {
                return Err(Fault::parameter(format!(
                    "{k} option has been removed since 1.26"
                )));
            }
        } else {
            return Err(Fault::parameter(format!(
                "getFullInheritance() got an unexpected keyword argument '{k}'"
            )));
        }
    }
    let tag = arg(a, "tag");
    let id = match tag {
        Value::Int(i) => *i,
        other => lookup_strict(ctx, Named::Tag, other)?.0,
    };
    let reverse = a.flag("reverse", false);
    Ok(Value::Array(
        rec::full_inheritance(ctx.db, id, reverse)?
            .into_iter()
            .map(|n| {
                Value::Struct(
                    link_struct(&n.link, reverse)
                        .with("nextdepth", n.nextdepth)
                        .with("currdepth", n.currdepth)
                        .with(
                            "filter",
                            Value::Array(n.filter.into_iter().map(Value::String).collect()),
                        ),
                )
            })
            .collect(),
    ))
}

fn get_tag_external_repos(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    if let Some(t) = a.get("tag_info") {
        lookup_strict(ctx, Named::Tag, t)?;
    }
    if let Some(r) = a.get("repo_info") {
        return Err(Fault::generic(format!(
            "No such entry in table external_repo: {}",
            py_str(r)
        )));
    }
    Ok(Value::Array(Vec::new()))
}

fn get_tag_groups(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    lookup_strict(ctx, Named::Tag, arg(a, "tag"))?;
    Ok(Value::Array(Vec::new()))
}

fn get_repo(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    lookup_strict(ctx, Named::Tag, arg(a, "tag"))?;
    Ok(Value::Nil)
}

// ---------------------------------------------------------------------------------------------
// Build targets

fn target_conds(ctx: &Ctx<'_>, info: Option<&Value>) -> Result<Vec<Cond>, Fault> {
    let mut conds = Vec::new();
    if let Some(info) = info.filter(|i| i.truthy()) {
        conds.push(match name_or_id(info)? {
            Ref::Id(i) => Cond::Eq("id", Sql::Integer(i)),
            Ref::Name(n) => Cond::Eq("name", Sql::Text(n.to_string())),
        });
    }
    let _ = ctx;
    Ok(conds)
}

/// A tag filter given as id, name or dict; `None` when the tag does not exist.
fn tag_filter(ctx: &Ctx<'_>, v: &Value) -> Result<Option<i64>, Fault> {
    match v {
        Value::Int(i) => Ok(Some(*i)),
        other => Ok(lookup(ctx, Named::Tag, other)?.map(|(id, _)| id)),
    }
}

fn get_build_targets(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let q = query_opts(a.opt_struct("queryOpts")?)?;
    let mut conds = target_conds(ctx, a.get("info"))?;
    for (param, alias) in [("buildTagID", "build_tag"), ("destTagID", "dest_tag")] {
        if let Some(v) = a.get(param) {
            match tag_filter(ctx, v)? {
                Some(id) => conds.push(Cond::Eq(alias, Sql::Integer(id))),
                None => return Ok(empty(&q)),
            }
        }
    }
    let sel = query::select(ctx.db, &rec::TARGETS, &conds, &q.opts)?;
    Ok(shape(sel, q.as_list, |_| {}))
}

fn targets(ctx: &Ctx<'_>, info: Option<&Value>) -> Result<Vec<Struct>, Fault> {
    let conds = target_conds(ctx, info)?;
    Ok(query::rows(ctx.db, &rec::TARGETS, &conds)?
        .into_iter()
        .map(convert::record)
        .collect())
}

fn get_build_target(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let info = a.get("info");
    let mut t = targets(ctx, info)?;
    if t.len() == 1 {
        return Ok(Value::Struct(t.remove(0)));
    }
    if a.flag("strict", false) {
        return Err(Fault::generic(format!(
            "No such build target: {}",
            py_str(info.unwrap_or(&Value::Nil))
        )));
    }
    Ok(Value::Nil)
}

/// The build and destination tags of a target request, by id.
fn target_tags(ctx: &Ctx<'_>, a: &Args) -> Result<(i64, i64), Fault> {
    let b = arg(a, "build_tag");
    let build = tag_struct(ctx, b, false)?
        .ok_or_else(|| Fault::generic(format!("build tag '{}' does not exist", py_str(b))))?;
    let d = arg(a, "dest_tag");
    let dest = tag_struct(ctx, d, false)?
        .ok_or_else(|| Fault::generic(format!("destination tag '{}' does not exist", py_str(d))))?;
    Ok((id_of(&build), id_of(&dest)))
}

fn create_build_target(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    ctx.require_perm("target")?;
    let name = verify_name_internal(arg(a, "name"))?;
    if !targets(ctx, Some(arg(a, "name")))?.is_empty() {
        return Err(Fault::generic(format!(
            "A build target with the name '{name}' already exists"
        )));
    }
    let (build, dest) = target_tags(ctx, a)?;
    rec::create_target(ctx.db, name, build, dest)?;
    Ok(Value::Nil)
}

fn edit_build_target(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    ctx.require_perm("target")?;
    let name = verify_name_internal(arg(a, "name"))?;
    let info = arg(a, "buildTargetInfo");
    let (id, old_name) = lookup(ctx, Named::Target, info)?
        .ok_or_else(|| Fault::generic(format!("No such build target: {}", py_str(info))))?;
    let (build, dest) = target_tags(ctx, a)?;
    if old_name != name
        && let Some((other, _)) = rec::lookup(ctx.db, Named::Target, Ref::Name(name))?
    {
        return Err(Fault::generic(format!(
            "name \"{name}\" is already taken by build target {other}"
        )));
    }
    rec::update_target(ctx.db, id, name, build, dest)?;
    Ok(Value::Nil)
}

fn delete_build_target(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    ctx.require_perm("target")?;
    let info = arg(a, "buildTargetInfo");
    let (id, _) = lookup(ctx, Named::Target, info)?
        .ok_or_else(|| Fault::generic(format!("No such build target: {}", py_str(info))))?;
    rec::delete_target(ctx.db, id)?;
    Ok(Value::Nil)
}

// ---------------------------------------------------------------------------------------------
// Packages

fn package_list_add(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    pkglist_add(
        ctx,
        PkgListAdd {
            taginfo: arg(a, "taginfo"),
            pkginfo: arg(a, "pkginfo"),
            owner: a.get("owner"),
            block: a.get("block").map(Value::truthy),
            extra_arches: a.get("extra_arches"),
            force: a.flag("force", false),
            update: a.flag("update", false),
        },
    )
}

/// Koji's `pkglist_block`: the package must already be listed (possibly inherited).
fn package_list_block(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    pkglist_change_listed(ctx, a, Some(true))
}

/// Koji's `pkglist_unblock`.
fn package_list_unblock(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    pkglist_change_listed(ctx, a, Some(false))
}

fn pkglist_change_listed(ctx: &mut Ctx<'_>, a: &Args, block: Option<bool>) -> Result<Value, Fault> {
    let tag = tag_strict(ctx, arg(a, "taginfo"))?;
    let (tag_id, tag_name) = (id_of(&tag), name_of(&tag));
    let (pkg_id, pkg_name) = lookup_strict(ctx, Named::Package, arg(a, "pkginfo"))?;
    // Koji's pkglist_unblock asks the policy before it reads the listing, so a caller without
    // the permission learns nothing about the entry; pkglist_block asks it in pkglist_add.
    if block == Some(false) {
        assert_package_list_policy(ctx)?;
    }
    let listed = rec::package_list(
        ctx.db,
        &PkgListQuery {
            tag_id: Some(tag_id),
            pkg_id: Some(pkg_id),
            inherit: true,
            with_blocked: true,
            ..PkgListQuery::default()
        },
    )?
    .into_iter()
    .next();
    let Some(prev) = listed else {
        return Err(Fault::generic(if block == Some(false) {
            format!("no data (blocked or otherwise) for package {pkg_name} in tag {tag_name}")
        } else {
            format!("Package {pkg_name} is not in tag listing for {tag_name}")
        }));
    };
    // An inherited block is lifted by an unblocked entry in this tag, as Koji does.
    if block == Some(false) && rec::field_int(&prev, "blocked").unwrap_or(0) == 0 {
        return Err(Fault::generic(format!(
            "package {pkg_name} NOT blocked in tag {tag_name}"
        )));
    }
    pkglist_add(
        ctx,
        PkgListAdd {
            taginfo: arg(a, "taginfo"),
            pkginfo: arg(a, "pkginfo"),
            owner: None,
            block,
            extra_arches: None,
            force: a.flag("force", false) || block == Some(false),
            update: false,
        },
    )
}

/// Koji's `assertLogin` plus its default `package_list` policy (`has_perm admin :: allow`,
/// `has_perm tag :: allow`, `all :: deny ...`); the caller's user id.
fn assert_package_list_policy(ctx: &Ctx<'_>) -> Result<i64, Fault> {
    let user_id = ctx.user_id()?;
    if !ctx.has_perm("tag")? {
        return Err(Fault::not_allowed(
            "policy violation (package_list): Only admin/tag can do this via default policy",
        ));
    }
    Ok(user_id)
}

/// The arguments of `packageListAdd`.
struct PkgListAdd<'a> {
    taginfo: &'a Value,
    pkginfo: &'a Value,
    owner: Option<&'a Value>,
    block: Option<bool>,
    extra_arches: Option<&'a Value>,
    force: bool,
    update: bool,
}

fn pkglist_add(ctx: &mut Ctx<'_>, a: PkgListAdd<'_>) -> Result<Value, Fault> {
    let tag = tag_strict(ctx, a.taginfo)?;
    let (tag_id, tag_name) = (id_of(&tag), name_of(&tag));
    let pkginfo = a.pkginfo;
    let pkg = lookup(ctx, Named::Package, pkginfo)?;
    if pkg.is_none() && !matches!(pkginfo, Value::String(_)) {
        return Err(Fault::generic(format!(
            "No such package: {}",
            py_str(pkginfo)
        )));
    }
    let mut owner = match a.owner {
        Some(o) => Some(find_user_strict(ctx, o)?.id),
        None => None,
    };
    let (force, update) = (a.force, a.update);
    let user_id = assert_package_list_policy(ctx)?;
    let (pkg_id, pkg_name) = match pkg {
        Some(p) => p,
        None => {
            let n = pkginfo.as_str().unwrap_or_default();
            (rec::create_package(ctx.db, n)?, n.to_string())
        }
    };
    let mut extra_arches = match a.extra_arches {
        Some(v) => Some(parse_arches(v, true, true)?),
        None => None,
    };
    let previous = rec::package_list(
        ctx.db,
        &PkgListQuery {
            tag_id: Some(tag_id),
            pkg_id: Some(pkg_id),
            inherit: true,
            with_blocked: true,
            ..PkgListQuery::default()
        },
    )?
    .into_iter()
    .next();
    let mut block = a.block;
    let mut changed = false;
    let mut changed_owner = false;
    match &previous {
        None => {
            if update && !force {
                return Err(Fault::generic(format!(
                    "cannot update: tag {tag_name} has no data for package {pkg_name}"
                )));
            }
            block = Some(block.unwrap_or(false));
        }
        Some(prev) => {
            let prev_owner = rec::field_int(prev, "owner_id");
            let prev_blocked = rec::field_int(prev, "blocked").unwrap_or(0) != 0;
            let prev_arches = rec::field_text(prev, "extra_arches").map(str::to_string);
            if owner.is_none() {
                owner = prev_owner;
            }
            changed_owner = prev_owner != owner;
            let b = block.unwrap_or(prev_blocked);
            block = Some(b);
            if extra_arches.is_none() {
                extra_arches = prev_arches.clone();
            }
            changed = prev_blocked != b || prev_arches != extra_arches;
            if !changed && !changed_owner && !force {
                return Ok(Value::Nil);
            }
            if prev_blocked && !b && !force {
                return Err(Fault::generic(format!(
                    "package {pkg_name} is blocked in tag {tag_name}"
                )));
            }
        }
    }
    let owner = match owner {
        Some(o) => o,
        None if force => user_id,
        None => return Err(Fault::generic("owner not specified")),
    };
    let block = block.unwrap_or(false);
    let own_entry = previous
        .as_ref()
        .is_some_and(|p| rec::field_int(p, "tag_id") == Some(tag_id));
    if previous.is_none() || changed || !own_entry {
        rec::pkglist_set(
            ctx.db,
            tag_id,
            pkg_id,
            owner,
            block,
            extra_arches.as_deref(),
        )?;
    } else if changed_owner {
        rec::pkglist_set_owner(ctx.db, tag_id, pkg_id, owner)?;
    }
    Ok(Value::Nil)
}

fn get_package_config(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let tag = lookup(ctx, Named::Tag, arg(a, "tag"))?;
    let pkg = lookup(ctx, Named::Package, arg(a, "pkg"))?;
    let (Some((tag_id, _)), Some((pkg_id, _))) = (tag, pkg) else {
        return Ok(Value::Nil);
    };
    let l = rec::package_list(
        ctx.db,
        &PkgListQuery {
            tag_id: Some(tag_id),
            pkg_id: Some(pkg_id),
            inherit: true,
            with_blocked: true,
            ..PkgListQuery::default()
        },
    )?;
    Ok(first(l).map(Value::Struct).unwrap_or(Value::Nil))
}

fn list_packages(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let q = query_opts(a.opt_struct("queryOpts")?)?;
    let prefix = a.opt_str("prefix")?;
    let (tag, user, pkg) = (a.get("tagID"), a.get("userID"), a.get("pkgID"));
    if tag.is_none() && user.is_none() && pkg.is_none() {
        let mut conds = Vec::new();
        if let Some(p) = prefix {
            conds.push(Cond::Like("package_name", rec::prefix_to_like(p)));
        }
        let sel = query::select(ctx.db, &rec::PACKAGES, &conds, &q.opts)?;
        return Ok(shape(sel, q.as_list, |_| {}));
    }
    let with_owners = a.flag("with_owners", true);
    let tag_id = match tag {
        Some(t) => Some(lookup_strict(ctx, Named::Tag, t)?.0),
        None => None,
    };
    let user_id = match user {
        Some(u) => Some(find_user_strict(ctx, u)?.id),
        None => None,
    };
    let pkg_id = match pkg {
        Some(p) => Some(lookup_strict(ctx, Named::Package, p)?.0),
        None => None,
    };
    if user_id.is_some() && !with_owners {
        return Err(Fault::generic(
            "userID and with_owners=False can't be used together",
        ));
    }
    let recs = rec::package_list(
        ctx.db,
        &PkgListQuery {
            tag_id,
            user_id,
            pkg_id,
            inherit: a.flag("inherited", false),
            with_dups: a.flag("with_dups", false),
            with_blocked: a.flag("with_blocked", true),
        },
    )?;
    let prefix = prefix.map(str::to_lowercase);
    let items: Vec<Struct> = recs
        .into_iter()
        .map(convert::record)
        .filter(|s| match &prefix {
            Some(p) => s
                .get("package_name")
                .and_then(Value::as_str)
                .is_some_and(|n| n.to_lowercase().starts_with(p.as_str())),
            None => true,
        })
        .map(|mut s| {
            if !with_owners {
                s.remove("owner_id");
                s.remove("owner_name");
            }
            s
        })
        .collect();
    Ok(finish(items, &q))
}

fn get_package_id(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let name = arg(a, "name");
    let found = match name {
        Value::String(n) => rec::lookup(ctx.db, Named::Package, Ref::Name(n))?,
        _ => None,
    };
    match found {
        Some((id, _)) => Ok(Value::Int(id)),
        None if a.flag("strict", false) => Err(Fault::generic(format!(
            "No such package name: {}",
            py_str(name)
        ))),
        None => Ok(Value::Nil),
    }
}

fn get_package(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let info = arg(a, "info");
    if let Some((id, name)) = lookup(ctx, Named::Package, info)? {
        return Ok(Value::Struct(id_name(id, &name)));
    }
    if a.flag("strict", false) {
        return Err(Fault::generic(format!(
            "No such entry in table package: {}",
            py_str(info)
        )));
    }
    if a.flag("create", false) {
        if !matches!(info, Value::String(_)) {
            return Err(Fault::generic("Name must be a string"));
        }
        // Reads run on read-only connections; packages are created by packageListAdd.
        return Err(Fault::generic(format!(
            "getPackage(create=True) is not supported by this hub; add {} to a tag with \
             packageListAdd",
            py_str(info)
        )));
    }
    Ok(Value::Nil)
}

// ---------------------------------------------------------------------------------------------
// Channels

fn channel_struct(ctx: &Ctx<'_>, info: &Value) -> Result<Option<Struct>, Fault> {
    let cond = match name_or_id(info)? {
        Ref::Id(i) => Cond::Eq("id", Sql::Integer(i)),
        Ref::Name(n) => Cond::Eq("name", Sql::Text(n.to_string())),
    };
    Ok(first(query::rows(ctx.db, &rec::CHANNELS, &[cond])?))
}

fn opt_string(v: Option<&Value>, message: &str) -> Result<Option<String>, Fault> {
    match v {
        None | Some(Value::Nil) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Fault::parameter(message)),
    }
}

fn add_channel(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    ctx.require_perm("admin")?;
    let name = verify_name_internal(arg(a, "channel_name"))?;
    let description = opt_string(a.get("description"), "Channel description must be a string")?;
    if let Some(c) = channel_struct(ctx, arg(a, "channel_name"))? {
        return Err(Fault::generic(format!(
            "channel {} already exists (id={})",
            name_of(&c),
            id_of(&c)
        )));
    }
    Ok(Value::Int(rec::create_channel(
        ctx.db,
        name,
        description.as_deref(),
    )?))
}

fn edit_channel(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    ctx.require_perm("admin")?;
    let info = arg(a, "channelInfo");
    let c = channel_struct(ctx, info)?.ok_or_else(|| Fault::generic("query returned no rows"))?;
    let kw = &a.kwargs;
    let changes: Vec<&str> = ["description", "comment", "name"]
        .into_iter()
        .filter(|f| kw.get(f).is_some_and(|v| Some(v) != c.get(f)))
        .collect();
    if changes.is_empty() {
        return Ok(Value::Bool(false));
    }
    let mut name = name_of(&c);
    if let Some(n) = kw.get("name").filter(|n| n.truthy()) {
        name = verify_name_internal(n)?.to_string();
        if let Some(dup) = channel_struct(ctx, n)? {
            return Err(Fault::generic(format!(
                "channel {} already exists (id={})",
                name_of(&dup),
                id_of(&dup)
            )));
        }
    }
    let field = |f: &str| -> Result<Option<String>, Fault> {
        if kw.get(f).is_some() {
            opt_string(
                kw.get(f),
                &format!("Invalid type for {f}, expected type <class 'str'>"),
            )
        } else {
            Ok(c.get(f).and_then(Value::as_str).map(str::to_string))
        }
    };
    let description = field("description")?;
    let comment = field("comment")?;
    rec::update_channel(
        ctx.db,
        id_of(&c),
        &name,
        description.as_deref(),
        comment.as_deref(),
    )?;
    Ok(Value::Bool(true))
}

fn set_channel_enabled(ctx: &mut Ctx<'_>, a: &Args, enabled: bool) -> Result<Value, Fault> {
    ctx.require_perm("host")?;
    let comment = opt_string(
        a.get("comment"),
        "Invalid type for comment, expected type <class 'str'>",
    )?;
    let info = arg(a, "channelname");
    let c = channel_struct(ctx, info)?
        .ok_or_else(|| Fault::generic(format!("No such channel: {}", py_str(info))))?;
    rec::set_channel_enabled(ctx.db, id_of(&c), enabled, comment.as_deref())?;
    Ok(Value::Nil)
}

fn get_channel(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    match channel_struct(ctx, arg(a, "channelInfo"))? {
        Some(c) => Ok(Value::Struct(c)),
        None if a.flag("strict", false) => Err(Fault::generic("query returned no rows")),
        None => Ok(Value::Nil),
    }
}

fn list_channels(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let mut conds = Vec::new();
    if let Some(e) = a.opt_flag("enabled") {
        conds.push(Cond::Eq("enabled", Sql::Integer(i64::from(e))));
    }
    match a.get("hostID").filter(|h| h.truthy()) {
        Some(h @ Value::String(_)) => {
            let host = host_strict(ctx, h)?;
            conds.push(rec::channels_of_host(id_of(&host)));
        }
        Some(h) => conds.push(rec::channels_of_host(int_value(h)?)),
        None => {
            if a.get("event").is_some_and(Value::truthy) {
                return Err(Fault::generic(
                    "list_channels with event and not host is not allowed.",
                ));
            }
        }
    }
    Ok(convert::records(query::rows(
        ctx.db,
        &rec::CHANNELS,
        &conds,
    )?))
}

// ---------------------------------------------------------------------------------------------
// Hosts

fn host_struct(ctx: &Ctx<'_>, info: &Value) -> Result<Option<Struct>, Fault> {
    let cond = match name_or_id(info)? {
        Ref::Id(i) => Cond::Eq("id", Sql::Integer(i)),
        Ref::Name(n) => Cond::Eq("name", Sql::Text(n.to_string())),
    };
    Ok(first(query::rows(ctx.db, &rec::HOSTS, &[cond])?))
}

fn host_strict(ctx: &Ctx<'_>, info: &Value) -> Result<Struct, Fault> {
    host_struct(ctx, info)?
        .ok_or_else(|| Fault::generic(format!("Invalid hostInfo: {}", py_str(info))))
}

fn host_exists(ctx: &Ctx<'_>, info: &Value) -> Result<Struct, Fault> {
    host_struct(ctx, info)?
        .ok_or_else(|| Fault::generic(format!("host does not exist: {}", py_str(info))))
}

fn add_host(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    ctx.require_perm("host")?;
    let hostname = verify_name_internal(arg(a, "hostname"))?;
    if !hostname
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/_.@-".contains(c))
    {
        return Err(Fault::generic(format!(
            "Name {hostname} does not match RegexUserName value"
        )));
    }
    let arches = match arg(a, "arches") {
        Value::Array(list) => {
            let joined = list.iter().map(py_str).collect::<Vec<_>>().join(" ");
            parse_arches(&Value::String(joined), true, false)?
        }
        other => parse_arches(other, false, false)?,
    };
    if host_struct(ctx, arg(a, "hostname"))?.is_some() {
        return Err(Fault::generic(format!("host already exists: {hostname}")));
    }
    let krb = a.opt_str("krb_principal")?;
    let mut user = users::get(ctx.db, &UserRef::Name(hostname))?;
    if user.is_none()
        && let Some(k) = krb
    {
        user = users::get_by_krb(ctx.db, k)?;
    }
    let user_id = match user {
        Some(u) => {
            if u.usertype != users::USERTYPE_HOST {
                if a.flag("force", false) && u.usertype == users::USERTYPE_NORMAL {
                    rec::set_usertype(ctx.db, u.id, users::USERTYPE_HOST)?;
                } else {
                    return Err(Fault::generic(format!(
                        "user {hostname} already exists and it is not a host"
                    )));
                }
            }
            u.id
        }
        None => users::create(
            ctx.db,
            hostname,
            users::STATUS_NORMAL,
            users::USERTYPE_HOST,
            None,
            krb,
        )?,
    };
    Ok(Value::Int(rec::create_host(
        ctx.db, user_id, hostname, &arches,
    )?))
}

fn get_host(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let info = arg(a, "hostInfo");
    match host_struct(ctx, info)? {
        Some(h) => Ok(Value::Struct(h)),
        None if a.flag("strict", false) => Err(Fault::generic(format!(
            "Invalid hostInfo: {}",
            py_str(info)
        ))),
        None => Ok(Value::Nil),
    }
}

fn str_field(v: &Value) -> Result<String, Fault> {
    match v {
        Value::String(s) => Ok(s.clone()),
        other => Err(Fault::parameter(format!(
            "Invalid type for value '{}': {}, expected type <class 'str'>",
            py_str(other),
            py_type(other)
        ))),
    }
}

fn edit_host(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    ctx.require_perm("host")?;
    let host = host_strict(ctx, arg(a, "hostInfo"))?;
    let id = id_of(&host);
    let mut cfg = rec::host_config(ctx.db, id)?.ok_or_else(|| {
        Fault::generic(format!("Invalid hostInfo: {}", py_str(arg(a, "hostInfo"))))
    })?;
    let kw = &a.kwargs;
    let mut changed = false;
    for field in ["arches", "capacity", "description", "comment"] {
        let Some(v) = kw.get(field) else { continue };
        let current = host.get(field).unwrap_or(&Value::Nil);
        let same = match (v, current) {
            (Value::Int(i), Value::Double(d)) => (*i as f64) == *d,
            _ => v == current,
        };
        if same {
            continue;
        }
        changed = true;
        match field {
            "arches" => cfg.arches = str_field(v)?,
            "description" => cfg.description = Some(str_field(v)?),
            "comment" => cfg.comment = Some(str_field(v)?),
            _ => {
                cfg.capacity = match v {
                    Value::Int(i) => *i as f64,
                    Value::Double(d) => *d,
                    other => {
                        return Err(Fault::parameter(format!(
                            "Invalid capacity: {}",
                            py_repr(other)
                        )));
                    }
                }
            }
        }
    }
    if changed {
        rec::update_host(ctx.db, id, &cfg)?;
    }
    Ok(Value::Bool(changed))
}

fn set_host_enabled(ctx: &mut Ctx<'_>, a: &Args, enabled: bool) -> Result<Value, Fault> {
    ctx.require_perm("host")?;
    let host = host_exists(ctx, arg(a, "hostname"))?;
    let id = id_of(&host);
    if let Some(mut cfg) = rec::host_config(ctx.db, id)? {
        cfg.enabled = enabled;
        rec::update_host(ctx.db, id, &cfg)?;
    }
    Ok(Value::Nil)
}

fn add_host_to_channel(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    ctx.require_perm("host")?;
    let hostname = arg(a, "hostname");
    let host = host_exists(ctx, hostname)?;
    let channel_name = arg(a, "channel_name");
    let create = a.flag("create", false);
    if create {
        verify_name_internal(channel_name)?;
    }
    let channel_id = match lookup(ctx, Named::Channel, channel_name)? {
        Some((id, _)) => id,
        None if create => {
            rec::create_channel(ctx.db, channel_name.as_str().unwrap_or_default(), None)?
        }
        None => {
            return Err(Fault::generic(format!(
                "channel does not exist: {}",
                py_str(channel_name)
            )));
        }
    };
    if !a.flag("force", false) {
        let c = channel_struct(ctx, &Value::Int(channel_id))?;
        if c.is_some_and(|c| c.get("enabled") == Some(&Value::Bool(false))) {
            return Err(Fault::generic(format!(
                "channel {} is disabled",
                py_str(channel_name)
            )));
        }
    }
    if rec::host_in_channel(ctx.db, id_of(&host), channel_id)? {
        return Err(Fault::generic(format!(
            "host {} is already subscribed to the {} channel",
            py_str(hostname),
            py_str(channel_name)
        )));
    }
    rec::add_host_to_channel(ctx.db, id_of(&host), channel_id)?;
    Ok(Value::Nil)
}

fn remove_host_from_channel(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    ctx.require_perm("host")?;
    let hostname = arg(a, "hostname");
    let host = host_exists(ctx, hostname)?;
    let channel_name = arg(a, "channel_name");
    let (channel_id, _) = lookup(ctx, Named::Channel, channel_name)?.ok_or_else(|| {
        Fault::generic(format!("channel does not exist: {}", py_str(channel_name)))
    })?;
    if !rec::host_in_channel(ctx.db, id_of(&host), channel_id)? {
        return Err(Fault::generic(format!(
            "host {} is not subscribed to the {} channel",
            py_str(hostname),
            py_str(channel_name)
        )));
    }
    rec::remove_host_from_channel(ctx.db, id_of(&host), channel_id)?;
    Ok(Value::Nil)
}

fn list_hosts(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let q = query_opts(a.opt_struct("queryOpts")?)?;
    let mut conds = Vec::new();
    if a.given("arches") && a.get("arches").is_some() {
        let arches: Vec<String> = match arg(a, "arches") {
            Value::Array(l) => l.iter().map(py_str).collect(),
            other => vec![py_str(other)],
        };
        if arches.is_empty() || arches.iter().all(String::is_empty) {
            return Err(Fault::generic("arches option cannot be empty"));
        }
        conds.push(rec::hosts_with_arches(&arches));
    }
    if let Some(c) = a.get("channelID") {
        let (channel_id, _) = lookup_strict(ctx, Named::Channel, c)?;
        conds.push(rec::hosts_in_channel(channel_id));
    }
    for (param, alias) in [("ready", "ready"), ("enabled", "enabled")] {
        if let Some(f) = a.opt_flag(param) {
            conds.push(Cond::Eq(alias, Sql::Integer(i64::from(f))));
        }
    }
    if let Some(u) = a.get("userID") {
        let user = find_user_strict(ctx, u)?;
        conds.push(Cond::Eq("user_id", Sql::Integer(user.id)));
    }
    let sel = query::select(ctx.db, &rec::HOSTS, &conds, &q.opts)?;
    Ok(shape(sel, q.as_list, |_| {}))
}

fn get_last_host_update(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let host_id = int_value(arg(a, "hostID"))?;
    Ok(match rec::last_host_update(ctx.db, host_id)? {
        None => Value::Nil,
        Some(ts) if a.flag("ts", false) => Value::Double(ts),
        Some(ts) => Value::String(convert::koji_time(ts)),
    })
}

// ---------------------------------------------------------------------------------------------
// Builds

/// Koji's `parse_NVR`: `(name, version, release, epoch)`.
fn parse_nvr(nvr: &str) -> Result<(String, String, String, String), Fault> {
    let bad = || Fault::generic(format!("invalid format: {nvr}"));
    let p2 = nvr.rfind('-').ok_or_else(bad)?;
    if p2 == nvr.len() - 1 {
        return Err(bad());
    }
    let p1 = nvr[..p2].rfind('-').ok_or_else(bad)?;
    if p1 + 1 == p2 {
        return Err(bad());
    }
    let release = nvr[p2 + 1..].to_string();
    let version = nvr[p1 + 1..p2].to_string();
    let mut name = nvr[..p1].to_string();
    let mut epoch = String::new();
    if let Some(i) = name.find(':') {
        epoch = name[..i].to_string();
        name = name[i + 1..].to_string();
    }
    Ok((name, version, release, epoch))
}

/// Koji's `parse_NVRA` as the dict it returns.
fn parse_nvra(nvra: &str) -> Result<Struct, Fault> {
    let (nvra, location) = match nvra.split_once('@') {
        Some((n, l)) => (n, Some(l)),
        None => (nvra, None),
    };
    let nvra = nvra.strip_suffix(".rpm").unwrap_or(nvra);
    let p3 = nvra
        .rfind('.')
        .filter(|p| *p != nvra.len() - 1)
        .ok_or_else(|| Fault::generic(format!("invalid format: {nvra}")))?;
    let arch = &nvra[p3 + 1..];
    let (name, version, release, epoch) = parse_nvr(&nvra[..p3])?;
    let mut s = Struct::new()
        .with("release", release)
        .with("version", version)
        .with("name", name)
        .with("epoch", epoch)
        .with("arch", arch)
        .with("src", arch == "src");
    if let Some(l) = location {
        s.insert("location", l);
    }
    Ok(s)
}

/// Koji's `find_build_id`: an int is taken as is; an N-V-R or dict is looked up.
fn find_build_id(ctx: &Ctx<'_>, info: &Value, strict: bool) -> Result<Option<i64>, Fault> {
    let (n, v, r) = match info {
        Value::Int(i) => return Ok(Some(*i)),
        Value::String(s) => {
            let (n, v, r, _) = parse_nvr(s)?;
            (n, v, r)
        }
        Value::Struct(d) => match (d.get("name"), d.get("version"), d.get("release")) {
            (Some(n), Some(v), Some(r)) => (py_str(n), py_str(v), py_str(r)),
            _ => {
                return Err(Fault::generic("did not provide name, version, and release"));
            }
        },
        other => {
            return Err(Fault::generic(format!(
                "Invalid type for argument: {}",
                py_type(other)
            )));
        }
    };
    let id = rec::find_build(ctx.db, &n, &v, &r)?;
    if id.is_none() && strict {
        return Err(Fault::generic(format!("No such build: {}", py_repr(info))));
    }
    Ok(id)
}

/// Koji's `get_build`.
fn build_struct(ctx: &Ctx<'_>, info: &Value, strict: bool) -> Result<Option<Struct>, Fault> {
    let Some(id) = find_build_id(ctx, info, strict)? else {
        return Ok(None);
    };
    match rec::get_build(ctx.db, id)? {
        Some(r) => Ok(Some(convert::record(r))),
        None if strict => Err(Fault::generic(format!("No such build: {}", py_str(info)))),
        None => Ok(None),
    }
}

fn get_build(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    Ok(
        build_struct(ctx, arg(a, "buildInfo"), a.flag("strict", false))?
            .map(Value::Struct)
            .unwrap_or(Value::Nil),
    )
}

/// A time filter: epoch seconds, or an ISO `YYYY-MM-DD[ HH:MM[:SS[.ffffff]]]` string (UTC).
fn time_arg(v: &Value) -> Result<f64, Fault> {
    let bad = || Fault::generic(format!("Invalid time value: {}", py_repr(v)));
    match v {
        Value::Int(i) => Ok(*i as f64),
        Value::Double(d) => Ok(*d),
        Value::String(s) | Value::DateTime(s) => {
            if let Ok(f) = s.trim().parse::<f64>() {
                return Ok(f);
            }
            let s = s.trim();
            let s = s
                .strip_suffix("+00:00")
                .or_else(|| s.strip_suffix('Z'))
                .unwrap_or(s);
            let (date, time) = match s.split_once([' ', 'T']) {
                Some((d, t)) => (d, t),
                None => (s, "00:00:00"),
            };
            let date: Vec<i64> = date
                .split('-')
                .map(|p| p.parse().map_err(|_| bad()))
                .collect::<Result<_, _>>()?;
            let [y, m, d] = date[..] else {
                return Err(bad());
            };
            let mut secs = 0.0;
            for (i, part) in time.split(':').enumerate() {
                let x: f64 = part.parse().map_err(|_| bad())?;
                secs += x * [3600.0, 60.0, 1.0].get(i).copied().ok_or_else(bad)?;
            }
            // Days from the civil date (Howard Hinnant's algorithm).
            let y = if m <= 2 { y - 1 } else { y };
            let era = y.div_euclid(400);
            let yoe = y - era * 400;
            let mp = (m + 9) % 12;
            let doy = (153 * mp + 2) / 5 + d - 1;
            let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
            let days = era * 146_097 + doe - 719_468;
            Ok(days as f64 * 86_400.0 + secs)
        }
        _ => Err(bad()),
    }
}

/// The condition selecting builds of a type; `None` when no build can match (maven, win).
fn btype_cond(ctx: &Ctx<'_>, btype: &str) -> Result<Option<Cond>, Fault> {
    if btype == "maven" || btype == "win" {
        return Ok(None);
    }
    let (id, name) = rec::lookup(ctx.db, Named::Btype, Ref::Name(btype))?
        .ok_or_else(|| Fault::generic(format!("unsupported build type: {btype}")))?;
    Ok(Some(rec::builds_of_btype(id, name == "rpm")))
}

fn list_builds(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let q = query_opts(a.opt_struct("queryOpts")?)?;
    let none = || Ok(Value::Array(Vec::new()));
    let mut conds = Vec::new();
    if let Some(p) = a.get("packageID") {
        match lookup(ctx, Named::Package, p)? {
            Some((id, _)) => conds.push(Cond::Eq("package_id", Sql::Integer(id))),
            None => return none(),
        }
    }
    if let Some(u) = a.get("userID") {
        match find_user(ctx, u)? {
            Some(user) => conds.push(Cond::Eq("owner_id", Sql::Integer(user.id))),
            None => return none(),
        }
    }
    if let Some(v) = a.get("volumeID") {
        conds.push(Cond::Eq("volume_id", Sql::Integer(int_value(v)?)));
    }
    if let Some(t) = a.get("taskID") {
        match int_value(t)? {
            -1 => conds.push(Cond::NotNull("task_id")),
            t => conds.push(Cond::Eq("task_id", Sql::Integer(t))),
        }
    }
    if let Some(s) = a.get("source") {
        conds.push(Cond::Like("source", rec::glob_to_like(&py_str(s))));
    }
    if let Some(p) = a.get("prefix").filter(|p| p.truthy()) {
        conds.push(Cond::Like("package_name", rec::prefix_to_like(&py_str(p))));
    }
    if let Some(p) = a.get("pattern").filter(|p| p.truthy()) {
        conds.push(Cond::Like("nvr", rec::glob_to_like(&py_str(p))));
    }
    if let Some(s) = a.get("state") {
        conds.push(Cond::Eq("state", Sql::Integer(int_value(s)?)));
    }
    let times: [(&str, &'static str, bool); 4] = [
        ("createdBefore", "creation_ts", true),
        ("createdAfter", "creation_ts", false),
        ("completeBefore", "completion_ts", true),
        ("completeAfter", "completion_ts", false),
    ];
    for (param, alias, before) in times {
        if let Some(v) = a.get(param).filter(|v| v.truthy()) {
            let ts = Sql::Real(time_arg(v)?);
            conds.push(if before {
                Cond::Lt(alias, ts)
            } else {
                Cond::Gt(alias, ts)
            });
        }
    }
    if let Some(cg) = a.get("cgID").filter(|c| c.truthy()) {
        match lookup(ctx, Named::ContentGenerator, cg)? {
            Some((id, _)) => conds.push(Cond::Eq("cg_id", Sql::Integer(id))),
            None => return none(),
        }
    }
    if let Some(t) = a.get("type") {
        match btype_cond(ctx, &py_str(t))? {
            Some(c) => conds.push(c),
            None => return Ok(empty(&q)),
        }
    }
    if let Some(d) = a.opt_flag("draft") {
        conds.push(Cond::Eq("draft", Sql::Integer(i64::from(d))));
    }
    let sel = query::select(ctx.db, &rec::BUILDS, &conds, &q.opts)?;
    Ok(shape(sel, q.as_list, |s| {
        s.remove("id");
        s.remove("cg_id");
        s.remove("cg_name");
    }))
}

fn list_tagged(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let info = arg(a, "tag");
    let Some(tag) = tag_struct(ctx, info, false)? else {
        if a.flag("strict", true) {
            return Err(Fault::generic(format!(
                "No such tagInfo: {}",
                py_repr(info)
            )));
        }
        return Ok(Value::Array(Vec::new()));
    };
    let latest = match a.get("latest") {
        None | Some(Value::Bool(false)) => 0,
        Some(Value::Bool(true)) => 1,
        Some(v @ (Value::Int(_) | Value::String(_))) => int_value(v)?.max(0),
        Some(v) => i64::from(v.truthy()),
    };
    let mut conds = Vec::new();
    if let Some(p) = a.get("package").filter(|p| p.truthy()) {
        conds.push(Cond::Eq("package_name", Sql::Text(py_str(p))));
    }
    if let Some(o) = a.get("owner").filter(|o| o.truthy()) {
        conds.push(Cond::Eq("owner_name", Sql::Text(py_str(o))));
    }
    if let Some(t) = a.get("type") {
        match btype_cond(ctx, &py_str(t))? {
            Some(c) => conds.push(c),
            None => return Ok(Value::Array(Vec::new())),
        }
    }
    if let Some(d) = a.opt_flag("draft") {
        conds.push(Cond::Eq("draft", Sql::Integer(i64::from(d))));
    }
    let recs = rec::tagged_builds(
        ctx.db,
        id_of(&tag),
        a.flag("inherit", false),
        latest,
        &conds,
    )?;
    let extra = a.flag("extra", false);
    let prefix = a
        .get("prefix")
        .filter(|p| p.truthy())
        .map(|p| py_str(p).to_lowercase());
    Ok(Value::Array(
        recs.into_iter()
            .map(convert::record)
            .filter(|s| match &prefix {
                Some(p) => s
                    .get("package_name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| n.to_lowercase().starts_with(p.as_str())),
                None => true,
            })
            .map(|mut s| {
                if !extra {
                    s.remove("extra");
                }
                Value::Struct(s)
            })
            .collect(),
    ))
}

/// Python's `str.isdigit()` for ASCII text.
fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn add_to(digits: &str, incr: i64) -> Result<String, Fault> {
    let n: i128 = digits
        .parse()
        .map_err(|_| Fault::generic(format!("release value too large: {digits}")))?;
    Ok((n + i128::from(incr)).to_string())
}

fn get_next_release(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let incr = match a.get("incr") {
        None if !a.given("incr") => 1,
        v => int_value(v.unwrap_or(&Value::Nil))
            .map_err(|_| Fault::parameter("incr parameter must be an integer"))?,
    };
    let bi = a
        .opt_struct("build_info")?
        .ok_or_else(|| Fault::parameter("build_info must be a dict with name and version"))?;
    let key = |k: &str| {
        bi.get(k).map(py_str).ok_or_else(|| {
            Fault::raw(
                FaultCode::Unknown as i32,
                format!("<class 'KeyError'>: '{k}'"),
            )
        })
    };
    let (name, version) = (key("name")?, key("version")?);
    let release = rec::latest_release(ctx.db, &name, &version)?.unwrap_or_default();
    let next = if release.is_empty() {
        incr.to_string()
    } else if is_digits(&release) {
        add_to(&release, incr)?
    } else {
        let mut parts: Vec<String> = release.split('.').map(str::to_string).collect();
        if parts.len() == 2 && is_digits(&parts[0]) {
            parts[0] = add_to(&parts[0], incr)?;
        } else if parts.len() == 3 && is_digits(&parts[2]) {
            parts[2] = add_to(&parts[2], incr)?;
        } else {
            return Err(Fault::new(
                FaultCode::Build,
                format!("Unable to increment release value: {release}"),
            ));
        }
        parts.join(".")
    };
    Ok(Value::String(next))
}

fn list_volumes(ctx: &mut Ctx<'_>, _: &Args) -> Result<Value, Fault> {
    Ok(convert::records(query::rows(ctx.db, &rec::VOLUMES, &[])?))
}

fn get_volume(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let info = arg(a, "volume");
    match lookup(ctx, Named::Volume, info)? {
        Some((id, name)) => Ok(Value::Struct(id_name(id, &name))),
        None if a.flag("strict", false) => {
            Err(Fault::generic(format!("No such volume: {}", py_str(info))))
        }
        None => Ok(Value::Nil),
    }
}

fn get_build_type(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let info = arg(a, "buildInfo");
    let binfo = match info {
        Value::Struct(d) if d.get("extra").is_some() && d.get("id").is_some() => d.clone(),
        other => match build_struct(ctx, other, a.flag("strict", false))? {
            Some(b) => b,
            None => return Ok(Value::Nil),
        },
    };
    let id = int_value(binfo.get("id").unwrap_or(&Value::Nil))?;
    let typeinfo = match binfo.get("extra") {
        Some(Value::Struct(e)) => match e.get("typeinfo") {
            Some(Value::Struct(t)) => t.clone(),
            _ => Struct::new(),
        },
        _ => Struct::new(),
    };
    let mut ret = Struct::new();
    for bt in rec::build_btypes(ctx.db, id)? {
        let v = typeinfo.get(&bt).cloned().unwrap_or(Value::Nil);
        ret.insert(bt, v);
    }
    if ret.get("image").is_some() {
        ret.insert("image", Struct::new().with("build_id", id));
    }
    Ok(Value::Struct(ret))
}

/// getMavenBuild / getWinBuild / getImageBuild: only image builds exist on this hub.
fn typed_build(ctx: &mut Ctx<'_>, a: &Args, kind: &str) -> Result<Value, Fault> {
    let info = arg(a, "buildInfo");
    let strict = a.flag("strict", false);
    let Some(id) = find_build_id(ctx, info, strict)? else {
        return Ok(Value::Nil);
    };
    if kind == "image" && rec::build_btypes(ctx.db, id)?.iter().any(|b| b == "image") {
        return Ok(Value::Struct(Struct::new().with("build_id", id)));
    }
    if strict {
        return Err(Fault::generic(format!(
            "no such {kind} build: {}",
            py_str(info)
        )));
    }
    Ok(Value::Nil)
}

fn walk_logs(dir: &Path, sub: &str, out: &mut Vec<(String, String)>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let meta = std::fs::symlink_metadata(e.path())?;
        if meta.is_dir() {
            let child = if sub == "." {
                name.clone()
            } else {
                format!("{sub}/{name}")
            };
            walk_logs(&e.path(), &child, out)?;
        } else if meta.is_file() {
            out.push((sub.to_string(), name));
        } else {
            tracing::warn!(path = %e.path().display(), "skipping non-regular file under logdir");
        }
    }
    Ok(())
}

/// Koji's `pathinfo.build` relative to the topdir: `[vol/<volume>/]packages/<n>/<v>/<r>`.
fn build_rel_dir(b: &Struct) -> String {
    let field = |k: &str| b.get(k).map(py_str).unwrap_or_default();
    let volume = field("volume_name");
    let vol = if volume != "DEFAULT" && !volume.is_empty() {
        format!("vol/{volume}/")
    } else {
        String::new()
    };
    format!(
        "{vol}packages/{}/{}/{}",
        field("name"),
        field("version"),
        field("release")
    )
}

fn get_build_logs(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let b = build_struct(ctx, arg(a, "build"), true)?
        .ok_or_else(|| Fault::generic(format!("No such build: {}", py_str(arg(a, "build")))))?;
    let rel = format!("{}/data/logs", build_rel_dir(&b));
    let logdir = ctx.hub.topdir().join(&rel);
    if !logdir.exists() {
        return Ok(Value::Array(Vec::new()));
    }
    if !logdir.is_dir() {
        return Err(Fault::generic(format!(
            "Not a directory: {}",
            logdir.display()
        )));
    }
    let mut files = Vec::new();
    walk_logs(&logdir, ".", &mut files).map_err(Fault::internal)?;
    Ok(Value::Array(
        files
            .into_iter()
            .map(|(dir, name)| {
                let path = format!("{rel}/{dir}/{name}");
                Value::Struct(
                    Struct::new()
                        .with("name", name)
                        .with("dir", dir)
                        .with("path", path),
                )
            })
            .collect(),
    ))
}

fn list_archives(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let q = query_opts(a.opt_struct("queryOpts")?)?;
    let strict = a.flag("strict", false);
    let nothing = |q: &KojiQueryOpts| {
        if strict {
            Err(Fault::generic("No archives found."))
        } else {
            Ok(empty(q))
        }
    };
    if a.get("hostID").is_some() {
        // Only content-generator buildroots are recorded: nothing was built on a host.
        return nothing(&q);
    }
    let mut conds = Vec::new();
    // Archives used in a content-generator buildroot come with Koji's two extra fields.
    let mut view = &rec::ARCHIVES;
    if let Some(b) = a.get("componentBuildrootID") {
        view = &crate::store::cg::BUILDROOT_ARCHIVES;
        conds.push(Cond::Eq(
            "component_buildroot_id",
            Sql::Integer(int_value(b)?),
        ));
    }
    for (param, alias) in [
        ("buildID", "build_id"),
        ("buildrootID", "buildroot_id"),
        ("size", "size"),
        ("checksum_type", "checksum_type"),
        ("archiveID", "id"),
    ] {
        if let Some(v) = a.get(param) {
            conds.push(Cond::Eq(alias, Sql::Integer(int_value(v)?)));
        }
    }
    for (param, alias) in [("filename", "filename"), ("checksum", "checksum")] {
        if let Some(v) = a.get(param) {
            conds.push(Cond::Eq(alias, Sql::Text(py_str(v))));
        }
    }
    if let Some(i) = a.get("imageID") {
        conds.push(rec::archives_in_image(int_value(i)?));
    }
    let btype = a.get("type").map(py_str);
    let type_info = a.opt_struct("typeInfo")?.filter(|t| !t.is_empty());
    match btype.as_deref() {
        None => {}
        Some("maven" | "win") => return nothing(&q),
        Some("image") => {
            conds.push(Cond::Eq("btype", Sql::Text("image".into())));
            if let Some(arch) = type_info.and_then(|t| t.get("arch")).filter(|v| v.truthy()) {
                conds.push(Cond::Eq("arch", Sql::Text(py_str(arch))));
            }
        }
        Some(t) => {
            let (id, name) = rec::lookup(ctx.db, Named::Btype, Ref::Name(t))?
                .ok_or_else(|| Fault::generic(format!("unsupported archive type: {t}")))?;
            if type_info.is_some() {
                return Err(Fault::generic(format!(
                    "typeInfo queries not supported for type {name}"
                )));
            }
            conds.push(Cond::Eq("btype_id", Sql::Integer(id)));
        }
    }
    let sel = query::select(ctx.db, view, &conds, &q.opts)?;
    let found = match &sel {
        Selected::Rows(r) => !r.is_empty(),
        Selected::Count(n) => *n > 0,
    };
    if strict && !found {
        return Err(Fault::generic("No archives found."));
    }
    let image = btype.as_deref() == Some("image");
    Ok(shape(sel, q.as_list, |s| {
        if !image {
            s.remove("arch");
        }
    }))
}

fn get_archive(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let info = arg(a, "archive_id");
    let id = int_value(info)?;
    let found = first(query::rows(
        ctx.db,
        &rec::ARCHIVES,
        &[Cond::Eq("id", Sql::Integer(id))],
    )?);
    match found {
        Some(mut s) => {
            if s.get("btype").and_then(Value::as_str) != Some("image") {
                s.remove("arch");
            }
            Ok(Value::Struct(s))
        }
        None if a.flag("strict", false) => {
            Err(Fault::generic(format!("No such archive: {}", py_str(info))))
        }
        None => Ok(Value::Nil),
    }
}

fn list_rpms(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let q = query_opts(a.opt_struct("queryOpts")?)?;
    if a.get("hostID").is_some() {
        return Ok(empty(&q));
    }
    let mut conds = Vec::new();
    let mut view = &rec::RPMS;
    if let Some(b) = a.get("componentBuildrootID") {
        // RPMs used in a content-generator buildroot, with Koji's two extra fields.
        view = &crate::store::cg::BUILDROOT_RPMS;
        conds.push(Cond::Eq(
            "component_buildroot_id",
            Sql::Integer(int_value(b)?),
        ));
    }
    if let Some(b) = a.get("buildID") {
        conds.push(Cond::Eq("build_id", Sql::Integer(int_value(b)?)));
    }
    if let Some(b) = a.get("buildrootID") {
        conds.push(Cond::Eq("buildroot_id", Sql::Integer(int_value(b)?)));
    }
    if let Some(i) = a.get("imageID") {
        if a.get("componentBuildrootID").is_some() {
            conds.push(rec::rpms_in_image(int_value(i)?));
        } else {
            // The image's known RPMs plus the unknown components kept by the CG import
            // (negative ids, no build).
            view = &crate::store::cg::IMAGE_RPMS;
            conds.push(Cond::Eq("image_id", Sql::Integer(int_value(i)?)));
        }
    }
    match a.get("arches") {
        None => {}
        Some(Value::String(s)) => conds.push(Cond::Eq("arch", Sql::Text(s.clone()))),
        Some(Value::Array(l)) => conds.push(Cond::In(
            "arch",
            l.iter().map(|x| Sql::Text(py_str(x))).collect(),
        )),
        Some(other) => {
            return Err(Fault::generic(format!(
                "Invalid type for \"arches\" parameter: {}",
                py_type(other)
            )));
        }
    }
    if let Some(d) = a.opt_flag("draft") {
        conds.push(Cond::Eq("draft", Sql::Integer(i64::from(d))));
    }
    let sel = query::select(ctx.db, view, &conds, &q.opts)?;
    Ok(shape(sel, q.as_list, |_| {}))
}

/// The RPMs `rpminfo` names (Koji's `_get_rpms`), with the lookup data for messages.
fn rpm_matches(ctx: &Ctx<'_>, info: &Value) -> Result<(Struct, Vec<Struct>), Fault> {
    let data = match info {
        Value::Int(i) => Struct::new().with("id", *i),
        Value::String(s) => match s.trim().parse::<i64>() {
            Ok(i) => Struct::new().with("id", i),
            Err(_) => parse_nvra(s)?,
        },
        Value::Struct(d) => d.clone(),
        other => {
            return Err(Fault::generic(format!(
                "Invalid type for rpminfo: {}",
                py_type(other)
            )));
        }
    };
    let mut conds = Vec::new();
    if let Some(id) = data.get("id") {
        conds.push(Cond::Eq("id", Sql::Integer(int_value(id)?)));
    } else {
        for alias in ["name", "version", "release", "arch"] {
            let v = data.get(alias).ok_or_else(|| {
                Fault::raw(
                    FaultCode::Unknown as i32,
                    format!("<class 'KeyError'>: '{alias}'"),
                )
            })?;
            conds.push(Cond::Eq(alias, Sql::Text(py_str(v))));
        }
    }
    if let Some(loc) = data.get("location") {
        if loc.as_str() != Some("INTERNAL") {
            return Err(Fault::generic(format!(
                "No such entry in table external_repo: {}",
                py_str(loc)
            )));
        }
        conds.push(Cond::Eq("external_repo_id", Sql::Integer(0)));
    }
    let rpms = query::rows(ctx.db, &rec::RPMS, &conds)?
        .into_iter()
        .map(|r| {
            let mut s = convert::record(r);
            s.remove("nvr");
            s
        })
        .collect();
    Ok((data, rpms))
}

/// Koji's `get_rpm` choice among matches: the internal non-draft rpm, then the newest draft,
/// then the newest external one.
fn pick_rpm(data: Struct, mut rpms: Vec<Struct>, strict: bool) -> Result<Option<Struct>, Fault> {
    if rpms.is_empty() {
        if strict {
            return Err(Fault::generic(format!(
                "No such rpm: {}",
                py_repr(&Value::Struct(data))
            )));
        }
        return Ok(None);
    }
    if rpms.len() == 1 {
        return Ok(Some(rpms.remove(0)));
    }
    let flag = |s: &Struct, k: &str| s.get(k).is_some_and(Value::truthy);
    let newest = |v: Vec<&Struct>| v.into_iter().max_by_key(|s| id_of(s)).cloned();
    let nondraft: Vec<&Struct> = rpms
        .iter()
        .filter(|s| !flag(s, "external_repo_id") && !flag(s, "draft"))
        .collect();
    if nondraft.len() > 1 {
        return Err(Fault::generic(format!(
            "Multiple nondraft rpm matches for: {}",
            py_repr(&Value::Struct(data))
        )));
    }
    Ok(nondraft
        .first()
        .map(|s| (*s).clone())
        .or_else(|| {
            newest(
                rpms.iter()
                    .filter(|s| !flag(s, "external_repo_id") && flag(s, "draft"))
                    .collect(),
            )
        })
        .or_else(|| {
            newest(
                rpms.iter()
                    .filter(|s| flag(s, "external_repo_id"))
                    .collect(),
            )
        }))
}

fn get_rpm(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let (data, rpms) = rpm_matches(ctx, arg(a, "rpminfo"))?;
    if a.flag("multi", false) {
        return Ok(Value::Array(rpms.into_iter().map(Value::Struct).collect()));
    }
    Ok(pick_rpm(data, rpms, a.flag("strict", false))?
        .map(Value::Struct)
        .unwrap_or(Value::Nil))
}

fn get_rpm_headers(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let strict = a.flag("strict", false);
    let missing = |path: &str| {
        if strict {
            Err(Fault::generic(format!("Missing rpm file: {path}")))
        } else {
            Ok(Value::Struct(Struct::new()))
        }
    };
    let path = if let Some(info) = a.get("rpmID").filter(|v| v.truthy()) {
        let (data, rpms) = rpm_matches(ctx, info)?;
        let Some(r) = pick_rpm(data, rpms, strict)? else {
            return Ok(Value::Struct(Struct::new()));
        };
        if r.get("external_repo_id").is_some_and(Value::truthy) {
            if strict {
                return Err(Fault::generic(format!("External rpm: {}", id_of(&r))));
            }
            return Ok(Value::Struct(Struct::new()));
        }
        let b = build_struct(ctx, r.get("build_id").unwrap_or(&Value::Nil), true)?
            .ok_or_else(|| Fault::generic("No such build: None"))?;
        if b.get("state").and_then(Value::as_int) == Some(rec::BUILD_DELETED) {
            if strict {
                return Err(Fault::generic(format!(
                    "Build {} is deleted",
                    b.get("nvr").map(py_str).unwrap_or_default()
                )));
            }
            return Ok(Value::Struct(Struct::new()));
        }
        let f = |k: &str| r.get(k).map(py_str).unwrap_or_default();
        let arch = f("arch");
        ctx.hub.topdir().join(format!(
            "{}/{arch}/{}-{}-{}.{arch}.rpm",
            build_rel_dir(&b),
            f("name"),
            f("version"),
            f("release")
        ))
    } else if a.get("taskID").is_some_and(Value::truthy) {
        let Some(fp) = a.get("filepath").filter(|v| v.truthy()).map(py_str) else {
            return Err(Fault::generic("filepath must be specified with taskID"));
        };
        if fp.starts_with('/') || fp.contains("../") {
            return Err(Fault::generic(format!("Invalid filepath: {fp}")));
        }
        let task = int_value(arg(a, "taskID"))?;
        ctx.hub
            .topdir()
            .join(crate::hub::task_relpath(task))
            .join(fp)
    } else {
        return Err(Fault::generic(
            "either rpmID or taskID and filepath must be specified",
        ));
    };
    if !path.exists() {
        return missing(&path.display().to_string());
    }
    // This hub does not parse RPM headers; an existing file yields no header values.
    tracing::info!(path = %path.display(), "getRPMHeaders: header parsing not supported");
    Ok(Value::Struct(Struct::new()))
}

fn list_buildroots(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    super::cg::list_buildroots(ctx, a)
}

fn query_rpm_sigs(_: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let q = query_opts(a.opt_struct("queryOpts")?)?;
    Ok(empty(&q))
}

fn get_changelog_entries(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let q = query_opts(a.opt_struct("queryOpts")?)?;
    let strict = a.flag("strict", false);
    if let Some(b) = a.get("buildID") {
        let Some(binfo) = build_struct(ctx, b, false)? else {
            if strict {
                return Err(Fault::generic(format!("No such build: {}", py_str(b))));
            }
            return Ok(empty(&q));
        };
        let srpms = query::rows(
            ctx.db,
            &rec::RPMS,
            &[
                Cond::Eq("build_id", Sql::Integer(id_of(&binfo))),
                Cond::Eq("arch", Sql::Text("src".into())),
            ],
        )?;
        if srpms.is_empty() && strict {
            return Err(Fault::generic(format!(
                "Build {} doesn't have srpms",
                py_str(b)
            )));
        }
    } else if a.get("taskID").is_some() {
        let Some(fp) = a.get("filepath") else {
            return Err(Fault::generic("filepath must be specified with taskID"));
        };
        let fp = py_str(fp);
        if fp.starts_with('/') || fp.split('/').any(|p| p == "..") {
            return Err(Fault::generic(format!("Invalid filepath: {fp}")));
        }
    } else {
        return Err(Fault::generic(
            "either buildID or taskID and filepath must be specified",
        ));
    }
    // SRPM headers are not read by this hub.
    Ok(empty(&q))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nvr_parsing() {
        assert_eq!(
            parse_nvr("foo-bar-1.0-1.fc40").unwrap(),
            (
                "foo-bar".into(),
                "1.0".into(),
                "1.fc40".into(),
                String::new()
            )
        );
        assert_eq!(parse_nvr("1:foo-1-2").unwrap().3, "1");
        assert!(parse_nvr("foo-1").is_err());
        assert!(parse_nvr("foo--1").is_err());
        let r = parse_nvra("foo-1-2.x86_64.rpm@INTERNAL").unwrap();
        assert_eq!(r.get("arch"), Some(&Value::str("x86_64")));
        assert_eq!(r.get("location"), Some(&Value::str("INTERNAL")));
        assert!(parse_nvra("foo-1-2.").is_err());
    }

    #[test]
    fn python_reprs() {
        assert_eq!(py_repr(&Value::str("x")), "'x'");
        assert_eq!(py_repr(&Value::str("it's")), "\"it's\"");
        assert_eq!(py_repr(&Value::Double(2.0)), "2.0");
        assert_eq!(
            py_repr(&Value::Struct(
                Struct::new().with("id", 5).with("a", Value::Nil)
            )),
            "{'id': 5, 'a': None}"
        );
        assert_eq!(py_type(&Value::Double(1.5)), "<class 'float'>");
    }

    #[test]
    fn arches_and_names() {
        assert_eq!(
            parse_arches(&Value::str("x86_64,aarch64"), false, false).unwrap(),
            "x86_64 aarch64"
        );
        assert_eq!(parse_arches(&Value::Nil, true, true).unwrap(), "");
        assert!(parse_arches(&Value::str("x86_64,aarch64"), true, false).is_err());
        assert!(verify_name_internal(&Value::str("f40-build")).is_ok());
        assert!(verify_name_internal(&Value::str("bad name")).is_err());
        assert_eq!(
            verify_name_internal(&Value::Int(3)).unwrap_err().message,
            "Name should be string"
        );
    }

    #[test]
    fn times() {
        assert_eq!(
            time_arg(&Value::str("2024-01-01 00:00:00")).unwrap(),
            1_704_067_200.0
        );
        assert_eq!(
            time_arg(&Value::str("2024-01-01")).unwrap(),
            1_704_067_200.0
        );
        assert_eq!(time_arg(&Value::Int(5)).unwrap(), 5.0);
        assert!(time_arg(&Value::str("yesterday")).is_err());
    }

    #[test]
    fn in_memory_query_opts() {
        let items = vec![
            Struct::new().with("n", "b").with("i", 2),
            Struct::new().with("n", "a").with("i", 1),
            Struct::new().with("n", "c").with("i", 3),
        ];
        let mut q = KojiQueryOpts {
            opts: Default::default(),
            as_list: false,
        };
        q.opts.set_order("-i");
        q.opts.limit = Some(2);
        let Value::Array(v) = finish(items.clone(), &q) else {
            panic!()
        };
        assert_eq!(v[0].as_struct().unwrap().get("n"), Some(&Value::str("c")));
        assert_eq!(v.len(), 2);
        q.as_list = true;
        let Value::Array(v) = finish(items.clone(), &q) else {
            panic!()
        };
        assert_eq!(v[0], Value::Array(vec![Value::Int(3), Value::str("c")]));
        q.opts.count_only = true;
        assert_eq!(finish(items, &q), Value::Int(2));
    }
}
