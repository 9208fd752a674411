//! A small query processor in the spirit of Koji's `QueryProcessor`: a view is a FROM clause
//! and a list of `(alias, expression)` fields; callers filter with [`Cond`]s on aliases and
//! order/page with [`QueryOpts`]. Every alias is whitelisted by its view, so no caller-supplied
//! text ever reaches the SQL.

use rusqlite::Connection;
use rusqlite::types::Value as Sql;

use super::{Record, Result, StoreError, query_records_dyn};

/// A queryable view. `fields` are in Koji's field order; aliases ending in `_time_ts` are
/// epoch seconds that the hub shows as both `*_time` and `*_ts`.
pub struct View {
    pub from: &'static str,
    pub fields: &'static [(&'static str, &'static str)],
    /// Extra aliases usable in filters and ordering but not selected.
    pub hidden: &'static [(&'static str, &'static str)],
    pub default_order: &'static str,
    /// A unique indexed column of the first table (e.g. `t.id`). With it, a paged query first
    /// picks the page's keys and then reads only those rows: otherwise SQLite's sorter carries
    /// every matching row's large columns (task requests and results) to keep the first 50.
    pub key: Option<&'static str>,
}

impl View {
    fn expr(&self, alias: &str) -> Option<&'static str> {
        let key = alias
            .strip_suffix("_ts")
            .or_else(|| alias.strip_suffix("_time"))
            .map(|b| format!("{b}_time_ts"));
        self.fields
            .iter()
            .chain(self.hidden.iter())
            .find(|(a, _)| *a == alias || key.as_deref() == Some(*a))
            .map(|(_, e)| *e)
    }
}

