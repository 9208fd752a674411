//! The pages. Each renderer runs on a blocking thread, reads through the hub's API methods
//! ([`super::call`]) and returns the whole document; every datum is escaped with [`esc`].

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::hub::Hub;
use crate::xmlrpc::{Struct, Value};

use super::html::{
    self, esc, float, int, layout, state_span, task_state_final, task_state_name, text, url_enc,
};
use super::tasklog;
use super::{PageError, Params, call, kwargs};

/// Tasks per page of `/koji/tasks`.
pub const PAGE_SIZE: i64 = 50;

/// Sort keys `/koji/tasks?order=` accepts (with an optional `-`), and their `listTasks` field.
const ORDERS: &[(&str, &str)] = &[
    ("id", "id"),
    ("method", "method"),
    ("state", "state"),
    ("owner", "owner_name"),
    ("arch", "arch"),
    ("priority", "priority"),
    ("create_time", "create_time_ts"),
    ("start_time", "start_time_ts"),
    ("completion_time", "completion_time_ts"),
];

fn structs(v: Value) -> Vec<Struct> {
    match v {
        Value::Array(a) => a
            .into_iter()
            .filter_map(|v| match v {
                Value::Struct(s) => Some(s),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Names of hosts, channels and users, looked up once per page.
struct Names<'a> {
    hub: &'a Hub,
    hosts: HashMap<i64, String>,
    channels: HashMap<i64, String>,
    users: HashMap<i64, String>,
}

impl<'a> Names<'a> {
    fn load(hub: &'a Hub) -> Result<Names<'a>, PageError> {
        let pairs = |v: Value| -> HashMap<i64, String> {
            structs(v)
                .iter()
                .filter_map(|s| Some((int(s, "id")?, text(s, "name"))))
                .collect()
        };
        Ok(Names {
            hub,
            hosts: pairs(call(hub, "listHosts", vec![])?),
            channels: pairs(call(hub, "listChannels", vec![])?),
            users: HashMap::new(),
        })
    }

    fn host(&self, id: Option<i64>) -> String {
        match id {
            Some(i) => format!(
                "<a href=\"/koji/tasks?hostID={i}\">{}</a>",
                esc(self.hosts.get(&i).map_or("?", String::as_str))
            ),
            None => String::new(),
        }
    }

    fn channel(&self, id: Option<i64>) -> String {
        match id {
            Some(i) => esc(self.channels.get(&i).map_or("?", String::as_str)),
            None => String::new(),
        }
    }

    fn user(&mut self, id: Option<i64>) -> Result<String, PageError> {
        let Some(id) = id else {
            return Ok(String::new());
        };
        if let Some(n) = self.users.get(&id) {
            return Ok(n.clone());
        }
        let u = call(self.hub, "getUser", vec![Value::Int(id)])?;
        let name = u
            .as_struct()
            .map(|s| text(s, "name"))
            .unwrap_or_else(|| id.to_string());
        self.users.insert(id, name.clone());
        Ok(name)
    }
}

fn task_link(id: i64) -> String {
    format!("<a href=\"/koji/taskinfo?taskID={id}\">{id}</a>")
}

fn build_link(id: i64, label: &str) -> String {
    format!(
        "<a href=\"/koji/buildinfo?buildID={id}\">{}</a>",
        esc(label)
    )
}

fn task_state(t: &Struct) -> String {
    state_span(task_state_name(int(t, "state").unwrap_or(-1)), None)
}

const TASK_HEAD: &str = "<thead><tr><th>ID</th><th>Method</th><th>State</th><th>Owner</th>\
<th>Arch</th><th>Host</th><th>Channel</th><th>Created</th><th>Duration</th></tr></thead>";

fn task_row(
    out: &mut String,
    t: &Struct,
    depth: usize,
    names: &mut Names,
) -> Result<(), PageError> {
    let id = int(t, "id").unwrap_or(0);
    let owner = match t.get("owner_name").and_then(Value::as_str) {
        Some(n) => n.to_owned(),
        None => names.user(int(t, "owner"))?,
    };
    let class = match depth {
        0 => String::new(),
        1 => " class=\"child\"".to_owned(),
        _ => " class=\"child2\"".to_owned(),
    };
    let indent = if depth > 2 {
        format!(" style=\"padding-left:{}em\"", 1.5 * depth as f64)
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "<tr{class} data-task-id=\"{id}\"><td{indent}>{}</td><td>{}</td><td>{}</td><td>{}</td>\
         <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        task_link(id),
        esc(&text(t, "method")),
        task_state(t),
        esc(&owner),
        esc(&text(t, "arch")),
        names.host(int(t, "host_id")),
        names.channel(int(t, "channel_id")),
        esc(&html::time(float(t, "create_ts"))),
        esc(&html::duration(
            float(t, "start_ts"),
            float(t, "completion_ts")
        )),
    );
    Ok(())
}

/// A flat table of tasks.
fn task_table(tasks: &[Struct], names: &mut Names) -> Result<String, PageError> {
    if tasks.is_empty() {
        return Ok("<p>No tasks.</p>\n".to_owned());
    }
    let mut out = format!("<table class=\"tasks\">{TASK_HEAD}<tbody>\n");
    for t in tasks {
        task_row(&mut out, t, 0, names)?;
    }
    out.push_str("</tbody></table>\n");
    Ok(out)
}

fn list_tasks(hub: &Hub, opts: Struct, query: Struct) -> Result<Vec<Struct>, PageError> {
    Ok(structs(call(
        hub,
        "listTasks",
        vec![Value::Struct(opts), Value::Struct(query)],
    )?))
}

fn host_rows(hub: &Hub) -> Result<String, PageError> {
    let hosts = structs(call(
        hub,
        "listHosts",
        vec![kwargs(vec![(
            "queryOpts",
            Value::Struct(Struct::new().with("order", "name")),
        )])],
    )?);
    if hosts.is_empty() {
        return Ok("<p>No hosts.</p>\n".to_owned());
    }
    let mut out = String::from(
        "<table id=\"hosts\"><thead><tr><th>Name</th><th>Ready</th><th>Enabled</th>\
         <th>Load / capacity</th><th>Arches</th><th>Channels</th><th>Last update</th></tr></thead><tbody>\n",
    );
    for h in &hosts {
        let id = int(h, "id").unwrap_or(0);
        let channels = structs(call(
            hub,
            "listChannels",
            vec![kwargs(vec![("hostID", Value::Int(id))])],
        )?);
        let channels: Vec<String> = channels.iter().map(|c| esc(&text(c, "name"))).collect();
        let last = call(
            hub,
            "getLastHostUpdate",
            vec![Value::Int(id), kwargs(vec![("ts", Value::Bool(true))])],
        )?;
        let last = match last {
            Value::Double(d) => Some(d),
            Value::Int(i) => Some(i as f64),
            _ => None,
        };
        let truthy = |k: &str| h.get(k).is_some_and(Value::truthy);
        let _ = writeln!(
            out,
            "<tr data-host-id=\"{id}\"><td><a href=\"/koji/tasks?hostID={id}\">{}</a></td><td>{}</td><td>{}</td>\
             <td>{} / {}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&text(h, "name")),
            html::yes_no(truthy("ready")),
            html::yes_no(truthy("enabled")),
            esc(&text(h, "task_load")),
            esc(&text(h, "capacity")),
            esc(&text(h, "arches")),
            channels.join(", "),
            esc(&html::time(last)),
        );
    }
    out.push_str("</tbody></table>\n");
    Ok(out)
}

/// `/koji/`: running and queued tasks, recent builds, hosts.
pub fn index(hub: &Hub, _p: &Params) -> Result<String, PageError> {
    let mut names = Names::load(hub)?;
    let newest = |limit: i64| Struct::new().with("order", "-id").with("limit", limit);
    let states = |s: &[i64]| {
        Struct::new().with(
            "state",
            Value::Array(s.iter().map(|&i| Value::Int(i)).collect()),
        )
    };
    let running = list_tasks(hub, states(&[1]), newest(50))?;
    let queued = list_tasks(hub, states(&[0, 4]), newest(50))?;
    let builds = structs(call(
        hub,
        "listBuilds",
        vec![kwargs(vec![(
            "queryOpts",
            Value::Struct(Struct::new().with("order", "-build_id").with("limit", 20)),
        )])],
    )?);
    let mut body = String::new();
    let _ = write!(
        body,
        "<h2>Running tasks</h2>\n{}<h2>Queued tasks</h2>\n{}<p><a href=\"/koji/tasks\">All tasks</a></p>\n",
        task_table(&running, &mut names)?,
        task_table(&queued, &mut names)?
    );
    body.push_str("<h2>Recent builds</h2>\n");
    if builds.is_empty() {
        body.push_str("<p>No builds.</p>\n");
    } else {
        body.push_str(
            "<table class=\"builds\"><thead><tr><th>ID</th><th>NVR</th><th>State</th><th>Owner</th>\
             <th>Completed</th></tr></thead><tbody>\n",
        );
        for b in &builds {
            let id = int(b, "build_id").or(int(b, "id")).unwrap_or(0);
            let _ = writeln!(
                body,
                "<tr><td>{id}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                build_link(id, &text(b, "nvr")),
                state_span(html::build_state_name(int(b, "state").unwrap_or(-1)), None),
                esc(&text(b, "owner_name")),
                esc(&html::time(float(b, "completion_ts"))),
            );
        }
        body.push_str("</tbody></table>\n");
    }
    body.push_str("<h2>Hosts</h2>\n");
    body.push_str(&host_rows(hub)?);
    Ok(layout("Overview", &body))
}

/// `/koji/hosts`.
pub fn hosts(hub: &Hub, _p: &Params) -> Result<String, PageError> {
    Ok(layout("Hosts", &host_rows(hub)?))
}

/// `/koji/tasks`: filters, paging, newest first, children nested under their parents.
pub fn tasks(hub: &Hub, p: &Params) -> Result<String, PageError> {
    let mut opts = Struct::new();
    let mut filters: Vec<(&str, String)> = Vec::new();
    let state = p.get("state").unwrap_or("all");
    match state {
        "all" => {}
        "active" => opts.insert(
            "state",
            Value::Array(vec![Value::Int(0), Value::Int(1), Value::Int(4)]),
        ),
        s => {
            let mut list = Vec::new();
            for part in s.split(',') {
                let n = html::task_state_number(part).ok_or_else(|| {
                    PageError::BadRequest(format!(
                        "state must be all, active or a task state (FREE, OPEN, CLOSED, CANCELED, ASSIGNED, FAILED), got {part:?}"
                    ))
                })?;
                list.push(Value::Int(n));
            }
            opts.insert("state", Value::Array(list));
        }
    }
    if state != "all" {
        filters.push(("state", state.to_owned()));
    }
    if let Some(m) = p.get("method") {
        opts.insert("method", m);
        filters.push(("method", m.to_owned()));
    }
    if let Some(o) = p.get("owner") {
        let uid = match o.trim().parse::<i64>() {
            Ok(i) => i,
            Err(_) => {
                let u = call(hub, "getUser", vec![Value::str(o)])?;
                u.as_struct()
                    .and_then(|s| int(s, "id"))
                    .ok_or_else(|| PageError::BadRequest(format!("owner: no such user: {o:?}")))?
            }
        };
        opts.insert("owner", uid);
        filters.push(("owner", o.to_owned()));
    }
    if let Some(c) = p.int("channelID")? {
        opts.insert("channel_id", c);
        filters.push(("channelID", c.to_string()));
    }
    if let Some(h) = p.int("hostID")? {
        opts.insert("host_id", h);
        filters.push(("hostID", h.to_string()));
    }
    let flat = match p.get("view").unwrap_or("tree") {
        "tree" => false,
        "flat" => true,
        v => {
            return Err(PageError::BadRequest(format!(
                "view must be tree or flat, got {v:?}"
            )));
        }
    };
    if flat {
        filters.push(("view", "flat".to_owned()));
    } else {
        opts.insert("parent", Value::Nil);
    }
    let order_param = p.get("order").unwrap_or("-id");
    let (desc, key) = match order_param.strip_prefix('-') {
        Some(k) => (true, k),
        None => (false, order_param),
    };
    let field = ORDERS
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, f)| *f)
        .ok_or_else(|| {
            let keys: Vec<&str> = ORDERS.iter().map(|(k, _)| *k).collect();
            PageError::BadRequest(format!(
                "order must be one of {} (optionally with a leading -), got {order_param:?}",
                keys.join(", ")
            ))
        })?;
    let start = p.int("start")?.unwrap_or(0);
    if start < 0 {
        return Err(PageError::BadRequest(format!(
            "start must not be negative, got {start}"
        )));
    }
    let dash = if desc { "-" } else { "" };
    let order = if field == "id" {
        format!("{dash}id")
    } else {
        format!("{dash}{field},-id")
    };
    let total = call(
        hub,
        "listTasks",
        vec![
            Value::Struct(opts.clone()),
            Value::Struct(Struct::new().with("countOnly", true)),
        ],
    )?
    .as_int()
    .unwrap_or(0);
    let rows = list_tasks(
        hub,
        opts,
        Struct::new()
            .with("order", order)
            .with("offset", start)
            .with("limit", PAGE_SIZE),
    )?;
    let mut names = Names::load(hub)?;

    let mut body = String::new();
    // The filter form (GET, so every view is a link).
    let sel = |name: &str, cur: Option<&str>, options: &[(String, String)]| {
        let mut s = format!("<label>{} <select name=\"{}\">", esc(name), esc(name));
        s.push_str("<option value=\"\">any</option>");
        for (v, label) in options {
            let chosen = if cur == Some(v.as_str()) {
                " selected"
            } else {
                ""
            };
            let _ = write!(
                s,
                "<option value=\"{}\"{chosen}>{}</option>",
                esc(v),
                esc(label)
            );
        }
        s.push_str("</select></label> ");
        s
    };
    let mut state_opts: Vec<(String, String)> = vec![
        ("all".into(), "all".into()),
        ("active".into(), "active".into()),
    ];
    state_opts.extend((0..=5).map(|i| {
        let n = task_state_name(i);
        (n.to_owned(), n.to_owned())
    }));
    let mut host_opts: Vec<(String, String)> = names
        .hosts
        .iter()
        .map(|(i, n)| (i.to_string(), n.clone()))
        .collect();
    host_opts.sort_by(|a, b| a.1.cmp(&b.1));
    let mut chan_opts: Vec<(String, String)> = names
        .channels
        .iter()
        .map(|(i, n)| (i.to_string(), n.clone()))
        .collect();
    chan_opts.sort_by(|a, b| a.1.cmp(&b.1));
    body.push_str("<form method=\"get\" action=\"/koji/tasks\" id=\"task-filters\">");
    body.push_str(&sel("state", Some(state), &state_opts));
    let _ = write!(
        body,
        "<label>method <input name=\"method\" value=\"{}\" size=\"16\"></label> \
         <label>owner <input name=\"owner\" value=\"{}\" size=\"12\"></label> ",
        esc(p.get("method").unwrap_or("")),
        esc(p.get("owner").unwrap_or(""))
    );
    body.push_str(&sel("hostID", p.get("hostID"), &host_opts));
    body.push_str(&sel("channelID", p.get("channelID"), &chan_opts));
    let _ = writeln!(
        body,
        "<label>view <select name=\"view\"><option value=\"tree\">tree</option><option value=\"flat\"{}>flat</option></select></label> \
         <input type=\"hidden\" name=\"order\" value=\"{}\"><button type=\"submit\">Filter</button></form>",
        if flat { " selected" } else { "" },
        esc(order_param)
    );

    // Paging links keep the filters and order.
    let link = |start: i64| {
        let mut q: Vec<String> = filters
            .iter()
            .map(|(k, v)| format!("{}={}", url_enc(k), url_enc(v)))
            .collect();
        q.push(format!("order={}", url_enc(order_param)));
        q.push(format!("start={start}"));
        esc(&format!("/koji/tasks?{}", q.join("&")))
    };
    let shown_to = (start + rows.len() as i64).min(total);
    let mut pager = String::from("<p class=\"pager\">");
    if rows.is_empty() {
        let _ = write!(pager, "No tasks (of {total}). ");
    } else {
        let _ = write!(
            pager,
            "Tasks <span id=\"tasks-range\">{}–{shown_to}</span> of <span id=\"tasks-total\">{total}</span>. ",
            start + 1
        );
    }
    if start > 0 {
        let _ = write!(
            pager,
            "<a rel=\"prev\" href=\"{}\">previous</a>",
            link((start - PAGE_SIZE).max(0))
        );
    }
    if start + PAGE_SIZE < total {
        let _ = write!(
            pager,
            "<a rel=\"next\" href=\"{}\">next</a>",
            link(start + PAGE_SIZE)
        );
    }
    pager.push_str("</p>\n");
    body.push_str(&pager);

    // Sortable headers.
    let sort_link = |key: &str, label: &str| {
        let next = if key == order_param.trim_start_matches('-') && !order_param.starts_with('-') {
            format!("-{key}")
        } else if key == order_param.trim_start_matches('-') {
            key.to_owned()
        } else {
            format!("-{key}")
        };
        let mut q: Vec<String> = filters
            .iter()
            .map(|(k, v)| format!("{}={}", url_enc(k), url_enc(v)))
            .collect();
        q.push(format!("order={}", url_enc(&next)));
        format!(
            "<a href=\"{}\">{}</a>",
            esc(&format!("/koji/tasks?{}", q.join("&"))),
            esc(label)
        )
    };
    let _ = writeln!(
        body,
        "<table id=\"tasks\"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th>\
         <th>Host</th><th>Channel</th><th>{}</th><th>Duration</th></tr></thead><tbody>",
        sort_link("id", "ID"),
        sort_link("method", "Method"),
        sort_link("state", "State"),
        sort_link("owner", "Owner"),
        sort_link("arch", "Arch"),
        sort_link("create_time", "Created"),
    );
    for t in &rows {
        task_row(&mut body, t, 0, &mut names)?;
        if !flat && let Some(id) = int(t, "id") {
            let desc = call(hub, "getTaskDescendents", vec![Value::Int(id)])?;
            if let Value::Struct(map) = desc {
                nested(&mut body, &map, id, 1, &mut names)?;
            }
        }
    }
    body.push_str("</tbody></table>\n");
    body.push_str(&pager);
    Ok(layout("Tasks", &body))
}

/// The descendants of `id` from a `getTaskDescendents` map, depth first.
fn nested(
    out: &mut String,
    map: &Struct,
    id: i64,
    depth: usize,
    names: &mut Names,
) -> Result<(), PageError> {
    if depth > 16 {
        return Ok(());
    }
    let Some(Value::Array(kids)) = map.get(&id.to_string()) else {
        return Ok(());
    };
    for k in kids {
        if let Value::Struct(k) = k {
            task_row(out, k, depth, names)?;
            if let Some(kid) = int(k, "id") {
                nested(out, map, kid, depth + 1, names)?;
            }
        }
    }
    Ok(())
}

/// Parameter labels of the request of known methods.
fn request_labels(method: &str) -> &'static [&'static str] {
    match method {
        "buildContainer" => &["Source", "Target", "Options"],
        "createContainer" => &["Source", "Target", "Arch", "Build"],
        "sleep" => &["Seconds"],
        _ => &[],
    }
}

fn request_html(method: &str, req: &Value) -> String {
    let Some(params) = req.as_array() else {
        return html::value(req);
    };
    if params.is_empty() {
        return "<p>No parameters.</p>".to_owned();
    }
    let labels = request_labels(method);
    let mut out = String::from("<table class=\"kv\" id=\"task-request\">");
    for (i, v) in params.iter().enumerate() {
        let label = labels
            .get(i)
            .map_or_else(|| format!("Parameter {}", i + 1), |l| (*l).to_owned());
        let v = match v {
            Value::Struct(s) if s.get("__starstar").is_some() => {
                let mut s = s.clone();
                s.remove("__starstar");
                Value::Struct(s)
            }
            v => v.clone(),
        };
        let _ = write!(
            out,
            "<tr><th>{}</th><td>{}</td></tr>",
            esc(&label),
            html::value(&v)
        );
    }
    out.push_str("</table>");
    out
}

fn result_html(result: &Value) -> String {
    let Value::Struct(s) = result else {
        return html::value(result);
    };
    let mut out = String::new();
    if let Some(Value::Array(w)) = s.get("user_warnings")
        && !w.is_empty()
    {
        out.push_str("<div class=\"warnings\" id=\"user-warnings\"><b>Warnings</b><ul>");
        for line in w {
            let _ = write!(out, "<li>{}</li>", esc(&html::scalar(line)));
        }
        out.push_str("</ul></div>\n");
    }
    if let Some(Value::Array(repos)) = s.get("repositories") {
        out.push_str("<h3>Repositories</h3><ul class=\"pullspecs\">");
        for r in repos {
            let r = esc(&html::scalar(r));
            let _ = write!(
                out,
                "<li><input class=\"pullspec\" readonly value=\"{r}\" onfocus=\"this.select()\"></li>"
            );
        }
        out.push_str("</ul>\n");
    }
    if let Some(Value::Array(builds)) = s.get("koji_builds") {
        out.push_str("<h3>Koji builds</h3><ul class=\"koji-builds\">");
        for b in builds {
            let id = match b {
                Value::Int(i) => Some(*i),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            };
            match id {
                Some(i) => {
                    let _ = write!(out, "<li>{}</li>", build_link(i, &i.to_string()));
                }
                None => {
                    let _ = write!(out, "<li>{}</li>", html::value(b));
                }
            }
        }
        out.push_str("</ul>\n");
    }
    let mut rest = s.clone();
    for k in ["user_warnings", "repositories", "koji_builds"] {
        rest.remove(k);
    }
    if !rest.is_empty() {
        out.push_str(&html::value(&Value::Struct(rest)));
    }
    out
}

/// `/koji/taskinfo?taskID=N[&log=NAME]`.
pub fn taskinfo(hub: &Hub, p: &Params) -> Result<String, PageError> {
    let id = p.req_int("taskID")?;
    let info = call(
        hub,
        "getTaskInfo",
        vec![Value::Int(id), kwargs(vec![("request", Value::Bool(true))])],
    )?;
    let Value::Struct(t) = info else {
        return Err(PageError::NotFound(format!("No such task: {id}")));
    };
    let mut names = Names::load(hub)?;
    let method = text(&t, "method");
    let state = int(&t, "state").unwrap_or(-1);
    let state_name = task_state_name(state);
    let owner = names.user(int(&t, "owner"))?;
    let mut body = String::new();
    body.push_str("<table class=\"kv\" id=\"task-fields\">");
    let mut row = |k: &str, v: String| {
        let _ = write!(body, "<tr><th>{}</th><td>{v}</td></tr>", esc(k));
    };
    row("ID", id.to_string());
    row("Method", esc(&method));
    row("State", state_span(state_name, Some("task-state")));
    row("Owner", esc(&owner));
    row("Host", names.host(int(&t, "host_id")));
    row("Channel", names.channel(int(&t, "channel_id")));
    row("Arch", esc(&text(&t, "arch")));
    row("Priority", esc(&text(&t, "priority")));
    row("Weight", esc(&text(&t, "weight")));
    if let Some(l) = t.get("label").filter(|v| !v.is_nil()) {
        row("Label", esc(&html::scalar(l)));
    }
    row("Created", esc(&html::time(float(&t, "create_ts"))));
    row("Started", esc(&html::time(float(&t, "start_ts"))));
    row("Completed", esc(&html::time(float(&t, "completion_ts"))));
    row(
        "Duration",
        esc(&html::duration(
            float(&t, "start_ts"),
            float(&t, "completion_ts"),
        )),
    );
    if let Some(parent) = int(&t, "parent") {
        row("Parent", task_link(parent));
    }
    body.push_str("</table>\n");

    let children = structs(call(hub, "getTaskChildren", vec![Value::Int(id)])?);
    if !children.is_empty() {
        body.push_str("<h2>Children</h2>\n");
        body.push_str(&task_table(&children, &mut names)?);
    }

    body.push_str("<h2>Request</h2>\n");
    match t.get("request") {
        Some(r) => body.push_str(&request_html(&method, r)),
        None => body.push_str("<p>No request.</p>"),
    }
    body.push('\n');

    match state {
        2 => {
            let r = call(hub, "getTaskResult", vec![Value::Int(id)])?;
            body.push_str("<h2>Result</h2>\n<div id=\"task-result\">");
            body.push_str(&result_html(&r));
            body.push_str("</div>\n");
        }
        5 => {
            let r = call(
                hub,
                "getTaskResult",
                vec![
                    Value::Int(id),
                    kwargs(vec![("raise_fault", Value::Bool(false))]),
                ],
            )?;
            let text_of = |s: &Struct| {
                format!(
                    "{}: {}",
                    html::text(s, "faultCode"),
                    html::text(s, "faultString")
                )
            };
            let msg = match &r {
                Value::Struct(s) if s.get("faultString").is_some() => text_of(s),
                other => html::scalar(other),
            };
            let _ = write!(
                body,
                "<h2>Result</h2>\n<pre class=\"fault\" id=\"task-fault\">{}</pre>\n",
                esc(&msg)
            );
        }
        _ => {}
    }

    // Output files.
    let outputs = call(
        hub,
        "listTaskOutput",
        vec![Value::Int(id), kwargs(vec![("stat", Value::Bool(true))])],
    )?;
    let mut files: Vec<(String, u64)> = match &outputs {
        Value::Struct(s) => s
            .iter()
            .map(|(n, st)| {
                let size = st
                    .as_struct()
                    .and_then(|m| m.get("st_size"))
                    .and_then(|v| match v {
                        Value::String(s) => s.parse().ok(),
                        Value::Int(i) => u64::try_from(*i).ok(),
                        _ => None,
                    })
                    .unwrap_or(0);
                (n.to_owned(), size)
            })
            .collect(),
        _ => Vec::new(),
    };
    files.sort();
    body.push_str("<h2>Output</h2>\n");
    if files.is_empty() {
        body.push_str("<p>No output files.</p>\n");
    } else {
        let dir = crate::hub::task_relpath(id);
        body.push_str(
            "<table id=\"task-output\"><thead><tr><th>File</th><th>Size</th></tr></thead><tbody>\n",
        );
        for (n, size) in &files {
            let _ = writeln!(
                body,
                "<tr><td><a href=\"{}\">{}</a></td><td>{}</td></tr>",
                esc(&format!("/kojifiles/{dir}/{}", html::url_path(n))),
                esc(n),
                html::size(*size)
            );
        }
        body.push_str("</tbody></table>\n");
    }

    // The live log.
    let logs: Vec<&(String, u64)> = files.iter().filter(|(n, _)| n.ends_with(".log")).collect();
    let chosen = match p.get("log") {
        Some(l) => {
            if !logs.iter().any(|(n, _)| n == l) && !tasklog::valid_name(l) {
                return Err(PageError::BadRequest(format!("invalid log name {l:?}")));
            }
            Some(l.to_owned())
        }
        None => default_log(&method, &text(&t, "arch"), &logs),
    };
    body.push_str("<h2>Log</h2>\n");
    if logs.len() > 1 {
        let _ = write!(
            body,
            "<form method=\"get\" action=\"/koji/taskinfo\" id=\"log-select\"><input type=\"hidden\" name=\"taskID\" value=\"{id}\">\
             <select name=\"log\" onchange=\"this.form.submit()\">"
        );
        for (n, _) in &logs {
            let chosen_attr = if chosen.as_deref() == Some(n.as_str()) {
                " selected"
            } else {
                ""
            };
            let _ = write!(
                body,
                "<option value=\"{}\"{chosen_attr}>{}</option>",
                esc(n),
                esc(n)
            );
        }
        body.push_str(
            "</select> <noscript><button type=\"submit\">Show</button></noscript></form>\n",
        );
    }
    let (tail, next_offset) = match &chosen {
        Some(name) => {
            let size = files.iter().find(|(n, _)| n == name).map_or(0, |(_, s)| *s);
            tasklog::tail(hub, id, name, size)?
        }
        None => (String::new(), 0),
    };
    let _ = write!(
        body,
        "<p>{} <button type=\"button\" id=\"log-follow\" aria-pressed=\"true\">Pause</button></p>\n\
         <pre id=\"log\">{}</pre>\n",
        chosen
            .as_deref()
            .map(|n| format!("<code>{}</code>", esc(n)))
            .unwrap_or_else(|| "No log yet.".to_owned()),
        esc(&tail)
    );
    let cfg = serde_json::json!({
        "taskID": id,
        "name": chosen.unwrap_or_default(),
        "offset": next_offset,
        "state": state_name,
        "final": task_state_final(state),
    });
    let _ = write!(
        body,
        "<script type=\"application/json\" id=\"log-config\">{}</script>\n<script>{}</script>\n",
        html::script_json(&cfg),
        tasklog::SCRIPT
    );
    Ok(layout(&format!("Task {id}: {method}"), &body))
}

/// The log shown by default: the first `<arch>.log`, else `osbs-build.log`, else the first log,
/// else (no output yet) the log the task will write.
fn default_log(method: &str, arch: &str, logs: &[&(String, u64)]) -> Option<String> {
    let service = ["osbs-build.log", "checkout-for-labels.log"];
    if let Some((n, _)) = logs
        .iter()
        .find(|(n, _)| !n.contains('/') && !service.contains(&n.as_str()))
    {
        return Some(n.clone());
    }
    if let Some((n, _)) = logs.iter().find(|(n, _)| n == "osbs-build.log") {
        return Some(n.clone());
    }
    if let Some((n, _)) = logs.first() {
        return Some(n.clone());
    }
    match method {
        "createContainer" => Some(format!("{arch}.log")),
        "buildContainer" => Some("osbs-build.log".to_owned()),
        _ => None,
    }
}

/// `/koji/buildinfo?buildID=N`.
pub fn buildinfo(hub: &Hub, p: &Params) -> Result<String, PageError> {
    let id = p.req_int("buildID")?;
    let b = call(hub, "getBuild", vec![Value::Int(id)])?;
    let Value::Struct(b) = b else {
        return Err(PageError::NotFound(format!("No such build: {id}")));
    };
    let nvr = text(&b, "nvr");
    let state = html::build_state_name(int(&b, "state").unwrap_or(-1));
    let task_id = int(&b, "task_id");
    let mut body = String::from("<table class=\"kv\" id=\"build-fields\">");
    let mut row = |k: &str, v: String| {
        let _ = write!(body, "<tr><th>{}</th><td>{v}</td></tr>", esc(k));
    };
    row("ID", id.to_string());
    row(
        "NVR",
        format!("<span id=\"build-nvr\">{}</span>", esc(&nvr)),
    );
    row("State", state_span(state, Some("build-state")));
    row(
        "Source",
        format!("<code>{}</code>", esc(&text(&b, "source"))),
    );
    row("Owner", esc(&text(&b, "owner_name")));
    if let Some(cg) = b.get("cg_name").filter(|v| !v.is_nil()) {
        row("Content generator", esc(&html::scalar(cg)));
    }
    row("Started", esc(&html::time(float(&b, "start_ts"))));
    row("Completed", esc(&html::time(float(&b, "completion_ts"))));
    if let Some(t) = task_id {
        row("Task", task_link(t));
    }
    body.push_str("</table>\n");

    let extra = b.get("extra").and_then(Value::as_struct);
    let index = extra
        .and_then(|e| e.get("image"))
        .and_then(Value::as_struct)
        .and_then(|i| i.get("index"))
        .and_then(Value::as_struct);
    if let Some(index) = index
        && let Some(Value::Array(pull)) = index.get("pull")
        && !pull.is_empty()
    {
        body.push_str("<h2>Pull specs</h2><ul class=\"pullspecs\" id=\"build-pullspecs\">");
        for r in pull {
            let _ = write!(
                body,
                "<li><input class=\"pullspec\" readonly value=\"{}\" onfocus=\"this.select()\"></li>",
                esc(&html::scalar(r))
            );
        }
        body.push_str("</ul>\n");
    }

    let archives = structs(call(
        hub,
        "listArchives",
        vec![kwargs(vec![("buildID", Value::Int(id))])],
    )?);
    let children = match task_id {
        Some(t) => structs(call(hub, "getTaskChildren", vec![Value::Int(t)])?),
        None => Vec::new(),
    };
    body.push_str("<h2>Archives</h2>\n");
    if archives.is_empty() {
        body.push_str("<p>No archives.</p>\n");
    }
    let mut rpm_rows = String::new();
    let mut layer_html = String::new();
    for a in &archives {
        let aid = int(a, "id").unwrap_or(0);
        let a_extra = a.get("extra").and_then(Value::as_struct);
        let arch = a_extra
            .and_then(|e| e.get("image"))
            .and_then(Value::as_struct)
            .map(|i| text(i, "arch"))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| text(a, "arch"));
        let docker = a_extra
            .and_then(|e| e.get("docker"))
            .and_then(Value::as_struct);
        let _ = write!(
            body,
            "<h3>{} <small>({})</small></h3>\n<table class=\"kv archive\" data-archive-id=\"{aid}\">\
             <tr><th>Size</th><td>{}</td></tr><tr><th>Checksum</th><td><code>{}</code></td></tr>",
            esc(&text(a, "filename")),
            esc(&arch),
            html::size(
                int(a, "size")
                    .and_then(|s| u64::try_from(s).ok())
                    .unwrap_or(0)
            ),
            esc(&text(a, "checksum")),
        );
        if let Some(d) = docker {
            if let Some(idv) = d.get("id") {
                let _ = write!(
                    body,
                    "<tr><th>Image ID</th><td><code>{}</code></td></tr>",
                    esc(&html::scalar(idv))
                );
            }
            if let Some(Value::Struct(dg)) = d.get("digests") {
                for (mt, dig) in dg.iter() {
                    let _ = write!(
                        body,
                        "<tr><th>Digest</th><td><code>{}</code> <small>{}</small></td></tr>",
                        esc(&html::scalar(dig)),
                        esc(mt)
                    );
                }
            }
            if let Some(Value::Array(repos)) = d.get("repositories") {
                body.push_str("<tr><th>Pull specs</th><td><ul class=\"pullspecs\">");
                for r in repos {
                    let _ = write!(
                        body,
                        "<li><input class=\"pullspec\" readonly value=\"{}\" onfocus=\"this.select()\"></li>",
                        esc(&html::scalar(r))
                    );
                }
                body.push_str("</ul></td></tr>");
            }
        }
        body.push_str("</table>\n");

        let rpms = structs(call(
            hub,
            "listRPMs",
            vec![kwargs(vec![("imageID", Value::Int(aid))])],
        )?);
        for r in &rpms {
            let r_extra = r.get("extra").and_then(Value::as_struct);
            let _ = writeln!(
                rpm_rows,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td></tr>",
                esc(&arch),
                esc(&text(r, "name")),
                esc(&text(r, "epoch")),
                esc(&text(r, "version")),
                esc(&text(r, "release")),
                esc(&text(r, "arch")),
                esc(&text(r, "payloadhash")),
                esc(&r_extra.map(|e| text(e, "signature")).unwrap_or_default()),
            );
        }

        let report_name = a_extra
            .and_then(|e| e.get("containerbuild"))
            .and_then(Value::as_struct)
            .map(|c| text(c, "rpm_report"))
            .filter(|s| !s.is_empty());
        if let Some(name) = report_name {
            layer_html.push_str(&layers_for(hub, task_id, &children, &arch, &name)?);
        }
    }

    body.push_str("<h2>RPMs</h2>\n");
    if rpm_rows.is_empty() {
        body.push_str("<p>No RPM components.</p>\n");
    } else {
        let _ = write!(
            body,
            "<p><label>Filter <input type=\"search\" id=\"rpm-filter\" placeholder=\"name, version, arch…\"></label></p>\n\
             <table id=\"rpms\"><thead><tr><th>Image</th><th>Name</th><th>Epoch</th><th>Version</th><th>Release</th>\
             <th>Arch</th><th>sigmd5</th><th>Signature</th></tr></thead><tbody>\n{rpm_rows}</tbody></table>\n\
             <script>{RPM_FILTER}</script>\n"
        );
    }
    body.push_str("<h2>Layers</h2>\n<div id=\"layers\">\n");
    if layer_html.is_empty() {
        body.push_str("<p>No per-layer RPM report.</p>\n");
    } else {
        body.push_str(&layer_html);
    }
    body.push_str("</div>\n");
    Ok(layout(&format!("Build {nvr}"), &body))
}

