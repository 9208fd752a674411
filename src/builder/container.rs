//! The `buildContainer` task (koji-containerbuild's builder plugin), first slice: one arch (the
//! builder's own), built in the task itself without `createContainer` children.
//!
//! Steps: opts -> target -> build tag arches -> checkout (`checkout-for-labels.log`) -> commit
//! on `git_branch` -> Dockerfile labels -> release and NVR -> OSBS labels appended as one
//! `LABEL` line -> `buildah bud` streamed into `<arch>.log` -> push `<unique>-<arch>` -> tags by
//! re-tagging in the registry -> the plugin's result struct. The service's own steps go to
//! `osbs-build.log`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::handlers::{BoxFuture, TaskContext, TaskHandler};
use super::logs::TaskLog;
use crate::build::container_yaml::{self, BuildTag, ContainerYaml};
use crate::build::dockerfile::{self, AutoLabels, Dockerfile};
use crate::build::engine::{BudRequest, Buildah, BuildahConfig, PushOptions};
use crate::build::opts::{BuildKind, BuildOpts, build_error, container_error};
use crate::build::registry::{self, Registry};
use crate::build::source::{AllowedScms, Git, ScmUrl};
use crate::xmlrpc::{Fault, FaultCode, Struct, Value};

/// Default build time limit (seconds) when container.yaml sets none.
pub const DEFAULT_BUILDTIME_LIMIT: u64 = 3 * 3600;
/// Largest `buildtime_limit` container.yaml may ask for.
pub const MAX_BUILDTIME_LIMIT: u64 = 24 * 3600;

/// Koji build states that make an NVR reusable: FAILED, CANCELED.
const REUSABLE_STATES: [i64; 2] = [3, 4];

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
}

impl ContainerSettings {
    pub fn new(registry: Registry, buildah: BuildahConfig) -> ContainerSettings {
        ContainerSettings {
            registry,
            buildah,
            allowed_scms: AllowedScms::allow_all(),
            buildtime_default: DEFAULT_BUILDTIME_LIMIT,
            buildtime_max: MAX_BUILDTIME_LIMIT,
        }
    }
}

/// The `buildContainer` handler.
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

/// The arch this builder builds for (Koji's names).
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86" => "i686",
        "powerpc64" => "ppc64",
        a => a,
    }
}

