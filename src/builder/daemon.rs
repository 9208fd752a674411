//! The builder daemon: kojid's task manager on the Koji host protocol.
//!
//! Startup: `login`, `exclusiveSession`, `echo("OK") == ["OK"]`, `host.getID`. Then, in a loop:
//! `host.getHostTasks` (free tasks we know nothing about, kill tasks canceled or given to another
//! host), `host.getHost` (enabled, capacity), `host.updateHost(load, ready, data=...)`,
//! `host.getTasks` (long-polling with `wait=` when the hub offers it), and for an ASSIGNED task:
//! `getTaskInfo(request=True)`, `host.openTask`, `host.setTaskWeight`, then the handler runs in its
//! own tokio task on its own subsession, which reports with `host.closeTask` / `host.failTask`.
//!
//! A finished task's answer is written to `<workdir>/results/<id>.xml` before it is reported and
//! removed only once the hub took it; answers the hub could not be reached for are re-sent by the
//! loop, and after a restart. SIGTERM/SIGINT (the `shutdown` token): stop taking tasks, kill the
//! running ones, `host.freeTasks`, `host.updateHost(task_load=0.0, ready=False)`, `logout`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tokio::sync::{Mutex as AsyncMutex, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::client::{ClientError, ClientTls, KojiClient, RetryPolicy, decode_args};
use super::handlers::{Registry, TaskContext, TaskHandler};
use super::logs::LogUploader;
use super::process::{KILL_GRACE, ProcessTracker};
use crate::build::engine::{Buildah, BuildahConfig};
use crate::xmlrpc::{Fault, FaultCode, Struct, Value, wire};

/// Koji task states (koji.TASK_STATES).
const TASK_CANCELED: i64 = 3;
const TASK_ASSIGNED: i64 = 4;
const TASK_OPEN: i64 = 1;

/// How often running tasks are checked for cancellation.
const CANCEL_CHECK: Duration = Duration::from_secs(1);
/// `host.getTasks(wait=)` while idle: nothing can be canceled, so wait long, but not longer than
/// the check-in cadence below.
const IDLE_WAIT: i64 = 10;
/// `host.getTasks(wait=)` while tasks run: short, the loop also checks for cancels.
const BUSY_WAIT: i64 = 1;
/// `host.updateHost` is re-sent at least this often even when nothing changed: the hub's
/// scheduler counts a silent host as not ready after its ready timeout (Koji: 180 s) and frees its
/// tasks after the host timeout; kojid checks in about every 15 s.
const HOST_UPDATE_REFRESH: Duration = Duration::from_secs(10);
/// Live logs are uploaded this often.
const LOG_INTERVAL: Duration = Duration::from_millis(500);
/// Running tasks get this long to stop at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(15);
/// Calls made while shutting down: a few quick retries, then give up.
const SHUTDOWN_RETRY: RetryPolicy = RetryPolicy {
    max_retries: 2,
    max_interval: Duration::from_secs(1),
};

/// Settings of one builder daemon.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// `http://host:port/kojihub`
    pub hub_url: String,
    /// The host's user name (Koji: the host name).
    pub user: String,
    pub password: String,
    /// Most tasks run at once (Koji's `maxjobs`).
    pub maxjobs: usize,
    /// Task work directories and unreported results live here.
    pub workdir: PathBuf,
    /// Pause between `host.getTasks` polls when the hub has no long-poll.
    pub poll_interval: Duration,
    /// Take the exclusive session even if another session holds it.
    pub force_lock: bool,
    /// HTTPS settings; with a client certificate the daemon logs in with `sslLogin` (as kojid
    /// with `cert`) instead of the password.
    pub tls: ClientTls,
    /// The buildah storage of this builder's container builds, cleaned at startup of what a
    /// killed run left behind (see [`clean_buildah_storage`]); `None` without container tasks.
    pub buildah: Option<BuildahConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(
        "another session of host {user} holds the exclusive lock on the hub (is a second \
         builder daemon running for this host?); stop it, or start this one with --force-lock"
    )]
    Locked { user: String },
    #[error("cannot log in to {url} as {user}: {source}")]
    Login {
        url: String,
        user: String,
        source: ClientError,
    },
    #[error(
        "user {user} is not a build host on the hub ({source}); create it with \
         `koji add-host {user} ARCH`"
    )]
    NotAHost { user: String, source: ClientError },
    #[error("the hub at {url} failed the echo check: sent echo('OK'), got {got:?}")]
    Echo { url: String, got: Value },
    #[error("work directory {path}: {source}")]
    Workdir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Client(#[from] ClientError),
}

