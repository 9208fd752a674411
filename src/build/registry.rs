//! The container registry a build pushes to: repository and tag naming (OSBS's rules), digests,
//! and a small distribution-API client for what buildah does not do: reading a manifest's digest
//! (to verify a push), re-tagging a pushed manifest, and pushing a multi-arch manifest list.
//!
//! The build's tag set (unique, primary, floating; containerbuild-plugin.md §5) is computed by
//! `dockerfile::tag_set`; here are the per-arch tag `<unique>-<arch>`, pullspecs, and re-tagging
//! in the registry (`RegistryClient::tag`) to apply the other tags without pushing again.
//!
//! The HTTP client speaks plain HTTP (`insecure` registries) with Basic or Bearer-token auth from
//! a containers auth file (`{"auths": {"host:port": {"auth": base64("user:pass")}}}`).
//! Credentials are only ever sent in `Authorization` headers; they are never part of a URL, an
//! error text or a log line. TLS registries need a TLS-enabled reqwest (not built in yet): the
//! client refuses them with a clear error.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use serde::Serialize;
use sha2::Digest as _;

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index (multi-arch).
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker image manifest v2 schema 2.
pub const DOCKER_MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (multi-arch).
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// Every manifest type this client accepts, as sent in `Accept`.
pub const MANIFEST_ACCEPT: [&str; 4] = [
    OCI_MANIFEST,
    OCI_INDEX,
    DOCKER_MANIFEST_V2,
    DOCKER_MANIFEST_LIST,
];

/// Longest tag the distribution spec allows (`[\w][\w.-]{0,127}`).
pub const MAX_TAG_LEN: usize = 128;

/// Largest manifest the client reads (the distribution spec's recommended limit is 4 MiB).
const MAX_MANIFEST: usize = 4 << 20;

/// Timeout of one registry request.
const HTTP_TIMEOUT: Duration = Duration::from_secs(60);

/// What went wrong talking to, or naming things in, a registry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// A malformed name, tag, digest or manifest.
    #[error("{0}")]
    Invalid(String),
    /// The request did not complete (connection, timeout, unsupported scheme).
    #[error("registry request {method} {url} failed: {message}")]
    Transport {
        method: String,
        url: String,
        message: String,
    },
    /// The registry answered with an unexpected status.
    #[error("registry answered {method} {url} with HTTP {status}: {body}")]
    Status {
        method: String,
        url: String,
        status: u16,
        body: String,
    },
    /// Authentication failed or the auth file is unusable (no secret in the text).
    #[error("registry authentication failed: {0}")]
    Auth(String),
    /// The registry returned something other than what was asked for.
    #[error("registry returned inconsistent data: {0}")]
    Mismatch(String),
}

// ---------------------------------------------------------------------------------------------
// Digests

