//! The image build engine: buildah, run as a child process.
//!
//! Every buildah command is an argument vector (never a shell string) started in a process group
//! of its own (`process_group(0)`), so a cancel or a time limit reaches the whole tree (buildah,
//! `buildah-chroot-runtime`, the RUN command and its children): SIGTERM to the group, SIGKILL
//! after [`BuildahConfig::kill_grace`], then the caller gets [`EngineError::Canceled`] or
//! [`EngineError::TimedOut`]. If the future is dropped instead, the group is SIGKILLed.
//!
//! stdout and stderr are read concurrently and handed to the caller line by line as they arrive
//! (the build's `<arch>.log`). A failing build is summed up in one line from buildah's final
//! `Error: building at STEP "RUN …": exit status N` line, e.g. `RUN exit status 1: make install`.
//!
//! Each builder has its own storage (`--root`, `--runroot`, with `--storage-driver`, vfs by
//! default) and temp dir (`TMPDIR`, where chroot builds mount their rootfs), so builds are
//! isolated from the machine's default buildah storage and layers stay cached across builds
//! (`bud --layers`). Credentials reach buildah only as `--authfile <path>`; buildah's own
//! environment overrides (`BUILDAH_ISOLATION`, `BUILDAH_FORMAT`, `BUILDAH_LAYERS`,
//! `REGISTRY_AUTH_FILE`) are removed so the configuration here is what runs.
//!
//! A `bud` with chroot isolation runs inside a PID namespace of its own (`unshare`, see
//! [`BuildahConfig::private_pid`]): chroot isolation gives RUN a mount namespace but shares the
//! machine's PID namespace, so RUN would otherwise see the builder's processes in `/proc`.

use std::collections::{BTreeMap, VecDeque};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::registry::{DOCKER_MANIFEST_V2, Digest, OCI_MANIFEST};
use crate::xmlrpc::Fault;

/// koji-containerbuild's `ContainerError`.
pub const FAULT_CONTAINER_ERROR: i32 = 2001;
/// koji-containerbuild's `ContainerCancelled`.
pub const FAULT_CONTAINER_CANCELLED: i32 = 2002;

/// util-linux `unshare`, which gives `bud` its PID namespace ([`BuildahConfig::private_pid`]).
const UNSHARE: &str = "unshare";

/// Time between SIGTERM and SIGKILL on cancel or timeout.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(2);

/// Longest line handed to `on_line`; longer output without a newline is split.
const MAX_LINE: usize = 64 * 1024;
/// Lines of output kept for error summaries.
const TAIL_LINES: usize = 100;
/// Longest one-line failure reason.
const MAX_REASON: usize = 500;
/// Largest captured stdout (`inspect` JSON).
const MAX_CAPTURE: usize = 64 << 20;
/// How long the pipes may stay open after buildah exited (a stray child holding them).
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(1);

/// How buildah isolates RUN instructions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    /// `--isolation chroot`: works as root without a container runtime (the default).
    #[default]
    Chroot,
    /// `--isolation oci`: an OCI runtime (runc/crun, see [`BuildahConfig::runtime`]).
    Oci,
    /// `--isolation rootless`.
    Rootless,
}

impl Isolation {
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::Chroot => "chroot",
            Isolation::Oci => "oci",
            Isolation::Rootless => "rootless",
        }
    }

    /// Parses `chroot`, `oci` (or `runc`/`crun`, which imply oci) or `rootless`.
    pub fn parse(s: &str) -> Option<Isolation> {
        match s {
            "chroot" => Some(Isolation::Chroot),
            "oci" | "runc" | "crun" => Some(Isolation::Oci),
            "rootless" => Some(Isolation::Rootless),
            _ => None,
        }
    }
}

/// Image and manifest format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImageFormat {
    /// Docker v2 schema 2 (`bud --format docker`, `push --format v2s2`), what OSBS pushes; its
    /// manifest lists are Docker manifest lists.
    #[default]
    Docker,
    /// OCI image manifest and index.
    Oci,
}

impl ImageFormat {
    fn bud_arg(self) -> &'static str {
        match self {
            ImageFormat::Docker => "docker",
            ImageFormat::Oci => "oci",
        }
    }

    fn push_arg(self) -> &'static str {
        match self {
            ImageFormat::Docker => "v2s2",
            ImageFormat::Oci => "oci",
        }
    }

    /// Media type of the manifests pushed in this format.
    pub fn manifest_media_type(self) -> &'static str {
        match self {
            ImageFormat::Docker => DOCKER_MANIFEST_V2,
            ImageFormat::Oci => OCI_MANIFEST,
        }
    }
}

/// When `bud` pulls base images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PullPolicy {
    /// Pull only when not in storage.
    #[default]
    Missing,
    /// Always pull (newer base images win).
    Always,
    /// Never pull; only images in storage.
    Never,
}

impl PullPolicy {
    fn arg(self) -> &'static str {
        match self {
            PullPolicy::Missing => "--pull=missing",
            PullPolicy::Always => "--pull=always",
            PullPolicy::Never => "--pull=never",
        }
    }
}

/// How a builder runs buildah.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildahConfig {
    /// The buildah executable (looked up in `PATH` when relative).
    pub binary: PathBuf,
    /// `--storage-driver` (vfs works everywhere; overlay is faster where the kernel allows it).
    pub storage_driver: String,
    /// `--root`: image and layer storage (the layer cache). `None`: buildah's default.
    pub root: Option<PathBuf>,
    /// `--runroot`: runtime state. `None`: buildah's default.
    pub runroot: Option<PathBuf>,
    /// `TMPDIR` for buildah (chroot mounts, blobs in transit). `None`: inherited.
    pub tmpdir: Option<PathBuf>,
    /// `--registries-conf` (e.g. to mark registries insecure for `FROM`).
    pub registries_conf: Option<PathBuf>,
    pub isolation: Isolation,
    /// `--runtime` for [`Isolation::Oci`] (`runc`, `crun`, or a path).
    pub runtime: Option<String>,
    pub format: ImageFormat,
    pub pull: PullPolicy,
    /// SIGTERM -> SIGKILL delay.
    pub kill_grace: Duration,
    /// How a push to a registry is retried.
    pub push_retry: PushRetry,
    /// Run `bud` inside a PID namespace of its own (`unshare --pid --fork --kill-child
    /// --mount-proc`). buildah's chroot isolation gives a RUN instruction its own mount
    /// namespace but not a PID namespace, and `--pid private` has no effect there: without this,
    /// a Dockerfile's RUN sees every process of the machine in `/proc` (the builder's and the
    /// hub's command lines included). With it, RUN sees only buildah and its own children.
    /// Ignored for [`Isolation::Oci`], whose runtime makes the namespace itself.
    pub private_pid: bool,
}

