//! Reading and writing XML-RPC documents in Koji's dialect.
//!
//! Why our own reader on quick-xml rather than dxr's: Python clients may send a struct member with
//! an empty name (dxr rejects it), every integer tag must be accepted for every integer parameter,
//! and we want hard limits on nesting depth before anything is allocated. DOCTYPE declarations
//! (and with them entity definitions) are refused outright, as defusedxml does on Koji's side.
//! The writer emits exactly what Koji's marshaller emits: `<int>` within 32 bits, `<i8>` beyond,
//! `<nil/>`, `<double>` with Python's `repr` spelling, and no `<dateTime.iso8601>` of its own.

use std::borrow::Cow;
use std::fmt::Write as _;

use quick_xml::Reader;
use quick_xml::events::Event;

use super::fault::{Fault, FaultCode};
use super::value::{Struct, Value};

/// Deepest array/struct nesting a document may have; Koji's own data never comes close.
pub const MAX_DEPTH: usize = 64;

/// What one request may hold beyond the hub's body limit (`max_request_length`). The body limit
/// bounds memory; these bound the work a small body can cause and keep every value a handler
/// sees of a size the hub was written for. Responses and the task requests the hub stored
/// itself are read without them (`listTasks` answers and task results are legitimately big).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Items in one array. Above the koji CLI's largest multicall batch (10000).
    pub max_array_items: usize,
    /// `<member>` elements in one struct, repeated names included. Struct inserts are linear
    /// (Koji structs have a few dozen members), so building a struct of n members costs n²/2
    /// name comparisons: at 1000, a 4 MiB body of structs costs the hub tens of milliseconds;
    /// unlimited, one struct of 100,000 members costs seconds.
    pub max_struct_members: usize,
    /// Bytes of one string, member name or other text, after entity decoding. CGImport's
    /// metadata (a JSON string) is the biggest legitimate one.
    pub max_string_bytes: usize,
}

impl Limits {
    /// The limits the hub applies to every XML-RPC request (`plugin-spec/wire.md`).
    pub const REQUEST: Limits = Limits {
        max_array_items: 100_000,
        max_struct_members: 1_000,
        max_string_bytes: 16 * 1024 * 1024,
    };
    /// No limit but [`MAX_DEPTH`]: responses and stored documents.
    pub const NONE: Limits = Limits {
        max_array_items: usize::MAX,
        max_struct_members: usize::MAX,
        max_string_bytes: usize::MAX,
    };
}

/// A parsed `<methodCall>`.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodCall {
    pub name: String,
    pub params: Vec<Value>,
}

/// Why a document could not be read. The hub turns it into a fault; the client into an error.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

impl ParseError {
    /// The fault the real hub would send: a non-Koji exception, so fault code 1.
    pub fn into_fault(self) -> Fault {
        Fault::raw(
            FaultCode::Unknown as i32,
            format!("<class 'xml.parsers.expat.ExpatError'>: {}", self.0),
        )
    }
}

fn err<T>(msg: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError(msg.into()))
}

