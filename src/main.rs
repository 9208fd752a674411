//! `containerbuild`: thin commands over the library (`ops` style): serve the hub (with embedded
//! builders), run a builder, manage users, print an image's RPM manifest.

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use containerbuild::builder::container::{
    ArchiveMode, BuildContainerHandler, ContainerSettings, CreateContainerHandler,
};
use containerbuild::builder::daemon::{self, DaemonConfig};
use containerbuild::builder::handlers::{Registry, SleepHandler};
use containerbuild::hub::{Config, Hub};
use containerbuild::store::{Store, provision, users};

#[derive(Parser)]
#[command(
    name = "containerbuild",
    version,
    about = "Koji-compatible layered container image builds"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Container build settings of a builder; `buildContainer` is offered only with `--registry`.
#[derive(clap::Args, Debug, Clone, Default)]
struct ContainerArgs {
    /// Registry images are pushed to (HOST:PORT); enables the buildContainer task.
    #[arg(long)]
    registry: Option<String>,
    /// Talk to the registry over plain HTTP / without TLS verification.
    #[arg(long)]
    registry_insecure: bool,
    /// Auth file (containers-auth.json format) with the registry credentials.
    #[arg(long)]
    registry_authfile: Option<PathBuf>,
    /// buildah storage of this builder (default: <workdir>/buildah).
    #[arg(long)]
    buildah_root: Option<PathBuf>,
    /// How RUN steps are isolated: `chroot` (works as root without a runtime), `oci` or
    /// `rootless`.
    #[arg(long, default_value = "chroot")]
    isolation: String,
    /// OCI runtime for `--isolation oci` (runc, crun or a path).
    #[arg(long)]
    runtime: Option<String>,
    /// Image archive per arch: `docker-archive` (docker-image-*.tar.gz task output) or `none`.
    #[arg(long, default_value = "docker-archive")]
    archive: String,
    /// Seconds a build may take when container.yaml sets no `buildtime_limit`.
    #[arg(long, default_value_t = containerbuild::builder::container::DEFAULT_BUILDTIME_LIMIT)]
    buildtime_limit: u64,
    /// Largest `buildtime_limit` container.yaml may ask for, in seconds.
    #[arg(long, default_value_t = containerbuild::builder::container::MAX_BUILDTIME_LIMIT)]
    buildtime_max: u64,
    /// Sources builds may come from, kojid's `allowed_scms` syntax: space-separated
    /// `host:repository-glob[:use_common[:source_cmd]]` entries, `!` first to deny (default:
    /// every host and repository).
    #[arg(long)]
    allowed_scms: Option<String>,
}

/// The buildah storage root of a builder: `--buildah-root`, or its own below its work directory.
fn buildah_root(c: &ContainerArgs, workdir: &std::path::Path) -> PathBuf {
    c.buildah_root
        .clone()
        .unwrap_or_else(|| workdir.join("buildah"))
}

/// The buildah storage the daemon cleans of a killed run's leftovers at start (container
/// builders only).
fn buildah_storage(
    c: &ContainerArgs,
    workdir: &std::path::Path,
) -> Option<containerbuild::build::engine::BuildahConfig> {
    c.registry.as_ref().map(|_| {
        containerbuild::build::engine::BuildahConfig::with_state_dir(&buildah_root(c, workdir))
    })
}

