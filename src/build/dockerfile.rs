//! The Dockerfile at the root of a container repository: its labels, the edits the build makes
//! to it (parent image, labels, release ENV), and the names derived from the labels (NVR,
//! release, tags, repositories).
//!
//! Parsing is `parse-dockerfile` (parser directives, heredocs, line continuations, any case of
//! instruction). Variables are expanded here with BuildKit's rules, which is what buildah applies
//! when it builds the file: `$VAR`, `${VAR}`, `${VAR:-word}`, `${VAR-word}`, `${VAR:+word}`,
//! `${VAR+word}`, `${VAR:?msg}`; single quotes literal, double quotes expand, the escape
//! character of the `# escape=` directive. Scoping is BuildKit's too: ARGs before the first FROM
//! only reach a stage that declares them again; ENV wins over ARG; each stage starts empty
//! unless it is `FROM` an earlier stage, whose ENV and LABELs it inherits (the base image's own
//! labels are not visible here, as in koji-containerbuild's check).
//!
//! Sources of the rules and texts: koji-containerbuild `LabelsWrapper`/`checkLabels`,
//! osbs-client `_check_labels` and `user_params`, atomic-reactor `add_labels_in_df`,
//! `bump_release`, `tag_from_config` and `inject_parent_image`, Koji `get_next_release`.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::Path;

use parse_dockerfile::{Instruction, parse};

use super::opts::{BuildKind, build_error, container_error, py_str};
use crate::xmlrpc::Fault;

/// Labels by name.
pub type Labels = BTreeMap<String, String>;

/// koji-containerbuild's `LABEL_NAME_MAP`: the preferred name first, then the old one.
pub const COMPONENT_LABELS: [&str; 2] = ["com.redhat.component", "BZComponent"];
pub const NAME_LABELS: [&str; 2] = ["name", "Name"];
pub const VERSION_LABELS: [&str; 2] = ["version", "Version"];
pub const RELEASE_LABELS: [&str; 2] = ["release", "Release"];

/// osbs-client `Labels.LABEL_NAMES` as (old name, new name): the aliases atomic-reactor keeps in
/// step when it adds labels.
pub const LABEL_ALIASES: [(&str, &str); 10] = [
    ("Name", "name"),
    ("Version", "version"),
    ("Release", "release"),
    ("Architecture", "architecture"),
    ("Vendor", "vendor"),
    ("Authoritative_Registry", "authoritative-source-url"),
    ("BZComponent", "com.redhat.component"),
    ("RUN", "run"),
    ("INSTALL", "install"),
    ("UNINSTALL", "uninstall"),
];

/// Docker's limit on a tag's length.
pub const MAX_TAG_LENGTH: usize = 128;

/// The Dockerfile's name at the repository root.
pub const FILE_NAME: &str = "Dockerfile";
/// Largest Dockerfile read.
pub const MAX_SIZE: u64 = 4 << 20;
/// Longest value one variable expansion may produce (a Dockerfile cannot make the builder
/// double a value until memory runs out).
pub const MAX_EXPANSION: usize = 1 << 20;

/// Read `<dir>/<name>` from a checkout: None when absent. A symlink must resolve inside `dir`,
/// and the file must be UTF-8 of at most `max` bytes.
pub(crate) fn read_in_checkout(dir: &Path, name: &str, max: u64) -> Result<Option<String>, String> {
    let path = dir.join(name);
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    if meta.file_type().is_symlink() {
        let real = std::fs::canonicalize(&path).map_err(|e| e.to_string())?;
        let root = std::fs::canonicalize(dir).map_err(|e| e.to_string())?;
        if !real.starts_with(&root) {
            return Err(format!("{name} is a symlink out of the repository"));
        }
    }
    let meta = std::fs::metadata(&path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err(format!("{name} is not a file"));
    }
    if meta.len() > max {
        return Err(format!("{name} is larger than {max} bytes"));
    }
    let bytes = std::fs::read(&path).map_err(|e| e.to_string())?;
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| format!("{name} is not UTF-8 text"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Arg,
    Env,
    Label,
}

#[derive(Debug, Clone)]
struct Insn {
    kind: Kind,
    /// The arguments with line continuations removed, quotes and escapes as written.
    args: String,
    line: usize,
}

#[derive(Debug, Clone)]
struct StageData {
    /// `AS name`, lower-cased as BuildKit compares stage names.
    name: Option<String>,
    /// The image as written (before ARG expansion).
    image: String,
    image_span: Range<usize>,
    /// Byte offset just past the FROM instruction (before its newline).
    from_end: usize,
    line: usize,
    insns: Vec<Insn>,
}

/// ENV and LABELs of a stage after its last instruction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StageState {
    /// The image the stage is built on (ARGs expanded; an earlier stage's name when it is one).
    pub from: String,
    pub env: BTreeMap<String, String>,
    pub labels: Labels,
}

/// A parsed Dockerfile.
#[derive(Debug, Clone)]
pub struct Dockerfile {
    text: String,
    escape: char,
    global_args: Vec<Insn>,
    stages: Vec<StageData>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

fn syntax_error(line: usize, message: impl std::fmt::Display) -> Fault {
    build_error(format!("Cannot parse Dockerfile: line {line}: {message}"))
}

impl Dockerfile {
    /// Read and parse `Dockerfile` at the root of a checkout; a missing one is koji-containerbuild's
    /// BuildError `Dockerfile file missing: <path>`.
    pub fn load(dir: &Path) -> Result<Dockerfile, Fault> {
        match read_in_checkout(dir, FILE_NAME, MAX_SIZE) {
            Ok(Some(text)) => Dockerfile::parse(&text),
            Ok(None) => Err(build_error(format!(
                "Dockerfile file missing: {}",
                dir.join(FILE_NAME).display()
            ))),
            Err(e) => Err(build_error(format!("Cannot read Dockerfile: {e}"))),
        }
    }

