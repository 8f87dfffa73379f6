//! skewguard: keeps Kubernetes workloads spread across zones and nodes, safely.
//!
//! A functional core ([`topology`]) measures skew and plans moves as pure functions; the API types
//! ([`api`]) are the contract users write.

pub mod api;
pub mod budgets;
pub mod cli;
pub mod constraints;
pub mod controller;
pub mod decision;
pub mod errors;
pub mod http;
pub mod injection;
pub mod leader;
pub mod metrics;
pub mod metrics_auth;
pub mod ownership;
pub mod pipeline;
pub mod policy_status;
pub mod report;
pub mod snapshot;
pub mod telemetry;
pub mod tls;
pub mod topology;
pub mod workload;
