//! containerbuild: a Koji-compatible hub and container builder in one binary.
pub mod build;
pub mod builder;
pub mod cg;
pub mod hub;
pub mod rpmdb;
pub mod store;
pub mod web;
pub mod xmlrpc;