    /// Parse a Dockerfile. A syntax error is a BuildError with parse-dockerfile's text.
    pub fn parse(text: &str) -> Result<Dockerfile, Fault> {
        let d = parse(text).map_err(|e| build_error(format!("Cannot parse Dockerfile: {e}")))?;
        // parse-dockerfile drops one leading UTF-8 byte order mark (as BuildKit does) and gives
        // spans in the rest; ours index `text`, which keeps it.
        let base = if text.starts_with('\u{feff}') {
            '\u{feff}'.len_utf8()
        } else {
            0
        };
        let escape = d
            .parser_directives
            .escape
            .as_ref()
            .map(|e| e.value.value)
            .unwrap_or('\\');
        let insn = |i: &Instruction<'_>| -> Option<Insn> {
            let (kind, args) = match i {
                Instruction::Arg(a) => (Kind::Arg, &a.arguments),
                Instruction::Env(e) => (Kind::Env, &e.arguments),
                Instruction::Label(l) => (Kind::Label, &l.arguments),
                _ => return None,
            };
            Some(Insn {
                kind,
                args: args.value.to_string(),
                line: line_of(text, base + args.span.start),
            })
        };
        let global_args = d
            .global_args()
            .map(|a| Insn {
                kind: Kind::Arg,
                args: a.arguments.value.to_string(),
                line: line_of(text, base + a.arguments.span.start),
            })
            .collect();
        let stages = d
            .stages()
            .map(|s| {
                let from_end = base
                    + s.from
                        .as_
                        .as_ref()
                        .map_or(s.from.image.span.end, |(_, n)| n.span.end);
                StageData {
                    name: s.from.as_.as_ref().map(|(_, n)| n.value.to_lowercase()),
                    image: s.from.image.value.to_string(),
                    image_span: base + s.from.image.span.start..base + s.from.image.span.end,
                    from_end,
                    line: line_of(text, base + s.from.from.span.start),
                    insns: s.instructions.iter().filter_map(insn).collect(),
                }
            })
            .collect();
        Ok(Dockerfile {
            text: text.to_string(),
            escape,
            global_args,
            stages,
        })
    }

    /// The text this was parsed from.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The escape character (`# escape=` directive, default backslash).
    pub fn escape(&self) -> char {
        self.escape
    }

    /// Labels of the final stage, without build args.
    pub fn labels(&self) -> Result<Labels, Fault> {
        self.labels_with_args(&BTreeMap::new())
    }

    /// Labels of the final stage when built with these `--build-arg`s.
    pub fn labels_with_args(&self, build_args: &BTreeMap<String, String>) -> Result<Labels, Fault> {
        Ok(self
            .evaluate(build_args)?
            .pop()
            .map(|s| s.labels)
            .unwrap_or_default())
    }

    /// The image each stage's FROM names, ARGs expanded.
    pub fn parent_images(&self) -> Result<Vec<String>, Fault> {
        Ok(self
            .evaluate(&BTreeMap::new())?
            .into_iter()
            .map(|s| s.from)
            .collect())
    }

    /// The image the final stage is built on, following FROM references to earlier stages
    /// (`scratch` for an image from scratch).
    pub fn base_image(&self) -> Result<String, Fault> {
        let states = self.evaluate(&BTreeMap::new())?;
        let i = self.resolve_stage(&states, self.stages.len() - 1);
        Ok(states[i].from.clone())
    }

    /// Index of the stage whose FROM names an external image, starting at `i` and following
    /// references to earlier stages.
    fn resolve_stage(&self, states: &[StageState], mut i: usize) -> usize {
        while let Some(j) = self.stage_ref(&states[i].from, i) {
            i = j;
        }
        i
    }

    /// The earlier stage (before `before`) that `image` names, if any.
    fn stage_ref(&self, image: &str, before: usize) -> Option<usize> {
        let want = image.to_lowercase();
        self.stages[..before]
            .iter()
            .rposition(|s| s.name.as_deref() == Some(want.as_str()))
    }

    /// Every stage's ENV and LABELs after its last instruction.
    pub fn evaluate(
        &self,
        build_args: &BTreeMap<String, String>,
    ) -> Result<Vec<StageState>, Fault> {
        let esc = self.escape;
        // Global ARGs: only FROM lines (and stages that re-declare them) see them.
        let mut globals: BTreeMap<String, String> = BTreeMap::new();
        let mut declared: BTreeSet<String> = BTreeSet::new();
        for insn in &self.global_args {
            let pairs = arg_words(&insn.args, esc).map_err(|e| syntax_error(insn.line, e))?;
            let lookup = |n: &str| globals.get(n).cloned();
            let mut set = Vec::new();
            for (k, v) in pairs {
                let k = expand(&k, esc, &lookup).map_err(|e| syntax_error(insn.line, e))?;
                let v = match (build_args.get(&k), v) {
                    (Some(b), _) => Some(b.clone()),
                    (None, Some(v)) => {
                        Some(expand(&v, esc, &lookup).map_err(|e| syntax_error(insn.line, e))?)
                    }
                    (None, None) => None,
                };
                set.push((k, v));
            }
            for (k, v) in set {
                declared.insert(k.clone());
                match v {
                    Some(v) => globals.insert(k, v),
                    None => globals.remove(&k),
                };
            }
        }

        let mut states: Vec<StageState> = Vec::with_capacity(self.stages.len());
        for (i, stage) in self.stages.iter().enumerate() {
            let from = expand(&stage.image, esc, &|n: &str| globals.get(n).cloned())
                .map_err(|e| syntax_error(stage.line, e))?;
            let mut st = match self.stage_ref(&from, i) {
                Some(j) => StageState {
                    from: from.clone(),
                    ..states[j].clone()
                },
                None => StageState {
                    from,
                    ..StageState::default()
                },
            };
            let mut args: BTreeMap<String, String> = BTreeMap::new();
            for insn in &stage.insns {
                let err = |e: String| syntax_error(insn.line, e);
                let env = &st.env;
                let lookup = |n: &str| env.get(n).or_else(|| args.get(n)).cloned();
                match insn.kind {
                    Kind::Arg => {
                        let mut set = Vec::new();
                        for (k, v) in arg_words(&insn.args, esc).map_err(err)? {
                            let k = expand(&k, esc, &lookup).map_err(err)?;
                            let v = match (build_args.get(&k), v) {
                                (Some(b), _) => Some(b.clone()),
                                (None, Some(v)) => Some(expand(&v, esc, &lookup).map_err(err)?),
                                (None, None) if declared.contains(&k) => globals.get(&k).cloned(),
                                (None, None) => None,
                            };
                            set.push((k, v));
                        }
                        for (k, v) in set {
                            match v {
                                Some(v) => args.insert(k, v),
                                None => args.remove(&k),
                            };
                        }
                    }
                    Kind::Env | Kind::Label => {
                        let what = if insn.kind == Kind::Env {
                            "ENV"
                        } else {
                            "LABEL"
                        };
                        let mut set = Vec::new();
                        for (k, v) in name_val_words(&insn.args, esc, what).map_err(err)? {
                            let k = expand(&k, esc, &lookup).map_err(err)?;
                            if k.is_empty() {
                                return Err(err(format!("{what} names can not be blank")));
                            }
                            set.push((k, expand(&v, esc, &lookup).map_err(err)?));
                        }
                        let target = if insn.kind == Kind::Env {
                            &mut st.env
                        } else {
                            &mut st.labels
                        };
                        target.extend(set);
                    }
                }
            }
            states.push(st);
        }
        Ok(states)
    }
}