const RPM_FILTER: &str = "(function(){var f=document.getElementById('rpm-filter');\
var rows=document.querySelectorAll('#rpms tbody tr');\
f.addEventListener('input',function(){var q=f.value.toLowerCase();\
for(var i=0;i<rows.length;i++){var r=rows[i];\
r.style.display=(q===''||r.textContent.toLowerCase().indexOf(q)>=0)?'':'none';}});})();";

/// Largest `<arch>-rpm-manifest.json` the page reads.
const REPORT_MAX: i64 = 16 * 1024 * 1024;

/// The per-layer report of one arch: read from the `createContainer` child of that arch (else
/// the build's task itself), rendered with drift warnings first.
fn layers_for(
    hub: &Hub,
    task_id: Option<i64>,
    children: &[Struct],
    arch: &str,
    name: &str,
) -> Result<String, PageError> {
    let mut candidates: Vec<i64> = children
        .iter()
        .filter(|c| text(c, "arch") == arch || text(c, "label") == arch)
        .filter_map(|c| int(c, "id"))
        .collect();
    candidates.extend(task_id);
    let mut data = None;
    let mut from = None;
    for t in candidates {
        if let Some(bytes) = tasklog::read(hub, t, name, 0, REPORT_MAX)? {
            data = Some(bytes);
            from = Some(t);
            break;
        }
    }
    let head = format!("<h3>{}</h3>\n", esc(arch));
    let (Some(data), Some(from)) = (data, from) else {
        return Ok(format!(
            "{head}<p>The report <code>{}</code> is not available.</p>\n",
            esc(name)
        ));
    };
    let report: serde_json::Value = match serde_json::from_slice(&data) {
        Ok(v) => v,
        Err(e) => {
            return Ok(format!(
                "{head}<p class=\"fault\">The report <code>{}</code> of task {} is not valid JSON: {}</p>\n",
                esc(name),
                task_link(from),
                esc(&e.to_string())
            ));
        }
    };
    let mut out = head;
    let _ = writeln!(
        out,
        "<p>From <a href=\"{}\">{}</a> of task {}.</p>",
        esc(&format!(
            "/kojifiles/{}/{}",
            crate::hub::task_relpath(from),
            html::url_path(name)
        )),
        esc(name),
        task_link(from)
    );
    let empty = Vec::new();
    let layers = report
        .get("layers")
        .and_then(serde_json::Value::as_array)
        .unwrap_or(&empty);
    let s = |v: &serde_json::Value, k: &str| -> String {
        match v.get(k) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        }
    };
    // Warnings first: drift and the layers' own warnings.
    let mut warn = String::new();
    for l in layers {
        let idx = s(l, "index");
        for d in l
            .get("drift")
            .and_then(serde_json::Value::as_array)
            .unwrap_or(&empty)
        {
            let _ = write!(
                warn,
                "<li>layer {}: {} <code>{}</code> owned by <code>{}</code>{}{}</li>",
                esc(&idx),
                esc(&s(d, "change")),
                esc(&s(d, "path")),
                esc(&s(d, "package")),
                if d.get("digest_mismatch") == Some(&serde_json::Value::Bool(true)) {
                    " (digest mismatch)"
                } else {
                    ""
                },
                if d.get("config") == Some(&serde_json::Value::Bool(true)) {
                    " (config file)"
                } else {
                    ""
                },
            );
        }
        for w in l
            .get("warnings")
            .and_then(serde_json::Value::as_array)
            .unwrap_or(&empty)
        {
            let w = w.as_str().map_or_else(|| w.to_string(), str::to_owned);
            let _ = write!(warn, "<li>layer {}: {}</li>", esc(&idx), esc(&w));
        }
    }
    if !warn.is_empty() {
        let _ = writeln!(
            out,
            "<div class=\"warnings drift\"><b>Drift and warnings</b><ul>{warn}</ul></div>"
        );
    }
    if layers.is_empty() {
        out.push_str("<p>The report has no per-layer data.</p>\n");
        return Ok(out);
    }
    let _ = writeln!(
        out,
        "<table class=\"layers\" data-arch=\"{}\"><thead><tr><th>Layer</th><th>Created by</th><th>Packages</th>\
         <th>Changes</th></tr></thead><tbody>",
        esc(arch)
    );
    let nevra = |p: &serde_json::Value| s(p, "nevra");
    for l in layers {
        let pk = l.get("packages");
        let list = |k: &str| -> Vec<serde_json::Value> {
            pk.and_then(|p| p.get(k))
                .and_then(serde_json::Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        let mut changes = String::new();
        for (k, label) in [("added", "added"), ("removed", "removed")] {
            let items = list(k);
            if !items.is_empty() {
                let names: Vec<String> = items.iter().map(|p| esc(&nevra(p))).collect();
                let _ = write!(
                    changes,
                    "<div class=\"{k}\"><b>{label}</b> ({}): {}</div>",
                    items.len(),
                    names.join(", ")
                );
            }
        }
        for k in ["upgraded", "downgraded", "reinstalled"] {
            let items = list(k);
            if !items.is_empty() {
                let names: Vec<String> = items
                    .iter()
                    .map(|c| {
                        let from = c.get("from").map(|p| s(p, "evr")).unwrap_or_default();
                        let to = c.get("to").map(|p| s(p, "evr")).unwrap_or_default();
                        format!("{} {} → {}", esc(&s(c, "name")), esc(&from), esc(&to))
                    })
                    .collect();
                let _ = write!(
                    changes,
                    "<div class=\"{k}\"><b>{k}</b> ({}): {}</div>",
                    items.len(),
                    names.join(", ")
                );
            }
        }
        if changes.is_empty() {
            changes.push_str(
                if l.get("rpmdb_changed") == Some(&serde_json::Value::Bool(true)) {
                    "rpmdb changed, no package changes"
                } else {
                    "no package changes"
                },
            );
        }
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{changes}</td></tr>",
            esc(&s(l, "index")),
            esc(&s(l, "created_by")),
            esc(&s(l, "package_count")),
        );
    }
    out.push_str("</tbody></table>\n");
    Ok(out)
}
