//! The source of a container build: Koji's SCM URLs, the builder's `allowed_scms` list and the
//! git checkout (clone, fetch the revision, hard reset) with its `checkout-for-labels.log`.
//!
//! URL rules and error texts are Koji's (`koji.daemon.SCM`, koji 1.36.1: `is_scm_url`,
//! `_parse_url`, `assert_allowed_by_config`, `checkout`), restricted to the git schemes this
//! builder can check out. Git always runs from an argument vector, never through a shell, in a
//! session of its own (no terminal to prompt on, killed as a group on timeout or cancel), with
//! `GIT_TERMINAL_PROMPT=0`, no credential helpers and only the git, http(s) and ssh transports.
//! Everything here blocks: async callers run it on `spawn_blocking`.

use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::xmlrpc::{Fault, FaultCode};

/// Name of the checkout log a container build uploads (koji-containerbuild's `fetchDockerfile`).
pub const CHECKOUT_LOG: &str = "checkout-for-labels.log";

/// Default limit for one git command.
pub const DEFAULT_GIT_TIMEOUT: Duration = Duration::from_secs(300);

/// Koji's SCM types that this builder checks out (Koji's `SCM.types`, git only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScmType {
    /// `git://`, `git+http://`, `git+https://`.
    Git,
    /// `git+ssh://` (Koji requires a user name in the URL).
    GitSsh,
}

impl ScmType {
    /// Koji's name for the type (`scmtype`, also used in its error texts).
    pub fn as_str(self) -> &'static str {
        match self {
            ScmType::Git => "GIT",
            ScmType::GitSsh => "GIT+SSH",
        }
    }
}

/// URL schemes accepted, with their type. Koji also accepts `git+rsync://` (a transport git
/// removed in 2.8) and the CVS and SVN schemes; none of them can be checked out here.
pub const SCHEMES: [(&str, ScmType); 4] = [
    ("git://", ScmType::Git),
    ("git+http://", ScmType::Git),
    ("git+https://", ScmType::Git),
    ("git+ssh://", ScmType::GitSsh),
];

/// What went wrong with a source, with the text the task fails with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScmError {
    /// Not a URL Koji accepts (Koji raises `koji.GenericError`).
    #[error("{0}")]
    InvalidUrl(String),
    /// `allowed_scms` refuses the repository (`koji.BuildError`).
    #[error("{0}")]
    NotAllowed(String),
    /// A git command failed, could not start or timed out (`koji.BuildError`); the details are
    /// in the checkout log.
    #[error("{0}")]
    Git(String),
    /// The checked-out commit is not on the requested branch (`koji.BuildError`).
    #[error("{0}")]
    NotOnBranch(String),
    /// A malformed argument such as a branch name git would not accept (`koji.GenericError`).
    #[error("{0}")]
    Invalid(String),
    /// The caller's cancel flag was raised; git was killed.
    #[error("SCM checkout canceled")]
    Canceled,
}

impl ScmError {
    /// The Koji fault: 1000 (`GenericError`) for bad URLs and arguments, 1005 (`BuildError`) for
    /// refused repositories and failed checkouts.
    pub fn fault(&self) -> Fault {
        let code = match self {
            ScmError::InvalidUrl(_) | ScmError::Invalid(_) | ScmError::Canceled => {
                FaultCode::Generic
            }
            ScmError::NotAllowed(_) | ScmError::Git(_) | ScmError::NotOnBranch(_) => {
                FaultCode::Build
            }
        };
        Fault::new(code, self.to_string())
    }
}

impl From<ScmError> for Fault {
    fn from(e: ScmError) -> Fault {
        e.fault()
    }
}

/// A parsed SCM URL: `scheme://[user@]host/path/to/repo[?module]#revision`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScmUrl {
    url: String,
    scheme: String,
    user: Option<String>,
    host: String,
    repository: String,
    module: String,
    revision: String,
    scm_type: ScmType,
}

impl ScmUrl {
    /// True when `url` starts with one of the accepted schemes (Koji's `SCM.is_scm_url`, not
    /// strict).
    pub fn is_scm_url(url: &str) -> bool {
        SCHEMES.iter().any(|(s, _)| url.starts_with(s))
    }

    /// Parses `url` with Koji's rules, then checks it against `allowed`.
    pub fn parse(url: &str, allowed: &AllowedScms) -> Result<ScmUrl, ScmError> {
        let scm = parse_url(url)?;
        allowed.check(&scm)?;
        Ok(scm)
    }

    /// The same source at another revision (a child task building exactly the commit its
    /// parent resolved, even when the URL named a branch or tag that has moved since).
    pub fn at_revision(&self, revision: &str) -> ScmUrl {
        ScmUrl {
            revision: revision.to_owned(),
            ..self.clone()
        }
    }

    /// The URL as given.
    pub fn url(&self) -> &str {
        &self.url
    }
    /// `git://`, `git+https://`, ...
    pub fn scheme(&self) -> &str {
        &self.scheme
    }
    /// The user name before `@`, if any (a password is never accepted).
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }
    /// The host, with its port when the URL has one (Koji keeps the whole netloc).
    pub fn host(&self) -> &str {
        &self.host
    }
    /// The normalized repository path, starting with `/`, no trailing `/`.
    pub fn repository(&self) -> &str {
        &self.repository
    }
    /// The `?module` directory inside the repository, empty for the top level.
    pub fn module(&self) -> &str {
        &self.module
    }
    /// The `#revision`: a commit id, branch or tag.
    pub fn revision(&self) -> &str {
        &self.revision
    }
    pub fn scm_type(&self) -> ScmType {
        self.scm_type
    }

    /// The repository name: the last path component without `.git` (osbs-client's
    /// `git_repo_humanish_part_from_uri`; koji-containerbuild's default component).
    pub fn repo_name(&self) -> &str {
        let r = self.repository.trim_end_matches('/');
        let r = r
            .strip_suffix("/.git")
            .or_else(|| r.strip_suffix(".git"))
            .unwrap_or(r);
        r.rsplit('/').next().unwrap_or(r)
    }

    /// The URL git clones, built as Koji's `SCM.checkout` does: for `git+http(s)://` the `git+`
    /// is dropped; `git+ssh://` needs a user.
    pub fn clone_url(&self) -> Result<String, ScmError> {
        let user = self.user.as_deref().map(|u| format!("{u}@"));
        match self.scm_type {
            ScmType::Git => {
                let scheme = self.scheme.strip_prefix("git+").unwrap_or(&self.scheme);
                Ok(format!(
                    "{scheme}{}{}{}",
                    user.unwrap_or_default(),
                    self.host,
                    self.repository
                ))
            }
            ScmType::GitSsh => match user {
                Some(u) => Ok(format!("git+ssh://{u}{}{}", self.host, self.repository)),
                None => Err(ScmError::Git(format!(
                    "No user specified for repository access scheme: {}",
                    self.scheme
                ))),
            },
        }
    }
}

