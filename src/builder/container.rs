//! The container build tasks (koji-containerbuild's builder plugin, with OSBS's per-platform
//! builds as Koji child tasks).
//!
//! `buildContainer` (the parent, arch `noarch`): opts -> target -> build tag arches -> checkout
//! (`checkout-for-labels.log`) -> commit on `git_branch` -> Dockerfile labels and container.yaml
//! -> package allow-list -> release and NVR -> tags -> one `createContainer` child per arch via
//! `host.subtask(arch=...)`, waited for with fail-any -> manifest list (more than one arch) ->
//! tags -> the plugin's result struct. While it waits it copies each child's `<arch>.log` into
//! its own `<arch>.log`, so the parent task carries the per-platform logs as it does in OSBS.
//!
//! `createContainer(src, target, arch, build)` (one per arch, on a builder of that arch): checkout
//! of the parent's commit -> Dockerfile edits (parent image, release ENV, OSBS labels as one
//! `LABEL` line) -> yum repo files fetched and bind-mounted for RUN -> `buildah bud --platform`
//! streamed into `<arch>.log` -> push `<unique>-<arch>` -> `docker-image-<config>.<arch>.tar.gz`
//! (when archives are on) uploaded as task output -> RPM manifest, and from the archive the
//! config and layer sizes -> a struct describing the image, with what the parent's CG metadata
//! needs (config, layer sizes, the base image's config digest, the build host's RPMs).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::handlers::{BoxFuture, TaskContext, TaskHandler};
use super::logs::TaskLog;
use crate::build::archive;
use crate::build::container_yaml::{self, BuildTag, ContainerYaml};
use crate::build::dockerfile::{self, AutoLabels, Dockerfile};
use crate::build::engine::{BudRequest, Buildah, BuildahConfig, ImageInfo, PushOptions};
use crate::build::opts::{BuildKind, BuildOpts, build_error, container_error};
use crate::build::registry::{self, Digest, ManifestEntry, Registry};
use crate::build::source::{AllowedScms, Git, ScmUrl};
use crate::cg::CONTENT_GENERATOR;
use crate::xmlrpc::{Fault, FaultCode, Struct, Value};

/// Default build time limit (seconds) when container.yaml sets none (osbs-client's default).
pub const DEFAULT_BUILDTIME_LIMIT: u64 = 3 * 3600;
/// Largest `buildtime_limit` container.yaml may ask for (osbs-client's default maximum).
pub const MAX_BUILDTIME_LIMIT: u64 = 6 * 3600;

/// Koji build states that make an NVR reusable: FAILED, CANCELED.
const REUSABLE_STATES: [i64; 2] = [3, 4];
/// Largest yum repo file accepted from a `yum_repourls` URL.
const MAX_REPO_FILE: usize = 1 << 20;
/// How long fetching one yum repo file may take.
const REPO_FETCH_TIMEOUT: Duration = Duration::from_secs(60);
/// gzip level of the image archive: level 1 is several times faster than 6 and, on layer data,
/// only a few percent larger; on incompressible layers (already compressed files) the higher
/// levels cost seconds per 100 MB and save almost nothing.
const ARCHIVE_LEVEL: u32 = 1;
/// Child log bytes copied per `downloadTaskOutput` call.
const MIRROR_CHUNK: i64 = 1 << 20;

/// Whether a child writes the image archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ArchiveMode {
    /// `docker-image-<config digest>.<arch>.tar.gz`, uploaded as task output.
    #[default]
    DockerArchive,
    /// No archive (the registry holds the image).
    None,
}

impl ArchiveMode {
    pub fn parse(s: &str) -> Option<ArchiveMode> {
        match s {
            "docker-archive" => Some(ArchiveMode::DockerArchive),
            "none" => Some(ArchiveMode::None),
            _ => None,
        }
    }
}

/// What a builder needs to build containers.
#[derive(Debug, Clone)]
pub struct ContainerSettings {
    /// Where images are pushed (and base images may be pulled from).
    pub registry: Registry,
    /// How buildah runs (storage of this builder, isolation, ...).
    pub buildah: BuildahConfig,
    pub allowed_scms: AllowedScms,
    pub buildtime_default: u64,
    pub buildtime_max: u64,
    pub archive: ArchiveMode,
}

impl ContainerSettings {
    pub fn new(registry: Registry, buildah: BuildahConfig) -> ContainerSettings {
        ContainerSettings {
            registry,
            buildah,
            allowed_scms: AllowedScms::allow_all(),
            buildtime_default: DEFAULT_BUILDTIME_LIMIT,
            buildtime_max: MAX_BUILDTIME_LIMIT,
            archive: ArchiveMode::default(),
        }
    }
}

/// The `buildContainer` handler (the parent task).
pub struct BuildContainerHandler {
    settings: Arc<ContainerSettings>,
}

impl BuildContainerHandler {
    pub fn new(settings: ContainerSettings) -> BuildContainerHandler {
        BuildContainerHandler {
            settings: Arc::new(settings),
        }
    }
}

impl TaskHandler for BuildContainerHandler {
    fn method(&self) -> &'static str {
        "buildContainer"
    }

    fn weight(&self) -> f64 {
        2.0
    }

    fn run(
        &self,
        ctx: TaskContext,
        params: Vec<Value>,
        kwargs: Struct,
    ) -> BoxFuture<'_, Result<Value, Fault>> {
        let settings = self.settings.clone();
        Box::pin(async move { build(&settings, &ctx, params, kwargs).await })
    }
}

/// The `createContainer` handler (one platform's image).
pub struct CreateContainerHandler {
    settings: Arc<ContainerSettings>,
}

impl CreateContainerHandler {
    pub fn new(settings: ContainerSettings) -> CreateContainerHandler {
        CreateContainerHandler {
            settings: Arc::new(settings),
        }
    }
}

impl TaskHandler for CreateContainerHandler {
    fn method(&self) -> &'static str {
        "createContainer"
    }

    fn weight(&self) -> f64 {
        2.0
    }

    fn run(
        &self,
        ctx: TaskContext,
        params: Vec<Value>,
        kwargs: Struct,
    ) -> BoxFuture<'_, Result<Value, Fault>> {
        let settings = self.settings.clone();
        Box::pin(async move { create(&settings, &ctx, params, kwargs).await })
    }
}

fn unknown(message: impl Into<String>) -> Fault {
    Fault::raw(FaultCode::Unknown as i32, message)
}

fn log_io(name: &str) -> impl Fn(std::io::Error) -> Fault + '_ {
    move |e| unknown(format!("cannot write {name}: {e}"))
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Raises a flag when dropped (the task future dropped on cancel stops blocking git).
struct RaiseOnDrop(Arc<AtomicBool>);

impl Drop for RaiseOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Clones `scm` into `<workdir>/<dir>` on a blocking thread, logging git's output to `log`,
/// and checks that the commit is on `branch` when one is given.
async fn checkout(
    ctx: &TaskContext,
    scm: ScmUrl,
    dir: &str,
    log: &TaskLog,
    branch: Option<String>,
) -> Result<crate::build::source::Checkout, Fault> {
    let dest = ctx.workdir().join(dir);
    let cancel_flag = Arc::new(AtomicBool::new(false));
    let _raise = RaiseOnDrop(cancel_flag.clone());
    let git = Git::new().cancel_flag(cancel_flag.clone());
    let mut file = log
        .try_clone_file()
        .map_err(|e| unknown(format!("cannot open {}: {e}", log.path().display())))?;
    tokio::task::spawn_blocking(move || -> Result<_, Fault> {
        let co = git.checkout(&scm, &dest, &mut file)?;
        if let Some(b) = branch {
            git.verify_on_branch(&dest, &co.commit, &b, &mut file)?;
        }
        Ok(co)
    })
    .await
    .map_err(|e| unknown(format!("checkout crashed: {e}")))?
}

/// What the parent decided and every child builds (the `build` argument of `createContainer`).
#[derive(Debug, Clone, PartialEq)]
struct ChildBuild {
    /// The commit the parent checked out (the child checks out exactly this).
    commit: String,
    release: String,
    build_date: String,
    unique_tag: String,
    /// Repository path in the registry (the `name` label).
    repository: String,
    buildtime_limit: u64,
    /// Pull spec replacing the final stage's parent image (`koji_parent_build`).
    parent_image: Option<String>,
    yum_repourls: Vec<String>,
}

impl ChildBuild {
    fn to_value(&self) -> Value {
        let mut s = Struct::new()
            .with("commit", self.commit.clone())
            .with("release", self.release.clone())
            .with("build_date", self.build_date.clone())
            .with("unique_tag", self.unique_tag.clone())
            .with("repository", self.repository.clone())
            .with("buildtime_limit", self.buildtime_limit as i64)
            .with(
                "yum_repourls",
                Value::Array(self.yum_repourls.iter().map(Value::str).collect()),
            );
        if let Some(p) = &self.parent_image {
            s.insert("parent_image", Value::str(p));
        }
        Value::from(s)
    }