/// Pull parser over the document's elements; comments, declarations and processing
/// instructions are skipped, whitespace-only text between elements is dropped.
///
/// Tokens borrow from the body wherever they can (tag names of the XML-RPC vocabulary are
/// static strings, text is a slice of the input unless it held entities): the hub parses every
/// request and every stored task request this way, and per-token allocations were a fifth of
/// its CPU per call.
struct Parser<'a> {
    reader: Reader<&'a [u8]>,
    /// Set by `peek`.
    peeked: Option<Tok<'a>>,
    /// The element that ended a text run, held back while the text is returned.
    pending: Option<Tok<'a>>,
    limits: Limits,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok<'a> {
    Start(Cow<'static, str>),
    End(Cow<'static, str>),
    /// `<x/>`, reported as a start immediately followed by an end.
    Empty(Cow<'static, str>),
    Text(Cow<'a, str>),
    Eof,
}

impl<'a> Parser<'a> {
    fn new(body: &'a [u8], limits: Limits) -> Self {
        let mut reader = Reader::from_reader(body);
        let cfg = reader.config_mut();
        cfg.check_end_names = true;
        cfg.trim_text(false);
        Parser {
            reader,
            peeked: None,
            pending: None,
            limits,
        }
    }

    /// Next token; adjacent text, CDATA and character references are merged into one `Text`.
    fn next(&mut self) -> Result<Tok<'a>, ParseError> {
        if let Some(t) = self.peeked.take() {
            return Ok(t);
        }
        if let Some(t) = self.pending.take() {
            return Ok(t);
        }
        fn append<'a>(text: &mut Option<Cow<'a, str>>, piece: Cow<'a, str>) {
            match text {
                None => *text = Some(piece),
                Some(t) => t.to_mut().push_str(&piece),
            }
        }
        let mut text: Option<Cow<'a, str>> = None;
        loop {
            let ev = self.reader.read_event().map_err(|e| {
                ParseError(format!("{e} at byte {}", self.reader.buffer_position()))
            })?;
            let tok = match ev {
                Event::Text(t) => {
                    refuse_controls(&t, self.reader.buffer_position())?;
                    append(&mut text, t.xml10_content());
                    continue;
                }
                Event::CData(t) => {
                    refuse_controls(&t, self.reader.buffer_position())?;
                    append(&mut text, t.into_inner());
                    continue;
                }
                Event::GeneralRef(r) => {
                    let c = if r.is_char_ref() {
                        r.resolve_char_ref()
                            .map_err(|e| ParseError(e.to_string()))?
                            .ok_or_else(|| ParseError("bad character reference".into()))
                            .and_then(|c| {
                                if forbidden_control(u32::from(c))
                                    || matches!(c, '\u{FFFE}' | '\u{FFFF}')
                                {
                                    err(format!(
                                        "reference to invalid character number {:#x}",
                                        u32::from(c)
                                    ))
                                } else {
                                    Ok(c)
                                }
                            })?
                    } else {
                        let name = r.xml10_content();
                        match name.as_ref() {
                            "amp" => '&',
                            "lt" => '<',
                            "gt" => '>',
                            "quot" => '"',
                            "apos" => '\'',
                            other => return err(format!("undefined entity &{other};")),
                        }
                    };
                    text.get_or_insert_with(|| Cow::Owned(String::new()))
                        .to_mut()
                        .push(c);
                    continue;
                }
                Event::DocType(_) => return err("DOCTYPE is not allowed"),
                Event::Comment(_) | Event::Decl(_) | Event::PI(_) => continue,
                Event::Start(s) => Tok::Start(elem_name(s.name().as_ref())),
                Event::End(e) => Tok::End(elem_name(e.name().as_ref())),
                Event::Empty(s) => Tok::Empty(elem_name(s.name().as_ref())),
                Event::Eof => Tok::Eof,
            };
            if let Some(t) = text.take() {
                let max = self.limits.max_string_bytes;
                if t.len() > max {
                    return err(format!(
                        "a string of {} bytes exceeds the hub's string length limit of {max} bytes",
                        t.len()
                    ));
                }
                self.pending = Some(tok);
                return Ok(Tok::Text(t));
            }
            return Ok(tok);
        }
    }

    fn peek(&mut self) -> Result<&Tok<'a>, ParseError> {
        if self.peeked.is_none() {
            let t = self.next()?;
            self.peeked = Some(t);
        }
        Ok(self.peeked.as_ref().expect("peeked was just set"))
    }

    /// Next token that is not whitespace-only text.
    fn next_sig(&mut self) -> Result<Tok<'a>, ParseError> {
        loop {
            match self.next()? {
                Tok::Text(t) if t.trim().is_empty() => continue,
                t => return Ok(t),
            }
        }
    }

    fn skip_ws(&mut self) -> Result<(), ParseError> {
        loop {
            match self.peek()? {
                Tok::Text(t) if t.trim().is_empty() => {
                    self.peeked = None;
                }
                _ => return Ok(()),
            }
        }
    }

    /// Expects `<name>` or `<name/>`; returns true when the element is empty.
    fn open(&mut self, name: &str) -> Result<bool, ParseError> {
        match self.next_sig()? {
            Tok::Start(n) if n == name => Ok(false),
            Tok::Empty(n) if n == name => Ok(true),
            t => err(format!("expected <{name}>, found {}", describe(&t))),
        }
    }

    fn close(&mut self, name: &str) -> Result<(), ParseError> {
        match self.next_sig()? {
            Tok::End(n) if n == name => Ok(()),
            t => err(format!("expected </{name}>, found {}", describe(&t))),
        }
    }

    /// The text content of an element whose start tag was consumed (`empty` = it was `<x/>`).
    fn text_until_close(&mut self, name: &str, empty: bool) -> Result<Cow<'a, str>, ParseError> {
        if empty {
            return Ok(Cow::Borrowed(""));
        }
        match self.next()? {
            Tok::Text(t) => {
                self.close(name)?;
                Ok(t)
            }
            Tok::End(n) if n == name => Ok(Cow::Borrowed("")),
            t => err(format!("expected text in <{name}>, found {}", describe(&t))),
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, ParseError> {
        if depth > MAX_DEPTH {
            return err(format!(
                "values nested deeper than {MAX_DEPTH} levels, the hub's nesting depth limit"
            ));
        }
        if self.open("value")? {
            return Ok(Value::String(String::new()));
        }
        // Either bare text (a string) or exactly one typed element.
        let first = self.next()?;
        let (tag, empty) = match first {
            Tok::End(n) if n == "value" => return Ok(Value::String(String::new())),
            Tok::Text(t) => match self.next_sig()? {
                Tok::End(n) if n == "value" => return Ok(Value::String(t.into_owned())),
                Tok::Start(n) if t.trim().is_empty() => (n, false),
                Tok::Empty(n) if t.trim().is_empty() => (n, true),
                other => return err(format!("unexpected {} in <value>", describe(&other))),
            },
            Tok::Start(n) => (n, false),
            Tok::Empty(n) => (n, true),
            other => return err(format!("unexpected {} in <value>", describe(&other))),
        };
        let v = match tag.as_ref() {
            "string" => Value::String(self.text_until_close(&tag, empty)?.into_owned()),
            "int" | "i4" | "i8" | "i1" | "i2" | "biginteger" => {
                let t = self.text_until_close(&tag, empty)?;
                let t = t.trim();
                Value::Int(
                    t.parse::<i64>()
                        .map_err(|_| ParseError(format!("bad integer {t:?}")))?,
                )
            }
            "boolean" => {
                let t = self.text_until_close(&tag, empty)?;
                match t.trim() {
                    "0" => Value::Bool(false),
                    "1" => Value::Bool(true),
                    o => return err(format!("bad boolean value {o:?}")),
                }
            }
            "double" | "float" => {
                let t = self.text_until_close(&tag, empty)?;
                let t = t.trim();
                Value::Double(
                    t.parse::<f64>()
                        .map_err(|_| ParseError(format!("bad double {t:?}")))?,
                )
            }
            "nil" | "ex:nil" => {
                if !empty {
                    self.close(&tag)?;
                }
                Value::Nil
            }
            "dateTime.iso8601" => {
                Value::DateTime(self.text_until_close(&tag, empty)?.trim().to_string())
            }
            "base64" => {
                use base64::Engine as _;
                let t = self.text_until_close(&tag, empty)?;
                let clean: String = t.chars().filter(|c| !c.is_ascii_whitespace()).collect();
                Value::Base64(
                    base64::engine::general_purpose::STANDARD
                        .decode(clean)
                        .map_err(|e| ParseError(format!("bad base64: {e}")))?,
                )
            }
            "array" => {
                let mut items = Vec::new();
                if !empty {
                    let data_empty = self.open("data")?;
                    if !data_empty {
                        loop {
                            self.skip_ws()?;
                            match self.peek()? {
                                Tok::End(n) if n == "data" => {
                                    self.peeked = None;
                                    break;
                                }
                                _ => {
                                    let max = self.limits.max_array_items;
                                    if items.len() == max {
                                        return err(format!(
                                            "an array has more than {max} items, the hub's \
                                             array length limit"
                                        ));
                                    }
                                    items.push(self.value(depth + 1)?)
                                }
                            }
                        }
                    }
                    self.close("array")?;
                }
                Value::Array(items)
            }
            "struct" => {
                let mut s = Struct::new();
                let mut members = 0usize;
                if !empty {
                    loop {
                        match self.next_sig()? {
                            Tok::End(n) if n == "struct" => break,
                            Tok::Start(n) if n == "member" => {
                                let max = self.limits.max_struct_members;
                                members += 1;
                                if members > max {
                                    return err(format!(
                                        "a struct has more than {max} members, the hub's struct \
                                         member limit"
                                    ));
                                }
                                let name_empty = self.open("name")?;
                                let name = self.text_until_close("name", name_empty)?;
                                let v = self.value(depth + 1)?;
                                self.close("member")?;
                                s.insert(name.into_owned(), v);
                            }
                            t => return err(format!("unexpected {} in <struct>", describe(&t))),
                        }
                    }
                }
                Value::Struct(s)
            }
            other => return err(format!("unknown value type <{other}>")),
        };
        self.close("value")?;
        Ok(v)
    }

    fn params(&mut self) -> Result<Vec<Value>, ParseError> {
        let mut params = Vec::new();
        match self.next_sig()? {
            Tok::Empty(n) if n == "params" => return Ok(params),
            Tok::Start(n) if n == "params" => {}
            t => return err(format!("expected <params>, found {}", describe(&t))),
        }
        loop {
            match self.next_sig()? {
                Tok::End(n) if n == "params" => return Ok(params),
                Tok::Start(n) if n == "param" => {
                    params.push(self.value(0)?);
                    self.close("param")?;
                }
                t => return err(format!("unexpected {} in <params>", describe(&t))),
            }
        }
    }

    fn expect_eof(&mut self) -> Result<(), ParseError> {
        match self.next_sig()? {
            Tok::Eof => Ok(()),
            t => err(format!("trailing {} after the document", describe(&t))),
        }
    }
}

