//! File uploads into the hub's work directory (`<filepath>/<filename>` under the topdir's `work`), Koji's
//! three ways: the streaming `rawUpload` (`POST /kojihub?filename=..&filepath=..` with an
//! `application/octet-stream` body), the legacy base64 `uploadFile`, and `checkUpload`.
//!
//! Destinations follow Koji's `get_upload_path`: `tasks/<id % 10000>/<id>[/...]` is writable only
//! by the host session running that (OPEN) task; any other directory belongs to the first user
//! who uploads there (a `.user` file holds the owner's id).

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use rusqlite::Connection;

use super::auth::{Auth, Credentials};
use super::methods::host::{assert_host, verify_host};
use super::{Ctx, Hub, Method};
use crate::params;
use crate::store::sessions;
use crate::xmlrpc::sig::{opt, req};
use crate::xmlrpc::wire;
use crate::xmlrpc::{Args, Fault, FaultCode, Struct, Value};

// ---------------------------------------------------------------------------------------------
// Checksums

/// Adler-32 as `zlib.adler32` computes it (Koji's `adler32_constructor`), from the `adler2`
/// crate the builder uses too.
#[derive(Clone, Default)]
pub struct Adler32(adler2::Adler32);

impl Adler32 {
    pub fn update(&mut self, data: &[u8]) {
        self.0.write_slice(data);
    }

    pub fn value(&self) -> u32 {
        self.0.checksum()
    }

    /// `%08x`, as Koji reports it.
    pub fn hexdigest(&self) -> String {
        format!("{:08x}", self.value())
    }
}

impl std::fmt::Debug for Adler32 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Adler32({:08x})", self.value())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The digests Koji's `get_verify_class` knows.
enum Verifier {
    Adler32(Adler32),
    Md5(md5::Md5),
    Sha256(sha2::Sha256),
}

impl Verifier {
    /// `None` for an empty name (no verification).
    fn new(name: &str) -> Result<Option<Verifier>, Fault> {
        use sha2::Digest as _;
        Ok(match name {
            "" => None,
            "adler32" => Some(Verifier::Adler32(Adler32::default())),
            "md5" => Some(Verifier::Md5(md5::Md5::new())),
            "sha256" => Some(Verifier::Sha256(sha2::Sha256::new())),
            other => {
                return Err(Fault::generic(format!("Unsupported verify type: {other}")));
            }
        })
    }

    fn update(&mut self, data: &[u8]) {
        use sha2::Digest as _;
        match self {
            Verifier::Adler32(a) => a.update(data),
            Verifier::Md5(m) => m.update(data),
            Verifier::Sha256(s) => s.update(data),
        }
    }

    fn hexdigest(self) -> String {
        use sha2::Digest as _;
        match self {
            Verifier::Adler32(a) => a.hexdigest(),
            Verifier::Md5(m) => hex(&m.finalize()),
            Verifier::Sha256(s) => hex(&s.finalize()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Destinations

/// Files being written right now; a second writer gets Koji's LockError.
#[derive(Default)]
pub struct Locks(Mutex<HashSet<PathBuf>>);

/// Holds a destination until dropped.
pub struct FileLock<'a> {
    locks: &'a Locks,
    path: PathBuf,
}

impl Drop for FileLock<'_> {
    fn drop(&mut self) {
        self.locks
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.path);
    }
}

impl Locks {
    fn try_lock(&self, path: &Path) -> Result<FileLock<'_>, Fault> {
        let mut set = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if !set.insert(path.to_path_buf()) {
            return Err(Fault::new(
                FaultCode::Lock,
                "[Errno 11] Resource temporarily unavailable",
            ));
        }
        Ok(FileLock {
            locks: self,
            path: path.to_path_buf(),
        })
    }

    fn is_locked(&self, path: &Path) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(path)
    }
}

