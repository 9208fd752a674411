//! The builder daemon against the hub: `containerbuild builder` as a separate process (and the
//! embedded builders of `serve --builders N`) taking Koji `sleep` tasks, live logs, cancel, two
//! hosts sharing work, clean shutdown.
//!
//! Tasks are created with `koji call --python makeTask "'sleep'" "[N]"` when the hub has
//! `makeTask`; otherwise they are inserted with the store API (like tests/koji_tasks.rs) and the
//! hub's periodic scheduler assigns them.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{BuilderProc, Hub, call_xml, host_password_file, host_workdir};
use common::{host_id, task_state, wait_for};
use containerbuild::store::{Store, StoreError, records, tasks, users};
use containerbuild::xmlrpc::Value;

/// Koji task states.
const OPEN: i64 = 1;
const CLOSED: i64 = 2;
const CANCELED: i64 = 3;

/// Starts builders for hosts registered with `koji add-host NAME x86_64`.
struct Builder;

impl Builder {
    /// Registers host `name` (x86_64, container channel, password) and starts its builder.
    fn start(hub: &Hub, name: &str) -> BuilderProc {
        BuilderProc::start(hub, name, &["x86_64"], &[])
    }

    /// Starts `containerbuild builder` for an already registered host.
    fn spawn(hub: &Hub, name: &str, extra: &[&str]) -> BuilderProc {
        BuilderProc::spawn(hub, name, extra)
    }
}

fn password_file(hub: &Hub, name: &str) -> PathBuf {
    host_password_file(hub, name)
}

fn workdir(hub: &Hub, name: &str) -> PathBuf {
    host_workdir(hub, name)
}

fn wait_state(hub: &Hub, id: i64, want: i64, timeout: Duration) -> Option<i64> {
    wait_for(timeout, &format!("task {id} to reach state {want}"), || {
        let (s, h) = task_state(hub, id);
        (s == want).then_some(h)
    })
}

/// Waits until `koji list-hosts` shows `name` enabled and ready.
fn wait_ready(hub: &Hub, name: &str) {
    wait_for(Duration::from_secs(30), &format!("{name} ready"), || {
        let (code, out, _) = hub.koji(&["list-hosts"]);
        (code == 0
            && out.lines().any(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                cols.len() > 2 && cols[0] == name && cols[1] == "Y" && cols[2] == "Y"
            }))
        .then_some(())
    });
}

/// Creates a `sleep` task for `secs` seconds and returns its id.
fn make_sleep_task(hub: &Hub, secs: i64) -> i64 {
    let arg = format!("[{secs}]");
    let (code, out, err) = hub.koji(&["call", "--python", "makeTask", "'sleep'", &arg]);
    if code == 0 {
        return out
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("makeTask answer {out:?}: {e}"));
    }
    assert!(
        err.contains("Invalid method: makeTask"),
        "makeTask failed: {err}"
    );
    insert_task(hub, "sleep", &[Value::Int(secs)])
}

/// Inserts a FREE task in the `default` channel, owned by kojiadmin, with the store API.
fn insert_task(hub: &Hub, method: &str, params: &[Value]) -> i64 {
    let store = Store::open(&hub.data_dir()).expect("open store");
    store
        .write(|tx| -> Result<i64, StoreError> {
            let owner = users::get(tx, &users::UserRef::Name(common::ADMIN))?
                .expect("admin exists")
                .id;
            let channel_id = records::channel_id(tx, "default")?.expect("default channel");
            tasks::create(
                tx,
                &tasks::NewTask {
                    method: method.into(),
                    arch: "noarch".into(),
                    owner,
                    channel_id,
                    priority: 20,
                    parent: None,
                    label: None,
                    request_xml: containerbuild::xmlrpc::wire::write_call(method, params),
                },
            )
        })
        .expect("create task")
}

/// Pids of live processes whose command line is exactly `argv` (what `pgrep -fx` matches).
fn pids_with_cmdline(argv: &[&str]) -> Vec<i32> {
    let want: Vec<u8> = argv
        .iter()
        .flat_map(|a| a.bytes().chain(std::iter::once(0)))
        .collect();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want) {
            out.push(pid);
        }
    }
    out
}

