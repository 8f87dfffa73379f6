//! The status a policy reports, built from each workload's outcome (pure: the controller writes
//! it only when it differs from what is already there).

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::conditions::{condition_type, reason};
use crate::api::{
    AdmissionParameters, AdmittedWorkload, ConstraintStatus, HAPolicyStatus, InjectionMode,
    InjectionStatus, RebalanceState, RebalanceStatus, ScaleInStatus, WorkloadKind, WorkloadStatus,
    ZoneHealth, ZoneLoss, ZoneStatus,
};
use crate::core::decision::Memory;
use crate::core::injection::{AdmissionCheck, AdmissionSupport, admitted_condition};
use crate::core::topology::{DomainLoss, HOSTNAME_KEY, Measurement, ZONE_KEY};

/// Keys with more domains than this report no per-domain counts (hostname spread on a large
/// cluster would otherwise bloat the object).
pub const MAX_REPORTED_DOMAINS: usize = 16;

/// Everything known about one workload at the end of a reconcile.
#[derive(Clone, Debug)]
pub struct WorkloadOutcome {
    pub kind: WorkloadKind,
    pub name: String,
    pub replicas: i32,
    pub measurement: Measurement,
    pub zone_loss: Option<DomainLoss>,
    /// The topology key the zone loss is computed on (the zone key when the workload spreads
    /// over it, else its first constraint's key).
    pub zone_loss_key: String,
    pub state: RebalanceState,
    pub reason: String,
    /// What is remembered about the workload (persisted in its status entry).
    pub memory: Memory,
    /// What happened or would have happened (injection, dry-run), for the message.
    pub note: Option<String>,
    /// Whether a scale-in keeps the spread (`None`: not this policy's to say, another governs).
    pub scale_in: Option<ScaleInStatus>,
    /// How the workload's pods get the constraints (`None`: nothing is added, or another
    /// policy governs it).
    pub injection: Option<InjectionMode>,
    /// Admission mode: the `status.admission` entry published for the workload.
    pub admission: Option<AdmittedWorkload>,
    /// Admission mode: how the pods created since then compare with it.
    pub admission_check: Option<AdmissionCheck>,
    /// Per Adaptive key published in admission mode: running pods admitted relaxed.
    pub relaxed_pods: Vec<(String, i64)>,
}

/// A short name for a topology key in messages.
pub fn key_name(key: &str) -> &str {
    match key {
        ZONE_KEY => "zone",
        HOSTNAME_KEY => "hostname",
        other => other,
    }
}

impl WorkloadOutcome {
    pub fn balanced(&self) -> bool {
        self.measurement.within_policy()
    }

    /// Whether rebalancing is held up (Blocked, or backing off after ineffective moves).
    pub fn blocks(&self) -> bool {
        matches!(
            self.state,
            RebalanceState::Blocked | RebalanceState::BackingOff
        )
    }

    /// "zone skew 2 > 1" for each constraint over its maxSkew.
    pub fn skew_summary(&self) -> Vec<String> {
        self.measurement
            .constraints
            .iter()
            .filter(|c| !c.within_max_skew())
            .map(|c| {
                let missing = (c.expected.as_ref())
                    .filter(|e| !e.missing.is_empty())
                    .map(|e| format!(" ({} missing)", e.missing.join(", ")))
                    .unwrap_or_default();
                format!(
                    "{} skew {} > {}{missing}",
                    key_name(&c.topology_key),
                    c.effective_skew(),
                    c.max_skew
                )
            })
            .collect()
    }

    pub fn status(&self) -> WorkloadStatus {
        let mut message: Vec<String> = Vec::new();
        let skews = self.skew_summary();
        if !skews.is_empty() {
            let since = self
                .memory
                .skewed_since
                .map(|t| format!(" since {}", t.strftime("%Y-%m-%dT%H:%M:%SZ")))
                .unwrap_or_default();
            message.push(format!("{}{since}", skews.join(", ")));
        }
        if self.state == RebalanceState::Blocked || self.state == RebalanceState::BackingOff {
            message.push(format!("blocked: {}", self.reason));
        }
        if let Some(check) = self
            .admission_check
            .as_ref()
            .filter(|c| !c.missing.is_empty())
        {
            message.push(format!(
                "{} new pod(s) lack the admitted constraints",
                check.missing.len()
            ));
        }
        message.extend(self.note.clone());
        WorkloadStatus {
            kind: self.kind,
            name: self.name.clone(),
            replicas: self.replicas,
            balanced: self.balanced(),
            constraints: self
                .measurement
                .constraints
                .iter()
                .map(|c| {
                    let missing = c.expected.as_ref().map_or(&[][..], |e| &e.missing[..]);
                    ConstraintStatus {
                        topology_key: c.topology_key.clone(),
                        max_skew: c.max_skew,
                        skew: c.skew,
                        expected_skew: c.expected.as_ref().map(|e| e.skew),
                        missing_domains: missing.to_vec(),
                        domains: (c.domains.len() + missing.len() <= MAX_REPORTED_DOMAINS).then(
                            || {
                                let mut domains = c.domains.to_map();
                                domains.extend(missing.iter().map(|d| (d.clone(), 0)));
                                domains
                            },
                        ),
                    }
                })
                .collect(),
            zone_loss: self.zone_loss.as_ref().map(|l| ZoneLoss {
                domain: l.domain.clone(),
                pods_lost: l.pods_lost,
                fraction: l.fraction,
            }),
            rebalance: RebalanceStatus {
                state: self.state,
                reason: Some(self.reason.clone()),
                last_action_time: self.memory.last_action.map(Time),
                actions: self.memory.actions,
                memory: crate::core::decision::persisted::to_status(&self.memory),
            },
            injection: self.injection,
            scale_in: self.scale_in.clone(),
            message: (!message.is_empty()).then(|| message.join("; ")),
        }
    }
}