fn io_fault(what: &str, path: &Path, e: std::io::Error) -> Fault {
    if crate::store::io_is_disk_full(&e) {
        // The client can do nothing but wait: say so, rather than "write failed".
        tracing::warn!(path = %path.display(), error = %e, "upload: {what} refused, disk full");
        return Fault::generic(format!(
            "the hub's disk is full: {what} failed for {} ({e}); free space in the hub's data \
             directory, then retry the upload",
            path.display()
        ));
    }
    tracing::error!(path = %path.display(), error = %e, "upload: {what} failed");
    Fault::generic(format!("{what} failed for {}: {e}", path.display()))
}

/// Koji's `get_upload_path`: checks the names and, with `create`, the caller's right to write
/// there (creating the directory and its `.user` file). Returns the destination file.
pub fn upload_path(
    hub: &Hub,
    db: &Connection,
    auth: &Auth,
    reldir: &str,
    name: &str,
    create: bool,
    volume: Option<&str>,
) -> Result<PathBuf, Fault> {
    if name.is_empty() || name.starts_with('.') || name.contains(['/', '\\', '\0']) {
        return Err(Fault::generic(format!("Invalid upload filename: {name}")));
    }
    let bad_dir = || Fault::generic(format!("Invalid upload directory: {reldir}"));
    if reldir.starts_with('/') || reldir.contains(['\\', '\0']) {
        return Err(bad_dir());
    }
    // os.path.normpath, refusing anything that climbs out.
    let mut parts: Vec<&str> = Vec::new();
    for p in reldir.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(bad_dir());
                }
            }
            p => parts.push(p),
        }
    }
    if parts.first().is_some_and(|p| p.starts_with("..")) {
        return Err(bad_dir());
    }
    let mut base = hub.topdir();
    if let Some(v) = volume {
        let known: bool = db
            .prepare_cached("SELECT 1 FROM volumes WHERE name = ?1")
            .and_then(|mut s| s.exists([v]))
            .map_err(crate::store::StoreError::from)?;
        if !known {
            return Err(Fault::generic(format!(
                "No such entry in table volume: {v}"
            )));
        }
        if v != "DEFAULT" {
            base = base.join("vol").join(v);
        }
    }
    let mut check_user = true;
    if create && parts.first() == Some(&"tasks") {
        let bad_task = || Fault::generic(format!("Invalid task upload directory: {reldir}"));
        if parts.len() < 3 {
            return Err(bad_task());
        }
        let task_id: i64 = parts[2].parse().map_err(|_| bad_task())?;
        if parts[1] != (task_id % 10000).to_string() {
            return Err(bad_task());
        }
        // Only the host running this task may write here.
        let host = verify_host(auth, db)?;
        assert_host(db, task_id, host)?;
        check_user = false;
    }
    let mut udir = base.join("work");
    if create {
        std::fs::create_dir_all(&udir).map_err(|e| io_fault("mkdir", &udir, e))?;
    }
    // Component by component: a symlink planted below work/ (in a task or upload directory)
    // is refused, never followed, so nothing is written or read outside the topdir.
    for p in &parts {
        udir.push(p);
        match std::fs::symlink_metadata(&udir) {
            Ok(m) if m.is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => {
                return Err(Fault::generic(format!(
                    "Invalid upload directory, {} is a symlink: {reldir}",
                    udir.strip_prefix(&base).unwrap_or(&udir).display()
                )));
            }
            Ok(_) => {
                return Err(Fault::generic(format!(
                    "Invalid upload directory, {} is not a directory: {reldir}",
                    udir.strip_prefix(&base).unwrap_or(&udir).display()
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                // create_dir never follows a symlink put in its place meanwhile: it fails.
                match std::fs::create_dir(&udir) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        let m = std::fs::symlink_metadata(&udir)
                            .map_err(|e| io_fault("stat", &udir, e))?;
                        if !m.is_dir() {
                            return Err(Fault::generic(format!(
                                "Invalid upload directory, not a directory: {reldir}"
                            )));
                        }
                    }
                    Err(e) => return Err(io_fault("mkdir", &udir, e)),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_fault("stat", &udir, e)),
        }
    }
    if create && check_user {
        let uid = auth
            .user_id()
            .ok_or_else(|| Fault::not_allowed("you must be logged-in to upload a file"))?;
        let u_fn = udir.join(".user");
        match OpenOptions::new().write(true).create_new(true).open(&u_fn) {
            Ok(mut f) => {
                if let Err(e) = f.write_all(uid.to_string().as_bytes()) {
                    // An empty owner file would refuse this user's every later upload
                    // here ("not owner"), e.g. after a full disk got space again.
                    let _ = std::fs::remove_file(&u_fn);
                    return Err(io_fault("write", &u_fn, e));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let mut owner = String::new();
                nofollow(OpenOptions::new().read(true))
                    .open(&u_fn)
                    .and_then(|mut f| f.read_to_string(&mut owner))
                    .map_err(|e| io_fault("read", &u_fn, e))?;
                if owner.trim().parse::<i64>().ok() != Some(uid) {
                    return Err(Fault::generic(format!(
                        "Invalid upload directory, not owner: {reldir}"
                    )));
                }
            }
            Err(e) => return Err(io_fault("create", &u_fn, e)),
        }
    }
    Ok(udir.join(name))
}

/// `O_NOFOLLOW`: opening a destination that became a symlink after the checks fails (ELOOP)
/// instead of writing or reading where the link points.
fn nofollow(o: &mut OpenOptions) -> &mut OpenOptions {
    use std::os::unix::fs::OpenOptionsExt as _;
    o.custom_flags(libc::O_NOFOLLOW)
}

/// Refuses symlinks and non-files; `Ok(Some(len))` for an existing file, `Ok(None)` for none.
fn existing_file(path: &Path) -> Result<Option<u64>, Fault> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(Fault::generic(format!(
            "destination is a symlink: {}",
            path.display()
        ))),
        Ok(m) if !m.is_file() => Err(Fault::generic(format!(
            "destination not a file: {}",
            path.display()
        ))),
        Ok(m) => Ok(Some(m.len())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_fault("stat", path, e)),
    }
}