    fn from_value(v: &Value) -> Result<ChildBuild, Fault> {
        let s = v
            .as_struct()
            .ok_or_else(|| Fault::parameter("createContainer: build must be a struct"))?;
        let text = |k: &str| -> Result<String, Fault> {
            s.get(k)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| Fault::parameter(format!("createContainer: build.{k} is missing")))
        };
        let limit = s
            .get("buildtime_limit")
            .and_then(Value::as_int)
            .filter(|n| *n > 0)
            .ok_or_else(|| Fault::parameter("createContainer: build.buildtime_limit is missing"))?;
        let yum = match s.get("yum_repourls") {
            None | Some(Value::Nil) => Vec::new(),
            Some(v) => v
                .as_array()
                .ok_or_else(|| Fault::parameter("createContainer: build.yum_repourls is a list"))?
                .iter()
                .map(|u| {
                    u.as_str().map(str::to_owned).ok_or_else(|| {
                        Fault::parameter("createContainer: build.yum_repourls holds strings")
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        Ok(ChildBuild {
            commit: text("commit")?,
            release: text("release")?,
            build_date: text("build_date")?,
            unique_tag: text("unique_tag")?,
            repository: text("repository")?,
            buildtime_limit: limit as u64,
            parent_image: s
                .get("parent_image")
                .and_then(Value::as_str)
                .map(str::to_owned),
            yum_repourls: yum,
        })
    }
}

async fn build(
    settings: &ContainerSettings,
    ctx: &TaskContext,
    params: Vec<Value>,
    kwargs: Struct,
) -> Result<Value, Fault> {
    let params = merge_opts_kwarg(params, kwargs)?;
    let (src, target, opts) = BuildOpts::from_params(&params)?;
    let osbs = ctx.log("osbs-build")?;
    let io = log_io("osbs-build.log");
    osbs.line(&format!("buildContainer {src} {target}"))
        .map_err(&io)?;
    for w in &opts.log_warnings {
        osbs.line(w).map_err(&io)?;
    }
    let session = ctx.session();

    // Target and build tag.
    let tinfo = session
        .call("getBuildTarget", vec![Value::str(target.clone())])
        .await?;
    let Some(tinfo) = tinfo.as_struct() else {
        return Err(build_error(format!("Target `{target}` not found")));
    };
    let build_tag_id = tinfo
        .get("build_tag")
        .and_then(Value::as_int)
        .ok_or_else(|| unknown(format!("target {target} has no build tag")))?;
    let build_tag_name = tinfo
        .get("build_tag_name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let dest_tag_name = tinfo
        .get("dest_tag_name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let bc = session
        .call("getBuildConfig", vec![Value::Int(build_tag_id)])
        .await?;
    let tag_arches = bc
        .as_struct()
        .and_then(|s| s.get("arches"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();

    // Source.
    let scm = ScmUrl::parse(&src, &settings.allowed_scms)?;
    let checkout_log = ctx.log("checkout-for-labels")?;
    let co = checkout(
        ctx,
        scm,
        "checkout",
        &checkout_log,
        Some(opts.git_branch.clone()),
    )
    .await?;
    osbs.line(&format!("checked out commit {}", co.commit))
        .map_err(&io)?;

    // Dockerfile, container.yaml, arches.
    let df = Dockerfile::load(&co.source_dir)?;
    let labels = df.labels()?;
    let il = dockerfile::image_labels(&labels, opts.release.as_deref())?;
    let cy = ContainerYaml::load(&co.source_dir)?;
    let mut user_warnings = cy.user_warnings.clone();
    let arches = container_yaml::arch_list(
        BuildTag {
            name: &build_tag_name,
            id: build_tag_id,
            arches: &tag_arches,
        },
        opts.arch_override.as_deref(),
        opts.kind(),
        &cy,
    )?;
    for l in &arches.log {
        osbs.line(l).map_err(&io)?;
    }
    let limit = cy.buildtime_limit(settings.buildtime_default, settings.buildtime_max)?;
    let (yaml_tags, dropped) = cy.additional_tags();
    for l in &dropped {
        osbs.line(l).map_err(&io)?;
    }
    if let Some(r) = &il.release {
        let vr = format!("{}-{r}", il.version);
        let mut all: Vec<&str> = yaml_tags.iter().map(String::as_str).collect();
        all.push(&vr);
        dockerfile::check_tag_length(&all)?;
    }

    // Package allow-list (koji-containerbuild `check_whitelist`).
    if opts.kind() != BuildKind::Scratch {
        check_package_allowed(ctx, &dest_tag_name, &il.component).await?;
    }

    // Tags and repository.
    let reg = &settings.registry;
    let repository = dockerfile::repository(&reg.host_port, None, &il.name)?;
    let name_path = repository
        .strip_prefix(&format!("{}/", reg.host_port))
        .unwrap_or(&il.name)
        .to_string();
    let client = reg
        .client()
        .map_err(|e| container_error(format!("Image build failed. {e}")))?;

    // Release and NVR: free in Koji and, until builds are imported, not yet a primary tag in
    // the registry (a second build of a version gets the next release instead of overwriting).
    let release = match &il.release {
        Some(r) => {
            if opts.kind() != BuildKind::Scratch
                && let Some(why) = release_taken(ctx, &client, &name_path, &il, r).await?
            {
                return Err(build_error(why));
            }
            r.clone()
        }
        None if opts.kind() == BuildKind::Scratch => {
            dockerfile::scratch_release(dockerfile::random_digits(), now() as i64)
        }
        None => next_release(ctx, &client, &name_path, &il).await?,
    };
    let nvr = il.nvr_with(&release);
    osbs.line(&format!("NVR {nvr}")).map_err(&io)?;

    let unique = dockerfile::new_unique_tag(Some(&target));
    let yaml_tags = cy.tags_from_yaml().then_some(yaml_tags);
    let tags = dockerfile::tag_set(
        opts.kind(),
        &unique,
        &il.version,
        &release,
        yaml_tags.as_deref(),
    )?;

    // Inputs every child needs, checked here so a bad one fails before any build starts.
    let parent_image = match opts.koji_parent_build.as_deref() {
        Some(p) => {
            let pull = parent_pull_spec(ctx, p).await?;
            // Fails now for a Dockerfile whose last stage is FROM scratch.
            dockerfile::replace_last_from(df.text(), &pull)?;
            osbs.line(&format!("koji_parent_build {p}: parent image {pull}"))
                .map_err(&io)?;
            Some(pull)
        }
        None => None,
    };
    for u in &opts.yum_repourls {
        repo_file_name(u)?;
    }
    let child = ChildBuild {
        commit: co.commit.clone(),
        release: release.clone(),
        build_date: dockerfile::build_date(now()),
        unique_tag: unique.clone(),
        repository: name_path.clone(),
        buildtime_limit: limit,
        parent_image,
        yum_repourls: opts.yum_repourls.clone(),
    };

    // Non-scratch: reserve the NVR in Koji (atomic-reactor's reserve_build), refunded if the
    // build fails or is canceled, completed by CGImport.
    let reservation = if opts.kind() == BuildKind::Scratch {
        None
    } else {
        Some(Reservation::take(ctx, &il, &release).await?)
    };
    let started_at = now() as i64;
    let outcome: Result<Value, Fault> = async {
        // One child per arch.
        let mut children = Vec::new();
        for arch in &arches.arches {
            let id = ctx
                .subtask(
                    "createContainer",
                    vec![
                        Value::str(src.clone()),
                        Value::str(target.clone()),
                        Value::str(arch.clone()),
                        child.to_value(),
                    ],
                    Struct::new()
                        .with("arch", arch.clone())
                        .with("label", arch.clone()),
                )
                .await?;
            osbs.line(&format!("createContainer for {arch}: task {id}"))
                .map_err(&io)?;
            children.push((id, arch.clone()));
        }
        let mirror = LogMirror::new(ctx, &children)?;
        let ids: Vec<i64> = children.iter().map(|(id, _)| *id).collect();
        let waited = {
            let m = mirror.clone();
            ctx.wait_all(&ids, move || {
                let m = m.clone();
                Box::pin(async move { m.copy().await })
            })
            .await
        };
        mirror.copy().await;
        let results = match waited {
            Ok(r) => r,
            Err(f) => {
                let _ = osbs.line(&format!("a platform build failed: {}", f.message));
                return Err(f);
            }
        };

        // Manifest list and tags.
        let mut entries = Vec::new();
        for ((id, arch), r) in children.iter().zip(&results) {
            let e = entry_of(r).ok_or_else(|| {
                unknown(format!(
                    "createContainer task {id} ({arch}) returned no image"
                ))
            })?;
            osbs.line(&format!("{arch}: {} ({} bytes)", e.digest, e.size))
                .map_err(&io)?;
            entries.push(e);
            let warnings = r
                .as_struct()
                .and_then(|s| s.get("user_warnings"))
                .and_then(Value::as_array)
                .unwrap_or_default();
            user_warnings.extend(warnings.iter().filter_map(Value::as_str).map(str::to_owned));
        }
        let mut list_digest: Option<(String, String)> = None;
        // One arch: the child's manifest by digest, not by the child's tag. A parent run again
        // (its host died) gets its finished child back from `host.subtask` (same label), and
        // that child pushed under the first run's unique tag, not this run's.
        let source_tag = if let [only] = entries.as_slice() {
            only.digest.as_str().to_owned()
        } else {
            let info = client
                .put_manifest_list(&name_path, &unique, &entries)
                .await
                .map_err(|e| {
                    container_error(format!(
                        "Image build failed. cannot push the manifest list: {e}"
                    ))
                })?;
            osbs.line(&format!(
                "pushed manifest list {repository}:{unique} ({})",
                info.digest
            ))
            .map_err(&io)?;
            list_digest = Some((info.media_type.clone(), info.digest.as_str().to_owned()));
            unique.clone()
        };
        for t in tags.all().filter(|t| *t != source_tag) {
            let info = client
                .tag(&name_path, &source_tag, t)
                .await
                .map_err(|e| container_error(format!("Image build failed. cannot tag {t}: {e}")))?;
            osbs.line(&format!("tagged {repository}:{t} ({})", info.digest))
                .map_err(&io)?;
        }
        for a in arches.arches.iter() {
            if !children.iter().any(|(_, c)| c == a) {
                user_warnings.push(format!("arch {a} was not built"));
            }
        }

        let mut koji_builds = Vec::new();
        if let Some(r) = &reservation {
            let build_id = import_build(
                ctx,
                r,
                &ImportInput {
                    src: &src,
                    commit: &co.commit,
                    il: &il,
                    release: &release,
                    started_at,
                    children: &children,
                    results: &results,
                    mirror: &mirror,
                    isolated: opts.kind() == BuildKind::Isolated,
                    parent_image: child.parent_image.as_deref(),
                    yum_repourls: &opts.yum_repourls,
                    repository: &repository,
                    tags: &tags,
                    list_digest: list_digest.as_ref(),
                    userdata: opts.userdata.as_ref(),
                },
                &osbs,
            )
            .await?;
            let tag_task = session
                .call(
                    "tagBuild",
                    vec![Value::str(dest_tag_name.clone()), Value::Int(build_id)],
                )
                .await?;
            osbs.line(&format!(
                "imported build {build_id}, tagged into {dest_tag_name} (task {})",
                tag_task.as_int().unwrap_or(0)
            ))
            .map_err(&io)?;
            koji_builds.push(Value::str(build_id.to_string()));
        }

        let mut result = Struct::new();
        result.insert(
            "repositories",
            Value::from(
                dockerfile::repositories(&repository, &tags)
                    .into_iter()
                    .map(Value::from)
                    .collect::<Vec<_>>(),
            ),
        );
        result.insert("koji_builds", Value::Array(koji_builds));
        if !user_warnings.is_empty() {
            result.insert(
                "user_warnings",
                Value::from(
                    user_warnings
                        .into_iter()
                        .map(Value::from)
                        .collect::<Vec<_>>(),
                ),
            );
        }
        Ok(Value::from(result))
    }
    .await;
    match (outcome, reservation) {
        (Ok(v), Some(r)) => {
            r.disarm();
            Ok(v)
        }
        (Err(f), Some(r)) => {
            r.refund(BUILD_FAILED).await;
            Err(f)
        }
        (outcome, None) => outcome,
    }
}

/// Koji build states a reservation is refunded with.
const BUILD_FAILED: i64 = 3;
const BUILD_CANCELED: i64 = 4;

/// An NVR reserved with `CGInitBuild`. Unless disarmed (imported) or refunded, dropping it —
/// the task future dropped on cancel — refunds it as CANCELED in the background, so the NVR
/// becomes reusable as Koji allows for FAILED and CANCELED builds.
struct Reservation {
    session: Arc<super::client::KojiClient>,
    build_id: i64,
    token: String,
    armed: AtomicBool,
}

impl Reservation {
    async fn take(
        ctx: &TaskContext,
        il: &dockerfile::ImageLabels,
        release: &str,
    ) -> Result<Reservation, Fault> {
        let data = Struct::new()
            .with("name", il.component.clone())
            .with("version", il.version.clone())
            .with("release", release.to_owned());
        let r = ctx
            .session()
            .call(
                "CGInitBuild",
                vec![Value::str(CONTENT_GENERATOR), Value::from(data)],
            )
            .await?;
        let s = r.as_struct();
        let build_id = s.and_then(|s| s.get("build_id")).and_then(Value::as_int);
        let token = s.and_then(|s| s.get("token")).and_then(Value::as_str);
        match (build_id, token) {
            (Some(build_id), Some(token)) => Ok(Reservation {
                session: ctx.session().clone(),
                build_id,
                token: token.to_owned(),
                armed: AtomicBool::new(true),
            }),
            _ => Err(unknown(format!("CGInitBuild answered {r:?}"))),
        }
    }

    fn disarm(&self) {
        self.armed.store(false, Ordering::SeqCst);
    }

    fn refund_call(&self, state: i64) -> (Arc<super::client::KojiClient>, Vec<Value>) {
        (
            self.session.clone(),
            vec![
                Value::str(CONTENT_GENERATOR),
                Value::Int(self.build_id),
                Value::str(self.token.clone()),
                Value::Int(state),
            ],
        )
    }

    async fn refund(&self, state: i64) {
        if !self.armed.swap(false, Ordering::SeqCst) {
            return;
        }
        let (session, args) = self.refund_call(state);
        if let Err(e) = session.call("CGRefundBuild", args).await {
            tracing::warn!(build_id = self.build_id, error = %e, "cannot refund the reserved build");
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.armed.swap(false, Ordering::SeqCst) {
            return;
        }
        let (session, args) = self.refund_call(BUILD_CANCELED);
        let build_id = self.build_id;
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = session.call("CGRefundBuild", args).await {
                    tracing::warn!(build_id, error = %e, "cannot refund the reserved build");
                }
            });
        }
    }
}

/// What the import needs from the build.
struct ImportInput<'a> {
    src: &'a str,
    commit: &'a str,
    il: &'a dockerfile::ImageLabels,
    release: &'a str,
    started_at: i64,
    children: &'a [(i64, String)],
    results: &'a [Value],
    mirror: &'a LogMirror,
    isolated: bool,
    parent_image: Option<&'a str>,
    yum_repourls: &'a [String],
    repository: &'a str,
    tags: &'a dockerfile::TagSet,
    list_digest: Option<&'a (String, String)>,
    userdata: Option<&'a Struct>,
}

fn md5_hex(data: &[u8]) -> String {
    use md5::Digest as _;
    md5::Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Writes `metadata.json` (task output) and imports the build with `CGImport` into the
/// reservation: the per-arch image archives and logs stay where the children uploaded them
/// (`relpath` below the `tasks` work directory). Returns the build id.
async fn import_build(
    ctx: &TaskContext,
    r: &Reservation,
    input: &ImportInput<'_>,
    osbs: &TaskLog,
) -> Result<i64, Fault> {
    use crate::cg::{
        BuildInfo, Buildroot, DockerExtra, ImageExtra, ImageIndex, ImageOutput, LayerSize,
        LogOutput, Metadata,
    };
    let session = ctx.session();
    let info = session
        .call("getTaskInfo", vec![Value::Int(ctx.task_id())])
        .await?;
    let owner_id = info
        .as_struct()
        .and_then(|s| s.get("owner"))
        .and_then(Value::as_int)
        .unwrap_or(0);
    let owner = session.call("getUser", vec![Value::Int(owner_id)]).await?;
    let owner = owner
        .as_struct()
        .and_then(|s| s.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let me = session.call("getLoggedInUser", vec![]).await?;
    let submitter = me
        .as_struct()
        .and_then(|s| s.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();

    let mut buildroots = Vec::new();
    let mut images = Vec::new();
    let mut logs = Vec::new();
    let mut media_types = Vec::new();
    for ((child_id, arch), res) in input.children.iter().zip(input.results) {
        let s = res.as_struct().cloned().unwrap_or_default();
        let text = |k: &str| {
            s.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let Some(archive) = s.get("archive").and_then(Value::as_struct) else {
            return Err(container_error(format!(
                "Image build failed. {arch} has no image archive to import (the builder runs with --archive none)"
            )));
        };
        let relpath = super::logs::task_upload_path(*child_id)
            .trim_start_matches("tasks/")
            .to_owned();
        let br = format!("{arch}-{child_id}");
        let json_of = |k: &str| s.get(k).map(crate::xmlrpc::value::value_to_json);
        buildroots.push(Buildroot {
            id: br.clone(),
            arch: arch.clone(),
            tools: vec![(
                "containerbuild".to_owned(),
                env!("CARGO_PKG_VERSION").to_owned(),
            )],
            components: json_of("host_components")
                .and_then(|j| j.as_array().cloned())
                .unwrap_or_default(),
        });
        let media_type = text("media_type");
        let digest = text("digest");
        if !media_types.contains(&media_type) {
            media_types.push(media_type.clone());
        }
        let repo = text("repository");
        let components = json_of("components")
            .and_then(|j| j.as_array().cloned())
            .unwrap_or_default();
        // A child that predates these members (a builder not yet upgraded) leaves them unset.
        let layer_sizes = json_of("layer_sizes")
            .and_then(|j| serde_json::from_value::<Vec<LayerSize>>(j).ok())
            .unwrap_or_default();
        images.push(ImageOutput {
            buildroot_id: br.clone(),
            filename: archive
                .get("filename")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            relpath: relpath.clone(),
            filesize: archive
                .get("filesize")
                .and_then(Value::as_int)
                .unwrap_or(0)
                .max(0) as u64,
            checksum: archive
                .get("checksum")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            arch: arch.clone(),
            components,
            docker: DockerExtra {
                id: text("image_id"),
                parent_id: s
                    .get("parent_id")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                repositories: vec![
                    format!("{repo}:{}", text("tag")),
                    format!("{repo}@{digest}"),
                ],
                layer_sizes,
                tags: vec![text("tag")],
                config: json_of("config").filter(serde_json::Value::is_object),
                digests: [(media_type, digest)].into_iter().collect(),
            },
            rpm_report: s
                .get("rpm_report")
                .and_then(Value::as_str)
                .map(str::to_owned),
        });
        // The child's log, byte for byte the copy the parent holds.
        let log_name = format!("{arch}.log");
        if let Some((_, _, log)) = input.mirror.logs.iter().find(|(id, _, _)| id == child_id)
            && let Ok(bytes) = std::fs::read(log.path())
        {
            logs.push(LogOutput {
                buildroot_id: br,
                filename: log_name,
                relpath,
                filesize: bytes.len() as u64,
                checksum: md5_hex(&bytes),
                arch: "noarch".to_owned(),
            });
        }
    }
    let primary = input.tags.primary.first().cloned().unwrap_or_default();
    let (index_digest, index_media) = match input.list_digest {
        Some((m, d)) => (d.clone(), m.clone()),
        None => (
            images
                .first()
                .and_then(|i| i.docker.digests.values().next().cloned())
                .unwrap_or_default(),
            images
                .first()
                .and_then(|i| i.docker.digests.keys().next().cloned())
                .unwrap_or_default(),
        ),
    };
    let extra = ImageExtra {
        isolated: input.isolated,
        parent_images: input.parent_image.map(str::to_owned).into_iter().collect(),
        yum_repourls: input.yum_repourls.to_vec(),
        index: Some(ImageIndex {
            tags: input.tags.primary.clone(),
            floating_tags: input.tags.floating.clone(),
            unique_tags: input.tags.unique.clone(),
            pull: vec![
                format!("{}@{index_digest}", input.repository),
                format!("{}:{primary}", input.repository),
            ],
            digests: [(index_media, index_digest)].into_iter().collect(),
        }),
        media_types,
        container_koji_task_id: ctx.task_id(),
        submitter,
        userdata: input
            .userdata
            .map(|u| crate::xmlrpc::value::value_to_json(&Value::Struct(u.clone()))),
        ..ImageExtra::default()
    };
    let source = match input.src.split_once('#') {
        Some((url, _)) => format!("{url}#{}", input.commit),
        None => format!("{}#{}", input.src, input.commit),
    };
    let md = Metadata::new(
        BuildInfo {
            name: input.il.component.clone(),
            version: input.il.version.clone(),
            release: input.release.to_owned(),
            source,
            start_time: input.started_at,
            end_time: now() as i64,
            owner,
            build_id: Some(r.build_id),
            extra: extra.to_json(),
        },
        &buildroots,
        &images,
        &logs,
    );
    let text = md.to_pretty();
    let file = ctx.workdir().join("metadata.json");
    std::fs::write(&file, &text)
        .map_err(|e| unknown(format!("cannot write metadata.json: {e}")))?;
    ctx.upload_file(&file, "metadata.json").await?;
    let imported = session
        .call(
            "CGImport",
            vec![
                Value::str(text),
                Value::str("tasks"),
                Value::str(r.token.clone()),
            ],
        )
        .await?;
    r.disarm();
    let build_id = imported
        .as_struct()
        .and_then(|s| s.get("id"))
        .and_then(Value::as_int)
        .unwrap_or(r.build_id);
    osbs.line(&format!("CGImport: build {build_id}"))
        .map_err(log_io("osbs-build.log"))?;
    Ok(build_id)
}

/// A child's result as a manifest list entry.
fn entry_of(r: &Value) -> Option<ManifestEntry> {
    let s = r.as_struct()?;
    Some(ManifestEntry {
        digest: Digest::parse(s.get("digest")?.as_str()?).ok()?,
        size: u64::try_from(s.get("size")?.as_int()?).ok()?,
        media_type: s.get("media_type")?.as_str()?.to_owned(),
        arch: s.get("arch")?.as_str()?.to_owned(),
    })
}

/// Copies each child's `<arch>.log` (as far as the hub has it) to the parent's `<arch>.log`.
#[derive(Clone)]
struct LogMirror {
    session: Arc<super::client::KojiClient>,
    logs: Arc<Vec<(i64, String, TaskLog)>>,
    offsets: Arc<tokio::sync::Mutex<Vec<i64>>>,
}

impl LogMirror {
    fn new(ctx: &TaskContext, children: &[(i64, String)]) -> Result<LogMirror, Fault> {
        let mut logs = Vec::new();
        for (id, arch) in children {
            logs.push((*id, format!("{arch}.log"), ctx.log(arch)?));
        }
        Ok(LogMirror {
            session: ctx.session().clone(),
            offsets: Arc::new(tokio::sync::Mutex::new(vec![0; logs.len()])),
            logs: Arc::new(logs),
        })
    }

    async fn copy(&self) {
        let mut offsets = self.offsets.lock().await;
        for (i, (id, name, log)) in self.logs.iter().enumerate() {
            loop {
                let Ok(v) = self
                    .session
                    .call(
                        "downloadTaskOutput",
                        vec![
                            Value::Int(*id),
                            Value::str(name.clone()),
                            Value::Int(offsets[i]),
                            Value::Int(MIRROR_CHUNK),
                        ],
                    )
                    .await
                else {
                    break; // not uploaded yet
                };
                // Koji answers base64 text in a string (the client decodes it).
                let data = match &v {
                    Value::String(s) => {
                        use base64::Engine as _;
                        match base64::engine::general_purpose::STANDARD.decode(s) {
                            Ok(d) => d,
                            Err(_) => break,
                        }
                    }
                    Value::Base64(b) => b.clone(),
                    _ => break,
                };
                if data.is_empty() || log.write(&data).is_err() {
                    break;
                }
                offsets[i] += data.len() as i64;
            }
        }
    }
}

/// Koji arch -> OCI `os/arch[/variant]` for `buildah bud --platform`.
fn platform_of(arch: &str) -> String {
    match registry::oci_platform(arch) {
        (a, Some(v)) => format!("linux/{a}/{v}"),
        (a, None) => format!("linux/{a}"),
    }
}

async fn create(
    settings: &ContainerSettings,
    ctx: &TaskContext,
    params: Vec<Value>,
    kwargs: Struct,
) -> Result<Value, Fault> {
    if let Some(k) = kwargs.keys().next() {
        return Err(Fault::parameter(format!(
            "handler() got an unexpected keyword argument '{k}'"
        )));
    }
    let [src, _target, arch, build] = params.as_slice() else {
        return Err(Fault::parameter(format!(
            "handler() takes 5 positional arguments but {} were given",
            params.len() + 1
        )));
    };
    let (Some(src), Some(arch)) = (src.as_str(), arch.as_str()) else {
        return Err(Fault::parameter(
            "createContainer: src and arch must be strings",
        ));
    };
    let b = ChildBuild::from_value(build)?;
    let log = ctx.log(arch)?;
    let io = log_io("the arch log");
    log.line(&format!("createContainer {src} for {arch}"))
        .map_err(&io)?;

    // The parent's commit, exactly.
    let scm = ScmUrl::parse(src, &settings.allowed_scms)?;
    let scm = scm.at_revision(&b.commit);
    let co = checkout(ctx, scm, "checkout", &log, None).await?;
    if co.commit != b.commit {
        return Err(unknown(format!(
            "checked out {} instead of {}",
            co.commit, b.commit
        )));
    }

    // The Dockerfile this platform builds.
    let df = Dockerfile::load(&co.source_dir)?;
    let labels = df.labels()?;
    let cy = ContainerYaml::load(&co.source_dir)?;
    let mut text = df.text().to_string();
    if let Some(p) = &b.parent_image {
        text = dockerfile::replace_last_from(&text, p)?;
    }
    if let Some(env) = cy.set_release_env.as_deref() {
        text = dockerfile::add_release_env(&text, env, &b.release)?;
    }
    let add = dockerfile::labels_to_add(
        &labels,
        &AutoLabels {
            release: &b.release,
            architecture: arch,
            build_date: &b.build_date,
            vcs_type: "git",
            vcs_ref: &b.commit,
        },
    );
    let text = dockerfile::add_labels(&text, &add);
    let df_path: PathBuf = ctx.workdir().join(format!("Dockerfile.{arch}"));
    std::fs::write(&df_path, &text)
        .map_err(|e| unknown(format!("cannot write {}: {e}", df_path.display())))?;

    // yum repos: fetched here, mounted into RUN steps, never committed into a layer.
    let volumes = fetch_repos(ctx, &b.yum_repourls, &log).await?;

    // Build.
    let buildah = Buildah::new(settings.buildah.clone());
    for d in [
        &settings.buildah.root,
        &settings.buildah.runroot,
        &settings.buildah.tmpdir,
    ]
    .into_iter()
    .flatten()
    {
        std::fs::create_dir_all(d)
            .map_err(|e| unknown(format!("cannot create {}: {e}", d.display())))?;
    }
    let reg = &settings.registry;
    let cancel = CancellationToken::new();
    let _cancel_on_drop = cancel.clone().drop_guard();
    let local = format!("localhost/containerbuild-task-{}:{arch}", ctx.task_id());
    let mut req = BudRequest::new(&co.source_dir, &df_path, &local);
    req.tls_verify = reg.tls_verify();
    req.authfile = reg.authfile.as_deref();
    req.timeout = Some(Duration::from_secs(b.buildtime_limit));
    req.platform = Some(platform_of(arch));
    req.volumes = volumes;
    let started = std::time::Instant::now();
    let on_line = |l: &str| write_line(&log, l);
    let image_id = match buildah.bud(&req, &cancel, on_line).await {
        Ok(id) => id,
        Err(e) => {
            write_line(&log, &format!("Image build failed. {}", e.reason()));
            return Err(e.to_fault());
        }
    };
    log.line(&format!(
        "built image {image_id} in {:.1} s",
        started.elapsed().as_secs_f64()
    ))
    .map_err(&io)?;
    // The base image as this build's storage holds it, looked at right after the build (before
    // another build on this host could pull a newer one under the same name).
    let base = base_image_info(ctx, &buildah, &text, &log).await?;
    let remaining = Duration::from_secs(b.buildtime_limit)
        .saturating_sub(started.elapsed())
        .max(Duration::from_secs(1));

    // Push.
    let arch_tag = registry::arch_tag(&b.unique_tag, arch);
    let dest_ref = format!("{}/{}:{arch_tag}", reg.host_port, b.repository);
    let push_opts = PushOptions {
        tls_verify: reg.tls_verify(),
        authfile: reg.authfile.as_deref(),
        timeout: Some(remaining),
    };
    // The registry push and the image archive read the same local image: run them together
    // (buildah compresses the pushed layers on one core, the archive uses the others).
    let push = buildah.push(&local, &dest_ref, &push_opts, &cancel, |l| {
        write_line(&log, l)
    });
    let archive = async {
        if settings.archive == ArchiveMode::DockerArchive {
            write_archive(ctx, &buildah, &local, &image_id, arch, &b, &cancel, &log)
                .await
                .map(Some)
        } else {
            Ok(None)
        }
    };
    let (pushed, archived) = tokio::join!(push, archive);
    let digest = match pushed {
        Ok(d) => d,
        Err(e) => {
            write_line(&log, &format!("push failed: {}", e.reason()));
            return Err(e.to_fault());
        }
    };
    let archived = archived?;
    log.line(&format!("pushed {dest_ref} as {digest}"))
        .map_err(&io)?;
    let client = reg
        .client()
        .map_err(|e| container_error(format!("Image build failed. {e}")))?;
    let (pushed_manifest, info) = client
        .get_manifest(&b.repository, &arch_tag)
        .await
        .map_err(|e| {
            container_error(format!(
                "Image build failed. cannot read {dest_ref} back from the registry: {e}"
            ))
        })?;
    if info.digest != digest {
        return Err(container_error(format!(
            "Image build failed. the registry has {} for {dest_ref}, buildah pushed {digest}",
            info.digest
        )));
    }
    // `extra.docker.id` is the pushed config's digest (atomic-reactor reads it from the
    // registry); the archive is named after the local image id, so both must be the same.
    let pushed_json = serde_json::from_slice::<serde_json::Value>(&pushed_manifest).ok();
    let pushed_config = pushed_json
        .as_ref()
        .and_then(|m| m.pointer("/config/digest")?.as_str().map(str::to_owned));
    if pushed_config.as_deref() != Some(image_id.as_str()) {
        return Err(container_error(format!(
            "Image build failed. {dest_ref} has config {}, buildah built {image_id}",
            pushed_config.as_deref().unwrap_or("(none)")
        )));
    }

    // Archive.
    let mut result = Struct::new()
        .with("arch", arch.to_owned())
        .with("repository", format!("{}/{}", reg.host_port, b.repository))
        .with("tag", arch_tag.clone())
        .with("digest", digest.as_str().to_owned())
        .with("media_type", info.media_type.clone())
        .with("size", info.size as i64)
        .with("image_id", image_id.as_str().to_owned());
    // The hub's `containerbuild_pushed_bytes_total`: the manifest, its config and layer blobs.
    // buildah does not say which blobs the registry already had and skipped, so this is the
    // most the push can have sent.
    result.insert(
        "pushed_bytes",
        Value::Int(pushed_size(&info, pushed_json.as_ref()) as i64),
    );
    // The image as a docker-archive on disk: the archive itself, or a plain tar for reading.
    let image_file = match archived {
        Some((path, a)) => {
            let name = a
                .get("filename")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            ctx.upload_file(&path, &name).await?;
            result.insert("archive", Value::from(a));
            path
        }
        None => {
            let path = ctx.workdir().join(format!("image-{arch}.tar"));
            let dest = format!("docker-archive:{}", path.display());
            buildah
                .push(&local, &dest, &PushOptions::default(), &cancel, |l| {
                    write_line(&log, l)
                })
                .await
                .map_err(|e| e.to_fault())?;
            // OSBS 2's placeholder, so the build still has its Koji image archive.
            let name = format!("docker-image-{}.{arch}.tar.gz", image_id.hex());
            let pull = format!("{}/{}@{digest}", reg.host_port, b.repository);
            let ph = ctx.workdir().join(&name);
            let a = write_placeholder(&ph, &name, &pull)
                .map_err(|e| unknown(format!("cannot write {name}: {e}")))?;
            ctx.upload_file(&ph, &name).await?;
            let _ = std::fs::remove_file(&ph);
            result.insert("archive", Value::from(a));
            path
        }
    };
    let _ = buildah.rmi(&local).await;

    // RPMs: the final list (atomic-reactor's components) and what each layer did, with the
    // config and layer sizes from the same pass over the archive; at the same time, on the other
    // core, the build host's RPMs. All of it feeds the parent's CG metadata.
    let (manifest, host) = tokio::join!(
        rpm_manifest(ctx, &image_file, arch, &log),
        host_components_of(ctx, Path::new("/"), &log),
    );
    let _ = std::fs::remove_file(&image_file);
    let (manifest, archived) = manifest?;
    for (k, v) in manifest {
        result.insert(k, v);
    }
    let config_digest = Digest::sha256_of(&archived.config);
    if config_digest != image_id {
        return Err(container_error(format!(
            "Image build failed. the image archive holds config {config_digest}, buildah built {image_id}"
        )));
    }
    for (k, v) in docker_members(ctx.task_id(), &archived, base.as_ref(), &log)? {
        result.insert(k, v);
    }
    result.insert("host_components", host);
    Ok(Value::from(result))
}

/// A manifest's own size plus the sizes of the blobs it lists (config and layers).
fn pushed_size(
    info: &crate::build::registry::ManifestInfo,
    manifest: Option<&serde_json::Value>,
) -> u64 {
    let blob = |d: &serde_json::Value| {
        d.get("size")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0)
    };
    let Some(m) = manifest else {
        return info.size;
    };
    let layers: u64 = m
        .get("layers")
        .and_then(serde_json::Value::as_array)
        .map(|ls| ls.iter().map(blob).sum())
        .unwrap_or(0);
    info.size + m.get("config").map(blob).unwrap_or(0) + layers
}

/// With `--archive none`: atomic-reactor's (OSBS 2) placeholder archive, a `.tar.gz` holding
/// one `README` that names the image's pull spec, so the Koji build still records a
/// `docker-image` archive (and its RPM components). Returns the archive fields.
fn write_placeholder(path: &Path, name: &str, pull: &str) -> std::io::Result<Struct> {
    let text = format!(
        "Archive is just a placeholder for the koji archive, if you need the content you can use pullspec of the built image: {pull}\n"
    );
    let mut tar = Vec::new();
    {
        let mut b = tar::Builder::new(&mut tar);
        let mut h = tar::Header::new_gnu();
        h.set_size(text.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(now() as u64);
        h.set_cksum();
        b.append_data(&mut h, "README", text.as_bytes())?;
        b.finish()?;
    }
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let stats = archive::gzip_parallel(&tar[..], file, 1, ARCHIVE_LEVEL)?;
    Ok(Struct::new()
        .with("filename", name.to_owned())
        .with("filesize", stats.size as i64)
        .with("checksum", stats.md5)
        .with("checksum_type", 0)
        .with("sha256", stats.sha256)
        .with("placeholder", true))
}

/// Most drift lines a platform adds to the task result's `user_warnings`.
const MAX_DRIFT_WARNINGS: usize = 20;

/// Reads the built image's docker-archive once (`rpmdb::image`): writes
/// `<arch>-rpm-manifest.json` (the per-layer report, `plugin-spec/rpm-manifest.md`) as task
/// output and returns the result members `components`, `rpm_report`, `package_count` and, when
/// layers changed RPM-owned files behind rpm's back, `user_warnings` (one line per layer and
/// path, capped); and the archive's config and layer sizes.
async fn rpm_manifest(
    ctx: &TaskContext,
    image_file: &Path,
    arch: &str,
    log: &TaskLog,
) -> Result<(Vec<(String, Value)>, ArchivedImage), Fault> {
    let started = std::time::Instant::now();
    let path = image_file.to_path_buf();
    let (report, archived) = tokio::task::spawn_blocking(move || {
        let spec = format!("docker-archive:{}", path.display());
        let src =
            crate::rpmdb::image::open_source(&spec, &crate::rpmdb::image::SourceOptions::default())
                .map_err(|e| format!("cannot read the image archive: {e}"))?;
        let archived = ArchivedImage::of(&src)?;
        let report = src
            .report(true)
            .map_err(|e| format!("cannot read the image's RPM database: {e}"))?;
        Ok::<_, String>((report, archived))
    })
    .await
    .map_err(|e| unknown(format!("RPM manifest crashed: {e}")))?
    .map_err(|e| container_error(format!("Image build failed. {e}")))?;
    let name = format!("{arch}-rpm-manifest.json");
    let file = ctx.workdir().join(&name);
    std::fs::write(&file, report.to_json())
        .map_err(|e| unknown(format!("cannot write {name}: {e}")))?;
    ctx.upload_file(&file, &name).await?;
    let layers = report.layers.as_deref().unwrap_or_default();
    let mut warnings = Vec::new();
    let mut drift_total = 0;
    for l in layers {
        for d in &l.drift {
            drift_total += 1;
            if warnings.len() < MAX_DRIFT_WARNINGS {
                let what = match d.change {
                    crate::rpmdb::report::DriftChange::Added => "re-added",
                    crate::rpmdb::report::DriftChange::Modified => "modified",
                    crate::rpmdb::report::DriftChange::Deleted => "deleted",
                };
                let content = match d.digest_mismatch {
                    Some(true) => ", content differs from the package",
                    _ => "",
                };
                warnings.push(format!(
                    "{arch}: layer {} ({}) {what} {} owned by {} without rpm{content}",
                    l.index + 1,
                    l.created_by
                        .as_deref()
                        .map(short_command)
                        .unwrap_or("no history"),
                    d.path,
                    d.package
                ));
            }
        }
    }
    if drift_total > warnings.len() {
        warnings.push(format!(
            "{arch}: {} more changes to RPM-owned files, see {name}",
            drift_total - warnings.len()
        ));
    }
    log.line(&format!(
        "RPM manifest: {} packages, {} layers, {drift_total} drift entries in {:.2} s",
        report.package_count,
        layers.len(),
        started.elapsed().as_secs_f64()
    ))
    .map_err(log_io("the arch log"))?;
    let components = serde_json::to_value(&report.components)
        .map(|j| crate::xmlrpc::value::json_to_value(&j))
        .unwrap_or(Value::Array(Vec::new()));
    let mut out = vec![
        ("components".to_owned(), components),
        ("rpm_report".to_owned(), Value::str(name)),
        (
            "package_count".to_owned(),
            Value::Int(report.package_count as i64),
        ),
    ];
    if !warnings.is_empty() {
        out.push((
            "user_warnings".to_owned(),
            Value::Array(warnings.into_iter().map(Value::from).collect()),
        ));
    }
    Ok((out, archived))
}

/// A layer's `created_by`, shortened for one line: buildah's `/bin/sh -c #(nop) ` prefix
/// dropped, at most 60 characters.
fn short_command(created_by: &str) -> &str {
    let c = created_by
        .trim_start_matches("/bin/sh -c ")
        .trim_start_matches("#(nop) ")
        .trim();
    match c.char_indices().nth(60) {
        Some((i, _)) => &c[..i],
        None => c,
    }
}

/// The final stage's base image as the build used it, for `extra.docker.parent_id`.
struct BaseImage {
    /// The reference the built Dockerfile names (the `koji_parent_build` pull spec when set).
    reference: String,
    info: ImageInfo,
}

/// Inspects the final stage's base image (following `FROM <earlier stage>`) in the builder's
/// storage, where the build just pulled or found it. `None` for `FROM scratch`, and when buildah
/// cannot inspect it: the image is built, only `parent_id` will be missing, so that is logged
/// rather than failing the build. The storage, not the registry, because with `--pull=missing`
/// it holds what the image was really built on, which the registry's tag may no longer name.
async fn base_image_info(
    ctx: &TaskContext,
    buildah: &Buildah,
    dockerfile_text: &str,
    log: &TaskLog,
) -> Result<Option<BaseImage>, Fault> {
    let reference = Dockerfile::parse(dockerfile_text)?.base_image()?;
    if reference.eq_ignore_ascii_case("scratch") {
        return Ok(None);
    }
    match buildah.inspect(&reference).await {
        Ok(info) => Ok(Some(BaseImage { reference, info })),
        Err(e) => {
            tracing::warn!(task_id = ctx.task_id(), base = %reference, error = %e, "cannot inspect the base image");
            log.line(&format!(
                "cannot inspect the base image {reference}, so parent_id stays unset: {}",
                e.reason()
            ))
            .map_err(log_io("the arch log"))?;
            Ok(None)
        }
    }
}

/// The result members the parent turns into the output's `extra.docker.config`,
/// `layer_sizes` and `parent_id`. `parent_id` (the base's config digest) is only given when the
/// base image's layers are this image's first layers: a name another build on this host re-pointed
/// (say, to another arch's image) between our build and the inspect then leaves `parent_id` out,
/// with a log line, instead of naming an image this one was not built on.
fn docker_members(
    task_id: i64,
    archived: &ArchivedImage,
    base: Option<&BaseImage>,
    log: &TaskLog,
) -> Result<Vec<(String, Value)>, Fault> {
    let layer_sizes = serde_json::to_value(&archived.layer_sizes)
        .map_err(|e| unknown(format!("cannot encode the layer sizes: {e}")))?;
    let mut out = vec![
        (
            "config".to_owned(),
            crate::xmlrpc::value::json_to_value(&archived.config_json),
        ),
        (
            "layer_sizes".to_owned(),
            crate::xmlrpc::value::json_to_value(&layer_sizes),
        ),
    ];
    let Some(b) = base else {
        return Ok(out);
    };
    let built: Vec<&str> = archived
        .layer_sizes
        .iter()
        .map(|l| l.diff_id.as_str())
        .collect();
    let inherited: Vec<&str> = b.info.diff_ids.iter().map(Digest::as_str).collect();
    let line = if built.starts_with(&inherited) {
        out.push((
            "parent_id".to_owned(),
            Value::str(b.info.config_digest.as_str()),
        ));
        format!("base image {}: {}", b.reference, b.info.config_digest)
    } else {
        tracing::warn!(
            task_id,
            base = %b.reference,
            config = %b.info.config_digest,
            "the base image in storage is not the one this image was built on"
        );
        format!(
            "base image {} in storage is now {} ({}), whose layers are not this image's first layers, so parent_id stays unset",
            b.reference, b.info.config_digest, b.info.architecture
        )
    };
    log.line(&line).map_err(log_io("the arch log"))?;
    Ok(out)
}

/// The image as its docker-archive holds it.
#[derive(Debug, Clone, PartialEq)]
struct ArchivedImage {
    /// The config blob, byte for byte (its sha256 is the image id).
    config: Vec<u8>,
    config_json: serde_json::Value,
    /// Oldest layer first: the config's diff_id and the size of the layer's tar member.
    layer_sizes: Vec<crate::cg::LayerSize>,
}

impl ArchivedImage {
    /// atomic-reactor's `get_uncompressed_image_layer_sizes`: a layer's size is its
    /// docker-archive member's size, i.e. the uncompressed layer tar, paired in order with the
    /// config's `rootfs.diff_ids`. Blocking (reads the config of an OCI layout).
    fn of(src: &crate::rpmdb::image::ImageSource) -> Result<ArchivedImage, String> {
        let config = src
            .config()
            .map_err(|e| format!("cannot read the image config: {e}"))?;
        let config_json: serde_json::Value = serde_json::from_slice(&config)
            .map_err(|e| format!("the image config is not JSON: {e}"))?;
        let layers = src
            .layers()
            .map_err(|e| format!("cannot list the image layers: {e}"))?;
        let layer_sizes = layers
            .iter()
            .enumerate()
            .map(|(i, l)| match (&l.diff_id, l.tar_size) {
                (Some(diff_id), Some(size)) => Ok(crate::cg::LayerSize {
                    diff_id: diff_id.clone(),
                    size,
                }),
                (None, _) => Err(format!("layer {i} has no diff_id in the image config")),
                (_, None) => Err(format!(
                    "layer {i} is not stored as a tar, so its uncompressed size is unknown"
                )),
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(ArchivedImage {
            config,
            config_json,
            layer_sizes,
        })
    }
}

/// The build host's RPMs as Koji buildroot components (atomic-reactor lists the build host's
/// `rpm -qa`), read from the rpmdb under `root` as image rpmdbs are, gpg-pubkey dropped. A host
/// without one (a Debian builder) has none: Koji's component types (rpm, file, kojifile) have no
/// place for Debian packages. An rpmdb that cannot be read is logged and also gives an empty
/// list: the buildroot record is informational and the image is fine.
async fn host_components_of(ctx: &TaskContext, root: &Path, log: &TaskLog) -> Value {
    let root = root.to_path_buf();
    let read = tokio::task::spawn_blocking(move || host_components(&root)).await;
    let why = match read {
        Ok(Ok(components)) => match serde_json::to_value(&components) {
            Ok(j) => return crate::xmlrpc::value::json_to_value(&j),
            Err(e) => e.to_string(),
        },
        Ok(Err(e)) => e.to_string(),
        Err(e) => format!("crashed: {e}"),
    };
    tracing::warn!(task_id = ctx.task_id(), error = %why, "cannot read the build host's rpmdb");
    write_line(
        log,
        &format!("cannot read the build host's RPM database, its buildroot lists no RPMs: {why}"),
    );
    Value::Array(Vec::new())
}

/// [`host_components_of`]'s reading: none when `root` has no rpmdb.
fn host_components(root: &Path) -> Result<Vec<crate::rpmdb::Component>, crate::rpmdb::RpmdbError> {
    match crate::rpmdb::open(root, crate::rpmdb::Detail::Packages) {
        Ok(packages) => Ok(crate::rpmdb::components(&packages)),
        Err(crate::rpmdb::RpmdbError::NotFound { .. }) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// `docker-image-<config digest hex>.<arch>.tar.gz`: `buildah push docker-archive:` into a FIFO
/// that [`archive::gzip_parallel`] reads, so the uncompressed tar never lands on disk. Returns
/// the file (uploaded by the caller) and Koji archive fields (filename, filesize, checksum).
#[allow(clippy::too_many_arguments)]
async fn write_archive(
    ctx: &TaskContext,
    buildah: &Buildah,
    local: &str,
    image_id: &Digest,
    arch: &str,
    b: &ChildBuild,
    cancel: &CancellationToken,
    log: &TaskLog,
) -> Result<(PathBuf, Struct), Fault> {
    let name = format!("docker-image-{}.{arch}.tar.gz", image_id.hex());
    let out_path = ctx.workdir().join(&name);
    let fifo = ctx.workdir().join(format!("image-{arch}.tar.fifo"));
    make_fifo(&fifo).map_err(|e| unknown(format!("cannot create {}: {e}", fifo.display())))?;
    let started = std::time::Instant::now();
    let compress = {
        let fifo = fifo.clone();
        let out_path = out_path.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<archive::ArchiveStats> {
            let input = std::fs::File::open(&fifo)?;
            let output =
                std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&out_path)?);
            archive::gzip_parallel(input, output, archive::default_threads(), ARCHIVE_LEVEL)
        })
    };
    let dest = format!(
        "docker-archive:{}:{}:{}",
        fifo.display(),
        b.repository,
        registry::arch_tag(&b.unique_tag, arch)
    );
    let pushed = buildah
        .push(local, &dest, &PushOptions::default(), cancel, |l| {
            write_line(log, l)
        })
        .await;
    // A push that failed before opening the FIFO leaves the reader waiting for a writer:
    // open and close the write side once (non-blocking: fails harmlessly if nobody reads).
    release_fifo(&fifo);
    let stats = compress
        .await
        .map_err(|e| unknown(format!("archive compression crashed: {e}")))?;
    let _ = std::fs::remove_file(&fifo);
    if let Err(e) = pushed {
        return Err(container_error(format!(
            "Image build failed. cannot write the image archive: {}",
            e.reason()
        )));
    }
    let stats = stats.map_err(|e| unknown(format!("cannot write {name}: {e}")))?;
    log.line(&format!(
        "wrote {name}: {} bytes from a {} byte tar in {:.1} s",
        stats.size,
        stats.uncompressed,
        started.elapsed().as_secs_f64()
    ))
    .map_err(log_io("the arch log"))?;
    Ok((
        out_path,
        Struct::new()
            .with("filename", name)
            .with("filesize", stats.size as i64)
            .with("checksum", stats.md5)
            .with("checksum_type", 0)
            .with("sha256", stats.sha256),
    ))
}

fn make_fifo(path: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt as _;
    let _ = std::fs::remove_file(path);
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("path holds a NUL byte"))?;
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn release_fifo(path: &Path) {
    use std::os::unix::fs::OpenOptionsExt as _;
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path);
}

/// atomic-reactor's yum repo file name: the URL's base name (`.repo` added when missing) with
/// `-<first 5 hex of sha256(url)>` before the extension, so two URLs never share a file.
fn repo_file_name(url: &str) -> Result<String, Fault> {
    let bad = |why: &str| build_error(format!("Invalid yum repo URL {url:?}: {why}"));
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| bad("only http:// and https:// URLs can be fetched"))?;
    let path = rest.split_once('/').map_or("", |(_, p)| p);
    let path = path.split(['?', '#']).next().unwrap_or("");
    let path = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .map_err(|_| bad("the path is not UTF-8"))?;
    let base = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    if base.is_empty() || base == "." || base == ".." {
        return Err(bad("the URL names no file"));
    }
    if !base
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+'))
    {
        return Err(bad(
            "the file name may hold only letters, digits, '.', '_', '-', '+'",
        ));
    }
    let base = if base.ends_with(".repo") {
        base.to_string()
    } else {
        format!("{base}.repo")
    };
    use sha2::Digest as _;
    let h = sha2::Sha256::digest(url.as_bytes());
    let suffix = format!("{:02x}{:02x}{:02x}", h[0], h[1], h[2]);
    let stem = base.strip_suffix(".repo").unwrap_or(&base);
    Ok(format!("{stem}-{}.repo", &suffix[..5]))
}

/// Fetches each repo file into `<workdir>/yum.repos.d/` and returns the bind mounts
/// (`/etc/yum.repos.d/<name>`, read-only) for the build's RUN steps.
async fn fetch_repos(
    ctx: &TaskContext,
    urls: &[String],
    log: &TaskLog,
) -> Result<Vec<(PathBuf, String)>, Fault> {
    if urls.is_empty() {
        return Ok(Vec::new());
    }
    let dir = ctx.workdir().join("yum.repos.d");
    std::fs::create_dir_all(&dir)
        .map_err(|e| unknown(format!("cannot create {}: {e}", dir.display())))?;
    let http = reqwest::Client::builder()
        .timeout(REPO_FETCH_TIMEOUT)
        .build()
        .map_err(|e| unknown(format!("cannot make an HTTP client: {e}")))?;
    let mut mounts = Vec::new();
    for url in urls {
        let name = repo_file_name(url)?;
        let failed = |why: String| {
            container_error(format!(
                "Image build failed. cannot fetch yum repo {url}: {why}"
            ))
        };
        let mut resp = http
            .get(url)
            .send()
            .await
            .map_err(|e| failed(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(failed(format!("HTTP {}", resp.status())));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| failed(e.to_string()))? {
            if body.len() + chunk.len() > MAX_REPO_FILE {
                return Err(failed(format!("larger than {MAX_REPO_FILE} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        let path = dir.join(&name);
        std::fs::write(&path, &body)
            .map_err(|e| unknown(format!("cannot write {}: {e}", path.display())))?;
        log.line(&format!("yum repo {url} -> /etc/yum.repos.d/{name}"))
            .map_err(log_io("the arch log"))?;
        mounts.push((path, format!("/etc/yum.repos.d/{name}")));
    }
    Ok(mounts)
}

fn write_line(log: &TaskLog, line: &str) {
    let mut b = Vec::with_capacity(line.len() + 1);
    b.extend_from_slice(line.as_bytes());
    b.push(b'\n');
    let _ = log.write(&b);
}

/// `opts` may come as a keyword argument (`handler(src, target, opts=...)`).
fn merge_opts_kwarg(mut params: Vec<Value>, kwargs: Struct) -> Result<Vec<Value>, Fault> {
    let mut rest = kwargs;
    if let Some(o) = rest.get("opts").cloned() {
        if params.len() >= 3 {
            return Err(Fault::parameter(
                "handler() got multiple values for argument 'opts'",
            ));
        }
        while params.len() < 2 {
            params.push(Value::Nil);
        }
        params.push(o);
        rest = rest.into_iter().filter(|(k, _)| k != "opts").collect();
    }
    if let Some(k) = rest.keys().next() {
        return Err(Fault::parameter(format!(
            "handler() got an unexpected keyword argument '{k}'"
        )));
    }
    Ok(params)
}

/// koji-containerbuild `check_whitelist`: the component must be listed in the destination tag
/// and not blocked.
async fn check_package_allowed(
    ctx: &TaskContext,
    dest_tag: &str,
    component: &str,
) -> Result<(), Fault> {
    let cfg = ctx
        .session()
        .call(
            "getPackageConfig",
            vec![Value::str(dest_tag), Value::str(component)],
        )
        .await?;
    match cfg.as_struct() {
        None => Err(build_error(format!(
            "package (container) {component} not in list for tag {dest_tag}"
        ))),
        Some(s) if s.get("blocked").is_some_and(Value::truthy) => Err(build_error(format!(
            "package (container)  {component} is blocked for tag {dest_tag}"
        ))),
        Some(_) => Ok(()),
    }
}

/// The id of a build with this NVR in a state that keeps the NVR taken.
async fn nvr_taken(ctx: &TaskContext, nvr: &str) -> Result<Option<i64>, Fault> {
    let b = ctx
        .session()
        .call("getBuild", vec![Value::str(nvr)])
        .await?;
    Ok(b.as_struct().and_then(|s| {
        let reusable = s
            .get("state")
            .and_then(Value::as_int)
            .is_some_and(|st| REUSABLE_STATES.contains(&st));
        (!reusable).then(|| s.get("id").and_then(Value::as_int).unwrap_or(0))
    }))
}

/// Why `release` cannot be used: a Koji build with the NVR that is not FAILED/CANCELED
/// (koji-containerbuild's text), or the `{version}-{release}` tag already in the registry.
async fn release_taken(
    ctx: &TaskContext,
    client: &registry::RegistryClient,
    repo: &str,
    il: &dockerfile::ImageLabels,
    release: &str,
) -> Result<Option<String>, Fault> {
    let nvr = il.nvr_with(release);
    if let Some(id) = nvr_taken(ctx, &nvr).await? {
        return Ok(Some(format!("Build for {nvr} already exists, id {id}")));
    }
    let tag = format!("{}-{release}", il.version);
    let found = client.manifest_head(repo, &tag).await.map_err(|e| {
        container_error(format!(
            "Image build failed. cannot look up {repo}:{tag}: {e}"
        ))
    })?;
    Ok(found.map(|m| {
        format!(
            "Build for {nvr} already exists: the registry has {repo}:{tag} ({})",
            m.digest
        )
    }))
}

/// The next free release: Koji's `getNextRelease`, patched as atomic-reactor does, bumped
/// while [`release_taken`].
async fn next_release(
    ctx: &TaskContext,
    client: &registry::RegistryClient,
    repo: &str,
    il: &dockerfile::ImageLabels,
) -> Result<String, Fault> {
    let info = Struct::new()
        .with("name", il.component.clone())
        .with("version", il.version.clone());
    let mut release = match ctx
        .session()
        .call("getNextRelease", vec![Value::from(info)])
        .await
    {
        Ok(v) => match v.as_str() {
            Some(r) => dockerfile::patched_release(r, false)?,
            None => "1".to_string(),
        },
        Err(_) => "1".to_string(),
    };
    for _ in 0..1000 {
        if release_taken(ctx, client, repo, il, &release)
            .await?
            .is_none()
        {
            return Ok(release);
        }
        release = dockerfile::patched_release(&release, true)?;
    }
    Err(build_error(format!(
        "Unable to find a free release after {release}"
    )))
}

/// atomic-reactor `inject_parent_image`: the parent build's pull specs (build
/// `extra.image.index.pull`, else an archive's `extra.docker.repositories`), preferring one by
/// digest.
async fn parent_pull_spec(ctx: &TaskContext, parent: &str) -> Result<String, Fault> {
    let key = match parent.parse::<i64>() {
        Ok(id) => Value::Int(id),
        Err(_) => Value::str(parent),
    };
    let b = ctx.session().call("getBuild", vec![key]).await?;
    let Some(b) = b.as_struct() else {
        return Err(container_error(format!(
            "Image build failed. Koji build, {parent}, not found"
        )));
    };
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .unwrap_or_default()
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    };
    let dig = |s: &Struct, path: &[&str]| -> Vec<String> {
        let mut cur = s.get(path[0]);
        for k in &path[1..] {
            cur = cur.and_then(Value::as_struct).and_then(|s| s.get(k));
        }
        strings(cur)
    };
    let mut repos = dig(b, &["extra", "image", "index", "pull"]);
    if repos.is_empty()
        && let Some(id) = b.get("id").and_then(Value::as_int)
    {
        let archives = ctx
            .session()
            .call("listArchives", vec![Value::Int(id)])
            .await?;
        for a in archives.as_array().unwrap_or_default() {
            if let Some(a) = a.as_struct() {
                repos = dig(a, &["extra", "docker", "repositories"]);
                if !repos.is_empty() {
                    break;
                }
            }
        }
    }
    let nvr = b.get("nvr").and_then(Value::as_str).unwrap_or(parent);
    let pick = repos
        .iter()
        .find(|r| r.contains('@'))
        .or(repos.first())
        .cloned();
    pick.ok_or_else(|| {
        container_error(format!(
            "Image build failed. A suitable archive for Koji build {nvr} was not found"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opts_may_come_as_a_keyword() {
        let kw = Struct::new().with("opts", Struct::new().with("git_branch", "main"));
        let p =
            merge_opts_kwarg(vec![Value::str("git://h/r#1"), Value::str("t")], kw).expect("merged");
        assert_eq!(p.len(), 3);
        let bad = Struct::new().with("x", 1);
        assert_eq!(merge_opts_kwarg(vec![], bad).unwrap_err().code, 1019);
    }

    #[test]
    fn placeholder_archive_names_the_pull_spec() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("docker-image-ab.x86_64.tar.gz");
        let a = write_placeholder(&p, "docker-image-ab.x86_64.tar.gz", "r/x@sha256:00")
            .expect("placeholder");
        assert_eq!(
            a.get("filesize").and_then(Value::as_int),
            std::fs::metadata(&p).ok().map(|m| m.len() as i64)
        );
        let gz = std::fs::read(&p).expect("read");
        let mut tar = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(&gz[..]), &mut tar)
            .expect("gunzip");
        let mut ar = tar::Archive::new(&tar[..]);
        let mut e = ar
            .entries()
            .expect("entries")
            .next()
            .expect("one")
            .expect("entry");
        assert_eq!(e.path().expect("path").to_string_lossy(), "README");
        let mut text = String::new();
        std::io::Read::read_to_string(&mut e, &mut text).expect("text");
        assert!(
            text.contains("pullspec of the built image: r/x@sha256:00"),
            "{text}"
        );
    }

    #[test]
    fn repo_file_names_follow_atomic_reactor() {
        let a = repo_file_name("http://example.com/repos/fedora.repo").expect("name");
        let b = repo_file_name("http://example.com/other/fedora.repo").expect("name");
        assert!(a.starts_with("fedora-") && a.ends_with(".repo"), "{a}");
        assert_eq!(a.len(), "fedora-12345.repo".len());
        assert_ne!(a, b);
        let c = repo_file_name("https://example.com/x/updates?arch=x86_64").expect("name");
        assert!(c.starts_with("updates-") && c.ends_with(".repo"), "{c}");
        for bad in [
            "ftp://example.com/a.repo",
            "http://example.com/",
            "http://example.com/a/..",
            "http://example.com/a%00b.repo",
            "http://example.com/x/%2E%2E",
            "file:///etc/passwd",
        ] {
            assert_eq!(repo_file_name(bad).unwrap_err().code, 1005, "{bad}");
        }
    }

    /// A docker-archive as buildah writes one: layers `<diff_id hex>.tar`, the config
    /// `<config digest hex>.json`, `manifest.json`; `extra` members go in too.
    fn docker_archive(layers: &[&[u8]], extra: &[(&str, &[u8])]) -> (Vec<u8>, Vec<u8>) {
        let diff_ids: Vec<String> = layers
            .iter()
            .map(|l| Digest::sha256_of(l).as_str().to_owned())
            .collect();
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "container_config": {"Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .expect("config");
        let config_name = format!("{}.json", Digest::sha256_of(&config).hex());
        let names: Vec<String> = diff_ids
            .iter()
            .map(|d| format!("{}.tar", d.trim_start_matches("sha256:")))
            .collect();
        let manifest = serde_json::to_vec(&serde_json::json!([
            {"Config": config_name, "RepoTags": ["x:1"], "Layers": names}
        ]))
        .expect("manifest");
        let mut tar = tar::Builder::new(Vec::new());
        let mut add = |name: &str, data: &[u8]| {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o444);
            h.set_cksum();
            tar.append_data(&mut h, name, data).expect("append");
        };
        for (n, l) in names.iter().zip(layers) {
            add(n, l);
        }
        add(&config_name, &config);
        for (n, d) in extra {
            add(n, d);
        }
        add("manifest.json", &manifest);
        (tar.into_inner().expect("tar"), config)
    }

    #[test]
    fn image_archive_gives_uncompressed_layer_sizes_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let big = vec![7u8; 3 * 512 + 10];
        let (tar, config) = docker_archive(&[&big, b"second layer"], &[]);
        let plain = dir.path().join("image.tar");
        std::fs::write(&plain, &tar).expect("write");
        let gz = dir.path().join("image.tar.gz");
        archive::gzip_parallel(&tar[..], std::fs::File::create(&gz).expect("create"), 2, 1)
            .expect("gzip");
        let open = |p: &Path| {
            crate::rpmdb::image::open_source(
                &format!("docker-archive:{}", p.display()),
                &crate::rpmdb::image::SourceOptions::default(),
            )
        };
        for path in [&plain, &gz] {
            let a = ArchivedImage::of(&open(path).expect("open")).expect("read");
            assert_eq!(a.config, config);
            assert_eq!(a.config_json["architecture"], "amd64");
            let sizes: Vec<(String, u64)> = a
                .layer_sizes
                .iter()
                .map(|l| (l.diff_id.clone(), l.size))
                .collect();
            assert_eq!(
                sizes,
                [
                    (
                        Digest::sha256_of(&big).as_str().to_owned(),
                        big.len() as u64
                    ),
                    (Digest::sha256_of(b"second layer").as_str().to_owned(), 12),
                ],
                "{}",
                path.display()
            );
        }

        // Not a docker-archive.
        let (no_manifest, _) = docker_archive(&[b"l"], &[]);
        let mut ar = tar::Archive::new(&no_manifest[..]);
        let mut rebuilt = tar::Builder::new(Vec::new());
        for e in ar.entries().expect("entries") {
            let mut e = e.expect("entry");
            if e.path().expect("path").to_string_lossy() != "manifest.json" {
                let mut h = e.header().clone();
                let mut data = Vec::new();
                std::io::Read::read_to_end(&mut e, &mut data).expect("data");
                let name = e.path().expect("path").into_owned();
                rebuilt
                    .append_data(&mut h, name, &data[..])
                    .expect("append");
            }
        }
        let p = dir.path().join("nomanifest.tar");
        std::fs::write(&p, rebuilt.into_inner().expect("tar")).expect("write");
        assert!(
            open(&p)
                .unwrap_err()
                .to_string()
                .contains("no manifest.json")
        );
    }

    fn image_info(config: &str, diff_ids: &[&str]) -> ImageInfo {
        ImageInfo {
            id: Digest::parse(config).expect("digest"),
            config_digest: Digest::parse(config).expect("digest"),
            manifest_media_type: String::new(),
            labels: Default::default(),
            architecture: "amd64".into(),
            os: "linux".into(),
            diff_ids: diff_ids
                .iter()
                .map(|d| Digest::parse(d).expect("digest"))
                .collect(),
            base_name: None,
            base_digest: None,
        }
    }

    #[test]
    fn parent_id_only_for_the_base_the_layers_came_from() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = TaskLog::open(dir.path(), "x86_64.log").expect("log");
        let d = |c: char| format!("sha256:{}", c.to_string().repeat(64));
        let archived = ArchivedImage {
            config: b"{}".to_vec(),
            config_json: serde_json::json!({"os": "linux"}),
            layer_sizes: vec![
                crate::cg::LayerSize {
                    diff_id: d('1'),
                    size: 10,
                },
                crate::cg::LayerSize {
                    diff_id: d('2'),
                    size: 20,
                },
            ],
        };
        let members = |base: Option<&BaseImage>| -> Struct {
            docker_members(7, &archived, base, &log)
                .expect("members")
                .into_iter()
                .collect()
        };
        let scratch = members(None);
        assert!(scratch.get("parent_id").is_none());
        assert_eq!(
            scratch
                .get("config")
                .and_then(Value::as_struct)
                .and_then(|c| c.get("os"))
                .and_then(Value::as_str),
            Some("linux")
        );
        let sizes = crate::xmlrpc::value::value_to_json(scratch.get("layer_sizes").expect("sizes"));
        assert_eq!(
            sizes,
            serde_json::json!([{"diff_id": d('1'), "size": 10}, {"diff_id": d('2'), "size": 20}])
        );
        let base = BaseImage {
            reference: "r/base:1".into(),
            info: image_info(&d('b'), &[&d('1')]),
        };
        assert_eq!(
            members(Some(&base))
                .get("parent_id")
                .and_then(Value::as_str),
            Some(d('b').as_str())
        );
        // The name now points at an image whose layers this one does not start with.
        let other = BaseImage {
            reference: "r/base:1".into(),
            info: image_info(&d('c'), &[&d('9')]),
        };
        assert!(members(Some(&other)).get("parent_id").is_none());
        let text = std::fs::read_to_string(log.path()).expect("log text");
        assert!(text.contains("parent_id stays unset"), "{text}");
    }

    #[test]
    fn build_host_components_come_from_its_rpmdb_if_it_has_one() {
        let root = tempfile::tempdir().expect("tempdir");
        assert_eq!(host_components(root.path()).expect("no rpmdb"), []);
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/fixtures/rpmdb/cbl-mariner-2.0/rpmdb.sqlite");
        if !fixture.is_file() {
            eprintln!("skipping the rpmdb half: {} is absent", fixture.display());
            return;
        }
        let db = root.path().join("var/lib/rpm");
        std::fs::create_dir_all(&db).expect("mkdir");
        std::fs::copy(&fixture, db.join("rpmdb.sqlite")).expect("copy");
        let c = host_components(root.path()).expect("components");
        assert!(!c.is_empty());
        assert!(c.iter().all(|c| c.kind == "rpm" && c.name != "gpg-pubkey"));
    }

    #[test]
    fn child_build_round_trips() {
        let b = ChildBuild {
            commit: "abc".into(),
            release: "2".into(),
            build_date: "2026-01-01T00:00:00".into(),
            unique_tag: "t-12345-20260101000000".into(),
            repository: "foo".into(),
            buildtime_limit: 60,
            parent_image: Some("r/p@sha256:00".into()),
            yum_repourls: vec!["http://h/a.repo".into()],
        };
        assert_eq!(ChildBuild::from_value(&b.to_value()).expect("parse"), b);
        assert_eq!(
            ChildBuild::from_value(&Value::Int(1)).unwrap_err().code,
            1019
        );
        assert_eq!(platform_of("x86_64"), "linux/amd64");
        assert_eq!(platform_of("aarch64"), "linux/arm64/v8");
    }
}
