//! `skewguard report`: where every workload runs, its skew and what losing a domain would cost,
//! read-only, with no operator installed: one shot or `--watch`, one cluster or several.
//!
//! Split like the operator: [`gather`] lists objects (the only part that talks to the API
//! server), [`build`] turns them into report rows with the topology core (pure), [`render`]
//! prints them; [`clusters`] resolves the kubeconfig and contexts to read.

pub mod build;
pub mod clusters;
pub mod gather;
pub mod render;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use serde::Serialize;

use crate::api::HAPolicy;
use crate::api::validation::Violation;
use crate::shell::cli::{FailOn, ReportArgs};
use build::{PolicyInput, Report, build_report};
use clusters::{Source, Target};
use gather::{Scope, gather};

/// The exit status of a report that found what `--fail-on` names.
pub const EXIT_FOUND: u8 = 3;

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(
        "no cluster to read: {} (set KUBECONFIG or pass --kubeconfig), and not running inside a cluster",
        looked_at.as_ref().map_or("no kubeconfig".to_string(), |p| format!("no kubeconfig at {}", p.display()))
    )]
    NoCluster { looked_at: Option<PathBuf> },
    #[error("cannot read kubeconfig {}: {reason}", path.display())]
    Kubeconfig { path: PathBuf, reason: String },
    #[error("no context {name} in the kubeconfig (its contexts: {known})")]
    UnknownContext { name: String, known: String },
    #[error("--all-contexts: the kubeconfig has no context")]
    NoContexts,
    #[error("cannot configure a client: {0}")]
    ClientConfig(String),
    #[error("cannot connect to the cluster: {0}")]
    Connect(#[source] kube::Error),
    #[error("cannot list {resource}: {source}")]
    List {
        resource: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("cannot read policy file {}: {source}", path.display())]
    PolicyRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not an HAPolicy: {reason}", path.display())]
    PolicyParse { path: PathBuf, reason: String },
    #[error(
        "{} would be refused by the API server (the CRD's schema and rules):\n  {}",
        path.display(),
        violations.iter().map(Violation::to_string).collect::<Vec<_>>().join("\n  ")
    )]
    PolicyInvalid {
        path: PathBuf,
        violations: Vec<Violation>,
    },
    #[error(
        "the policy governs namespace {policy} but the report reads namespace {report}; \
         use -n {policy} or -A"
    )]
    NamespaceMismatch { policy: String, report: String },
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("cannot print the report: {0}")]
    Serialize(String),
    #[error("cannot write the report: {0}")]
    Print(#[source] std::io::Error),
}

/// One cluster's report, named by its kubeconfig context.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClusterReport {
    pub cluster: String,
    #[serde(flatten)]
    pub report: Report,
}

/// What one pass over the clusters gave: the reports of those that answered, in the order asked,
/// and the errors of those that did not (named).
#[derive(Debug, Default)]
pub struct Outcome {
    pub reports: Vec<ClusterReport>,
    pub errors: Vec<(String, ReportError)>,
}