/// A content digest `<algorithm>:<hex>` (sha256 or sha512, lower-case hex).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    /// Parses and validates `sha256:<64 hex>` or `sha512:<128 hex>`; surrounding whitespace (as in
    /// a digest file) is ignored.
    pub fn parse(s: &str) -> Result<Digest, RegistryError> {
        let s = s.trim();
        let bad = || RegistryError::Invalid(format!("invalid digest {s:?}"));
        let (alg, hex) = s.split_once(':').ok_or_else(bad)?;
        let len = match alg {
            "sha256" => 64,
            "sha512" => 128,
            _ => return Err(bad()),
        };
        if hex.len() != len || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(bad());
        }
        Ok(Digest(s.to_owned()))
    }

    /// The sha256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Digest {
        let sum = sha2::Sha256::digest(bytes);
        let mut s = String::with_capacity(71);
        s.push_str("sha256:");
        for b in sum.iter() {
            s.push_str(&format!("{b:02x}"));
        }
        Digest(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `sha256` or `sha512`.
    pub fn algorithm(&self) -> &str {
        self.0.split_once(':').map_or("", |(a, _)| a)
    }

    /// The hex part.
    pub fn hex(&self) -> &str {
        self.0.split_once(':').map_or("", |(_, h)| h)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Digest {
    type Err = RegistryError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

// ---------------------------------------------------------------------------------------------
// Names and tags

/// Checks a repository path as the distribution spec defines it: lower-case components
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*` joined by `/`, 255 characters at most.
pub fn validate_repository(name: &str) -> Result<(), RegistryError> {
    let bad =
        |why: &str| RegistryError::Invalid(format!("invalid repository name {name:?}: {why}"));
    if name.is_empty() || name.len() > 255 {
        return Err(bad("must be 1 to 255 characters"));
    }
    for comp in name.split('/') {
        if !valid_component(comp) {
            return Err(bad(
                "components must be lower-case letters and digits separated by '.', '_', '__' or '-'",
            ));
        }
    }
    Ok(())
}

fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__" or "-+".
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// Checks a tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn validate_tag(tag: &str) -> Result<(), RegistryError> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let b = tag.as_bytes();
    if b.is_empty() || b.len() > MAX_TAG_LEN {
        return Err(RegistryError::Invalid(format!(
            "invalid tag {tag:?}: must be 1 to {MAX_TAG_LEN} characters"
        )));
    }
    if !word(b[0]) || !b.iter().all(|&x| word(x) || x == b'.' || x == b'-') {
        return Err(RegistryError::Invalid(format!(
            "invalid tag {tag:?}: only letters, digits, '_', '.' and '-' are allowed, not first '.' or '-'"
        )));
    }
    Ok(())
}

/// The tag of one arch's image: `<unique>-<arch>` (the build's tag set itself, unique tag
/// included, is `dockerfile::tag_set`).
pub fn arch_tag(unique: &str, arch: &str) -> String {
    format!("{unique}-{arch}")
}

/// Koji arch -> (OCI `architecture`, `variant`), as in Go's GOARCH.
pub fn oci_platform(arch: &str) -> (&str, Option<&str>) {
    match arch {
        "x86_64" => ("amd64", None),
        "aarch64" => ("arm64", Some("v8")),
        "i386" | "i486" | "i586" | "i686" => ("386", None),
        "armv7hl" | "armv7l" => ("arm", Some("v7")),
        "ppc64le" | "s390x" | "ppc64" | "riscv64" => (arch, None),
        other => (other, None),
    }
}

// ---------------------------------------------------------------------------------------------
// The registry

/// One registry as configured for a builder (`--registry HOST:PORT`, `--registry-insecure`,
/// an auth file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    /// `host:port` (or `host`), no scheme, no path.
    pub host_port: String,
    /// Plain HTTP (and, for buildah/skopeo, `--tls-verify=false`).
    pub insecure: bool,
    /// containers-auth.json with the credentials, handed to buildah as `--authfile`.
    pub authfile: Option<PathBuf>,
}

impl Registry {
    /// Validates `host_port` (`host[:port]`, no scheme or path).
    pub fn new(
        host_port: &str,
        insecure: bool,
        authfile: Option<PathBuf>,
    ) -> Result<Registry, RegistryError> {
        let ok = !host_port.is_empty()
            && host_port.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
            });
        if !ok {
            return Err(RegistryError::Invalid(format!(
                "invalid registry address {host_port:?}: expected HOST[:PORT]"
            )));
        }
        Ok(Registry {
            host_port: host_port.to_owned(),
            insecure,
            authfile,
        })
    }

    /// buildah/skopeo `--tls-verify`.
    pub fn tls_verify(&self) -> bool {
        !self.insecure
    }

    /// `<host:port>/<name>`.
    pub fn repository(&self, name: &str) -> String {
        format!("{}/{name}", self.host_port)
    }

    /// `<host:port>/<name>:<tag>`.
    pub fn pullspec(&self, name: &str, tag: &str) -> String {
        format!("{}/{name}:{tag}", self.host_port)
    }

    /// `<host:port>/<name>@<digest>`.
    pub fn pullspec_digest(&self, name: &str, digest: &Digest) -> String {
        format!("{}/{name}@{digest}", self.host_port)
    }

    /// A client for this registry's HTTP API.
    pub fn client(&self) -> Result<RegistryClient, RegistryError> {
        RegistryClient::new(self)
    }
}

/// A manifest as stored in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestInfo {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
}

/// One entry of a manifest list: a per-arch manifest already in the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestEntry {
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
    /// Koji arch (`x86_64`, `aarch64`, ...), mapped with [`oci_platform`].
    pub arch: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListJson<'a> {
    schema_version: u32,
    media_type: &'a str,
    manifests: Vec<ListEntryJson<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListEntryJson<'a> {
    media_type: &'a str,
    size: u64,
    digest: &'a str,
    platform: PlatformJson<'a>,
}

#[derive(Serialize)]
struct PlatformJson<'a> {
    architecture: &'a str,
    os: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<&'a str>,
}

/// The manifest list for `manifests`: a Docker manifest list when every entry is a Docker v2s2
/// manifest, an OCI index otherwise. Returns the exact bytes and their media type.
pub fn manifest_list_json(
    manifests: &[ManifestEntry],
) -> Result<(Vec<u8>, &'static str), RegistryError> {
    if manifests.is_empty() {
        return Err(RegistryError::Invalid(
            "a manifest list needs at least one manifest".into(),
        ));
    }
    let docker = manifests.iter().all(|m| m.media_type == DOCKER_MANIFEST_V2);
    let media_type = if docker {
        DOCKER_MANIFEST_LIST
    } else {
        OCI_INDEX
    };
    let mut entries = Vec::with_capacity(manifests.len());
    for m in manifests {
        if m.media_type != OCI_MANIFEST && m.media_type != DOCKER_MANIFEST_V2 {
            return Err(RegistryError::Invalid(format!(
                "manifest {} has media type {:?}; a list can hold only image manifests",
                m.digest, m.media_type
            )));
        }
        let (architecture, variant) = oci_platform(&m.arch);
        entries.push(ListEntryJson {
            media_type: &m.media_type,
            size: m.size,
            digest: m.digest.as_str(),
            platform: PlatformJson {
                architecture,
                os: "linux",
                variant,
            },
        });
    }
    let json = ListJson {
        schema_version: 2,
        media_type,
        manifests: entries,
    };
    let bytes = serde_json::to_vec(&json)
        .map_err(|e| RegistryError::Invalid(format!("cannot encode manifest list: {e}")))?;
    Ok((bytes, media_type))
}

// ---------------------------------------------------------------------------------------------
// Credentials

#[derive(Clone)]
struct Credentials {
    user: String,
    password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Reads the credentials for `host_port` from a containers auth file. Keys may carry a scheme
/// (`https://host`, as docker writes them) or a repository path (containers-auth.json allows
/// `host/namespace`); the entry for the bare host is used.
fn read_credentials(path: &Path, host_port: &str) -> Result<Option<Credentials>, RegistryError> {
    let text = std::fs::read(path).map_err(|e| {
        RegistryError::Auth(format!("cannot read auth file {}: {e}", path.display()))
    })?;
    let doc: serde_json::Value = serde_json::from_slice(&text).map_err(|_| {
        RegistryError::Auth(format!("auth file {} is not valid JSON", path.display()))
    })?;
    let Some(auths) = doc.get("auths").and_then(|a| a.as_object()) else {
        return Ok(None);
    };
    for (key, entry) in auths {
        let k = key
            .strip_prefix("https://")
            .or_else(|| key.strip_prefix("http://"))
            .unwrap_or(key);
        let k = k.split('/').next().unwrap_or(k);
        if k != host_port {
            continue;
        }
        let Some(auth) = entry.get("auth").and_then(|a| a.as_str()) else {
            continue;
        };
        let bad = || {
            RegistryError::Auth(format!(
                "auth file {}: the entry for {host_port} is not base64(user:password)",
                path.display()
            ))
        };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| bad())?;
        let s = String::from_utf8(raw).map_err(|_| bad())?;
        let (user, password) = s.split_once(':').ok_or_else(bad)?;
        return Ok(Some(Credentials {
            user: user.to_owned(),
            password: password.to_owned(),
        }));
    }
    Ok(None)
}

/// Splits a `WWW-Authenticate` value into its scheme and `key="value"` parameters.
fn parse_challenge(v: &str) -> (String, HashMap<String, String>) {
    let v = v.trim();
    let (scheme, rest) = v.split_once(' ').unwrap_or((v, ""));
    let mut params = HashMap::new();
    let mut s = rest.trim();
    while !s.is_empty() {
        let Some(eq) = s.find('=') else { break };
        let key = s[..eq].trim().to_ascii_lowercase();
        s = s[eq + 1..].trim_start();
        let value;
        if let Some(q) = s.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = q.char_indices();
            let mut end = q.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            out.push(n);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => out.push(c),
                }
            }
            value = out;
            s = &q[end.min(q.len())..];
        } else {
            let end = s.find(',').unwrap_or(s.len());
            value = s[..end].trim().to_owned();
            s = &s[end..];
        }
        params.insert(key, value);
        s = s.trim_start().trim_start_matches(',').trim_start();
    }
    (scheme.to_ascii_lowercase(), params)
}

