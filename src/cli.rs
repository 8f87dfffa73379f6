//! The `skewguard` command line. Each subcommand is one variant of [`Command`], so `run` (the
//! controller) and `report` can be added without touching the others.

use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Keeps Kubernetes workloads spread across zones and nodes, safely.
#[derive(Parser, Debug)]
#[command(name = "skewguard", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug, Clone, PartialEq)]
pub enum Command {
    /// Print the HAPolicy CustomResourceDefinition as YAML (for `kubectl apply -f -`).
    Crd,
    /// Run the controller: keep every workload selected by an HAPolicy spread.
    Run(RunArgs),
}

/// Flags of `skewguard run`.
#[derive(Args, Debug, Clone, PartialEq)]
pub struct RunArgs {
    /// Watch and act in this namespace only (default: all namespaces).
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// Elect a leader through a Lease; only the leader writes (`--leader-elect=false` to run alone).
    #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// Namespace of the leader-election Lease (the operator's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "skewguard-system")]
    pub lease_namespace: String,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "skewguard-leader")]
    pub lease_name: String,
    /// This replica's identity in the Lease (default: the pod name, else the host name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Lease duration in seconds: a new leader takes over within this time.
    #[arg(long, default_value_t = 15)]
    pub lease_duration_seconds: u64,
    /// Where Prometheus scrapes `/metrics`.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,
    /// Where `/healthz` and `/readyz` answer.
    #[arg(long, default_value = "0.0.0.0:8081")]
    pub health_addr: SocketAddr,
    /// Write nothing to workloads or pods; status, Events and logs say what would have been done.
    #[arg(long)]
    pub dry_run: bool,
    /// Disruptions per second across all workloads, to protect the API server.
    #[arg(long, default_value_t = 10.0)]
    pub max_evictions_per_second: f64,
    /// Log format (the level comes from RUST_LOG, default info).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}
