//! The `skewguard` command line. Each subcommand is one variant of [`Command`], so `run` (the
//! controller) and `report` can be added without touching the others.

use clap::{Parser, Subcommand};

/// Keeps Kubernetes workloads spread across zones and nodes, safely.
#[derive(Parser, Debug)]
#[command(name = "skewguard", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Print the HAPolicy CustomResourceDefinition as YAML (for `kubectl apply -f -`).
    Crd,
}