// ---------------------------------------------------------------------------------------------
// The client

#[derive(Debug, Clone)]
enum AuthState {
    None,
    Basic,
    Bearer(String),
}

/// A registry HTTP client (distribution API v2).
#[derive(Debug)]
pub struct RegistryClient {
    http: reqwest::Client,
    base: String,
    creds: Option<Credentials>,
    /// Auth per scope (`repository:<repo>:pull,push`), learned from challenges.
    auth: Mutex<HashMap<String, AuthState>>,
}

struct Response {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl RegistryClient {
    pub fn new(registry: &Registry) -> Result<RegistryClient, RegistryError> {
        let creds = match &registry.authfile {
            Some(p) => read_credentials(p, &registry.host_port)?,
            None => None,
        };
        let http = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::limited(5))
            .build()
            .map_err(|e| RegistryError::Transport {
                method: "-".into(),
                url: registry.host_port.clone(),
                message: e.to_string(),
            })?;
        let scheme = if registry.insecure { "http" } else { "https" };
        Ok(RegistryClient {
            http,
            base: format!("{scheme}://{}", registry.host_port),
            creds,
            auth: Mutex::new(HashMap::new()),
        })
    }

    /// `GET /v2/`: Ok when the registry answers 200 (or 401, i.e. it is up but wants auth).
    pub async fn ping(&self) -> Result<(), RegistryError> {
        let url = format!("{}/v2/", self.base);
        let r = self
            .raw(reqwest::Method::GET, &url, &[], None, None)
            .await?;
        match r.status {
            200 | 401 => Ok(()),
            s => Err(status_error("GET", &url, s, &r.body)),
        }
    }

