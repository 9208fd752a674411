//! The `opts` of a `buildContainer` task: the JSON schema in
//! `plugin-spec/buildcontainer-opts.schema.json` (koji-containerbuild 1.4.0
//! `BuildContainerTask.PARAMS_SCHEMA`), then the plugin's and osbs-client's rules, in their order.
//!
//! The schema file is the contract: [`FIELDS`] is this validator's copy of its properties and a
//! unit test holds the two equal (names, order, types). Schema violations fail like the plugin's
//! `jsonschema.validate` does under kojid: fault 1 (not a Koji exception) with jsonschema's own
//! message, path and instance, without the traceback and schema dump. The rules after the schema
//! use the plugin's exact texts; see `plugin-spec/buildcontainer.md` for the table.

use crate::xmlrpc::{Fault, FaultCode, Struct, Value};

/// The schema file, as served and as tested against [`FIELDS`].
pub const SCHEMA_JSON: &str = include_str!("../../plugin-spec/buildcontainer-opts.schema.json");

/// koji-containerbuild's `ContainerError.faultCode`.
pub const CONTAINER_ERROR: i32 = 2001;
/// koji-containerbuild's `ContainerCancelled.faultCode`.
pub const CONTAINER_CANCELLED: i32 = 2002;
/// osbs-client's `ISOLATED_RELEASE_FORMAT`.
pub const ISOLATED_RELEASE_FORMAT: &str = r"^\d+\.\d+(\..+)?$";

/// `koji.BuildError` (1005).
pub fn build_error(message: impl Into<String>) -> Fault {
    Fault::new(FaultCode::Build, message)
}

/// koji-containerbuild's `ContainerError` (2001).
pub fn container_error(message: impl Into<String>) -> Fault {
    Fault::raw(CONTAINER_ERROR, message)
}

/// A JSON-schema type name as used in the schema file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonType {
    Boolean,
    String,
    Integer,
    Array,
    Object,
    Null,
}

impl JsonType {
    pub fn name(self) -> &'static str {
        match self {
            JsonType::Boolean => "boolean",
            JsonType::String => "string",
            JsonType::Integer => "integer",
            JsonType::Array => "array",
            JsonType::Object => "object",
            JsonType::Null => "null",
        }
    }

    /// jsonschema's draft-07 type check on the Python value XML-RPC produced: a bool is not an
    /// integer, a float with no fraction is one.
    pub fn matches(self, v: &Value) -> bool {
        match self {
            JsonType::Boolean => matches!(v, Value::Bool(_)),
            JsonType::String => matches!(v, Value::String(_)),
            JsonType::Integer => match v {
                Value::Int(_) => true,
                Value::Double(d) => d.is_finite() && d.fract() == 0.0,
                _ => false,
            },
            JsonType::Array => matches!(v, Value::Array(_)),
            JsonType::Object => matches!(v, Value::Struct(_)),
            JsonType::Null => matches!(v, Value::Nil),
        }
    }
}

/// One property of the opts schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub name: &'static str,
    pub types: &'static [JsonType],
    /// The `items` type of an array property.
    pub items: Option<JsonType>,
}

use JsonType as T;

const fn field(name: &'static str, types: &'static [JsonType], items: Option<JsonType>) -> Field {
    Field { name, types, items }
}

/// The schema's properties in file order (= the plugin's order, which decides which error
/// jsonschema reports first).
pub const FIELDS: &[Field] = &[
    field("scratch", &[T::Boolean], None),
    field("isolated", &[T::Boolean], None),
    field(
        "dependency_replacements",
        &[T::Array, T::Null],
        Some(T::String),
    ),
    field("yum_repourls", &[T::Array, T::Null], Some(T::String)),
    field("arch_override", &[T::String, T::Null], None),
    field("git_branch", &[T::String, T::Null], None),
    field("koji_parent_build", &[T::String, T::Null], None),
    field("release", &[T::String, T::Null], None),
    field("flatpak", &[T::Boolean], None),
    field("compose_ids", &[T::Array, T::Null], Some(T::Integer)),
    field("signing_intent", &[T::String, T::Null], None),
    field("skip_build", &[T::Boolean], None),
    field("userdata", &[T::Object], None),
    field(
        "operator_csv_modifications_url",
        &[T::String, T::Null],
        None,
    ),
];

