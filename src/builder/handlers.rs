//! Task handlers: one per Koji task method the builder runs, looked up by method name.
//!
//! A handler gets a [`TaskContext`] (its task id, a subsession client, a work directory, log
//! files that are uploaded while they grow, and a way to start child processes that a cancel can
//! kill) plus the task's positional parameters and keyword arguments, and returns the task result
//! or a fault. Faults keep their code (Koji's `GenericError` subclasses, e.g. 1005 BuildError);
//! anything else a handler hits should become code 1 with a message a person can act on.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::client::KojiClient;
use super::logs::TaskLog;
use super::process::ProcessTracker;
use crate::xmlrpc::{Fault, FaultCode, Struct, Value};

/// A boxed, sendable future (what `async fn` in a `dyn` trait needs).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One Koji task method.
pub trait TaskHandler: Send + Sync {
    /// The task method, e.g. `sleep` or `buildContainer`.
    fn method(&self) -> &'static str;
    /// Load the task puts on the host (Koji's `_taskWeight`), sent with `host.setTaskWeight`.
    fn weight(&self) -> f64;
    /// Runs the task. Dropping the future (on cancel) must leave nothing behind except child
    /// processes, which the daemon kills through the context's process tracker.
    fn run(
        &self,
        ctx: TaskContext,
        params: Vec<Value>,
        kwargs: Struct,
    ) -> BoxFuture<'_, Result<Value, Fault>>;
}

/// What a running task may use.
#[derive(Clone)]
pub struct TaskContext {
    task_id: i64,
    session: Arc<KojiClient>,
    workdir: PathBuf,
    procs: ProcessTracker,
}

impl TaskContext {
    pub fn new(
        task_id: i64,
        session: Arc<KojiClient>,
        workdir: PathBuf,
        procs: ProcessTracker,
    ) -> TaskContext {
        TaskContext {
            task_id,
            session,
            workdir,
            procs,
        }
    }

    pub fn task_id(&self) -> i64 {
        self.task_id
    }

    /// The task's own hub session (a subsession of the daemon's).
    pub fn session(&self) -> &Arc<KojiClient> {
        &self.session
    }

    /// The task's work directory; removed when the task ends.
    pub fn workdir(&self) -> &Path {
        &self.workdir
    }

    /// Opens `<workdir>/<name>.log` for appending; it is uploaded to the hub while it grows.
    pub fn log(&self, name: &str) -> Result<TaskLog, Fault> {
        TaskLog::open(&self.workdir, name).map_err(|e| {
            Fault::raw(
                FaultCode::Unknown as i32,
                format!(
                    "cannot open log {name}.log in {}: {e}",
                    self.workdir.display()
                ),
            )
        })
    }

    /// `host.subtask(method, arglist, parent=<this task>, **opts)`: a child task (Koji's
    /// `BaseTaskHandler.subtask`). `opts` may hold `arch`, `label`, `channel`, `priority`.
    pub async fn subtask(
        &self,
        method: &str,
        arglist: Vec<Value>,
        opts: Struct,
    ) -> Result<i64, Fault> {
        let v = self
            .session
            .call_kw(
                "host.subtask",
                vec![
                    Value::str(method),
                    Value::Array(arglist),
                    Value::Int(self.task_id),
                ],
                opts,
            )
            .await?;
        v.as_int().ok_or_else(|| {
            Fault::raw(
                FaultCode::Unknown as i32,
                format!("host.subtask answered {v:?}, not a task id"),
            )
        })
    }

