//! Reading and cancelling tasks, and their output files (Koji's `Task` class and friends).

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use rusqlite::types::Value as Sql;

use crate::hub::{Ctx, Method};
use crate::hub::{convert, metrics};
use crate::params;
use crate::store::query::{self, Cond};
use crate::store::tasks::{self, LIST_VIEW, TASK_VIEW};
use crate::xmlrpc::sig::{opt, req};
use crate::xmlrpc::wire;
use crate::xmlrpc::{Args, Fault, Struct, Value};

use super::{query_opts, shape};

pub fn methods() -> Vec<Method> {
    vec![
        Method::read(
            "getTaskInfo",
            params![
                req("task_id"),
                opt("request", "False"),
                opt("strict", "False")
            ],
            "Get information about a task (or a list of tasks); request=True adds the decoded request.",
            get_task_info,
        ),
        Method::read(
            "getTaskRequest",
            params![req("taskId")],
            "Return the task's original request as a list.",
            get_task_request,
        ),
        Method::read(
            "getTaskResult",
            params![req("taskId"), opt("raise_fault", "True")],
            "Return the task's result; a failed task's fault is raised again with its code and text.",
            get_task_result,
        ),
        Method::read(
            "getTaskChildren",
            params![
                req("task_id"),
                opt("request", "False"),
                opt("strict", "False")
            ],
            "Return the direct children of a task.",
            get_task_children,
        ),
        Method::read(
            "getTaskDescendents",
            params![req("task_id"), opt("request", "False")],
            "Return {str(task_id): [children]} for the whole subtree.",
            get_task_descendents,
        ),
        Method::read(
            "taskFinished",
            params![req("taskId")],
            "Whether the task is CLOSED, CANCELED or FAILED.",
            task_finished,
        ),
        Method::read(
            "listTasks",
            params![opt("opts", "None"), opt("queryOpts", "None")],
            "List tasks filtered by opts (arch, state, owner, host_id, channel_id, parent and not_* forms, method, created/started/complete Before/After, decode).",
            list_tasks,
        ),
        Method::write(
            "cancelTask",
            params![req("task_id"), opt("recurse", "True")],
            "Cancel a task (owner, the host running it, or admin).",
            cancel_task,
        ),
        Method::write(
            "cancelTaskFull",
            params![req("task_id"), opt("strict", "True")],
            "Cancel a task and every task in its group (admin).",
            cancel_task_full,
        ),
        Method::write(
            "cancelTaskChildren",
            params![req("task_id")],
            "Cancel a task's children but not the task itself.",
            cancel_task_children,
        ),
        Method::read(
            "listTaskOutput",
            params![
                req("taskID"),
                opt("stat", "False"),
                opt("all_volumes", "False"),
                opt("strict", "False")
            ],
            "List the files a task produced (names relative to its work directory).",
            list_task_output,
        ),
        Method::write("makeTask", &[], "Create a task by hand (admin; for debugging): makeTask(method, arglist, channel=, arch=, priority=, parent=, label=, assign=).", make_task)
            .varargs("args")
            .varkw("opts"),
        Method::read(
            "downloadTaskOutput",
            params![
                req("taskID"),
                req("fileName"),
                opt("offset", "0"),
                opt("size", "-1"),
                opt("volume", "None")
            ],
            "Read a chunk of a task output file, as base64 text ('' at end of file).",
            download_task_output,
        ),
    ]
}

fn no_such_task(id: i64) -> Fault {
    Fault::generic(format!("No such task: {id}"))
}

/// Decodes a stored `<methodCall>` document into its params.
fn decode_request(xml: &str) -> Result<Value, Fault> {
    let call = wire::parse_call(xml.as_bytes())
        .map_err(|e| Fault::internal(format!("stored request unreadable: {e}")))?;
    Ok(Value::Array(call.params))
}

/// Decodes a stored `<methodResponse>` as `listTasks(decode=True)` does: `[value]` or the fault struct.
fn decode_result(xml: &str) -> Result<Value, Fault> {
    match wire::parse_response(xml.as_bytes())
        .map_err(|e| Fault::internal(format!("stored result unreadable: {e}")))?
    {
        Ok(v) => Ok(Value::Array(vec![v])),
        Err(f) => Ok(Value::Struct(f.to_struct())),
    }
}

