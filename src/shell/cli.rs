//! The `skewguard` command line. Each subcommand is one variant of [`Command`], so `run` (the
//! controller) and `report` can be added without touching the others.

use std::net::SocketAddr;
use std::path::PathBuf;

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
    /// Print the HAPolicy API reference as Markdown, generated from the CRD (docs/api.md).
    ApiDocs,
    /// Show where every Deployment, StatefulSet and Rollout runs, its skew and what losing the
    /// worst domain would cost (read-only, against the current kubeconfig or the clusters named).
    Report(ReportArgs),
    /// Run the controller: keep every workload selected by an HAPolicy spread.
    Run(RunArgs),
    /// Print a shell completion script: `source <(skewguard completion bash)`.
    Completion(CompletionArgs),
}

/// Arguments of `completion`.
#[derive(Args, Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletionArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    pub shell: CompletionShell,
}

/// The shells `completion` writes scripts for.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

impl CompletionShell {
    pub fn generator(self) -> clap_complete::Shell {
        match self {
            CompletionShell::Bash => clap_complete::Shell::Bash,
            CompletionShell::Zsh => clap_complete::Shell::Zsh,
            CompletionShell::Fish => clap_complete::Shell::Fish,
        }
    }
}

/// The completion script of `command` (named `bin_name`, as the shell calls it) for `shell`.
pub fn completion_script(
    shell: CompletionShell,
    mut command: clap::Command,
    bin_name: &str,
) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell.generator(), &mut command, bin_name, &mut out);
    out
}

/// Flags of `skewguard run`.
#[derive(Args, Debug, Clone, PartialEq)]
pub struct RunArgs {
    /// Watch and act in this namespace only (default: all namespaces). Node fit then counts only
    /// this namespace's pods on each node (the others' are not watched): a node that other
    /// namespaces fill looks free, and a move may head toward it (the scheduler then places the
    /// replacement elsewhere, and the outcome says so). The operator logs this at start.
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
    #[arg(long, default_value = "0.0.0.0:8443")]
    pub metrics_addr: SocketAddr,
    /// Serve `/metrics` over HTTPS to callers allowed to `get /metrics` (bearer token checked with
    /// a TokenReview and a SubjectAccessReview); `--metrics-secure=false` serves plain, open HTTP
    /// (local runs).
    #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub metrics_secure: bool,
    /// A directory with `tls.crt` and `tls.key` (e.g. a mounted cert-manager Secret), re-read when
    /// they change; without it the certificate is self-signed, made at start.
    #[arg(long, value_name = "DIR")]
    pub metrics_cert_dir: Option<PathBuf>,
    /// Where `/healthz` and `/readyz` answer.
    #[arg(long, default_value = "0.0.0.0:8081")]
    pub health_addr: SocketAddr,
    /// Write nothing to workloads or pods; status, Events and logs say what would have been done.
    #[arg(long)]
    pub dry_run: bool,
    /// Disruptions per second across all workloads, to protect the API server (a positive number).
    #[arg(long, default_value_t = 10.0, value_parser = positive_rate)]
    pub max_evictions_per_second: f64,
    /// Pod deletion-cost annotations written per second across all workloads (metadata-only
    /// patches that keep scale-in balanced; a positive number).
    #[arg(long, default_value_t = 20.0, value_parser = positive_rate)]
    pub max_deletion_cost_writes_per_second: f64,
    /// Workloads rolling out at once because skewguard changed their template (constraint
    /// injection, RolloutRestart), cluster-wide; the others wait in state Queued.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrent_rollouts: u32,
    /// Log format (the level comes from RUST_LOG, default info).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Options of `skewguard report` (also `kubectl skewguard report`).
#[derive(Args, Debug, Clone, PartialEq)]
pub struct ReportArgs {
    /// The namespace to report on (default: the kubeconfig context's namespace).
    #[arg(short = 'n', long, conflicts_with = "all_namespaces")]
    pub namespace: Option<String>,
    /// Report on every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// The kubeconfig file to read (default: $KUBECONFIG, else ~/.kube/config, else the
    /// in-cluster config).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to read (default: its current context). Repeat it to read several
    /// clusters at once: one table with a CLUSTER column.
    #[arg(long = "context", value_name = "NAME", conflicts_with = "all_contexts")]
    pub contexts: Vec<String>,
    /// Read every context of the kubeconfig, concurrently: one table with a CLUSTER column.
    #[arg(long)]
    pub all_contexts: bool,
    /// The node label whose values are the domains.
    #[arg(long, default_value = crate::core::topology::ZONE_KEY)]
    pub topology_key: String,
    /// Output format: a table, a wider table (maxSkew, how skew is measured, injection mode),
    /// JSON or YAML.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// An HAPolicy YAML file: checked against the CRD's schema and CEL rules first (as the API
    /// server would), then also print what the operator would do under it (nothing is written).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Exit with status 3 when the report finds any of these (comma-separated or repeated):
    /// `spof` (a workload with every running replica in one domain), `unbalanced` (a workload
    /// whose skew is over its maxSkew). For CI gates; the report is printed all the same.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        value_name = "CHECK",
        conflicts_with = "watch"
    )]
    pub fail_on: Vec<FailOn>,
    /// Keep watching: read the clusters again every --interval and redraw when something changed
    /// (on a terminal in place, like `watch`; piped, each new report after a separator line).
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// How often --watch reads the clusters again, in seconds.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..), requires = "watch")]
    pub interval: u64,
}

/// How `report` prints.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    #[default]
    Table,
    /// The table with more columns.
    Wide,
    Json,
    Yaml,
}

/// What `report --fail-on` turns into exit status 3.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FailOn {
    /// A workload with every running replica in one domain.
    Spof,
    /// A workload whose skew is over its maxSkew.
    Unbalanced,
}

/// A rate must be a positive, finite number: zero or a negative rate would mean "unlimited".
fn positive_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate > 0.0 && rate.is_finite() => Ok(rate),
        Ok(_) => Err("must be a positive number of evictions per second".to_string()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::positive_rate;

    #[test]
    fn only_positive_rates_are_accepted() {
        assert_eq!(positive_rate("2.5"), Ok(2.5));
        for bad in ["0", "-1", "inf", "NaN", "x"] {
            assert!(positive_rate(bad).is_err(), "{bad}");
        }
    }
}