    /// Waits for all of `subtasks` (kojid's `wait(subtasks, all=True, failany=True)`): the task
    /// is marked waiting (so it no longer counts against the host's capacity), and as soon as
    /// one child fails or is canceled the others are canceled and that child's fault is this
    /// task's fault. `on_poll` runs at every poll (e.g. to copy the children's logs).
    /// Returns each child's result, in the order of `subtasks`.
    pub async fn wait_all(
        &self,
        subtasks: &[i64],
        mut on_poll: impl FnMut() -> BoxFuture<'static, ()> + Send,
    ) -> Result<Vec<Value>, Fault> {
        let ids = || Value::Array(subtasks.iter().copied().map(Value::Int).collect());
        self.session
            .call("host.taskSetWait", vec![Value::Int(self.task_id), ids()])
            .await?;
        let mut pause = WAIT_POLL_MIN;
        loop {
            on_poll().await;
            let v = self
                .session
                .call("host.taskWait", vec![Value::Int(self.task_id)])
                .await?;
            let lists = v.as_array().unwrap_or_default();
            let list = |i: usize| -> Vec<i64> {
                lists
                    .get(i)
                    .and_then(Value::as_array)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(Value::as_int)
                    .collect()
            };
            let (finished, unfinished) = (list(0), list(1));
            for id in &finished {
                if let Err(e) = self
                    .session
                    .call("getTaskResult", vec![Value::Int(*id)])
                    .await
                {
                    let fault = Fault::from(e);
                    tracing::info!(
                        task_id = self.task_id,
                        child = id,
                        code = fault.code,
                        "subtask failed; canceling the others"
                    );
                    let _ = self
                        .session
                        .call("cancelTaskChildren", vec![Value::Int(self.task_id)])
                        .await;
                    return Err(fault);
                }
            }
            if unfinished.is_empty() {
                break;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(WAIT_POLL_MAX);
            if !finished.is_empty() {
                pause = WAIT_POLL_MIN;
            }
        }
        on_poll().await;
        self.session
            .call("host.taskUnwait", vec![Value::Int(self.task_id)])
            .await?;
        let v = self
            .session
            .call(
                "host.taskWaitResults",
                vec![Value::Int(self.task_id), ids()],
            )
            .await?;
        let pairs = v.as_array().unwrap_or_default();
        subtasks
            .iter()
            .map(|id| {
                pairs
                    .iter()
                    .filter_map(Value::as_array)
                    .find(|p| p.first().and_then(Value::as_int) == Some(*id))
                    .and_then(|p| p.get(1).cloned())
                    .ok_or_else(|| {
                        Fault::raw(
                            FaultCode::Unknown as i32,
                            format!("host.taskWaitResults has no result for task {id}"),
                        )
                    })
            })
            .collect()
    }

    /// Uploads a file of the work directory as task output `name` (kojid's `uploadFile`),
    /// streamed in chunks, so `listTaskOutput` shows it and a later import can take it.
    pub async fn upload_file(&self, path: &Path, name: &str) -> Result<(), Fault> {
        use tokio::io::AsyncReadExt as _;
        let err = |e: std::io::Error| {
            Fault::raw(
                FaultCode::Unknown as i32,
                format!("cannot upload {}: {e}", path.display()),
            )
        };
        let mut f = tokio::fs::File::open(path).await.map_err(err)?;
        let remote = super::logs::task_upload_path(self.task_id);
        let mut buf = vec![0u8; UPLOAD_CHUNK];
        let mut offset = 0u64;
        loop {
            let mut got = 0;
            while got < buf.len() {
                let n = f.read(&mut buf[got..]).await.map_err(err)?;
                if n == 0 {
                    break;
                }
                got += n;
            }
            if got == 0 && offset > 0 {
                break;
            }
            self.session
                .raw_upload(&remote, name, offset, &buf[..got], offset == 0)
                .await?;
            offset += got as u64;
            if got < buf.len() {
                break;
            }
        }
        Ok(())
    }

    /// Starts a child process in its own process group, tracked so a cancel kills its tree.
    /// Build the command from an argv (`Command::new(prog).args(..)`), never a shell string.
    pub fn spawn(&self, cmd: &mut tokio::process::Command) -> Result<tokio::process::Child, Fault> {
        let prog = cmd.as_std().get_program().to_string_lossy().into_owned();
        self.procs.spawn(cmd).map_err(|e| {
            Fault::raw(
                FaultCode::Unknown as i32,
                format!("cannot start {prog}: {e}"),
            )
        })
    }
}

/// First and longest pause between `host.taskWait` polls.
const WAIT_POLL_MIN: Duration = Duration::from_millis(100);
const WAIT_POLL_MAX: Duration = Duration::from_millis(250);
/// Bytes per `rawUpload` of an output file (kojid uses 1 MiB).
const UPLOAD_CHUNK: usize = 4 << 20;

/// The handlers a builder offers, by method name.
#[derive(Clone)]
pub struct Registry {
    handlers: Vec<Arc<dyn TaskHandler>>,
}

impl Default for Registry {
    /// Every handler this build of the builder has.
    fn default() -> Self {
        Registry::new(vec![Arc::new(SleepHandler)])
    }
}

impl Registry {
    pub fn new(handlers: Vec<Arc<dyn TaskHandler>>) -> Registry {
        Registry { handlers }
    }

    pub fn get(&self, method: &str) -> Option<Arc<dyn TaskHandler>> {
        self.handlers.iter().find(|h| h.method() == method).cloned()
    }

    /// Method names, for `host.updateHost(..., data={'methods': [...]})`.
    pub fn methods(&self) -> Vec<&'static str> {
        self.handlers.iter().map(|h| h.method()).collect()
    }
}