/// The element names of XML-RPC as static strings, anything else owned (it only ends in an error).
/// XML 1.0 allows no control character but tab, newline and carriage return, raw or as a
/// reference. expat (Koji's reader) refuses such a document, and the writer could not send the
/// text back (it writes U+FFFD for them), so a request that carried one would be stored and
/// answered changed.
fn forbidden_control(c: u32) -> bool {
    c < 0x20 && !matches!(c, 0x09 | 0x0a | 0x0d)
}

/// [`forbidden_control`] over raw text bytes (multi-byte UTF-8 sequences hold no byte below
/// 0x80); `end` is the reader's position after the text.
fn refuse_controls(raw: &str, end: u64) -> Result<(), ParseError> {
    match raw.bytes().find(|&b| forbidden_control(u32::from(b))) {
        None => Ok(()),
        Some(b) => err(format!(
            "not well-formed (invalid token): control character {b:#04x} in text before byte {end}"
        )),
    }
}

fn elem_name(raw: &str) -> Cow<'static, str> {
    const KNOWN: &[&str] = &[
        "value",
        "member",
        "name",
        "string",
        "int",
        "i4",
        "i8",
        "struct",
        "array",
        "data",
        "boolean",
        "nil",
        "double",
        "param",
        "params",
        "methodCall",
        "methodName",
        "methodResponse",
        "fault",
        "base64",
        "dateTime.iso8601",
        "float",
        "ex:nil",
        "i1",
        "i2",
        "biginteger",
    ];
    match KNOWN.iter().find(|k| **k == raw) {
        Some(k) => Cow::Borrowed(k),
        None => Cow::Owned(raw.to_string()),
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Start(n) => format!("<{n}>"),
        Tok::End(n) => format!("</{n}>"),
        Tok::Empty(n) => format!("<{n}/>"),
        Tok::Text(_) => "text".to_string(),
        Tok::Eof => "end of document".to_string(),
    }
}

