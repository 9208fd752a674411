//! `container.yaml` at the root of a dist-git container repository, and the list of arches a
//! build runs on.
//!
//! The file is checked the way osbs-client does (`RepoConfiguration`: schema `container.json`
//! with `additionalProperties: false`, `osbs.utils.yaml.get_error_message` texts, the
//! `container.yml` typo check, the `autorebuild` / `image_build_method` deprecation warnings).
//! Keys that need a service this build service does not have (ODCS composes, Flatpak, operator
//! manifests, Cachito remote sources) are refused when set, never ignored. The arch list is
//! koji-containerbuild's `getArchList` followed by atomic-reactor's `check_and_set_platforms`.
//!
//! YAML is read with `saphyr` (YAML 1.2 core schema; PyYAML reads 1.1, which only differs for
//! scalars such as `yes`/`no`/`on`/`off`, none of which are meaningful values here). Duplicate
//! keys are an error (PyYAML keeps the last one).

use std::path::Path;

use saphyr::{LoadableYamlNode, ScalarOwned, YamlOwned};

use super::opts::{BuildKind, build_error, container_error, py_repr, py_str};
use crate::xmlrpc::{Fault, Struct, Value};

/// The file's name (osbs-client `REPO_CONTAINER_CONFIG`).
pub const FILE_NAME: &str = "container.yaml";
/// Names osbs-client treats as a typo of [`FILE_NAME`].
pub const TYPO_NAMES: &[&str] = &["container.yml"];
/// Largest `container.yaml` read.
pub const MAX_SIZE: u64 = 1 << 20;

/// What the build uses from `container.yaml`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerYaml {
    /// `platforms.only` (a single string counts as a one-element list).
    pub platforms_only: Vec<String>,
    /// `platforms.not`.
    pub platforms_not: Vec<String>,
    /// `tags`, as written (see [`ContainerYaml::additional_tags`]).
    pub tags: Option<Vec<String>>,
    /// `buildtime_limit` in seconds; 0 = not set.
    pub buildtime_limit: u64,
    /// `set_release_env`: name of an ENV set to the release in every stage.
    pub set_release_env: Option<String>,
    /// User warnings (`user_warnings` of the task result).
    pub user_warnings: Vec<String>,
}

fn file_error(reason: impl std::fmt::Display) -> Fault {
    container_error(format!(
        "Failed to load or validate container file \"{FILE_NAME}\": {reason}"
    ))
}

impl ContainerYaml {
    /// Read `container.yaml` from a checkout (absent = defaults), refusing the `container.yml`
    /// typo as osbs-client does.
    pub fn load(dir: &Path) -> Result<ContainerYaml, Fault> {
        let exists = dir.join(FILE_NAME).exists();
        if let Some(typo) = TYPO_NAMES.iter().find(|t| dir.join(t).exists()) {
            return Err(container_error(if exists {
                format!("This repo contains both {FILE_NAME} and {typo} Please remove {typo}")
            } else {
                format!("Repo contains wrong filename: {typo}, expected: {FILE_NAME}")
            }));
        }
        match super::dockerfile::read_in_checkout(dir, FILE_NAME, MAX_SIZE) {
            Ok(Some(text)) => Self::parse(&text),
            Ok(None) => Ok(ContainerYaml::default()),
            Err(e) => Err(file_error(e)),
        }
    }

    /// Parse and validate the text of a `container.yaml`.
    pub fn parse(text: &str) -> Result<ContainerYaml, Fault> {
        let data = load_yaml(text).map_err(file_error)?;
        validate(&data).map_err(file_error)?;
        let mut cy = ContainerYaml::default();
        let Value::Struct(top) = data else {
            return Ok(cy);
        };
        if top.get("autorebuild").is_some() {
            cy.user_warnings.push(
                "'autorebuild' config is deprecated in OSBS 2.0, this config will be ignored"
                    .into(),
            );
        }
        if top.get("image_build_method").is_some() {
            cy.user_warnings.push(
                "'image_build_method' config is deprecated in OSBS 2.0, this config will be ignored"
                    .into(),
            );
        }
        let unsupported = [
            (
                "compose",
                "this build service has no ODCS to create composes; use yum_repourls",
            ),
            ("flatpak", "this build service does not build Flatpaks"),
            (
                "operator_manifests",
                "this build service does not export or pin operator manifests",
            ),
            (
                "remote_source",
                "this build service has no Cachito or Hermeto to fetch remote sources",
            ),
            (
                "remote_sources",
                "this build service has no Cachito or Hermeto to fetch remote sources",
            ),
            (
                "go",
                "this build service has no Cachito or Hermeto to fetch Go modules",
            ),
        ];
        for (key, why) in unsupported {
            if top.get(key).is_some_and(Value::truthy) {
                return Err(container_error(format!(
                    "Unsupported {FILE_NAME} key '{key}': {why}"
                )));
            }
        }
        if let Some(Value::Struct(p)) = top.get("platforms") {
            cy.platforms_only = make_list(p.get("only"));
            cy.platforms_not = make_list(p.get("not"));
        }
        if let Some(Value::Array(tags)) = top.get("tags") {
            cy.tags = Some(
                tags.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect(),
            );
        }
        if let Some(Value::Int(limit)) = top.get("buildtime_limit") {
            cy.buildtime_limit = u64::try_from(*limit).unwrap_or(0);
        }
        cy.set_release_env = top
            .get("set_release_env")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        Ok(cy)
    }