/// Which of the three build variations a task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildKind {
    Normal,
    Scratch,
    Isolated,
}

/// Validated opts. Empty strings and lists count as absent, as the plugin's `if opts.get(..)`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BuildOpts {
    pub scratch: bool,
    pub isolated: bool,
    pub dependency_replacements: Vec<String>,
    pub yum_repourls: Vec<String>,
    /// `arch_override` split on whitespace (the CLI sends a space-separated string); a blank
    /// one is an empty list, which matches no arch.
    pub arch_override: Option<Vec<String>>,
    pub git_branch: String,
    pub koji_parent_build: Option<String>,
    pub release: Option<String>,
    pub flatpak: bool,
    pub compose_ids: Vec<i64>,
    pub signing_intent: Option<String>,
    pub skip_build: Option<bool>,
    pub userdata: Option<Struct>,
    pub operator_csv_modifications_url: Option<String>,
    /// Lines for the task log (not user warnings): `skip_build: false` is deprecated.
    pub log_warnings: Vec<String>,
}

impl BuildOpts {
    /// Validate a task's `opts` (the third request parameter): schema, then rules.
    pub fn from_value(opts: &Value) -> Result<BuildOpts, Fault> {
        let mut errors = Vec::new();
        check_opts_schema(opts, &mut errors);
        if let Some(e) = best_match(errors) {
            return Err(e.into_fault());
        }
        Self::after_schema(opts)
    }

    /// Validate a whole `buildContainer` request `[src, target, opts]` the way the handler is
    /// called (`handler(src, target, opts=None)`) and validated (`[src, target, opts]` against
    /// the params schema).
    pub fn from_params(params: &[Value]) -> Result<(String, String, BuildOpts), Fault> {
        match params.len() {
            0 => {
                return Err(type_error(
                    "handler() missing 2 required positional arguments: 'src' and 'target'",
                ));
            }
            1 => {
                return Err(type_error(
                    "handler() missing 1 required positional argument: 'target'",
                ));
            }
            2 | 3 => {}
            n => {
                return Err(type_error(&format!(
                    "handler() takes from 3 to 4 positional arguments but {} were given",
                    n + 1
                )));
            }
        }
        let opts = params.get(2).unwrap_or(&Value::Nil);
        let mut errors = Vec::new();
        for (i, what) in params.iter().take(2).enumerate() {
            if !JsonType::String.matches(what) {
                errors.push(SchemaError::type_error(
                    what,
                    &[JsonType::String],
                    format!("['items'][{i}]"),
                    format!("[{i}]"),
                    1,
                ));
            }
        }
        check_opts_schema(opts, &mut errors);
        if let Some(e) = best_match(errors) {
            return Err(e.into_fault());
        }
        let src = params[0].as_str().unwrap_or_default().to_string();
        let target = params[1].as_str().unwrap_or_default().to_string();
        Ok((src, target, Self::after_schema(opts)?))
    }

    /// The variation: scratch, isolated or a normal build.
    pub fn kind(&self) -> BuildKind {
        if self.scratch {
            BuildKind::Scratch
        } else if self.isolated {
            BuildKind::Isolated
        } else {
            BuildKind::Normal
        }
    }

