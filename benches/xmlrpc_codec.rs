//! XML-RPC codec cost on the hub's heaviest routine answer and on the smallest request.
//!
//! `listTasks(opts={'decode': True})` over 1000 tasks is what the web pages and `koji list-tasks`
//! pull, and its encode (hub side) and decode (client side) dominate such a call once the query
//! itself is done. `decode methodCall getTaskInfo` is the fixed parse cost the hub pays on every
//! request before dispatch. The documents are built with the crate's own types and writer, so
//! the shapes and spellings are exactly what goes over the wire.
//!
//! Run: `cargo bench --bench xmlrpc_codec` (add a filter such as `-- decode` to run one group).

use std::hint::black_box;
use std::time::Duration;

use containerbuild::builder::client::encode_args;
use containerbuild::xmlrpc::time::koji_time;
use containerbuild::xmlrpc::wire::{parse_call, parse_response, write_call, write_response};
use containerbuild::xmlrpc::{Struct, Value};
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};

const TASKS: i64 = 1000;

/// Short runs keep the whole bench well under a minute on a shared two-core machine; the
/// documents are large enough that 20 samples still give a stable median.
fn configure(g: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
}

/// One `listTasks` row after `decode`, mixed as a busy container hub's list is (parents and
/// per-arch children; closed, failed and open tasks) so the document carries every value kind
/// the codec handles in realistic proportion: nils, booleans, ints, doubles, strings,
/// and request, result and fault structs nested in arrays.
fn task(id: i64) -> Value {
    let parent_id = id - (id - 1) % 3;
    let is_parent = id == parent_id;
    let state = match id % 10 {
        0 => 5, // FAILED
        1 => 1, // OPEN
        _ => 2, // CLOSED
    };
    let create_ts = 1_764_000_000.0 + id as f64 * 37.125_431;
    let start_ts = create_ts + 2.5;
    let completion_ts = (state != 1).then_some(start_ts + 180.0 + (id % 60) as f64);
    let component = format!("component-{}", parent_id % 97);
    let src = format!(
        "git+https://src.example.org/containers/{component}.git#{:040x}",
        (parent_id as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c834)
    );
    let target = "container-candidate";
    let opts = Struct::new()
        .with("git_branch", "main")
        .with("scratch", false)
        .with(
            "yum_repourls",
            vec![Value::str(format!(
                "https://repos.example.org/{component}/stable.repo"
            ))],
        )
        .with("release", format!("{}", parent_id % 13 + 1));
    let (method, arch, request) = if is_parent {
        (
            "buildContainer",
            "noarch",
            vec![Value::str(&src), Value::str(target), Value::Struct(opts)],
        )
    } else {
        let arch = if (id - parent_id) == 1 {
            "x86_64"
        } else {
            "aarch64"
        };
        (
            "createContainer",
            arch,
            vec![
                Value::str(&src),
                Value::str(target),
                Value::str(arch),
                Value::Struct(opts),
            ],
        )
    };
    let result = match state {
        2 if is_parent => Value::Array(vec![Value::Struct(
            Struct::new()
                .with(
                    "repositories",
                    vec![
                        Value::str(format!(
                            "registry.example.org/{component}:1.0-{}",
                            parent_id % 13 + 1
                        )),
                        Value::str(format!("registry.example.org/{component}:latest")),
                    ],
                )
                .with(
                    "koji_builds",
                    vec![Value::str((parent_id + 5000).to_string())],
                ),
        )]),
        2 => Value::Array(vec![Value::Struct(
            Struct::new().with("image_id", format!("sha256:{:064x}", id as u128 * 7919)),
        )]),
        5 => Value::Struct(Struct::new().with("faultCode", 1000).with(
            "faultString",
            format!("Dockerfile build failed: RUN dnf install -y {component} exited 1"),
        )),
        _ => Value::Nil,
    };
    let ts = |t: Option<f64>| (t.map(koji_time), t);
    let (create_time, create_ts) = ts(Some(create_ts));
    let (start_time, start_ts) = ts(Some(start_ts));
    let (completion_time, completion_ts) = ts(completion_ts);
    Value::Struct(
        Struct::with_capacity(23)
            .with("id", id)
            .with("state", state)
            .with("create_time", create_time)
            .with("create_ts", create_ts)
            .with("start_time", start_time)
            .with("start_ts", start_ts)
            .with("completion_time", completion_time)
            .with("completion_ts", completion_ts)
            .with("channel_id", 2)
            .with("host_id", id % 4 + 1)
            .with("parent", (!is_parent).then_some(parent_id))
            .with("label", (!is_parent).then_some(arch))
            .with("waiting", is_parent && state == 1)
            .with("awaited", !is_parent && state == 1)
            .with("owner", parent_id % 7 + 3)
            .with("method", method)
            .with("arch", arch)
            .with("priority", if is_parent { 20 } else { 19 })
            .with("weight", if is_parent { 0.2 } else { 1.5 })
            .with("request", request)
            .with("result", result)
            .with("owner_name", format!("user{}", parent_id % 7 + 3))
            .with("owner_type", 0),
    )
}

fn list_tasks(c: &mut Criterion) {
    let value = Value::Array((1..=TASKS).map(task).collect());
    let doc = write_response(&value);
    // A bench of a document the reader rejects, or reads differently, would measure nothing useful.
    assert_eq!(
        parse_response(doc.as_bytes()).expect("parses"),
        Ok(value.clone())
    );
    let bytes = doc.len() as u64;

    let mut g = c.benchmark_group("encode listTasks 1000");
    configure(&mut g);
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function("write_response", |b| {
        b.iter(|| write_response(black_box(&value)))
    });
    g.finish();

    let mut g = c.benchmark_group("decode listTasks 1000");
    configure(&mut g);
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function("parse_response", |b| {
        b.iter(|| parse_response(black_box(doc.as_bytes())))
    });
    g.finish();
}

fn get_task_info_call(c: &mut Criterion) {
    // As Koji's Python client sends `getTaskInfo(123456, request=True)`: kwargs ride in a
    // trailing `__starstar` struct.
    let params = encode_args(
        vec![Value::Int(123_456)],
        Struct::new().with("request", true),
    );
    let doc = write_call("getTaskInfo", &params);
    assert_eq!(parse_call(doc.as_bytes()).expect("parses").params, params);

    let mut g = c.benchmark_group("decode methodCall getTaskInfo");
    configure(&mut g);
    g.throughput(Throughput::Bytes(doc.len() as u64));
    g.bench_function("parse_call", |b| {
        b.iter(|| parse_call(black_box(doc.as_bytes())))
    });
    g.finish();
}

criterion_group!(benches, list_tasks, get_task_info_call);
criterion_main!(benches);