    /// The `tags` as osbs-client's `AdditionalTagsConfig` keeps them: entries matching
    /// `^[\w.]{0,127}$`, in file order without repeats. The second list has a log line for each
    /// dropped entry.
    pub fn additional_tags(&self) -> (Vec<String>, Vec<String>) {
        let mut keep: Vec<String> = Vec::new();
        let mut log = Vec::new();
        for tag in self.tags.iter().flatten() {
            if tag.is_empty() {
                continue;
            }
            let valid = tag.chars().count() <= 127
                && tag
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '.');
            if !valid {
                log.push(format!(
                    "Invalid additional tag \"{tag}\", must match pattern ^[\\w.]{{0,127}}$"
                ));
            } else if !keep.contains(tag) {
                keep.push(tag.clone());
            }
        }
        (keep, log)
    }

    /// Whether `tags` was given (then it replaces the default floating tags, even when every
    /// entry was dropped: osbs-client's `tags_from_yaml`).
    pub fn tags_from_yaml(&self) -> bool {
        self.tags.as_ref().is_some_and(|t| !t.is_empty())
    }

    /// The build's time limit: `buildtime_limit`, or `default` when unset; above `max` the build
    /// is refused (osbs-client's check).
    pub fn buildtime_limit(&self, default: u64, max: u64) -> Result<u64, Fault> {
        if self.buildtime_limit > max {
            return Err(container_error(format!(
                "Build limit cannot be more than {max} and is set to {}",
                self.buildtime_limit
            )));
        }
        Ok(if self.buildtime_limit == 0 {
            default
        } else {
            self.buildtime_limit
        })
    }
}

fn make_list(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

/// `yaml.safe_load`: one document (none = null) as a plain value tree.
fn load_yaml(text: &str) -> Result<Value, String> {
    let docs = YamlOwned::load_from_str(text).map_err(|e| e.to_string())?;
    match docs.len() {
        0 => Ok(Value::Nil),
        1 => to_value(docs.into_iter().next().unwrap_or(YamlOwned::BadValue)),
        _ => Err("expected a single document in the stream".into()),
    }
}

fn to_value(y: YamlOwned) -> Result<Value, String> {
    Ok(match y {
        YamlOwned::Value(s) => scalar(s),
        YamlOwned::Representation(s, _, _) => Value::String(s),
        YamlOwned::Tagged(_, inner) => to_value(*inner)?,
        YamlOwned::Sequence(items) => Value::Array(
            items
                .into_iter()
                .map(to_value)
                .collect::<Result<Vec<_>, _>>()?,
        ),
        YamlOwned::Mapping(map) => {
            let mut s = Struct::with_capacity(map.len());
            for (k, v) in map {
                let key = match to_value(k)? {
                    Value::String(s) => s,
                    Value::Nil => "None".into(),
                    other => py_repr(&other),
                };
                s.insert(key, to_value(v)?);
            }
            Value::Struct(s)
        }
        YamlOwned::Alias(_) | YamlOwned::BadValue => return Err("invalid YAML node".into()),
    })
}

fn scalar(s: ScalarOwned) -> Value {
    match s {
        ScalarOwned::Null => Value::Nil,
        ScalarOwned::Boolean(b) => Value::Bool(b),
        ScalarOwned::Integer(i) => Value::Int(i),
        ScalarOwned::FloatingPoint(f) => Value::Double(f.into_inner()),
        ScalarOwned::String(s) => Value::String(s),
    }
}

// --- container.json (osbs-client), as jsonschema's Draft4Validator reports it ---------------

/// Top-level keys in schema order; the last three each belong to one `anyOf` alternative.
const COMMON_KEYS: [&str; 11] = [
    "platforms",
    "autorebuild",
    "buildtime_limit",
    "compose",
    "flatpak",
    "operator_manifests",
    "image_build_method",
    "tags",
    "set_release_env",
    "version",
    "remote_sources_version",
];
const ALTERNATIVE_KEYS: [&str; 3] = ["go", "remote_source", "remote_sources"];
const IMAGE_BUILD_METHODS: [&str; 3] = ["docker_api", "imagebuilder", "buildah_bud"];

#[derive(Clone, Copy)]
enum Ty {
    Object,
    Null,
    Array,
    String,
    Integer,
    Number,
    Boolean,
}

impl Ty {
    fn name(self) -> &'static str {
        match self {
            Ty::Object => "object",
            Ty::Null => "null",
            Ty::Array => "array",
            Ty::String => "string",
            Ty::Integer => "integer",
            Ty::Number => "number",
            Ty::Boolean => "boolean",
        }
    }

    /// Draft 4 types: a bool is neither integer nor number, a float is never an integer.
    fn matches(self, v: &Value) -> bool {
        match self {
            Ty::Object => matches!(v, Value::Struct(_)),
            Ty::Null => matches!(v, Value::Nil),
            Ty::Array => matches!(v, Value::Array(_)),
            Ty::String => matches!(v, Value::String(_)),
            Ty::Integer => matches!(v, Value::Int(_)),
            Ty::Number => matches!(v, Value::Int(_) | Value::Double(_)),
            Ty::Boolean => matches!(v, Value::Bool(_)),
        }
    }
}