/// One WHERE condition on a view alias.
#[derive(Debug, Clone)]
pub enum Cond {
    Eq(&'static str, Sql),
    Ne(&'static str, Sql),
    In(&'static str, Vec<Sql>),
    NotIn(&'static str, Vec<Sql>),
    IsNull(&'static str),
    NotNull(&'static str),
    Lt(&'static str, Sql),
    Gt(&'static str, Sql),
    Le(&'static str, Sql),
    Ge(&'static str, Sql),
    /// SQL `LIKE` with `\` escapes (prefix and glob searches).
    Like(&'static str, String),
    /// Raw SQL with parameters, written by the store itself (never by callers).
    Raw(&'static str, Vec<Sql>),
}

/// Koji's `queryOpts`: order (`-` prefix = descending), offset, limit, countOnly.
#[derive(Debug, Clone, Default)]
pub struct QueryOpts {
    pub order: Vec<(String, bool)>,
    pub offset: Option<i64>,
    pub limit: Option<i64>,
    pub count_only: bool,
}

impl QueryOpts {
    /// Parses Koji's comma-separated order string.
    pub fn set_order(&mut self, order: &str) {
        self.order = order
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| match s.strip_prefix('-') {
                Some(rest) => (rest.to_string(), true),
                None => (s.to_string(), false),
            })
            .collect();
    }
}

/// Result of [`select`]: rows, or a count when `count_only` was asked.
pub enum Selected {
    Rows(Vec<Record>),
    Count(i64),
}

fn push_cond(view: &View, c: &Cond, sql: &mut Vec<String>, params: &mut Vec<Sql>) -> Result<()> {
    let col = |a: &str| {
        view.expr(a)
            .ok_or_else(|| StoreError::NotFound(format!("no such field: {a}")))
    };
    let placeholders = |n: usize, start: usize| -> String {
        (0..n)
            .map(|i| format!("?{}", start + i + 1))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match c {
        Cond::Eq(a, v)
        | Cond::Ne(a, v)
        | Cond::Lt(a, v)
        | Cond::Gt(a, v)
        | Cond::Le(a, v)
        | Cond::Ge(a, v) => {
            let op = match c {
                Cond::Eq(..) => "=",
                Cond::Ne(..) => "!=",
                Cond::Lt(..) => "<",
                Cond::Gt(..) => ">",
                Cond::Le(..) => "<=",
                _ => ">=",
            };
            params.push(v.clone());
            if op == "=" {
                // `(SELECT ?N)` rather than `?N`: in a join, SQLite's constant propagation
                // makes a statement with `col = ?N` depend on the bound value, so the cached
                // statement was prepared again on every call (two thirds of `getBuild`).
                sql.push(format!("{} = (SELECT ?{})", col(a)?, params.len()));
            } else {
                sql.push(format!("{} {op} ?{}", col(a)?, params.len()));
            }
        }
        Cond::In(a, vs) | Cond::NotIn(a, vs) => {
            let not = if matches!(c, Cond::NotIn(..)) {
                "NOT "
            } else {
                ""
            };
            if vs.is_empty() {
                sql.push(if not.is_empty() {
                    "0".into()
                } else {
                    "1".into()
                });
            } else {
                let ph = placeholders(vs.len(), params.len());
                params.extend(vs.iter().cloned());
                sql.push(format!("{} {not}IN ({ph})", col(a)?));
            }
        }
        Cond::IsNull(a) => sql.push(format!("{} IS NULL", col(a)?)),
        Cond::NotNull(a) => sql.push(format!("{} IS NOT NULL", col(a)?)),
        Cond::Like(a, pat) => {
            params.push(Sql::Text(pat.clone()));
            sql.push(format!("{} LIKE ?{} ESCAPE '\\'", col(a)?, params.len()));
        }
        Cond::Raw(text, vs) => {
            // Raw conditions number their own placeholders from 1; shift them.
            let mut t = (*text).to_string();
            for i in (1..=vs.len()).rev() {
                t = t.replace(&format!("?{i}"), &format!("?{}", params.len() + i));
            }
            params.extend(vs.iter().cloned());
            sql.push(t);
        }
    }
    Ok(())
}

/// Runs a filtered, ordered, paged select over a view.
pub fn select(
    conn: &Connection,
    view: &View,
    conds: &[Cond],
    opts: &QueryOpts,
) -> Result<Selected> {
    let mut where_sql = Vec::new();
    let mut params = Vec::new();
    for c in conds {
        push_cond(view, c, &mut where_sql, &mut params)?;
    }
    let where_clause = if where_sql.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", where_sql.join(" AND "))
    };
    if opts.count_only {
        let sql = format!("SELECT count(*) FROM {}{where_clause}", view.from);
        let refs: Vec<&dyn rusqlite::ToSql> =
            params.iter().map(|p| p as &dyn rusqlite::ToSql).collect();
        let n: i64 = conn
            .prepare_cached(&sql)?
            .query_row(refs.as_slice(), |r| r.get(0))?;
        return Ok(Selected::Count(n));
    }
    let fields: Vec<String> = view
        .fields
        .iter()
        .map(|(a, e)| format!("{e} AS \"{a}\""))
        .collect();
    let mut order = Vec::new();
    for (a, desc) in &opts.order {
        let e = view
            .expr(a)
            .ok_or_else(|| StoreError::NotFound(format!("Invalid order field: {a}")))?;
        order.push(format!("{e}{}", if *desc { " DESC" } else { "" }));
    }
    let order_clause = if order.is_empty() {
        format!(" ORDER BY {}", view.default_order)
    } else {
        format!(" ORDER BY {}", order.join(", "))
    };
    let paged = opts.limit.is_some() || opts.offset.is_some();
    let page = format!(
        " LIMIT {} OFFSET {}",
        opts.limit.unwrap_or(-1),
        opts.offset.unwrap_or(0).max(0)
    );
    let sql = match (paged, view.key) {
        (true, Some(key)) => format!(
            "SELECT {} FROM {} WHERE {key} IN (SELECT {key} FROM {}{where_clause}{order_clause}{page}){order_clause}",
            fields.join(", "),
            view.from,
            view.from
        ),
        (true, None) => format!(
            "SELECT {} FROM {}{where_clause}{order_clause}{page}",
            fields.join(", "),
            view.from
        ),
        (false, _) => format!(
            "SELECT {} FROM {}{where_clause}{order_clause}",
            fields.join(", "),
            view.from
        ),
    };
    Ok(Selected::Rows(query_records_dyn(conn, &sql, &params)?))
}

/// [`select`] without paging; the rows only.
pub fn rows(conn: &Connection, view: &View, conds: &[Cond]) -> Result<Vec<Record>> {
    match select(conn, view, conds, &QueryOpts::default())? {
        Selected::Rows(r) => Ok(r),
        Selected::Count(_) => Ok(Vec::new()),
    }
}