impl std::fmt::Display for ScmUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

fn invalid(msg: String) -> ScmError {
    ScmError::InvalidUrl(msg)
}

/// Koji's `SCM.__init__` + `_parse_url` (which parses with Python's `urlparse` after replacing
/// the scheme by `http://`), followed by our own module check.
fn parse_url(url: &str) -> Result<ScmUrl, ScmError> {
    let Some(&(_, scm_type)) = SCHEMES.iter().find(|(s, _)| url.starts_with(s)) else {
        let mut names: Vec<&str> = SCHEMES.iter().map(|(s, _)| *s).collect();
        names.sort_unstable();
        return Err(invalid(format!(
            "Invalid scheme in scm url. Valid schemes are: {}",
            names.join(" ")
        )));
    };
    // Python's urlsplit silently drops tabs and newlines; a URL with control characters is
    // refused instead.
    if url.chars().any(char::is_control) {
        return Err(invalid(format!("Invalid SCM URL: {}", url.escape_debug())));
    }
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let scheme = &url[..scheme_end];
    let rest = &url[scheme_end..];

    // urlsplit: the netloc runs to the first '/', '?' or '#'; then '#' splits off the fragment
    // and '?' the query.
    let netloc_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let netloc = &rest[..netloc_end];
    check_brackets(url, netloc)?;
    let tail = &rest[netloc_end..];
    let (before_fragment, fragment) = tail.split_once('#').unwrap_or((tail, ""));
    let (path, query) = before_fragment
        .split_once('?')
        .unwrap_or((before_fragment, ""));
    let (path, params) = split_params(path);

    let userhost: Vec<&str> = netloc.split('@').collect();
    if userhost.len() > 2 {
        return Err(invalid(format!(
            "Invalid username@hostname specified: {}",
            py_list_repr(&userhost)
        )));
    }
    let (user, password) = match userhost.as_slice() {
        [userinfo, _] => match userinfo.split_once(':') {
            Some((u, p)) => (u.to_string(), p.to_string()),
            None => (userinfo.to_string(), String::new()),
        },
        _ => (String::new(), String::new()),
    };
    let user = (!user.is_empty()).then_some(user);
    if !password.is_empty() {
        // Koji's text, except that the password itself is not repeated.
        return Err(invalid(format!(
            "username:password format not supported: {}:***",
            user.as_deref().unwrap_or("None")
        )));
    }
    let host = userhost.last().copied().unwrap_or_default().to_string();
    // Not a Koji check: ssh takes a host or user that starts with `-` as an option
    // (`-oProxyCommand=...`); git refuses such URLs too, this says why before git runs.
    if host.starts_with('-') || user.as_deref().is_some_and(|u| u.starts_with('-')) {
        return Err(invalid(format!(
            "Invalid SCM URL: {url} . A host or user name must not start with '-'."
        )));
    }

    if path.is_empty() {
        return Err(invalid(format!(
            "Unable to parse SCM URL: {url} . Could not find the path element."
        )));
    }
    let unquoted = py_unquote(path);
    let has_escapes = unquoted != path;
    let normalized = py_normpath(&unquoted);
    let mut path = if has_escapes {
        py_quote(&normalized)
    } else {
        normalized
    };
    path.truncate(path.trim_end_matches('/').len());
    let module = query.trim_end_matches('/').to_string();
    if path.starts_with("//") {
        path = format!("/{}", path.trim_matches('/'));
    }
    if !path.starts_with('/') {
        // Koji's text, unformatted placeholder included.
        return Err(invalid(
            "Invalid SCM URL. Path should begin with /: %s) ".to_string(),
        ));
    }
    if !params.is_empty() {
        return Err(invalid(format!(
            "Unable to parse SCM URL: {url} . Params element {params} should be empty."
        )));
    }
    if fragment.is_empty() {
        return Err(invalid(format!(
            "Unable to parse SCM URL: {url} . Could not find the fragment element."
        )));
    }
    // Not a Koji check: the module is a directory inside the checkout, never outside it.
    if module.starts_with('/') || module.split('/').any(|c| c == "..") {
        return Err(invalid(format!(
            "Unable to parse SCM URL: {url} . Module {module} should be a relative path inside \
             the repository."
        )));
    }
    Ok(ScmUrl {
        url: url.to_string(),
        scheme: scheme.to_string(),
        user,
        host,
        repository: path,
        module,
        revision: fragment.to_string(),
        scm_type,
    })
}