fn too_large(hub: &Hub, name: &str) -> Fault {
    Fault::generic(format!(
        "upload of {name} exceeds the hub's max_upload_size ({} bytes)",
        hub.config.max_upload_size
    ))
}

// ---------------------------------------------------------------------------------------------
// rawUpload

/// The query string of a `rawUpload` POST.
#[derive(Debug, Default)]
struct RawParams {
    filename: Option<String>,
    filepath: String,
    fileverify: String,
    offset: String,
    overwrite: bool,
    volume: Option<String>,
}

fn parse_query(query: Option<&str>) -> RawParams {
    let mut p = RawParams {
        offset: "0".into(),
        ..RawParams::default()
    };
    for pair in query.unwrap_or("").split('&').filter(|s| !s.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_encoding::percent_decode_str(&v.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned();
        match k {
            "filename" => p.filename = Some(v),
            "filepath" => p.filepath = v,
            "fileverify" => p.fileverify = v,
            "offset" => p.offset = v,
            // Python truthiness of the string: any non-empty value.
            "overwrite" => p.overwrite = !v.is_empty(),
            "volume" => p.volume = Some(v),
            _ => {}
        }
    }
    p
}

fn fault_response(f: &Fault) -> Response {
    ([(header::CONTENT_TYPE, "text/xml")], wire::write_fault(f)).into_response()
}

/// Handles `POST /kojihub` with an `application/octet-stream` body. Faults are HTTP 200.
pub async fn handle(
    hub: Arc<Hub>,
    creds: Credentials,
    query: Option<String>,
    peer: Option<IpAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = std::time::Instant::now();
    match raw_upload(&hub, creds, query.as_deref(), peer, &headers, body).await {
        Ok(Ok((s, path))) => {
            let bytes = s.get("size").and_then(|v| v.as_int()).unwrap_or(0);
            tracing::debug!(
                path = %path.display(),
                bytes,
                elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
                "upload"
            );
            (
                [(header::CONTENT_TYPE, "text/xml")],
                wire::write_response(&Value::Struct(s)),
            )
                .into_response()
        }
        Ok(Err(f)) => {
            tracing::info!(code = f.code, fault = %f.message, "upload fault");
            fault_response(&f)
        }
        Err(resp) => resp,
    }
}

type UploadResult = Result<Result<(Struct, PathBuf), Fault>, Response>;

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Fault> + Send + 'static,
) -> Result<T, Fault> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "upload worker failed");
            Err(Fault::internal(
                "the upload handler failed; see the hub log",
            ))
        }
    }
}