/// Retries of a push to a registry: a registry that restarts or blips should cost a build a
/// few seconds, not the build. Attempts are spaced `first_backoff`, then twice as long each
/// time up to `max_backoff`, within the push's time limit; each failed attempt is a line in the
/// build log. Pushes to local transports (`docker-archive:`) are not retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushRetry {
    /// Attempts in all (1 = no retry).
    pub attempts: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for PushRetry {
    /// 4 attempts, waits of 2, 4 and 8 s: a registry back within ~15 s loses no build.
    fn default() -> Self {
        PushRetry {
            attempts: 4,
            first_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(8),
        }
    }
}

impl PushRetry {
    /// The wait after failed attempt `n` (1-based).
    pub fn backoff(&self, n: u32) -> Duration {
        let factor = 1u32 << n.saturating_sub(1).min(16);
        self.first_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

impl Default for BuildahConfig {
    fn default() -> Self {
        BuildahConfig {
            binary: PathBuf::from("buildah"),
            storage_driver: "vfs".to_owned(),
            root: None,
            runroot: None,
            tmpdir: None,
            registries_conf: None,
            isolation: Isolation::Chroot,
            runtime: None,
            format: ImageFormat::Docker,
            pull: PullPolicy::Missing,
            kill_grace: DEFAULT_KILL_GRACE,
            push_retry: PushRetry::default(),
            private_pid: true,
        }
    }
}

impl BuildahConfig {
    /// A builder's private storage under `dir`: `dir/storage` (root), `dir/run` (runroot),
    /// `dir/tmp` (TMPDIR).
    pub fn with_state_dir(dir: &Path) -> BuildahConfig {
        BuildahConfig {
            root: Some(dir.join("storage")),
            runroot: Some(dir.join("run")),
            tmpdir: Some(dir.join("tmp")),
            ..BuildahConfig::default()
        }
    }
}

/// What went wrong running buildah.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// buildah could not be started.
    #[error("cannot run {program}: {message}")]
    Spawn { program: String, message: String },
    /// Bad input (a label or build arg that cannot be passed safely).
    #[error("{0}")]
    Invalid(String),
    /// The command failed; `reason` is one line (e.g. `RUN exit status 1: make`), `tail` the
    /// last lines of its output.
    #[error("{reason}")]
    Failed {
        reason: String,
        status: Option<i32>,
        tail: Vec<String>,
    },
    /// Canceled by the caller; the process group was killed.
    #[error("build canceled")]
    Canceled,
    /// The time limit passed; the process group was killed.
    #[error("{what} exceeded its time limit of {} s", .limit.as_secs())]
    TimedOut { what: String, limit: Duration },
    /// buildah succeeded but its output (image id, digest file, inspect JSON) was unusable.
    #[error("{0}")]
    Output(String),
}

impl EngineError {
    /// The one-line reason (no newlines, at most a few hundred characters).
    pub fn reason(&self) -> String {
        one_line(&self.to_string())
    }

    /// The Koji fault a container task fails with: 2002 `ContainerCancelled` for a cancel,
    /// otherwise 2001 `ContainerError` "Image build failed. <reason>".
    pub fn to_fault(&self) -> Fault {
        match self {
            EngineError::Canceled => {
                Fault::raw(FAULT_CONTAINER_CANCELLED, "Image build was cancelled.")
            }
            e => Fault::raw(
                FAULT_CONTAINER_ERROR,
                format!("Image build failed. {}", e.reason()),
            ),
        }
    }
}

/// An image id: the digest of the image's config (`sha256:<hex>`).
pub type ImageId = Digest;

/// One `buildah bud`.
#[derive(Debug, Clone)]
pub struct BudRequest<'a> {
    /// Build context directory.
    pub context_dir: &'a Path,
    /// The Dockerfile (`-f`).
    pub dockerfile: &'a Path,
    /// Local name of the result (`-t`), e.g. `localhost/containerbuild/<nvr>-x86_64`.
    pub tag: &'a str,
    /// `--build-arg k=v`.
    pub build_args: &'a [(String, String)],
    /// `--label k=v`. buildah 1.28 turns each into a LABEL step of its own (~0.2 s each on vfs
    /// even for a tiny image, committed as a layer-cache entry); for OSBS's many labels,
    /// `dockerfile::add_labels` (one LABEL line, atomic-reactor's way) is cheaper.
    pub labels: &'a [(String, String)],
    /// `--tls-verify` for pulling base images.
    pub tls_verify: bool,
    /// `--authfile` for pulling base images.
    pub authfile: Option<&'a Path>,
    /// `buildtime_limit`.
    pub timeout: Option<Duration>,
    /// `--platform os/arch[/variant]` (OCI names) for the image built and the base image chosen
    /// from a manifest list. `None`: the machine's own.
    pub platform: Option<String>,
    /// `--volume host:container:ro` bind mounts for RUN steps only; nothing of them ends up in
    /// a layer (how injected yum repo files reach `dnf` without being committed).
    pub volumes: Vec<(PathBuf, String)>,
}

impl<'a> BudRequest<'a> {
    pub fn new(context_dir: &'a Path, dockerfile: &'a Path, tag: &'a str) -> Self {
        BudRequest {
            context_dir,
            dockerfile,
            tag,
            build_args: &[],
            labels: &[],
            tls_verify: true,
            authfile: None,
            timeout: None,
            platform: None,
            volumes: Vec::new(),
        }
    }
}

/// One `buildah push`.
#[derive(Debug, Clone)]
pub struct PushOptions<'a> {
    /// `--tls-verify` (default true; false for `--registry-insecure`).
    pub tls_verify: bool,
    /// Credentials (never passed any other way).
    pub authfile: Option<&'a Path>,
    pub timeout: Option<Duration>,
}

