//! Template or admission: which way a policy's constraints reach the pods, what the operator
//! publishes for skewguard's MutatingAdmissionPolicy, and whether new pods carry what it
//! promised (pure: no client, no clock).
//!
//! The shell finds out what the cluster offers ([`AdmissionSupport`]: is the API served, are the
//! shipped policy and binding installed, what does the API server's type checker say about
//! them); [`choose_mode`] picks the mode from that and `spec.injection`; [`admitted_workload`]
//! builds one workload's `status.admission` entry from the same [`TemplatePlan`] template
//! injection writes; [`check_admitted`] compares the pods created since then with it; and
//! [`admitted_condition`] turns all of that into the policy's `Admitted` condition.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::TopologySpreadConstraint;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::conditions::reason;
use crate::api::{
    AdmittedAffinityTerm, AdmittedAntiAffinity, AdmittedConstraint, AdmittedWorkload, Injection,
    InjectionMode, InjectionStatus, NodeInclusionPolicy, PodWhenUnsatisfiable,
};
use crate::core::constraints::TemplatePlan;
use crate::core::topology::Pod;
use crate::core::workload::WorkloadObject;

/// The name of skewguard's MutatingAdmissionPolicy and of its binding (config/admission-mode/).
pub const ADMISSION_POLICY: &str = "skewguard-spread-constraints";
/// The ValidatingAdmissionPolicy that carries the same expressions, never bound: the API server
/// type-checks it against the HAPolicy and Pod schemas and reports in its status.typeChecking
/// (MutatingAdmissionPolicies have no status to say so).
pub const TYPE_CHECK_POLICY: &str = "skewguard-spread-constraints-typecheck";

/// How long after an entry's `since` pods may still be created without it: `since` is taken
/// (in whole seconds) before the status is written, and the API server's admission plugin sees
/// the new status through its own watch, usually within a second.
pub const PUBLISH_GRACE: Duration = Duration::from_secs(5);

/// What the cluster offers for admission mode, as the shell found it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdmissionSupport {
    /// The API server serves admissionregistration.k8s.io/v1 mutatingadmissionpolicies (1.36+).
    pub served: bool,
    /// skewguard's MutatingAdmissionPolicy is installed (and takes HAPolicies as parameters).
    pub policy_installed: bool,
    /// Its binding is installed (and binds that policy).
    pub binding_installed: bool,
    /// The API server's type-checking warnings on the admission expressions.
    pub warnings: Vec<String>,
}

impl AdmissionSupport {
    /// Policy and binding are both in place on a server that serves them.
    pub fn installed(&self) -> bool {
        self.served && self.policy_installed && self.binding_installed
    }

    /// Why admission mode is not available, if it is not.
    fn unavailable(&self) -> Option<(&'static str, String)> {
        if !self.served {
            return Some((
                reason::ADMISSION_NOT_SERVED,
                "the API server does not serve admissionregistration.k8s.io/v1 \
                 mutatingadmissionpolicies (Kubernetes 1.36+)"
                    .to_string(),
            ));
        }
        let missing: Vec<&str> = [
            (!self.policy_installed).then_some("MutatingAdmissionPolicy"),
            (!self.binding_installed).then_some("MutatingAdmissionPolicyBinding"),
        ]
        .into_iter()
        .flatten()
        .collect();
        (!missing.is_empty()).then(|| {
            (
                reason::ADMISSION_POLICY_NOT_INSTALLED,
                format!(
                    "{} {ADMISSION_POLICY} not installed (kubectl apply -k config/admission-mode)",
                    missing.join(" and ")
                ),
            )
        })
    }
}

/// The group/version that serves MutatingAdmissionPolicies (Kubernetes 1.36+).
pub const ADMISSION_API: &str = "admissionregistration.k8s.io/v1";