/// Python's urlsplit refuses unbalanced brackets and a bracketed host that is not an IPv6
/// address (a ValueError in Koji; a GenericError here).
fn check_brackets(url: &str, netloc: &str) -> Result<(), ScmError> {
    let bad = || invalid(format!("Invalid SCM URL: {url}"));
    if netloc.contains('[') != netloc.contains(']') {
        return Err(bad());
    }
    if let Some((_, rest)) = netloc.split_once('[') {
        let host = rest.split_once(']').map_or(rest, |(h, _)| h);
        let ipv6 = host
            .split('%')
            .next()
            .is_some_and(|a| a.parse::<std::net::Ipv6Addr>().is_ok());
        let ipvfuture = host.strip_prefix('v').is_some_and(|v| {
            v.split_once('.').is_some_and(|(hex, tail)| {
                !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) && !tail.is_empty()
            })
        });
        if !ipv6 && !ipvfuture {
            return Err(bad());
        }
    }
    Ok(())
}

/// Python's `urllib.parse._splitparams`: `;params` of the last path segment.
fn split_params(path: &str) -> (&str, &str) {
    let start = path.rfind('/').unwrap_or(0);
    match path[start..].find(';') {
        Some(i) => (&path[..start + i], &path[start + i + 1..]),
        None => (path, ""),
    }
}