// --- words and expansion (BuildKit's parser and shell lexer) --------------------------------

/// BuildKit's `parseWords`: split on unquoted whitespace; quotes and escapes are kept.
fn split_words(rest: &str, esc: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<char> = rest.chars().collect();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut pos = 0;
    while pos <= chars.len() {
        let ch = chars.get(pos).copied();
        if phase == Phase::Spaces {
            match ch {
                None => break,
                Some(c) if c.is_whitespace() => {
                    pos += 1;
                    continue;
                }
                Some(_) => phase = Phase::Word,
            }
        }
        let Some(mut c) = ch else {
            if blank_ok || !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            break;
        };
        if phase == Phase::Word {
            if c.is_whitespace() {
                phase = Phase::Spaces;
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                blank_ok = false;
                pos += 1;
                continue;
            }
            if c == '\'' || c == '"' {
                quote = c;
                blank_ok = true;
                phase = Phase::Quote;
            }
            if c == esc {
                if pos + 1 == chars.len() {
                    pos += 1;
                    continue;
                }
                word.push(c);
                pos += 1;
                c = chars[pos];
            }
            word.push(c);
            pos += 1;
            continue;
        }
        // In a quote.
        if c == quote {
            phase = Phase::Word;
        }
        if c == esc && quote != '\'' {
            if pos + 1 == chars.len() {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            word.push(c);
            pos += 1;
            c = chars[pos];
        }
        word.push(c);
        pos += 1;
    }
    words
}

/// BuildKit's `parseNameVal` for ENV and LABEL: `name=value ...`, or the legacy `name value`
/// (the rest of the line is the value). Keys and values are returned unexpanded.
fn name_val_words(rest: &str, esc: char, what: &str) -> Result<Vec<(String, String)>, String> {
    let words = split_words(rest, esc);
    let Some(first) = words.first() else {
        return Err(format!("{what} requires at least one argument"));
    };
    if !first.contains('=') {
        let rest = rest.trim_start();
        return match rest.split_once(char::is_whitespace) {
            Some((k, v)) => Ok(vec![(k.to_string(), v.trim_start().to_string())]),
            None => Err(format!("{what} must have two arguments")),
        };
    }
    words
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None => Err(format!(
                "Syntax error - can't find = in {w:?}. Must be of the form: name=value"
            )),
        })
        .collect()
}

/// ARG's `name[=default] ...`.
fn arg_words(rest: &str, esc: char) -> Result<Vec<(String, Option<String>)>, String> {
    let words = split_words(rest, esc);
    if words.is_empty() {
        return Err("ARG requires at least one argument".into());
    }
    Ok(words
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (w, None),
        })
        .collect())
}

/// One word through BuildKit's shell lexer: quote removal, escapes and variable expansion.
/// `lookup` answers set variables; unset ones expand to nothing.
pub fn expand(
    word: &str,
    escape: char,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut lex = Lex {
        chars: word.chars().collect(),
        pos: 0,
        escape,
        lookup,
    };
    lex.process(None)
}

fn too_long(s: &str) -> Result<(), String> {
    if s.len() > MAX_EXPANSION {
        return Err(format!(
            "variable expansion longer than {MAX_EXPANSION} bytes"
        ));
    }
    Ok(())
}