/// jsonschema's `type` check; false (and a message) when it fails.
fn check_type(v: &Value, types: &[Ty], out: &mut Vec<String>) -> bool {
    if types.iter().any(|t| t.matches(v)) {
        return true;
    }
    let names: Vec<String> = types.iter().map(|t| py_str(t.name())).collect();
    out.push(format!(
        "{} is not of type {}",
        py_repr(v),
        names.join(", ")
    ));
    false
}

/// `type` (integer or number), then `minimum` / `maximum`.
fn check_number(v: &Value, ty: Ty, min: Option<f64>, max: Option<f64>, out: &mut Vec<String>) {
    if !check_type(v, &[ty], out) {
        return;
    }
    let n = match v {
        Value::Int(i) => *i as f64,
        Value::Double(d) => *d,
        _ => return,
    };
    if let Some(m) = min.filter(|m| n < *m) {
        out.push(format!(
            "{} is less than the minimum of {}",
            py_repr(v),
            m as i64
        ));
    }
    if let Some(m) = max.filter(|m| n > *m) {
        out.push(format!(
            "{} is greater than the maximum of {}",
            py_repr(v),
            m as i64
        ));
    }
}

fn check_enum(v: &Value, allowed: &[&str], out: &mut Vec<String>) {
    if allowed.iter().any(|m| v.as_str() == Some(*m)) {
        return;
    }
    let list: Vec<String> = allowed.iter().map(|m| py_str(m)).collect();
    out.push(format!(
        "{} is not one of [{}]",
        py_repr(v),
        list.join(", ")
    ));
}

fn additional_properties(s: &Struct, allowed: &[&str], out: &mut Vec<String>) {
    let mut extras: Vec<&str> = s.keys().filter(|k| !allowed.contains(k)).collect();
    if extras.is_empty() {
        return;
    }
    extras.sort_unstable();
    let verb = if extras.len() == 1 { "was" } else { "were" };
    let list: Vec<String> = extras.iter().map(|k| py_str(k)).collect();
    out.push(format!(
        "Additional properties are not allowed ({} {verb} unexpected)",
        list.join(", ")
    ));
}