#[test]
fn builder_runs_a_sleep_task_with_live_logs() {
    let hub = hub!();
    let b1 = Builder::start(&hub, "b1");
    wait_ready(&hub, "b1");

    let id = make_sleep_task(&hub, 6);
    let ids = id.to_string();
    let host = wait_state(&hub, id, OPEN, Duration::from_secs(30));
    assert_eq!(host, Some(host_id(&hub, "b1")), "task runs on b1");

    // While it runs, sleep.log is task output and grows.
    let list = call_xml("listTaskOutput", &[&format!("<int>{id}</int>")]);
    wait_for(
        Duration::from_secs(5),
        "sleep.log listed while OPEN",
        || {
            let (_, _, body) = hub.raw_call(&list);
            body.contains("<string>sleep.log</string>").then_some(())
        },
    );
    assert_eq!(task_state(&hub, id).0, OPEN, "still running");
    let (code, out, err) = hub.koji(&["watch-logs", &ids]);
    assert_eq!(code, 0, "watch-logs: {out}{err}");
    assert!(
        out.contains("slept ") && out.contains(" of 6 s"),
        "watch-logs output:\n{out}"
    );
    assert!(
        out.contains("Finished sleeping"),
        "watch-logs output:\n{out}"
    );

    wait_state(&hub, id, CLOSED, Duration::from_secs(30));
    let out = hub.koji_ok(&["taskinfo", &ids]);
    assert!(out.contains("State: closed"), "taskinfo:\n{out}");
    assert!(out.contains("Host: b1"), "taskinfo:\n{out}");
    let out = hub.koji_ok(&["call", "getTaskResult", &ids]);
    assert_eq!(out.trim(), "None", "getTaskResult");

    // The whole log is kept as task output.
    let out = hub.koji_ok(&["call", "downloadTaskOutput", &ids, "sleep.log"]);
    assert!(!out.trim().is_empty());
    drop(b1);
}