impl Default for PushOptions<'_> {
    fn default() -> Self {
        PushOptions {
            tls_verify: true,
            authfile: None,
            timeout: None,
        }
    }
}

/// What `inspect` reports about a local image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    pub id: ImageId,
    /// Digest of the config blob (equal to the id for images buildah wrote).
    pub config_digest: Digest,
    /// Media type of the stored manifest.
    pub manifest_media_type: String,
    pub labels: BTreeMap<String, String>,
    /// OCI architecture (`amd64`, ...).
    pub architecture: String,
    pub os: String,
    /// Uncompressed layer digests, oldest first.
    pub diff_ids: Vec<Digest>,
    /// `org.opencontainers.image.base.name` / `.digest` when buildah recorded the base image.
    pub base_name: Option<String>,
    pub base_digest: Option<Digest>,
}

/// The buildah engine of one builder.
#[derive(Debug, Clone, Default)]
pub struct Buildah {
    pub config: BuildahConfig,
}

struct Finished {
    status: ExitStatus,
    stdout: Vec<u8>,
    error_line: Option<String>,
    /// Last non-empty stderr line.
    last_stderr: Option<String>,
    tail: VecDeque<String>,
}

impl Buildah {
    pub fn new(config: BuildahConfig) -> Buildah {
        Buildah { config }
    }

    /// `buildah --version`, e.g. `buildah version 1.28.2 (image-spec 1.1.0-rc2, ...)`.
    pub async fn version(&self) -> Result<String, EngineError> {
        let f = self
            .run(
                "buildah --version",
                vec!["--version".into()],
                None,
                None,
                true,
                &mut |_| {},
            )
            .await?;
        check(&f, "buildah --version")?;
        Ok(String::from_utf8_lossy(&f.stdout).trim().to_owned())
    }

    /// Builds `req.dockerfile` in `req.context_dir` with cached layers, streaming every output
    /// line to `on_line` as it comes, and returns the image id.
    pub async fn bud(
        &self,
        req: &BudRequest<'_>,
        cancel: &CancellationToken,
        mut on_line: impl FnMut(&str) + Send,
    ) -> Result<ImageId, EngineError> {
        let iid = ScratchFile::new(self.scratch_dir(), "iid");
        let mut args: Vec<OsString> = vec![
            "bud".into(),
            "--layers".into(),
            "--force-rm".into(),
            format!("--isolation={}", self.config.isolation.as_str()).into(),
            format!("--format={}", self.config.format.bud_arg()).into(),
            self.config.pull.arg().into(),
            format!("--tls-verify={}", req.tls_verify).into(),
        ];
        if let (Isolation::Oci, Some(rt)) = (self.config.isolation, &self.config.runtime) {
            args.push("--runtime".into());
            args.push(rt.into());
        }
        if let Some(a) = req.authfile {
            args.push("--authfile".into());
            args.push(a.into());
        }
        args.push("--iidfile".into());
        args.push(iid.path.clone().into());
        if let Some(p) = &req.platform {
            check_name("platform", p)?;
            args.push(format!("--platform={p}").into());
        }
        for (host, inside) in &req.volumes {
            let host = host.to_str().ok_or_else(|| {
                EngineError::Invalid(format!("volume path {} is not UTF-8", host.display()))
            })?;
            for part in [host, inside.as_str()] {
                if part.contains(':') || part.contains(',') || !part.starts_with('/') {
                    return Err(EngineError::Invalid(format!(
                        "invalid volume path {part:?}"
                    )));
                }
            }
            args.push("--volume".into());
            args.push(format!("{host}:{inside}:ro").into());
        }
        for (k, v) in req.build_args {
            check_kv("build arg", k, v)?;
            args.push("--build-arg".into());
            args.push(format!("{k}={v}").into());
        }
        for (k, v) in req.labels {
            check_kv("label", k, v)?;
            args.push("--label".into());
            args.push(format!("{k}={v}").into());
        }
        check_name("tag", req.tag)?;
        args.push("-t".into());
        args.push(req.tag.into());
        args.push("-f".into());
        args.push(req.dockerfile.into());
        args.push(req.context_dir.into());

        let f = self
            .run(
                "buildah bud",
                args,
                Some(cancel),
                req.timeout,
                false,
                &mut on_line,
            )
            .await?;
        check(&f, "buildah bud")?;
        let text = std::fs::read_to_string(&iid.path)
            .map_err(|e| EngineError::Output(format!("buildah bud wrote no image id file: {e}")))?;
        let text = text.trim();
        let id = if text.contains(':') {
            text.to_owned()
        } else {
            format!("sha256:{text}")
        };
        Digest::parse(&id).map_err(|_| {
            EngineError::Output(format!("buildah bud wrote an invalid image id {text:?}"))
        })
    }

    /// Pushes a local image to `dest` (`host:port/repo:tag`, or any buildah transport such as
    /// `docker-archive:/path`) and returns the manifest digest buildah wrote to its digest file.
    /// A push to a registry that fails is retried as [`BuildahConfig::push_retry`] says, each
    /// failed attempt logged to `on_line`; when all fail, the error names the registry and the
    /// last attempt's reason.
    pub async fn push(
        &self,
        image: &str,
        dest: &str,
        opts: &PushOptions<'_>,
        cancel: &CancellationToken,
        mut on_line: impl FnMut(&str) + Send,
    ) -> Result<Digest, EngineError> {
        check_name("image", image)?;
        check_name("destination", dest)?;
        let Some(registry) = registry_of(dest) else {
            return self
                .push_once(image, dest, opts, cancel, &mut on_line)
                .await;
        };
        let retry = self.config.push_retry;
        let attempts = retry.attempts.max(1);
        let deadline = opts.timeout.map(|t| Instant::now() + t);
        let mut attempt = 1;
        loop {
            let this = PushOptions {
                timeout: deadline.map(|d| d.saturating_duration_since(Instant::now())),
                ..opts.clone()
            };
            let err = match self
                .push_once(image, dest, &this, cancel, &mut on_line)
                .await
            {
                Ok(d) => {
                    if attempt > 1 {
                        on_line(&format!(
                            "push to registry {registry} succeeded on attempt {attempt} of {attempts}"
                        ));
                    }
                    return Ok(d);
                }
                Err(e) if !push_retryable(&e) => return Err(e),
                Err(e) => e,
            };
            let EngineError::Failed {
                reason,
                status,
                tail,
            } = err
            else {
                return Err(err);
            };
            let wait = retry.backoff(attempt);
            let out_of_time = deadline.is_some_and(|d| Instant::now() + wait >= d);
            if attempt >= attempts || out_of_time {
                let why = if out_of_time && attempt < attempts {
                    " (no time left for another)"
                } else {
                    ""
                };
                return Err(EngineError::Failed {
                    reason: format!(
                        "push to registry {registry} failed after {attempt} attempt{}{why}: {reason}",
                        if attempt == 1 { "" } else { "s" }
                    ),
                    status,
                    tail,
                });
            }
            on_line(&format!(
                "push to registry {registry} failed (attempt {attempt} of {attempts}): {reason}; \
                 retrying in {} s",
                wait.as_secs_f64()
            ));
            tracing::warn!(%registry, attempt, attempts, %reason, "push failed; retrying");
            tokio::select! {
                _ = cancel.cancelled() => return Err(EngineError::Canceled),
                _ = tokio::time::sleep(wait) => {}
            }
            attempt += 1;
        }
    }