    fn after_schema(opts: &Value) -> Result<BuildOpts, Fault> {
        let s = opts.as_struct().cloned().unwrap_or_default();
        let text = |k: &str| -> Option<String> {
            s.get(k)
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let flag = |k: &str| matches!(s.get(k), Some(Value::Bool(true)));
        let strings = |k: &str| -> Vec<String> {
            s.get(k)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut o = BuildOpts {
            scratch: flag("scratch"),
            isolated: flag("isolated"),
            dependency_replacements: strings("dependency_replacements"),
            yum_repourls: strings("yum_repourls"),
            arch_override: text("arch_override")
                .map(|a| a.split_whitespace().map(str::to_string).collect::<Vec<_>>()),
            git_branch: text("git_branch").unwrap_or_default(),
            koji_parent_build: text("koji_parent_build"),
            release: text("release"),
            flatpak: flag("flatpak"),
            compose_ids: s
                .get("compose_ids")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| match v {
                            Value::Int(i) => Some(*i),
                            Value::Double(d) => Some(*d as i64),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            signing_intent: text("signing_intent"),
            skip_build: match s.get("skip_build") {
                Some(Value::Bool(b)) => Some(*b),
                _ => None,
            },
            userdata: s.get("userdata").and_then(Value::as_struct).cloned(),
            operator_csv_modifications_url: text("operator_csv_modifications_url"),
            log_warnings: Vec::new(),
        };

        // koji-containerbuild handler(), in its order.
        if o.git_branch.is_empty() {
            return Err(build_error("Git branch must be specified"));
        }
        if o.scratch && o.isolated {
            return Err(build_error("Build cannot be both isolated and scratch"));
        }
        // getArchList() (runs after the target lookup in the plugin; it depends on opts only).
        if o.arch_override.is_some() && !(o.scratch || o.isolated) {
            return Err(build_error(
                "arch-override is only allowed for isolated or scratch builds",
            ));
        }
        // The plugin refuses Flatpak itself (BuildError) when its builder cannot build them.
        if o.flatpak {
            return Err(build_error(
                "Unsupported option flatpak: this build service does not build Flatpaks",
            ));
        }
        // createContainer().
        match o.skip_build {
            Some(true) => {
                return Err(build_error("'skip_build' functionality has been removed"));
            }
            Some(false) => o
                .log_warnings
                .push("deprecated option 'skip_build' in build params".into()),
            None => {}
        }
        if o.signing_intent.is_some() && !o.compose_ids.is_empty() {
            return Err(build_error("signing_intent used with compose_ids"));
        }
        // osbs-client create_binary_container_pipeline_run(), whose refusals reach the user as
        // ContainerError.
        if o.operator_csv_modifications_url.is_some() && !o.isolated {
            return Err(container_error(
                "Only isolated build can update operator CSV metadata",
            ));
        }
        if o.isolated {
            match &o.release {
                None => {
                    return Err(container_error(
                        "OSBS validation exception: The release parameter is required for isolated builds.",
                    ));
                }
                Some(r) if !is_isolated_release(r) => {
                    return Err(container_error(format!(
                        "OSBS validation exception: For isolated builds, the release value must be in the format: {ISOLATED_RELEASE_FORMAT}"
                    )));
                }
                Some(_) => {}
            }
        }
        // Services this build service does not have. OSBS hands these to ODCS / Cachito /
        // its operator tooling; a refusal there fails the build with ContainerError.
        let unsupported = [
            (
                !o.compose_ids.is_empty(),
                "compose_ids",
                "this build service has no ODCS, so it cannot use ODCS composes",
            ),
            (
                o.signing_intent.is_some(),
                "signing_intent",
                "this build service has no ODCS, so there are no signing intents to choose",
            ),
            (
                !o.dependency_replacements.is_empty(),
                "dependency_replacements",
                "this build service has no Cachito or Hermeto remote sources to replace dependencies in",
            ),
            (
                o.operator_csv_modifications_url.is_some(),
                "operator_csv_modifications_url",
                "this build service does not modify operator CSV metadata",
            ),
        ];
        if let Some((_, name, why)) = unsupported.iter().find(|(hit, _, _)| *hit) {
            return Err(container_error(format!("Unsupported option {name}: {why}")));
        }
        Ok(o)
    }
}

/// `re.match(r'^\d+\.\d+(\..+)?$', release)` (Python's `$` also matches before a final `\n`).
pub fn is_isolated_release(release: &str) -> bool {
    let r = release.strip_suffix('\n').unwrap_or(release);
    let digits = |s: &str| -> usize { s.bytes().take_while(u8::is_ascii_digit).count() };
    let a = digits(r);
    if a == 0 || r.as_bytes().get(a) != Some(&b'.') {
        return false;
    }
    let rest = &r[a + 1..];
    let b = digits(rest);
    if b == 0 {
        return false;
    }
    let tail = &rest[b..];
    tail.is_empty() || (tail.starts_with('.') && tail.len() > 1 && !tail[1..].contains('\n'))
}

fn type_error(message: &str) -> Fault {
    Fault::raw(FaultCode::Unknown as i32, format!("TypeError: {message}"))
}

/// One jsonschema `ValidationError`.
#[derive(Debug, Clone, PartialEq)]
struct SchemaError {
    message: String,
    validator: &'static str,
    /// Below `schema`, e.g. `['items'][2]['properties']['scratch']`.
    schema_path: String,
    /// Below `instance`, e.g. `[2]['scratch']`.
    instance_path: String,
    instance: Value,
    /// `len(error.path)`: jsonschema's `best_match` prefers the shallowest error.
    depth: usize,
}

impl SchemaError {
    fn type_error(
        v: &Value,
        types: &[JsonType],
        schema_path: String,
        instance_path: String,
        depth: usize,
    ) -> SchemaError {
        let reprs: Vec<String> = types.iter().map(|t| format!("'{}'", t.name())).collect();
        SchemaError {
            message: format!("{} is not of type {}", py_repr(v), reprs.join(", ")),
            validator: "type",
            schema_path,
            instance_path,
            instance: v.clone(),
            depth,
        }
    }

    fn into_fault(self) -> Fault {
        Fault::raw(
            FaultCode::Unknown as i32,
            format!(
                "jsonschema.exceptions.ValidationError: {}\n\nFailed validating '{}' in schema{}\n\nOn instance{}:\n    {}",
                self.message,
                self.validator,
                self.schema_path,
                self.instance_path,
                py_repr(&self.instance)
            ),
        )
    }
}

/// `jsonschema.exceptions.best_match`: the shallowest error, the first among equals.
fn best_match(errors: Vec<SchemaError>) -> Option<SchemaError> {
    let mut best: Option<SchemaError> = None;
    for e in errors {
        if best.as_ref().is_none_or(|b| e.depth < b.depth) {
            best = Some(e);
        }
    }
    best
}

/// Every error of `opts` against the schema, in jsonschema's iteration order
/// (`type`, then `properties` in schema order, then `additionalProperties`).
fn check_opts_schema(opts: &Value, errors: &mut Vec<SchemaError>) {
    let Some(s) = opts.as_struct() else {
        errors.push(SchemaError::type_error(
            opts,
            &[JsonType::Object],
            "['items'][2]".into(),
            "[2]".into(),
            1,
        ));
        return;
    };
    for f in FIELDS {
        let Some(v) = s.get(f.name) else { continue };
        if !f.types.iter().any(|t| t.matches(v)) {
            errors.push(SchemaError::type_error(
                v,
                f.types,
                format!("['items'][2]['properties'][{}]", py_str(f.name)),
                format!("[2][{}]", py_str(f.name)),
                2,
            ));
            continue;
        }
        if let (Some(item_type), Value::Array(items)) = (f.items, v) {
            for (i, item) in items.iter().enumerate() {
                if !item_type.matches(item) {
                    errors.push(SchemaError::type_error(
                        item,
                        &[item_type],
                        format!("['items'][2]['properties'][{}]['items']", py_str(f.name)),
                        format!("[2][{}][{i}]", py_str(f.name)),
                        3,
                    ));
                }
            }
        }
    }
    let mut extras: Vec<&str> = s
        .keys()
        .filter(|k| !FIELDS.iter().any(|f| f.name == *k))
        .collect();
    if !extras.is_empty() {
        extras.sort_unstable();
        let verb = if extras.len() == 1 { "was" } else { "were" };
        let list: Vec<String> = extras.iter().map(|k| py_str(k)).collect();
        errors.push(SchemaError {
            message: format!(
                "Additional properties are not allowed ({} {verb} unexpected)",
                list.join(", ")
            ),
            validator: "additionalProperties",
            schema_path: "['items'][2]".into(),
            instance_path: "[2]".into(),
            instance: opts.clone(),
            depth: 1,
        });
    }
}

pub(crate) use crate::xmlrpc::value::{py_repr, py_str};

#[cfg(test)]
mod tests {
    use super::*;

    /// The schema file's properties, in file order, with their types and item types.
    fn schema_fields() -> Vec<(String, Vec<String>, Option<String>)> {
        // serde_json's map is sorted; read the property order from the text itself.
        let schema: serde_json::Value = serde_json::from_str(SCHEMA_JSON).unwrap();
        assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["additionalProperties"], false);
        let props = schema["properties"].as_object().unwrap();
        let mut names: Vec<&String> = props.keys().collect();
        names.sort_by_key(|n| SCHEMA_JSON.find(&format!("\n    \"{n}\": {{")).unwrap());
        names
            .into_iter()
            .map(|n| {
                let p = &props[n];
                for k in p.as_object().unwrap().keys() {
                    assert!(
                        ["type", "items", "description"].contains(&k.as_str()),
                        "{n}: keyword {k} is not implemented by the validator"
                    );
                }
                let types = match &p["type"] {
                    serde_json::Value::String(s) => vec![s.clone()],
                    serde_json::Value::Array(a) => {
                        a.iter().map(|t| t.as_str().unwrap().to_string()).collect()
                    }
                    other => panic!("{n}: type {other}"),
                };
                let items = p.get("items").map(|i| {
                    assert_eq!(i.as_object().unwrap().len(), 1, "{n}: items has only type");
                    i["type"].as_str().unwrap().to_string()
                });
                (n.clone(), types, items)
            })
            .collect()
    }

    #[test]
    fn fields_are_the_schema_file() {
        let from_file = schema_fields();
        let ours: Vec<(String, Vec<String>, Option<String>)> = FIELDS
            .iter()
            .map(|f| {
                (
                    f.name.to_string(),
                    f.types.iter().map(|t| t.name().to_string()).collect(),
                    f.items.map(|t| t.name().to_string()),
                )
            })
            .collect();
        assert_eq!(ours, from_file);
        // The reference list (containerbuild-plugin.md §3.2), names only.
        let mut names: Vec<&str> = FIELDS.iter().map(|f| f.name).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "arch_override",
                "compose_ids",
                "dependency_replacements",
                "flatpak",
                "git_branch",
                "isolated",
                "koji_parent_build",
                "operator_csv_modifications_url",
                "release",
                "scratch",
                "signing_intent",
                "skip_build",
                "userdata",
                "yum_repourls",
            ]
        );
    }

