//! The task scheduler, with Koji 1.36's rules (`kojihub/scheduler.py`), and the signal that wakes
//! long-polling `host.getTasks(wait=N)` callers.
//!
//! Rules: FREE tasks (by priority, then age; at most 1000 per run) fall in bins
//! `"<channel_id>:<arch>"`; a host serves the bins of its enabled channels crossed with its arches
//! plus `noarch`. A host qualifies for a task when it is ready, runs fewer than its `maxjobs`
//! tasks, has `capacity - load > max(0, weight - capacity_overcommit)` (load = weight of its
//! non-waiting ASSIGNED/OPEN tasks) and has not refused the task. Among qualified hosts the one
//! with the lowest `load + ntasks + demand` wins. Timeouts: a host silent for `ready_timeout` is
//! marked not ready; a task ASSIGNED for `assign_timeout` without being opened is freed (a soft
//! refusal when the host checked in meanwhile); an OPEN task whose host was silent for
//! `host_timeout` is freed; soft refusals expire after `soft_refusal_timeout`.
//!
//! Unlike Koji, which runs the scheduler at most once a minute from `host.getTasks`, this hub
//! runs it in the transaction that creates, closes, frees or refuses a task, from
//! `host.getTasks`, and every `scheduler_interval` seconds, so a task is assigned as soon as a
//! host has room. Every write transaction is serialised by the store, which stands in for Koji's
//! `db_lock('scheduler')`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::store::tasks::{self, ASSIGNED, FREE, OPEN, SchedTask, TaskSpec};
use crate::store::{StoreError, hosts, now_ts};
use crate::xmlrpc::Fault;

use super::{Config, Ctx, Hub};

/// FREE tasks looked at per run (Koji's limit).
const FREE_TASK_LIMIT: i64 = 1000;

/// What one scheduler run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub assigned: usize,
    pub freed: usize,
}

/// A host with the scheduler's running totals.
struct Host {
    row: hosts::SchedHost,
    load: f64,
    ntasks: i64,
    demand: f64,
    maxjobs: i64,
    rank: f64,
}

impl Host {
    fn rerank(&mut self) {
        self.rank = self.load + self.ntasks as f64 + self.demand;
    }

    fn has_room(&self, min_avail: f64) -> bool {
        self.row.capacity - self.load > min_avail && self.ntasks < self.maxjobs
    }
}

fn bin(channel_id: i64, arch: &str) -> String {
    format!("{channel_id}:{arch}")
}

/// Runs the scheduler once (Koji's `TaskScheduler.run(force=True)`).
pub fn run(conn: &Connection, cfg: &Config) -> Result<Outcome, StoreError> {
    run_excluding(conn, cfg, &[])
}

/// Like [`run`], but never gives the listed `(task_id, host_id)` pairs back in this run (a host
/// that just freed a task is about to go away).
pub fn run_excluding(
    conn: &Connection,
    cfg: &Config,
    exclude: &[(i64, i64)],
) -> Result<Outcome, StoreError> {
    let mut out = Outcome::default();
    // A second pass schedules what the timeout checks of the first one freed.
    for _ in 0..2 {
        let now = now_ts();
        let active = tasks::active_for_scheduler(conn)?;
        let free = tasks::free_for_scheduler(conn, FREE_TASK_LIMIT)?;
        let mut hosts = load_hosts(conn, cfg, &active)?;
        check_hosts(conn, cfg, &mut hosts, now)?;
        out.assigned += schedule(conn, cfg, &free, &mut hosts, exclude, now)?;
        let freed = check_active(conn, cfg, &active, &hosts, now)?;
        out.freed += freed;
        if freed == 0 {
            break;
        }
    }
    Ok(out)
}