/// The body of the merge patch that writes `status`. A merge patch leaves out what it does not
/// name, so `admission` is named as null when not published: what an earlier status published
/// for the admission policy is removed, and pods stop getting it.
pub fn status_patch(status: &HAPolicyStatus) -> serde_json::Value {
    let mut body = serde_json::json!({ "status": status });
    if status.admission.is_none() {
        body["status"]["admission"] = serde_json::Value::Null;
    }
    body
}

/// `status` (the last one written, `None`: none yet) with one workload's entry replaced, or added:
/// what is written before an eviction ([`crate::core::pipeline::before_eviction`]).
pub fn with_workload(status: Option<&HAPolicyStatus>, entry: WorkloadStatus) -> HAPolicyStatus {
    let mut status = status.cloned().unwrap_or_default();
    match (status.workloads.iter_mut()).find(|w| w.kind == entry.kind && w.name == entry.name) {
        Some(existing) => *existing = entry,
        None => status.workloads.push(entry),
    }
    status
}

/// `status` with the entries of the `busy` workloads as `base` has them: their writes are still
/// under way, and the move in flight they recorded must not be overwritten by the entry assessed
/// before it. A busy workload that `base` has no entry for keeps the one in `status`.
pub fn with_entries_of(
    mut status: HAPolicyStatus,
    base: Option<&HAPolicyStatus>,
    busy: &[(WorkloadKind, String)],
) -> HAPolicyStatus {
    let kept = (base.iter())
        .flat_map(|b| &b.workloads)
        .filter(|w| (busy.iter()).any(|(kind, name)| w.kind == *kind && w.name == *name));
    for entry in kept {
        if let Some(e) =
            (status.workloads.iter_mut()).find(|e| e.kind == entry.kind && e.name == entry.name)
        {
            *e = entry.clone();
        }
    }
    status
}

/// How the policy's constraints reach the pods, as the reconcile decided it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyInjection<'a> {
    /// `None`: not known yet ([`crate::core::injection::choose_mode`]).
    pub status: Option<&'a InjectionStatus>,
    /// What the cluster offers for admission mode (`None`: not known).
    pub support: Option<&'a AdmissionSupport>,
}

/// Why the policy cannot be used as it is, for its Ready condition.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PolicyProblems<'a> {
    /// What makes it invalid (reason InvalidInput).
    pub invalid: &'a [String],
    /// Its Adaptive entries cannot be followed (reason AdaptiveUnavailable).
    pub adaptive_unavailable: Option<&'a str>,
}

