//! `GET /metrics`: Prometheus text exposition format 0.0.4 (`plugin-spec/metrics.md`).
//!
//! Two sources. What the hub observes as it runs lives here, in atomics and small locked maps:
//! XML-RPC calls and their latency (recorded by `dispatch`), task queue waits and durations and
//! pushed bytes (recorded by the host protocol as [`Observation`]s in `AfterCommit`, applied only
//! after the transaction committed). What the database knows is read at scrape time through
//! [`crate::store::metrics::snapshot`]: tasks by state and method, builds by state, active
//! sessions and the hosts, all from trigger-kept counts, an index range or small tables.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::store::metrics::Snapshot;
use crate::store::records::build_state_name;
use crate::store::tasks::{self, Canceled, Timing};
use crate::store::{self as store_mod, now_ts};
use crate::xmlrpc::Value;

use super::{AfterCommit, Hub};

/// The exposition format's content type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The `method` label of XML-RPC calls to names the hub does not know (so that arbitrary names
/// cannot create series), and of requests that could not be parsed.
pub const UNKNOWN_METHOD: &str = "unknown";

/// The `method` label of task methods beyond [`MAX_TASK_METHODS`] distinct ones.
pub const OTHER_TASK_METHOD: &str = "other";

/// Most distinct task methods the task histograms keep apart (task methods are free text an
/// admin may pass to `makeTask`).
pub const MAX_TASK_METHODS: usize = 64;

/// XML-RPC call latency buckets, seconds (`host.getTasks(wait=N)` long-polls reach the top).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// FREE -> OPEN buckets, seconds.
pub const QUEUE_WAIT_BUCKETS: &[f64] = &[
    0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0,
    21600.0, 86400.0,
];

/// OPEN -> end buckets, seconds (the default build time limit is 3 h, the maximum 6 h).
pub const DURATION_BUCKETS: &[f64] = &[
    0.1, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 10800.0,
    21600.0, 43200.0, 86400.0,
];

/// A Prometheus histogram: per-bucket counts (not cumulative; summed when rendered, so `_count`
/// always equals the `+Inf` bucket) and the sum in microseconds.
pub struct Histogram {
    bounds: &'static [f64],
    buckets: Box<[AtomicU64]>,
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_us: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, seconds: f64) {
        let s = if seconds.is_finite() && seconds > 0.0 {
            seconds
        } else {
            0.0
        };
        let i = self.bounds.partition_point(|b| *b < s);
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_us.fetch_add((s * 1e6).round() as u64, Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &[(&str, &str)]) {
        let mut cumulative = 0u64;
        let bucket = format!("{name}_bucket");
        for (i, b) in self.buckets.iter().enumerate() {
            cumulative += b.load(Relaxed);
            let le = match self.bounds.get(i) {
                Some(bound) => fmt_float(*bound),
                None => "+Inf".to_string(),
            };
            let mut with_le: Vec<(&str, &str)> = labels.to_vec();
            with_le.push(("le", &le));
            sample(out, &bucket, &with_le, cumulative);
        }
        sample_f64(
            out,
            &format!("{name}_sum"),
            labels,
            self.sum_us.load(Relaxed) as f64 / 1e6,
        );
        sample(out, &format!("{name}_count"), labels, cumulative);
    }
}

/// Calls of one XML-RPC method.
struct CallStats {
    name: &'static str,
    ok: AtomicU64,
    faults: Mutex<BTreeMap<i32, u64>>,
    latency: Histogram,
}

/// Something a handler saw happen in its transaction; applied once that transaction committed.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    /// A task went OPEN `seconds` after it was created.
    QueueWait { method: String, seconds: f64 },
    /// A task that was OPEN ended (`state`: CLOSED, FAILED or CANCELED) after `seconds`.
    TaskEnded {
        method: String,
        state: &'static str,
        seconds: f64,
    },
    /// A `createContainer` task closed with `pushed_bytes` in its result.
    PushedBytes(u64),
}