/// The messages of one top-level property against its definition. Definitions of keys this
/// service refuses anyway (compose, flatpak, operator_manifests, go, remote_source[s]) are
/// checked for their type only.
fn check_property(key: &str, v: &Value, out: &mut Vec<String>) {
    match key {
        "platforms" => {
            if !check_type(v, &[Ty::Object, Ty::Null], out) {
                return;
            }
            if let Value::Struct(p) = v {
                for sub in ["only", "not"] {
                    let Some(x) = p.get(sub) else { continue };
                    let ok = match x {
                        Value::String(_) => true,
                        Value::Array(a) => a.iter().all(|i| matches!(i, Value::String(_))),
                        _ => false,
                    };
                    if !ok {
                        out.push(format!(
                            "{} is not valid under any of the given schemas",
                            py_repr(x)
                        ));
                    }
                }
                additional_properties(p, &["only", "not"], out);
            }
        }
        "autorebuild" => {
            if !check_type(v, &[Ty::Object, Ty::Null], out) {
                return;
            }
            if let Value::Struct(a) = v {
                let keys = [
                    "from_latest",
                    "add_timestamp_to_release",
                    "ignore_isolated_builds",
                ];
                for k in keys {
                    if let Some(x) = a.get(k) {
                        check_type(x, &[Ty::Boolean], out);
                    }
                }
                additional_properties(a, &keys, out);
            }
        }
        "buildtime_limit" => check_number(v, Ty::Integer, Some(0.0), None, out),
        "compose" | "flatpak" | "remote_source" => {
            check_type(v, &[Ty::Object, Ty::Null], out);
        }
        "operator_manifests" | "go" => {
            check_type(v, &[Ty::Object], out);
        }
        "remote_sources" => {
            check_type(v, &[Ty::Array], out);
        }
        "image_build_method" => check_enum(v, &IMAGE_BUILD_METHODS, out),
        "tags" => {
            if check_type(v, &[Ty::Array], out)
                && let Value::Array(items) = v
            {
                for item in items {
                    check_type(item, &[Ty::String], out);
                }
            }
        }
        "set_release_env" => {
            check_type(v, &[Ty::String], out);
        }
        "version" => check_number(v, Ty::Integer, Some(1.0), None, out),
        "remote_sources_version" => check_number(v, Ty::Number, Some(1.0), Some(2.0), out),
        _ => {}
    }
}

/// `Draft4Validator(container.json).validate(data)`, reduced to osbs-client's message:
/// `<path or 'at top level'>: validating '<validator>' has failed (<messages>)`.
fn validate(data: &Value) -> Result<(), String> {
    let Value::Struct(top) = data else {
        if data.is_nil() {
            return Ok(());
        }
        let mut out = Vec::new();
        check_type(data, &[Ty::Object, Ty::Null], &mut out);
        return Err(format!(
            "at top level: validating 'type' has failed ({})",
            out.join(", ")
        ));
    };
    let mut common = Vec::new();
    for key in COMMON_KEYS {
        if let Some(v) = top.get(key) {
            check_property(key, v, &mut common);
        }
    }
    let mut context: Vec<String> = Vec::new();
    let mut any_valid = false;
    for alt in ALTERNATIVE_KEYS {
        let mut msgs = common.clone();
        if let Some(v) = top.get(alt) {
            check_property(alt, v, &mut msgs);
        }
        let allowed: Vec<&str> = COMMON_KEYS.iter().copied().chain([alt]).collect();
        additional_properties(top, &allowed, &mut msgs);
        if msgs.is_empty() {
            any_valid = true;
            break;
        }
        for m in msgs {
            if !context.contains(&m) {
                context.push(m);
            }
        }
    }
    if any_valid {
        return Ok(());
    }
    Err(format!(
        "at top level: validating 'anyOf' has failed ({})",
        context.join(", ")
    ))
}

// --- arches --------------------------------------------------------------------------------

/// `koji.canonArch`.
pub fn canon_arch(arch: &str) -> &str {
    let b = arch.as_bytes();
    if (b.len() == 4 && b[0] == b'i' && &b[2..] == b"86") || arch == "athlon" {
        "i386"
    } else if arch == "ia32e" {
        "x86_64"
    } else if arch == "ppc64le" {
        "ppc64le"
    } else if arch.starts_with("ppc64") {
        "ppc64"
    } else if arch.starts_with("sparc64") {
        "sparc64"
    } else if arch.starts_with("sparc") {
        "sparc"
    } else if arch.starts_with("alpha") {
        "alpha"
    } else if arch.starts_with("arm") && arch[3..].contains('h') {
        "armhfp"
    } else if arch.starts_with("arm") {
        "arm"
    } else {
        arch
    }
}

/// The build tag as `getBuildConfig` returns it.
#[derive(Debug, Clone, Copy)]
pub struct BuildTag<'a> {
    pub name: &'a str,
    pub id: i64,
    /// Space-separated arches (`arches` of the tag, possibly inherited).
    pub arches: &'a str,
}

/// The arches to build, with log lines for `osbs-build.log`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ArchList {
    pub arches: Vec<String>,
    pub log: Vec<String>,
}

