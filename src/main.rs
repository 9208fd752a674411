//! `containerbuild`: thin commands over the library (`ops` style): serve the hub, manage users.

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use containerbuild::hub::{Config, Hub};
use containerbuild::store::{Store, users};

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
    },
    /// Manage users directly in the database (works while no hub runs, e.g. to bootstrap).
    User {
        #[command(subcommand)]
        action: UserAction,
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

fn serve(
    data_dir: Option<PathBuf>,
    listen: Option<SocketAddr>,
    config: Option<PathBuf>,
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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let listen = cfg.listen;
        let hub = Arc::new(Hub::new(cfg).map_err(|e| e.to_string())?);
        let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        println!("containerbuild hub listening on http://{addr}/kojihub");
        println!("koji profile (put in ~/.koji/config or pass with -c FILE; log in with --user NAME --password PW):");
        println!("[koji]\nserver = http://{addr}/kojihub\nweburl = http://{addr}/koji\ntopurl = http://{addr}/kojifiles\nauthtype = password");
        tracing::info!(%addr, data_dir = %hub.config.data_dir.display(), "hub started");
        containerbuild::hub::server::serve(hub, listener, shutdown_signal()).await.map_err(|e| e.to_string())
    })
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CONTAINERBUILD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let r = match cli.command {
        Command::Serve {
            data_dir,
            listen,
            config,
        } => serve(data_dir, listen, config),
        Command::User { action } => user_command(action),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("containerbuild: {e}");
            ExitCode::FAILURE
        }
    }
}