    /// `HEAD` a manifest by tag or digest: its digest, media type and size, or `None` when the
    /// repository or the reference does not exist.
    pub async fn manifest_head(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<ManifestInfo>, RegistryError> {
        validate_repository(repo)?;
        let url = self.manifest_url(repo, reference)?;
        let accept = MANIFEST_ACCEPT.join(", ");
        let r = self
            .send(
                reqwest::Method::HEAD,
                &url,
                &[("accept", &accept)],
                None,
                repo,
            )
            .await?;
        match r.status {
            200 => {}
            404 => return Ok(None),
            s => return Err(status_error("HEAD", &url, s, &r.body)),
        }
        let digest = header(&r.headers, "docker-content-digest").ok_or_else(|| {
            RegistryError::Mismatch(format!("HEAD {url}: no Docker-Content-Digest header"))
        })?;
        let digest = Digest::parse(&digest)?;
        let media_type = header(&r.headers, "content-type").unwrap_or_default();
        let size = header(&r.headers, "content-length")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Ok(Some(ManifestInfo {
            digest,
            media_type,
            size,
        }))
    }

    /// The digest of a manifest (by tag or digest), `None` when it does not exist.
    pub async fn manifest_digest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<Digest>, RegistryError> {
        Ok(self.manifest_head(repo, reference).await?.map(|m| m.digest))
    }

    /// `GET` a manifest: its exact bytes and description. The digest is computed from the bytes
    /// and must match the registry's header (and the reference, when that is a digest).
    pub async fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<(Vec<u8>, ManifestInfo), RegistryError> {
        validate_repository(repo)?;
        let url = self.manifest_url(repo, reference)?;
        let accept = MANIFEST_ACCEPT.join(", ");
        let r = self
            .send(
                reqwest::Method::GET,
                &url,
                &[("accept", &accept)],
                None,
                repo,
            )
            .await?;
        if r.status != 200 {
            return Err(status_error("GET", &url, r.status, &r.body));
        }
        let digest = Digest::sha256_of(&r.body);
        if let Some(h) = header(&r.headers, "docker-content-digest")
            && h.starts_with("sha256:")
            && h != digest.as_str()
        {
            return Err(RegistryError::Mismatch(format!(
                "GET {url}: body digest {digest} but header says {h}"
            )));
        }
        if reference.starts_with("sha256:") && reference != digest.as_str() {
            return Err(RegistryError::Mismatch(format!(
                "GET {url}: body digest {digest} does not match the reference"
            )));
        }
        let media_type = header(&r.headers, "content-type")
            .filter(|m| !m.is_empty())
            .or_else(|| {
                serde_json::from_slice::<serde_json::Value>(&r.body)
                    .ok()
                    .and_then(|v| v.get("mediaType")?.as_str().map(str::to_owned))
            })
            .unwrap_or_default();
        let size = r.body.len() as u64;
        Ok((
            r.body,
            ManifestInfo {
                digest,
                media_type,
                size,
            },
        ))
    }

    /// `PUT` manifest bytes under `reference` (a tag). Returns the digest of the bytes, checked
    /// against the registry's `Docker-Content-Digest`.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<ManifestInfo, RegistryError> {
        validate_repository(repo)?;
        if !reference.starts_with("sha256:") {
            validate_tag(reference)?;
        }
        let url = self.manifest_url(repo, reference)?;
        let digest = Digest::sha256_of(bytes);
        let r = self
            .send(
                reqwest::Method::PUT,
                &url,
                &[("content-type", media_type)],
                Some(bytes),
                repo,
            )
            .await?;
        if r.status != 201 && r.status != 200 {
            return Err(status_error("PUT", &url, r.status, &r.body));
        }
        if let Some(h) = header(&r.headers, "docker-content-digest")
            && h != digest.as_str()
        {
            return Err(RegistryError::Mismatch(format!(
                "PUT {url}: sent {digest} but the registry stored {h}"
            )));
        }
        Ok(ManifestInfo {
            digest,
            media_type: media_type.to_owned(),
            size: bytes.len() as u64,
        })
    }