async fn build(
    settings: &ContainerSettings,
    ctx: &TaskContext,
    params: Vec<Value>,
    kwargs: Struct,
) -> Result<Value, Fault> {
    let (params, kwargs) = merge_opts_kwarg(params, kwargs)?;
    let (src, target, opts) = BuildOpts::from_params(&params)?;
    let _ = kwargs;
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
    let dest = ctx.workdir().join("checkout");
    let cancel_flag = Arc::new(AtomicBool::new(false));
    let _raise = RaiseOnDrop(cancel_flag.clone());
    let branch = opts.git_branch.clone();
    let checkout = {
        let git = Git::new().cancel_flag(cancel_flag.clone());
        let mut file = checkout_log
            .try_clone_file()
            .map_err(|e| unknown(format!("cannot open checkout-for-labels.log: {e}")))?;
        let dest = dest.clone();
        tokio::task::spawn_blocking(move || -> Result<_, Fault> {
            let co = git.checkout(&scm, &dest, &mut file)?;
            git.verify_on_branch(&dest, &co.commit, &branch, &mut file)?;
            Ok(co)
        })
        .await
        .map_err(|e| unknown(format!("checkout crashed: {e}")))??
    };
    osbs.line(&format!("checked out commit {}", checkout.commit))
        .map_err(&io)?;

    // Dockerfile, container.yaml, arches.
    let df = Dockerfile::load(&checkout.source_dir)?;
    let labels = df.labels()?;
    let il = dockerfile::image_labels(&labels, opts.release.as_deref())?;
    let cy = ContainerYaml::load(&checkout.source_dir)?;
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
    let arch = host_arch();
    if !arches
        .arches
        .iter()
        .any(|a| container_yaml::canon_arch(a) == arch)
    {
        return Err(container_error(format!(
            "Image build failed. This builder builds only {arch}, the build needs {}",
            arches.arches.join(" ")
        )));
    }
    for a in arches.arches.iter().filter(|a| *a != arch) {
        let w = format!("arch {a} is not built yet: only single-arch builds are supported");
        osbs.line(&w).map_err(&io)?;
        user_warnings.push(w);
    }
    let limit = cy.buildtime_limit(settings.buildtime_default, settings.buildtime_max)?;

    // Release and NVR.
    let release = match &il.release {
        Some(r) => r.clone(),
        None if opts.kind() == BuildKind::Scratch => {
            dockerfile::scratch_release(dockerfile::random_digits(), now() as i64)
        }
        None => next_release(ctx, &il).await?,
    };
    let nvr = il.nvr_with(&release);
    osbs.line(&format!("NVR {nvr}")).map_err(&io)?;
    if opts.kind() != BuildKind::Scratch && nvr_taken(ctx, &nvr).await? {
        return Err(build_error(format!("Build already exists: {nvr}")));
    }

    // Tags and repository.
    let unique = dockerfile::new_unique_tag(Some(&target));
    let (yaml_tags, dropped) = cy.additional_tags();
    for l in &dropped {
        osbs.line(l).map_err(&io)?;
    }
    let yaml_tags = cy.tags_from_yaml().then_some(yaml_tags);
    let tags = dockerfile::tag_set(
        opts.kind(),
        &unique,
        &il.version,
        &release,
        yaml_tags.as_deref(),
    )?;
    let reg = &settings.registry;
    let repository = dockerfile::repository(&reg.host_port, None, &il.name)?;

    // The Dockerfile to build.
    let mut text = df.text().to_string();
    if let Some(parent) = opts.koji_parent_build.as_deref() {
        return Err(container_error(format!(
            "Image build failed. koji_parent_build ({parent}) is not supported yet"
        )));
    }
    if !opts.yum_repourls.is_empty() {
        return Err(container_error(
            "Image build failed. yum_repourls are not supported yet by this builder",
        ));
    }
    if let Some(env) = cy.set_release_env.as_deref() {
        text = dockerfile::add_release_env(&text, env, &release)?;
    }
    let build_date = dockerfile::build_date(now());
    let add = dockerfile::labels_to_add(
        &labels,
        &AutoLabels {
            release: &release,
            architecture: arch,
            build_date: &build_date,
            vcs_type: "git",
            vcs_ref: &checkout.commit,
        },
    );
    let text = dockerfile::add_labels(&text, &add);
    let df_path: PathBuf = ctx.workdir().join(format!("Dockerfile.{arch}"));
    std::fs::write(&df_path, &text)
        .map_err(|e| unknown(format!("cannot write {}: {e}", df_path.display())))?;

    // Build.
    let arch_log = ctx.log(arch)?;
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
    let cancel = CancellationToken::new();
    let _cancel_on_drop = cancel.clone().drop_guard();
    let local = format!("localhost/containerbuild-task-{}:{arch}", ctx.task_id());
    let mut req = BudRequest::new(&checkout.source_dir, &df_path, &local);
    req.tls_verify = reg.tls_verify();
    req.authfile = reg.authfile.as_deref();
    req.timeout = Some(Duration::from_secs(limit));
    osbs.line(&format!("building {nvr} for {arch}"))
        .map_err(&io)?;
    let on_line = |l: &str| write_line(&arch_log, l);
    let image_id = match buildah.bud(&req, &cancel, on_line).await {
        Ok(id) => id,
        Err(e) => {
            let _ = osbs.line(&format!("build failed: {}", e.reason()));
            write_line(&arch_log, &format!("Image build failed. {}", e.reason()));
            return Err(e.to_fault());
        }
    };
    osbs.line(&format!("built image {image_id}")).map_err(&io)?;

    // Push and tag.
    let name_path = repository
        .strip_prefix(&format!("{}/", reg.host_port))
        .unwrap_or(&il.name)
        .to_string();
    let arch_tag = registry::arch_tag(&unique, arch);
    let dest_ref = format!("{repository}:{arch_tag}");
    let push_opts = PushOptions {
        tls_verify: reg.tls_verify(),
        authfile: reg.authfile.as_deref(),
        timeout: Some(Duration::from_secs(limit)),
    };
    let digest = match buildah
        .push(&local, &dest_ref, &push_opts, &cancel, |l| {
            write_line(&arch_log, l)
        })
        .await
    {
        Ok(d) => d,
        Err(e) => {
            let _ = osbs.line(&format!("push failed: {}", e.reason()));
            return Err(e.to_fault());
        }
    };
    osbs.line(&format!("pushed {dest_ref} as {digest}"))
        .map_err(&io)?;
    let _ = buildah.rmi(&local).await;
    let client = reg
        .client()
        .map_err(|e| container_error(format!("Image build failed. {e}")))?;
    for t in tags.all() {
        let info = client
            .tag(&name_path, &arch_tag, t)
            .await
            .map_err(|e| container_error(format!("Image build failed. cannot tag {t}: {e}")))?;
        osbs.line(&format!("tagged {repository}:{t} ({})", info.digest))
            .map_err(&io)?;
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
    result.insert("koji_builds", Value::from(Vec::<Value>::new()));
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

fn write_line(log: &TaskLog, line: &str) {
    let mut b = Vec::with_capacity(line.len() + 1);
    b.extend_from_slice(line.as_bytes());
    b.push(b'\n');
    let _ = log.write(&b);
}

/// `opts` may come as a keyword argument (`handler(src, target, opts=...)`).
fn merge_opts_kwarg(
    mut params: Vec<Value>,
    mut kwargs: Struct,
) -> Result<(Vec<Value>, Struct), Fault> {
    if let Some(o) = kwargs.get("opts").cloned() {
        if params.len() >= 3 {
            return Err(Fault::parameter(
                "handler() got multiple values for argument 'opts'",
            ));
        }
        while params.len() < 2 {
            params.push(Value::Nil);
        }
        params.push(o);
        kwargs = kwargs.into_iter().filter(|(k, _)| k != "opts").collect();
    }
    if let Some(k) = kwargs.keys().next() {
        return Err(Fault::parameter(format!(
            "handler() got an unexpected keyword argument '{k}'"
        )));
    }
    Ok((params, kwargs))
}

/// Whether a build with this NVR exists in a state that keeps the NVR taken.
async fn nvr_taken(ctx: &TaskContext, nvr: &str) -> Result<bool, Fault> {
    let b = ctx
        .session()
        .call("getBuild", vec![Value::str(nvr)])
        .await?;
    Ok(match b.as_struct() {
        None => false,
        Some(s) => !s
            .get("state")
            .and_then(Value::as_int)
            .is_some_and(|st| REUSABLE_STATES.contains(&st)),
    })
}

/// The next free release: Koji's `getNextRelease`, patched as atomic-reactor does, bumped
/// while the NVR is taken.
async fn next_release(ctx: &TaskContext, il: &dockerfile::ImageLabels) -> Result<String, Fault> {
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
        if !nvr_taken(ctx, &il.nvr_with(&release)).await? {
            return Ok(release);
        }
        release = dockerfile::patched_release(&release, true)?;
    }
    Err(build_error(format!(
        "Unable to find a free release after {release}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opts_may_come_as_a_keyword() {
        let kw = Struct::new().with("opts", Struct::new().with("git_branch", "main"));
        let (p, k) =
            merge_opts_kwarg(vec![Value::str("git://h/r#1"), Value::str("t")], kw).expect("merged");
        assert_eq!(p.len(), 3);
        assert!(k.keys().next().is_none());
        let bad = Struct::new().with("x", 1);
        assert_eq!(merge_opts_kwarg(vec![], bad).unwrap_err().code, 1019);
    }
}
