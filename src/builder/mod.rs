//! The builder: Koji's host protocol as a client, and the tasks it runs.
//!
//! - `client`: `KojiClient`, XML-RPC over HTTP with Koji's session headers, callnum and retry
//!   rules, subsessions and `rawUpload`;
//! - `daemon`: the task manager loop (kojid's `TaskManager`): takes tasks, runs handlers, reports
//!   results, notices cancels, shuts down cleanly;
//! - `handlers`: the `TaskHandler` trait, the per-task `TaskContext` and the handler registry;
//! - `logs`: task log files and their live upload;
//! - `process`: child processes in their own process groups, killed as a tree on cancel.
//!
//! The builder talks to the hub only through the Koji protocol, also when it runs inside
//! `containerbuild serve`.

pub mod client;
pub mod container;
pub mod daemon;
pub mod handlers;
pub mod logs;
pub mod process;

pub use client::{ClientError, KojiClient, RetryPolicy};
pub use daemon::{DaemonConfig, DaemonError};
pub use handlers::{Registry, TaskContext, TaskHandler};