/// The hub's in-process metrics.
pub struct Metrics {
    index: HashMap<&'static str, usize>,
    calls: Vec<CallStats>,
    queue_wait: Mutex<BTreeMap<String, Histogram>>,
    task_duration: Mutex<BTreeMap<(String, &'static str), Histogram>>,
    pushed_bytes: AtomicU64,
}

impl Metrics {
    /// `methods`: the registry's method names; `multiCall`, `system.multicall` and
    /// [`UNKNOWN_METHOD`] are added.
    pub fn new(methods: impl IntoIterator<Item = &'static str>) -> Metrics {
        let mut index = HashMap::new();
        let mut calls = Vec::new();
        let extra = ["multiCall", "system.multicall", UNKNOWN_METHOD];
        for name in methods.into_iter().chain(extra) {
            if index.contains_key(name) {
                continue;
            }
            index.insert(name, calls.len());
            calls.push(CallStats {
                name,
                ok: AtomicU64::new(0),
                faults: Mutex::new(BTreeMap::new()),
                latency: Histogram::new(LATENCY_BUCKETS),
            });
        }
        Metrics {
            index,
            calls,
            queue_wait: Mutex::new(BTreeMap::new()),
            task_duration: Mutex::new(BTreeMap::new()),
            pushed_bytes: AtomicU64::new(0),
        }
    }

    /// One XML-RPC call (a multiCall's entries count each on their own as well); names the hub
    /// does not know are counted as [`UNKNOWN_METHOD`].
    pub fn record_call(&self, method: &str, fault: Option<i32>, elapsed: Duration) {
        let i = self
            .index
            .get(method)
            .or_else(|| self.index.get(UNKNOWN_METHOD))
            .copied()
            .unwrap_or(0);
        let Some(c) = self.calls.get(i) else {
            return;
        };
        match fault {
            None => {
                c.ok.fetch_add(1, Relaxed);
            }
            Some(code) => {
                *c.faults
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(code)
                    .or_insert(0) += 1;
            }
        }
        c.latency.observe(elapsed.as_secs_f64());
    }

    pub fn observe(&self, o: Observation) {
        match o {
            Observation::QueueWait { method, seconds } => {
                let mut m = self.queue_wait.lock().unwrap_or_else(|p| p.into_inner());
                let known = m.contains_key(&method);
                let key = capped(known, m.len(), method);
                m.entry(key)
                    .or_insert_with(|| Histogram::new(QUEUE_WAIT_BUCKETS))
                    .observe(seconds);
            }
            Observation::TaskEnded {
                method,
                state,
                seconds,
            } => {
                let mut m = self.task_duration.lock().unwrap_or_else(|p| p.into_inner());
                let methods: std::collections::BTreeSet<&String> =
                    m.keys().map(|(k, _)| k).collect();
                let method = capped(methods.contains(&method), methods.len(), method);
                m.entry((method, state))
                    .or_insert_with(|| Histogram::new(DURATION_BUCKETS))
                    .observe(seconds);
            }
            Observation::PushedBytes(n) => {
                self.pushed_bytes.fetch_add(n, Relaxed);
            }
        }
    }

    pub fn observe_all(&self, observations: Vec<Observation>) {
        for o in observations {
            self.observe(o);
        }
    }

    /// The whole exposition: in-process metrics plus the store's `snap`.
    pub fn render(&self, snap: &Snapshot) -> String {
        let mut out = String::with_capacity(16 * 1024);
        let o = &mut out;

        let name = "containerbuild_xmlrpc_calls_total";
        header(
            o,
            name,
            "counter",
            "XML-RPC calls by method and fault code (0: no fault); multiCall entries count on their own too.",
        );
        for c in &self.calls {
            let ok = c.ok.load(Relaxed);
            let faults = c.faults.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if ok == 0 && faults.is_empty() {
                continue;
            }
            sample(o, name, &[("method", c.name), ("fault", "0")], ok);
            for (code, n) in faults {
                sample(
                    o,
                    name,
                    &[("method", c.name), ("fault", &code.to_string())],
                    n,
                );
            }
        }

        let name = "containerbuild_xmlrpc_call_duration_seconds";
        header(
            o,
            name,
            "histogram",
            "XML-RPC call latency by method, from the parsed request to the answer (long-polls included).",
        );
        for c in &self.calls {
            if c.ok.load(Relaxed) == 0
                && c.faults
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .is_empty()
            {
                continue;
            }
            c.latency.render(o, name, &[("method", c.name)]);
        }

        let name = "containerbuild_tasks";
        header(o, name, "gauge", "Tasks by state and method.");
        for (state, method, n) in &snap.tasks {
            sample(
                o,
                name,
                &[("state", tasks::state_name(*state)), ("method", method)],
                (*n).max(0) as u64,
            );
        }

        let name = "containerbuild_task_queue_wait_seconds";
        header(
            o,
            name,
            "histogram",
            "Seconds from task creation to OPEN (host.openTask), by task method.",
        );
        for (method, h) in self
            .queue_wait
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            h.render(o, name, &[("method", method)]);
        }

