//! `kubectl skewguard report`: skewguard's read-only report as a kubectl plugin (kubectl runs
//! any `kubectl-skewguard` on the PATH). The operator itself (`run`) is not offered here.

use clap::{Parser, Subcommand};
use skewguard::shell::cli::ReportArgs;

/// Where your replicas run, their skew, and what losing a zone would cost.
#[derive(Parser, Debug)]
#[command(
    name = "kubectl-skewguard",
    bin_name = "kubectl skewguard",
    version,
    about
)]
struct Plugin {
    #[command(subcommand)]
    command: PluginCommand,
}

#[derive(Subcommand, Debug)]
enum PluginCommand {
    /// Show where every Deployment, StatefulSet and Rollout runs, its skew and what losing the
    /// worst domain would cost (read-only).
    Report(ReportArgs),
}

fn main() -> std::process::ExitCode {
    match Plugin::parse().command {
        PluginCommand::Report(args) => skewguard::report::main(&args),
    }
}