/// Runs the report and prints it. Exit status: 0, or 1 when something could not be read (the
/// errors on stderr, the clusters that answered still printed), 3 when `--fail-on` finds what it
/// names (2 is a usage error, from the argument parser).
pub fn main(args: &ReportArgs) -> ExitCode {
    match run_main(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_main(args: &ReportArgs) -> Result<ExitCode, ReportError> {
    // The policy first: a bad file fails before any cluster is read.
    let policy = args.policy.as_deref().map(read_policy).transpose()?;
    let source = clusters::source(args.kubeconfig.as_deref())?;
    let targets = clusters::targets(args, &source)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ReportError::Runtime)?;
    if args.watch {
        return runtime.block_on(watch(args, &source, &targets, policy.as_ref()));
    }
    let outcome = runtime.block_on(read_all(args, &source, &targets, policy.as_ref()));
    let text = render_outcome(args, &targets, &outcome)?;
    std::io::stdout()
        .write_all(text.as_bytes())
        .map_err(ReportError::Print)?;
    for (cluster, e) in &outcome.errors {
        eprintln!("error: {cluster}: {e}");
    }
    let found = findings(&outcome.reports, &args.fail_on);
    for finding in &found {
        eprintln!("--fail-on: {finding}");
    }
    Ok(if !outcome.errors.is_empty() {
        ExitCode::FAILURE
    } else if !found.is_empty() {
        ExitCode::from(EXIT_FOUND)
    } else {
        ExitCode::SUCCESS
    })
}

/// Whether the clusters are shown by name: more than one asked for, or any asked for by name.
fn named(args: &ReportArgs) -> bool {
    args.all_contexts || args.contexts.len() > 1
}

fn render_outcome(
    args: &ReportArgs,
    targets: &[Target],
    outcome: &Outcome,
) -> Result<String, ReportError> {
    match outcome.reports.as_slice() {
        [one] if !named(args) && targets.len() == 1 => render::render(&one.report, args.output),
        [] if !named(args) => Ok(String::new()),
        reports => render::render_clusters(reports, args.output),
    }
}

/// Reads every target concurrently; each cluster's report or error.
pub async fn read_all(
    args: &ReportArgs,
    source: &Source,
    targets: &[Target],
    policy: Option<&HAPolicy>,
) -> Outcome {
    let answers =
        futures::future::join_all(targets.iter().map(|t| read_one(args, source, t, policy))).await;
    let mut outcome = Outcome::default();
    for (target, answer) in targets.iter().zip(answers) {
        match answer {
            Ok(report) => outcome.reports.push(ClusterReport {
                cluster: target.name.clone(),
                report,
            }),
            Err(e) => outcome.errors.push((target.name.clone(), e)),
        }
    }
    outcome
}

async fn read_one(
    args: &ReportArgs,
    source: &Source,
    target: &Target,
    policy: Option<&HAPolicy>,
) -> Result<Report, ReportError> {
    let client = clusters::client(source, target).await?;
    let scope = if args.all_namespaces {
        Scope::All
    } else {
        Scope::Namespace(
            args.namespace
                .clone()
                .unwrap_or_else(|| client.default_namespace().to_string()),
        )
    };
    let policy_input = policy
        .map(|p| policy_in_scope(p, &scope, client.default_namespace()))
        .transpose()?;
    let state = gather(&client, &scope).await?;
    Ok(build_report(
        &state,
        &args.topology_key,
        policy_input.as_ref(),
    ))
}

/// `report --watch`: reads the clusters every `--interval` and prints the report again when it
/// changed: on a terminal the screen is redrawn with the time of the reading; piped, each new
/// report follows a `---` line. An unreachable cluster is shown as an error line and retried.
async fn watch(
    args: &ReportArgs,
    source: &Source,
    targets: &[Target],
    policy: Option<&HAPolicy>,
) -> Result<ExitCode, ReportError> {
    let terminal = std::io::stdout().is_terminal();
    let mut last: Option<String> = None;
    loop {
        let outcome = read_all(args, source, targets, policy).await;
        let mut text = render_outcome(args, targets, &outcome)?;
        for (cluster, e) in &outcome.errors {
            text.push_str(&format!("error: {cluster}: {e}\n"));
        }
        if last.as_ref() != Some(&text) {
            let shown = if terminal {
                let now = jiff::Zoned::now().strftime("%H:%M:%S");
                format!(
                    "\x1b[H\x1b[2JEvery {}s, read at {now} (Ctrl-C to stop)\n\n{text}",
                    args.interval
                )
            } else if last.is_some() {
                format!("---\n{text}")
            } else {
                text.clone()
            };
            let mut out = std::io::stdout();
            out.write_all(shown.as_bytes())
                .and_then(|()| out.flush())
                .map_err(ReportError::Print)?;
            last = Some(text);
        }
        tokio::time::sleep(Duration::from_secs(args.interval)).await;
    }
}

/// What `--fail-on` found in the reports, one line each (empty: nothing).
pub fn findings(reports: &[ClusterReport], fail_on: &[FailOn]) -> Vec<String> {
    let mut out = Vec::new();
    for check in fail_on {
        let mut hits: Vec<String> = Vec::new();
        for r in reports {
            for w in &r.report.workloads {
                let hit = match check {
                    FailOn::Spof => w.is_single_point_of_failure(),
                    FailOn::Unbalanced => w.skew > w.max_skew,
                };
                if hit {
                    let cluster = if reports.len() > 1 {
                        format!("{}: ", r.cluster)
                    } else {
                        String::new()
                    };
                    hits.push(format!("{cluster}{:?} {}/{}", w.kind, w.namespace, w.name));
                }
            }
        }
        if !hits.is_empty() {
            let what = match check {
                FailOn::Spof => "single point(s) of failure",
                FailOn::Unbalanced => "workload(s) over their maxSkew",
            };
            out.push(format!("{} {what}: {}", hits.len(), hits.join(", ")));
        }
    }
    out
}

/// Reads an HAPolicy from a YAML file and checks it as the API server would (the CRD's schema and
/// CEL rules); omitted fields take their defaults.
pub fn read_policy(path: &Path) -> Result<HAPolicy, ReportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReportError::PolicyRead {
        path: path.to_path_buf(),
        source,
    })?;
    let parse_error = |reason| ReportError::PolicyParse {
        path: path.to_path_buf(),
        reason,
    };
    let value: serde_json::Value =
        serde_yaml::from_str(&text).map_err(|e| parse_error(e.to_string()))?;
    check_kind(&value).map_err(parse_error)?;
    crate::api::validation::validate(&value).map_err(|violations| ReportError::PolicyInvalid {
        path: path.to_path_buf(),
        violations,
    })?;
    parse_policy(&text).map_err(parse_error)
}

fn check_kind(value: &serde_json::Value) -> Result<(), String> {
    if value["apiVersion"] != "skewguard.dev/v1alpha1" || value["kind"] != "HAPolicy" {
        return Err("expected apiVersion skewguard.dev/v1alpha1 and kind HAPolicy".to_string());
    }
    Ok(())
}

/// Parses an HAPolicy from YAML, checking its apiVersion and kind.
pub fn parse_policy(text: &str) -> Result<HAPolicy, String> {
    let value: serde_json::Value = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    check_kind(&value)?;
    serde_json::from_value(value).map_err(|e| e.to_string())
}

/// The policy with the namespace it governs (its own, else the report's, else the kubeconfig's
/// default), which the report must be reading.
pub fn policy_in_scope(
    policy: &HAPolicy,
    scope: &Scope,
    default_namespace: &str,
) -> Result<PolicyInput, ReportError> {
    let namespace = match (&policy.metadata.namespace, scope) {
        (Some(ns), Scope::All) => ns.clone(),
        (Some(ns), Scope::Namespace(report)) if ns == report => ns.clone(),
        (Some(ns), Scope::Namespace(report)) => {
            return Err(ReportError::NamespaceMismatch {
                policy: ns.clone(),
                report: report.clone(),
            });
        }
        (None, Scope::Namespace(report)) => report.clone(),
        (None, Scope::All) => default_namespace.to_string(),
    };
    Ok(PolicyInput::new(policy, namespace))
}