fn task_struct(ctx: &Ctx<'_>, id: i64, request: bool) -> Result<Option<Struct>, Fault> {
    let rows = query::rows(ctx.db, &TASK_VIEW, &[Cond::Eq("id", Sql::Integer(id))])?;
    let Some(rec) = rows.into_iter().next() else {
        return Ok(None);
    };
    let mut s = convert::record(rec);
    if request && let Some((req, _)) = tasks::documents(ctx.db, id)? {
        s.insert("request", decode_request(&req)?);
    }
    Ok(Some(s))
}

fn task_id(v: &Value) -> Result<i64, Fault> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| Fault::parameter(format!("Invalid task id: {s:?}"))),
        other => Err(Fault::parameter(format!(
            "Invalid task id of type {}",
            other.type_name()
        ))),
    }
}

fn get_task_info(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let request = a.flag("request", false);
    let strict = a.flag("strict", false);
    let one = |ctx: &Ctx<'_>, v: &Value| -> Result<Value, Fault> {
        let id = task_id(v)?;
        match task_struct(ctx, id, request)? {
            Some(s) => Ok(Value::Struct(s)),
            None if strict => Err(no_such_task(id)),
            None => Ok(Value::Nil),
        }
    };
    match a.get("task_id") {
        Some(Value::Array(ids)) => Ok(Value::Array(
            ids.iter().map(|v| one(ctx, v)).collect::<Result<_, _>>()?,
        )),
        Some(v) => one(ctx, v),
        None => Err(no_such_task(0)),
    }
}

fn existing(ctx: &Ctx<'_>, id: i64) -> Result<tasks::TaskCore, Fault> {
    tasks::core(ctx.db, id)?.ok_or_else(|| no_such_task(id))
}

fn get_task_request(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let id = a.int("taskId")?;
    let (req, _) = tasks::documents(ctx.db, id)?.ok_or_else(|| no_such_task(id))?;
    decode_request(&req)
}

fn get_task_result(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let id = a.int("taskId")?;
    let t = tasks::core(ctx.db, id)?.ok_or_else(|| Fault::generic("No such task"))?;
    match t.state {
        tasks::CANCELED => return Err(Fault::generic(format!("Task {id} is canceled"))),
        tasks::CLOSED | tasks::FAILED => {}
        _ => return Err(Fault::generic(format!("Task {id} is not finished"))),
    }
    let (_, result) = tasks::documents(ctx.db, id)?.ok_or_else(|| no_such_task(id))?;
    let Some(xml) = result else {
        return Ok(Value::Nil);
    };
    match wire::parse_response(xml.as_bytes())
        .map_err(|e| Fault::internal(format!("stored result unreadable: {e}")))?
    {
        Ok(v) => Ok(v),
        Err(f) if a.flag("raise_fault", true) => Err(f),
        Err(f) => Ok(Value::Struct(f.to_struct())),
    }
}

fn children(ctx: &Ctx<'_>, parent: i64, request: bool) -> Result<Vec<Struct>, Fault> {
    let rows = query::rows(
        ctx.db,
        &TASK_VIEW,
        &[Cond::Eq("parent", Sql::Integer(parent))],
    )?;
    let mut out = Vec::with_capacity(rows.len());
    for rec in rows {
        let mut s = convert::record(rec);
        if request
            && let Some(id) = s.get("id").and_then(Value::as_int)
            && let Some((req, _)) = tasks::documents(ctx.db, id)?
        {
            s.insert("request", decode_request(&req)?);
        }
        out.push(s);
    }
    Ok(out)
}

fn get_task_children(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let id = a.int("task_id")?;
    if a.flag("strict", false) {
        existing(ctx, id)?;
    }
    Ok(Value::Array(
        children(ctx, id, a.flag("request", false))?
            .into_iter()
            .map(Value::Struct)
            .collect(),
    ))
}

fn get_task_descendents(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let request = a.flag("request", false);
    let mut map = Struct::new();
    let mut stack = vec![a.int("task_id")?];
    while let Some(id) = stack.pop() {
        if map.get(&id.to_string()).is_some() {
            continue;
        }
        let kids = children(ctx, id, request)?;
        stack.extend(
            kids.iter()
                .rev()
                .filter_map(|k| k.get("id").and_then(Value::as_int)),
        );
        map.insert(
            id.to_string(),
            Value::Array(kids.into_iter().map(Value::Struct).collect()),
        );
    }
    Ok(Value::Struct(map))
}

fn task_finished(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let t = existing(ctx, a.int("taskId")?)?;
    Ok(Value::Bool(matches!(
        t.state,
        tasks::CLOSED | tasks::CANCELED | tasks::FAILED
    )))
}

