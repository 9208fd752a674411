//! The builder-host protocol (`host.*`, Koji's `HostExports`) and the scheduler's admin and
//! query methods (`assignTask`, `scheduler.*`).
//!
//! Every `host.*` method first checks Koji's `Host().verify()`: a logged-in session whose user
//! is a host, exclusive itself or through its master session.

use std::time::{Duration, Instant};

use rusqlite::Connection;
use rusqlite::types::Value as Sql;

use crate::hub::{Auth, Ctx, Hub, Method, convert, json_to_value, value_to_json};
use crate::hub::{metrics, scheduler};
use crate::params;
use crate::store::query::{self, Cond, QueryOpts, Selected, View};
use crate::store::records::HOSTS;
use crate::store::tasks::{
    self, ASSIGNED_VIEW, CANCELED, CLOSED, ChannelSel, FAILED, OPEN, TASK_VIEW, TaskSpec,
};
use crate::store::{StoreError, hosts};
use crate::xmlrpc::sig::{opt, req};
use crate::xmlrpc::wire;
use crate::xmlrpc::{Args, Fault, FaultCode, Struct, Value};

/// Longest `host.getTasks(wait=N)` in seconds.
pub const MAX_WAIT: f64 = 30.0;

pub fn methods() -> Vec<Method> {
    vec![
        Method::read("host.getID", params![], "Return the calling host's id.", get_id),
        Method::read(
            "host.getHost",
            params![],
            "Return information about the calling host (as getHost).",
            get_host,
        ),
        Method::write(
            "host.updateHost",
            params![req("task_load"), req("ready"), opt("data", "None")],
            "Report the host's task load and readiness; data (a dict, e.g. maxjobs, methods) is kept for the scheduler.",
            update_host,
        ),
        Method::write(
            "host.getTasks",
            params![opt("wait", "None")],
            "Return the tasks ASSIGNED to this host, by priority then age; runs the scheduler when there are none. Extension: wait=N (seconds, at most 30) waits for an assignment before answering an empty list.",
            get_tasks,
        ),
        Method::read(
            "host.getHostTasks",
            params![],
            "Return this host's OPEN tasks as {id, waiting, weight[, alert]}; alert marks a waiting task with finished awaited subtasks.",
            get_host_tasks,
        ),
        Method::write(
            "host.openTask",
            params![req("task_id")],
            "Open a task assigned to (or free for) this host; returns the task with its raw XML request, or None when it could not be opened.",
            open_task,
        ),
        Method::write(
            "host.setTaskWeight",
            params![req("task_id"), req("weight")],
            "Set the weight of a task this host runs.",
            set_task_weight,
        ),
        Method::write(
            "host.closeTask",
            params![req("task_id"), req("response")],
            "Close a task this host runs; response is the methodResponse document of the result, stored verbatim.",
            close_task,
        ),
        Method::write(
            "host.failTask",
            params![req("task_id"), req("response")],
            "Fail a task this host runs; response is the methodResponse document of the fault, stored verbatim.",
            fail_task,
        ),
        Method::write(
            "host.freeTasks",
            params![req("tasks")],
            "Free tasks this host runs (others are skipped).",
            free_tasks,
        ),
        Method::write(
            "host.refuseTask",
            params![req("task_id"), opt("soft", "True"), opt("msg", "''")],
            "Refuse a task assigned to this host and free it; a hard refusal keeps it away from this host, a soft one for soft_refusal_timeout.",
            refuse_task,
        ),
        Method::write(
            "host.subtask",
            params![req("method"), req("arglist"), req("parent")],
            "Create a subtask of a task this host runs; opts: label (an existing parent/label returns the old id), arch, channel, priority (default parent's - 1), kwargs, assign.",
            subtask,
        )
        .varkw("opts"),
        Method::write(
            "host.subtask2",
            params![req("__parent"), req("__taskopts"), req("__method")],
            "subtask with the task's own arguments passed through: subtask2(parent, taskopts, method, *args, **kwargs).",
            subtask2,
        )
        .varargs("args")
        .varkw("opts"),
        Method::write(
            "host.taskSetWait",
            params![req("parent"), req("tasks")],
            "Mark the parent waiting and the listed subtasks (all for None) awaited.",
            task_set_wait,
        ),
        Method::write(
            "host.taskWait",
            params![req("parent")],
            "Return [finished, unfinished] awaited subtasks; finished ones stop being awaited.",
            task_wait,
        ),
        Method::write(
            "host.taskWaitResults",
            params![req("parent"), req("tasks"), opt("canfail", "None")],
            "End waiting and return [[task_id, result], ...]; a failure is raised unless the task is in canfail.",
            task_wait_results,
        ),
        Method::write(
            "host.taskUnwait",
            params![req("parent")],
            "Clear the wait flags of a task and its subtasks.",
            task_unwait,
        ),
        Method::write(
            "host.setHostData",
            params![req("hostdata")],
            "Store scheduler data for this host (a dict, or a JSON string of one).",
            set_host_data,
        ),
        Method::write(
            "host.getLoadData",
            params![],
            "Compatibility: [[this host with its channels], this host's assigned tasks].",
            get_load_data,
        ),
        Method::write(
            "assignTask",
            params![
                req("task_id"),
                req("host"),
                opt("force", "False"),
                opt("override", "False")
            ],
            "Assign a task to a host (admin); force takes a task that is not free, override keeps the scheduler from reassigning it.",
            assign_task,
        ),
        Method::write(
            "scheduler.doRun",
            params![opt("force", "False")],
            "Run the task scheduler now (admin).",
            do_run,
        ),
        Method::read(
            "scheduler.getTaskRuns",
            params![opt("clauses", "None"), opt("fields", "None"), opt("opts", "None")],
            "Query scheduler task runs: clauses [[field, value] | [field, op, value]], fields, opts {order, limit, offset}.",
            get_task_runs,
        ),
        Method::read(
            "scheduler.getTaskRefusals",
            params![opt("clauses", "None"), opt("fields", "None")],
            "Query task refusals.",
            get_task_refusals,
        ),
        Method::read(
            "scheduler.getHostData",
            params![opt("hostID", "None")],
            "Return [{host_id, data}] of the scheduler data hosts reported.",
            get_host_data,
        ),
        Method::read(
            "scheduler.getLogMessages",
            params![opt("clauses", "None"), opt("fields", "None"), opt("opts", "None")],
            "Query the scheduler log.",
            get_log_messages,
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// Checks

/// Koji's `Host().verify()`: the calling host's id.
pub fn verify_host(auth: &Auth, db: &Connection) -> Result<i64, Fault> {
    let Some(l) = &auth.logged_in else {
        return Err(Fault::auth("Not logged-in"));
    };
    let host = hosts::id_of_user(db, l.user.id)?
        .ok_or_else(|| Fault::auth(format!("User {} is not a host", l.user.id)))?;
    if !l.exclusive {
        return Err(Fault::auth("This method requires an exclusive session"));
    }
    Ok(host)
}

fn host(ctx: &Ctx<'_>) -> Result<i64, Fault> {
    verify_host(ctx.auth, ctx.db)
}

/// Koji's `Task.assertHost`: the task is OPEN on this host.
pub fn assert_host(db: &Connection, task_id: i64, host_id: i64) -> Result<(), Fault> {
    if tasks::verify_host(db, task_id, host_id)? {
        Ok(())
    } else {
        Err(Fault::not_allowed(format!(
            "host {host_id} does not own task {task_id}"
        )))
    }
}

fn float(a: &Args, name: &str) -> Result<f64, Fault> {
    match a.get(name) {
        Some(Value::Double(d)) => Ok(*d),
        Some(Value::Int(i)) => Ok(*i as f64),
        Some(Value::Bool(b)) => Ok(f64::from(u8::from(*b))),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map_err(|_| Fault::parameter(format!("could not convert string to float: '{s}'"))),
        Some(v) => Err(Fault::parameter(format!(
            "float() argument must be a string or a real number, not '{}'",
            v.type_name()
        ))),
        None => Err(Fault::parameter(format!(
            "float() argument must be a string or a real number, not 'NoneType' ({name})"
        ))),
    }
}

fn int_value(v: &Value, what: &str) -> Result<i64, Fault> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| Fault::parameter(format!("Invalid {what}: {s:?}"))),
        other => Err(Fault::parameter(format!(
            "Invalid {what} of type {}",
            other.type_name()
        ))),
    }
}