/// Parses a `<methodCall>` the hub stored itself (a task request): no limits but the depth.
pub fn parse_call(body: &[u8]) -> Result<MethodCall, ParseError> {
    parse_call_limited(body, Limits::NONE)
}

/// Parses a `<methodCall>` request body from a client, refusing anything over `limits`.
pub fn parse_request(body: &[u8]) -> Result<MethodCall, ParseError> {
    parse_call_limited(body, Limits::REQUEST)
}

fn parse_call_limited(body: &[u8], limits: Limits) -> Result<MethodCall, ParseError> {
    let mut p = Parser::new(body, limits);
    p.open("methodCall")?;
    let empty = p.open("methodName")?;
    let name = p.text_until_close("methodName", empty)?.trim().to_string();
    if name.is_empty() {
        return err("empty method name");
    }
    p.skip_ws()?;
    let params = match p.peek()? {
        Tok::End(n) if n == "methodCall" => Vec::new(),
        _ => p.params()?,
    };
    p.close("methodCall")?;
    p.expect_eof()?;
    Ok(MethodCall { name, params })
}

/// Parses a `<methodResponse>`: the value, or the fault it carries.
pub fn parse_response(body: &[u8]) -> Result<Result<Value, Fault>, ParseError> {
    let mut p = Parser::new(body, Limits::NONE);
    p.open("methodResponse")?;
    let out = match p.next_sig()? {
        Tok::Start(n) if n == "params" => {
            p.open("param")?;
            let v = p.value(0)?;
            p.close("param")?;
            p.close("params")?;
            Ok(v)
        }
        Tok::Start(n) if n == "fault" => {
            let v = p.value(0)?;
            p.close("fault")?;
            let s = v
                .as_struct()
                .ok_or_else(|| ParseError("fault is not a struct".into()))?;
            let code = s.get("faultCode").and_then(Value::as_int).unwrap_or(1);
            let msg = s
                .get("faultString")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            Err(Fault::raw(i32::try_from(code).unwrap_or(1), msg))
        }
        t => {
            return err(format!(
                "expected <params> or <fault>, found {}",
                describe(&t)
            ));
        }
    };
    p.close("methodResponse")?;
    p.expect_eof()?;
    Ok(out)
}

