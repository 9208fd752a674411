//! Task views of the stock koji CLI (list-tasks, taskinfo, cancel, getTaskResult).
//!
//! Tasks cannot be created through the API yet, so the test writes one straight into the store
//! (`Store::write` + `tasks::create`) while the hub runs; SQLite in WAL mode allows the
//! concurrent writer.

mod common;

use common::assert_contains;

use common::{ADMIN, Hub};
use containerbuild::store::{Store, StoreError, records, tasks};
use containerbuild::xmlrpc::{Struct, Value};

/// The admin's user id, asked from the hub through the Python client.
fn admin_id(hub: &Hub) -> i64 {
    let out = hub.python_ok(
        "import os, koji\n\
         s = koji.ClientSession(os.environ['KOJI_URL'])\n\
         print(s.getUser(os.environ['KOJI_USER'])['id'])\n",
    );
    out.trim()
        .parse()
        .unwrap_or_else(|e| panic!("admin id {out:?}: {e}"))
}

/// Inserts a FREE `buildContainer` task owned by kojiadmin and returns its id.
fn insert_build_container_task(hub: &Hub) -> i64 {
    let owner = admin_id(hub);
    let opts = Struct::new().with("scratch", true);
    let request_xml = containerbuild::xmlrpc::wire::write_call(
        "buildContainer",
        &[
            Value::str("git://example.test/containers/foo#0123456789abcdef"),
            Value::str("f40-candidate"),
            Value::Struct(opts),
        ],
    );
    let store = Store::open(&hub.data_dir()).expect("open store");
    let id = store
        .write(|tx| -> Result<i64, StoreError> {
            let channel_id =
                records::channel_id(tx, "container")?.expect("container channel exists");
            tasks::create(
                tx,
                &tasks::NewTask {
                    method: "buildContainer".into(),
                    arch: "noarch".into(),
                    owner,
                    channel_id,
                    priority: 20,
                    parent: None,
                    label: None,
                    request_xml,
                },
            )
        })
        .expect("create task");
    drop(store);
    id
}

#[test]
fn task_list_info_cancel_result() {
    let hub = hub!();
    let id = insert_build_container_task(&hub);
    let ids = id.to_string();

    // list-tasks: one row in the CLI's fixed-width format.
    let out = hub.koji_ok(&["list-tasks"]);
    assert_contains(
        &out,
        "ID       Pri  Owner                State    Arch       Name",
        "list-tasks header",
    );
    let row = format!(
        "{:<8} {:<4} {:<20} {:<8} {:<10} buildContainer (noarch)",
        id, 20, ADMIN, "FREE", "noarch"
    );
    assert!(
        out.lines().any(|l| l == row),
        "list-tasks: expected row {row:?} in:\n{out}"
    );

    // taskinfo -v
    let out = hub.koji_ok(&["taskinfo", "-v", &ids]);
    assert_contains(&out, &format!("Task: {id}\n"), "taskinfo");
    assert_contains(&out, "Type: buildContainer\n", "taskinfo");
    assert_contains(&out, "Owner: kojiadmin\n", "taskinfo");
    assert_contains(&out, "State: free\n", "taskinfo");

    // getTaskInfo through `koji call`
    let out = hub.koji_ok(&["call", "getTaskInfo", &ids]);
    assert_contains(&out, "'method': 'buildContainer'", "getTaskInfo");
    assert_contains(&out, "'state': 0", "getTaskInfo");

    // cancel
    let (code, out, err) = hub.koji(&["cancel", &ids]);
    assert_eq!(code, 0, "cancel\nstdout: {out}\nstderr: {err}");
    let out = hub.koji_ok(&["taskinfo", &ids]);
    assert_contains(&out, "State: canceled\n", "taskinfo after cancel");

    // Not listed among open tasks any more.
    let out = hub.koji_ok(&["list-tasks"]);
    assert!(
        !out.lines().any(|l| l.starts_with(&format!("{id} "))),
        "canceled task still listed:\n{out}"
    );

    // getTaskResult
    let (code, _out, err) = hub.koji(&["call", "getTaskResult", &ids]);
    assert_eq!(code, 1);
    assert_contains(
        &err,
        &format!("GenericError: Task {id} is canceled"),
        "getTaskResult",
    );
}

#[test]
fn taskinfo_unknown_task() {
    let hub = hub!();
    let (code, _out, err) = hub.koji_noauth(&["taskinfo", "424242"]);
    assert_eq!(code, 1);
    assert_contains(&err, "No such task: 424242", "taskinfo of a missing task");
}

#[test]
fn list_tasks_empty() {
    let hub = hub!();
    let out = hub.koji_ok(&["list-tasks"]);
    assert_eq!(out.trim(), "(no tasks)");
}