/// Koji's `sleep` task (`koji.tasks.SleepTask`): params `[n]` seconds, result None. Ours runs
/// the real `sleep` program and logs progress to `sleep.log` every half second.
pub struct SleepHandler;

/// Longest sleep accepted (one day).
pub const MAX_SLEEP: f64 = 86400.0;

impl SleepHandler {
    fn seconds(params: &[Value], kwargs: &Struct) -> Result<f64, Fault> {
        if let Some(k) = kwargs.keys().next() {
            return Err(Fault::parameter(format!(
                "handler() got an unexpected keyword argument '{k}'"
            )));
        }
        if params.len() != 1 {
            return Err(Fault::parameter(format!(
                "handler() takes exactly 1 argument (n, seconds to sleep); {} given",
                params.len()
            )));
        }
        let n = match &params[0] {
            Value::Int(i) => *i as f64,
            Value::Double(d) => *d,
            other => {
                return Err(Fault::parameter(format!(
                    "sleep needs a number of seconds, got {}",
                    other.type_name()
                )));
            }
        };
        if !n.is_finite() || !(0.0..=MAX_SLEEP).contains(&n) {
            return Err(Fault::parameter(format!(
                "sleep needs between 0 and {MAX_SLEEP} seconds, got {n}"
            )));
        }
        Ok(n)
    }

    /// The argument for `sleep(1)`: plain decimal, never an exponent.
    fn arg(n: f64) -> String {
        if n.fract() == 0.0 {
            format!("{}", n as i64)
        } else {
            format!("{n:.6}")
        }
    }
}

impl TaskHandler for SleepHandler {
    fn method(&self) -> &'static str {
        "sleep"
    }

    fn weight(&self) -> f64 {
        0.25
    }

    fn run(
        &self,
        ctx: TaskContext,
        params: Vec<Value>,
        kwargs: Struct,
    ) -> BoxFuture<'_, Result<Value, Fault>> {
        Box::pin(async move {
            let n = Self::seconds(&params, &kwargs)?;
            let log = ctx.log("sleep")?;
            let io = |e: std::io::Error| {
                Fault::raw(
                    FaultCode::Unknown as i32,
                    format!("cannot write sleep.log: {e}"),
                )
            };
            let shown = Self::arg(n);
            log.line(&format!("Sleeping for {shown} seconds"))
                .map_err(io)?;
            let mut cmd = tokio::process::Command::new("sleep");
            cmd.arg(&shown)
                .current_dir(ctx.workdir())
                .stdin(std::process::Stdio::null());
            let mut child = ctx.spawn(&mut cmd)?;
            let start = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            tick.tick().await;
            let status = loop {
                tokio::select! {
                    st = child.wait() => break st,
                    _ = tick.tick() => {
                        let slept = start.elapsed().as_secs_f64().min(n);
                        log.line(&format!("slept {slept:.1} of {shown} s")).map_err(io)?;
                    }
                }
            };
            let status = status.map_err(|e| {
                Fault::raw(
                    FaultCode::Unknown as i32,
                    format!("waiting for sleep failed: {e}"),
                )
            })?;
            if !status.success() {
                return Err(Fault::raw(
                    FaultCode::Unknown as i32,
                    format!("sleep {shown} ended with {status}"),
                ));
            }
            log.line("Finished sleeping").map_err(io)?;
            Ok(Value::Nil)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleep_params_are_checked() {
        let none = Struct::new();
        assert_eq!(SleepHandler::seconds(&[Value::Int(3)], &none), Ok(3.0));
        assert_eq!(SleepHandler::seconds(&[Value::Double(0.5)], &none), Ok(0.5));
        for bad in [
            vec![],
            vec![Value::Int(-1)],
            vec![Value::Int(86401)],
            vec![Value::Double(f64::NAN)],
            vec![Value::str("3; rm -rf /")],
            vec![Value::Int(1), Value::Int(2)],
        ] {
            let f = SleepHandler::seconds(&bad, &none).unwrap_err();
            assert_eq!(f.code, 1019, "{bad:?}");
        }
        let kw = Struct::new().with("x", 1);
        assert!(SleepHandler::seconds(&[Value::Int(1)], &kw).is_err());
        assert_eq!(SleepHandler::arg(3.0), "3");
        assert_eq!(SleepHandler::arg(0.25), "0.250000");
        assert_eq!(SleepHandler::arg(1e-7), "0.000000");
    }

    #[test]
    fn registry_finds_sleep() {
        let r = Registry::default();
        assert_eq!(r.methods(), vec!["sleep"]);
        assert!(r.get("sleep").is_some());
        assert!(r.get("buildContainer").is_none());
    }
}