        let name = "containerbuild_task_duration_seconds";
        header(
            o,
            name,
            "histogram",
            "Seconds from OPEN to CLOSED, FAILED or CANCELED, by task method and end state.",
        );
        for ((method, state), h) in self
            .task_duration
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            h.render(o, name, &[("method", method), ("state", state)]);
        }

        let name = "containerbuild_builds";
        header(o, name, "gauge", "Koji builds by state.");
        for (state, n) in &snap.builds {
            sample(
                o,
                name,
                &[("state", build_state_name(*state))],
                (*n).max(0) as u64,
            );
        }

        let name = "containerbuild_pushed_bytes_total";
        header(
            o,
            name,
            "counter",
            "Bytes pushed to the registry, from the pushed_bytes field of closed createContainer results.",
        );
        sample(o, name, &[], self.pushed_bytes.load(Relaxed));

        let name = "containerbuild_sessions_active";
        header(
            o,
            name,
            "gauge",
            "Login sessions (subsessions included) not logged out and not expired.",
        );
        sample(o, name, &[], snap.active_sessions.max(0) as u64);

        type HostGauge = (
            &'static str,
            &'static str,
            fn(&store_mod::metrics::HostGauges) -> f64,
        );
        let host_gauges: [HostGauge; 4] = [
            (
                "containerbuild_host_ready",
                "1 if the host reported ready within ready_timeout.",
                |h| f64::from(u8::from(h.ready)),
            ),
            (
                "containerbuild_host_enabled",
                "1 if the host is enabled.",
                |h| f64::from(u8::from(h.enabled)),
            ),
            (
                "containerbuild_host_task_load",
                "The task load the host last reported (host.updateHost).",
                |h| h.task_load,
            ),
            (
                "containerbuild_host_capacity",
                "The host's capacity (sum of task weights it takes).",
                |h| h.capacity,
            ),
        ];
        for (name, help, get) in host_gauges {
            header(o, name, "gauge", help);
            for h in &snap.hosts {
                sample_f64(o, name, &[("host", &h.name)], get(h));
            }
        }
        out
    }
}

/// `method`, or [`OTHER_TASK_METHOD`] for a new one when there are [`MAX_TASK_METHODS`] already.
fn capped(known: bool, count: usize, method: String) -> String {
    if !known && count >= MAX_TASK_METHODS {
        OTHER_TASK_METHOD.to_string()
    } else {
        method
    }
}

// ---------------------------------------------------------------------------------------------
// What handlers record (into `AfterCommit`, applied after the commit)

/// `host.openTask` moved the task to OPEN (its `start_ts` is the open time).
pub fn task_opened(after: &mut AfterCommit, t: &Timing) {
    let opened = t.start_ts.unwrap_or_else(now_ts);
    after.metrics.push(Observation::QueueWait {
        method: t.method.clone(),
        seconds: (opened - t.create_ts).max(0.0),
    });
}

/// `host.closeTask` / `host.failTask` ended the OPEN task `t` with `state` and `result` (the
/// task's answer; for a closed `createContainer`, its `pushed_bytes` is counted).
pub fn task_ended(after: &mut AfterCommit, t: &Timing, state: i64, result: Option<&Value>) {
    if let Some(start) = t.start_ts {
        after.metrics.push(Observation::TaskEnded {
            method: t.method.clone(),
            state: tasks::state_name(state),
            seconds: (now_ts() - start).max(0.0),
        });
    }
    if state == tasks::CLOSED
        && t.method == "createContainer"
        && let Some(n) = result.and_then(pushed_bytes)
    {
        after.metrics.push(Observation::PushedBytes(n));
    }
}

/// Tasks a cancel ended; those that were OPEN count towards the duration histogram.
pub fn tasks_canceled(after: &mut AfterCommit, canceled: &[Canceled]) {
    for c in canceled {
        if let Some(seconds) = c.open_for {
            after.metrics.push(Observation::TaskEnded {
                method: c.method.clone(),
                state: tasks::state_name(tasks::CANCELED),
                seconds,
            });
        }
    }
}

