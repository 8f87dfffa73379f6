//! `kubectl skewguard`: skewguard's read-only report as a kubectl plugin (kubectl runs any
//! `kubectl-skewguard` on the PATH; krew installs it from plugins/skewguard.yaml). The operator
//! itself (`run`) is not offered here. As krew asks of plugins, the help names the command as
//! users type it, `kubectl skewguard`, and `-h`/`--help` work on every subcommand.

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use skewguard::shell::cli::{CompletionArgs, ReportArgs, completion_script};

/// Where your replicas run across zones, their skew, and what losing a zone would cost.
///
/// Read-only: lists nodes, pods, Deployments, StatefulSets and Argo Rollouts; writes nothing.
/// Reads the current kubeconfig context, or the ones named with --context / --all-contexts.
#[derive(Parser, Debug)]
#[command(
    name = "kubectl-skewguard",
    bin_name = "kubectl skewguard",
    version,
    about,
    after_help = "Examples:\n  kubectl skewguard report -n petclinic\n  kubectl skewguard report -A --fail-on spof\n  kubectl skewguard report --all-contexts -o wide\n  kubectl skewguard report --policy hapolicy.yaml"
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
    /// Print a shell completion script for kubectl-skewguard.
    Completion(CompletionArgs),
}

fn main() -> ExitCode {
    match Plugin::parse().command {
        PluginCommand::Report(args) => skewguard::report::main(&args),
        PluginCommand::Completion(args) => {
            let script = completion_script(args.shell, Plugin::command(), "kubectl-skewguard");
            match std::io::stdout().write_all(&script) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