#[test]
fn builder_fails_bad_params_and_refuses_unknown_methods() {
    let hub = hub!();
    let _b1 = Builder::start(&hub, "b1");
    wait_ready(&hub, "b1");
    let id = make_sleep_task(&hub, 90000);
    wait_for(Duration::from_secs(30), "task failed", || {
        (task_state(&hub, id).0 == 5).then_some(())
    });
    let (code, _out, err) = hub.koji(&["call", "getTaskResult", &id.to_string()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("ParameterError") && err.contains("86400"),
        "getTaskResult: {err}"
    );

    // A method without a handler is refused for good (soft=False) and stays FREE.
    let id = insert_task(&hub, "nosuchmethod", &[]);
    wait_for(
        Duration::from_secs(30),
        "refusal in the builder log",
        || _b1.log().contains("no handler for method").then_some(()),
    );
    let (code, out, _) = hub.koji(&["scheduler-logs", "--task", &id.to_string()]);
    assert_eq!(code, 0);
    assert!(
        out.contains("no handler for method"),
        "scheduler-logs:\n{out}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(task_state(&hub, id), (0, None), "refused task is FREE");
}

#[test]
fn cancel_kills_the_process_tree_within_five_seconds() {
    let hub = hub!();
    let b1 = Builder::start(&hub, "b1");
    wait_ready(&hub, "b1");
    let id = make_sleep_task(&hub, 4321);
    wait_state(&hub, id, OPEN, Duration::from_secs(30));
    let pids = wait_for(Duration::from_secs(10), "sleep 4321 running", || {
        let p = pids_with_cmdline(&["sleep", "4321"]);
        (!p.is_empty()).then_some(p)
    });
    hub.koji_ok(&["cancel", &id.to_string()]);
    let canceled = Instant::now();
    wait_for(
        Duration::from_secs(5),
        "sleep 4321 gone after cancel",
        || {
            let left: Vec<i32> = pids_with_cmdline(&["sleep", "4321"])
                .into_iter()
                .filter(|p| pids.contains(p))
                .collect();
            left.is_empty().then_some(())
        },
    );
    eprintln!("sleep process gone {:?} after cancel", canceled.elapsed());
    assert_eq!(task_state(&hub, id).0, CANCELED);

    // The builder goes on with the next task.
    let next = make_sleep_task(&hub, 1);
    wait_state(&hub, next, CLOSED, Duration::from_secs(30));
    drop(b1);
}

#[test]
fn shutdown_frees_tasks_and_marks_the_host_not_ready() {
    let hub = hub!();
    let mut b1 = Builder::start(&hub, "b1");
    wait_ready(&hub, "b1");
    let id = make_sleep_task(&hub, 600);
    wait_state(&hub, id, OPEN, Duration::from_secs(30));
    wait_for(Duration::from_secs(10), "sleep 600 running", || {
        (!pids_with_cmdline(&["sleep", "600"]).is_empty()).then_some(())
    });
    let code = b1.terminate(Duration::from_secs(20));
    assert_eq!(code, Some(0), "builder exit; log:\n{}", b1.log());
    let (state, host) = task_state(&hub, id);
    assert_ne!(state, OPEN, "task still open after shutdown");
    assert!(
        state == 0 || host.is_none_or(|h| h != host_id(&hub, "b1")),
        "task {id} state {state} host {host:?}"
    );
    let out = hub.koji_ok(&["list-hosts"]);
    let row = out
        .lines()
        .find(|l| l.starts_with("b1 "))
        .unwrap_or_else(|| panic!("no b1 in list-hosts:\n{out}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[2], "N", "b1 not ready after shutdown: {row}");
    hub.koji_ok(&["cancel", &id.to_string()]);
}

#[test]
fn exclusive_session_keeps_a_second_daemon_out() {
    let hub = hub!();
    let b1 = Builder::start(&hub, "b1");
    wait_ready(&hub, "b1");
    // Same host, second daemon: AuthLockError -> a clear message and a non-zero exit.
    let pwfile = password_file(&hub, "b1");
    let out = hub.containerbuild(
        &[
            "builder",
            "--hub",
            &hub.url(),
            "--user",
            "b1",
            "--password-file",
            pwfile.to_str().expect("utf-8 path"),
            "--workdir",
            hub.dir().join("work-b1-second").to_str().expect("utf-8"),
        ],
        "",
    );
    assert_ne!(out.0, 0);
    assert!(
        out.2.contains("exclusive lock") && out.2.contains("--force-lock"),
        "stderr: {}",
        out.2
    );
    drop(b1);
}

#[test]
fn two_builders_share_the_work() {
    let hub = hub!();
    let _b1 = Builder::start(&hub, "b1");
    let _b2 = Builder::start(&hub, "b2");
    wait_ready(&hub, "b1");
    wait_ready(&hub, "b2");
    let ids: Vec<i64> = (0..4).map(|_| make_sleep_task(&hub, 3)).collect();
    let mut hosts = Vec::new();
    for &id in &ids {
        hosts.push(wait_state(&hub, id, CLOSED, Duration::from_secs(60)));
    }
    let b1 = host_id(&hub, "b1");
    let b2 = host_id(&hub, "b2");
    assert!(
        hosts.contains(&Some(b1)) && hosts.contains(&Some(b2)),
        "tasks ran on {hosts:?}; b1={b1} b2={b2}"
    );
}

#[test]
fn embedded_builder_runs_tasks() {
    let Some(hub) = Hub::start_with_args(&["--builders", "1"]) else {
        return;
    };
    let name = wait_for(Duration::from_secs(30), "embedded builder ready", || {
        let (code, out, _) = hub.koji(&["list-hosts"]);
        if code != 0 {
            return None;
        }
        out.lines().find_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols.len() > 2 && cols[0].ends_with("-builder0") && cols[2] == "Y")
                .then(|| cols[0].to_string())
        })
    });
    let out = hub.koji_ok(&["list-hosts", "--channel", "container"]);
    assert!(
        out.contains(&name),
        "{name} in the container channel:\n{out}"
    );
    let id = make_sleep_task(&hub, 1);
    let host = wait_state(&hub, id, CLOSED, Duration::from_secs(30));
    assert_eq!(host, Some(host_id(&hub, &name)));
    let out = hub.koji_ok(&["taskinfo", &id.to_string()]);
    assert!(out.contains(&format!("Host: {name}")), "taskinfo:\n{out}");
}

#[test]
fn a_result_survives_hub_outage_and_builder_crash() {
    let Some(mut hub) = Hub::start() else {
        return;
    };
    let mut b1 = Builder::start(&hub, "b1");
    wait_ready(&hub, "b1");
    let id = make_sleep_task(&hub, 3);
    wait_state(&hub, id, OPEN, Duration::from_secs(30));
    // The hub goes away while the task runs; the builder keeps the answer on disk...
    hub.stop();
    let kept = workdir(&hub, "b1")
        .join("results")
        .join(format!("{id}.xml"));
    wait_for(Duration::from_secs(20), "result kept on disk", || {
        kept.exists().then_some(())
    });
    // ...and crashes before the hub is back.
    b1.kill_hard();
    hub.restart();
    assert_eq!(task_state(&hub, id).0, OPEN);
    // A crashed daemon leaves its exclusive session behind: --force-lock takes it over.
    let _b1 = Builder::spawn(&hub, "b1", &["--force-lock"]);
    let host = wait_state(&hub, id, CLOSED, Duration::from_secs(30));
    assert_eq!(host, Some(host_id(&hub, "b1")));
    assert!(!kept.exists(), "result file removed once the hub took it");
}