fn id_list(v: Option<&Value>, what: &str) -> Result<Option<Vec<i64>>, Fault> {
    match v {
        None => Ok(None),
        Some(Value::Array(a)) => Ok(Some(
            a.iter()
                .map(|x| int_value(x, what))
                .collect::<Result<_, _>>()?,
        )),
        Some(other) => Err(Fault::parameter(format!(
            "Invalid type for value '{what}': {}, expected type <class 'list'>",
            other.type_name()
        ))),
    }
}

// ---------------------------------------------------------------------------------------------
// Host methods

fn get_id(ctx: &mut Ctx<'_>, _: &Args) -> Result<Value, Fault> {
    Ok(Value::Int(host(ctx)?))
}

fn host_info(db: &Connection, host_id: i64) -> Result<Value, Fault> {
    let rows = query::rows(db, &HOSTS, &[Cond::Eq("id", Sql::Integer(host_id))])?;
    Ok(rows
        .into_iter()
        .next()
        .map(|r| Value::Struct(convert::record(r)))
        .unwrap_or(Value::Nil))
}

fn get_host(ctx: &mut Ctx<'_>, _: &Args) -> Result<Value, Fault> {
    let id = host(ctx)?;
    host_info(ctx.db, id)
}

/// Validates and stores host data (Koji's `scheduler.set_host_data`).
fn store_host_data(db: &Connection, host_id: i64, data: &Value) -> Result<(), Fault> {
    if !matches!(data, Value::Struct(_)) {
        return Err(Fault::parameter("Host data should be a dictionary"));
    }
    hosts::set_data(db, host_id, &value_to_json(data).to_string())?;
    Ok(())
}