/// Appends `s` with the escapes Python's marshaller uses; control characters that XML 1.0
/// forbids become U+FFFD (Python would write them raw, and no client could parse the answer).
fn escape_into(out: &mut String, s: &str) {
    let mut last = 0;
    for (i, b) in s.bytes().enumerate() {
        let rep = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'\r' => "&#13;",
            // Control characters XML 1.0 cannot carry at all, not even as references (a NUL in
            // an upload name quoted by a fault): U+FFFD keeps the document well-formed.
            0..=8 | 11 | 12 | 14..=31 => "\u{FFFD}",
            _ => continue,
        };
        out.push_str(&s[last..i]);
        out.push_str(rep);
        last = i + 1;
    }
    out.push_str(&s[last..]);
}

/// Python's `repr(float)`: shortest round-trip digits, `.0` on integral values, and the
/// exponent form (`1e+16`) where Python switches to it.
pub fn python_float(d: f64) -> Cow<'static, str> {
    if d.is_nan() {
        return Cow::Borrowed("nan");
    }
    if d.is_infinite() {
        return Cow::Borrowed(if d > 0.0 { "inf" } else { "-inf" });
    }
    let abs = d.abs();
    if abs != 0.0 && !(1e-4..1e16).contains(&abs) {
        // Rust's `{:e}` gives `1e16` / `1.5e-5`; Python writes `1e+16` / `1.5e-05`.
        let s = format!("{d:e}");
        if let Some((mant, exp)) = s.split_once('e') {
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', exp),
            };
            return Cow::Owned(format!("{mant}e{sign}{digits:0>2}"));
        }
        return Cow::Owned(s);
    }
    let s = format!("{d}");
    if s.contains('.') {
        Cow::Owned(s)
    } else {
        Cow::Owned(format!("{s}.0"))
    }
}