    /// One `buildah push`.
    async fn push_once(
        &self,
        image: &str,
        dest: &str,
        opts: &PushOptions<'_>,
        cancel: &CancellationToken,
        on_line: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Digest, EngineError> {
        let digestfile = ScratchFile::new(self.scratch_dir(), "digest");
        let mut args: Vec<OsString> = vec![
            "push".into(),
            format!("--format={}", self.config.format.push_arg()).into(),
            format!("--tls-verify={}", opts.tls_verify).into(),
            "--digestfile".into(),
            digestfile.path.clone().into(),
        ];
        if let Some(a) = opts.authfile {
            args.push("--authfile".into());
            args.push(a.into());
        }
        args.push(image.into());
        args.push(transport_ref(dest).into());
        let f = self
            .run(
                "buildah push",
                args,
                Some(cancel),
                opts.timeout,
                false,
                on_line,
            )
            .await?;
        check(&f, "buildah push")?;
        let text = std::fs::read_to_string(&digestfile.path)
            .map_err(|e| EngineError::Output(format!("buildah push wrote no digest file: {e}")))?;
        Digest::parse(&text).map_err(|_| {
            EngineError::Output(format!(
                "buildah push wrote an invalid digest {:?}",
                text.trim()
            ))
        })
    }

    /// Labels, config digest, architecture and layers of a local image.
    pub async fn inspect(&self, image: &str) -> Result<ImageInfo, EngineError> {
        check_name("image", image)?;
        let args = vec![
            "inspect".into(),
            "--type".into(),
            "image".into(),
            image.into(),
        ];
        let f = self
            .run(
                "buildah inspect",
                args,
                None,
                Some(Duration::from_secs(120)),
                true,
                &mut |_| {},
            )
            .await?;
        check(&f, "buildah inspect")?;
        parse_inspect(&f.stdout)
    }

    /// Removes every working container in this storage (`buildah rm --all`): what a killed build
    /// may leave behind. Only call it when no build runs on the same storage.
    pub async fn rm_containers(&self) -> Result<(), EngineError> {
        let f = self
            .run(
                "buildah rm",
                vec!["rm".into(), "--all".into()],
                None,
                Some(Duration::from_secs(300)),
                false,
                &mut |_| {},
            )
            .await?;
        check(&f, "buildah rm --all")
    }

    /// The working containers in this storage (`buildah containers --all --json`).
    pub async fn containers(&self) -> Result<Vec<WorkingContainer>, EngineError> {
        let f = self
            .run(
                "buildah containers",
                vec!["containers".into(), "--all".into(), "--json".into()],
                None,
                Some(Duration::from_secs(120)),
                true,
                &mut |_| {},
            )
            .await?;
        check(&f, "buildah containers")?;
        if f.stdout.iter().all(u8::is_ascii_whitespace) {
            return Ok(Vec::new());
        }
        serde_json::from_slice::<Option<Vec<WorkingContainer>>>(&f.stdout)
            .map(Option::unwrap_or_default)
            .map_err(|e| EngineError::Output(format!("buildah containers printed bad JSON: {e}")))
    }

    /// Removes one working container by id (`buildah rm`).
    pub async fn rm_container(&self, id: &str) -> Result<(), EngineError> {
        check_name("container", id)?;
        let f = self
            .run(
                "buildah rm",
                vec!["rm".into(), id.into()],
                None,
                Some(Duration::from_secs(300)),
                false,
                &mut |_| {},
            )
            .await?;
        check(&f, "buildah rm")
    }

    /// Processes still running buildah on this storage (`--root` is this config's root), with
    /// everything below them: what a builder killed with SIGKILL leaves running, since each
    /// buildah runs in a process group of its own. Empty without a private `--root`.
    pub fn leftover_processes(&self) -> Vec<i32> {
        let Some(root) = &self.config.root else {
            return Vec::new();
        };
        let root = root.as_os_str().as_encoded_bytes();
        let procs = list_processes();
        let mut pids: Vec<i32> = procs
            .iter()
            .filter(|p| {
                p.pid != std::process::id() as i32
                    && p.argv.windows(2).any(|w| w[0] == b"--root" && w[1] == root)
            })
            .map(|p| p.pid)
            .collect();
        let mut i = 0;
        while i < pids.len() {
            let parent = pids[i];
            for p in &procs {
                if p.ppid == parent && !pids.contains(&p.pid) {
                    pids.push(p.pid);
                }
            }
            i += 1;
        }
        pids
    }

    /// Removes a local image (`buildah rmi`); its cached layers stay while other images use them.
    pub async fn rmi(&self, image: &str) -> Result<(), EngineError> {
        check_name("image", image)?;
        let f = self
            .run(
                "buildah rmi",
                vec!["rmi".into(), image.into()],
                None,
                Some(Duration::from_secs(300)),
                false,
                &mut |_| {},
            )
            .await?;
        check(&f, "buildah rmi")
    }

    fn scratch_dir(&self) -> PathBuf {
        self.config
            .tmpdir
            .clone()
            .unwrap_or_else(std::env::temp_dir)
    }

    /// The command with the global options (storage, registries.conf) and environment.
    fn command(&self, args: Vec<OsString>) -> Result<tokio::process::Command, EngineError> {
        let c = &self.config;
        let wrap = c.private_pid
            && c.isolation != Isolation::Oci
            && args.first().is_some_and(|a| a == "bud");
        let mut cmd = if wrap {
            // unshare forks buildah as PID 1 of a new PID namespace and mounts a /proc of that
            // namespace in a private mount namespace; buildah's chroot hands that /proc to RUN.
            // --kill-child: if unshare dies (SIGKILL on cancel), the namespace dies with it.
            let mut cmd = tokio::process::Command::new(UNSHARE);
            cmd.args(["--pid", "--fork", "--kill-child", "--mount-proc", "--"])
                .arg(&c.binary);
            cmd
        } else {
            tokio::process::Command::new(&c.binary)
        };
        if let Some(r) = &c.root {
            cmd.arg("--root").arg(r);
        }
        if let Some(r) = &c.runroot {
            cmd.arg("--runroot").arg(r);
        }
        cmd.arg("--storage-driver").arg(&c.storage_driver);
        if let Some(r) = &c.registries_conf {
            cmd.arg("--registries-conf").arg(r);
        }
        cmd.args(args);
        for v in [
            "BUILDAH_ISOLATION",
            "BUILDAH_FORMAT",
            "BUILDAH_LAYERS",
            "BUILDAH_RUNTIME",
            "REGISTRY_AUTH_FILE",
        ] {
            cmd.env_remove(v);
        }
        if let Some(t) = &c.tmpdir {
            std::fs::create_dir_all(t).map_err(|e| EngineError::Spawn {
                program: c.binary.display().to_string(),
                message: format!("cannot create TMPDIR {}: {e}", t.display()),
            })?;
            cmd.env("TMPDIR", t);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        Ok(cmd)
    }

    /// Runs one buildah command to the end, or until `cancel`/`timeout` (then SIGTERM, SIGKILL
    /// after the grace, and Canceled/TimedOut). Output lines go to `on_line` (stdout is collected
    /// instead when `capture_stdout`).
    async fn run(
        &self,
        what: &str,
        args: Vec<OsString>,
        cancel: Option<&CancellationToken>,
        timeout: Option<Duration>,
        capture_stdout: bool,
        on_line: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Finished, EngineError> {
        if cancel.is_some_and(CancellationToken::is_cancelled) {
            return Err(EngineError::Canceled);
        }
        let mut cmd = self.command(args)?;
        tracing::debug!(command = ?cmd.as_std(), "running buildah");
        let mut child = cmd.spawn().map_err(|e| EngineError::Spawn {
            program: self.config.binary.display().to_string(),
            message: e.to_string(),
        })?;
        let pgid = child.id().and_then(|p| i32::try_from(p).ok()).unwrap_or(0);
        let mut guard = GroupGuard { pgid, armed: true };
        let mut out = child.stdout.take().expect("stdout piped");
        let mut err = child.stderr.take().expect("stderr piped");

        let mut sink = Sink {
            on_line,
            capture_stdout,
            stdout: Vec::new(),
            tail: VecDeque::new(),
            error_line: None,
            last_stderr: None,
        };
        let (mut out_split, mut err_split) = (Splitter::default(), Splitter::default());
        let (mut out_buf, mut err_buf) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
        let (mut out_done, mut err_done) = (false, false);
        let mut status: Option<ExitStatus> = None;
        #[derive(Clone, Copy, PartialEq)]
        enum Stop {
            Canceled,
            TimedOut,
        }
        let mut stop: Option<Stop> = None;
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut kill_at: Option<Instant> = None;
        let mut give_up_at: Option<Instant> = None;
        let never = CancellationToken::new();
        let cancel = cancel.unwrap_or(&never);

        loop {
            if out_done && err_done && status.is_some() {
                break;
            }
            tokio::select! {
                _ = cancel.cancelled(), if stop.is_none() => {
                    stop = Some(Stop::Canceled);
                    signal_group(pgid, libc::SIGTERM);
                    kill_at = Some(Instant::now() + self.config.kill_grace);
                }
                _ = at(deadline), if stop.is_none() && deadline.is_some() => {
                    stop = Some(Stop::TimedOut);
                    signal_group(pgid, libc::SIGTERM);
                    kill_at = Some(Instant::now() + self.config.kill_grace);
                }
                _ = at(kill_at), if kill_at.is_some() => {
                    tracing::warn!(pgid, "buildah ignored SIGTERM; sending SIGKILL");
                    signal_group(pgid, libc::SIGKILL);
                    kill_at = None;
                    give_up_at.get_or_insert(Instant::now() + Duration::from_secs(2));
                }
                _ = at(give_up_at), if give_up_at.is_some() => {
                    signal_group(pgid, libc::SIGKILL);
                    break;
                }
                r = out.read(&mut out_buf), if !out_done => match r {
                    Ok(n) if n > 0 => out_split.feed(&out_buf[..n], &mut |l| sink.line(true, l)),
                    _ => {
                        out_done = true;
                        out_split.finish(&mut |l| sink.line(true, l));
                    }
                },
                r = err.read(&mut err_buf), if !err_done => match r {
                    Ok(n) if n > 0 => err_split.feed(&err_buf[..n], &mut |l| sink.line(false, l)),
                    _ => {
                        err_done = true;
                        err_split.finish(&mut |l| sink.line(false, l));
                    }
                },
                s = child.wait(), if status.is_none() => {
                    match s {
                        Ok(s) => status = Some(s),
                        Err(e) => {
                            signal_group(pgid, libc::SIGKILL);
                            return Err(EngineError::Spawn {
                                program: self.config.binary.display().to_string(),
                                message: format!("waiting for {what}: {e}"),
                            });
                        }
                    }
                    let drain = Instant::now() + DRAIN_AFTER_EXIT;
                    give_up_at = Some(give_up_at.map_or(drain, |g| g.min(drain)));
                }
            }
        }
        out_split.finish(&mut |l| sink.line(true, l));
        err_split.finish(&mut |l| sink.line(false, l));
        let status = match status {
            Some(s) => s,
            None => {
                // Gave up after SIGKILL; the leader is dead or dying.
                match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
                    Ok(Ok(s)) => s,
                    _ => {
                        return Err(EngineError::Spawn {
                            program: self.config.binary.display().to_string(),
                            message: format!("{what} did not exit after SIGKILL"),
                        });
                    }
                }
            }
        };
        // Strays that outlived buildah (the group id stays reserved while they exist): killed,
        // and waited for, so that a returned run leaves no process behind.
        if group_exists(pgid) {
            signal_group(pgid, libc::SIGKILL);
            let until = Instant::now() + Duration::from_secs(2);
            while group_has_live_member(pgid) && Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        guard.armed = false;
        match stop {
            Some(Stop::Canceled) => Err(EngineError::Canceled),
            Some(Stop::TimedOut) => Err(EngineError::TimedOut {
                what: what.to_owned(),
                limit: timeout.unwrap_or_default(),
            }),
            None => Ok(Finished {
                status,
                stdout: sink.stdout,
                error_line: sink.error_line,
                last_stderr: sink.last_stderr,
                tail: sink.tail,
            }),
        }
    }
}

/// Ok for exit status 0, otherwise `Failed` with the summarized reason.
fn check(f: &Finished, what: &str) -> Result<(), EngineError> {
    if f.status.success() {
        return Ok(());
    }
    let status = f.status.code();
    let reason = match &f.error_line {
        Some(line) => failure_reason(line),
        None => {
            let how = match status {
                Some(c) => format!("{what} exited with status {c}"),
                None => {
                    use std::os::unix::process::ExitStatusExt as _;
                    format!(
                        "{what} was killed by signal {}",
                        f.status.signal().unwrap_or(0)
                    )
                }
            };
            let last = f
                .last_stderr
                .as_ref()
                .or_else(|| f.tail.iter().rev().find(|l| !l.trim().is_empty()));
            match last {
                Some(last) => format!("{how}: {}", last.trim()),
                None => how,
            }
        }
    };
    Err(EngineError::Failed {
        reason: one_line(&reason),
        status,
        tail: f.tail.iter().cloned().collect(),
    })
}

/// One line from buildah's final error line:
/// `Error: building at STEP "RUN make": exit status 2` -> `RUN exit status 2: make`;
/// `Error: building at STEP "COPY a /b": checking on sources ...` -> `COPY a /b: checking ...`;
/// any other `Error: <msg>` -> `<msg>`.
pub fn failure_reason(line: &str) -> String {
    let mut msg = line.trim();
    for p in ["Error: ", "error: ", "Error:", "error:"] {
        if let Some(m) = msg.strip_prefix(p) {
            msg = m.trim_start();
            break;
        }
    }
    const AT_STEP: &str = "building at STEP \"";
    if let Some(i) = msg.find(AT_STEP) {
        let rest = &msg[i + AT_STEP.len()..];
        // `<step>": exit status N` (the step text may contain quotes; the status is last).
        if let Some(j) = rest.rfind("\": exit status ") {
            let code = &rest[j + "\": exit status ".len()..];
            let step = &rest[..j];
            if !code.is_empty() && code.bytes().all(|b| b.is_ascii_digit()) {
                let step = collapse(step);
                return one_line(&match step.split_once(' ') {
                    Some((instr, cmd)) => format!("{instr} exit status {code}: {cmd}"),
                    None => format!("{step} exit status {code}"),
                });
            }
        }
        if let Some(j) = rest.find("\": ") {
            return one_line(&format!("{}: {}", collapse(&rest[..j]), &rest[j + 3..]));
        }
        return one_line(rest.trim_end_matches('"'));
    }
    one_line(msg)
}

fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whitespace collapsed to single spaces, cut at [`MAX_REASON`] characters.
fn one_line(s: &str) -> String {
    let mut s = collapse(s);
    if s.len() > MAX_REASON {
        let mut cut = MAX_REASON;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

/// One entry of `buildah containers --json`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct WorkingContainer {
    pub id: String,
    /// True for buildah's own working containers (not podman's).
    #[serde(default)]
    pub builder: bool,
    #[serde(default)]
    pub containername: String,
    #[serde(default)]
    pub imagename: String,
}

struct ProcInfo {
    pid: i32,
    ppid: i32,
    argv: Vec<Vec<u8>>,
}

/// Every process of the machine with its parent and argument vector, from `/proc`.
fn list_processes() -> Vec<ProcInfo> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let (Ok(cmd), Ok(stat)) = (
            std::fs::read(e.path().join("cmdline")),
            std::fs::read_to_string(e.path().join("stat")),
        ) else {
            continue;
        };
        // `pid (comm) state ppid ...`: comm may hold spaces and parentheses.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let argv = cmd
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        out.push(ProcInfo { pid, ppid, argv });
    }
    out
}

/// The registry (`host[:port]`) a push destination goes to, `None` for a local transport.
fn registry_of(dest: &str) -> Option<&str> {
    let rest = match dest.strip_prefix("docker://") {
        Some(r) => r,
        None if transport_ref(dest).starts_with("docker://") => dest,
        None => return None,
    };
    rest.split('/').next().filter(|h| !h.is_empty())
}

/// Whether a failed push may succeed when tried again: any failure but the registry refusing
/// our credentials or the push (retrying those only delays the same answer).
fn push_retryable(e: &EngineError) -> bool {
    let EngineError::Failed { reason, tail, .. } = e else {
        return false;
    };
    let refused = |s: &str| {
        let s = s.to_ascii_lowercase();
        [
            "unauthorized",
            "authentication required",
            "denied",
            "forbidden",
        ]
        .iter()
        .any(|w| s.contains(w))
    };
    !refused(reason) && !tail.iter().any(|l| refused(l))
}

/// A buildah destination: `docker://` is added unless `dest` names a transport already.
fn transport_ref(dest: &str) -> String {
    const TRANSPORTS: [&str; 8] = [
        "docker://",
        "docker-archive:",
        "docker-daemon:",
        "oci:",
        "oci-archive:",
        "dir:",
        "containers-storage:",
        "sif:",
    ];
    if TRANSPORTS.iter().any(|t| dest.starts_with(t)) {
        dest.to_owned()
    } else {
        format!("docker://{dest}")
    }
}

fn check_kv(what: &str, k: &str, v: &str) -> Result<(), EngineError> {
    if k.is_empty() || k.contains('=') || k.starts_with('-') {
        return Err(EngineError::Invalid(format!("invalid {what} name {k:?}")));
    }
    if k.contains(['\n', '\r', '\0']) || v.contains(['\n', '\r', '\0']) {
        return Err(EngineError::Invalid(format!(
            "{what} {k:?}: names and values must be single lines"
        )));
    }
    Ok(())
}

fn check_name(what: &str, s: &str) -> Result<(), EngineError> {
    if s.is_empty() || s.starts_with('-') || s.contains(|c: char| c.is_whitespace() || c == '\0') {
        return Err(EngineError::Invalid(format!("invalid {what} {s:?}")));
    }
    Ok(())
}

/// Reads `buildah inspect --type image` JSON.
fn parse_inspect(json: &[u8]) -> Result<ImageInfo, EngineError> {
    let bad = |why: &str| EngineError::Output(format!("unexpected buildah inspect output: {why}"));
    let v: serde_json::Value = serde_json::from_slice(json).map_err(|_| bad("not JSON"))?;
    let id = v
        .get("FromImageID")
        .and_then(|x| x.as_str())
        .ok_or_else(|| bad("no FromImageID"))?;
    let id = if id.contains(':') {
        id.to_owned()
    } else {
        format!("sha256:{id}")
    };
    let id = Digest::parse(&id).map_err(|_| bad("invalid FromImageID"))?;
    let manifest: serde_json::Value = v
        .get("Manifest")
        .and_then(|m| m.as_str())
        .and_then(|m| serde_json::from_str(m).ok())
        .ok_or_else(|| bad("no Manifest"))?;
    let config_digest = manifest
        .pointer("/config/digest")
        .and_then(|d| d.as_str())
        .and_then(|d| Digest::parse(d).ok())
        .unwrap_or_else(|| id.clone());
    let manifest_media_type = manifest
        .get("mediaType")
        .and_then(|m| m.as_str())
        .unwrap_or(OCI_MANIFEST)
        .to_owned();
    let oci = v.get("OCIv1").ok_or_else(|| bad("no OCIv1 config"))?;
    let labels = oci
        .pointer("/config/Labels")
        .and_then(|l| l.as_object())
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    let s = |p: &str| oci.get(p).and_then(|x| x.as_str()).unwrap_or("").to_owned();
    let diff_ids = oci
        .pointer("/rootfs/diff_ids")
        .and_then(|d| d.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|d| Digest::parse(d.as_str()?).ok())
                .collect()
        })
        .unwrap_or_default();
    let ann = |k: &str| {
        v.pointer("/ImageAnnotations")
            .and_then(|a| a.get(k))
            .and_then(|x| x.as_str())
            .map(str::to_owned)
    };
    Ok(ImageInfo {
        id,
        config_digest,
        manifest_media_type,
        labels,
        architecture: s("architecture"),
        os: s("os"),
        diff_ids,
        base_name: ann("org.opencontainers.image.base.name"),
        base_digest: ann("org.opencontainers.image.base.digest")
            .and_then(|d| Digest::parse(&d).ok()),
    })
}