/// What the admission API objects the shell read say (pure): `served` from discovery (does
/// [`ADMISSION_API`] list `mutatingadmissionpolicies`), then the shipped policy, its binding and
/// the type-check policy as the API server returned them (`None`: not found). A policy counts as
/// installed only when it takes HAPolicies as parameters, a binding only when it binds that
/// policy; the warnings come from the type-check policy's `status.typeChecking`.
pub fn support_from(
    served: bool,
    policy: Option<&serde_json::Value>,
    binding: Option<&serde_json::Value>,
    type_check: Option<&serde_json::Value>,
) -> AdmissionSupport {
    let param_kind = |p: &serde_json::Value| {
        let kind = &p["spec"]["paramKind"];
        kind["kind"] == "HAPolicy"
            && kind["apiVersion"]
                .as_str()
                .is_some_and(|v| v.starts_with("skewguard.dev/"))
    };
    let warnings = type_check
        .and_then(|v| v["status"]["typeChecking"]["expressionWarnings"].as_array())
        .map(|ws| {
            ws.iter()
                .map(|w| {
                    format!(
                        "{}: {}",
                        w["fieldRef"].as_str().unwrap_or_default(),
                        w["warning"].as_str().unwrap_or_default().trim()
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    AdmissionSupport {
        served,
        policy_installed: served && policy.is_some_and(param_kind),
        binding_installed: served
            && binding.is_some_and(|b| b["spec"]["policyName"] == ADMISSION_POLICY),
        warnings,
    }
}

fn status(mode: InjectionMode, reason: &str, message: impl Into<String>) -> InjectionStatus {
    InjectionStatus {
        mode,
        reason: reason.to_string(),
        message: message.into(),
    }
}

/// The mode a policy is in. `Auto` follows what the cluster offers; when that is not known (the
/// shell could not read it), the mode the policy was in stays, so a failed read never turns a
/// policy to Template (which would roll every workload out). `None`: not known and never decided
/// (a new policy while the read fails): nothing is added, in either way, until it is known.
pub fn choose_mode(
    requested: Injection,
    support: Option<&AdmissionSupport>,
    previous: Option<&InjectionStatus>,
) -> Option<InjectionStatus> {
    Some(match (requested, support) {
        (Injection::Template, _) => status(
            InjectionMode::Template,
            reason::REQUESTED,
            "spec.injection: Template",
        ),
        (Injection::Admission, support) => {
            let caveat = support
                .and_then(AdmissionSupport::unavailable)
                .map(|(_, why)| format!("; but {why}: pods get nothing added"))
                .unwrap_or_default();
            status(
                InjectionMode::Admission,
                reason::REQUESTED,
                format!("spec.injection: Admission{caveat}"),
            )
        }
        (Injection::Auto, None) => {
            let mode = previous?.mode;
            status(
                mode,
                reason::ADMISSION_SUPPORT_UNKNOWN,
                format!(
                    "whether admission policies are served and installed is not known; {mode} kept"
                ),
            )
        }
        (Injection::Auto, Some(support)) => match support.unavailable() {
            Some((why, message)) => status(InjectionMode::Template, why, message),
            None => status(
                InjectionMode::Admission,
                reason::ADMISSION_POLICY_INSTALLED,
                format!(
                    "MutatingAdmissionPolicy {ADMISSION_POLICY} adds the constraints to each new pod"
                ),
            ),
        },
    })
}

/// One workload's `status.admission` entry: what template injection would write ([`TemplatePlan`]),
/// for the admission policy to add to each new pod. `None` when there is nothing to add (the
/// template's own constraints cover every key). `since` stays what it was while the content
/// stays the same.
pub fn admitted_workload(
    workload: &WorkloadObject,
    plan: &TemplatePlan,
    previous: Option<&AdmittedWorkload>,
    now: Timestamp,
) -> Option<AdmittedWorkload> {
    if plan.injected.is_empty() && plan.anti_affinity.is_none() {
        return None;
    }
    let mut entry = AdmittedWorkload {
        kind: workload.kind,
        name: workload.name().to_string(),
        pod_selector: workload.selector.clone(),
        constraints: plan.injected.iter().map(admitted_constraint).collect(),
        anti_affinity: plan.anti_affinity.as_ref().map(|t| AdmittedAntiAffinity {
            weight: t.weight,
            pod_affinity_term: AdmittedAffinityTerm {
                topology_key: t.pod_affinity_term.topology_key.clone(),
                label_selector: t
                    .pod_affinity_term
                    .label_selector
                    .clone()
                    .unwrap_or_default(),
            },
        }),
        since: Time(now),
    };
    if let Some(previous) = previous {
        let unchanged = AdmittedWorkload {
            since: previous.since.clone(),
            ..entry.clone()
        };
        if &unchanged == previous {
            entry = unchanged;
        }
    }
    Some(entry)
}

/// A template constraint as the admission policy adds it: the same fields and values.
pub fn admitted_constraint(c: &TopologySpreadConstraint) -> AdmittedConstraint {
    let inclusion = |v: &Option<String>| match v.as_deref() {
        Some("Ignore") => NodeInclusionPolicy::Ignore,
        _ => NodeInclusionPolicy::Honor,
    };
    AdmittedConstraint {
        topology_key: c.topology_key.clone(),
        max_skew: c.max_skew,
        when_unsatisfiable: if c.when_unsatisfiable == "DoNotSchedule" {
            PodWhenUnsatisfiable::DoNotSchedule
        } else {
            PodWhenUnsatisfiable::ScheduleAnyway
        },
        min_domains: c.min_domains,
        label_selector: c.label_selector.clone().unwrap_or_default(),
        match_label_keys: c.match_label_keys.clone(),
        node_affinity_policy: inclusion(&c.node_affinity_policy),
        node_taints_policy: inclusion(&c.node_taints_policy),
    }
}

/// A pod created after the entry was published that lacks some of what it promised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodMissing {
    pub pod: String,
    /// The topology keys it has no constraint for, and `anti-affinity` when that is missing.
    pub missing: Vec<String>,
}

/// How the pods created since an entry was published compare with it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdmissionCheck {
    /// The pods created since the entry was published (plus [`PUBLISH_GRACE`]), by name.
    pub checked: BTreeSet<String>,
    pub missing: Vec<PodMissing>,
}

/// Compares the workload's pods created since `entry.since` (plus [`PUBLISH_GRACE`]) with what
/// the entry promises: a constraint for each of its topology keys (the pod's own or the added
/// one), and a preferred pod anti-affinity when it has one. Older pods and pods of unknown age
/// are not judged.
pub fn check_admitted<'a>(
    entry: &AdmittedWorkload,
    pods: impl IntoIterator<Item = &'a Pod>,
) -> AdmissionCheck {
    let from = entry.since.0.as_second() + PUBLISH_GRACE.as_secs() as i64;
    let mut check = AdmissionCheck::default();
    for pod in pods {
        if pod.created == 0 || pod.created < from || pod.finished {
            continue;
        }
        check.checked.insert(pod.name.clone());
        let mut missing: Vec<String> = entry
            .constraints
            .iter()
            .map(|c| &c.topology_key)
            .filter(|k| !pod.spread_keys.contains(k))
            .cloned()
            .collect();
        missing.dedup();
        if entry.anti_affinity.is_some() && !pod.preferred_anti_affinity {
            missing.push("anti-affinity".to_string());
        }
        if !missing.is_empty() {
            check.missing.push(PodMissing {
                pod: pod.name.clone(),
                missing,
            });
        }
    }
    check.missing.sort_by(|a, b| a.pod.cmp(&b.pod));
    check
}

/// The pods named in a condition message at most.
const NAMED_PODS: usize = 5;

/// The policy's `Admitted` condition (status, reason, message), in Admission mode only and only
/// while entries are published: whether the admission policy can work at all, whether the API
/// server's type checker is happy with it, and whether the pods created since carry the
/// constraints. `checks` are the workloads' [`AdmissionCheck`]s by workload name. A pod that two
/// workloads' selectors both select is counted once; admission adds nothing to it (it cannot tell
/// whose it is), and the message says so.
pub fn admitted_condition(
    injection: Option<&InjectionStatus>,
    support: Option<&AdmissionSupport>,
    checks: &[(&str, &AdmissionCheck)],
) -> Option<(&'static str, &'static str, String)> {
    if injection.is_none_or(|i| i.mode != InjectionMode::Admission) || checks.is_empty() {
        return None;
    }
    if let Some((why, message)) = support.and_then(AdmissionSupport::unavailable) {
        return Some(("False", why, message));
    }
    if let Some(support) = support
        && !support.warnings.is_empty()
    {
        return Some((
            "False",
            reason::TYPE_CHECK_WARNINGS,
            format!(
                "the API server's type check of the admission expressions warns ({}): {}",
                support.warnings.len(),
                support.warnings.join("; ")
            ),
        ));
    }
    let checked: BTreeSet<&str> = checks
        .iter()
        .flat_map(|(_, c)| c.checked.iter().map(String::as_str))
        .collect();
    // pod -> (what it lacks, the workloads whose selectors select it)
    let mut missing: BTreeMap<&str, (Vec<&str>, Vec<&str>)> = BTreeMap::new();
    for (workload, check) in checks {
        for m in &check.missing {
            let (keys, owners) = missing.entry(m.pod.as_str()).or_default();
            keys.extend(m.missing.iter().map(String::as_str));
            owners.push(workload);
        }
    }
    if !missing.is_empty() {
        let named: Vec<String> = missing
            .iter()
            .take(NAMED_PODS)
            .map(|(pod, (keys, owners))| {
                let mut keys = keys.clone();
                keys.sort();
                keys.dedup();
                let overlap = if owners.len() > 1 {
                    format!(
                        "; selected by {}: overlapping pod selectors",
                        owners.join(" and ")
                    )
                } else {
                    String::new()
                };
                format!("{pod} ({}{overlap})", keys.join(", "))
            })
            .collect();
        let more = missing.len().saturating_sub(NAMED_PODS);
        return Some((
            "False",
            reason::CONSTRAINTS_MISSING,
            format!(
                "{} of {} pod(s) created since the constraints were published lack them: {}{}",
                missing.len(),
                checked.len(),
                named.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            ),
        ));
    }
    if checked.is_empty() {
        return Some((
            "Unknown",
            reason::NO_NEW_PODS,
            "no pod was created since the constraints were published".to_string(),
        ));
    }
    Some((
        "True",
        reason::CONSTRAINTS_ADMITTED,
        format!(
            "all {} pod(s) created since the constraints were published carry them",
            checked.len()
        ),
    ))
}

#[cfg(test)]
mod tests;