/// The whole status: counts, workloads, the injection mode with what the admission policy reads,
/// and the conditions (Ready, Balanced, Rebalancing, and Admitted in admission mode), keeping
/// each condition's `lastTransitionTime` unless its status flips. With every workload within
/// maxSkew while a zone is Out, Balanced is False with reason ZoneOut: the spread leaves that
/// zone out.
pub fn policy_status(
    previous: Option<&HAPolicyStatus>,
    generation: Option<i64>,
    outcomes: &[WorkloadOutcome],
    problems: &PolicyProblems,
    injection: &PolicyInjection,
    zones: &[ZoneStatus],
    now: Timestamp,
) -> HAPolicyStatus {
    let unbalanced: Vec<&WorkloadOutcome> = outcomes.iter().filter(|o| !o.balanced()).collect();
    let acting: Vec<&WorkloadOutcome> = outcomes
        .iter()
        .filter(|o| {
            matches!(
                o.state,
                RebalanceState::Evicting | RebalanceState::Restarting
            )
        })
        .collect();
    let unreadable: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.reason == reason::INVALID_WORKLOAD)
        .map(|o| o.name.as_str())
        .collect();
    let out: Vec<String> = (zones.iter())
        .filter(|z| z.health == ZoneHealth::Out)
        .map(|z| format!("{} ({})", z.domain, z.reason))
        .collect();
    let ready = if !problems.invalid.is_empty() {
        ("False", "InvalidInput", problems.invalid.join("; "))
    } else if let Some(why) = problems.adaptive_unavailable {
        ("False", reason::ADAPTIVE_UNAVAILABLE, why.to_string())
    } else {
        let mut message = format!("governing {} workload(s)", outcomes.len());
        if !unreadable.is_empty() {
            message.push_str(&format!(
                "; {} cannot be read (see their entries): {}",
                unreadable.len(),
                unreadable.join(", ")
            ));
        }
        ("True", reason::RECONCILED, message)
    };
    let balanced = if unbalanced.is_empty() && !out.is_empty() {
        (
            "False",
            reason::ZONE_OUT,
            format!(
                "all {} workload(s) within maxSkew over the zones that take pods; Out: {}",
                outcomes.len(),
                out.join(", ")
            ),
        )
    } else if unbalanced.is_empty() {
        (
            "True",
            reason::BALANCED,
            format!("all {} workload(s) within maxSkew", outcomes.len()),
        )
    } else {
        let list: Vec<String> = unbalanced
            .iter()
            .map(|o| format!("{}: {}", o.name, o.skew_summary().join(", ")))
            .collect();
        ("False", reason::SKEW_EXCEEDED, list.join("; "))
    };
    let rebalancing = match acting.first() {
        Some(first) => (
            "True",
            if first.state == RebalanceState::Restarting {
                reason::RESTARTING
            } else {
                reason::EVICTING
            },
            acting
                .iter()
                .map(|o| format!("{}: {}", o.name, o.reason))
                .collect::<Vec<_>>()
                .join("; "),
        ),
        None => ("False", "Idle", "no rebalance under way".to_string()),
    };
    let previous_conditions: BTreeMap<&str, &Condition> = previous
        .map(|p| p.conditions.iter().map(|c| (c.type_.as_str(), c)).collect())
        .unwrap_or_default();
    let condition = |type_: &str, (status, reason, message): (&str, &str, String)| {
        let last = previous_conditions
            .get(type_)
            .filter(|c| c.status == status)
            .map(|c| c.last_transition_time.clone())
            .unwrap_or(Time(now));
        Condition {
            type_: type_.to_string(),
            status: status.to_string(),
            reason: reason.to_string(),
            message,
            observed_generation: generation,
            last_transition_time: last,
        }
    };
    let admitted: Vec<AdmittedWorkload> = outcomes
        .iter()
        .filter_map(|o| o.admission.clone())
        .collect();
    let checks: Vec<(&str, &AdmissionCheck)> = outcomes
        .iter()
        .filter_map(|o| o.admission_check.as_ref().map(|c| (o.name.as_str(), c)))
        .collect();
    let mut conditions = vec![
        condition(condition_type::READY, ready),
        condition(condition_type::BALANCED, balanced),
        condition(condition_type::REBALANCING, rebalancing),
    ];
    if let Some((status, reason, message)) =
        admitted_condition(injection.status, injection.support, &checks)
    {
        conditions.push(condition(
            condition_type::ADMITTED,
            (status, reason, message),
        ));
    }
    HAPolicyStatus {
        observed_generation: generation,
        conditions,
        workload_count: outcomes.len() as i32,
        unbalanced_count: unbalanced.len() as i32,
        max_observed_skew: outcomes
            .iter()
            .map(|o| o.measurement.max_skew())
            .max()
            .unwrap_or(0),
        workloads: outcomes.iter().map(WorkloadOutcome::status).collect(),
        injection: injection.status.cloned(),
        admission: (injection.status.map(|s| s.mode) == Some(InjectionMode::Admission)
            && !admitted.is_empty())
        .then_some(AdmissionParameters {
            workloads: admitted,
        }),
        // The policy phase fills in what it resolved of the expected domains and the zones.
        expected_domains: Vec::new(),
        warnings: Vec::new(),
        zones: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, replicas: i32) -> WorkloadStatus {
        serde_json::from_value(serde_json::json!({
            "kind": "Deployment", "name": name, "replicas": replicas, "balanced": false
        }))
        .unwrap()
    }

    fn status(entries: Vec<WorkloadStatus>) -> HAPolicyStatus {
        HAPolicyStatus {
            workloads: entries,
            ..HAPolicyStatus::default()
        }
    }

    /// The busy workload keeps the entry its writer recorded (here: 9 replicas); the others take
    /// the reconcile's; a busy workload new to the base keeps the reconcile's.
    #[test]
    fn a_busy_workload_keeps_the_entry_its_writes_left() {
        let base = status(vec![entry("web", 9), entry("api", 9)]);
        let computed = status(vec![entry("web", 3), entry("api", 3), entry("new", 3)]);
        let busy = [
            (WorkloadKind::Deployment, "web".to_string()),
            (WorkloadKind::Deployment, "new".to_string()),
        ];
        let written = with_entries_of(computed, Some(&base), &busy);
        let replicas: Vec<(&str, i32)> = (written.workloads.iter())
            .map(|w| (w.name.as_str(), w.replicas))
            .collect();
        assert_eq!(replicas, [("web", 9), ("api", 3), ("new", 3)]);
    }
}