fn update_host(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let id = host(ctx)?;
    let load = float(a, "task_load")?;
    let ready = a.flag("ready", false);
    let was_ready = ctx
        .db
        .query_row("SELECT ready FROM hosts WHERE id = ?1", [id], |r| {
            r.get::<_, i64>(0)
        })
        .map_err(StoreError::from)?
        != 0;
    hosts::check_in(ctx.db, id, load, ready)?;
    if let Some(d) = a.get("data") {
        store_host_data(ctx.db, id, d)?;
    }
    if ready && !was_ready {
        // A host coming back may take what waits for it.
        scheduler::run_in(ctx)?;
    }
    Ok(Value::Nil)
}

fn assigned_tasks(db: &Connection, host_id: i64) -> Result<Vec<Value>, Fault> {
    let rows = query::rows(
        db,
        &ASSIGNED_VIEW,
        &[
            Cond::Eq("host_id", Sql::Integer(host_id)),
            Cond::Eq("state", Sql::Integer(tasks::ASSIGNED)),
        ],
    )?;
    Ok(rows
        .into_iter()
        .map(|r| Value::Struct(convert::record(r)))
        .collect())
}

/// Koji's `get_tasks_for_host(retry=True)`.
fn tasks_for_host(ctx: &mut Ctx<'_>, host_id: i64) -> Result<Vec<Value>, Fault> {
    let mut list = assigned_tasks(ctx.db, host_id)?;
    if list.is_empty() {
        scheduler::run_in(ctx)?;
        list = assigned_tasks(ctx.db, host_id)?;
    }
    Ok(list)
}

fn get_tasks(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let id = host(ctx)?;
    let wait = match a.get("wait") {
        None => 0.0,
        Some(_) => float(a, "wait")?,
    };
    let list = tasks_for_host(ctx, id)?;
    let wait = if wait.is_finite() {
        wait.clamp(0.0, MAX_WAIT)
    } else {
        0.0
    };
    if list.is_empty() && wait > 0.0 {
        // Read inside the transaction: any assignment committed after ours bumps it.
        let seen = ctx.hub.signal.generation();
        let deadline = Instant::now() + Duration::from_secs_f64(wait);
        ctx.after.then = Some(Box::new(move |hub: &Hub| {
            long_poll(hub, id, seen, deadline)
        }));
    }
    Ok(Value::Array(list))
}

