//! From a request body to a response body: parse, validate the session, bind arguments, run the
//! method in the right kind of transaction, and serialise the answer or the fault.
//!
//! Runs on a blocking thread (it touches SQLite). Read methods use a pooled read connection;
//! write methods run in one write transaction that also records the session's callnum, so a
//! retried write whose first attempt committed is refused with RetryError (Koji's rule), while a
//! failed write leaves nothing behind, callnum included.

use rusqlite::Connection;

use crate::store::sessions;
use crate::xmlrpc::sig::Param;
use crate::xmlrpc::wire::{self, MethodCall};
use crate::xmlrpc::{Args, Fault, Signature, Struct, Value};

use super::Hub;
use super::auth::{Auth, Credentials};

/// Whether a method changes records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Read,
    Write,
}

pub type Handler = fn(&mut Ctx<'_>, &Args) -> Result<Value, Fault>;

/// One API method: its Python signature (for binding and `_listapi`), doc and handler.
pub struct Method {
    pub sig: Signature,
    pub doc: &'static str,
    pub kind: Kind,
    pub handler: Handler,
}

impl Method {
    pub const fn new(
        kind: Kind,
        name: &'static str,
        params: &'static [Param],
        doc: &'static str,
        handler: Handler,
    ) -> Method {
        Method {
            sig: Signature {
                name,
                params,
                varargs: None,
                varkw: None,
            },
            doc,
            kind,
            handler,
        }
    }

    pub const fn read(
        name: &'static str,
        params: &'static [Param],
        doc: &'static str,
        handler: Handler,
    ) -> Method {
        Self::new(Kind::Read, name, params, doc, handler)
    }

    pub const fn write(
        name: &'static str,
        params: &'static [Param],
        doc: &'static str,
        handler: Handler,
    ) -> Method {
        Self::new(Kind::Write, name, params, doc, handler)
    }

    /// Adds `*name` to the signature.
    pub const fn varargs(mut self, name: &'static str) -> Method {
        self.sig.varargs = Some(name);
        self
    }

    /// Adds `**name` to the signature.
    pub const fn varkw(mut self, name: &'static str) -> Method {
        self.sig.varkw = Some(name);
        self
    }
}

/// A step that runs once the call's transaction has ended, outside it.
pub type Continuation = Box<dyn FnOnce(&Hub) -> Result<Value, Fault> + Send>;

/// What a handler asks for after its transaction committed.
#[derive(Default)]
pub struct AfterCommit {
    /// The call assigned a task to a host: wake `host.getTasks(wait=N)` callers.
    pub assigned: bool,
    /// Runs with no connection and no writer lock held (e.g. long-polling); its answer replaces
    /// the handler's. Dropped inside multiCall, where the handler's own answer stands.
    pub then: Option<Continuation>,
    /// Task transitions for `/metrics`, recorded only once the transaction committed.
    pub metrics: Vec<super::metrics::Observation>,
}

/// What a handler sees: the hub, a connection (inside the write transaction for write methods),
/// and the caller.
pub struct Ctx<'a> {
    pub hub: &'a Hub,
    pub db: &'a Connection,
    pub auth: &'a mut Auth,
    pub method: &'a str,
    pub after: &'a mut AfterCommit,
}

impl Ctx<'_> {
    pub fn require_perm(&self, perm: &str) -> Result<(), Fault> {
        self.auth.require_perm(self.db, perm)
    }

    pub fn has_perm(&self, perm: &str) -> Result<bool, Fault> {
        self.auth.has_perm(self.db, perm, false)
    }

    /// The logged-in user's id, or Koji's "you must be logged in" fault.
    pub fn user_id(&self) -> Result<i64, Fault> {
        Ok(self.auth.require_login()?.user.id)
    }
}

const MULTICALL: &[&str] = &["multiCall", "system.multicall"];

/// Most calls one multiCall may carry: they all run in one transaction, holding the hub's one
/// writer for as long as they take. The koji CLI's largest batch is 10000
/// (`ClientSession.multiCall(batch=10000)`); clients split longer lists with `batch=N`.
pub const MAX_MULTICALL_CALLS: usize = 10_000;

/// Methods a session locked out by another exclusive session may still call.
const LOCK_EXEMPT: &[&str] = &["exclusiveSession", "login", "logout"];