    /// Adds tag `new_tag` to the manifest `source` (a tag or digest) of the same repository,
    /// byte for byte (the digest does not change). Returns the manifest's description.
    pub async fn tag(
        &self,
        repo: &str,
        source: &str,
        new_tag: &str,
    ) -> Result<ManifestInfo, RegistryError> {
        validate_tag(new_tag)?;
        let (bytes, info) = self.get_manifest(repo, source).await?;
        let put = self
            .put_manifest(repo, new_tag, &bytes, &info.media_type)
            .await?;
        if put.digest != info.digest {
            return Err(RegistryError::Mismatch(format!(
                "re-tagging {source} as {new_tag} changed the digest"
            )));
        }
        Ok(put)
    }

    /// Pushes a multi-arch manifest list (Docker list for v2s2 entries, OCI index otherwise)
    /// referring to per-arch manifests already in `repo`, under `tag`.
    pub async fn put_manifest_list(
        &self,
        repo: &str,
        tag: &str,
        manifests: &[ManifestEntry],
    ) -> Result<ManifestInfo, RegistryError> {
        let (bytes, media_type) = manifest_list_json(manifests)?;
        self.put_manifest(repo, tag, &bytes, media_type).await
    }

    fn manifest_url(&self, repo: &str, reference: &str) -> Result<String, RegistryError> {
        if reference.contains(':') {
            Digest::parse(reference)?;
        } else {
            validate_tag(reference)?;
        }
        Ok(format!("{}/v2/{repo}/manifests/{reference}", self.base))
    }