/// Waits (no connection, no lock held) until a task is assigned to the host or the deadline.
fn long_poll(hub: &Hub, host_id: i64, mut seen: u64, deadline: Instant) -> Result<Value, Fault> {
    let Some(_slot) = hub.signal.enter(hub.config.max_task_waiters) else {
        return Ok(Value::Array(Vec::new()));
    };
    loop {
        let g = hub.signal.wait_change(seen, deadline);
        if g == seen {
            return Ok(Value::Array(Vec::new()));
        }
        seen = g;
        let list = hub.store.read(|c| assigned_tasks(c, host_id))?;
        if !list.is_empty() || Instant::now() >= deadline {
            return Ok(Value::Array(list));
        }
    }
}

fn get_host_tasks(ctx: &mut Ctx<'_>, _: &Args) -> Result<Value, Fault> {
    let id = host(ctx)?;
    let mut out = Vec::new();
    for (tid, waiting, weight) in tasks::open_on_host(ctx.db, id)? {
        let mut s = Struct::new()
            .with("id", tid)
            .with("waiting", waiting.map(Value::Bool).unwrap_or(Value::Nil))
            .with("weight", weight);
        if waiting == Some(true) && !tasks::wait_check(ctx.db, tid)?.0.is_empty() {
            s.insert("alert", true);
        }
        out.push(Value::Struct(s));
    }
    Ok(Value::Array(out))
}

fn open_task(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let id = host(ctx)?;
    let task_id = a.int("task_id")?;
    if !tasks::lock(ctx.db, task_id, id, OPEN, false)? {
        return Ok(Value::Nil);
    }
    if let Some(t) = tasks::timing(ctx.db, task_id)? {
        metrics::task_opened(ctx.after, &t);
    }
    let rows = query::rows(ctx.db, &TASK_VIEW, &[Cond::Eq("id", Sql::Integer(task_id))])?;
    let Some(rec) = rows.into_iter().next() else {
        return Ok(Value::Nil);
    };
    let mut s = convert::record(rec);
    if let Some((request, _)) = tasks::documents(ctx.db, task_id)? {
        s.insert("request", request);
    }
    Ok(Value::Struct(s))
}

fn set_task_weight(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let id = host(ctx)?;
    let task_id = a.int("task_id")?;
    assert_host(ctx.db, task_id, id)?;
    let weight = float(a, "weight")?;
    tasks::set_weight(ctx.db, task_id, weight)?;
    Ok(Value::Nil)
}

fn end_task(ctx: &mut Ctx<'_>, a: &Args, state: i64) -> Result<Value, Fault> {
    let id = host(ctx)?;
    let task_id = a.int("task_id")?;
    assert_host(ctx.db, task_id, id)?;
    let response = match a.get("response") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => wire::write_response(other),
        None => wire::write_response(&Value::Nil),
    };
    let timing = tasks::timing(ctx.db, task_id)?;
    tasks::finish(ctx.db, task_id, state, &response)?;
    if let Some(t) = timing {
        // Only a closed createContainer's result is read (for `pushed_bytes`).
        let result = (state == CLOSED && t.method == "createContainer")
            .then(|| match a.get("response") {
                Some(Value::String(s)) => wire::parse_response(s.as_bytes()).ok()?.ok(),
                other => other.cloned(),
            })
            .flatten();
        metrics::task_ended(ctx.after, &t, state, result.as_ref());
    }
    // The host has room again.
    scheduler::run_in(ctx)?;
    Ok(Value::Nil)
}

fn close_task(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    end_task(ctx, a, CLOSED)
}

fn fail_task(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    end_task(ctx, a, FAILED)
}

fn free_tasks(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let id = host(ctx)?;
    let list = id_list(a.get("tasks"), "tasks")?.unwrap_or_default();
    let mut freed = Vec::new();
    for task_id in list {
        // Freed or reassigned since the host last looked: not an error.
        if !tasks::verify_host(ctx.db, task_id, id)? {
            continue;
        }
        tasks::free(ctx.db, task_id)?;
        freed.push((task_id, id));
    }
    if !freed.is_empty() {
        // A host freeing its tasks is usually going away: not back to it in this run.
        scheduler::run_in_excluding(ctx, &freed)?;
    }
    Ok(Value::Nil)
}