fn sql_of(v: &Value) -> Result<Sql, Fault> {
    Ok(match v {
        Value::Int(i) => Sql::Integer(*i),
        Value::Bool(b) => Sql::Integer(i64::from(*b)),
        Value::String(s) => Sql::Text(s.clone()),
        Value::Double(d) => Sql::Real(*d),
        Value::Nil => Sql::Null,
        other => {
            return Err(Fault::parameter(format!(
                "Invalid filter value of type {}",
                other.type_name()
            )));
        }
    })
}

fn sql_list(key: &str, v: &Value) -> Result<Vec<Sql>, Fault> {
    match v {
        Value::Array(items) => items.iter().map(sql_of).collect(),
        other => Err(Fault::parameter(format!(
            "{key} must be a list, got {}",
            other.type_name()
        ))),
    }
}

/// Epoch seconds from a float or an ISO date string (`convert_timestamp` / PostgreSQL casting).
pub fn timestamp(key: &str, v: &Value) -> Result<f64, Fault> {
    match v {
        Value::Int(i) => Ok(*i as f64),
        Value::Double(d) => Ok(*d),
        Value::String(s) => crate::xmlrpc::time::parse_iso(s)
            .ok_or_else(|| Fault::generic(format!("Invalid time specification for {key}: {s}"))),
        other => Err(Fault::parameter(format!(
            "Invalid time for {key}: {}",
            other.type_name()
        ))),
    }
}

fn list_tasks(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let empty = Struct::new();
    let opts = a.opt_struct("opts")?.unwrap_or(&empty);
    let q = query_opts(a.opt_struct("queryOpts")?)?;
    let mut conds = Vec::new();
    for (key, field) in [("arch", "arch"), ("state", "state")] {
        if let Some(v) = opts.get(key) {
            conds.push(Cond::In(field, sql_list(key, v)?));
        }
        if let Some(v) = opts.get(&format!("not_{key}")) {
            conds.push(Cond::NotIn(field, sql_list(key, v)?));
        }
    }
    for field in ["owner", "host_id", "channel_id", "parent"] {
        if let Some(v) = opts.get(field) {
            conds.push(match v {
                Value::Nil => Cond::IsNull(field),
                Value::Array(_) => Cond::In(field, sql_list(field, v)?),
                v => Cond::Eq(field, sql_of(v)?),
            });
        }
        if let Some(v) = opts.get(&format!("not_{field}")) {
            conds.push(match v {
                Value::Nil => Cond::NotNull(field),
                Value::Array(_) => Cond::NotIn(field, sql_list(field, v)?),
                v => Cond::Ne(field, sql_of(v)?),
            });
        }
    }
    if let Some(v) = opts.get("method") {
        conds.push(Cond::Eq("method", sql_of(v)?));
    }
    for (key, field, less) in [
        ("createdBefore", "create_ts", true),
        ("createdAfter", "create_ts", false),
        ("startedBefore", "start_ts", true),
        ("startedAfter", "start_ts", false),
        ("completeBefore", "completion_ts", true),
        ("completeAfter", "completion_ts", false),
        ("completedBefore", "completion_ts", true),
        ("completedAfter", "completion_ts", false),
    ] {
        if let Some(v) = opts.get(key).filter(|v| !v.is_nil()) {
            let ts = Sql::Real(timestamp(key, v)?);
            conds.push(if less {
                Cond::Lt(field, ts)
            } else {
                Cond::Gt(field, ts)
            });
        }
    }
    let decode = opts.get("decode").is_some_and(Value::truthy) && !q.as_list;
    let sel = query::select(ctx.db, &LIST_VIEW, &conds, &q.opts)?;
    let mut err = None;
    let v = shape(sel, q.as_list, |s| {
        if decode {
            for key in ["request", "result"] {
                let decoded = match s.get(key) {
                    Some(Value::String(x)) if !x.is_empty() => Some(if key == "request" {
                        decode_request(x)
                    } else {
                        decode_result(x)
                    }),
                    _ => None,
                };
                match decoded {
                    Some(Ok(d)) => s.insert(key, d),
                    Some(Err(e)) => err = Some(e),
                    None => {}
                }
            }
        }
    });
    match err {
        Some(e) => Err(e),
        None => Ok(v),
    }
}