/// A call's response document, or the part of the call that still has to run.
pub enum Reply {
    Done(String),
    /// The handler's [`AfterCommit::then`] (a long poll): it holds no connection, so the server
    /// runs it outside the hub's call slots; it yields the response document.
    Later(Box<dyn FnOnce(&Hub) -> String + Send>),
}

/// Handles one XML-RPC request body.
pub fn handle(
    hub: &Hub,
    body: &[u8],
    creds: &Credentials,
    peer: Option<std::net::IpAddr>,
) -> Reply {
    if body.len() > hub.config.max_request_length {
        return Reply::Done(wire::write_fault(&Fault::generic("Request too long")));
    }
    let call = match wire::parse_request(body) {
        Ok(c) => c,
        Err(e) => {
            let f = Fault::generic(format!("Invalid request: {e}"));
            let unknown = super::metrics::UNKNOWN_METHOD;
            hub.metrics
                .record_call(unknown, Some(f.code), Default::default());
            return Reply::Done(wire::write_fault(&f));
        }
    };
    let started = std::time::Instant::now();
    let name = call.name.clone();
    match run(hub, call, creds, peer) {
        Ok(Flow::Value(v)) => Reply::Done(finish(hub, &name, started, Ok(v))),
        Ok(Flow::Then(then)) => Reply::Later(Box::new(move |hub: &Hub| {
            let out = then(hub);
            finish(hub, &name, started, out)
        })),
        Err(f) => Reply::Done(finish(hub, &name, started, Err(f))),
    }
}

/// Records the call and writes its response document.
fn finish(hub: &Hub, name: &str, started: std::time::Instant, out: Result<Value, Fault>) -> String {
    let elapsed = started.elapsed();
    let fault = out.as_ref().err().map(|f| f.code);
    hub.metrics.record_call(name, fault, elapsed);
    let elapsed_ms = elapsed.as_secs_f64() * 1000.0;
    match out {
        Ok(v) => {
            tracing::debug!(method = %name, elapsed_ms, "call ok");
            wire::write_response(&v)
        }
        Err(f) => {
            tracing::info!(method = %name, code = f.code, fault = %f.message, elapsed_ms, "call fault");
            wire::write_fault(&f)
        }
    }
}

/// What [`run`] ends with: the answer, or a continuation to run outside the call's transaction.
enum Flow {
    Value(Value),
    Then(Continuation),
}

fn run(
    hub: &Hub,
    call: MethodCall,
    creds: &Credentials,
    peer: Option<std::net::IpAddr>,
) -> Result<Flow, Fault> {
    let MethodCall { name, params } = call;
    let validate = |conn: &Connection| -> Result<Auth, Fault> {
        let auth = Auth::validate(conn, &hub.config, creds, peer, &name)?;
        if auth.lock_error && !LOCK_EXEMPT.contains(&name.as_str()) {
            return Err(Fault::new(
                crate::xmlrpc::FaultCode::AuthLock,
                "User locked by another session",
            ));
        }
        Ok(auth)
    };
    if MULTICALL.contains(&name.as_str()) {
        return multicall(hub, &validate, params).map(Flow::Value);
    }
    let m = hub
        .registry
        .get(&name)
        .ok_or_else(|| invalid_method(&name))?;
    // Session errors come before argument errors, as on Koji's hub. For writes, validation runs
    // inside the write transaction so two retries of one call cannot both pass the callnum check.
    let mut after = AfterCommit::default();
    let v = match m.kind {
        Kind::Read => hub.store.read(|conn| {
            let mut auth = validate(conn)?;
            let args = m.sig.bind(params)?;
            invoke(hub, conn, &mut auth, m, &name, &args, &mut after)
        }),
        Kind::Write => hub.store.write(|tx| {
            let mut auth = validate(tx)?;
            let args = m.sig.bind(params)?;
            let v = invoke(hub, tx, &mut auth, m, &name, &args, &mut after)?;
            record_callnum(tx, &auth)?;
            Ok(v)
        }),
    }?;
    hub.metrics.observe_all(std::mem::take(&mut after.metrics));
    if after.assigned {
        hub.signal.notify();
    }
    Ok(match after.then {
        Some(then) => Flow::Then(then),
        None => Flow::Value(v),
    })
}