/// The non-negative integer `pushed_bytes` member of a task result struct.
pub fn pushed_bytes(result: &Value) -> Option<u64> {
    match result.as_struct()?.get("pushed_bytes")? {
        Value::Int(n) if *n > 0 => Some(*n as u64),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP

/// `GET /metrics`.
pub async fn serve(State(hub): State<Arc<Hub>>) -> Response {
    let r = tokio::task::spawn_blocking(move || {
        let minutes = hub.config.session_renewal_timeout;
        let timeout = (minutes > 0.0).then_some(minutes * 60.0);
        let snap = hub
            .store
            .read(|c| store_mod::metrics::snapshot(c, now_ts(), timeout))?;
        Ok::<_, store_mod::StoreError>(hub.metrics.render(&snap))
    })
    .await;
    match r {
        Ok(Ok(text)) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "metrics: store query failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "text/plain")],
                "metrics unavailable; see the hub log\n",
            )
                .into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "metrics: scrape panicked");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "text/plain")],
                "metrics unavailable; see the hub log\n",
            )
                .into_response()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Text exposition format 0.0.4

/// A label value with `\`, `"` and newline escaped.
pub fn escape_label(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// HELP text with `\` and newline escaped.
fn escape_help(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// A float as the format spells it (`+Inf`, `-Inf`, `NaN`, else the shortest decimal).
pub fn fmt_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    out.push_str("# HELP ");
    out.push_str(name);
    out.push(' ');
    escape_help(help, out);
    out.push('\n');
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn series(out: &mut String, name: &str, labels: &[(&str, &str)]) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(k);
            out.push_str("=\"");
            escape_label(v, out);
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], v: u64) {
    series(out, name, labels);
    let _ = writeln!(out, "{v}");
}