/// Where lines go: the caller's callback (or the stdout capture), the tail, the error line.
struct Sink<'f> {
    on_line: &'f mut (dyn FnMut(&str) + Send),
    capture_stdout: bool,
    stdout: Vec<u8>,
    tail: VecDeque<String>,
    error_line: Option<String>,
    last_stderr: Option<String>,
}

impl Sink<'_> {
    fn line(&mut self, is_stdout: bool, raw: &[u8]) {
        if is_stdout && self.capture_stdout {
            if self.stdout.len() + raw.len() < MAX_CAPTURE {
                self.stdout.extend_from_slice(raw);
                self.stdout.push(b'\n');
            }
            return;
        }
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let line = String::from_utf8_lossy(raw);
        (self.on_line)(&line);
        let t = line.trim_start();
        if t.starts_with("Error:") || t.starts_with("error building at STEP") {
            self.error_line = Some(t.to_owned());
        }
        if !is_stdout && !t.is_empty() {
            self.last_stderr = Some(t.to_owned());
        }
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(line.into_owned());
    }
}

/// Splits a byte stream into lines (without the `\n`); lines over [`MAX_LINE`] are cut.
#[derive(Default)]
struct Splitter {
    pending: Vec<u8>,
}

impl Splitter {
    fn feed(&mut self, mut data: &[u8], emit: &mut dyn FnMut(&[u8])) {
        while let Some(i) = data.iter().position(|&b| b == b'\n') {
            if self.pending.is_empty() {
                emit(&data[..i]);
            } else {
                self.pending.extend_from_slice(&data[..i]);
                emit(&self.pending);
                self.pending.clear();
            }
            data = &data[i + 1..];
        }
        self.pending.extend_from_slice(data);
        while self.pending.len() >= MAX_LINE {
            let rest = self.pending.split_off(MAX_LINE);
            emit(&self.pending);
            self.pending = rest;
        }
    }