struct Lex<'a> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl Lex<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn process(&mut self, stop: Option<char>) -> Result<String, String> {
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return match stop {
                    Some(s) => Err(format!(
                        "unexpected end of statement while looking for matching {s}"
                    )),
                    None => Ok(out),
                };
            };
            if Some(c) == stop {
                self.pos += 1;
                return Ok(out);
            }
            match c {
                '\'' => out.push_str(&self.single_quote()?),
                '"' => out.push_str(&self.double_quote()?),
                '$' => {
                    out.push_str(&self.dollar()?);
                    too_long(&out)?;
                }
                c if c == self.escape => {
                    self.pos += 1;
                    match self.bump() {
                        Some(n) => out.push(n),
                        None => return Ok(out),
                    }
                }
                c => {
                    self.pos += 1;
                    out.push(c);
                }
            }
        }
    }

    fn single_quote(&mut self) -> Result<String, String> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.bump() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .into(),
                    );
                }
                Some('\'') => return Ok(out),
                Some(c) => out.push(c),
            }
        }
    }

    fn double_quote(&mut self) -> Result<String, String> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .into(),
                    );
                }
                Some('"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some('$') => {
                    out.push_str(&self.dollar()?);
                    too_long(&out)?;
                }
                Some(c) if c == self.escape => {
                    self.pos += 1;
                    let Some(n) = self.peek() else { continue };
                    if n != '"' && n != '$' && n != self.escape {
                        out.push(c);
                    }
                    out.push(n);
                    self.pos += 1;
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        if let Some(c) = self.peek() {
            if c.is_ascii_digit() {
                while let Some(d) = self.peek().filter(char::is_ascii_digit) {
                    name.push(d);
                    self.pos += 1;
                }
                return name;
            }
            if "@*#?-$!0".contains(c) {
                self.pos += 1;
                name.push(c);
                return name;
            }
        }
        while let Some(c) = self.peek().filter(|c| c.is_alphanumeric() || *c == '_') {
            name.push(c);
            self.pos += 1;
        }
        name
    }

    fn dollar(&mut self) -> Result<String, String> {
        self.pos += 1;
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok((self.lookup)(&name).unwrap_or_default());
        }
        self.pos += 1;
        let name = self.name();
        let value = (self.lookup)(&name);
        match self.bump() {
            None => Err("syntax error: missing '}'".into()),
            Some('}') => Ok(value.unwrap_or_default()),
            Some(c) => {
                let (colon, modifier) = if c == ':' {
                    match self.bump() {
                        Some(m) => (true, m),
                        None => return Err("syntax error: missing '}'".into()),
                    }
                } else {
                    (false, c)
                };
                if !matches!(modifier, '-' | '+' | '?') {
                    return Err(if colon {
                        format!("unsupported modifier ({modifier}) in substitution")
                    } else {
                        format!("unsupported modifier ({modifier}) in substitution of {name}")
                    });
                }
                let word = self.process(Some('}'))?;
                // With a colon an empty value counts as unset.
                let set = value.as_deref().is_some_and(|v| !colon || !v.is_empty());
                match modifier {
                    '-' => Ok(if set { value.unwrap_or_default() } else { word }),
                    '+' => Ok(if set { word } else { String::new() }),
                    _ => {
                        if set {
                            Ok(value.unwrap_or_default())
                        } else if word.is_empty() {
                            Err(format!("{name}: is not allowed to be unset"))
                        } else {
                            Err(format!("{name}: {word}"))
                        }
                    }
                }
            }
        }
    }
}

// --- required labels and NVR ----------------------------------------------------------------

/// The labels a build needs, after koji-containerbuild's and osbs-client's checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageLabels {
    /// `com.redhat.component` (or `BZComponent`): the Koji package name.
    pub component: String,
    /// `name` (or `Name`): the registry repository.
    pub name: String,
    /// `version` (or `Version`).
    pub version: String,
    /// `release` (or `Release`), or `opts.release` which overrides it; None = to be computed.
    pub release: Option<String>,
}

impl ImageLabels {
    /// `component-version-release` when the release is known.
    pub fn nvr(&self) -> Option<String> {
        self.release.as_deref().map(|r| self.nvr_with(r))
    }

    /// `component-version-release` with this release.
    pub fn nvr_with(&self, release: &str) -> String {
        format!("{}-{}-{}", self.component, self.version, release)
    }
}

/// First of `names` that is set, and its value: overrides before the Dockerfile, name by name
/// (`LabelsWrapper.get_data_labels`).
fn find_label<'a>(
    labels: &'a Labels,
    overrides: &'a Labels,
    names: &[&'a str],
) -> Option<(&'a str, &'a str)> {
    names.iter().find_map(|n| {
        overrides
            .get(*n)
            .or_else(|| labels.get(*n))
            .map(|v| (*n, v.as_str()))
    })
}

/// osbs-client's `RELEASE_LABEL_FORMAT`: `^\d+([._]?[a-zA-Z0-9]+)*$`.
pub fn is_release_label(release: &str) -> bool {
    let r = release.strip_suffix('\n').unwrap_or(release);
    let b = r.as_bytes();
    if b.first().is_none_or(|c| !c.is_ascii_digit()) {
        return false;
    }
    let mut prev_sep = false;
    for c in b {
        match c {
            b'.' | b'_' if prev_sep => return false,
            b'.' | b'_' => prev_sep = true,
            c if c.is_ascii_alphanumeric() => prev_sep = false,
            _ => return false,
        }
    }
    !prev_sep
}

/// Check the Dockerfile's labels and pick component, name, version and release, in the order
/// of the original services:
/// 1. koji-containerbuild `checkLabels` (BuildError 1005): name and component set and not
///    empty, version present (it may be empty, e.g. from an unset variable);
/// 2. osbs-client `_check_labels` (ContainerError 2001, `OSBS validation exception: ...`):
///    release label format, no `-` in version, no `.` in the first component of name;
/// 3. atomic-reactor `bump_release._get_nvr` (ContainerError 2001): version not empty, a
///    release label, if present, not empty.
///
/// `release` is `opts.release`, which overrides the `release` label (koji-containerbuild's
/// label overwrite, atomic-reactor's `add_labels_in_dockerfile`).
pub fn image_labels(labels: &Labels, release: Option<&str>) -> Result<ImageLabels, Fault> {
    let mut overrides = Labels::new();
    if let Some(r) = release.filter(|r| !r.is_empty()) {
        overrides.insert(RELEASE_LABELS[0].into(), r.into());
    }
    let component = find_label(labels, &overrides, &COMPONENT_LABELS);
    let name = find_label(labels, &overrides, &NAME_LABELS);
    let version = find_label(labels, &overrides, &VERSION_LABELS);
    let mut missing = Vec::new();
    if name.is_none_or(|(_, v)| v.is_empty()) {
        missing.push("name (or Name)");
    }
    if component.is_none_or(|(_, v)| v.is_empty()) {
        missing.push("com.redhat.component (or BZComponent)");
    }
    if version.is_none() {
        missing.push("version (or Version)");
    }
    let (Some((_, component)), Some((_, name)), Some((version_label, version))) =
        (component, name, version)
    else {
        return Err(build_error(format!(
            "Required LABELs haven't been found in Dockerfile: {}.",
            missing.join(", ")
        )));
    };
    if !missing.is_empty() {
        return Err(build_error(format!(
            "Required LABELs haven't been found in Dockerfile: {}.",
            missing.join(", ")
        )));
    }

    // osbs-client looks at the Dockerfile as written (no overrides).
    let osbs = |m: String| container_error(format!("OSBS validation exception: {m}"));
    if let Some((_, r)) = find_label(labels, &Labels::new(), &RELEASE_LABELS)
        && !r.is_empty()
        && !is_release_label(r)
    {
        return Err(osbs("release label doesn't have proper format".into()));
    }
    if let Some((_, v)) = find_label(labels, &Labels::new(), &VERSION_LABELS)
        && v.contains('-')
    {
        return Err(osbs(format!(
            "version label '{v}' contains not allowed chars : '['-']'"
        )));
    }
    if name.split('/').next().is_some_and(|c| c.contains('.')) {
        return Err(osbs(
            "initial image name component must not contain '.'".into(),
        ));
    }

    let release_found = find_label(labels, &overrides, &RELEASE_LABELS);
    let mut empty: Vec<String> = Vec::new();
    if version.is_empty() {
        empty.push(format!("{}: 'empty'", py_str(version_label)));
    }
    if let Some((label, "")) = release_found {
        empty.push(format!("{}: 'empty'", py_str(label)));
    }
    if !empty.is_empty() {
        return Err(container_error(format!(
            "Image build failed. Required labels are missing or empty or using undefined variables: {{{}}}",
            empty.join(", ")
        )));
    }
    Ok(ImageLabels {
        component: component.to_string(),
        name: name.to_string(),
        version: version.to_string(),
        release: release_found.map(|(_, r)| r.to_string()),
    })
}