fn load_hosts(
    conn: &Connection,
    cfg: &Config,
    active: &[SchedTask],
) -> Result<Vec<Host>, StoreError> {
    let mut hosts: Vec<Host> = hosts::scheduler_hosts(conn)?
        .into_iter()
        .map(|row| {
            let maxjobs = row
                .data
                .as_deref()
                .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
                .and_then(|d| d.get("maxjobs").and_then(serde_json::Value::as_i64))
                .filter(|&m| m != 0)
                .unwrap_or(cfg.max_jobs);
            Host {
                row,
                load: 0.0,
                ntasks: 0,
                demand: 0.0,
                maxjobs,
                rank: 0.0,
            }
        })
        .collect();
    let index: HashMap<i64, usize> = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (h.row.id, i))
        .collect();
    for t in active {
        if let Some(&i) = t.host_id.as_ref().and_then(|h| index.get(h)) {
            if !t.waiting {
                hosts[i].load += t.weight;
            }
            hosts[i].ntasks += 1;
        }
    }
    Ok(hosts)
}

/// Hosts that stopped checking in are not ready.
fn check_hosts(
    conn: &Connection,
    cfg: &Config,
    hosts: &mut [Host],
    now: f64,
) -> Result<(), StoreError> {
    for h in hosts.iter_mut().filter(|h| h.row.ready) {
        let stale = h.row.update_ts.is_none_or(|t| now - t > cfg.ready_timeout);
        if stale {
            hosts::mark_not_ready(conn, h.row.id)?;
            log(conn, "Marking host not ready", None, Some(h.row.id))?;
            h.row.ready = false;
        }
    }
    Ok(())
}

/// Current refusals by task, dropping expired soft ones and those of tasks no longer pending.
fn refusals(
    conn: &Connection,
    cfg: &Config,
    now: f64,
) -> Result<HashMap<i64, HashSet<i64>>, StoreError> {
    let mut out: HashMap<i64, HashSet<i64>> = HashMap::new();
    for r in hosts::refusals(conn)? {
        let expired = r.soft && r.ts < now - cfg.soft_refusal_timeout;
        let pending = matches!(r.task_state, FREE | OPEN | ASSIGNED);
        if expired || !pending {
            hosts::delete_refusal(conn, r.id)?;
        } else {
            out.entry(r.task_id).or_default().insert(r.host_id);
        }
    }
    Ok(out)
}

fn schedule(
    conn: &Connection,
    cfg: &Config,
    free: &[SchedTask],
    hosts: &mut [Host],
    exclude: &[(i64, i64)],
    now: f64,
) -> Result<usize, StoreError> {
    if free.is_empty() || hosts.is_empty() {
        return Ok(0);
    }
    let mut bins: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, h) in hosts.iter().enumerate() {
        for chan in &h.row.channels {
            for arch in h.row.arches.split_whitespace().chain(["noarch"]) {
                let list = bins.entry(bin(*chan, arch)).or_default();
                if !list.contains(&i) {
                    list.push(i);
                }
            }
        }
    }
    let refused = refusals(conn, cfg, now)?;
    let none = HashSet::new();
    let mut options: Vec<Vec<usize>> = Vec::with_capacity(free.len());
    for t in free {
        let min_avail = (t.weight - cfg.capacity_overcommit).max(0.0);
        let refused_by = refused.get(&t.id).unwrap_or(&none);
        let candidates: Vec<usize> = bins
            .get(&bin(t.channel_id, &t.arch))
            .map(|list| {
                list.iter()
                    .copied()
                    .filter(|&i| {
                        let h = &hosts[i];
                        h.row.ready
                            && h.has_room(min_avail)
                            && !refused_by.contains(&h.row.id)
                            && !exclude.contains(&(t.id, h.row.id))
                    })
                    .collect()
            })
            .unwrap_or_default();
        for &i in &candidates {
            hosts[i].demand += t.weight / candidates.len() as f64;
        }
        options.push(candidates);
    }
    let total: f64 = hosts.iter().map(|h| h.demand).sum();
    for h in hosts.iter_mut() {
        if total > 0.0 {
            h.demand /= total;
        }
        h.rerank();
    }
    let mut assigned = 0;
    for (t, mut candidates) in free.iter().zip(options) {
        let min_avail = (t.weight - cfg.capacity_overcommit).max(0.0);
        // Stable, like Python's sort: ties keep host id order.
        candidates.sort_by(|&a, &b| hosts[a].rank.total_cmp(&hosts[b].rank));
        for i in candidates {
            if hosts[i].has_room(min_avail) {
                if assign(conn, t.id, hosts[i].row.id, false, false)? {
                    assigned += 1;
                    let h = &mut hosts[i];
                    h.load += t.weight;
                    h.ntasks += 1;
                    h.rerank();
                }
                break;
            }
        }
    }
    Ok(assigned)
}