    fn finish(&mut self, emit: &mut dyn FnMut(&[u8])) {
        if !self.pending.is_empty() {
            emit(&self.pending);
            self.pending.clear();
        }
    }
}

/// SIGKILLs the process group if the run is abandoned (future dropped).
struct GroupGuard {
    pgid: i32,
    armed: bool,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.armed {
            signal_group(self.pgid, libc::SIGKILL);
        }
    }
}

fn signal_group(pgid: i32, sig: i32) {
    if pgid <= 1 {
        return; // never "every process" or init's group
    }
    // SAFETY: kill(2) on a negative pid signals a process group; no memory is involved.
    unsafe {
        libc::kill(-pgid, sig);
    }
}

fn group_exists(pgid: i32) -> bool {
    if pgid <= 1 {
        return false;
    }
    // SAFETY: signal 0 only checks existence.
    unsafe { libc::kill(-pgid, 0) == 0 }
}

/// Whether /proc lists a member of the group that is not a zombie (zombies hold nothing and
/// vanish once reaped); true when /proc cannot be read.
fn group_has_live_member(pgid: i32) -> bool {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return true;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        if !name
            .to_str()
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid pgrp ...": comm may contain spaces and parentheses.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let mut f = rest.split_whitespace();
        let state = f.next();
        let pgrp = f.nth(1).and_then(|p| p.parse::<i32>().ok());
        if pgrp == Some(pgid) && !matches!(state, Some("Z" | "X")) {
            return true;
        }
    }
    false
}