fn refuse_task(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let soft = a.flag("soft", true);
    let msg = match a.get("msg") {
        None => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.as_int().map(|i| i.to_string()).unwrap_or_default(),
    };
    let id = host(ctx)?;
    let task_id = a.int("task_id")?;
    let Some((_, task_host)) = tasks::state_and_host(ctx.db, task_id)? else {
        return Err(Fault::generic("query returned no rows"));
    };
    if task_host != Some(id) {
        tracing::warn!(host_id = id, task_id, "host refused unrelated task");
        return Ok(Value::Nil);
    }
    scheduler::refuse(ctx.db, id, task_id, soft, true, &msg)?;
    tasks::free(ctx.db, task_id)?;
    scheduler::run_in(ctx)?;
    Ok(Value::Nil)
}

/// `host.subtask` after the host checks: Koji's `make_task` with the parent's defaults.
fn make_subtask(
    ctx: &mut Ctx<'_>,
    host_id: i64,
    method: &str,
    arglist: Vec<Value>,
    parent: i64,
    opts: &Struct,
) -> Result<Value, Fault> {
    assert_host(ctx.db, parent, host_id)?;
    if opts.get("owner").is_some() {
        return Err(Fault::not_allowed("The owner option is not allowed here"));
    }
    let mut args = arglist;
    if let Some(Value::Struct(kw)) = opts.get("kwargs")
        && !kw.is_empty()
    {
        let mut kw = kw.clone();
        kw.insert("__starstar", true);
        args.push(Value::Struct(kw));
    }
    let text = |k: &str| -> Result<Option<String>, Fault> {
        match opts.get(k) {
            None | Some(Value::Nil) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(Fault::parameter(format!(
                "Invalid type for value '{k}': {}, expected type <class 'str'>",
                v.type_name()
            ))),
        }
    };
    let channel = match opts.get("channel") {
        None | Some(Value::Nil) => None,
        Some(Value::Int(i)) => Some(ChannelSel::Id(*i)),
        Some(Value::String(s)) => Some(ChannelSel::Name(s.clone())),
        Some(v) => {
            return Err(Fault::parameter(format!(
                "Invalid channel of type {}",
                v.type_name()
            )));
        }
    };
    let priority = match opts.get("priority") {
        None | Some(Value::Nil) => None,
        Some(v) => Some(int_value(v, "priority")?),
    };
    let assign = match opts.get("assign") {
        None | Some(Value::Nil) => None,
        Some(Value::Int(i)) => Some(*i),
        Some(Value::String(name)) => Some(
            query::rows(ctx.db, &HOSTS, &[Cond::Eq("name", Sql::Text(name.clone()))])?
                .first()
                .and_then(|r| crate::store::records::field_int(r, "id"))
                .ok_or_else(|| Fault::generic(format!("Invalid hostInfo: {name}")))?,
        ),
        Some(v) => {
            return Err(Fault::parameter(format!(
                "Invalid host of type {}",
                v.type_name()
            )));
        }
    };
    let spec = TaskSpec {
        method: method.to_string(),
        request_xml: wire::write_call(method, &args),
        parent: Some(parent),
        label: text("label")?,
        owner: None,
        channel,
        arch: text("arch")?,
        priority,
        assign,
    };
    Ok(Value::Int(scheduler::create_task(ctx, &spec)?))
}

fn subtask(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let id = host(ctx)?;
    let method = a.str("method")?.to_string();
    let arglist = match a.get("arglist") {
        Some(Value::Array(v)) => v.clone(),
        None => Vec::new(),
        Some(v) => {
            return Err(Fault::parameter(format!(
                "arglist must be a list, got {}",
                v.type_name()
            )));
        }
    };
    let parent = a.int("parent")?;
    make_subtask(ctx, id, &method, arglist, parent, &a.kwargs)
}