/// How a task's run ended, as the runner tells the daemon.
#[derive(Debug)]
enum Outcome {
    /// The hub took the answer.
    Reported,
    /// The hub refused the answer (e.g. the task was canceled meanwhile); dropped.
    Rejected,
    /// The hub could not be reached; the answer waits in this file.
    Pending(PathBuf),
    /// Killed on cancel or shutdown.
    Canceled,
}

struct Running {
    cancel: CancellationToken,
    join: JoinHandle<()>,
    subsession: Option<i64>,
    killing: bool,
}

/// Runs a builder daemon until `shutdown` is canceled. Errors are startup failures (or a lost
/// session that cannot be re-established); a clean shutdown returns `Ok`.
pub async fn run(
    cfg: DaemonConfig,
    registry: Registry,
    shutdown: CancellationToken,
) -> Result<(), DaemonError> {
    let mut d = tokio::select! {
        d = Daemon::start(cfg, registry) => d?,
        _ = shutdown.cancelled() => return Ok(()),
    };
    let r = d.main_loop(&shutdown).await;
    d.shutdown().await;
    r
}

struct Daemon {
    cfg: DaemonConfig,
    registry: Registry,
    client: Arc<KojiClient>,
    host_id: i64,
    supports_wait: bool,
    running: HashMap<i64, Running>,
    /// Finished tasks whose answer still has to reach the hub.
    pending: BTreeMap<i64, PathBuf>,
    task_load: f64,
    done_tx: mpsc::UnboundedSender<(i64, Outcome)>,
    done_rx: mpsc::UnboundedReceiver<(i64, Outcome)>,
    done_buf: Vec<(i64, Outcome)>,
    last_host_update: Option<(f64, bool, Instant)>,
    next_take: Instant,
    status: String,
}

fn results_dir(workdir: &Path) -> PathBuf {
    workdir.join("results")
}

fn int_field(s: &Struct, k: &str) -> Option<i64> {
    s.get(k).and_then(Value::as_int)
}

fn float_field(s: &Struct, k: &str) -> Option<f64> {
    match s.get(k) {
        Some(Value::Double(d)) => Some(*d),
        Some(Value::Int(i)) => Some(*i as f64),
        _ => None,
    }
}

impl Daemon {
    async fn start(cfg: DaemonConfig, registry: Registry) -> Result<Daemon, DaemonError> {
        let wd = |e| DaemonError::Workdir {
            path: cfg.workdir.clone(),
            source: e,
        };
        tokio::fs::create_dir_all(results_dir(&cfg.workdir))
            .await
            .map_err(wd)?;
        let client = Arc::new(KojiClient::with_tls(
            &cfg.hub_url,
            RetryPolicy::DAEMON,
            &cfg.tls,
        )?);
        Self::login(&client, &cfg).await?;
        let echo = client.call("echo", vec![Value::str("OK")]).await?;
        if echo != Value::Array(vec![Value::str("OK")]) {
            return Err(DaemonError::Echo {
                url: cfg.hub_url.clone(),
                got: echo,
            });
        }
        let host_id = match client.call("host.getID", vec![]).await {
            Ok(v) => v.as_int().ok_or_else(|| ClientError::Protocol {
                method: "host.getID".into(),
                detail: format!("expected an int, got {}", v.type_name()),
            })?,
            Err(e @ ClientError::Fault(_)) => {
                return Err(DaemonError::NotAHost {
                    user: cfg.user.clone(),
                    source: e,
                });
            }
            Err(e) => return Err(e.into()),
        };
        let supports_wait = match client
            .call("system.methodHelp", vec![Value::str("host.getTasks")])
            .await
        {
            Ok(Value::String(help)) => help.lines().next().is_some_and(|l| l.contains("wait")),
            _ => false,
        };
        if let Some(b) = &cfg.buildah {
            clean_buildah_storage(b, &cfg.user).await;
        }
        // Leftovers of an earlier run: task directories go (their tasks are freed as stale),
        // unreported answers are re-sent.
        let mut pending = BTreeMap::new();
        let mut rd = tokio::fs::read_dir(&cfg.workdir).await.map_err(wd)?;
        while let Some(e) = rd.next_entry().await.map_err(wd)? {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.parse::<i64>().is_ok() {
                let _ = tokio::fs::remove_dir_all(e.path()).await;
            }
        }
        let mut rd = tokio::fs::read_dir(results_dir(&cfg.workdir))
            .await
            .map_err(wd)?;
        while let Some(e) = rd.next_entry().await.map_err(wd)? {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(id) = name
                .strip_suffix(".xml")
                .and_then(|s| s.parse::<i64>().ok())
            {
                tracing::info!(
                    task_id = id,
                    "found an unreported task result; re-sending it"
                );
                pending.insert(id, e.path());
            } else if name.ends_with(".tmp") {
                let _ = tokio::fs::remove_file(e.path()).await;
            }
        }
        tracing::info!(
            host = %cfg.user,
            host_id,
            hub = %cfg.hub_url,
            long_poll = supports_wait,
            methods = ?registry.methods(),
            "builder started"
        );
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        Ok(Daemon {
            cfg,
            registry,
            client,
            host_id,
            supports_wait,
            running: HashMap::new(),
            pending,
            task_load: 0.0,
            done_tx,
            done_rx,
            done_buf: Vec::new(),
            last_host_update: None,
            next_take: Instant::now(),
            status: String::new(),
        })
    }