async fn at(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// A uniquely named file path, removed on drop (buildah's `--iidfile`, `--digestfile`).
struct ScratchFile {
    path: PathBuf,
}

impl ScratchFile {
    fn new(dir: PathBuf, what: &str) -> ScratchFile {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = dir.join(format!(
            "containerbuild-{what}-{}-{n}-{nanos}",
            std::process::id()
        ));
        ScratchFile { path }
    }
}

impl Drop for ScratchFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons() {
        assert_eq!(
            failure_reason(
                r#"Error: building at STEP "RUN echo about to fail &&    false": exit status 1"#
            ),
            "RUN exit status 1: echo about to fail && false"
        );
        assert_eq!(
            failure_reason(r#"error building at STEP "RUN echo "a": b": exit status 127"#),
            r#"RUN exit status 127: echo "a": b"#
        );
        assert_eq!(
            failure_reason(
                r#"Error: building at STEP "COPY nonexist /x": checking on sources under "/tmp/c": copier: stat: "/nonexist": no such file or directory"#
            ),
            r#"COPY nonexist /x: checking on sources under "/tmp/c": copier: stat: "/nonexist": no such file or directory"#
        );
        assert_eq!(
            failure_reason(
                "Error: creating build container: localhost/nonexist:1: image not known"
            ),
            "creating build container: localhost/nonexist:1: image not known"
        );
        let long = format!("Error: {}", "x".repeat(2000));
        assert!(failure_reason(&long).chars().count() <= MAX_REASON + 1);
    }

    #[test]
    fn faults() {
        let e = EngineError::Failed {
            reason: "RUN exit status 1: false".into(),
            status: Some(1),
            tail: vec![],
        };
        let f = e.to_fault();
        assert_eq!(f.code, 2001);
        assert_eq!(f.message, "Image build failed. RUN exit status 1: false");
        assert_eq!(EngineError::Canceled.to_fault().code, 2002);
        let t = EngineError::TimedOut {
            what: "buildah bud".into(),
            limit: Duration::from_secs(60),
        };
        assert_eq!(
            t.to_fault().message,
            "Image build failed. buildah bud exceeded its time limit of 60 s"
        );
    }

    #[test]
    fn splitting() {
        let mut s = Splitter::default();
        let mut got: Vec<Vec<u8>> = Vec::new();
        s.feed(b"ab", &mut |l| got.push(l.to_vec()));
        s.feed(b"c\nde\n\nf", &mut |l| got.push(l.to_vec()));
        s.finish(&mut |l| got.push(l.to_vec()));
        assert_eq!(
            got,
            [b"abc".to_vec(), b"de".to_vec(), b"".to_vec(), b"f".to_vec()]
        );
        let mut got = 0usize;
        let big = vec![b'x'; MAX_LINE * 2 + 5];
        s.feed(&big, &mut |l| {
            assert!(l.len() <= MAX_LINE);
            got += 1;
        });
        s.finish(&mut |_| got += 1);
        assert_eq!(got, 3);
    }

    #[test]
    fn push_retry_plan() {
        let r = PushRetry::default();
        let waits: Vec<u64> = (1..r.attempts).map(|n| r.backoff(n).as_secs()).collect();
        assert_eq!(waits, [2, 4, 8]);
        assert_eq!(r.backoff(10).as_secs(), 8);
        assert_eq!(
            registry_of("127.0.0.1:5000/ns/img:1"),
            Some("127.0.0.1:5000")
        );
        assert_eq!(registry_of("docker://reg.test/img:1"), Some("reg.test"));
        assert_eq!(registry_of("docker-archive:/tmp/x.tar"), None);
        let failed = |reason: &str| EngineError::Failed {
            reason: reason.to_owned(),
            status: Some(125),
            tail: vec![],
        };
        assert!(push_retryable(&failed(
            "pinging container registry 127.0.0.1:1: connect: connection refused"
        )));
        assert!(!push_retryable(&failed("authentication required")));
        assert!(!push_retryable(&EngineError::Canceled));
    }

    #[test]
    fn destinations() {
        assert_eq!(
            transport_ref("127.0.0.1:5000/foo:1"),
            "docker://127.0.0.1:5000/foo:1"
        );
        assert_eq!(transport_ref("docker://r/foo:1"), "docker://r/foo:1");
        assert_eq!(
            transport_ref("docker-archive:/x.tar:foo:1"),
            "docker-archive:/x.tar:foo:1"
        );
        assert!(check_kv("label", "a=b", "c").is_err());
        assert!(check_kv("label", "a", "c\nd").is_err());
        assert!(check_kv("label", "a", "c=d e").is_ok());
        assert!(check_name("image", "--all").is_err());
    }

    #[test]
    fn inspect_json() {
        let manifest = r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"digest":"sha256:3f1d6eb17baa0151fc6a06498e892dc46ab086ec8d03402db6884fd12a0b81b4"}}"#;
        let json = serde_json::json!({
            "FromImageID": "3f1d6eb17baa0151fc6a06498e892dc46ab086ec8d03402db6884fd12a0b81b4",
            "Manifest": manifest,
            "ImageAnnotations": {"org.opencontainers.image.base.name": "localhost/base:1"},
            "OCIv1": {"architecture": "amd64", "os": "linux",
                      "config": {"Labels": {"foo": "bar"}},
                      "rootfs": {"diff_ids": ["sha256:84e324c6b31a4a302d3577171a647f5f58a5441960cfec9ee005a4c19dd6e44d"]}}
        });
        let i = parse_inspect(json.to_string().as_bytes()).unwrap();
        assert_eq!(i.id, i.config_digest);
        assert_eq!(i.manifest_media_type, DOCKER_MANIFEST_V2);
        assert_eq!(i.labels["foo"], "bar");
        assert_eq!(i.architecture, "amd64");
        assert_eq!(i.diff_ids.len(), 1);
        assert_eq!(i.base_name.as_deref(), Some("localhost/base:1"));
        assert!(parse_inspect(b"[]").is_err());
    }
}
