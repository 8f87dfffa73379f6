//! `skewguard report`: where every workload runs, its skew and what losing a domain would cost,
//! read-only and in one shot, with no operator installed.
//!
//! Split like the operator: [`gather`] lists objects (the only part that talks to the API
//! server), [`build`] turns them into report rows with the topology core (pure), [`render`]
//! prints them.

pub mod build;
pub mod gather;
pub mod render;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::api::HAPolicy;
use crate::shell::cli::ReportArgs;
use build::{PolicyInput, build_report};
use gather::{Scope, gather};

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot connect to the cluster (is a kubeconfig or in-cluster config available?): {0}")]
    Connect(#[source] kube::Error),
    #[error("cannot list {resource}: {source}")]
    List {
        resource: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("cannot read policy file {path}: {source}")]
    PolicyRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not an HAPolicy: {reason}")]
    PolicyParse { path: PathBuf, reason: String },
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

/// Runs the report and prints it; an error goes to stderr and the exit status is 1.
pub fn main(args: &ReportArgs) -> ExitCode {
    use std::io::Write;
    let printed = run(args).and_then(|text| {
        std::io::stdout()
            .write_all(text.as_bytes())
            .map_err(ReportError::Print)
    });
    match printed {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The report as text in the requested format.
pub fn run(args: &ReportArgs) -> Result<String, ReportError> {
    // Read the policy first: a bad file fails before any cluster call.
    let policy = args.policy.as_deref().map(read_policy).transpose()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ReportError::Runtime)?;
    runtime.block_on(async {
        let client = kube::Client::try_default()
            .await
            .map_err(ReportError::Connect)?;
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
            .as_ref()
            .map(|p| policy_in_scope(p, &scope, client.default_namespace()))
            .transpose()?;
        let state = gather(&client, &scope).await?;
        let report = build_report(&state, &args.topology_key, policy_input.as_ref());
        render::render(&report, args.output)
    })
}

/// Reads an HAPolicy from a YAML file; omitted fields take their defaults.
pub fn read_policy(path: &Path) -> Result<HAPolicy, ReportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReportError::PolicyRead {
        path: path.to_path_buf(),
        source,
    })?;
    parse_policy(&text).map_err(|reason| ReportError::PolicyParse {
        path: path.to_path_buf(),
        reason,
    })
}

/// Parses an HAPolicy from YAML, checking its apiVersion and kind.
pub fn parse_policy(text: &str) -> Result<HAPolicy, String> {
    let value: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    let field = |name: &str| value.get(name).and_then(serde_yaml::Value::as_str);
    if field("apiVersion") != Some("skewguard.dev/v1alpha1") || field("kind") != Some("HAPolicy") {
        return Err("expected apiVersion skewguard.dev/v1alpha1 and kind HAPolicy".to_string());
    }
    serde_yaml::from_value(value).map_err(|e| e.to_string())
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