fn subtask2(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let id = host(ctx)?;
    let parent = a.int("__parent")?;
    let method = a.str("__method")?.to_string();
    let empty = Struct::new();
    let taskopts = a.opt_struct("__taskopts")?.unwrap_or(&empty).clone();
    let mut args = a.varargs.clone();
    if !a.kwargs.is_empty() {
        let mut kw = a.kwargs.clone();
        kw.insert("__starstar", true);
        args.push(Value::Struct(kw));
    }
    make_subtask(ctx, id, &method, args, parent, &taskopts)
}

fn task_set_wait(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    host(ctx)?;
    let parent = a.int("parent")?;
    let list = id_list(a.get("tasks"), "tasks")?;
    tasks::set_wait(ctx.db, parent, list.as_deref())?;
    // A waiting task no longer counts towards its host's load.
    scheduler::run_in(ctx)?;
    Ok(Value::Nil)
}

fn ids(v: Vec<i64>) -> Value {
    Value::Array(v.into_iter().map(Value::Int).collect())
}

fn task_wait(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    host(ctx)?;
    let parent = a.int("parent")?;
    let (finished, unfinished) = tasks::wait_check(ctx.db, parent)?;
    for t in &finished {
        tasks::unawait(ctx.db, *t)?;
    }
    Ok(Value::Array(vec![ids(finished), ids(unfinished)]))
}

/// Koji's `Task.getResult`.
fn task_result(db: &Connection, id: i64, raise_fault: bool) -> Result<Value, Fault> {
    let t = tasks::core(db, id)?.ok_or_else(|| Fault::generic("No such task"))?;
    match t.state {
        CANCELED => return Err(Fault::generic(format!("Task {id} is canceled"))),
        CLOSED | FAILED => {}
        _ => return Err(Fault::generic(format!("Task {id} is not finished"))),
    }
    let Some((_, Some(xml))) = tasks::documents(db, id)? else {
        return Ok(Value::Nil);
    };
    match wire::parse_response(xml.as_bytes())
        .map_err(|e| Fault::internal(format!("stored result unreadable: {e}")))?
    {
        Ok(v) => Ok(v),
        Err(f) if raise_fault => Err(f),
        Err(f) => Ok(Value::Struct(f.to_struct())),
    }
}

fn task_wait_results(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    host(ctx)?;
    let parent = a.int("parent")?;
    let canfail = id_list(a.get("canfail"), "canfail")?.unwrap_or_default();
    tasks::unwait(ctx.db, parent)?;
    let list = match id_list(a.get("tasks"), "tasks")? {
        Some(l) => l,
        None => tasks::finished_children(ctx.db, parent)?,
    };
    let mut out = Vec::with_capacity(list.len());
    for id in list {
        let may_fail = canfail.contains(&id);
        let r = match task_result(ctx.db, id, !may_fail) {
            Ok(v) => v,
            Err(f)
                if may_fail
                    && f.code == FaultCode::Generic as i32
                    && tasks::core(ctx.db, id)?.is_some_and(|t| t.state == CANCELED) =>
            {
                Value::Struct(f.to_struct())
            }
            Err(f) => return Err(f),
        };
        out.push(Value::Array(vec![Value::Int(id), r]));
    }
    Ok(Value::Array(out))
}

fn task_unwait(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    host(ctx)?;
    tasks::unwait(ctx.db, a.int("parent")?)?;
    Ok(Value::Nil)
}

fn set_host_data(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let id = host(ctx)?;
    let data = match a.get("hostdata") {
        Some(Value::String(s)) => {
            let j: serde_json::Value = serde_json::from_str(s)
                .map_err(|e| Fault::parameter(format!("Invalid JSON host data: {e}")))?;
            json_to_value(&j)
        }
        Some(v) => v.clone(),
        None => Value::Nil,
    };
    store_host_data(ctx.db, id, &data)?;
    Ok(Value::Nil)
}