/// Koji's rule: the owner, the host running the task, or an admin may cancel. "Running" is
/// Koji's `Task.verifyHost`: the task is OPEN on the caller's host; a task only ASSIGNED to it
/// is not the host's to cancel (it may refuse it instead).
fn may_cancel(ctx: &Ctx<'_>, t: &tasks::TaskCore) -> Result<(), Fault> {
    let uid = ctx.auth.user_id();
    let owner = uid == Some(t.owner);
    let host = match (uid, t.host_id) {
        (Some(u), Some(h)) if t.state == tasks::OPEN => {
            ctx.db
                .query_row("SELECT user_id FROM hosts WHERE id = ?1", [h], |r| {
                    r.get::<_, i64>(0)
                })
                .ok()
                == Some(u)
        }
        _ => false,
    };
    if owner || host || ctx.has_perm("admin")? {
        Ok(())
    } else {
        Err(Fault::not_allowed("Cannot cancel task, not owner"))
    }
}

fn cancel_task(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let t = existing(ctx, a.int("task_id")?)?;
    may_cancel(ctx, &t)?;
    let ended = tasks::cancel_report(ctx.db, t.id, a.flag("recurse", true))?;
    metrics::tasks_canceled(ctx.after, &ended);
    let changed: Vec<i64> = ended.iter().map(|e| e.id).collect();
    if !changed.is_empty() {
        tracing::info!(task_id = t.id, canceled = ?changed, "tasks canceled");
    }
    Ok(Value::Nil)
}

fn cancel_task_full(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    ctx.require_perm("admin")?;
    let mut t = existing(ctx, a.int("task_id")?)?;
    if let Some(p) = t.parent {
        if a.flag("strict", true) {
            return Err(Fault::generic(format!(
                "Task {} is not top-level (parent={p})",
                t.id
            )));
        }
        let mut seen = vec![t.id];
        while let Some(p) = t.parent {
            if seen.contains(&p) {
                return Err(Fault::generic(format!("Task LOOP at task {}", t.id)));
            }
            seen.push(p);
            t = existing(ctx, p)?;
        }
    }
    // Unlike cancelTask, the whole group is walked even below already-finished tasks.
    let mut list = vec![t.id];
    let mut i = 0;
    while i < list.len() {
        let id = list[i];
        let ended = tasks::cancel_report(ctx.db, id, false)?;
        metrics::tasks_canceled(ctx.after, &ended);
        list.extend(tasks::child_ids(ctx.db, id)?);
        i += 1;
    }
    Ok(Value::Nil)
}

fn cancel_task_children(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    ctx.user_id()?;
    let t = existing(ctx, a.int("task_id")?)?;
    may_cancel(ctx, &t)?;
    for child in tasks::child_ids(ctx.db, t.id)? {
        let ended = tasks::cancel_report(ctx.db, child, true)?;
        metrics::tasks_canceled(ctx.after, &ended);
    }
    Ok(Value::Nil)
}

/// Relative paths of every file below `dir`, sorted.
fn walk(dir: &Path) -> Vec<(String, std::fs::Metadata)> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((d, rel)) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let r = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            // As Koji's os.walk + os.stat: directories are not followed through symlinks, files
            // are (a CG import leaves a symlink to the file it moved into the build's directory).
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push((e.path(), r)),
                Ok(m) if m.is_file() => out.push((r, m)),
                Ok(m) if m.file_type().is_symlink() => {
                    if let Ok(t) = std::fs::metadata(e.path())
                        && t.is_file()
                    {
                        out.push((r, t));
                    }
                }
                _ => {}
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn stat_map(m: &std::fs::Metadata) -> Struct {
    use std::os::unix::fs::MetadataExt;
    let t = |s: i64, ns: i64| s as f64 + ns as f64 / 1e9;
    Struct::new()
        .with("st_atime", t(m.atime(), m.atime_nsec()))
        .with("st_ctime", t(m.ctime(), m.ctime_nsec()))
        .with("st_mtime", t(m.mtime(), m.mtime_nsec()))
        .with("st_size", m.len().to_string())
}

fn list_task_output(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let id = a.int("taskID")?;
    if a.flag("strict", false) && tasks::core(ctx.db, id)?.is_none() {
        return Err(Fault::generic("Task doesn't exist"));
    }
    let stat = a.flag("stat", false);
    let all = a.flag("all_volumes", false);
    let files = walk(&ctx.hub.task_dir(id));
    Ok(match (stat, all) {
        (false, false) => Value::Array(files.into_iter().map(|(n, _)| Value::String(n)).collect()),
        (false, true) => Value::Struct(
            files
                .into_iter()
                .map(|(n, _)| (n, Value::Array(vec![Value::str("DEFAULT")])))
                .collect(),
        ),
        (true, false) => Value::Struct(
            files
                .into_iter()
                .map(|(n, m)| (n, Value::Struct(stat_map(&m))))
                .collect(),
        ),
        (true, true) => Value::Struct(
            files
                .into_iter()
                .map(|(n, m)| {
                    (
                        n,
                        Value::Struct(Struct::new().with("DEFAULT", Value::Struct(stat_map(&m)))),
                    )
                })
                .collect(),
        ),
    })
}

