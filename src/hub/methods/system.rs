//! Introspection and protocol basics: `echo`, versions, `system.*`, `_listapi`, events.

use crate::hub::dispatch::api_entry;
use crate::hub::server::KOJI_VERSION;
use crate::hub::{Ctx, Method};
use crate::params;
use crate::store;
use crate::xmlrpc::sig::opt;
use crate::xmlrpc::sig::req;
use crate::xmlrpc::{Args, Fault, Struct, Value};

pub fn methods() -> Vec<Method> {
    vec![
        Method::read(
            "echo",
            &[],
            "Return the arguments unchanged (kojid checks echo('OK') == ['OK']).",
            echo,
        )
        .varargs("args"),
        Method::read("hello", &[], "Return a greeting.", hello).varargs("args"),
        Method::read(
            "getAPIVersion",
            &[],
            "Return the API version (always 1).",
            |_, _| Ok(Value::Int(1)),
        ),
        Method::read(
            "getKojiVersion",
            &[],
            "Return the Koji version this hub is compatible with.",
            |_, _| Ok(Value::str(KOJI_VERSION)),
        ),
        Method::read(
            "system.listMethods",
            &[],
            "List the names of all callable methods.",
            list_methods,
        ),
        Method::read(
            "system.methodSignature",
            params![req("method")],
            "Signatures are not supported.",
            |_, _| Ok(Value::str("signatures not supported")),
        ),
        Method::read(
            "system.methodHelp",
            params![req("method")],
            "Return a method's signature and description.",
            method_help,
        ),
        Method::read(
            "_listapi",
            &[],
            "List every method with its arguments and description.",
            list_api,
        ),
        Method::read(
            "getLastEvent",
            params![opt("before", "None")],
            "Return the newest event as {id, ts}.",
            last_event,
        ),
    ]
}

fn echo(_: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    Ok(Value::Array(a.varargs.clone()))
}

fn hello(_: &mut Ctx<'_>, _: &Args) -> Result<Value, Fault> {
    Ok(Value::str("Hello World"))
}

fn list_methods(ctx: &mut Ctx<'_>, _: &Args) -> Result<Value, Fault> {
    let mut names: Vec<Value> = ctx
        .hub
        .registry
        .iter()
        .map(|m| Value::str(m.sig.name))
        .collect();
    names.push(Value::str("multiCall"));
    names.push(Value::str("system.multicall"));
    Ok(Value::Array(names))
}

fn method_help(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let name = a.str("method")?;
    Ok(Value::String(match ctx.hub.registry.get(name) {
        None => String::new(),
        Some(m) => format!("{name}{}\ndescription: {}", m.sig.argdesc(), m.doc),
    }))
}

fn list_api(ctx: &mut Ctx<'_>, _: &Args) -> Result<Value, Fault> {
    Ok(Value::Array(
        ctx.hub
            .registry
            .iter()
            .map(|m| Value::Struct(api_entry(m)))
            .collect(),
    ))
}

fn last_event(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let before = match a.get("before") {
        None => None,
        Some(Value::Int(i)) => Some(*i as f64),
        Some(Value::Double(d)) => Some(*d),
        Some(v) => {
            return Err(Fault::parameter(format!(
                "Invalid value for before: {}",
                v.type_name()
            )));
        }
    };
    match store::last_event(ctx.db, before)? {
        Some((id, ts)) => Ok(Value::Struct(Struct::new().with("id", id).with("ts", ts))),
        None => Ok(Value::Nil),
    }
}