fn get_load_data(ctx: &mut Ctx<'_>, _: &Args) -> Result<Value, Fault> {
    let id = host(ctx)?;
    let mut info = match host_info(ctx.db, id)? {
        Value::Struct(s) => s,
        _ => Struct::new(),
    };
    let channels: Vec<Value> = ctx
        .db
        .prepare_cached(
            "SELECT channel_id FROM host_channels WHERE host_id = ?1 ORDER BY channel_id",
        )
        .and_then(|mut s| {
            s.query_map([id], |r| r.get::<_, i64>(0))?
                .collect::<rusqlite::Result<Vec<i64>>>()
        })
        .map_err(StoreError::from)?
        .into_iter()
        .map(Value::Int)
        .collect();
    info.insert("channels", Value::Array(channels));
    let list = tasks_for_host(ctx, id)?;
    Ok(Value::Array(vec![
        Value::Array(vec![Value::Struct(info)]),
        Value::Array(list),
    ]))
}

// ---------------------------------------------------------------------------------------------
// Scheduler admin and queries

fn assign_task(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let task_id = a.int("task_id")?;
    let info = a.get("host").cloned().unwrap_or(Value::Nil);
    let cond = match &info {
        Value::Int(i) => Cond::Eq("id", Sql::Integer(*i)),
        Value::String(s) => Cond::Eq("name", Sql::Text(s.clone())),
        other => {
            return Err(Fault::parameter(format!(
                "Invalid type for hostInfo: {}",
                other.type_name()
            )));
        }
    };
    let host_id = query::rows(ctx.db, &HOSTS, &[cond])?
        .first()
        .and_then(|r| crate::store::records::field_int(r, "id"))
        .ok_or_else(|| {
            Fault::generic(format!(
                "Invalid hostInfo: {}",
                match &info {
                    Value::Int(i) => i.to_string(),
                    Value::String(s) => s.clone(),
                    _ => String::new(),
                }
            ))
        })?;
    ctx.require_perm("admin")?;
    let ok = scheduler::assign(
        ctx.db,
        task_id,
        host_id,
        a.flag("force", false),
        a.flag("override", false),
    )?;
    if ok {
        ctx.after.assigned = true;
    }
    Ok(Value::Bool(ok))
}

fn do_run(ctx: &mut Ctx<'_>, _: &Args) -> Result<Value, Fault> {
    ctx.require_perm("admin")?;
    scheduler::run_in(ctx)?;
    Ok(Value::Bool(true))
}

/// Fields Koji returns as booleans in the scheduler views.
const SCHED_BOOLS: &[&str] = &["active", "by_host", "soft", "host_ready"];