fn write_value(out: &mut String, v: &Value) {
    out.push_str("<value>");
    match v {
        Value::Nil => out.push_str("<nil/>"),
        Value::Bool(b) => out.push_str(if *b {
            "<boolean>1</boolean>"
        } else {
            "<boolean>0</boolean>"
        }),
        Value::Int(i) => {
            if i32::try_from(*i).is_ok() {
                let _ = write!(out, "<int>{i}</int>");
            } else {
                let _ = write!(out, "<i8>{i}</i8>");
            }
        }
        Value::Double(d) => {
            out.push_str("<double>");
            out.push_str(&python_float(*d));
            out.push_str("</double>");
        }
        Value::String(s) => {
            out.push_str("<string>");
            escape_into(out, s);
            out.push_str("</string>");
        }
        Value::Base64(b) => {
            use base64::Engine as _;
            out.push_str("<base64>");
            out.push_str(&base64::engine::general_purpose::STANDARD.encode(b));
            out.push_str("</base64>");
        }
        Value::DateTime(s) => {
            out.push_str("<dateTime.iso8601>");
            escape_into(out, s);
            out.push_str("</dateTime.iso8601>");
        }
        Value::Array(items) => {
            out.push_str("<array><data>\n");
            for it in items {
                write_value(out, it);
                out.push('\n');
            }
            out.push_str("</data></array>");
        }
        Value::Struct(s) => {
            out.push_str("<struct>\n");
            for (k, v) in s.iter() {
                out.push_str("<member>\n<name>");
                escape_into(out, k);
                out.push_str("</name>\n");
                write_value(out, v);
                out.push_str("\n</member>\n");
            }
            out.push_str("</struct>");
        }
    }
    out.push_str("</value>");
}

/// Serialises a successful `<methodResponse>`.
pub fn write_response(v: &Value) -> String {
    let mut out = String::with_capacity(256);
    out.push_str("<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n");
    write_value(&mut out, v);
    out.push_str("\n</param>\n</params>\n</methodResponse>\n");
    out
}

/// Serialises a fault `<methodResponse>`, members in Python's order.
pub fn write_fault(f: &Fault) -> String {
    let mut out = String::with_capacity(256);
    out.push_str("<?xml version='1.0'?>\n<methodResponse>\n<fault>\n");
    write_value(&mut out, &Value::Struct(f.to_struct()));
    out.push_str("\n</fault>\n</methodResponse>\n");
    out
}