fn add_decimal(digits: &str, incr: u64) -> String {
    let trimmed = digits.trim_start_matches('0');
    let mut out: Vec<u8> = trimmed.bytes().rev().map(|b| b - b'0').collect();
    let mut carry = incr;
    let mut i = 0;
    while carry > 0 {
        if i == out.len() {
            out.push(0);
        }
        let sum = u64::from(out[i]) + carry;
        out[i] = (sum % 10) as u8;
        carry = sum / 10;
        i += 1;
    }
    if out.is_empty() {
        return "0".into();
    }
    out.iter().rev().map(|d| char::from(b'0' + d)).collect()
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Koji's `get_next_release` given the release of the newest COMPLETE, DELETED or BUILDING
/// build of the same name and version: none -> `1`, `123` -> `124`, `123.el8` -> `124.el8`,
/// `123.snapshot.456` -> `123.snapshot.457`, anything else -> BuildError.
pub fn koji_next_release(latest: Option<&str>) -> Result<String, Fault> {
    let Some(r) = latest.filter(|r| !r.is_empty()) else {
        return Ok("1".into());
    };
    let parts: Vec<&str> = r.split('.').collect();
    if is_digits(r) {
        return Ok(add_decimal(r, 1));
    }
    if parts.len() == 2 && is_digits(parts[0]) {
        return Ok(format!("{}.{}", add_decimal(parts[0], 1), parts[1]));
    }
    if parts.len() == 3 && is_digits(parts[2]) {
        return Ok(format!(
            "{}.{}.{}",
            parts[0],
            parts[1],
            add_decimal(parts[2], 1)
        ));
    }
    Err(build_error(format!(
        "Unable to increment release value: {r}"
    )))
}

/// atomic-reactor's `get_patched_release`: split in at most three parts on `.`, optionally
/// increment the first, drop a numeric second part (`5.1` -> `5`, `5.el9` stays).
pub fn patched_release(release: &str, increment: bool) -> Result<String, Fault> {
    let mut parts = release.splitn(3, '.');
    let first = parts.next().unwrap_or_default();
    let suffix = parts.next().filter(|s| !is_digits(s));
    let rest = parts.next();
    let first = if increment {
        if !is_digits(first) {
            return Err(build_error(format!(
                "Unable to increment release value: {release}"
            )));
        }
        add_decimal(first, 1)
    } else {
        first.to_string()
    };
    Ok([Some(first.as_str()), suffix, rest]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("."))
}

/// The release of a build without one (atomic-reactor `get_next_release_standard` on Koji's
/// `getNextRelease`): Koji's next release, patched; when Koji cannot increment `latest`, the
/// newest release of the form `N[.M]` (`latest_numeric`, the plugin's fallback search) plus
/// one, or `1`. Then bumped while `taken(release)`: a build with that NVR exists and is not
/// FAILED or CANCELED (those NVRs are reusable).
pub fn next_release(
    latest: Option<&str>,
    latest_numeric: Option<&str>,
    taken: impl Fn(&str) -> bool,
) -> Result<String, Fault> {
    let mut release = match koji_next_release(latest) {
        Ok(r) => patched_release(&r, false)?,
        Err(_) => match latest_numeric {
            Some(r) => patched_release(r, true)?,
            None => "1".into(),
        },
    };
    for _ in 0..100_000 {
        if !taken(&release) {
            return Ok(release);
        }
        release = patched_release(&release, true)?;
    }
    Err(build_error(format!(
        "Unable to find a free release after {release}"
    )))
}

// --- Dockerfile edits -----------------------------------------------------------------------

/// Replace the parent image of the final stage (following FROM references to earlier stages),
/// as atomic-reactor's `inject_parent_image` does for `koji_parent_build`.
pub fn replace_last_from(dockerfile: &str, new_base: &str) -> Result<String, Fault> {
    let df = Dockerfile::parse(dockerfile)?;
    let states = df.evaluate(&BTreeMap::new())?;
    let i = df.resolve_stage(&states, df.stages.len() - 1);
    if states[i].from.eq_ignore_ascii_case("scratch") {
        return Err(container_error(
            "Image build failed. from scratch can't inject parent image",
        ));
    }
    let span = df.stages[i].image_span.clone();
    let mut out = String::with_capacity(dockerfile.len() + new_base.len());
    out.push_str(&dockerfile[..span.start]);
    out.push_str(new_base);
    out.push_str(&dockerfile[span.end..]);
    Ok(out)
}

/// atomic-reactor's `label_to_string`: `"key"="value"`, with the escape character before `"`,
/// itself and `$` (so buildah does not expand it); newlines cannot be written and become
/// spaces.
fn label_pair(key: &str, value: &str, esc: char) -> String {
    let quote = |s: &str| {
        let mut out = String::with_capacity(s.len() + 2);
        out.push('"');
        for c in s.chars() {
            match c {
                '"' | '$' => {
                    out.push(esc);
                    out.push(c);
                }
                c if c == esc => {
                    out.push(esc);
                    out.push(c);
                }
                '\n' | '\r' => out.push(' '),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    };
    format!("{}={}", quote(key), quote(value))
}

fn escape_of(dockerfile: &str) -> char {
    parse(dockerfile)
        .ok()
        .and_then(|d| d.parser_directives.escape.map(|e| e.value.value))
        .unwrap_or('\\')
}

/// Append one `LABEL "k"="v" ...` line at the end of the Dockerfile (after an empty line), as
/// atomic-reactor's `add_labels_in_dockerfile` does; nothing when `labels` is empty.
pub fn add_labels(dockerfile: &str, labels: &[(String, String)]) -> String {
    if labels.is_empty() {
        return dockerfile.to_string();
    }
    let esc = escape_of(dockerfile);
    let pairs: Vec<String> = labels.iter().map(|(k, v)| label_pair(k, v, esc)).collect();
    format!("{dockerfile}\nLABEL {}\n", pairs.join(" "))
}

/// container.yaml `set_release_env`: `ENV <name>="<release>"` right after every FROM
/// (atomic-reactor `add_lines(..., at_start=True, all_stages=True)`).
pub fn add_release_env(dockerfile: &str, name: &str, release: &str) -> Result<String, Fault> {
    let df = Dockerfile::parse(dockerfile)?;
    let esc = df.escape;
    let (_, value) = label_pair("", release, esc)
        .split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .unwrap_or_default();
    let line = format!("ENV {name}={value}\n");
    let mut out = dockerfile.to_string();
    for stage in df.stages.iter().rev() {
        let at = match dockerfile[stage.from_end..].find('\n') {
            Some(n) => stage.from_end + n + 1,
            None => {
                out.push('\n');
                out.len()
            }
        };
        out.insert_str(at, &line);
    }
    Ok(out)
}

/// The labels atomic-reactor adds to a platform's Dockerfile.
#[derive(Debug, Clone, Copy)]
pub struct AutoLabels<'a> {
    /// The release the build got (label, `opts.release` or computed).
    pub release: &'a str,
    /// The platform, e.g. `x86_64`.
    pub architecture: &'a str,
    /// `build-date`, see [`build_date`].
    pub build_date: &'a str,
    /// `vcs-type`: `git`.
    pub vcs_type: &'a str,
    /// `vcs-ref`: the commit built.
    pub vcs_ref: &'a str,
}

/// The `LABEL` pairs to append for a platform (atomic-reactor `bump_release` sets `release`,
/// `add_labels_in_dockerfile` adds `build-date`, `architecture`, `vcs-type`, `vcs-ref`, then the
/// old/new label aliases): only those that are missing or differ from the Dockerfile.
pub fn labels_to_add(dockerfile_labels: &Labels, auto: &AutoLabels<'_>) -> Vec<(String, String)> {
    let mut add: Vec<(String, String)> = vec![
        ("release".into(), auto.release.into()),
        ("build-date".into(), auto.build_date.into()),
        ("architecture".into(), auto.architecture.into()),
        ("vcs-type".into(), auto.vcs_type.into()),
        ("vcs-ref".into(), auto.vcs_ref.into()),
    ];
    // add_aliases() with no base-image labels: every label is "new".
    let mut all = dockerfile_labels.clone();
    all.extend(add.iter().cloned());
    let mut aliases: Vec<(String, String)> = Vec::new();
    for (old, new) in LABEL_ALIASES {
        let Some(old_value) = all.get(old).cloned() else {
            continue;
        };
        match all.get(new) {
            None => aliases.push((new.into(), old_value)),
            Some(v) if *v == old_value => {}
            Some(v) => aliases.push((old.into(), v.clone())),
        }
    }
    for (k, v) in aliases {
        match add.iter_mut().find(|(ak, _)| *ak == k) {
            Some(slot) => slot.1 = v,
            None => add.push((k, v)),
        }
    }
    add.retain(|(k, v)| dockerfile_labels.get(k) != Some(v));
    add
}

/// `build-date`: `datetime.utcfromtimestamp(t).isoformat()` (microseconds only when not zero).
pub fn build_date(epoch: f64) -> String {
    let t = crate::xmlrpc::time::koji_time(epoch);
    // "YYYY-MM-DD HH:MM:SS.ffffff+00:00"
    let date_time = t[..19].replacen(' ', "T", 1);
    let micros = &t[20..26];
    if micros == "000000" {
        date_time
    } else {
        format!("{date_time}.{micros}")
    }
}

// --- tags and repositories -----------------------------------------------------------------

/// `YYYYmmddHHMMSS` in UTC.
pub fn utc_stamp(epoch: i64) -> String {
    let t = crate::xmlrpc::time::koji_time(epoch as f64);
    t[..19].chars().filter(char::is_ascii_digit).collect()
}

/// osbs-client's unique tag: `<target or 'none'>-<5 digits>-<UTC YYYYmmddHHMMSS>`; per-arch
/// images are pushed as `<unique>-<arch>`. `digits` is 10000..=99999.
pub fn unique_tag(target: Option<&str>, digits: u32, epoch: i64) -> String {
    format!(
        "{}-{digits}-{}",
        target.filter(|t| !t.is_empty()).unwrap_or("none"),
        utc_stamp(epoch)
    )
}

/// [`unique_tag`] with fresh random digits and the current time.
pub fn new_unique_tag(target: Option<&str>) -> String {
    unique_tag(target, random_digits(), now_epoch())
}

/// The release of a scratch build without one: its pipeline name `scratch-<5 digits>-<stamp>`.
pub fn scratch_release(digits: u32, epoch: i64) -> String {
    format!("scratch-{digits}-{}", utc_stamp(epoch))
}

/// Five random digits (osbs-client `randrange(10**4, 10**5)`).
pub fn random_digits() -> u32 {
    rand::random_range(10_000..100_000)
}

fn now_epoch() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Whether `tag` is a valid image tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn is_valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_TAG_LENGTH
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// koji-containerbuild's check on `version-release` and the additional tags (BuildError).
pub fn check_tag_length(tags: &[&str]) -> Result<(), Fault> {
    match tags.iter().map(|t| t.len()).max() {
        Some(longest) if longest > MAX_TAG_LENGTH => Err(build_error(format!(
            "Docker cannot create image with a tag longer than 128, current version-release tag length is {longest}"
        ))),
        _ => Ok(()),
    }
}

/// The tags of a build, grouped as atomic-reactor's `tag_conf`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagSet {
    /// `{version}-{release}` (none for scratch).
    pub primary: Vec<String>,
    /// The unique tag.
    pub unique: Vec<String>,
    /// `latest` and `{version}`, or container.yaml's tags (none for scratch and isolated).
    pub floating: Vec<String>,
}

impl TagSet {
    /// Every tag in the task result's order: primary, unique, floating.
    pub fn all(&self) -> impl Iterator<Item = &str> {
        self.primary
            .iter()
            .chain(&self.unique)
            .chain(&self.floating)
            .map(String::as_str)
    }
}

/// atomic-reactor `tag_from_config`: scratch -> unique only; isolated -> unique + primary;
/// with container.yaml `tags` -> primary + those as floating (`yaml_tags` is `Some` when
/// [`super::container_yaml::ContainerYaml::tags_from_yaml`], holding the tags
/// [`super::container_yaml::ContainerYaml::additional_tags`] kept, possibly none);
/// otherwise primary + `latest` + `{version}`. A tag already taken by an earlier group (unique,
/// then floating, then primary) is not repeated. Every tag must be a valid image tag.
pub fn tag_set(
    kind: BuildKind,
    unique: &str,
    version: &str,
    release: &str,
    yaml_tags: Option<&[String]>,
) -> Result<TagSet, Fault> {
    let primary = format!("{version}-{release}");
    let mut floating_suffixes: Vec<String> = Vec::new();
    let mut primary_suffixes: Vec<String> = Vec::new();
    match (kind, yaml_tags) {
        (BuildKind::Scratch, _) => {}
        (BuildKind::Isolated, _) => primary_suffixes.push(primary),
        (BuildKind::Normal, Some(tags)) => {
            primary_suffixes.push(primary);
            floating_suffixes.extend(tags.iter().cloned());
        }
        (BuildKind::Normal, None) => {
            primary_suffixes.push(primary);
            floating_suffixes.push("latest".into());
            floating_suffixes.push(version.to_string());
        }
    }
    let mut set = TagSet {
        unique: vec![unique.to_string()],
        ..TagSet::default()
    };
    let mut seen: Vec<String> = set.unique.clone();
    for t in floating_suffixes {
        if !seen.contains(&t) {
            seen.push(t.clone());
            set.floating.push(t);
        }
    }
    for t in primary_suffixes {
        if !seen.contains(&t) {
            seen.push(t.clone());
            set.primary.push(t);
        }
    }
    let named: Vec<&str> = set
        .primary
        .iter()
        .chain(&set.floating)
        .map(String::as_str)
        .collect();
    check_tag_length(&named)?;
    for t in set.all() {
        if !is_valid_tag(t) {
            return Err(build_error(format!(
                "Invalid image tag {}: a tag is at most {MAX_TAG_LENGTH} characters of [A-Za-z0-9_.-] and does not start with '.' or '-'",
                py_str(t)
            )));
        }
    }
    Ok(set)
}

/// Whether `path` is a valid repository path (the `name` label): `/`-separated components of
/// lower-case letters and digits, separated inside by `.`, `_`, `__` or runs of `-`.
pub fn is_valid_repository(path: &str) -> bool {
    !path.is_empty()
        && path.split('/').all(|c| {
            let b = c.as_bytes();
            if b.is_empty()
                || !b[0].is_ascii_alphanumeric()
                || !b[b.len() - 1].is_ascii_alphanumeric()
            {
                return false;
            }
            let mut i = 0;
            while i < b.len() {
                let c = b[i];
                if c.is_ascii_lowercase() || c.is_ascii_digit() {
                    i += 1;
                    continue;
                }
                let start = i;
                while i < b.len() && matches!(b[i], b'.' | b'_' | b'-') {
                    i += 1;
                }
                let sep = &b[start..i];
                let ok = sep == b"."
                    || sep == b"_"
                    || sep == b"__"
                    || (!sep.is_empty() && sep.iter().all(|c| *c == b'-'));
                if !ok {
                    return false;
                }
            }
            true
        })
}

/// The repository a build pushes to: `<registry>/[<organization>/]<name label>` (atomic-reactor
/// `tag_from_config` with `registries_organization`; a name already inside the organization
/// stays as it is).
pub fn repository(registry: &str, organization: Option<&str>, name: &str) -> Result<String, Fault> {
    if !is_valid_repository(name) {
        return Err(build_error(format!(
            "Invalid repository name {} in the name label: use lower-case letters and digits, separated by '.', '_', '__' or '-', in components joined by '/'",
            py_str(name)
        )));
    }
    let path = match organization.filter(|o| !o.is_empty()) {
        Some(org) if name.starts_with(&format!("{org}/")) => name.to_string(),
        Some(org) => format!("{org}/{name}"),
        None => name.to_string(),
    };
    Ok(format!("{}/{path}", registry.trim_end_matches('/')))
}

/// The task result's `repositories`: `<repository>:<tag>` for primary, unique, then floating.
pub fn repositories(repository: &str, tags: &TagSet) -> Vec<String> {
    tags.all().map(|t| format!("{repository}:{t}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |n: &str| m.get(n).cloned()
    }

    #[test]
    fn shell_expansion() {
        let v = vars(&[("A", "1"), ("E", ""), ("SP", "a b")]);
        for (word, want) in [
            ("$A", "1"),
            ("${A}", "1"),
            ("x${A}y", "x1y"),
            ("$A$A", "11"),
            ("${U}", ""),
            ("${U:-d}", "d"),
            ("${E:-d}", "d"),
            ("${E-d}", ""),
            ("${U-d}", "d"),
            ("${A:-d}", "1"),
            ("${A:+s}", "s"),
            ("${E:+s}", ""),
            ("${E+s}", "s"),
            ("${U+s}", ""),
            ("${U:-${A}x}", "1x"),
            ("${U:-'q w'}", "q w"),
            ("'$A'", "$A"),
            ("\"$A\"", "1"),
            ("\"a\\\"b\"", "a\"b"),
            ("\"a\\nb\"", "a\\nb"),
            ("\\$A", "$A"),
            ("a\\ b", "a b"),
            ("$", "$"),
            ("$-x", "x"),
            ("${SP}", "a b"),
            ("price: 5$", "price: 5$"),
        ] {
            assert_eq!(expand(word, '\\', &v).unwrap(), want, "{word}");
        }
        assert_eq!(expand("`$A", '`', &v).unwrap(), "$A");
        assert_eq!(expand("\"`\"\"", '`', &v).unwrap(), "\"");
        assert_eq!(expand("\\$A", '`', &v).unwrap(), "\\1");
        assert!(expand("'open", '\\', &v).is_err());
        assert!(expand("\"open", '\\', &v).is_err());
        assert!(expand("${A", '\\', &v).is_err());
        assert_eq!(
            expand("${U:?must be set}", '\\', &v).unwrap_err(),
            "U: must be set"
        );
        assert!(expand("${A#x}", '\\', &v).is_err());
    }

    #[test]
    fn word_splitting() {
        assert_eq!(
            split_words(r#"a=b "c d"=e f="g h" i=j\ k"#, '\\'),
            ["a=b", "\"c d\"=e", "f=\"g h\"", r"i=j\ k"]
        );
        assert_eq!(
            name_val_words("VERSION 1.0 beta", '\\', "ENV").unwrap(),
            [("VERSION".to_string(), "1.0 beta".to_string())]
        );
        assert!(name_val_words("a=b c", '\\', "LABEL").is_err());
        assert!(name_val_words("lonely", '\\', "LABEL").is_err());
    }

    #[test]
    fn releases() {
        assert_eq!(koji_next_release(None).unwrap(), "1");
        assert_eq!(koji_next_release(Some("123")).unwrap(), "124");
        assert_eq!(koji_next_release(Some("123.el8")).unwrap(), "124.el8");
        assert_eq!(
            koji_next_release(Some("20240101.nightly.9")).unwrap(),
            "20240101.nightly.10"
        );
        assert_eq!(koji_next_release(Some("0099")).unwrap(), "100");
        assert_eq!(
            koji_next_release(Some("99999999999999999999999")).unwrap(),
            "100000000000000000000000"
        );
        assert_eq!(
            koji_next_release(Some("a.b.c.d")).unwrap_err().message,
            "Unable to increment release value: a.b.c.d"
        );
        assert_eq!(patched_release("5.1", false).unwrap(), "5");
        assert_eq!(patched_release("5.el9", false).unwrap(), "5.el9");
        assert_eq!(patched_release("5.1.2", false).unwrap(), "5.2");
        assert_eq!(patched_release("5.1", true).unwrap(), "6");
        assert_eq!(patched_release("5.a.2", true).unwrap(), "6.a.2");
        assert!(patched_release("x.1", true).is_err());
        for (ok, want) in [("1", true), ("1.2", true), ("1_a.b2", true), ("10a", true)] {
            assert_eq!(is_release_label(ok), want, "{ok}");
        }
        for bad in ["", "a1", "1..2", "1.", "1-2", "1._2", "1 2"] {
            assert!(!is_release_label(bad), "{bad}");
        }
    }

    #[test]
    fn stamps() {
        assert_eq!(utc_stamp(1_700_000_000), "20231114221320");
        assert_eq!(build_date(1_700_000_000.0), "2023-11-14T22:13:20");
        assert_eq!(build_date(1_700_000_000.25), "2023-11-14T22:13:20.250000");
        assert_eq!(
            unique_tag(Some("f40-container-candidate"), 93619, 1_571_345_787),
            "f40-container-candidate-93619-20191017205627"
        );
        assert_eq!(unique_tag(None, 10000, 0), "none-10000-19700101000000");
        let d = random_digits();
        assert!((10_000..100_000).contains(&d));
        assert_eq!(scratch_release(12345, 0), "scratch-12345-19700101000000");
    }

    #[test]
    fn repository_names() {
        for ok in ["a", "fedora/httpd", "a.b_c__d--e/f-g", "ns/sub/name", "0x"] {
            assert!(is_valid_repository(ok), "{ok}");
        }
        for bad in [
            "", "A", "a/", "/a", "a//b", "a..b", "a___b", "-a", "a-", "a b", "a:b",
        ] {
            assert!(!is_valid_repository(bad), "{bad}");
        }
        assert_eq!(
            repository("localhost:5000/", Some("org"), "app").unwrap(),
            "localhost:5000/org/app"
        );
        assert_eq!(
            repository("r", Some("org"), "org/app").unwrap(),
            "r/org/app"
        );
        assert_eq!(repository("r", None, "ns/app").unwrap(), "r/ns/app");
        assert_eq!(repository("r", None, "App").unwrap_err().code, 1005);
    }

    /// Found by the `dockerfile_labels` fuzz target: after a byte order mark every span was 3
    /// bytes short, so editing the FROM line panicked inside a multi-byte character or cut the
    /// wrong bytes.
    #[test]
    fn byte_order_mark_keeps_edits_in_place() {
        assert_eq!(
            replace_last_from("\u{feff}FROM v\u{feff}F\u{b}", "new:1").unwrap(),
            "\u{feff}FROM new:1\u{b}"
        );
        let df = "\u{feff}FROM base:1 AS b\nLABEL name=x\nFROM b\nRUN true\n";
        assert_eq!(
            replace_last_from(df, "new:2").unwrap(),
            "\u{feff}FROM new:2 AS b\nLABEL name=x\nFROM b\nRUN true\n"
        );
        assert_eq!(
            add_release_env(df, "R", "3").unwrap(),
            "\u{feff}FROM base:1 AS b\nENV R=\"3\"\nLABEL name=x\nFROM b\nENV R=\"3\"\nRUN true\n"
        );
        let e = Dockerfile::parse("\u{feff}FROM a\nLABEL \"\"=x\n")
            .unwrap()
            .labels()
            .unwrap_err();
        assert!(e.message.contains("line 2"), "{}", e.message);
    }
}