/// The arches a build runs on: koji-containerbuild's `getArchList` (tag arches, or
/// `arch_override` for scratch/isolated builds, filtered by the tag's canonical arches), then
/// atomic-reactor's `check_and_set_platforms` (an override that differs from the tag is used
/// as is, sorted; otherwise the tag's arches ∩ `platforms.only` − `platforms.not`, in tag
/// order). Child tasks are created per arch, so arches without a builder wait in the
/// scheduler rather than being dropped.
pub fn arch_list(
    tag: BuildTag<'_>,
    arch_override: Option<&[String]>,
    kind: BuildKind,
    config: &ContainerYaml,
) -> Result<ArchList, Fault> {
    let tag_arches: Vec<&str> = tag.arches.split_whitespace().collect();
    if tag_arches.is_empty() {
        return Err(build_error(format!(
            "No arches for tag {} [{}]",
            tag.name, tag.id
        )));
    }
    let canon: Vec<&str> = tag_arches.iter().map(|a| canon_arch(a)).collect();
    let override_allowed = matches!(kind, BuildKind::Scratch | BuildKind::Isolated);
    let candidates: Vec<&str> = match arch_override {
        Some(o) if override_allowed => o.iter().map(String::as_str).collect(),
        Some(_) => {
            return Err(build_error(
                "arch-override is only allowed for isolated or scratch builds",
            ));
        }
        _ => tag_arches.clone(),
    };
    let mut koji_list: Vec<String> = Vec::new();
    for a in candidates {
        if (a == "noarch" || canon.contains(&canon_arch(a))) && !koji_list.iter().any(|k| k == a) {
            koji_list.push(a.to_string());
        }
    }
    if koji_list.is_empty() {
        return Err(build_error("No matching arches were found"));
    }

    let mut out = ArchList::default();
    out.log.push(format!(
        "Koji platforms are {}",
        py_sorted_list(&tag_arches)
    ));
    if override_allowed && arch_override.is_some_and(|o| !o.is_empty()) {
        let mut ours: Vec<&str> = koji_list.iter().map(String::as_str).collect();
        ours.sort_unstable();
        let mut theirs = tag_arches.clone();
        theirs.sort_unstable();
        theirs.dedup();
        if ours != theirs {
            out.log.push(format!(
                "Received user specified platforms {}",
                py_sorted_list(&ours)
            ));
            out.log
                .push("Using them instead of koji platforms".to_string());
            out.arches = ours.into_iter().map(str::to_string).collect();
            return Ok(out);
        }
    }
    let only = &config.platforms_only;
    let not = &config.platforms_not;
    if !only.is_empty() {
        let mut a: Vec<&String> = only.iter().collect();
        let mut b: Vec<&String> = not.iter().collect();
        a.sort_unstable();
        a.dedup();
        b.sort_unstable();
        b.dedup();
        if a == b {
            let list: Vec<String> = a.iter().map(|s| py_str(s)).collect();
            out.log.push(format!(
                "only and not platforms are the same: {{{}}}",
                list.join(", ")
            ));
        }
    }
    for a in &tag_arches {
        let keep = (only.is_empty() || only.iter().any(|o| o == a))
            && !not.iter().any(|n| n == a)
            && !out.arches.iter().any(|x| x == a);
        if keep {
            out.arches.push(a.to_string());
        }
    }
    out.log.push(format!(
        "platforms in limits : {}",
        py_sorted_list(&out.arches.iter().map(String::as_str).collect::<Vec<_>>())
    ));
    if out.arches.is_empty() {
        return Err(container_error(
            "Image build failed. No platforms to build for",
        ));
    }
    Ok(out)
}

fn py_sorted_list(items: &[&str]) -> String {
    let mut v: Vec<&str> = items.to_vec();
    v.sort_unstable();
    let list: Vec<String> = v.iter().map(|s| py_str(s)).collect();
    format!("[{}]", list.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_arches() {
        for (a, c) in [
            ("i686", "i386"),
            ("i386", "i386"),
            ("athlon", "i386"),
            ("ia32e", "x86_64"),
            ("x86_64", "x86_64"),
            ("ppc64le", "ppc64le"),
            ("ppc64", "ppc64"),
            ("ppc64p7", "ppc64"),
            ("armv7hl", "armhfp"),
            ("armv7l", "arm"),
            ("aarch64", "aarch64"),
            ("s390x", "s390x"),
        ] {
            assert_eq!(canon_arch(a), c, "{a}");
        }
    }

    #[test]
    fn yaml_values() {
        assert_eq!(load_yaml("").unwrap(), Value::Nil);
        assert_eq!(load_yaml("# only a comment\n").unwrap(), Value::Nil);
        assert_eq!(
            load_yaml("a: &x [1, 2.5]\nb: *x\nc: ~\nd: true\n").unwrap(),
            Value::Struct(
                Struct::new()
                    .with("a", vec![Value::Int(1), Value::Double(2.5)])
                    .with("b", vec![Value::Int(1), Value::Double(2.5)])
                    .with("c", Value::Nil)
                    .with("d", true)
            )
        );
        assert!(load_yaml("a: 1\n---\nb: 2\n").is_err());
        assert!(load_yaml("a: [\n").is_err());
    }
}