    #[test]
    fn every_field_lands_in_the_struct() {
        let v = Value::Struct(
            Struct::new()
                .with("scratch", true)
                .with("dependency_replacements", Value::Nil)
                .with("yum_repourls", vec![Value::str("http://r/a.repo")])
                .with("arch_override", "x86_64  aarch64")
                .with("git_branch", "main")
                .with("koji_parent_build", "base-1-1")
                .with("release", "5")
                .with("flatpak", false)
                .with("compose_ids", Value::Nil)
                .with("signing_intent", Value::Nil)
                .with("skip_build", false)
                .with("userdata", Struct::new().with("k", 1))
                .with("operator_csv_modifications_url", ""),
        );
        let o = BuildOpts::from_value(&v).unwrap();
        assert!(o.scratch && !o.isolated && !o.flatpak);
        assert_eq!(o.yum_repourls, ["http://r/a.repo"]);
        assert_eq!(
            o.arch_override,
            Some(vec!["x86_64".to_string(), "aarch64".to_string()])
        );
        assert_eq!(o.git_branch, "main");
        assert_eq!(o.koji_parent_build.as_deref(), Some("base-1-1"));
        assert_eq!(o.release.as_deref(), Some("5"));
        assert_eq!(o.skip_build, Some(false));
        assert_eq!(o.userdata, Some(Struct::new().with("k", 1)));
        assert_eq!(o.operator_csv_modifications_url, None);
        assert_eq!(
            o.log_warnings,
            ["deprecated option 'skip_build' in build params"]
        );
        assert_eq!(o.kind(), BuildKind::Scratch);
    }

    #[test]
    fn isolated_release_format() {
        for ok in ["1.0", "10.2", "1.2.3", "1.2.el9", "1.2.x y", "1.2\n"] {
            assert!(is_isolated_release(ok), "{ok:?}");
        }
        for bad in [
            "1", "1.", ".1", "a.1", "1.a", "1.2.", "1.2.\n", "1.2x", "1.2\n\n", "",
        ] {
            assert!(!is_isolated_release(bad), "{bad:?}");
        }
    }

    #[test]
    fn reprs() {
        assert_eq!(py_str("it's"), "\"it's\"");
        assert_eq!(py_str("a\"b'"), "'a\"b\\''");
        assert_eq!(
            py_repr(&Value::Array(vec![
                Value::Nil,
                Value::Bool(true),
                1.5.into()
            ])),
            "[None, True, 1.5]"
        );
    }
}