fn download_task_output(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    use base64::Engine as _;
    let id = a.int("taskID")?;
    let name = a.str("fileName")?;
    if let Some(vol) = a.get("volume") {
        let ok = matches!(vol, Value::String(s) if s == "DEFAULT") || matches!(vol, Value::Int(0));
        if !ok {
            return Err(Fault::generic(format!(
                "No such volume: {}",
                vol.as_str().unwrap_or("?")
            )));
        }
    }
    if name.contains("..") || name.starts_with('/') || name.contains('\0') {
        return Err(Fault::generic(format!("Invalid file name: {name}")));
    }
    let missing = || Fault::generic(format!("no file \"{name}\" output by task {id}"));
    let path = crate::hub::files::safe_join(&ctx.hub.task_dir(id), name).ok_or_else(missing)?;
    let mut f = std::fs::File::open(&path).map_err(|_| missing())?;
    let meta = f.metadata().map_err(|_| missing())?;
    if !meta.is_file() {
        return Err(missing());
    }
    let offset = a.opt_int("offset")?.unwrap_or(0);
    let size = a.opt_int("size")?.unwrap_or(-1);
    let io = |e: std::io::Error| Fault::generic(format!("cannot read {name} of task {id}: {e}"));
    if offset > 0 {
        f.seek(SeekFrom::Start(offset as u64)).map_err(io)?;
    } else if offset < 0 {
        let len = meta.len() as i64;
        f.seek(SeekFrom::Start((len + offset).max(0) as u64))
            .map_err(io)?;
    }
    let mut buf = Vec::new();
    if size < 0 {
        f.read_to_end(&mut buf).map_err(io)?;
    } else {
        f.take(size as u64).read_to_end(&mut buf).map_err(io)?;
    }
    Ok(Value::String(
        base64::engine::general_purpose::STANDARD.encode(buf),
    ))
}

/// Koji's `makeTask(*args, **opts)` = `make_task(method, arglist, **opts)`, admin only.
fn make_task(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    use crate::store::tasks::{ChannelSel, TaskSpec};
    ctx.require_perm("admin")?;
    if a.kwargs.get("owner").is_some() {
        return Err(Fault::not_allowed("The owner option is not allowed here"));
    }
    let (method, arglist) = match a.varargs.as_slice() {
        [Value::String(m), Value::Array(args)] => (m.clone(), args.clone()),
        [Value::String(_), other] => {
            return Err(Fault::parameter(format!(
                "make_task(): arglist must be a list, got {}",
                other.type_name()
            )));
        }
        _ => {
            return Err(Fault::parameter(
                "make_task() takes 2 positional arguments: 'method' and 'arglist'",
            ));
        }
    };
    let mut spec = TaskSpec {
        method: method.clone(),
        request_xml: wire::write_call(&method, &arglist),
        ..TaskSpec::default()
    };
    for (k, v) in a.kwargs.iter() {
        match (k, v) {
            (_, Value::Nil) => {}
            ("channel", Value::Int(i)) => spec.channel = Some(ChannelSel::Id(*i)),
            ("channel", Value::String(n)) => spec.channel = Some(ChannelSel::Name(n.clone())),
            ("arch", Value::String(x)) => spec.arch = Some(x.clone()),
            ("priority", Value::Int(p)) => spec.priority = Some(*p),
            ("parent", Value::Int(p)) => spec.parent = Some(*p),
            ("label", Value::String(l)) => spec.label = Some(l.clone()),
            ("assign", Value::Int(h)) => spec.assign = Some(*h),
            ("channel" | "arch" | "priority" | "parent" | "label" | "assign", v) => {
                return Err(Fault::parameter(format!(
                    "make_task(): invalid type for {k}: {}",
                    v.type_name()
                )));
            }
            _ => {
                return Err(Fault::parameter(format!(
                    "make_task() got an unexpected keyword argument '{k}'"
                )));
            }
        }
    }
    let id = crate::hub::scheduler::create_task(ctx, &spec)?;
    tracing::info!(task_id = id, method = %method, "task created by makeTask");
    Ok(Value::Int(id))
}