/// A small `QueryView`: clauses `[field, value]` (`IN` for a list) or `[field, op, value]`,
/// a field list (default `defaults`), opts `order`/`limit`/`offset`.
fn query_view(
    db: &Connection,
    view: &'static View,
    defaults: &[&str],
    a: &Args,
) -> Result<Value, Fault> {
    let alias = |f: &str| -> Result<&'static str, Fault> {
        view.fields
            .iter()
            .find(|(n, _)| *n == f)
            .map(|(n, _)| *n)
            .ok_or_else(|| Fault::parameter(format!("Invalid field for query {f}")))
    };
    let sql = |v: &Value| -> Result<Sql, Fault> {
        Ok(match v {
            Value::Nil => Sql::Null,
            Value::Bool(b) => Sql::Integer(i64::from(*b)),
            Value::Int(i) => Sql::Integer(*i),
            Value::Double(d) => Sql::Real(*d),
            Value::String(s) => Sql::Text(s.clone()),
            other => {
                return Err(Fault::parameter(format!(
                    "Invalid clause value of type {}",
                    other.type_name()
                )));
            }
        })
    };
    let mut conds = Vec::new();
    if let Some(Value::Array(clauses)) = a.get("clauses") {
        for c in clauses {
            let parts = c.as_array().unwrap_or(&[]);
            let (field, op, value) = match parts {
                [f, v] => (
                    f,
                    if matches!(v, Value::Array(_)) {
                        "IN".to_string()
                    } else {
                        "=".to_string()
                    },
                    v,
                ),
                [f, Value::String(op), v] => (f, op.to_uppercase(), v),
                _ => return Err(Fault::parameter(format!("Invalid clause: {}", py_repr(c)))),
            };
            let field = alias(field.as_str().unwrap_or(""))?;
            conds.push(match (op.as_str(), value) {
                ("IN", Value::Array(list)) => {
                    Cond::In(field, list.iter().map(sql).collect::<Result<_, _>>()?)
                }
                ("=" | "IS", Value::Nil) => Cond::IsNull(field),
                ("!=" | "IS NOT", Value::Nil) => Cond::NotNull(field),
                ("=", v) => Cond::Eq(field, sql(v)?),
                ("!=", v) => Cond::Ne(field, sql(v)?),
                (">", v) => Cond::Gt(field, sql(v)?),
                ("<", v) => Cond::Lt(field, sql(v)?),
                (">=", v) => Cond::Ge(field, sql(v)?),
                ("<=", v) => Cond::Le(field, sql(v)?),
                (op, _) => return Err(Fault::parameter(format!("Invalid operator: {op}"))),
            });
        }
    }
    let fields: Vec<String> = match a.get("fields") {
        None => defaults.iter().map(|s| s.to_string()).collect(),
        Some(Value::String(s)) if s == "*" || s == "**" => {
            view.fields.iter().map(|(n, _)| n.to_string()).collect()
        }
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(list)) => {
            let mut out = Vec::new();
            for f in list {
                match f.as_str() {
                    Some("*" | "**") => out.extend(view.fields.iter().map(|(n, _)| n.to_string())),
                    Some(n) => out.push(alias(n)?.to_string()),
                    None => return Err(Fault::parameter("Invalid field for query")),
                }
            }
            out
        }
        Some(v) => {
            return Err(Fault::parameter(format!(
                "Invalid fields of type {}",
                v.type_name()
            )));
        }
    };
    let mut opts = QueryOpts::default();
    if let Some(Value::Struct(o)) = a.get("opts") {
        if let Some(Value::String(order)) = o.get("order") {
            for key in order.split(',') {
                alias(key.trim().trim_start_matches('-'))?;
            }
            opts.set_order(order);
        }
        opts.limit = o.get("limit").and_then(Value::as_int);
        opts.offset = o.get("offset").and_then(Value::as_int);
    }
    let rows = match query::select(db, view, &conds, &opts)? {
        Selected::Rows(r) => r,
        Selected::Count(_) => Vec::new(),
    };
    Ok(Value::Array(
        rows.into_iter()
            .map(|r| {
                let mut s = Struct::new();
                for (name, v) in convert::record(r).into_iter() {
                    if fields.contains(&name) {
                        let v = match v {
                            Value::Int(i) if SCHED_BOOLS.contains(&name.as_str()) => {
                                Value::Bool(i != 0)
                            }
                            other => other,
                        };
                        s.insert(name, v);
                    }
                }
                Value::Struct(s)
            })
            .collect(),
    ))
}

fn py_repr(v: &Value) -> String {
    match v {
        Value::String(s) => format!("'{s}'"),
        Value::Array(a) => format!("[{}]", a.iter().map(py_repr).collect::<Vec<_>>().join(", ")),
        Value::Int(i) => i.to_string(),
        Value::Nil => "None".into(),
        other => other.type_name().to_string(),
    }
}

fn get_task_runs(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    query_view(
        ctx.db,
        &hosts::TASK_RUNS,
        &["id", "task_id", "host_id", "active", "create_ts"],
        a,
    )
}

fn get_task_refusals(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    query_view(
        ctx.db,
        &hosts::TASK_REFUSALS,
        &["id", "task_id", "host_id", "by_host", "soft", "msg", "ts"],
        a,
    )
}

fn get_log_messages(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    query_view(
        ctx.db,
        &hosts::LOG_MESSAGES,
        &["id", "task_id", "host_id", "msg", "msg_ts"],
        a,
    )
}

fn get_host_data(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let host = a.opt_int("hostID")?;
    Ok(Value::Array(
        hosts::data(ctx.db, host)?
            .into_iter()
            .map(|(id, data)| {
                let v = serde_json::from_str::<serde_json::Value>(&data)
                    .map(|j| json_to_value(&j))
                    .unwrap_or(Value::String(data));
                Value::Struct(Struct::new().with("host_id", id).with("data", v))
            })
            .collect(),
    ))
}
