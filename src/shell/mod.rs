//! The imperative shell: the command line, the controller (watches, caches, the reconcile that
//! carries out the core's writes), leadership, the HTTP endpoints, TLS and the metrics.

pub mod cli;
pub mod conn_limits;
pub mod controller;
pub mod fence;
pub mod http;
pub mod leader;
pub mod liveness;
pub mod metrics;
pub mod metrics_auth;
pub mod telemetry;
pub mod tls;
