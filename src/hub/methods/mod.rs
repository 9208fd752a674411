//! The API methods, one module per area. Each module exports `methods()`; names, parameter names
//! and defaults are exactly Koji's, because clients pass keyword arguments by name.

pub mod cg;
pub mod container;
pub mod host;
pub mod records;
pub mod system;
pub mod tasks;
pub mod users;

use super::Method;
use super::convert;
use crate::store::query::{QueryOpts, Selected};
use crate::xmlrpc::{Fault, Struct, Value};

/// Koji's `queryOpts` struct: `order`, `offset`, `limit`, `countOnly`, `asList`.
pub struct KojiQueryOpts {
    pub opts: QueryOpts,
    pub as_list: bool,
}

/// Reads a `queryOpts` argument; unknown keys are ignored, as Koji's QueryProcessor does.
pub fn query_opts(v: Option<&Struct>) -> Result<KojiQueryOpts, Fault> {
    let mut q = KojiQueryOpts {
        opts: QueryOpts::default(),
        as_list: false,
    };
    let Some(s) = v else { return Ok(q) };
    for (k, v) in s.iter() {
        match (k, v) {
            (_, Value::Nil) => {}
            ("order", Value::String(o)) => q.opts.set_order(o),
            ("order", Value::Array(a)) => {
                let parts: Vec<&str> = a.iter().filter_map(Value::as_str).collect();
                q.opts.set_order(&parts.join(","));
            }
            ("offset", v) => q.opts.offset = v.as_int(),
            ("limit", v) => q.opts.limit = v.as_int(),
            ("countOnly", v) => q.opts.count_only = v.truthy(),
            ("asList", v) => q.as_list = v.truthy(),
            ("order" | "group" | "rowlock", _) => {}
            _ => {}
        }
    }
    Ok(q)
}

/// Shapes a [`Selected`] result as Koji returns it: a count, a list of structs, or (asList) a
/// list of lists with values in alphabetical order of field name.
pub fn shape(sel: Selected, as_list: bool, mut each: impl FnMut(&mut Struct)) -> Value {
    match sel {
        Selected::Count(n) => Value::Int(n),
        Selected::Rows(rows) => Value::Array(
            rows.into_iter()
                .map(|r| {
                    let mut s = convert::record(r);
                    each(&mut s);
                    if as_list {
                        let mut pairs: Vec<(String, Value)> = s.into_iter().collect();
                        pairs.sort_by(|a, b| a.0.cmp(&b.0));
                        Value::Array(pairs.into_iter().map(|(_, v)| v).collect())
                    } else {
                        Value::Struct(s)
                    }
                })
                .collect(),
        ),
    }
}

/// Every method the hub serves, in `system.listMethods` order.
pub fn all() -> Vec<Method> {
    let mut v = Vec::new();
    v.extend(system::methods());
    v.extend(users::methods());
    v.extend(tasks::methods());
    v.extend(records::methods());
    v.extend(container::methods());
    v.extend(cg::methods());
    v.extend(host::methods());
    v.extend(super::upload::methods());
    v
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    #[test]
    fn names_are_unique_and_documented() {
        let mut seen = HashSet::new();
        for m in super::all() {
            assert!(seen.insert(m.sig.name), "duplicate method {}", m.sig.name);
            assert!(!m.doc.is_empty(), "method {} has no doc", m.sig.name);
        }
    }
}

/// The spec table row of a method, as `plugin-spec/hub-api.md` lists it.
#[cfg(test)]
fn spec_row(m: &Method) -> String {
    let kind = match m.kind {
        super::Kind::Read => "read",
        super::Kind::Write => "write",
    };
    format!(
        "| `{}{}` | {kind} | {} |",
        m.sig.name,
        m.sig.argdesc(),
        m.doc.replace('|', "\\|")
    )
}

#[cfg(test)]
mod spec {
    use std::collections::BTreeSet;

    const SPEC: &str = include_str!("../../../plugin-spec/hub-api.md");

    /// plugin-spec/hub-api.md and the registry must agree: same methods, same signatures, same
    /// read/write kind.
    #[test]
    fn spec_lists_every_method() {
        let spec_rows: BTreeSet<String> = SPEC
            .lines()
            .filter(|l| l.starts_with("| `"))
            .map(|l| l.split(" | ").take(2).collect::<Vec<_>>().join(" | "))
            .collect();
        let code_rows: BTreeSet<String> = super::all()
            .iter()
            .map(|m| {
                super::spec_row(m)
                    .split(" | ")
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" | ")
            })
            .collect();
        let missing: Vec<_> = code_rows.difference(&spec_rows).collect();
        let extra: Vec<_> = spec_rows.difference(&code_rows).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "plugin-spec/hub-api.md is out of date.\nmissing from spec: {missing:#?}\nin spec but not served: {extra:#?}"
        );
    }

    /// Prints the table rows (run with `--ignored --nocapture` when adding methods).
    #[test]
    #[ignore]
    fn print_spec_rows() {
        for m in super::all() {
            println!("{}", super::spec_row(&m));
        }
    }
}
