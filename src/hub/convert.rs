//! Store records to Koji-shaped structs.
//!
//! Conventions of the store's views: an alias ending in `_time_ts` holds epoch seconds and
//! becomes Koji's pair `*_time` (string) + `*_ts` (double); the aliases in [`BOOL_FIELDS`]
//! become booleans; `extra` holds JSON.

use crate::store::{Field, Record};
pub use crate::xmlrpc::time::koji_time;
use crate::xmlrpc::{Struct, Value};

/// Fields Koji returns as booleans (PostgreSQL `BOOLEAN` columns).
const BOOL_FIELDS: &[&str] = &[
    "ready",
    "enabled",
    "waiting",
    "awaited",
    "locked",
    "maven_support",
    "maven_include_all",
    "draft",
    "metadata_only",
    "blocked",
    "intransitive",
    "noconfig",
    "exclusive",
    "expired",
];

fn field_value(name: &str, f: Field) -> Value {
    match f {
        Field::Null => Value::Nil,
        Field::Int(i) if BOOL_FIELDS.contains(&name) => Value::Bool(i != 0),
        Field::Int(i) => Value::Int(i),
        Field::Real(r) => Value::Double(r),
        Field::Text(t) if name == "extra" => match serde_json::from_str::<serde_json::Value>(&t) {
            Ok(j) => super::json_to_value(&j),
            Err(_) => Value::String(t),
        },
        Field::Text(t) => Value::String(t),
    }
}

/// One record as a Koji struct.
pub fn record(rec: Record) -> Struct {
    let mut s = Struct::with_capacity(rec.len() + 4);
    for (name, f) in rec {
        if let Some(base) = name.strip_suffix("_time_ts") {
            let ts = match f {
                Field::Real(r) => Some(r),
                Field::Int(i) => Some(i as f64),
                _ => None,
            };
            s.insert(format!("{base}_time"), ts.map(koji_time));
            s.insert(format!("{base}_ts"), ts);
        } else {
            let v = field_value(&name, f);
            s.insert(name, v);
        }
    }
    s
}

/// Many records as an array of structs.
pub fn records(recs: Vec<Record>) -> Value {
    Value::Array(recs.into_iter().map(|r| Value::Struct(record(r))).collect())
}