/// The handlers of a builder with these settings.
fn handler_registry(c: &ContainerArgs, workdir: &std::path::Path) -> Result<Registry, String> {
    let Some(host_port) = c.registry.as_deref() else {
        if c.registry_insecure || c.registry_authfile.is_some() {
            return Err("--registry-insecure and --registry-authfile need --registry".into());
        }
        return Ok(Registry::default());
    };
    let reg = containerbuild::build::registry::Registry::new(
        host_port,
        c.registry_insecure,
        c.registry_authfile.clone(),
    )
    .map_err(|e| e.to_string())?;
    let root = buildah_root(c, workdir);
    let mut buildah = containerbuild::build::engine::BuildahConfig::with_state_dir(&root);
    buildah.isolation =
        containerbuild::build::engine::Isolation::parse(&c.isolation).ok_or_else(|| {
            format!(
                "--isolation must be chroot, oci or rootless, not {:?}",
                c.isolation
            )
        })?;
    if c.runtime.is_some() && buildah.isolation != containerbuild::build::engine::Isolation::Oci {
        return Err("--runtime needs --isolation oci".into());
    }
    buildah.runtime = c.runtime.clone();
    let mut settings = ContainerSettings::new(reg, buildah);
    if c.buildtime_limit == 0 || c.buildtime_limit > c.buildtime_max {
        return Err(format!(
            "--buildtime-limit must be between 1 and --buildtime-max ({})",
            c.buildtime_max
        ));
    }
    settings.buildtime_default = c.buildtime_limit;
    settings.buildtime_max = c.buildtime_max;
    if let Some(a) = &c.allowed_scms {
        settings.allowed_scms = containerbuild::build::source::AllowedScms::parse(a);
    }
    settings.archive = ArchiveMode::parse(&c.archive).ok_or_else(|| {
        format!(
            "--archive must be docker-archive or none, not {:?}",
            c.archive
        )
    })?;
    Ok(Registry::new(vec![
        std::sync::Arc::new(SleepHandler),
        std::sync::Arc::new(BuildContainerHandler::new(settings.clone())),
        std::sync::Arc::new(CreateContainerHandler::new(settings)),
    ]))
}

#[derive(Subcommand)]
enum Command {
    /// Run the hub: XML-RPC at /kojihub, files at /kojifiles/, pages at /koji/.
    Serve {
        /// Directory for the database and the Koji topdir (created if missing).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Address to listen on, e.g. 127.0.0.1:8480.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// TOML file with the same settings; command-line flags win.
        #[arg(long)]
        config: Option<PathBuf>,
        /// PEM certificate chain of the hub: with --tls-key, --listen serves HTTPS.
        #[arg(long)]
        tls_cert: Option<PathBuf>,
        /// PEM private key of --tls-cert.
        #[arg(long)]
        tls_key: Option<PathBuf>,
        /// PEM CA that client certificates must chain to; enables `sslLogin` (koji's
        /// `authtype = ssl`). Certificates stay optional for every other call.
        #[arg(long)]
        client_ca: Option<PathBuf>,
        /// Builders to run in this process (hosts `<hostname>-builder<i>`, provisioned at start,
        /// talking to this hub over HTTP); 0 runs the hub only.
        #[arg(long, default_value_t = 1)]
        builders: usize,
        /// Container build settings of the embedded builders (each gets its own buildah storage
        /// below its work directory unless `--buildah-root` is given).
        #[command(flatten)]
        container: ContainerArgs,
    },
    /// Run a builder: take tasks from a Koji hub and run them (kojid's job).
    Builder {
        /// The hub's XML-RPC URL, e.g. http://hub.example.com/kojihub.
        #[arg(long)]
        hub: String,
        /// The host's user name (the host name in `koji list-hosts`).
        #[arg(long)]
        user: String,
        /// File whose first line is the host's password (not needed with --cert).
        #[arg(long, required_unless_present = "cert")]
        password_file: Option<PathBuf>,
        /// PEM file with the host's client certificate and its key (koji's `cert`): log in with
        /// `sslLogin`; the certificate's CN must be the host's user name.
        #[arg(long)]
        cert: Option<PathBuf>,
        /// PEM CA certificates the hub's HTTPS certificate must chain to (koji's `serverca`).
        #[arg(long)]
        serverca: Option<PathBuf>,
        /// Most tasks to run at once.
        #[arg(long, default_value_t = 10)]
        maxjobs: usize,
        /// Directory for task work directories and unreported results
        /// (default: <tmp>/containerbuild-builder-<user>).
        #[arg(long)]
        workdir: Option<PathBuf>,
        /// Seconds between polls for tasks when the hub cannot long-poll.
        #[arg(long, default_value_t = 5.0)]
        poll_interval: f64,
        /// Take the host's exclusive session even if another session holds it.
        #[arg(long)]
        force_lock: bool,
        #[command(flatten)]
        container: ContainerArgs,
    },
    /// Manage users directly in the database (works while no hub runs, e.g. to bootstrap).
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// The RPMs of an image (atomic-reactor's component list) and, with --layers, what each
    /// layer changed: packages added, removed, upgraded, downgraded, and drift (RPM-owned paths
    /// changed without rpm). Contract: plugin-spec/rpm-manifest.md.
    RpmManifest {
        /// An OCI layout directory, a docker-archive (.tar, .tar.gz), docker://HOST/NAME:TAG
        /// (copied with skopeo), an rpmdb directory or an unpacked root filesystem.
        source: String,
        /// Report every layer (images only).
        #[arg(long)]
        layers: bool,
        /// Output format.
        #[arg(long, default_value = "json", value_parser = ["json", "text"])]
        format: String,
        /// Verify the registry's TLS certificate for docker:// sources (`--tls-verify=false`
        /// also allows plain HTTP).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1,
              default_missing_value = "true")]
        tls_verify: bool,
    },
}