    async fn login(client: &KojiClient, cfg: &DaemonConfig) -> Result<(), DaemonError> {
        let login = if cfg.tls.cert.is_some() {
            client.ssl_login().await
        } else {
            client.login(&cfg.user, &cfg.password).await
        };
        login.map_err(|source| DaemonError::Login {
            url: cfg.hub_url.clone(),
            user: cfg.user.clone(),
            source,
        })?;
        match client.exclusive_session(cfg.force_lock).await {
            Ok(()) => Ok(()),
            Err(ClientError::Fault(f)) if f.code == FaultCode::AuthLock as i32 => {
                let _ = client.logout().await;
                Err(DaemonError::Locked {
                    user: cfg.user.clone(),
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn main_loop(&mut self, shutdown: &CancellationToken) -> Result<(), DaemonError> {
        loop {
            if shutdown.is_cancelled() {
                return Ok(());
            }
            let started = Instant::now();
            let r = tokio::select! {
                r = self.iteration() => r,
                _ = shutdown.cancelled() => return Ok(()),
            };
            let took = matches!(r, Ok(None));
            let pause = match r {
                Ok(None) => Duration::ZERO,
                Ok(Some(p)) => p,
                Err(ClientError::Fault(f)) if f.code == FaultCode::Auth as i32 => {
                    tracing::warn!(error = %f.message, "the hub no longer accepts our session; logging in again");
                    match Self::login(&self.client, &self.cfg).await {
                        Ok(()) => {
                            self.last_host_update = None;
                            Duration::ZERO
                        }
                        Err(DaemonError::Login { source, .. }) if source.is_transport() => {
                            tracing::error!(error = %source, "cannot log in again; trying again");
                            self.cfg.poll_interval
                        }
                        Err(e) => return Err(e),
                    }
                }
                Err(ClientError::Fault(f)) if f.code == FaultCode::Retry as i32 => {
                    // A loop call was retried after a lost answer and its first attempt had
                    // already been recorded (e.g. a long poll cut by a hub restart): harmless.
                    tracing::info!(error = %f.message, "the hub had already run a retried call");
                    Duration::ZERO
                }
                Err(e) => {
                    tracing::error!(error = %e, "builder loop failed; trying again");
                    self.cfg.poll_interval
                }
            };
            // Never spin: at least a second per round unless a task was just taken.
            let pause = if took {
                Duration::ZERO
            } else {
                pause.max(CANCEL_CHECK.saturating_sub(started.elapsed()))
            };
            if pause.is_zero() {
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                Some(m) = self.done_rx.recv() => self.done_buf.push(m),
                _ = shutdown.cancelled() => return Ok(()),
            }
        }
    }

    /// One round. `Ok(None)`: a task was taken, go again at once; `Ok(Some(d))`: pause `d`.
    async fn iteration(&mut self) -> Result<Option<Duration>, ClientError> {
        self.reap().await;
        self.send_pending().await;
        self.update_tasks().await?;
        let now = Instant::now();
        if now >= self.next_take {
            let took = self.get_next_task().await?;
            if took {
                self.next_take = Instant::now();
                return Ok(None);
            }
            if self.next_take <= now {
                self.next_take = if self.supports_wait {
                    Instant::now()
                } else {
                    now + self.cfg.poll_interval
                };
            }
        }
        let until_take = self.next_take.saturating_duration_since(Instant::now());
        Ok(Some(if self.running.is_empty() {
            until_take
        } else {
            until_take.min(CANCEL_CHECK)
        }))
    }

    /// Takes note of finished runners: logs their subsession out, keeps unreported answers.
    async fn reap(&mut self) {
        while let Ok(m) = self.done_rx.try_recv() {
            self.done_buf.push(m);
        }
        let mut done: Vec<(i64, Option<Outcome>)> = self
            .done_buf
            .drain(..)
            .map(|(id, o)| (id, Some(o)))
            .collect();
        // A runner that ended without a word (it cannot panic past catch_unwind, but be safe).
        let seen: HashSet<i64> = done.iter().map(|(id, _)| *id).collect();
        for (id, r) in &self.running {
            if r.join.is_finished() && !seen.contains(id) {
                done.push((*id, None));
            }
        }
        for (id, outcome) in done {
            let Some(r) = self.running.remove(&id) else {
                continue;
            };
            if let Some(sid) = r.subsession
                && let Err(e) = self.client.logout_child(sid).await
            {
                tracing::debug!(task_id = id, error = %e, "logoutChild failed");
            }
            match outcome {
                Some(Outcome::Pending(path)) => {
                    tracing::warn!(
                        task_id = id,
                        "the hub was unreachable; the result is kept and re-sent"
                    );
                    self.pending.insert(id, path);
                }
                Some(Outcome::Canceled) => tracing::info!(task_id = id, "task stopped"),
                Some(Outcome::Reported) | Some(Outcome::Rejected) => {}
                None => tracing::error!(task_id = id, "task runner ended without a result"),
            }
        }
    }

    /// Re-sends answers that did not reach the hub, on the daemon's own session.
    async fn send_pending(&mut self) {
        let ids: Vec<i64> = self.pending.keys().copied().collect();
        for id in ids {
            let Some(path) = self.pending.get(&id).cloned() else {
                continue;
            };
            let xml = match tokio::fs::read_to_string(&path).await {
                Ok(x) => x,
                Err(e) => {
                    tracing::error!(task_id = id, path = %path.display(), error = %e, "cannot read a kept task result; dropping it");
                    self.pending.remove(&id);
                    continue;
                }
            };
            match report(&self.client, id, &xml).await {
                Outcome::Pending(_) => return, // still unreachable; try again next round
                _ => {
                    let _ = tokio::fs::remove_file(&path).await;
                    self.pending.remove(&id);
                }
            }
        }
    }

    /// `host.getHostTasks`: computes the load, frees tasks we do not run, kills canceled ones.
    async fn update_tasks(&mut self) -> Result<(), ClientError> {
        let list = self.client.call("host.getHostTasks", vec![]).await?;
        let mut load = 0.0;
        let mut listed = HashSet::new();
        let mut stale = Vec::new();
        for t in list.as_array().unwrap_or_default() {
            let Some(t) = t.as_struct() else { continue };
            let Some(id) = int_field(t, "id") else {
                continue;
            };
            listed.insert(id);
            if self.running.contains_key(&id) {
                if !t.get("waiting").is_some_and(Value::truthy) {
                    load += float_field(t, "weight").unwrap_or(1.0);
                }
            } else if !self.pending.contains_key(&id) {
                stale.push(id);
            }
        }
        self.task_load = load;
        if !stale.is_empty() {
            tracing::info!(tasks = ?stale, "freeing tasks this builder does not run");
            self.client
                .call(
                    "host.freeTasks",
                    vec![Value::Array(stale.into_iter().map(Value::Int).collect())],
                )
                .await?;
        }
        let unlisted: Vec<i64> = self
            .running
            .iter()
            .filter(|(id, r)| !listed.contains(id) && !r.killing && !r.join.is_finished())
            .map(|(id, _)| *id)
            .collect();
        for id in unlisted {
            let info = self
                .client
                .call("getTaskInfo", vec![Value::Int(id)])
                .await?;
            let reason = match info.as_struct() {
                None => Some("it no longer exists"),
                Some(s) if int_field(s, "state") == Some(TASK_CANCELED) => Some("it was canceled"),
                Some(s) if int_field(s, "host_id") != Some(self.host_id) => {
                    Some("it was given to another host")
                }
                Some(_) => None, // between reporting and exiting
            };
            if let Some(reason) = reason
                && let Some(r) = self.running.get_mut(&id)
            {
                tracing::info!(task_id = id, reason, "killing task");
                r.killing = true;
                r.cancel.cancel();
            }
        }
        Ok(())
    }

    /// Koji's `readyForTask`: enabled, within capacity, fewer than maxjobs tasks.
    async fn ready_for_task(&mut self) -> Result<bool, ClientError> {
        let host = self.client.call("host.getHost", vec![]).await?;
        let host = host.as_struct().cloned().unwrap_or_default();
        let capacity = float_field(&host, "capacity").unwrap_or(2.0);
        let status = if !host.get("enabled").is_some_and(Value::truthy) {
            "host is disabled".to_string()
        } else if self.task_load > capacity {
            format!(
                "task load {:.2} exceeds capacity {capacity:.2}",
                self.task_load
            )
        } else if self.running.len() >= self.cfg.maxjobs {
            format!("full queue ({} tasks)", self.running.len())
        } else {
            String::new()
        };
        if status != self.status {
            if status.is_empty() {
                tracing::info!("ready for tasks");
            } else {
                tracing::info!(status = %status, "not ready for tasks");
            }
            self.status = status;
        }
        Ok(self.status.is_empty())
    }

    async fn update_host(&mut self, ready: bool) -> Result<(), ClientError> {
        if let Some((load, r, at)) = self.last_host_update
            && load == self.task_load
            && r == ready
            && at.elapsed() < HOST_UPDATE_REFRESH
        {
            return Ok(());
        }
        let methods = self
            .registry
            .methods()
            .into_iter()
            .map(Value::str)
            .collect::<Vec<_>>();
        let data = Struct::new()
            .with("methods", Value::Array(methods))
            .with("maxjobs", self.cfg.maxjobs as i64);
        self.client
            .call_kw(
                "host.updateHost",
                vec![Value::Double(self.task_load), Value::Bool(ready)],
                Struct::new().with("data", data),
            )
            .await?;
        self.last_host_update = Some((self.task_load, ready, Instant::now()));
        Ok(())
    }

    /// Koji's `getNextTask`: returns true when a task was taken.
    async fn get_next_task(&mut self) -> Result<bool, ClientError> {
        let ready = self.ready_for_task().await?;
        self.update_host(ready).await?;
        if !ready {
            self.next_take = Instant::now() + self.cfg.poll_interval;
            return Ok(false);
        }
        let tasks = if self.supports_wait {
            let wait = if self.running.is_empty() {
                IDLE_WAIT
            } else {
                BUSY_WAIT
            };
            self.client
                .call_kw(
                    "host.getTasks",
                    vec![],
                    Struct::new().with("wait", Value::Int(wait)),
                )
                .await?
        } else {
            self.client.call("host.getTasks", vec![]).await?
        };
        for t in tasks.as_array().unwrap_or_default() {
            let Some(t) = t.as_struct() else { continue };
            if self.take_task(t).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Koji's `takeTask`.
    async fn take_task(&mut self, t: &Struct) -> Result<bool, ClientError> {
        let Some(id) = int_field(t, "id") else {
            return Ok(false);
        };
        if self.running.contains_key(&id) || self.pending.contains_key(&id) {
            return Ok(false);
        }
        if int_field(t, "state") != Some(TASK_ASSIGNED) {
            tracing::warn!(task_id = id, state = ?t.get("state"), "offered a task that is not ASSIGNED");
            return Ok(false);
        }
        if int_field(t, "host_id") != Some(self.host_id) {
            tracing::warn!(task_id = id, host_id = ?t.get("host_id"), "offered a task of another host");
            return Ok(false);
        }
        let method = t.get("method").and_then(Value::as_str).unwrap_or("");
        let Some(handler) = self.registry.get(method) else {
            tracing::warn!(task_id = id, method, "refusing task: no handler for method");
            self.client
                .call_kw(
                    "host.refuseTask",
                    vec![Value::Int(id)],
                    Struct::new()
                        .with("soft", false)
                        .with("msg", "no handler for method"),
                )
                .await?;
            return Ok(false);
        };
        let info = self
            .client
            .call_kw(
                "getTaskInfo",
                vec![Value::Int(id)],
                Struct::new().with("request", true),
            )
            .await?;
        let Some(request) = info
            .as_struct()
            .and_then(|s| s.get("request"))
            .and_then(Value::as_array)
        else {
            tracing::warn!(task_id = id, "task has no request");
            return Ok(false);
        };
        let (params, kwargs) = decode_args(request.to_vec());
        let opened = self
            .client
            .call("host.openTask", vec![Value::Int(id)])
            .await?;
        if opened.is_nil() {
            tracing::warn!(task_id = id, "could not open task");
            return Ok(false);
        }
        match self
            .client
            .call(
                "host.setTaskWeight",
                vec![Value::Int(id), Value::Double(handler.weight())],
            )
            .await
        {
            Ok(_) => {}
            Err(ClientError::Fault(f)) if f.code == FaultCode::ActionNotAllowed as i32 => {
                let info = self
                    .client
                    .call("getTaskInfo", vec![Value::Int(id)])
                    .await?;
                let s = info.as_struct().cloned().unwrap_or_default();
                if int_field(&s, "host_id") != Some(self.host_id)
                    || int_field(&s, "state") != Some(TASK_OPEN)
                {
                    tracing::warn!(task_id = id, "task was reassigned while opening it");
                    return Ok(false);
                }
                return Err(ClientError::Fault(f));
            }
            Err(e) => return Err(e),
        }
        let sub = Arc::new(self.client.subsession().await?);
        let subsession = sub.session().await.map(|s| s.id);
        let cancel = CancellationToken::new();
        let job = TaskJob {
            task_id: id,
            handler,
            params,
            kwargs,
            client: sub,
            workdir: self.cfg.workdir.join(id.to_string()),
            results: results_dir(&self.cfg.workdir),
            cancel: cancel.clone(),
        };
        let tx = self.done_tx.clone();
        let span = tracing::info_span!("task", task_id = id, method = %method);
        let join = tokio::spawn(
            async move {
                let outcome = job.run().await;
                let _ = tx.send((id, outcome));
            }
            .instrument(span),
        );
        tracing::info!(task_id = id, method, "task started");
        self.running.insert(
            id,
            Running {
                cancel,
                join,
                subsession,
                killing: false,
            },
        );
        Ok(true)
    }

    /// Stops everything and tells the hub (best effort, quick retries only).
    async fn shutdown(&mut self) {
        tracing::info!(running = self.running.len(), "builder shutting down");
        self.client.set_retry_policy(SHUTDOWN_RETRY);
        for r in self.running.values() {
            r.cancel.cancel();
        }
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        let ids: Vec<i64> = self.running.keys().copied().collect();
        for id in &ids {
            if let Some(r) = self.running.get_mut(id) {
                let left = deadline.saturating_duration_since(Instant::now());
                if tokio::time::timeout(left, &mut r.join).await.is_err() {
                    tracing::warn!(task_id = id, "task did not stop in time");
                    r.join.abort();
                }
            }
        }
        self.reap().await;
        self.send_pending().await;
        let mut free: Vec<i64> = ids
            .into_iter()
            .filter(|id| !self.pending.contains_key(id))
            .collect();
        if let Ok(list) = self.client.call("host.getHostTasks", vec![]).await {
            for t in list.as_array().unwrap_or_default() {
                if let Some(id) = t.as_struct().and_then(|s| int_field(s, "id"))
                    && !self.pending.contains_key(&id)
                    && !free.contains(&id)
                {
                    free.push(id);
                }
            }
        }
        if !free.is_empty() {
            tracing::info!(tasks = ?free, "freeing tasks");
            if let Err(e) = self
                .client
                .call(
                    "host.freeTasks",
                    vec![Value::Array(free.into_iter().map(Value::Int).collect())],
                )
                .await
            {
                tracing::warn!(error = %e, "host.freeTasks failed");
            }
        }
        if let Err(e) = self
            .client
            .call_kw(
                "host.updateHost",
                vec![],
                Struct::new()
                    .with("task_load", Value::Double(0.0))
                    .with("ready", false),
            )
            .await
        {
            tracing::warn!(error = %e, "host.updateHost failed");
        }
        if let Err(e) = self.client.logout().await {
            tracing::warn!(error = %e, "logout failed");
        }
        tracing::info!("builder stopped");
    }
}

/// Sends a finished task's answer: `host.closeTask` for a `<params>` answer, `host.failTask` for
/// a `<fault>`.
/// File in a buildah storage root naming the builder (host) that owns the storage.
pub const STORAGE_OWNER_FILE: &str = "containerbuild-owner";

/// What a builder killed during a build (SIGKILL, OOM, power loss) leaves in its buildah storage:
/// buildah processes still running the build (they run in process groups of their own, so they
/// outlive the daemon) and working containers with their root filesystems. At startup no task
/// of this builder runs, so everything of that kind in its storage is a leftover: the processes
/// are killed and buildah's working containers removed, before any task is taken.
///
/// Only storage this builder owns is touched: the first start writes the host name to
/// [`STORAGE_OWNER_FILE`] in the storage root; a root naming another host (two builders given
/// one `--buildah-root`), or buildah's shared default storage (no root configured), is left
/// alone with a warning, since their containers may belong to a build running elsewhere.
/// Failures are logged, never fatal: a leftover costs disk space, not correctness.
pub async fn clean_buildah_storage(config: &BuildahConfig, host: &str) {
    let Some(root) = &config.root else {
        tracing::warn!(
            host,
            "buildah uses its default storage; leftover containers of killed builds are not removed"
        );
        return;
    };
    let marker = root.join(STORAGE_OWNER_FILE);
    match tokio::fs::read_to_string(&marker).await {
        Ok(owner) if owner.trim() == host => {}
        Ok(owner) => {
            tracing::warn!(
                host,
                owner = owner.trim(),
                storage = %root.display(),
                "buildah storage belongs to another builder; not cleaning it"
            );
            return;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let claimed = async {
                tokio::fs::create_dir_all(root).await?;
                write_atomic(&marker, &format!("{host}\n")).await
            };
            if let Err(e) = claimed.await {
                tracing::warn!(host, storage = %root.display(), error = %e, "cannot mark the buildah storage as this builder's; not cleaning it");
                return;
            }
        }
        Err(e) => {
            tracing::warn!(host, file = %marker.display(), error = %e, "cannot read the buildah storage owner; not cleaning it");
            return;
        }
    }
    let buildah = Buildah::new(config.clone());
    kill_leftover_processes(&buildah).await;
    let containers = match buildah.containers().await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(host, error = %e, "cannot list leftover buildah containers");
            return;
        }
    };
    for c in containers.iter().filter(|c| c.builder) {
        match buildah.rm_container(&c.id).await {
            Ok(()) => tracing::info!(
                host,
                container = %c.containername,
                id = %c.id,
                image = %c.imagename,
                "removed a working container a killed build left behind"
            ),
            Err(e) => {
                tracing::warn!(host, container = %c.containername, error = %e, "cannot remove a leftover buildah container")
            }
        }
    }
}

/// SIGKILLs the buildah processes (and their children) still running on this storage, and
/// waits a few seconds for them to be gone, so their containers are no longer in use.
async fn kill_leftover_processes(buildah: &Buildah) {
    let pids = buildah.leftover_processes();
    if pids.is_empty() {
        return;
    }
    tracing::info!(
        ?pids,
        "killing buildah processes a killed build left running"
    );
    for &pid in &pids {
        // SAFETY: kill(2) on a pid read from /proc just now, of a process running buildah on
        // this builder's own storage (or a child of one).
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until && pids.iter().any(|p| is_running(*p)) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// True while `pid` exists and has not exited (an exited child waiting for init to reap it is
/// a zombie, state `Z`).
fn is_running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().next().map(|st| st != "Z"))
        })
        .unwrap_or(false)
}

async fn report(client: &KojiClient, task_id: i64, xml: &str) -> Outcome {
    let r = match wire::parse_response(xml.as_bytes()) {
        Ok(Ok(_)) => client.close_task(task_id, xml).await,
        Ok(Err(_)) => client.fail_task(task_id, xml).await,
        Err(e) => {
            tracing::error!(task_id, error = %e.0, "unreadable task result; dropping it");
            return Outcome::Rejected;
        }
    };
    match r {
        Ok(()) => Outcome::Reported,
        Err(e) if e.is_transport() || e.fault_code() == Some(FaultCode::Auth as i32) => {
            tracing::warn!(task_id, error = %e, "cannot report the task result now");
            Outcome::Pending(PathBuf::new())
        }
        Err(e) => {
            tracing::warn!(task_id, error = %e, "the hub refused the task result");
            Outcome::Rejected
        }
    }
}

/// Writes `data` to `path` through a temporary file, synced, then renamed.
async fn write_atomic(path: &Path, data: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let data = data.to_string();
    let tmp2 = tmp.clone();
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp2)?;
        f.write_all(data.as_bytes())?;
        f.sync_all()
    })
    .await
    .map_err(std::io::Error::other)??;
    tokio::fs::rename(&tmp, path).await
}