/// Frees tasks whose assignment or host timed out; returns how many.
fn check_active(
    conn: &Connection,
    cfg: &Config,
    active: &[SchedTask],
    hosts: &[Host],
    now: f64,
) -> Result<usize, StoreError> {
    let mut runs: HashMap<i64, Vec<hosts::Run>> = HashMap::new();
    for r in hosts::active_runs(conn)? {
        runs.entry(r.task_id).or_default().push(r);
    }
    let by_id: HashMap<i64, &Host> = hosts.iter().map(|h| (h.row.id, h)).collect();
    let mut freed = 0;
    for t in active {
        let Some(host) = t.host_id.and_then(|h| by_id.get(&h)) else {
            continue;
        };
        let Some(task_runs) = runs.get(&t.id) else {
            // Assigned without a run record: an override, left alone.
            continue;
        };
        let first_run = task_runs
            .iter()
            .map(|r| r.create_ts)
            .fold(f64::INFINITY, f64::min);
        let host_id = host.row.id;
        if t.state == ASSIGNED {
            if now - first_run > cfg.assign_timeout {
                if host.row.update_ts.is_some_and(|u| u > first_run) {
                    // The host checked in but did not take it: an implicit refusal.
                    refuse(conn, host_id, t.id, true, false, "assignment timeout")?;
                }
                log(conn, "Task assignment timeout", Some(t.id), Some(host_id))?;
                tasks::free(conn, t.id)?;
                freed += 1;
            }
        } else if t.state == OPEN {
            let age = now - host.row.update_ts.unwrap_or(first_run);
            if age > cfg.host_timeout {
                log(
                    conn,
                    "Freeing task from unresponsive host",
                    Some(t.id),
                    Some(host_id),
                )?;
                tasks::free(conn, t.id)?;
                freed += 1;
            }
        }
    }
    hosts::end_stale_runs(conn)?;
    Ok(freed)
}

/// Koji's `TaskScheduler.assign`: ASSIGNED to the host, older runs ended, a new run recorded
/// unless `override_` (then the scheduler never takes it back).
pub fn assign(
    conn: &Connection,
    task_id: i64,
    host_id: i64,
    force: bool,
    override_: bool,
) -> Result<bool, StoreError> {
    if !tasks::lock(conn, task_id, host_id, ASSIGNED, force)? {
        log(conn, "Assignment failed", Some(task_id), Some(host_id))?;
        return Ok(false);
    }
    let msg = if override_ {
        "Assigning task (override)"
    } else {
        "Assigning task"
    };
    log(conn, msg, Some(task_id), Some(host_id))?;
    hosts::end_runs(conn, task_id)?;
    if !override_ {
        hosts::add_run(conn, task_id, host_id)?;
    }
    Ok(true)
}

/// Koji's `set_refusal`.
pub fn refuse(
    conn: &Connection,
    host_id: i64,
    task_id: i64,
    soft: bool,
    by_host: bool,
    msg: &str,
) -> Result<(), StoreError> {
    hosts::set_refusal(conn, host_id, task_id, soft, by_host, msg)?;
    log(
        conn,
        &format!("Host refused task: {msg}"),
        Some(task_id),
        Some(host_id),
    )
}

/// Logs to the hub log and to the scheduler log table (`koji scheduler-logs`).
fn log(
    conn: &Connection,
    msg: &str,
    task_id: Option<i64>,
    host_id: Option<i64>,
) -> Result<(), StoreError> {
    tracing::info!(task_id, host_id, "scheduler: {msg}");
    hosts::log(conn, msg, task_id, host_id)
}