async fn raw_upload(
    hub: &Arc<Hub>,
    creds: Credentials,
    query: Option<&str>,
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    body: Body,
) -> UploadResult {
    let p = parse_query(query);
    macro_rules! tryf {
        ($e:expr) => {
            match $e {
                Ok(v) => v,
                Err(f) => return Ok(Err(f)),
            }
        };
    }
    // Session first, as Koji's check_session runs before the upload arguments are read.
    let callnum: Option<i64> = match &creds.callnum {
        None => None,
        Some(c) => Some(tryf!(
            c.trim()
                .parse()
                .map_err(|_| Fault::auth(format!("Invalid callnum: {c:?}")))
        )),
    };
    let Some(name) = p.filename.clone() else {
        return Ok(Err(Fault::generic("rawUpload needs a filename")));
    };
    let offset: i64 = tryf!(p.offset.trim().parse().map_err(|_| Fault::generic(format!(
        "invalid literal for int() with base 10: '{}'",
        p.offset
    ))));
    if offset < -1 {
        return Ok(Err(Fault::generic(format!(
            "Invalid upload offset: {offset}"
        ))));
    }
    let declared: Option<u64> = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let max = hub.config.max_upload_size;
    if let Some(len) = declared
        && (offset.max(0) as u64).saturating_add(len) > max
    {
        return Ok(Err(too_large(hub, &name)));
    }
    let verifier = tryf!(Verifier::new(&p.fileverify));

    // Validate the session and the destination (no transaction: nothing is written yet).
    let h = hub.clone();
    let (filepath, volume) = (p.filepath.clone(), p.volume.clone());
    let name2 = name.clone();
    let (path, session_id) = tryf!(
        blocking(move || {
            h.store.read(|conn| {
                let session_only = Credentials {
                    callnum: None,
                    ..creds
                };
                let auth = Auth::validate(conn, &h.config, &session_only, peer, "None")?;
                if auth.lock_error {
                    return Err(Fault::new(
                        FaultCode::AuthLock,
                        "User locked by another session",
                    ));
                }
                let Some(l) = &auth.logged_in else {
                    return Err(Fault::not_allowed("you must be logged-in to upload a file"));
                };
                // Callnum order applies; the same callnum again is a retried chunk, which is
                // harmless at an explicit offset (Koji never records upload callnums at all).
                if let (Some(n), Some(last)) = (callnum, l.session.callnum)
                    && last > n
                {
                    return Err(Fault::new(
                        FaultCode::Sequence,
                        format!("{last} > {n} (session {})", l.session.id),
                    ));
                }
                let path =
                    upload_path(&h, conn, &auth, &filepath, &name2, true, volume.as_deref())?;
                Ok((path, l.session.id))
            })
        })
        .await
    );

    // Lock, open and position the destination.
    let _lock = tryf!(hub.uploads.try_lock(&path));
    let path2 = path.clone();
    let overwrite = p.overwrite;
    let (file, start, created) = tryf!(
        blocking(move || {
            let existing = existing_file(&path2)?;
            if existing.is_some() && offset == 0 && !overwrite {
                return Err(Fault::generic(format!(
                    "upload path exists: {}",
                    path2.display()
                )));
            }
            let mut f = nofollow(
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false),
            )
            .open(&path2)
            .map_err(|e| io_fault("open", &path2, e))?;
            let start = if offset == -1 {
                f.seek(SeekFrom::End(0))
                    .map_err(|e| io_fault("seek", &path2, e))?
            } else {
                if overwrite {
                    f.set_len(offset as u64)
                        .map_err(|e| io_fault("truncate", &path2, e))?;
                }
                f.seek(SeekFrom::Start(offset as u64))
                    .map_err(|e| io_fault("seek", &path2, e))?
            };
            Ok((f, start, existing.is_none()))
        })
        .await
    );
    // After a failed write the file is cut back to where this request started; one this request
    // created goes entirely, so the same upload can simply be sent again (a first chunk without
    // `overwrite` is refused when the file exists).
    let undo = |file: tokio::fs::File| {
        let path = path.clone();
        async move {
            if created && start == 0 {
                drop(file);
                let _ = tokio::fs::remove_file(&path).await;
            } else {
                let _ = file.set_len(start).await;
            }
        }
    };

    // Stream the body to disk, chunk by chunk.
    let mut file = tokio::fs::File::from_std(file);
    let mut verifier = verifier;
    let mut size: u64 = 0;
    let mut body = body;
    use tokio::io::AsyncWriteExt as _;
    while let Some(frame) = body.frame().await {
        let data = match frame {
            Ok(f) => match f.into_data() {
                Ok(d) => d,
                Err(_) => continue,
            },
            Err(e) => {
                tracing::warn!(path = %path.display(), offset, size, error = %e, "upload body read failed");
                return Err((
                    StatusCode::BAD_REQUEST,
                    [(header::CONTENT_TYPE, "text/plain")],
                    format!("Error reading upload: {e}\n"),
                )
                    .into_response());
            }
        };
        if start.saturating_add(size).saturating_add(data.len() as u64) > max {
            let _ = file.set_len(start).await;
            return Ok(Err(too_large(hub, &name)));
        }
        size += data.len() as u64;
        if let Some(v) = verifier.as_mut() {
            v.update(&data);
        }
        if let Err(e) = file.write_all(&data).await {
            // Cut off the part of this request that did land, so the file ends where this
            // request started: a retry at the same offset, or `checkUpload`, sees no torn tail.
            undo(file).await;
            return Ok(Err(io_fault("write", &path, e)));
        }
    }
    if let Err(e) = file.flush().await {
        undo(file).await;
        return Ok(Err(io_fault("write", &path, e)));
    }
    if !overwrite {
        let flen = tryf!(
            file.metadata()
                .await
                .map_err(|e| io_fault("stat", &path, e))
        )
        .len();
        let expected = start + size;
        if flen != expected {
            return Ok(Err(Fault::generic(format!(
                "Incorrect upload length for {} - Expected {expected}, actual {flen}",
                path.display()
            ))));
        }
    }
    drop(file);

    // Record the callnum (only moving forward), like a committed call.
    if let Some(n) = callnum {
        let h = hub.clone();
        tryf!(
            blocking(move || {
                h.store.write(|tx| {
                    let last = sessions::get(tx, session_id)?.and_then(|s| s.callnum);
                    if last.is_none_or(|l| l < n) {
                        sessions::set_callnum(tx, session_id, n)?;
                    }
                    Ok::<_, Fault>(())
                })
            })
            .await
        );
    }

    let mut s = Struct::new()
        .with("size", size as i64)
        .with("fileverify", p.fileverify.clone())
        .with("offset", start as i64);
    if let Some(v) = verifier {
        s.insert("hexdigest", v.hexdigest());
    }
    Ok(Ok((s, path)))
}