    /// One request with auth: the scope's known auth first; on 401 the challenge is answered
    /// (Basic, or a Bearer token from the realm) and the request sent once more.
    async fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        repo: &str,
    ) -> Result<Response, RegistryError> {
        let scope = format!("repository:{repo}:pull,push");
        let known = self
            .auth
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&scope)
            .cloned()
            .unwrap_or(AuthState::None);
        let r = self
            .raw(method.clone(), url, headers, body, Some(&known))
            .await?;
        if r.status != 401 {
            return Ok(r);
        }
        let Some(challenge) = header(&r.headers, "www-authenticate") else {
            return Err(RegistryError::Auth(format!(
                "{method} {url}: 401 without a WWW-Authenticate challenge"
            )));
        };
        let (scheme, params) = parse_challenge(&challenge);
        let state = match scheme.as_str() {
            "basic" => {
                if self.creds.is_none() {
                    return Err(RegistryError::Auth(format!(
                        "{method} {url}: the registry wants credentials and the auth file has none for it"
                    )));
                }
                AuthState::Basic
            }
            "bearer" => {
                let token = self.fetch_token(&params, &scope).await?;
                AuthState::Bearer(token)
            }
            other => {
                return Err(RegistryError::Auth(format!(
                    "{method} {url}: unsupported auth scheme {other:?}"
                )));
            }
        };
        self.auth
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(scope, state.clone());
        let r = self
            .raw(method.clone(), url, headers, body, Some(&state))
            .await?;
        if r.status == 401 {
            return Err(RegistryError::Auth(format!(
                "{method} {url}: credentials refused"
            )));
        }
        Ok(r)
    }

    async fn fetch_token(
        &self,
        params: &HashMap<String, String>,
        scope: &str,
    ) -> Result<String, RegistryError> {
        let realm = params
            .get("realm")
            .ok_or_else(|| RegistryError::Auth("Bearer challenge without realm".into()))?;
        let mut req = self.http.get(realm.as_str());
        let mut query: Vec<(&str, &str)> = vec![("scope", scope)];
        if let Some(s) = params.get("service") {
            query.push(("service", s));
        }
        req = req.query(&query);
        if let Some(c) = &self.creds {
            req = req.basic_auth(&c.user, Some(&c.password));
        }
        let resp = req.send().await.map_err(|e| {
            RegistryError::Auth(format!(
                "token request to {realm} failed: {}",
                e.without_url()
            ))
        })?;
        let status = resp.status().as_u16();
        let body = resp
            .bytes()
            .await
            .map_err(|e| RegistryError::Auth(format!("token response from {realm}: {e}")))?;
        if status != 200 {
            return Err(RegistryError::Auth(format!(
                "token request to {realm} answered HTTP {status}"
            )));
        }
        let v: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|_| RegistryError::Auth(format!("token response from {realm} is not JSON")))?;
        v.get("token")
            .or_else(|| v.get("access_token"))
            .and_then(|t| t.as_str())
            .map(str::to_owned)
            .ok_or_else(|| RegistryError::Auth(format!("token response from {realm} has no token")))
    }

    async fn raw(
        &self,
        method: reqwest::Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        auth: Option<&AuthState>,
    ) -> Result<Response, RegistryError> {
        let mut req = self.http.request(method.clone(), url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        match (auth, &self.creds) {
            (Some(AuthState::Basic), Some(c)) => {
                req = req.basic_auth(&c.user, Some(&c.password));
            }
            (Some(AuthState::Bearer(t)), _) => {
                req = req.bearer_auth(t);
            }
            _ => {}
        }
        if let Some(b) = body {
            req = req.body(b.to_vec());
        }
        let transport = |e: reqwest::Error| RegistryError::Transport {
            method: method.to_string(),
            url: url.to_owned(),
            message: e.without_url().to_string(),
        };
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let mut body = Vec::new();
        let mut resp = resp;
        while let Some(chunk) = resp.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > MAX_MANIFEST {
                return Err(RegistryError::Mismatch(format!(
                    "{method} {url}: response larger than {MAX_MANIFEST} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

fn header(h: &reqwest::header::HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_owned())
}

fn status_error(method: &str, url: &str, status: u16, body: &[u8]) -> RegistryError {
    let mut text: String = String::from_utf8_lossy(body)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if text.len() > 300 {
        let mut cut = 300;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    RegistryError::Status {
        method: method.to_owned(),
        url: url.to_owned(),
        status,
        body: text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests() {
        let d = Digest::sha256_of(b"");
        assert_eq!(
            d.as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(Digest::parse(&format!(" {d}\n")).unwrap(), d);
        assert_eq!(d.algorithm(), "sha256");
        assert_eq!(d.hex().len(), 64);
        assert!(Digest::parse("sha256:abc").is_err());
        assert!(
            Digest::parse("md5:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
                .is_err()
        );
        assert!(Digest::parse(&d.as_str().to_uppercase()).is_err());
    }

    #[test]
    fn names_and_tags() {
        for ok in ["foo", "a/b-c", "org/my_image", "x__y", "a.b/c--d"] {
            validate_repository(ok).unwrap();
        }
        for bad in ["", "Foo", "a//b", "-a", "a-", "a___b", "a/.b", "a:b"] {
            assert!(validate_repository(bad).is_err(), "{bad}");
        }
        validate_tag("1.0-3").unwrap();
        validate_tag("_x").unwrap();
        validate_tag(&"a".repeat(128)).unwrap();
        assert!(validate_tag(&"a".repeat(129)).is_err());
        assert!(validate_tag("-x").is_err());
        assert!(validate_tag(".x").is_err());
        assert!(validate_tag("a/b").is_err());
        assert!(validate_tag("").is_err());
    }

    #[test]
    fn tags() {
        assert_eq!(arch_tag("u", "x86_64"), "u-x86_64");
    }

    #[test]
    fn registry_names() {
        let r = Registry::new("reg.example:5000", false, None).unwrap();
        assert_eq!(r.repository("ns/foo"), "reg.example:5000/ns/foo");
        assert_eq!(r.pullspec("foo", "1"), "reg.example:5000/foo:1");
        assert!(r.tls_verify());
        assert!(Registry::new("http://x", true, None).is_err());
        assert!(Registry::new("x/y", true, None).is_err());
    }

    #[test]
    fn manifest_lists() {
        let d = Digest::sha256_of(b"x");
        let e = |mt: &str, arch: &str| ManifestEntry {
            digest: d.clone(),
            size: 10,
            media_type: mt.to_owned(),
            arch: arch.to_owned(),
        };
        let (bytes, mt) = manifest_list_json(&[
            e(DOCKER_MANIFEST_V2, "x86_64"),
            e(DOCKER_MANIFEST_V2, "aarch64"),
        ])
        .unwrap();
        assert_eq!(mt, DOCKER_MANIFEST_LIST);
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["schemaVersion"], 2);
        assert_eq!(v["mediaType"], DOCKER_MANIFEST_LIST);
        assert_eq!(v["manifests"][0]["platform"]["architecture"], "amd64");
        assert!(v["manifests"][0]["platform"].get("variant").is_none());
        assert_eq!(v["manifests"][1]["platform"]["architecture"], "arm64");
        assert_eq!(v["manifests"][1]["platform"]["variant"], "v8");
        let (_, mt) = manifest_list_json(&[e(OCI_MANIFEST, "x86_64")]).unwrap();
        assert_eq!(mt, OCI_INDEX);
        assert!(manifest_list_json(&[]).is_err());
        assert!(manifest_list_json(&[e(OCI_INDEX, "x86_64")]).is_err());
    }

    #[test]
    fn challenges() {
        let (s, p) = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(s, "bearer");
        assert_eq!(p["realm"], "https://auth.example/token");
        assert_eq!(p["service"], "registry.example");
        assert_eq!(p["scope"], "repository:a/b:pull,push");
        let (s, p) = parse_challenge(r#"Basic realm="Registry Realm""#);
        assert_eq!(s, "basic");
        assert_eq!(p["realm"], "Registry Realm");
    }

    #[test]
    fn auth_file() {
        let dir = std::env::temp_dir().join(format!("cb-authfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("auth.json");
        let enc = base64::engine::general_purpose::STANDARD.encode("me:s3cret:x");
        std::fs::write(
            &p,
            format!(r#"{{"auths": {{"https://other:1": {{"auth": "eA=="}}, "reg:5000": {{"auth": "{enc}"}}}}}}"#),
        )
        .unwrap();
        let c = read_credentials(&p, "reg:5000").unwrap().unwrap();
        assert_eq!(c.user, "me");
        assert_eq!(c.password, "s3cret:x");
        assert!(!format!("{c:?}").contains("s3cret"));
        assert!(read_credentials(&p, "nope:1").unwrap().is_none());
        std::fs::write(&p, r#"{"auths": {"reg:5000": {"auth": "!!"}}}"#).unwrap();
        let e = read_credentials(&p, "reg:5000").unwrap_err().to_string();
        assert!(!e.contains("!!"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