// ---------------------------------------------------------------------------------------------
// Hub-side helpers

/// Runs the scheduler inside the caller's transaction; long-pollers wake after the commit.
pub fn run_in(ctx: &mut Ctx<'_>) -> Result<Outcome, Fault> {
    run_in_excluding(ctx, &[])
}

pub fn run_in_excluding(ctx: &mut Ctx<'_>, exclude: &[(i64, i64)]) -> Result<Outcome, Fault> {
    let o = run_excluding(ctx.db, &ctx.hub.config, exclude)?;
    if o.assigned > 0 {
        ctx.after.assigned = true;
    }
    Ok(o)
}

/// Creates a task (Koji's `make_task`) and schedules it at once. For hub methods that start
/// work (`buildContainer`, `host.subtask`): the owner defaults to the caller for top-level tasks.
pub fn create_task(ctx: &mut Ctx<'_>, spec: &TaskSpec) -> Result<i64, Fault> {
    let mut spec = spec.clone();
    if spec.parent.is_none() && spec.owner.is_none() {
        spec.owner = ctx.auth.user_id();
    }
    let id = tasks::make(ctx.db, &spec)?;
    if spec.assign.is_some() {
        ctx.after.assigned = true;
    }
    run_in(ctx)?;
    Ok(id)
}

/// Runs the scheduler every `scheduler_interval` seconds on a blocking thread, until the
/// returned handle is aborted. `None` when the interval is 0.
pub fn spawn_periodic(hub: Arc<Hub>) -> Option<tokio::task::JoinHandle<()>> {
    let secs = hub.config.scheduler_interval;
    if secs <= 0.0 || !secs.is_finite() {
        return None;
    }
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs_f64(secs));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let h = hub.clone();
            let r = tokio::task::spawn_blocking(move || {
                let o = h.store.write(|tx| run(tx, &h.config));
                if let Ok(o) = &o
                    && o.assigned > 0
                {
                    h.signal.notify();
                }
                o
            })
            .await;
            match r {
                Ok(Ok(o)) if o != Outcome::default() => {
                    tracing::debug!(
                        assigned = o.assigned,
                        freed = o.freed,
                        "periodic scheduler run"
                    );
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "periodic scheduler run failed"),
                Err(e) => tracing::error!(error = %e, "periodic scheduler run panicked"),
            }
        }
    }))
}

// ---------------------------------------------------------------------------------------------
// Wake-ups for long-polling `host.getTasks(wait=N)`

/// A generation counter bumped after every commit that assigned a task.
#[derive(Default)]
pub struct Signal {
    generation: Mutex<u64>,
    cv: Condvar,
    waiters: AtomicUsize,
    /// Set at shutdown: waiters return at once instead of holding their threads.
    closed: std::sync::atomic::AtomicBool,
}

/// A slot among the concurrent waiters; released on drop.
pub struct Waiter<'a>(&'a Signal);

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        self.0.waiters.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Signal {
    /// Wakes every waiter; call after the assigning transaction committed.
    pub fn notify(&self) {
        let mut g = self.generation.lock().unwrap_or_else(|p| p.into_inner());
        *g += 1;
        self.cv.notify_all();
    }

    /// Ends every current and future wait (hub shutdown).
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.notify();
    }

    pub fn generation(&self) -> u64 {
        *self.generation.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a waiter slot unless `max` are taken.
    pub fn enter(&self, max: usize) -> Option<Waiter<'_>> {
        let prev = self.waiters.fetch_add(1, Ordering::AcqRel);
        if prev >= max {
            self.waiters.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Waiter(self))
    }

    /// Blocks until the generation differs from `seen` or `deadline` passes; returns the
    /// generation then.
    pub fn wait_change(&self, seen: u64, deadline: Instant) -> u64 {
        let mut g = self.generation.lock().unwrap_or_else(|p| p.into_inner());
        while *g == seen && !self.closed.load(Ordering::Acquire) {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            g = match self.cv.wait_timeout(g, deadline - now) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
        *g
    }
}