// ---------------------------------------------------------------------------------------------
// uploadFile and checkUpload

pub fn methods() -> Vec<Method> {
    vec![
        Method::read(
            "uploadFile",
            params![
                req("path"),
                req("name"),
                req("size"),
                req("md5sum"),
                req("offset"),
                req("data"),
                opt("volume", "None"),
                opt("checksum", "None")
            ],
            "Legacy upload of one base64 chunk; offset=-1 with the whole file's size and checksum (md5 hex, or [type, hex] with md5/sha256/adler32) finalises. Returns False on a size or checksum mismatch.",
            upload_file,
        ),
        Method::read(
            "checkUpload",
            params![
                req("path"),
                req("name"),
                opt("verify", "None"),
                opt("tail", "None"),
                opt("volume", "None")
            ],
            "Return {size, mtime[, sumlength, hexdigest]} of an uploaded file, or None.",
            check_upload,
        ),
    ]
}

/// `koji.decode_int`: an int, or a string holding one.
fn decode_int(a: &Args, name: &str) -> Result<Option<i64>, Fault> {
    a.opt_int(name)
}

fn upload_file(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    use base64::Engine as _;
    ctx.user_id()?;
    let contents = match a.get("data") {
        Some(Value::String(s)) => {
            let clean: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
            base64::engine::general_purpose::STANDARD
                .decode(clean)
                .map_err(|e| Fault::generic(format!("Invalid base64 data: {e}")))?
        }
        Some(Value::Base64(b)) => b.clone(),
        None => Vec::new(),
        Some(v) => {
            return Err(Fault::parameter(format!(
                "data must be base64 text, got {}",
                v.type_name()
            )));
        }
    };
    let offset = decode_int(a, "offset")?.unwrap_or(0);
    let size = decode_int(a, "size")?;
    let checksum = a.get("checksum").or_else(|| a.get("md5sum"));
    let (verify, digest) = match checksum {
        None => (String::new(), String::new()),
        Some(Value::String(s)) => ("md5".to_string(), s.clone()),
        Some(Value::Array(pair)) if pair.len() == 2 => (
            pair[0].as_str().unwrap_or("").to_string(),
            pair[1].as_str().unwrap_or("").to_string(),
        ),
        Some(v) => {
            return Err(Fault::parameter(format!(
                "Invalid checksum of type {}",
                v.type_name()
            )));
        }
    };
    if verify.is_empty() && checksum.is_some() {
        return Err(Fault::generic("Unsupported verify type: "));
    }
    let digest_of = |data: &[u8]| -> Result<Option<String>, Fault> {
        Ok(Verifier::new(&verify)?.map(|mut v| {
            v.update(data);
            v.hexdigest()
        }))
    };
    if offset != -1 {
        if size.is_some_and(|s| s != contents.len() as i64) {
            return Ok(Value::Bool(false));
        }
        if let Some(d) = digest_of(&contents)?
            && d != digest
        {
            return Ok(Value::Bool(false));
        }
    }
    if offset < -1 {
        return Err(Fault::generic(format!("Invalid upload offset: {offset}")));
    }
    let end = offset.max(0) as u64 + contents.len() as u64;
    if end > ctx.hub.config.max_upload_size
        || size.is_some_and(|s| s as u64 > ctx.hub.config.max_upload_size)
    {
        return Err(too_large(ctx.hub, a.str("name").unwrap_or("")));
    }
    let path_arg = a.str("path")?;
    let name = a.str("name")?;
    let fname = upload_path(
        ctx.hub,
        ctx.db,
        ctx.auth,
        path_arg,
        name,
        true,
        a.opt_str("volume")?,
    )?;
    if existing_file(&fname)?.is_some() && offset == 0 && !name.ends_with(".log") {
        return Err(Fault::generic(format!(
            "file already exists: {}",
            fname.display()
        )));
    }
    let _lock = ctx.hub.uploads.try_lock(&fname)?;
    let mut f = nofollow(
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false),
    )
    .open(&fname)
    .map_err(|e| io_fault("open", &fname, e))?;
    let io = |what: &str, e: std::io::Error| io_fault(what, &fname, e);
    if offset == 0 || (offset == -1 && size == Some(contents.len() as i64)) {
        f.set_len(0).map_err(|e| io("truncate", e))?;
    }
    if offset == -1 {
        f.seek(SeekFrom::End(0)).map_err(|e| io("seek", e))?;
    } else {
        f.seek(SeekFrom::Start(offset as u64))
            .map_err(|e| io("seek", e))?;
    }
    f.write_all(&contents).map_err(|e| io("write", e))?;
    if offset == -1 {
        if let Some(s) = size {
            f.set_len(s.max(0) as u64).map_err(|e| io("truncate", e))?;
        }
        if let Some(mut v) = Verifier::new(&verify)? {
            f.seek(SeekFrom::Start(0)).map_err(|e| io("seek", e))?;
            hash_from(&mut f, &mut v).map_err(|e| io("read", e))?;
            if v.hexdigest() != digest {
                return Ok(Value::Bool(false));
            }
        }
    }
    Ok(Value::Bool(true))
}