/// Runs a read method for an anonymous caller, as kojiweb reads through the API: the web pages
/// use this. Write methods are refused. Runs on a blocking thread (it touches SQLite).
pub fn call_anonymous(hub: &Hub, name: &str, params: Vec<Value>) -> Result<Value, Fault> {
    let m = hub.registry.get(name).ok_or_else(|| invalid_method(name))?;
    if m.kind != Kind::Read {
        return Err(Fault::not_allowed(format!(
            "{name} changes records; anonymous callers may only read"
        )));
    }
    let mut after = AfterCommit::default();
    hub.store.read(|conn| {
        let mut auth = Auth::default();
        let args = m.sig.bind(params)?;
        invoke(hub, conn, &mut auth, m, name, &args, &mut after)
    })
}

fn invalid_method(name: &str) -> Fault {
    Fault::generic(format!("Invalid method: {name}"))
}

fn invoke(
    hub: &Hub,
    db: &Connection,
    auth: &mut Auth,
    m: &Method,
    name: &str,
    args: &Args,
    after: &mut AfterCommit,
) -> Result<Value, Fault> {
    let mut ctx = Ctx {
        hub,
        db,
        auth,
        method: name,
        after,
    };
    (m.handler)(&mut ctx, args)
}

fn record_callnum(db: &Connection, auth: &Auth) -> Result<(), Fault> {
    let session = auth
        .logged_in
        .as_ref()
        .map(|l| l.session.id)
        .or(auth.expired.as_ref().map(|s| s.id));
    if let (Some(id), Some(n)) = (session, auth.callnum) {
        sessions::set_callnum(db, id, n)?;
    }
    Ok(())
}

/// Koji's multiCall: each entry runs under its own savepoint in one transaction; successes come
/// back as `[value]`, failures as `{faultCode, faultString}`.
fn multicall(
    hub: &Hub,
    validate: &dyn Fn(&Connection) -> Result<Auth, Fault>,
    params: Vec<Value>,
) -> Result<Value, Fault> {
    let sig = Signature {
        name: "multiCall",
        params: crate::params![crate::xmlrpc::sig::req("calls")],
        varargs: None,
        varkw: None,
    };
    let args = sig.bind(params)?;
    let calls = match args.get("calls") {
        Some(Value::Array(a)) => a.clone(),
        Some(v) => {
            return Err(Fault::parameter(format!(
                "multiCall expects a list of calls, got {}",
                v.type_name()
            )));
        }
        None => Vec::new(),
    };
    if calls.len() > MAX_MULTICALL_CALLS {
        return Err(Fault::parameter(format!(
            "multiCall of {} calls exceeds the hub's multicall length limit of \
             {MAX_MULTICALL_CALLS} calls; send them in batches (ClientSession.multiCall(batch=N))",
            calls.len()
        )));
    }
    let any_write = calls.iter().any(|c| {
        c.as_struct()
            .and_then(|s| s.get("methodName"))
            .and_then(Value::as_str)
            .and_then(|n| hub.registry.get(n))
            .is_some_and(|m| m.kind == Kind::Write)
    });
    let mut assigned = false;
    let mut observed = Vec::new();
    let mut run_all = |db: &Connection| -> Result<(Vec<Value>, bool, Auth), Fault> {
        let mut auth = validate(db)?;
        let auth = &mut auth;
        let mut out = Vec::with_capacity(calls.len());
        let mut wrote = false;
        for c in &calls {
            db.execute_batch("SAVEPOINT multicall")
                .map_err(crate::store::StoreError::from)?;
            let mut after = AfterCommit::default();
            let started = std::time::Instant::now();
            let r = one_of_multicall(hub, db, auth, c, &mut after);
            let inner = c.as_struct().and_then(|s| s.get("methodName"));
            hub.metrics.record_call(
                inner.and_then(Value::as_str).unwrap_or_default(),
                r.as_ref().err().map(|f| f.code),
                started.elapsed(),
            );
            match r {
                Ok((v, kind)) => {
                    db.execute_batch("RELEASE multicall")
                        .map_err(crate::store::StoreError::from)?;
                    wrote |= kind == Kind::Write;
                    assigned |= after.assigned;
                    observed.append(&mut after.metrics);
                    out.push(Value::Array(vec![v]));
                }
                Err(f) => {
                    db.execute_batch("ROLLBACK TO multicall; RELEASE multicall")
                        .map_err(crate::store::StoreError::from)?;
                    out.push(Value::Struct(f.to_struct()));
                }
            }
        }
        Ok((out, wrote, std::mem::take(auth)))
    };
    let v = if any_write {
        hub.store.write(|tx| {
            let (out, wrote, auth) = run_all(tx)?;
            if wrote {
                record_callnum(tx, &auth)?;
            }
            Ok::<_, Fault>(Value::Array(out))
        })
    } else {
        hub.store
            .read(|conn| Ok::<_, Fault>(Value::Array(run_all(conn)?.0)))
    }?;
    hub.metrics.observe_all(observed);
    if assigned {
        hub.signal.notify();
    }
    Ok(v)
}