/// Python's `repr()` of a list of str (for Koji's username@hostname message).
fn py_list_repr(items: &[&str]) -> String {
    let parts: Vec<String> = items
        .iter()
        .map(|s| {
            let quote = if s.contains('\'') && !s.contains('"') {
                '"'
            } else {
                '\''
            };
            let mut out = String::from(quote);
            for c in s.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    c if c == quote => {
                        out.push('\\');
                        out.push(c);
                    }
                    c => out.push(c),
                }
            }
            out.push(quote);
            out
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

/// Python's `urllib.parse.unquote`: `%XX` escapes decoded as UTF-8, invalid sequences replaced.
fn py_unquote(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && b[i + 1].is_ascii_hexdigit()
            && b[i + 2].is_ascii_hexdigit()
        {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("00");
            out.push(u8::from_str_radix(hex, 16).unwrap_or(0));
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Python's `urllib.parse.quote(s, safe='/')`.
fn py_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || b"_.-~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Python's `posixpath.normpath`.
fn py_normpath(path: &str) -> String {
    let initial = if path.starts_with("//") && !path.starts_with("///") {
        2
    } else if path.starts_with('/') {
        1
    } else {
        0
    };
    let mut comps: Vec<&str> = Vec::new();
    for c in path.split('/') {
        if c.is_empty() || c == "." {
            continue;
        }
        if c != ".." || (initial == 0 && comps.is_empty()) || comps.last() == Some(&"..") {
            comps.push(c);
        } else if !comps.is_empty() {
            comps.pop();
        }
    }
    let out = format!("{}{}", "/".repeat(initial), comps.join("/"));
    if out.is_empty() { ".".to_string() } else { out }
}

/// The builder's `allowed_scms` setting (kojid's format): space-separated
/// `host:repository[:use_common[:source_cmd]]` entries, or `!host:repository` to refuse; host
/// and repository are shell globs (`fnmatch`), the first matching entry decides, no match
/// refuses. `use_common` and `source_cmd` mean nothing for container builds and are ignored.
/// The default allows every repository (kojid's default, an empty list, allows none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedScms {
    rules: Option<Vec<AllowRule>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct AllowRule {
    deny: bool,
    host: String,
    repository: String,
}

impl AllowedScms {
    /// Every repository allowed.
    pub fn allow_all() -> AllowedScms {
        AllowedScms { rules: None }
    }

    /// Parses kojid's `allowed_scms` value. Entries without a `:` are skipped with a warning, as
    /// kojid does; an empty value allows nothing.
    pub fn parse(config: &str) -> AllowedScms {
        let mut rules = Vec::new();
        for entry in config.split_whitespace() {
            let fields: Vec<&str> = entry.split(':').collect();
            if fields.len() < 2 {
                tracing::warn!(
                    "Ignoring incorrectly formatted SCM host:repository: {}",
                    entry
                );
                continue;
            }
            let (deny, host) = match fields[0].strip_prefix('!') {
                Some(h) => (true, h),
                None => (false, fields[0]),
            };
            rules.push(AllowRule {
                deny,
                host: host.to_string(),
                repository: fields[1].to_string(),
            });
        }
        AllowedScms { rules: Some(rules) }
    }

    /// True for the default, allow-everything list.
    pub fn allows_all(&self) -> bool {
        self.rules.is_none()
    }

    /// Koji's `assert_allowed_by_config`: BuildError `<host>:<repository> is not in the list of
    /// allowed SCMs` unless the first entry matching host and repository allows them.
    pub fn check(&self, scm: &ScmUrl) -> Result<(), ScmError> {
        let Some(rules) = &self.rules else {
            return Ok(());
        };
        let allowed = rules
            .iter()
            .find(|r| fnmatch(&scm.host, &r.host) && fnmatch(&scm.repository, &r.repository))
            .is_some_and(|r| !r.deny);
        if allowed {
            Ok(())
        } else {
            Err(ScmError::NotAllowed(format!(
                "{}:{} is not in the list of allowed SCMs",
                scm.host, scm.repository
            )))
        }
    }
}

/// One element of a compiled glob.
enum Glob {
    Star,
    AnyChar,
    Set {
        negate: bool,
        ranges: Vec<(char, char)>,
    },
    Literal(char),
}

/// Python's `fnmatch.fnmatchcase` (what `fnmatch` is on POSIX): `*`, `?`, `[seq]`, `[!seq]`;
/// `*` also matches `/`; an unclosed `[` is literal.
pub fn fnmatch(name: &str, pattern: &str) -> bool {
    let glob = compile_glob(pattern);
    let name: Vec<char> = name.chars().collect();
    let (mut n, mut g) = (0usize, 0usize);
    let mut backtrack: Option<(usize, usize)> = None;
    loop {
        if g < glob.len() {
            let step = match &glob[g] {
                Glob::Star => {
                    backtrack = Some((g, n));
                    g += 1;
                    continue;
                }
                _ if n >= name.len() => false,
                Glob::AnyChar => true,
                Glob::Literal(c) => name[n] == *c,
                Glob::Set { negate, ranges } => {
                    let c = name[n];
                    ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negate
                }
            };
            if step {
                g += 1;
                n += 1;
                continue;
            }
        } else if n == name.len() {
            return true;
        }
        match backtrack {
            Some((star, start)) if start < name.len() => {
                backtrack = Some((star, start + 1));
                g = star + 1;
                n = start + 1;
            }
            _ => return false,
        }
    }
}

fn compile_glob(pattern: &str) -> Vec<Glob> {
    let p: Vec<char> = pattern.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < p.len() {
        let c = p[i];
        i += 1;
        match c {
            '*' => {
                if !matches!(out.last(), Some(Glob::Star)) {
                    out.push(Glob::Star);
                }
            }
            '?' => out.push(Glob::AnyChar),
            '[' => {
                let mut j = i;
                if j < p.len() && p[j] == '!' {
                    j += 1;
                }
                if j < p.len() && p[j] == ']' {
                    j += 1;
                }
                while j < p.len() && p[j] != ']' {
                    j += 1;
                }
                if j >= p.len() {
                    out.push(Glob::Literal('['));
                    continue;
                }
                let mut stuff = &p[i..j];
                i = j + 1;
                let negate = stuff.first() == Some(&'!');
                if negate {
                    stuff = &stuff[1..];
                }
                let mut ranges = Vec::new();
                let mut k = 0;
                while k < stuff.len() {
                    if k + 2 < stuff.len() && stuff[k + 1] == '-' {
                        if stuff[k] <= stuff[k + 2] {
                            ranges.push((stuff[k], stuff[k + 2]));
                        }
                        k += 3;
                    } else {
                        ranges.push((stuff[k], stuff[k]));
                        k += 1;
                    }
                }
                out.push(Glob::Set { negate, ranges });
            }
            c => out.push(Glob::Literal(c)),
        }
    }
    out
}

/// The result of a checkout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkout {
    /// Full id of the commit checked out (`HEAD`).
    pub commit: String,
    /// The clone (`dest`).
    pub dir: PathBuf,
    /// Where the build reads from: `dir`, or `dir/<module>` for `?module` URLs.
    pub source_dir: PathBuf,
}

/// How git runs: a time limit per command, an optional cancel flag (polled every 50 ms; when
/// raised the running command's process group is killed) and the log name quoted in errors.
#[derive(Debug, Clone)]
pub struct Git {
    timeout: Duration,
    cancel: Option<Arc<AtomicBool>>,
    log_name: String,
}

impl Default for Git {
    fn default() -> Self {
        Git {
            timeout: DEFAULT_GIT_TIMEOUT,
            cancel: None,
            log_name: CHECKOUT_LOG.to_string(),
        }
    }
}

/// [`Git::checkout`] with the defaults (300 s per command, no cancel flag).
pub fn checkout(url: &ScmUrl, dest: &Path, log: &mut dyn Write) -> Result<Checkout, ScmError> {
    Git::default().checkout(url, dest, log)
}

/// [`Git::verify_on_branch`] with the defaults.
pub fn verify_on_branch(
    dest: &Path,
    commit: &str,
    branch: &str,
    log: &mut dyn Write,
) -> Result<(), ScmError> {
    Git::default().verify_on_branch(dest, commit, branch, log)
}

/// Why one git command did not succeed.
enum RunFailure {
    /// git could not start (the reason is in the log).
    Spawn,
    /// git ended with a failure status.
    Exit,
    Timeout,
    Canceled,
}

impl Git {
    pub fn new() -> Git {
        Git::default()
    }

    /// Limit for each git command; on expiry its whole process group is killed.
    pub fn timeout(mut self, timeout: Duration) -> Git {
        self.timeout = timeout;
        self
    }

    /// A flag the caller raises to stop the checkout (e.g. when the task is canceled).
    pub fn cancel_flag(mut self, flag: Arc<AtomicBool>) -> Git {
        self.cancel = Some(flag);
        self
    }

    /// The log file name quoted in error texts (default `checkout-for-labels.log`).
    pub fn log_name(mut self, name: impl Into<String>) -> Git {
        self.log_name = name.into();
        self
    }

    /// Clones `url` into `dest` (which must not exist or be empty) and checks out its
    /// revision: `git clone --no-checkout`, then the revision is resolved in the clone (branches,
    /// tags and commits reachable from them), `git fetch origin <rev>` when it is not there
    /// (e.g. a ref outside `refs/heads` and `refs/tags`; an `origin/` prefix is dropped, as Koji
    /// does), and `git reset --hard <commit>`. Every command and its output go to `log`.
    pub fn checkout(
        &self,
        url: &ScmUrl,
        dest: &Path,
        log: &mut dyn Write,
    ) -> Result<Checkout, ScmError> {
        let clone_url = url.clone_url()?;
        let kind = url.scm_type();
        self.git(
            kind,
            None,
            &[
                "clone".as_ref(),
                "--no-checkout".as_ref(),
                "--".as_ref(),
                clone_url.as_ref(),
                dest.as_os_str(),
            ],
            log,
        )?;
        let rev = url.revision();
        let commit = match self.resolve(dest, rev, log)? {
            Some(c) => c,
            None => {
                let remote_rev = rev.strip_prefix("origin/").unwrap_or(rev);
                if !fetchable(remote_rev) {
                    return Err(ScmError::Git(format!(
                        "Revision {rev} not found in {}",
                        url.url()
                    )));
                }
                self.git(
                    kind,
                    Some(dest),
                    &[
                        "fetch".as_ref(),
                        "--end-of-options".as_ref(),
                        "origin".as_ref(),
                        remote_rev.as_ref(),
                    ],
                    log,
                )?;
                self.resolve(dest, "FETCH_HEAD", log)?.ok_or_else(|| {
                    ScmError::Git(format!("Revision {rev} not found in {}", url.url()))
                })?
            }
        };
        self.git(
            kind,
            Some(dest),
            &["reset".as_ref(), "--hard".as_ref(), commit.as_ref()],
            log,
        )?;
        let source_dir = if url.module().is_empty() {
            dest.to_path_buf()
        } else {
            let dir = dest.join(url.module());
            // A symlinked module could point anywhere; it must stay inside the clone.
            let inside = match (dir.canonicalize(), dest.canonicalize()) {
                (Ok(d), Ok(root)) => d.starts_with(root) && d.is_dir(),
                _ => false,
            };
            if !inside {
                return Err(ScmError::Git(format!(
                    "Module {} is not a directory in {} at {commit}",
                    url.module(),
                    url.url()
                )));
            }
            dir
        };
        Ok(Checkout {
            commit,
            dir: dest.to_path_buf(),
            source_dir,
        })
    }

    /// Requires `commit` to be reachable from `origin/<branch>` of the clone in `dest`
    /// (fetching the branch when the clone does not have it). The error text is
    /// osbs-client's `Commit <commit> is not reachable in branch <branch>`.
    pub fn verify_on_branch(
        &self,
        dest: &Path,
        commit: &str,
        branch: &str,
        log: &mut dyn Write,
    ) -> Result<(), ScmError> {
        if !valid_branch_name(branch) {
            return Err(ScmError::Invalid(format!(
                "Invalid git branch name: {branch}"
            )));
        }
        if !(commit.len() >= 40
            && commit.len() <= 64
            && commit.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(ScmError::Invalid(format!("Invalid commit id: {commit}")));
        }
        let remote_ref = format!("refs/remotes/origin/{branch}");
        if self.resolve(dest, &remote_ref, log)?.is_none() {
            let refspec = format!("+refs/heads/{branch}:{remote_ref}");
            self.git(
                ScmType::Git,
                Some(dest),
                &[
                    "fetch".as_ref(),
                    "--end-of-options".as_ref(),
                    "origin".as_ref(),
                    refspec.as_ref(),
                ],
                log,
            )?;
        }
        let not_on_branch = || {
            ScmError::NotOnBranch(format!(
                "Commit {commit} is not reachable in branch {branch}"
            ))
        };
        // With the branch's history fetched, a commit the clone lacks is not on the branch.
        if self.resolve(dest, commit, log)?.is_none() {
            return Err(not_on_branch());
        }
        let args: [&OsStr; 5] = [
            "merge-base".as_ref(),
            "--is-ancestor".as_ref(),
            "--end-of-options".as_ref(),
            commit.as_ref(),
            remote_ref.as_ref(),
        ];
        match self.run(Some(dest), &args, log) {
            Ok(_) => Ok(()),
            Err((RunFailure::Exit, Some(status))) if status.code() == Some(1) => {
                Err(not_on_branch())
            }
            Err((failure, _)) => Err(self.failure(ScmType::Git, &args, failure)),
        }
    }

    /// `git rev-parse --verify --quiet <rev>^{commit}`: the full commit id, or None when the
    /// clone has no such revision.
    fn resolve(
        &self,
        dest: &Path,
        rev: &str,
        log: &mut dyn Write,
    ) -> Result<Option<String>, ScmError> {
        let spec = format!("{rev}^{{commit}}");
        let args: [&OsStr; 5] = [
            "rev-parse".as_ref(),
            "--verify".as_ref(),
            "--quiet".as_ref(),
            "--end-of-options".as_ref(),
            spec.as_ref(),
        ];
        match self.run(Some(dest), &args, log) {
            Ok(out) => {
                let sha = String::from_utf8_lossy(&out).trim().to_string();
                if sha.len() >= 40 && sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                    Ok(Some(sha))
                } else {
                    Ok(None)
                }
            }
            Err((RunFailure::Exit, _)) => Ok(None),
            Err((failure, _)) => Err(self.failure(ScmType::Git, &args, failure)),
        }
    }

    /// Runs one git command that must succeed.
    fn git(
        &self,
        kind: ScmType,
        cwd: Option<&Path>,
        args: &[&OsStr],
        log: &mut dyn Write,
    ) -> Result<Vec<u8>, ScmError> {
        self.run(cwd, args, log)
            .map_err(|(failure, _)| self.failure(kind, args, failure))
    }

    fn failure(&self, kind: ScmType, args: &[&OsStr], failure: RunFailure) -> ScmError {
        let cmd = command_line(args);
        match failure {
            RunFailure::Canceled => ScmError::Canceled,
            RunFailure::Timeout => ScmError::Git(format!(
                "Timed out after {} s running {} command \"{cmd}\", see {} for details",
                self.timeout.as_secs(),
                kind.as_str(),
                self.log_name
            )),
            // Koji's text (`SCM.checkout`).
            RunFailure::Spawn | RunFailure::Exit => ScmError::Git(format!(
                "Error running {} command \"{cmd}\", see {} for details",
                kind.as_str(),
                self.log_name
            )),
        }
    }

    /// Runs `git <args>` in its own session, streaming stdout and stderr into `log` (after a
    /// `$ git ...` line, as kojid writes it) and returning stdout.
    fn run(
        &self,
        cwd: Option<&Path>,
        args: &[&OsStr],
        log: &mut dyn Write,
    ) -> Result<Vec<u8>, (RunFailure, Option<ExitStatus>)> {
        // Log write errors are ignored: a full disk must not change what the checkout does.
        let _ = writeln!(log, "$ {}", command_line(args));
        let mut cmd = Command::new("git");
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("GIT_TERMINAL_PROMPT", "0")
            // Only network transports: never file://, ext:: (runs a command) or fd::, also not
            // for submodules; GIT_ALLOW_PROTOCOL overrides any protocol.* configuration.
            .env("GIT_ALLOW_PROTOCOL", "git:http:https:ssh");
        // Settings above every configuration file the builder's user may have: no credential
        // prompts, and submodules are never fetched or updated (a `.gitmodules` entry could
        // name a local repository or an internal host).
        let config: [(&str, &str); 6] = [
            ("credential.helper", ""),
            ("core.askPass", ""),
            ("protocol.allow", "never"),
            ("submodule.recurse", "false"),
            ("fetch.recurseSubmodules", "false"),
            ("protocol.file.allow", "never"),
        ];
        cmd.env("GIT_CONFIG_COUNT", config.len().to_string());
        for (i, (k, v)) in config.iter().enumerate() {
            cmd.env(format!("GIT_CONFIG_KEY_{i}"), k)
                .env(format!("GIT_CONFIG_VALUE_{i}"), v);
        }
        cmd.env("LC_ALL", "C")
            .env_remove("GIT_ASKPASS")
            .env_remove("SSH_ASKPASS")
            .env_remove("SSH_ASKPASS_REQUIRE")
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE");
        if let Some(dir) = cwd {
            cmd.current_dir(dir);
        }
        // SAFETY: setsid(2) is async-signal-safe and touches no memory of the parent. A new
        // session has no controlling terminal (nothing can prompt) and its id is the process
        // group we kill.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                let _ = writeln!(log, "cannot run git: {e}");
                let _ = log.flush();
                return Err((RunFailure::Spawn, None));
            }
        };
        let (tx, rx) = mpsc::channel::<(bool, Vec<u8>)>();
        if let Some(out) = child.stdout.take() {
            pump(out, true, tx.clone());
        }
        if let Some(err) = child.stderr.take() {
            pump(err, false, tx.clone());
        }
        drop(tx);

        let deadline = Instant::now() + self.timeout;
        let mut stdout = Vec::new();
        let mut streams_open = true;
        let mut exited_at: Option<Instant> = None;
        let outcome = loop {
            if self.canceled() {
                break Err(RunFailure::Canceled);
            }
            let now = Instant::now();
            if now >= deadline {
                break Err(RunFailure::Timeout);
            }
            let tick = (deadline - now).min(Duration::from_millis(50));
            if streams_open {
                match rx.recv_timeout(tick) {
                    Ok((is_stdout, chunk)) => {
                        let _ = log.write_all(&chunk);
                        if is_stdout && stdout.len() < 1 << 20 {
                            stdout.extend_from_slice(&chunk);
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => streams_open = false,
                }
            } else {
                // Output ended: git exits within moments; poll finely, each command counts.
                std::thread::sleep(tick.min(Duration::from_millis(1)));
            }
            if exited_at.is_none() && has_exited(&child) {
                exited_at = Some(Instant::now());
            }
            // git is done once it exited and its output ended, or a second after it exited
            // when some descendant still holds the pipes.
            if let Some(t) = exited_at
                && (!streams_open || t.elapsed() > Duration::from_secs(1))
            {
                break Ok(());
            }
        };
        // Whatever is left of the session (descendants of a finished git, or everything on
        // timeout and cancel) is killed before the leader is reaped, so its id cannot be reused
        // meanwhile.
        kill_group(&child);
        let status = child.wait();
        let result = match (outcome, status) {
            (Ok(()), Ok(status)) if status.success() => Ok(stdout),
            (Ok(()), Ok(status)) => {
                let _ = writeln!(log, "git exited with {status}");
                Err((RunFailure::Exit, Some(status)))
            }
            (Ok(()), Err(e)) => {
                let _ = writeln!(log, "cannot wait for git: {e}");
                Err((RunFailure::Exit, None))
            }
            (Err(failure), _) => {
                // What the killed processes wrote last, without waiting on pipes that an
                // escaped descendant may still hold.
                let until = Instant::now() + Duration::from_millis(500);
                while let Ok((_, chunk)) =
                    rx.recv_timeout(until.saturating_duration_since(Instant::now()))
                {
                    let _ = log.write_all(&chunk);
                }
                let why = match failure {
                    RunFailure::Timeout => {
                        format!("timed out after {} s; killed", self.timeout.as_secs())
                    }
                    _ => "canceled; killed".to_string(),
                };
                let _ = writeln!(log, "{why}");
                Err((failure, None))
            }
        };
        let _ = log.flush();
        result
    }

    fn canceled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|f| f.load(Ordering::Relaxed))
    }
}