/// Feeds the rest of `f` to `v`; returns the bytes read.
fn hash_from(f: &mut File, v: &mut Verifier) -> std::io::Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            return Ok(n);
        }
        n += k as u64;
        v.update(&buf[..k]);
    }
}

fn check_upload(ctx: &mut Ctx<'_>, a: &Args) -> Result<Value, Fault> {
    let fname = upload_path(
        ctx.hub,
        ctx.db,
        ctx.auth,
        a.str("path")?,
        a.str("name")?,
        false,
        a.opt_str("volume")?,
    )?;
    let mut f = match nofollow(OpenOptions::new().read(true)).open(&fname) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Value::Nil),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(Fault::generic(format!(
                "Not a regular file: {}",
                fname.display()
            )));
        }
        Err(e) => return Err(io_fault("open", &fname, e)),
    };
    if ctx.hub.uploads.is_locked(&fname) {
        return Err(Fault::new(
            FaultCode::Lock,
            "[Errno 11] Resource temporarily unavailable",
        ));
    }
    let m = f.metadata().map_err(|e| io_fault("stat", &fname, e))?;
    if !m.is_file() {
        return Err(Fault::generic(format!(
            "Not a regular file: {}",
            fname.display()
        )));
    }
    let mtime = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let mut s = Struct::new()
        .with("size", m.len() as i64)
        .with("mtime", mtime);
    if let Some(verify) = a.opt_str("verify")?
        && let Some(mut v) = Verifier::new(verify)?
    {
        if let Some(tail) = a.opt_int("tail")? {
            if tail < 0 {
                return Err(Fault::generic(format!("Invalid tail value: {tail}")));
            }
            let from = m.len().saturating_sub(tail as u64);
            f.seek(SeekFrom::Start(from))
                .map_err(|e| io_fault("seek", &fname, e))?;
        }
        let n = hash_from(&mut f, &mut v).map_err(|e| io_fault("read", &fname, e))?;
        s.insert("sumlength", n as i64);
        s.insert("hexdigest", v.hexdigest());
    }
    Ok(Value::Struct(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adler32_matches_zlib() {
        let mut a = Adler32::default();
        assert_eq!(a.hexdigest(), "00000001");
        a.update(b"Wikipedia");
        assert_eq!(a.value(), 0x11E6_0398);
        // Long input crosses the NMAX blocking.
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 + 3) as u8).collect();
        let mut whole = Adler32::default();
        whole.update(&data);
        let mut parts = Adler32::default();
        for c in data.chunks(777) {
            parts.update(c);
        }
        assert_eq!(whole.value(), parts.value());
        let mut ff = Adler32::default();
        ff.update(&[0xff; 10_000]);
        // zlib.adler32(b'\xff' * 10000) == 0x5f6ad4b7 ... checked against a naive modular sum.
        let (mut x, mut y) = (1u64, 0u64);
        for _ in 0..10_000 {
            x = (x + 0xff) % 65_521;
            y = (y + x) % 65_521;
        }
        assert_eq!(u64::from(ff.value()), (y << 16) | x);
    }

    #[test]
    fn digests() {
        let mut m = Verifier::new("md5").unwrap().unwrap();
        m.update(b"abc");
        assert_eq!(m.hexdigest(), "900150983cd24fb0d6963f7d28e17f72");
        let mut s = Verifier::new("sha256").unwrap().unwrap();
        s.update(b"abc");
        assert_eq!(
            s.hexdigest(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(Verifier::new("crc").is_err());
        assert!(Verifier::new("").unwrap().is_none());
    }

    #[test]
    fn query_parsing() {
        let p = parse_query(Some(
            "filename=a+b.log&filepath=tasks%2F1%2F1&fileverify=adler32&offset=-1&overwrite=1",
        ));
        assert_eq!(p.filename.as_deref(), Some("a b.log"));
        assert_eq!(p.filepath, "tasks/1/1");
        assert_eq!(p.offset, "-1");
        assert!(p.overwrite);
        assert!(p.volume.is_none());
    }
}