#[derive(Subcommand)]
enum UserAction {
    /// Create a user with a password read from standard input.
    Add {
        name: String,
        #[arg(long)]
        data_dir: PathBuf,
        /// Read the password from standard input (first line).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Grant the admin permission.
        #[arg(long)]
        admin: bool,
    },
    /// Set a user's password from standard input.
    Passwd {
        name: String,
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

fn read_password() -> Result<String, String> {
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .map_err(|e| format!("cannot read password: {e}"))?;
    let pw = s.lines().next().unwrap_or("").to_string();
    if pw.is_empty() {
        return Err("empty password on standard input".into());
    }
    Ok(pw)
}

fn user_command(action: UserAction) -> Result<(), String> {
    match action {
        UserAction::Add {
            name,
            data_dir,
            admin,
            ..
        } => {
            let pw = read_password()?;
            let store = Store::open(&data_dir).map_err(|e| e.to_string())?;
            store
                .write(|tx| -> Result<(), containerbuild::store::StoreError> {
                    let id = users::create(
                        tx,
                        &name,
                        users::STATUS_NORMAL,
                        users::USERTYPE_NORMAL,
                        Some(&pw),
                        None,
                    )?;
                    if admin {
                        let perm = users::perm_id(tx, "admin")?.ok_or_else(|| {
                            containerbuild::store::StoreError::NotFound(
                                "no admin permission".into(),
                            )
                        })?;
                        users::grant(tx, id, perm)?;
                    }
                    Ok(())
                })
                .map_err(|e| e.to_string())?;
            println!("created user {name}{}", if admin { " (admin)" } else { "" });
            Ok(())
        }
        UserAction::Passwd { name, data_dir, .. } => {
            let pw = read_password()?;
            let store = Store::open(&data_dir).map_err(|e| e.to_string())?;
            store
                .write(|tx| -> Result<(), containerbuild::store::StoreError> {
                    let u = users::get(tx, &users::UserRef::Name(&name))?.ok_or_else(|| {
                        containerbuild::store::StoreError::NotFound(format!("No such user: {name}"))
                    })?;
                    users::set_password(tx, u.id, &pw)
                })
                .map_err(|e| e.to_string())?;
            println!("password set for {name}");
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// `serve`'s TLS flags.
struct TlsFlags {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    client_ca: Option<PathBuf>,
}

fn serve(
    data_dir: Option<PathBuf>,
    listen: Option<SocketAddr>,
    config: Option<PathBuf>,
    tls: TlsFlags,
    builders: usize,
    container: ContainerArgs,
) -> Result<(), String> {
    let mut cfg = match config {
        Some(p) => Config::from_file(&p).map_err(|e| e.to_string())?,
        None => Config::default(),
    };
    if let Some(d) = data_dir {
        cfg.data_dir = d;
    }
    if let Some(l) = listen {
        cfg.listen = l;
    }
    cfg.tls_cert = tls.cert.or(cfg.tls_cert);
    cfg.tls_key = tls.key.or(cfg.tls_key);
    cfg.client_ca = tls.client_ca.or(cfg.client_ca);
    // Checked before listening, so bad files fail the start with a clear message.
    let https = containerbuild::hub::tls::from_config(&cfg)
        .map_err(|e| e.to_string())?
        .is_some();
    let pinned = match (&cfg.tls_cert, https) {
        (Some(c), true) => {
            Some(containerbuild::hub::tls::leaf_certificate(c).map_err(|e| e.to_string())?)
        }
        _ => None,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let r = rt.block_on(async move {
        let listen = cfg.listen;
        let hub = Arc::new(Hub::new(cfg).map_err(|e| e.to_string())?);
        let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let scheme = if https { "https" } else { "http" };
        println!("containerbuild hub listening on {scheme}://{addr}/kojihub");
        println!("koji profile (put in ~/.koji/config or pass with -c FILE; log in with --user NAME --password PW):");
        println!("[koji]\nserver = {scheme}://{addr}/kojihub\nweburl = {scheme}://{addr}/koji\ntopurl = {scheme}://{addr}/kojifiles\nauthtype = password");
        tracing::info!(%addr, data_dir = %hub.config.data_dir.display(), https, "hub started");

        let embedded = provision_builders(&hub, addr, builders, pinned).await?;
        let hub_stop = CancellationToken::new();
        let stop = hub_stop.clone();
        let signal_hub = hub.clone();
        let pages = containerbuild::web::router(hub.clone());
        let mut server = tokio::spawn(containerbuild::hub::server::serve(
            hub,
            pages,
            listener,
            async move { stop.cancelled().await },
        ));
        let builders_stop = CancellationToken::new();
        let mut running = Vec::new();
        for mut b in embedded {
            let token = builders_stop.clone();
            let name = b.user.clone();
            let handlers = handler_registry(&container, &b.workdir)?;
            b.buildah = buildah_storage(&container, &b.workdir);
            running.push(tokio::spawn(async move {
                if let Err(e) = daemon::run(b, handlers, token).await {
                    tracing::error!(builder = %name, error = %e, "embedded builder stopped");
                }
            }));
        }
        let early = tokio::select! {
            _ = shutdown_signal() => None,
            r = &mut server => Some(r),
        };
        // Builders first: they still need the hub to free their tasks and log out.
        builders_stop.cancel();
        for b in running {
            if tokio::time::timeout(Duration::from_secs(20), b).await.is_err() {
                tracing::warn!("an embedded builder did not stop in time");
            }
        }
        hub_stop.cancel();
        // Long-polling `host.getTasks` calls answer now instead of at their deadline.
        signal_hub.signal.close();
        let r = match early {
            Some(r) => r,
            // Graceful, but bounded: a long-polling `host.getTasks` of a builder that is gone
            // would otherwise hold the shutdown for up to its whole wait.
            None => match tokio::time::timeout(Duration::from_secs(5), &mut server).await {
                Ok(r) => r,
                Err(_) => {
                    tracing::info!("requests still running after 5 s; stopping anyway");
                    server.abort();
                    return Ok(());
                }
            },
        };
        r.map_err(|e| e.to_string())?.map_err(|e| e.to_string())
    });
    // Blocking threads may still sit in a long poll for a client that is gone; do not wait.
    rt.shutdown_timeout(Duration::from_secs(1));
    r
}

/// The host name builders are named after, reduced to what Koji accepts in a user name.
fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let raw = if r == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        String::new()
    };
    let name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    if name.trim_matches(['.', '-']).is_empty() {
        "localhost".into()
    } else {
        name
    }
}

/// Provisions `n` embedded builders (host user, fresh random password, host row, channels) and
/// returns their daemon settings. They reach the hub over loopback HTTP like any other builder
/// (HTTPS when `pinned` holds the hub's own certificate, which they then accept and no other).
async fn provision_builders(
    hub: &Arc<Hub>,
    addr: SocketAddr,
    n: usize,
    pinned: Option<Vec<u8>>,
) -> Result<Vec<DaemonConfig>, String> {
    let host = host_name();
    let loopback = if addr.ip().is_unspecified() {
        let ip: std::net::IpAddr = if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        };
        SocketAddr::new(ip, addr.port())
    } else {
        addr
    };
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let name = format!("{host}-builder{i}");
        let password = {
            use base64::Engine as _;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
        };
        let h = hub.clone();
        let (n2, p2) = (name.clone(), password.clone());
        let arch = provision::koji_arch();
        tokio::task::spawn_blocking(move || {
            h.store
                .write(|tx| provision::ensure_builder_host(tx, &n2, arch, &p2))
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot provision builder {name}: {e}"))?;
        tracing::info!(builder = %name, arch, "embedded builder provisioned");
        let scheme = if pinned.is_some() { "https" } else { "http" };
        out.push(DaemonConfig {
            hub_url: format!("{scheme}://{loopback}/kojihub"),
            user: name.clone(),
            password,
            maxjobs: 10,
            workdir: hub.config.data_dir.join("builders").join(&name),
            poll_interval: Duration::from_secs(5),
            // The password was just replaced, so no other daemon can hold this host's session.
            force_lock: true,
            buildah: None,
            tls: containerbuild::builder::client::ClientTls {
                pinned: pinned.clone(),
                ..Default::default()
            },
        });
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn builder(
    hub: String,
    user: String,
    password_file: Option<PathBuf>,
    tls: containerbuild::builder::client::ClientTls,
    maxjobs: usize,
    workdir: Option<PathBuf>,
    poll_interval: f64,
    force_lock: bool,
    container: ContainerArgs,
) -> Result<(), String> {
    let password = match &password_file {
        Some(f) => read_password_file(f)?,
        // --cert: the daemon logs in with sslLogin.
        None => String::new(),
    };
    if !(poll_interval.is_finite() && poll_interval > 0.0 && poll_interval <= 3600.0) {
        return Err("--poll-interval must be between 0 and 3600 seconds".into());
    }
    if maxjobs == 0 {
        return Err("--maxjobs must be at least 1".into());
    }
    let workdir = workdir
        .unwrap_or_else(|| std::env::temp_dir().join(format!("containerbuild-builder-{user}")));
    let handlers = handler_registry(&container, &workdir)?;
    let buildah = buildah_storage(&container, &workdir);
    let cfg = DaemonConfig {
        hub_url: hub,
        user,
        password,
        maxjobs,
        workdir,
        poll_interval: Duration::from_secs_f64(poll_interval),
        force_lock,
        buildah,
        tls,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let token = CancellationToken::new();
        let t = token.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            t.cancel();
        });
        daemon::run(cfg, handlers, token)
            .await
            .map_err(|e| e.to_string())
    })
}

/// The first line of a builder's password file (warning when others may read it).
fn read_password_file(password_file: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(password_file).map_err(|e| {
        format!(
            "cannot read the password file {}: {e}",
            password_file.display()
        )
    })?;
    let password = text.lines().next().unwrap_or("").to_string();
    if password.is_empty() {
        return Err(format!(
            "the password file {} is empty",
            password_file.display()
        ));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(m) = std::fs::metadata(password_file)
            && m.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(file = %password_file.display(), "the password file is readable by other users; chmod 600 it");
        }
    }
    Ok(password)
}

fn rpm_manifest(source: &str, layers: bool, format: &str, tls_verify: bool) -> Result<(), String> {
    use containerbuild::rpmdb::image::{SourceOptions, open_source};
    use std::io::Write;
    let opts = SourceOptions {
        tls_verify,
        skopeo: None,
    };
    let report = open_source(source, &opts)
        .and_then(|s| s.report(layers))
        .map_err(|e| e.to_string())?;
    let out = match format {
        "text" => report.to_text(),
        _ => report.to_json(),
    };
    std::io::stdout()
        .lock()
        .write_all(out.as_bytes())
        .map_err(|e| format!("writing the report: {e}"))
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CONTAINERBUILD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let r = match cli.command {
        Command::Serve {
            data_dir,
            listen,
            config,
            tls_cert,
            tls_key,
            client_ca,
            builders,
            container,
        } => serve(
            data_dir,
            listen,
            config,
            TlsFlags {
                cert: tls_cert,
                key: tls_key,
                client_ca,
            },
            builders,
            container,
        ),
        Command::Builder {
            hub,
            user,
            password_file,
            cert,
            serverca,
            maxjobs,
            workdir,
            poll_interval,
            force_lock,
            container,
        } => builder(
            hub,
            user,
            password_file,
            containerbuild::builder::client::ClientTls {
                cert,
                serverca,
                pinned: None,
            },
            maxjobs,
            workdir,
            poll_interval,
            force_lock,
            container,
        ),
        Command::User { action } => user_command(action),
        Command::RpmManifest {
            source,
            layers,
            format,
            tls_verify,
        } => rpm_manifest(&source, layers, &format, tls_verify),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("containerbuild: {e}");
            ExitCode::FAILURE
        }
    }
}