/// Serialises a `<methodCall>`; Koji stores task requests in exactly this form.
pub fn write_call(name: &str, params: &[Value]) -> String {
    let mut out = String::with_capacity(256);
    out.push_str("<?xml version='1.0'?>\n<methodCall>\n<methodName>");
    escape_into(&mut out, name);
    out.push_str("</methodName>\n<params>\n");
    for p in params {
        out.push_str("<param>\n");
        write_value(&mut out, p);
        out.push_str("\n</param>\n");
    }
    out.push_str("</params>\n</methodCall>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_call() {
        let mut s = Struct::new();
        s.insert("", Value::Int(1));
        s.insert("__starstar", true);
        let params = vec![
            Value::Int(7),
            Value::Int(5_000_000_000),
            Value::Nil,
            Value::str("a<b&c\r"),
            Value::Double(1.5),
            Value::Array(vec![]),
            Value::Struct(s),
        ];
        let xml = write_call("echo", &params);
        assert!(xml.contains("<i8>5000000000</i8>") && xml.contains("<int>7</int>"));
        let back = parse_call(xml.as_bytes()).expect("parses");
        assert_eq!(back.name, "echo");
        assert_eq!(back.params, params);
    }

    /// Found by the `xmlrpc_request` fuzz target: a method name (or any text) with a raw NUL
    /// was accepted, then written back with U+FFFD in its place. expat refuses both forms.
    #[test]
    fn refuses_control_characters() {
        let raw = b"<methodCall><methodName>ge\0\0stru\x010er</methodName></methodCall>";
        let e = parse_call(raw).unwrap_err();
        assert!(e.0.contains("control character 0x00"), "{e}");
        let cdata = b"<methodCall><methodName>x</methodName><params><param><value>\
<![CDATA[a\x1fb]]></value></param></params></methodCall>";
        assert!(parse_call(cdata).unwrap_err().0.contains("0x1f"));
        let reference = b"<methodResponse><params><param><value>a&#1;b</value></param>\
</params></methodResponse>";
        let e = parse_response(reference).unwrap_err();
        assert!(e.0.contains("invalid character number 0x1"), "{e}");
        assert!(parse_call(b"<methodCall><methodName>&#xFFFE;</methodName></methodCall>").is_err());
        // Tab, newline and carriage return stay text, raw or as references.
        let ok = b"<methodCall><methodName>x</methodName><params><param><value>a\t\n\r&#9;&#13;b\
</value></param></params></methodCall>";
        assert_eq!(
            parse_call(ok).unwrap().params[0],
            Value::str("a\t\n\n\t\rb")
        );
    }

    #[test]
    fn python_forms() {
        let body = b"<?xml version='1.0'?>\n<methodCall><methodName>x</methodName><params>\
<param><value>bare</value></param><param><value/></param><param><value><i4>3</i4></value></param>\
<param><value><struct><member><name></name><value><ex:nil/></value></member></struct></value></param>\
</params></methodCall>";
        let c = parse_call(body).expect("parses");
        assert_eq!(c.params[0], Value::str("bare"));
        assert_eq!(c.params[1], Value::str(""));
        assert_eq!(c.params[2], Value::Int(3));
        assert_eq!(
            c.params[3].as_struct().and_then(|s| s.get("")),
            Some(&Value::Nil)
        );
    }

    #[test]
    fn rejects_doctype_and_deep_nesting() {
        let body = b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]><methodCall><methodName>x</methodName></methodCall>";
        assert!(parse_call(body).is_err());
        let mut deep = String::from("<methodCall><methodName>x</methodName><params><param>");
        for _ in 0..100 {
            deep.push_str("<value><array><data>");
        }
        assert!(parse_call(deep.as_bytes()).is_err());
    }

    fn call_with(param: &str) -> Vec<u8> {
        format!("<methodCall><methodName>x</methodName><params><param>{param}</param></params></methodCall>")
            .into_bytes()
    }

    #[test]
    fn request_limits() {
        let l = Limits::REQUEST;
        let items = |n: usize| {
            format!(
                "<value><array><data>{}</data></array></value>",
                "<value/>".repeat(n)
            )
        };
        assert!(parse_request(&call_with(&items(l.max_array_items))).is_ok());
        let e = parse_request(&call_with(&items(l.max_array_items + 1))).unwrap_err();
        assert!(e.0.contains("more than 100000 items"), "{e}");
        // Responses and stored requests are not limited.
        assert!(parse_call(&call_with(&items(l.max_array_items + 1))).is_ok());

        let members = |n: usize| {
            let m: String = (0..n)
                .map(|i| format!("<member><name>m{i}</name><value/></member>"))
                .collect();
            format!("<value><struct>{m}</struct></value>")
        };
        assert!(parse_request(&call_with(&members(l.max_struct_members))).is_ok());
        let e = parse_request(&call_with(&members(l.max_struct_members + 1))).unwrap_err();
        assert!(e.0.contains("more than 1000 members"), "{e}");
        // Repeated names count too: each insert still compares against every member.
        let repeated = format!(
            "<value><struct>{}</struct></value>",
            "<member><name>a</name><value/></member>".repeat(l.max_struct_members + 1)
        );
        assert!(parse_request(&call_with(&repeated)).is_err());

        let big = "a".repeat(l.max_string_bytes + 1);
        let e = parse_request(&call_with(&format!(
            "<value><string>{big}</string></value>"
        )))
        .unwrap_err();
        assert!(e.0.contains("a string of 16777217 bytes"), "{e}");
        let e = parse_request(&call_with(&format!(
            "<value><struct><member><name>{big}</name><value/></member></struct></value>"
        )))
        .unwrap_err();
        assert!(e.0.contains("string length limit"), "{e}");
        assert!(parse_request(&call_with(&format!("<value>{}</value>", &big[1..]))).is_ok());
    }

    #[test]
    fn control_characters_stay_well_formed() {
        let xml = write_fault(&Fault::generic("Invalid upload filename: f\0.txt\x01\t\n"));
        let back = parse_response(xml.as_bytes()).expect("parses");
        assert_eq!(
            back.unwrap_err().message,
            "Invalid upload filename: f\u{FFFD}.txt\u{FFFD}\t\n"
        );
    }

    #[test]
    fn floats_like_python() {
        assert_eq!(python_float(1.0), "1.0");
        assert_eq!(python_float(1704067200.5), "1704067200.5");
        assert_eq!(python_float(1e16), "1e+16");
        assert_eq!(python_float(1.5e-5), "1.5e-05");
    }

    #[test]
    fn fault_response_round_trip() {
        let f = Fault::generic("Invalid method: nosuch");
        let r = parse_response(write_fault(&f).as_bytes()).expect("parses");
        assert_eq!(r, Err(f));
    }
}
