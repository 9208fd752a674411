//! The container-build hub plugin's methods (koji-containerbuild's `hub_containerbuild.py`):
//! the hub only creates the task; the builder validates `opts` against plugin-spec's schema.

use crate::hub::scheduler;
use crate::hub::{Ctx, Method};
use crate::params;
use crate::store::tasks::{ChannelSel, TaskSpec};
use crate::xmlrpc::sig::{opt, req};
use crate::xmlrpc::{Args, Fault, Struct, Value, wire};

/// Koji's `PRIO_DEFAULT`; a caller's priority is added to it.
const PRIO_DEFAULT: i64 = 20;

pub fn methods() -> Vec<Method> {
    vec![Method::write(
        "buildContainer",
        params![
            req("src"),
            req("target"),
            opt("opts", "None"),
            opt("priority", "None"),
            opt("channel", "'container'")
        ],
        "Build a layered container image from a dist-git SCM URL for a build target; returns the task id. opts are checked by the builder (plugin-spec/buildcontainer-opts.schema.json).",
        build_container,
    )]
}

fn build_container(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let src = a.get("src").cloned().unwrap_or(Value::Nil);
    let target = a.get("target").cloned().unwrap_or(Value::Nil);
    let opts = match a.get("opts") {
        None => Value::Struct(Struct::new()),
        Some(v) => v.clone(),
    };
    let mut priority = None;
    // `if priority:` in the plugin: 0 and None mean "default".
    if let Some(p) = a.opt_int("priority")?.filter(|p| *p != 0) {
        if p < 0 && !ctx.has_perm("admin")? {
            return Err(Fault::not_allowed(
                "only admins may create high-priority tasks",
            ));
        }
        priority = Some(PRIO_DEFAULT + p);
    }
    // make_task needs an owner: anonymous callers get Koji's text, after the plugin's priority
    // check (so an anonymous high-priority request is refused for the priority, as in Koji).
    if ctx.auth.user_id().is_none() {
        return Err(Fault::generic("task must have an owner"));
    }
    let channel = match a.get("channel") {
        None if a.given("channel") => None,
        None => Some(ChannelSel::Name("container".into())),
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(ChannelSel::Name(s.clone())),
        Some(Value::Int(i)) => Some(ChannelSel::Id(*i)),
        Some(v) => {
            return Err(Fault::parameter(format!(
                "Invalid channel of type {}",
                v.type_name()
            )));
        }
    };
    let spec = TaskSpec {
        method: "buildContainer".into(),
        request_xml: wire::write_call("buildContainer", &[src, target, opts]),
        channel,
        priority,
        arch: Some("noarch".into()),
        ..TaskSpec::default()
    };
    let id = scheduler::create_task(ctx, &spec)?;
    tracing::info!(task_id = id, "buildContainer task created");
    Ok(Value::Int(id))
}
