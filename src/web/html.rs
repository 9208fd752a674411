//! HTML helpers shared by every page: the one escape function, the layout with its inline CSS,
//! state names, times and durations. Everything a page prints that did not come from a literal
//! in this module goes through [`esc`] (text and attribute values alike) or, for JSON inside a
//! `<script>`, through [`script_json`].

use std::fmt::Write as _;

pub use crate::store::records::build_state_name;
pub use crate::store::tasks::state_name as task_state_name;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::xmlrpc::{Struct, Value};

/// Escapes text for HTML element content and for quoted attribute values: `& < > " '`.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON for a `<script type="application/json">` block: `<`, `>`, `&` and the JavaScript line
/// separators are written as `\uXXXX`, so no value can close the script element.
pub fn script_json(v: &serde_json::Value) -> String {
    let s = v.to_string();
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// Characters kept as they are in a URL query value or path segment.
const URL_KEEP: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes a query value or one path segment (the result still goes through [`esc`]
/// when placed in an attribute).
pub fn url_enc(s: &str) -> String {
    utf8_percent_encode(s, URL_KEEP).to_string()
}

/// Percent-encodes a relative path segment by segment, keeping the slashes.
pub fn url_path(rel: &str) -> String {
    rel.split('/').map(url_enc).collect::<Vec<_>>().join("/")
}

const CSS: &str = "
body{font-family:system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#2d3e50;color:#fff;padding:.5em 1em}
header a{color:#fff;margin-right:1.2em;text-decoration:none}
main{padding:1em}
table{border-collapse:collapse;margin:.5em 0 1em}
th,td{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}
th{background:#eee}
table.kv th{width:12em}
pre{background:#111;color:#ddd;padding:.5em;overflow:auto;max-height:40em;white-space:pre-wrap}
code,.mono{font-family:ui-monospace,monospace}
.state-free,.state-building{color:#555}
.state-open,.state-assigned{color:#b07000;font-weight:bold}
.state-closed,.state-complete{color:#197a19}
.state-failed{color:#c00;font-weight:bold}
.state-canceled,.state-deleted{color:#777;font-style:italic}
.yes{color:#197a19}.no{color:#c00}
.warnings{background:#fff3cd;border:1px solid #e0b000;padding:.3em 1em}
.fault{background:#fde2e2;border:1px solid #c00;color:#600;padding:.5em;white-space:pre-wrap}
.child td:first-child{padding-left:1.5em}
.child2 td:first-child{padding-left:3em}
input.pullspec{width:60em;max-width:95%;font-family:ui-monospace,monospace}
.pager a{margin-right:1em}
";

/// The page: title, navigation, inline CSS, `body` (already HTML).
pub fn layout(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t} | containerbuild</title><style>{CSS}</style></head>\n<body><header>\
         <a href=\"/koji/\"><b>containerbuild</b></a><a href=\"/koji/tasks\">Tasks</a>\
         <a href=\"/koji/hosts\">Hosts</a></header>\n<main><h1>{t}</h1>\n{body}</main></body></html>\n",
        t = esc(title)
    )
}

/// The state number of a task state name (case-insensitive), or of a number.
pub fn task_state_number(name: &str) -> Option<i64> {
    let n = name.trim();
    if let Ok(i) = n.parse::<i64>() {
        return (0..=5).contains(&i).then_some(i);
    }
    (0..=5).find(|&i| task_state_name(i).eq_ignore_ascii_case(n))
}

/// Whether a task state is final (CLOSED, CANCELED, FAILED).
pub fn task_state_final(state: i64) -> bool {
    matches!(state, 2 | 3 | 5)
}

/// `<span class="state-x">NAME</span>`, with an optional id.
pub fn state_span(name: &str, id: Option<&str>) -> String {
    let id = id
        .map(|i| format!(" id=\"{}\"", esc(i)))
        .unwrap_or_default();
    format!(
        "<span{id} class=\"state state-{}\">{}</span>",
        esc(&name.to_ascii_lowercase()),
        esc(name)
    )
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) of epoch seconds, or an empty string.
pub fn time(ts: Option<f64>) -> String {
    match ts {
        Some(t) if t.is_finite() => {
            let s = crate::xmlrpc::time::koji_time(t);
            s.get(..19).unwrap_or(&s).to_owned()
        }
        _ => String::new(),
    }
}

/// `1h 2m 3s` between two epoch times (end: now when absent), or an empty string.
pub fn duration(start: Option<f64>, end: Option<f64>) -> String {
    let Some(start) = start else {
        return String::new();
    };
    let end = end.unwrap_or_else(crate::store::now_ts);
    let secs = (end - start).max(0.0).round() as i64;
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    if h > 0 {
        format!("{h}h {m}m {s}s")
    } else if m > 0 {
        format!("{m}m {s}s")
    } else {
        format!("{s}s")
    }
}

/// A byte count for people (`1.5 MiB`), with the exact number in a title.
pub fn size(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    let short = if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", units[u])
    };
    format!("<span title=\"{bytes} bytes\">{}</span>", esc(&short))
}

/// A struct member as text (strings as they are, other scalars as Python would print them).
pub fn text(s: &Struct, key: &str) -> String {
    s.get(key).map(scalar).unwrap_or_default()
}

/// A scalar value as text; containers as Python's repr.
pub fn scalar(v: &Value) -> String {
    match v {
        Value::Nil => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => (if *b { "True" } else { "False" }).to_owned(),
        Value::Int(i) => i.to_string(),
        other => crate::xmlrpc::value::py_repr(other),
    }
}

pub fn int(s: &Struct, key: &str) -> Option<i64> {
    s.get(key).and_then(Value::as_int)
}

pub fn float(s: &Struct, key: &str) -> Option<f64> {
    match s.get(key) {
        Some(Value::Double(d)) => Some(*d),
        Some(Value::Int(i)) => Some(*i as f64),
        _ => None,
    }
}

/// `yes`/`no` with a class.
pub fn yes_no(b: bool) -> &'static str {
    if b {
        "<span class=\"yes\">yes</span>"
    } else {
        "<span class=\"no\">no</span>"
    }
}

/// Any value as HTML: structs as key/value tables, lists as lists, scalars escaped.
pub fn value(v: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, v, 0);
    out
}

fn write_value(out: &mut String, v: &Value, depth: usize) {
    if depth > 8 {
        out.push_str(&esc(&crate::xmlrpc::value::py_repr(v)));
        return;
    }
    match v {
        Value::Struct(s) if !s.is_empty() => {
            out.push_str("<table class=\"kv\">");
            for (k, v) in s.iter() {
                let _ = write!(out, "<tr><th>{}</th><td>", esc(k));
                write_value(out, v, depth + 1);
                out.push_str("</td></tr>");
            }
            out.push_str("</table>");
        }
        Value::Array(a) if !a.is_empty() => {
            out.push_str("<ul>");
            for v in a {
                out.push_str("<li>");
                write_value(out, v, depth + 1);
                out.push_str("</li>");
            }
            out.push_str("</ul>");
        }
        Value::Struct(_) => out.push_str("{}"),
        Value::Array(_) => out.push_str("[]"),
        Value::Nil => out.push_str("<i>None</i>"),
        v => {
            let _ = write!(out, "<code>{}</code>", esc(&scalar(v)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_text_and_attributes() {
        assert_eq!(
            esc("<script>alert(1)</script>"),
            "&lt;script&gt;alert(1)&lt;/script&gt;"
        );
        assert_eq!(
            esc("\"'><img src=x onerror=alert(1)>"),
            "&quot;&#39;&gt;&lt;img src=x onerror=alert(1)&gt;"
        );
        assert_eq!(esc("a&b"), "a&amp;b");
    }

    #[test]
    fn script_json_cannot_close_the_script() {
        let v = serde_json::json!({"name": "</script><script>alert(1)</script>\u{2028}&"});
        let s = script_json(&v);
        assert!(
            !s.contains('<') && !s.contains('>') && !s.contains('&'),
            "{s}"
        );
        let back: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn states_and_durations() {
        assert_eq!(task_state_number("open"), Some(1));
        assert_eq!(task_state_number("5"), Some(5));
        assert_eq!(task_state_number("nope"), None);
        assert_eq!(task_state_number("9"), None);
        assert_eq!(duration(Some(0.0), Some(3723.0)), "1h 2m 3s");
        assert_eq!(duration(Some(0.0), Some(59.4)), "59s");
        assert_eq!(time(Some(0.0)), "1970-01-01 00:00:00");
        assert_eq!(url_path("a b/c&d"), "a%20b/c%26d");
    }
}
