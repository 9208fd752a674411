//! Store records to Koji-shaped structs.
//!
//! Conventions of the store's views: an alias ending in `_time_ts` holds epoch seconds and
//! becomes Koji's pair `*_time` (string) + `*_ts` (double); the aliases in [`BOOL_FIELDS`]
//! become booleans; `extra` holds JSON.

use crate::store::{Field, Record};
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

/// Epoch seconds as Koji prints PostgreSQL timestamps: `2024-01-01 12:00:00.123456+00:00`.
pub fn koji_time(ts: f64) -> String {
    let micros_total = (ts * 1_000_000.0).round() as i64;
    let secs = micros_total.div_euclid(1_000_000);
    let micros = micros_total.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{micros:06}+00:00",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    )
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_format() {
        assert_eq!(
            koji_time(1_704_067_200.5),
            "2024-01-01 00:00:00.500000+00:00"
        );
        assert_eq!(koji_time(0.0), "1970-01-01 00:00:00.000000+00:00");
        assert_eq!(koji_time(951_782_400.0), "2000-02-29 00:00:00.000000+00:00");
    }
}
