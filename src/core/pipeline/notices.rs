//! Which Events a workload's reconcile warrants (pure): actions announce themselves, and state
//! changes are told once, when they happen, not on every reconcile.

use crate::api::conditions::reason;
use crate::api::{HAPolicySpec, RebalanceState, WhenUnsatisfiable, ZoneHealth};
use crate::core::policy_status::key_name;
use crate::core::zone_health::Zones;

/// The reasons skewguard's Events carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventReason {
    ConstraintsInjected,
    SkewDetected,
    PodEvicted,
    WorkloadRestarted,
    RebalanceBlocked,
    RebalanceIneffective,
    Balanced,
    PolicyConflict,
    CapacityRequested,
    CapacityReleased,
    /// A pod Pending only because of a DoNotSchedule spread while a zone is Out was deleted.
    PendingPodDeleted,
    /// A zone of the policy's keys is Out.
    ZoneOut,
    /// An Out zone takes pods again (Healthy after the recovery window).
    ZoneRecovering,
    /// A zone is Healthy again.
    ZoneHealthy,
}

impl EventReason {
    /// The Event's `reason`, as Kubernetes spells reasons (CamelCase).
    pub fn as_str(self) -> &'static str {
        match self {
            EventReason::ConstraintsInjected => "ConstraintsInjected",
            EventReason::SkewDetected => "SkewDetected",
            EventReason::PodEvicted => "PodEvicted",
            EventReason::WorkloadRestarted => "WorkloadRestarted",
            EventReason::RebalanceBlocked => "RebalanceBlocked",
            EventReason::RebalanceIneffective => "RebalanceIneffective",
            EventReason::Balanced => "Balanced",
            EventReason::PolicyConflict => "PolicyConflict",
            EventReason::CapacityRequested => "CapacityRequested",
            EventReason::CapacityReleased => "CapacityReleased",
            EventReason::PendingPodDeleted => "PendingPodDeleted",
            EventReason::ZoneOut => "ZoneOut",
            EventReason::ZoneRecovering => "ZoneRecovering",
            EventReason::ZoneHealthy => "ZoneHealthy",
        }
    }
}

/// One Event to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    pub warning: bool,
    pub reason: EventReason,
    pub note: String,
    /// The pod the Event is about (an eviction), as its related object. It also keeps each
    /// eviction an Event of its own: Events that differ only in their note are folded into one
    /// series that keeps the first note (kube's Recorder, like client-go's).
    pub pod: Option<PodRef>,
}

/// A pod by name and uid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodRef {
    pub name: String,
    pub uid: String,
}

impl Notice {
    pub fn normal(reason: EventReason, note: impl Into<String>) -> Self {
        Self {
            warning: false,
            reason,
            note: note.into(),
            pod: None,
        }
    }

    pub fn warning(reason: EventReason, note: impl Into<String>) -> Self {
        Self {
            warning: true,
            reason,
            note: note.into(),
            pod: None,
        }
    }

    /// The same Event, about `pod`.
    pub fn about_pod(self, name: &str, uid: &str) -> Self {
        Self {
            pod: Some(PodRef {
                name: name.to_string(),
                uid: uid.to_string(),
            }),
            ..self
        }
    }
}

/// The Events a change of a workload's state warrants (actions announce themselves).
pub fn transitions(
    was_skewed: bool,
    is_skewed: bool,
    skew_summary: &str,
    previous: Option<&(RebalanceState, String)>,
    state: RebalanceState,
    why: &str,
) -> Vec<Notice> {
    let mut out = Vec::new();
    if !was_skewed && is_skewed {
        out.push(Notice::warning(EventReason::SkewDetected, skew_summary));
    }
    if was_skewed && !is_skewed {
        out.push(Notice::normal(
            EventReason::Balanced,
            "every constraint is within maxSkew",
        ));
    }
    let changed = previous.is_none_or(|(s, r)| *s != state || r != why);
    if changed {
        match state {
            RebalanceState::Blocked if why == reason::CONFLICT => out.push(Notice::warning(
                EventReason::PolicyConflict,
                "an older HAPolicy selects this workload and governs it",
            )),
            // A rollout in progress is a normal pause, not worth a warning.
            RebalanceState::Blocked if why != reason::ROLLOUT_IN_PROGRESS => {
                out.push(Notice::warning(
                    EventReason::RebalanceBlocked,
                    format!("rebalance blocked: {why}"),
                ))
            }
            RebalanceState::BackingOff => out.push(Notice::warning(
                EventReason::RebalanceIneffective,
                "replacements keep landing back in the same domain; backing off",
            )),
            _ => {}
        }
    }
    out
}