fn one_of_multicall(
    hub: &Hub,
    db: &Connection,
    auth: &mut Auth,
    call: &Value,
    after: &mut AfterCommit,
) -> Result<(Value, Kind), Fault> {
    let s = call
        .as_struct()
        .ok_or_else(|| Fault::generic("multiCall entries must be structs"))?;
    let name = s
        .get("methodName")
        .and_then(Value::as_str)
        .ok_or_else(|| Fault::generic("multiCall entry lacks methodName"))?;
    if MULTICALL.contains(&name) {
        return Err(Fault::generic("Nested multiCall is not allowed"));
    }
    let params = match s.get("params") {
        Some(Value::Array(a)) => a.clone(),
        None | Some(Value::Nil) => Vec::new(),
        Some(v) => {
            return Err(Fault::parameter(format!(
                "multiCall params must be a list, got {}",
                v.type_name()
            )));
        }
    };
    let m = hub.registry.get(name).ok_or_else(|| invalid_method(name))?;
    if auth.lock_error && !LOCK_EXEMPT.contains(&name) {
        return Err(Fault::new(
            crate::xmlrpc::FaultCode::AuthLock,
            "User locked by another session",
        ));
    }
    let args = m.sig.bind(params)?;
    let v = invoke(hub, db, auth, m, name, &args, after)?;
    Ok((v, m.kind))
}

/// `_listapi` entry for one method, shaped like Koji's `HandlerRegistry.list_api`.
pub fn api_entry(m: &Method) -> Struct {
    let mut args = Vec::new();
    let mut names = Vec::new();
    let mut defaults = Vec::new();
    for p in m.sig.params {
        names.push(Value::str(p.name));
        match p.default {
            Some(d) => {
                let v = python_literal(d);
                defaults.push(v.clone());
                args.push(Value::Array(vec![Value::str(p.name), v]));
            }
            None => args.push(Value::str(p.name)),
        }
    }
    if let Some(v) = m.sig.varargs {
        args.push(Value::str(v));
    }
    if let Some(k) = m.sig.varkw {
        args.push(Value::str(k));
    }
    let argspec = Value::Array(vec![
        Value::Array(names),
        m.sig.varargs.map(Value::str).unwrap_or(Value::Nil),
        m.sig.varkw.map(Value::str).unwrap_or(Value::Nil),
        if defaults.is_empty() {
            Value::Nil
        } else {
            Value::Array(defaults)
        },
        Value::Array(vec![]),
        Value::Nil,
        Value::Struct(Struct::new()),
    ]);
    Struct::new()
        .with("name", m.sig.name)
        .with(
            "doc",
            if m.doc.is_empty() {
                Value::Nil
            } else {
                Value::str(m.doc)
            },
        )
        .with("argspec", argspec)
        .with("argdesc", m.sig.argdesc())
        .with("args", Value::Array(args))
}

/// The value of a Python default literal as written in a signature.
fn python_literal(s: &str) -> Value {
    match s {
        "None" => Value::Nil,
        "True" => Value::Bool(true),
        "False" => Value::Bool(false),
        _ => {
            if let Ok(i) = s.parse::<i64>() {
                Value::Int(i)
            } else if let Ok(d) = s.parse::<f64>() {
                Value::Double(d)
            } else {
                Value::str(s.trim_matches('\''))
            }
        }
    }
}
