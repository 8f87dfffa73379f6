//! The `skewguard` command line. Each subcommand is one variant of [`Command`], so `run` (the
//! controller) and `report` can be added without touching the others.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
    /// Show where every Deployment, StatefulSet and Rollout runs, its skew and what losing the
    /// worst domain would cost (read-only, one shot, against the current kubeconfig).
    Report(ReportArgs),
}

/// Options of `skewguard report` (also `kubectl skewguard report`).
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct ReportArgs {
    /// The namespace to report on (default: the kubeconfig context's namespace).
    #[arg(short = 'n', long, conflicts_with = "all_namespaces")]
    pub namespace: Option<String>,
    /// Report on every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// The node label whose values are the domains.
    #[arg(long, default_value = crate::topology::ZONE_KEY)]
    pub topology_key: String,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// An HAPolicy YAML file: also print what the operator would do under it (nothing is written).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
}

/// How `report` prints.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    #[default]
    Table,
    Json,
    Yaml,
}