/// The policy's Events for its zones' changes of health: Out (a warning), Recovering, Healthy;
/// each says what it means for the policy's Adaptive entries on that key.
pub fn zone_notices(spec: &HAPolicySpec, zones: &Zones) -> Vec<Notice> {
    let adaptive = |key: &str| {
        (spec.spread.iter())
            .any(|s| s.topology_key == key && s.when_unsatisfiable == WhenUnsatisfiable::Adaptive)
    };
    (zones.transitions.iter())
        .map(|t| {
            let z = &t.zone;
            let what = format!(
                "{} {} {}",
                key_name(&z.topology_key),
                z.domain,
                z.health.as_str()
            );
            let key_healthy = zones.all_healthy(&z.topology_key);
            let then = match (adaptive(&z.topology_key), z.health, key_healthy) {
                (false, _, _) => String::new(),
                (true, ZoneHealth::Healthy, true) => {
                    "; new pods are admitted with DoNotSchedule again".to_string()
                }
                (true, ZoneHealth::Healthy, false) => {
                    "; new pods stay admitted with ScheduleAnyway while another zone is not Healthy"
                        .to_string()
                }
                (true, _, _) => "; new pods are admitted with ScheduleAnyway".to_string(),
            };
            let note = format!("{what} ({}: {}){then}", z.reason, z.message);
            match z.health {
                ZoneHealth::Out => Notice::warning(EventReason::ZoneOut, note),
                ZoneHealth::Recovering => Notice::normal(EventReason::ZoneRecovering, note),
                ZoneHealth::Healthy => Notice::normal(EventReason::ZoneHealthy, note),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skew_and_balance_are_announced_once() {
        let first = transitions(
            false,
            true,
            "zone skew 2 > 1",
            None,
            RebalanceState::Waiting,
            "Stabilizing",
        );
        assert_eq!(
            first,
            vec![Notice::warning(
                EventReason::SkewDetected,
                "zone skew 2 > 1"
            )]
        );
        let previous = (RebalanceState::Waiting, "Stabilizing".to_string());
        let again = transitions(
            true,
            true,
            "zone skew 2 > 1",
            Some(&previous),
            RebalanceState::Waiting,
            "Stabilizing",
        );
        assert!(again.is_empty());
        let done = transitions(
            true,
            false,
            "",
            Some(&previous),
            RebalanceState::Idle,
            "Balanced",
        );
        assert_eq!(done[0].reason, EventReason::Balanced);
    }

    #[test]
    fn blocks_are_announced_when_they_start_or_change_reason() {
        let blocked = transitions(
            true,
            true,
            "",
            None,
            RebalanceState::Blocked,
            "PodDisruptionBudget",
        );
        assert_eq!(blocked[0].reason, EventReason::RebalanceBlocked);
        assert!(blocked[0].warning);
        let same = (RebalanceState::Blocked, "PodDisruptionBudget".to_string());
        assert!(
            transitions(
                true,
                true,
                "",
                Some(&same),
                RebalanceState::Blocked,
                "PodDisruptionBudget"
            )
            .is_empty()
        );
        let conflict = transitions(false, false, "", None, RebalanceState::Blocked, "Conflict");
        assert_eq!(conflict[0].reason, EventReason::PolicyConflict);
        let rollout = transitions(
            true,
            true,
            "",
            None,
            RebalanceState::Blocked,
            "RolloutInProgress",
        );
        assert!(rollout.is_empty());
        let backoff = transitions(
            true,
            true,
            "",
            None,
            RebalanceState::BackingOff,
            "RebalanceIneffective",
        );
        assert_eq!(backoff[0].reason, EventReason::RebalanceIneffective);
    }
}