/// One task run: the handler, its live logs, its answer.
struct TaskJob {
    task_id: i64,
    handler: Arc<dyn TaskHandler>,
    params: Vec<Value>,
    kwargs: Struct,
    client: Arc<KojiClient>,
    workdir: PathBuf,
    results: PathBuf,
    cancel: CancellationToken,
}

impl TaskJob {
    async fn run(self) -> Outcome {
        let id = self.task_id;
        let _ = tokio::fs::remove_dir_all(&self.workdir).await;
        let procs = ProcessTracker::new();
        let uploader = Arc::new(AsyncMutex::new(LogUploader::new(
            self.client.clone(),
            id,
            self.workdir.clone(),
        )));
        let up_stop = CancellationToken::new();
        let up_task = {
            let uploader = uploader.clone();
            let stop = up_stop.clone();
            tokio::spawn(
                async move {
                    loop {
                        tokio::select! {
                            _ = stop.cancelled() => break,
                            _ = tokio::time::sleep(LOG_INTERVAL) => uploader.lock().await.sync().await,
                        }
                    }
                }
                .in_current_span(),
            )
        };

        let result = match tokio::fs::create_dir_all(&self.workdir).await {
            Err(e) => Some(Err(Fault::raw(
                FaultCode::Unknown as i32,
                format!(
                    "cannot create the task work directory {}: {e}",
                    self.workdir.display()
                ),
            ))),
            Ok(()) => {
                let ctx =
                    TaskContext::new(id, self.client.clone(), self.workdir.clone(), procs.clone());
                let fut =
                    std::panic::AssertUnwindSafe(self.handler.run(ctx, self.params, self.kwargs))
                        .catch_unwind();
                tokio::select! {
                    r = fut => Some(r.unwrap_or_else(|p| {
                        let msg = p
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| p.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "unknown panic".into());
                        tracing::error!(panic = %msg, "task handler panicked");
                        Err(Fault::raw(FaultCode::Unknown as i32, format!("the task handler crashed: {msg}")))
                    })),
                    _ = self.cancel.cancelled() => None,
                }
            }
        };

