//! The hub: Koji's XML-RPC API over the store, sessions, and the HTTP server that carries it.

pub mod auth;
pub mod config;
pub mod convert;
pub mod dispatch;
pub mod files;
pub mod methods;
pub mod metrics;
pub mod ratelimit;
pub mod scheduler;
pub mod server;
pub mod tls;
pub mod upload;

use std::collections::HashMap;
use std::path::PathBuf;

use crate::store::{Store, StoreError};
use crate::xmlrpc::Fault;

pub use auth::Auth;
pub use config::Config;
pub use dispatch::{AfterCommit, Ctx, Kind, Method};

/// Everything a request handler needs, shared by all requests.
pub struct Hub {
    pub store: Store,
    pub config: Config,
    pub registry: Registry,
    /// Wakes long-polling `host.getTasks(wait=N)` callers after a task was assigned.
    pub signal: scheduler::Signal,
    /// Upload destinations being written right now (Koji's per-file lock).
    pub uploads: upload::Locks,
    /// What `GET /metrics` reports besides the store's counts.
    pub metrics: metrics::Metrics,
    /// XML-RPC calls running at once (one read connection or the writer each); others queue.
    pub call_slots: std::sync::Arc<tokio::sync::Semaphore>,
    /// Recent failed `login`/`sslLogin` attempts per user and address.
    pub logins: ratelimit::LoginLimiter,
}

impl Hub {
    pub fn new(config: Config) -> Result<Hub, StoreError> {
        let store = Store::open(&config.data_dir)?;
        let registry = Registry::new(methods::all());
        let metrics = metrics::Metrics::new(registry.iter().map(|m| m.sig.name));
        Ok(Hub {
            store,
            config,
            registry,
            signal: scheduler::Signal::default(),
            uploads: upload::Locks::default(),
            metrics,
            call_slots: std::sync::Arc::new(tokio::sync::Semaphore::new(
                crate::store::default_max_readers(),
            )),
            logins: ratelimit::LoginLimiter::default(),
        })
    }

    /// Koji's topdir (`/mnt/koji` on a real hub): served under `/kojifiles/`.
    pub fn topdir(&self) -> PathBuf {
        self.config.data_dir.join("topdir")
    }

    /// A task's output directory under the topdir ([`task_relpath`]).
    pub fn task_dir(&self, task_id: i64) -> PathBuf {
        self.topdir().join(task_relpath(task_id))
    }
}

/// A task's output directory relative to the topdir, as Koji lays it out (`tasks/<id % 10000>/<id>`
/// in the topdir's `work` directory); also the path under `/kojifiles/`.
pub fn task_relpath(task_id: i64) -> String {
    format!("work/tasks/{}/{task_id}", task_id % 10000)
}

/// The callable methods by name, in registration order for `system.listMethods`.
pub struct Registry {
    by_name: HashMap<&'static str, usize>,
    methods: Vec<Method>,
}

impl Registry {
    pub fn new(methods: Vec<Method>) -> Registry {
        let by_name = methods
            .iter()
            .enumerate()
            .map(|(i, m)| (m.sig.name, i))
            .collect();
        Registry { by_name, methods }
    }

    pub fn get(&self, name: &str) -> Option<&Method> {
        self.by_name.get(name).map(|&i| &self.methods[i])
    }

    pub fn iter(&self) -> impl Iterator<Item = &Method> {
        self.methods.iter()
    }
}

impl From<StoreError> for Fault {
    fn from(e: StoreError) -> Fault {
        match e {
            StoreError::Conflict(m) | StoreError::NotFound(m) => Fault::generic(m),
            e @ StoreError::DiskFull(_) => {
                tracing::warn!(error = %e, "write refused: disk full");
                Fault::generic(e.to_string())
            }
            other => {
                tracing::error!(error = %other, "store failure");
                Fault::internal(other)
            }
        }
    }
}

pub use crate::xmlrpc::value::{json_to_value, value_to_json};