fn sample_f64(out: &mut String, name: &str, labels: &[(&str, &str)], v: f64) {
    series(out, name, labels);
    out.push_str(&fmt_float(v));
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::metrics::HostGauges;

    #[test]
    fn label_values_are_escaped() {
        let mut s = String::new();
        escape_label("a\\b\"c\nd é", &mut s);
        assert_eq!(s, r#"a\\b\"c\nd é"#);
        let mut s = String::new();
        series(&mut s, "m", &[("host", "x\"y"), ("k", "\\")]);
        assert_eq!(s, r#"m{host="x\"y",k="\\"} "#);
        let mut s = String::new();
        header(&mut s, "m", "gauge", "two\nlines \\ \"q\"");
        assert_eq!(s, "# HELP m two\\nlines \\\\ \"q\"\n# TYPE m gauge\n");
    }

    #[test]
    fn floats_as_the_format_spells_them() {
        assert_eq!(fmt_float(f64::INFINITY), "+Inf");
        assert_eq!(fmt_float(f64::NEG_INFINITY), "-Inf");
        assert_eq!(fmt_float(f64::NAN), "NaN");
        assert_eq!(fmt_float(1.0), "1");
        assert_eq!(fmt_float(0.0005), "0.0005");
        assert_eq!(fmt_float(2.5), "2.5");
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_le_inclusive() {
        let h = Histogram::new(&[1.0, 2.0]);
        for v in [0.5, 1.0, 1.5, 3.0, f64::NAN] {
            h.observe(v);
        }
        let mut s = String::new();
        h.render(&mut s, "x", &[("method", "m")]);
        assert_eq!(
            s,
            "x_bucket{method=\"m\",le=\"1\"} 3\n\
             x_bucket{method=\"m\",le=\"2\"} 4\n\
             x_bucket{method=\"m\",le=\"+Inf\"} 5\n\
             x_sum{method=\"m\"} 6\n\
             x_count{method=\"m\"} 5\n"
        );
    }

    /// Every line is a comment or `name{labels} value`; each family has HELP then TYPE before
    /// its samples; unknown call names fold into `unknown`.
    #[test]
    fn exposition_format() {
        let m = Metrics::new(["getTaskInfo", "host.openTask"]);
        m.record_call("getTaskInfo", None, Duration::from_millis(2));
        m.record_call("getTaskInfo", Some(1000), Duration::from_millis(1));
        m.record_call("no.such\"method", Some(1000), Duration::ZERO);
        m.observe(Observation::QueueWait {
            method: "sleep".into(),
            seconds: 3.0,
        });
        m.observe(Observation::TaskEnded {
            method: "sleep".into(),
            state: "CLOSED",
            seconds: 12.0,
        });
        m.observe(Observation::PushedBytes(1234));
        m.observe(Observation::PushedBytes(6));
        let snap = Snapshot {
            tasks: vec![(0, "sleep".into(), 2), (2, "we\"ird\nmethod".into(), 1)],
            builds: vec![(1, 4), (3, 1)],
            active_sessions: 3,
            hosts: vec![HostGauges {
                name: "b\\1".into(),
                ready: true,
                enabled: false,
                task_load: 1.5,
                capacity: 2.0,
            }],
        };
        let text = m.render(&snap);
        let mut typed: Vec<String> = Vec::new();
        let mut helped: Vec<String> = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                helped.push(rest.split(' ').next().unwrap().to_string());
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut p = rest.split(' ');
                let name = p.next().unwrap().to_string();
                assert_eq!(helped.last(), Some(&name), "TYPE after HELP: {line}");
                assert!(
                    ["counter", "gauge", "histogram"].contains(&p.next().unwrap()),
                    "{line}"
                );
                typed.push(name);
            } else {
                let (series, value) = line.rsplit_once(' ').unwrap();
                assert!(
                    value.parse::<f64>().is_ok() || value == "+Inf",
                    "value of {line}"
                );
                let name = series.split('{').next().unwrap();
                assert!(name.starts_with("containerbuild_"), "{line}");
                let family = typed.last().expect("sample before any TYPE");
                assert!(
                    name == family
                        || ["_bucket", "_sum", "_count"]
                            .iter()
                            .any(|s| name == format!("{family}{s}")),
                    "{name} under {family}"
                );
            }
        }
        for needle in [
            "containerbuild_xmlrpc_calls_total{method=\"getTaskInfo\",fault=\"0\"} 1\n",
            "containerbuild_xmlrpc_calls_total{method=\"getTaskInfo\",fault=\"1000\"} 1\n",
            "containerbuild_xmlrpc_calls_total{method=\"unknown\",fault=\"1000\"} 1\n",
            "containerbuild_xmlrpc_call_duration_seconds_bucket{method=\"getTaskInfo\",le=\"0.001\"} 1\n",
            "containerbuild_xmlrpc_call_duration_seconds_bucket{method=\"getTaskInfo\",le=\"0.0025\"} 2\n",
            "containerbuild_xmlrpc_call_duration_seconds_count{method=\"getTaskInfo\"} 2\n",
            "containerbuild_xmlrpc_call_duration_seconds_sum{method=\"getTaskInfo\"} 0.003\n",
            "containerbuild_tasks{state=\"FREE\",method=\"sleep\"} 2\n",
            "containerbuild_tasks{state=\"CLOSED\",method=\"we\\\"ird\\nmethod\"} 1\n",
            "containerbuild_task_queue_wait_seconds_bucket{method=\"sleep\",le=\"2.5\"} 0\n",
            "containerbuild_task_queue_wait_seconds_bucket{method=\"sleep\",le=\"5\"} 1\n",
            "containerbuild_task_duration_seconds_count{method=\"sleep\",state=\"CLOSED\"} 1\n",
            "containerbuild_builds{state=\"COMPLETE\"} 4\n",
            "containerbuild_builds{state=\"FAILED\"} 1\n",
            "containerbuild_pushed_bytes_total 1240\n",
            "containerbuild_sessions_active 3\n",
            "containerbuild_host_ready{host=\"b\\\\1\"} 1\n",
            "containerbuild_host_enabled{host=\"b\\\\1\"} 0\n",
            "containerbuild_host_task_load{host=\"b\\\\1\"} 1.5\n",
            "containerbuild_host_capacity{host=\"b\\\\1\"} 2\n",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        // Methods never called have no series.
        assert!(!text.contains("method=\"host.openTask\""), "{text}");
        assert!(!text.contains("no.such"), "{text}");
    }

    #[test]
    fn task_method_labels_are_capped() {
        let m = Metrics::new([]);
        for i in 0..(MAX_TASK_METHODS + 5) {
            m.observe(Observation::QueueWait {
                method: format!("m{i}"),
                seconds: 1.0,
            });
        }
        let q = m.queue_wait.lock().unwrap();
        assert_eq!(q.len(), MAX_TASK_METHODS + 1);
        assert_eq!(
            q[OTHER_TASK_METHOD]
                .buckets
                .iter()
                .map(|b| b.load(Relaxed))
                .sum::<u64>(),
            5
        );
    }

    #[test]
    fn pushed_bytes_only_from_positive_ints() {
        let s = |v: Value| Value::Struct(crate::xmlrpc::Struct::new().with("pushed_bytes", v));
        assert_eq!(pushed_bytes(&s(Value::Int(5))), Some(5));
        assert_eq!(pushed_bytes(&s(Value::Int(-5))), None);
        assert_eq!(pushed_bytes(&s(Value::str("5"))), None);
        assert_eq!(pushed_bytes(&Value::Nil), None);
    }
}