        let Some(result) = result else {
            // Canceled: the handler future is gone; kill what it started.
            up_stop.cancel();
            up_task.abort();
            procs.kill_all(KILL_GRACE).await;
            let _ = tokio::fs::remove_dir_all(&self.workdir).await;
            return Outcome::Canceled;
        };
        // Whatever the handler left running goes too.
        procs.kill_all(KILL_GRACE).await;

        let xml = match &result {
            Ok(v) => {
                tracing::info!("task finished");
                wire::write_response(v)
            }
            Err(f) => {
                tracing::warn!(code = f.code, error = %f.message, "task failed");
                wire::write_fault(f)
            }
        };
        let file = self.results.join(format!("{id}.xml"));
        let kept = match write_atomic(&file, &xml).await {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(path = %file.display(), error = %e, "cannot keep the task result on disk");
                false
            }
        };
        // Final log flush, then the answer.
        up_stop.cancel();
        let _ = up_task.await;
        uploader.lock().await.sync().await;

        // Even when canceled after the handler finished, report: the hub decides.
        let outcome = match report(&self.client, id, &xml).await {
            Outcome::Pending(_) if kept => Outcome::Pending(file),
            Outcome::Pending(_) => {
                tracing::error!(
                    "the task result is lost: the hub is unreachable and it could not be kept on disk"
                );
                Outcome::Rejected
            }
            other => {
                let _ = tokio::fs::remove_file(&file).await;
                other
            }
        };
        let _ = tokio::fs::remove_dir_all(&self.workdir).await;
        outcome
    }
}