/// Reads `src` on a thread, sending each chunk; the sender drops at end of file.
fn pump(mut src: impl Read + Send + 'static, is_stdout: bool, tx: mpsc::Sender<(bool, Vec<u8>)>) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 8192];
        loop {
            match src.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send((is_stdout, buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
            }
        }
    });
}

/// True once the child exited; it stays a zombie (not reaped), so its pid, which is also its
/// process group id, cannot be reused until `wait`.
fn has_exited(child: &Child) -> bool {
    let pid: libc::id_t = child.id();
    // SAFETY: waitid(2) writes only into the zeroed siginfo_t we own; WNOWAIT leaves the child
    // waitable for `Child::wait`.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let r = libc::waitid(
            libc::P_PID,
            pid,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        );
        r == -1 || info.si_pid() != 0
    }
}

/// SIGKILL to the child's session (its own process group); the caller reaps the child.
fn kill_group(child: &Child) {
    if let Ok(pid) = i32::try_from(child.id())
        && pid > 1
    {
        // SAFETY: kill(2) with a negative pid signals the process group; no memory involved.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

fn command_line(args: &[&OsStr]) -> String {
    let mut parts: Vec<OsString> = vec!["git".into()];
    parts.extend(args.iter().map(|a| a.to_os_string()));
    parts
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A revision `git fetch origin <rev>` can take as a plain source ref: no refspec syntax.
fn fetchable(rev: &str) -> bool {
    !rev.is_empty()
        && !rev.starts_with(['-', '+', '^'])
        && !rev.contains(':')
        && !rev.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// `git check-ref-format` rules for `refs/heads/<name>`, and no leading `-`.
fn valid_branch_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(['-', '/'])
        && !name.ends_with(['/', '.'])
        && name != "@"
        && !name.contains("..")
        && !name.contains("//")
        && !name.contains("@{")
        && !name
            .chars()
            .any(|c| c.is_control() || " ~^:?*[\\".contains(c))
        && name
            .split('/')
            .all(|c| !c.starts_with('.') && !c.ends_with(".lock"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(url: &str) -> ScmUrl {
        ScmUrl::parse(url, &AllowedScms::allow_all()).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    fn err(url: &str) -> ScmError {
        match ScmUrl::parse(url, &AllowedScms::allow_all()) {
            Ok(s) => panic!("{url} parsed: {s:?}"),
            Err(e) => e,
        }
    }

    /// (url, user, host, repository, module, revision), as koji 1.36.1's `SCM` parses them.
    #[test]
    fn parses_like_koji() {
        type Case<'a> = (&'a str, Option<&'a str>, &'a str, &'a str, &'a str, &'a str);
        let cases: &[Case] = &[
            ("git://u:@h/r.git#a", Some("u"), "h", "/r.git", "", "a"),
            ("git://u@h/r.git#a", Some("u"), "h", "/r.git", "", "a"),
            (
                "git://h/r.git?sub/dir/#a",
                None,
                "h",
                "/r.git",
                "sub/dir",
                "a",
            ),
            (
                "git://h:9418/a/../b//c/#rev",
                None,
                "h:9418",
                "/b/c",
                "",
                "rev",
            ),
            ("git://h//r#x", None, "h", "/r", "", "x"),
            ("git://h/r#a#b", None, "h", "/r", "", "a#b"),
            ("git://h/r?a?b#c", None, "h", "/r", "a?b", "c"),
            ("git:///r#x", None, "", "/r", "", "x"),
            (
                "git://h/r.git#origin/main",
                None,
                "h",
                "/r.git",
                "",
                "origin/main",
            ),
            ("git://[::1]:80/r#x", None, "[::1]:80", "/r", "", "x"),
            ("git://h/r/./#x", None, "h", "/r", "", "x"),
            ("git://h/r%20x#a%20b", None, "h", "/r%20x", "", "a%20b"),
            ("git://h/r#x y", None, "h", "/r", "", "x y"),
            ("git://@h/r#x", None, "h", "/r", "", "x"),
            ("git://h/r?#x", None, "h", "/r", "", "x"),
            ("git://h/%2e%2e/x/%41#r", None, "h", "/x/A", "", "r"),
            ("git://h/a b/%20#r", None, "h", "/a%20b/%20", "", "r"),
            (
                "git://h/caf%C3%A9/%E2#r",
                None,
                "h",
                "/caf%C3%A9/%EF%BF%BD",
                "",
                "r",
            ),
            ("git://h/a;b/c#r", None, "h", "/a;b/c", "", "r"),
            ("git://h/a#r?x", None, "h", "/a", "", "r?x"),
            ("git://x[::1]/r#x", None, "x[::1]", "/r", "", "x"),
            ("git+http://u@h/p.git#r", Some("u"), "h", "/p.git", "", "r"),
            ("git://it's@h/r#x", Some("it's"), "h", "/r", "", "x"),
            ("git://h///a//#x", None, "h", "/a", "", "x"),
            ("git://h:/r#x", None, "h:", "/r", "", "x"),
        ];
        for &(url, user, host, repo, module, rev) in cases {
            let s = ok(url);
            assert_eq!(
                (s.user(), s.host(), s.repository(), s.module(), s.revision()),
                (user, host, repo, module, rev),
                "{url}"
            );
            assert_eq!(s.url(), url);
        }
        let s = ok("git+ssh://me@h/r#x");
        assert_eq!(s.scm_type(), ScmType::GitSsh);
        assert_eq!(s.scheme(), "git+ssh://");
        assert_eq!(ok("git+https://h/r#x").scm_type(), ScmType::Git);
    }

    #[test]
    fn koji_error_texts() {
        let schemes = "Invalid scheme in scm url. Valid schemes are: git+http:// git+https:// \
                       git+ssh:// git://";
        for url in [
            "https://h/r.git#abc",
            "git+file:///tmp/r#x",
            "GIT://h/r#x",
            " git://h/r#x",
            "svn://h/r#x",
            "git+rsync://h/r#x",
        ] {
            assert_eq!(err(url), ScmError::InvalidUrl(schemes.into()), "{url}");
        }
        let cases = [
            (
                "git://h/r.git",
                "Unable to parse SCM URL: git://h/r.git . Could not find the fragment element.",
            ),
            (
                "git://h/r.git#",
                "Unable to parse SCM URL: git://h/r.git# . Could not find the fragment element.",
            ),
            (
                "git://u:p@h/r.git#a",
                "username:password format not supported: u:***",
            ),
            (
                "git://:p@h/r#x",
                "username:password format not supported: None:***",
            ),
            (
                "git://h#a",
                "Unable to parse SCM URL: git://h#a . Could not find the path element.",
            ),
            (
                "git://h?m#x",
                "Unable to parse SCM URL: git://h?m#x . Could not find the path element.",
            ),
            (
                "git://h/#a",
                "Invalid SCM URL. Path should begin with /: %s) ",
            ),
            (
                "git://h//#x",
                "Invalid SCM URL. Path should begin with /: %s) ",
            ),
            (
                "git://h/..#x",
                "Invalid SCM URL. Path should begin with /: %s) ",
            ),
            (
                "git://a@b@h/r#x",
                "Invalid username@hostname specified: ['a', 'b', 'h']",
            ),
            (
                "git://a\"b@c@h/r#x",
                "Invalid username@hostname specified: ['a\"b', 'c', 'h']",
            ),
            (
                "git://it's@c@h/r#x",
                "Invalid username@hostname specified: [\"it's\", 'c', 'h']",
            ),
            (
                "git://h/r;p#x",
                "Unable to parse SCM URL: git://h/r;p#x . Params element p should be empty.",
            ),
            (
                "git://h/a;b/c;d#r",
                "Unable to parse SCM URL: git://h/a;b/c;d#r . Params element d should be empty.",
            ),
            ("git://[::1/r#x", "Invalid SCM URL: git://[::1/r#x"),
            ("git://[zz]/r#x", "Invalid SCM URL: git://[zz]/r#x"),
            ("git://h/r\n#x", "Invalid SCM URL: git://h/r\\n#x"),
            (
                "git://h/r?../../x#a",
                "Unable to parse SCM URL: git://h/r?../../x#a . Module ../../x should be a \
                 relative path inside the repository.",
            ),
            (
                "git://h/r?/abs#a",
                "Unable to parse SCM URL: git://h/r?/abs#a . Module /abs should be a relative \
                 path inside the repository.",
            ),
        ];
        for (url, text) in cases {
            let e = err(url);
            assert_eq!(e.to_string(), text, "{url}");
            assert_eq!(e.fault().code, 1000, "{url}");
        }
    }

    #[test]
    fn is_scm_url() {
        assert!(ScmUrl::is_scm_url("git://h/r"));
        assert!(ScmUrl::is_scm_url("git+ssh://h/r#x"));
        assert!(!ScmUrl::is_scm_url("https://h/r#x"));
        assert!(!ScmUrl::is_scm_url("/tmp/archive.tar"));
    }

    #[test]
    fn clone_urls_and_names() {
        assert_eq!(ok("git://h/r.git#x").clone_url().unwrap(), "git://h/r.git");
        assert_eq!(
            ok("git+https://u@h:8443/a/b.git?m#x").clone_url().unwrap(),
            "https://u@h:8443/a/b.git"
        );
        assert_eq!(
            ok("git+ssh://me@h/r#x").clone_url().unwrap(),
            "git+ssh://me@h/r"
        );
        let e = ok("git+ssh://h/r#x").clone_url().unwrap_err();
        assert_eq!(
            e.to_string(),
            "No user specified for repository access scheme: git+ssh://"
        );
        assert_eq!(e.fault().code, 1005);
        assert_eq!(ok("git://h/rpms/foo.git#x").repo_name(), "foo");
        assert_eq!(ok("git://h/rpms/foo/.git#x").repo_name(), "foo");
        assert_eq!(ok("git://h/rpms/foo#x").repo_name(), "foo");
    }

    #[test]
    fn allowed_scms() {
        let url = ok("git://pkgs.example.com:9418/containers/foo.git#abc");
        assert!(AllowedScms::default().allows_all());
        assert!(AllowedScms::allow_all().check(&url).is_ok());
        let refused =
            "pkgs.example.com:9418:/containers/foo.git is not in the list of allowed SCMs";
        let check = |cfg: &str| AllowedScms::parse(cfg).check(&url);
        assert_eq!(check("").unwrap_err().to_string(), refused);
        assert_eq!(check("").unwrap_err().fault().code, 1005);
        assert!(check("pkgs.example.com*:/containers/*").is_ok());
        assert!(check("*:*").is_ok());
        // The port is part of the host.
        assert!(check("pkgs.example.com:/containers/*").is_err());
        // First match wins.
        assert!(check("!pkgs.example.com*:/containers/foo.git *:*").is_err());
        assert!(check("*:/containers/* !pkgs.example.com*:/containers/foo.git").is_ok());
        // use_common and source_cmd fields are accepted and ignored.
        assert!(check("pkgs.example.com*:/containers/*:no:make,sources").is_ok());
        // Entries without a ':' are skipped.
        assert!(check("bogus *:/containers/*").is_ok());
        assert!(check("*:/rpms/*").is_err());
        assert!(check("pkgs.example.com?9418:/containers/[a-f]oo.git").is_ok());
        assert!(check("pkgs.example.com?9418:/containers/[!f]oo.git").is_err());
        let parsed = ScmUrl::parse(url.url(), &AllowedScms::parse("*:/rpms/*"));
        assert_eq!(parsed, Err(ScmError::NotAllowed(refused.into())));
    }

    #[test]
    fn fnmatch_like_python() {
        assert!(fnmatch("abc", "abc"));
        assert!(fnmatch("/a/b/c", "/a/*"));
        assert!(fnmatch("", "*"));
        assert!(!fnmatch("", "?"));
        assert!(fnmatch("a[b", "a[b"));
        assert!(fnmatch("a]", "a[]]"));
        assert!(fnmatch("a-", "a[-x]"));
        assert!(fnmatch("ab", "a[!]c]"));
        assert!(!fnmatch("a]", "a[!]c]"));
        assert!(fnmatch("x.git", "*.git"));
        assert!(!fnmatch("x.gitx", "*.git"));
        assert!(fnmatch("aXbXc", "a*b*c"));
        assert!(!fnmatch("Abc", "abc"));
        assert!(fnmatch("a5", "a[0-9]"));
        assert!(!fnmatch("a5", "a[9-0]"));
    }

    #[test]
    fn normpath_like_python() {
        for (p, n) in [
            ("/a/../b//c/", "/b/c"),
            ("//r", "//r"),
            ("///r", "/r"),
            ("/..", "/"),
            ("/", "/"),
            ("/./a/.", "/a"),
            ("//", "//"),
        ] {
            assert_eq!(py_normpath(p), n, "{p}");
        }
    }

    #[test]
    fn branch_and_rev_checks() {
        for b in ["main", "f40", "feature/x", "rhel-9.4.0"] {
            assert!(valid_branch_name(b), "{b}");
        }
        for b in [
            "", "-x", "a..b", "a b", "a:b", "x.lock", ".x", "a/", "a//b", "@", "a@{1}", "a~1",
        ] {
            assert!(!valid_branch_name(b), "{b}");
        }
        assert!(fetchable("refs/changes/01/1/1"));
        assert!(!fetchable("main:refs/heads/x"));
        assert!(!fetchable("+main"));
        assert!(!fetchable("--upload-pack=x"));
    }
}
