//! The decision memory as it is kept in the policy's status, and back: a restarted operator or a
//! new leader reads it before its first write, so no cooldown, back-off or eviction in flight is
//! forgotten (pure conversions; timestamps are whole seconds, as the API server stores them).

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::{ConstraintSkew, InFlightEviction, RebalanceMemory, RebalanceStatus};
use crate::core::topology::Baseline;

use super::{InFlight, Memory};

/// What of `memory` goes into the status (`None` when there is nothing to remember).
pub fn to_status(memory: &Memory) -> Option<RebalanceMemory> {
    let persisted = RebalanceMemory {
        skewed_since: memory.skewed_since.map(Time),
        episode: memory.episode,
        in_flight: memory
            .in_flight
            .iter()
            .map(|m| InFlightEviction {
                pod: m.pod.clone(),
                pod_uid: m.pod_uid.clone(),
                topology_key: m.topology_key.clone(),
                to_domain: m.to_domain.clone(),
                at: Time(m.at),
                from_domain: m.baseline.from_domain.clone(),
                from_count_before: m.baseline.from_count,
                skews_before: m
                    .baseline
                    .skews
                    .iter()
                    .map(|(topology_key, skew)| ConstraintSkew {
                        topology_key: topology_key.clone(),
                        skew: *skew,
                    })
                    .collect(),
                distance_before: m.baseline.distance,
            })
            .collect(),
        failed_moves: memory.failed_moves,
        backoff_seconds: memory
            .backoff
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
        backoff_until: memory.backoff_until.map(Time),
        budget_blocked_until: memory.pdb_blocked_until.map(Time),
        rollout_generation: memory.rollout_generation,
        rollout_started: memory.rollout_started.map(Time),
        rollout_stuck_since: memory.rollout_stuck_since.map(Time),
        capacity: memory.capacity.clone(),
        capacity_blocked_until: memory.capacity_blocked_until.map(Time),
    };
    (persisted != RebalanceMemory::default()).then_some(persisted)
}

/// The memory a workload's status entry holds.
pub fn from_status(status: &RebalanceStatus) -> Memory {
    let persisted = status.memory.clone().unwrap_or_default();
    Memory {
        skewed_since: persisted.skewed_since.map(|t| t.0),
        last_action: status.last_action_time.as_ref().map(|t| t.0),
        episode: persisted.episode,
        in_flight: persisted
            .in_flight
            .into_iter()
            .map(|m| InFlight {
                baseline: Baseline {
                    skews: m
                        .skews_before
                        .into_iter()
                        .map(|c| (c.topology_key, c.skew))
                        .collect(),
                    distance: m.distance_before,
                    topology_key: m.topology_key.clone(),
                    from_domain: m.from_domain,
                    from_count: m.from_count_before,
                },
                pod: m.pod,
                pod_uid: m.pod_uid,
                topology_key: m.topology_key,
                to_domain: m.to_domain,
                at: m.at.0,
            })
            .collect(),
        failed_moves: persisted.failed_moves,
        backoff: persisted
            .backoff_seconds
            .map(|s| Duration::from_secs(u64::try_from(s).unwrap_or(0))),
        backoff_until: persisted.backoff_until.map(|t| t.0),
        pdb_blocked_until: persisted.budget_blocked_until.map(|t| t.0),
        actions: status.actions,
        rollout_generation: persisted.rollout_generation,
        rollout_started: persisted.rollout_started.map(|t| t.0),
        rollout_stuck_since: persisted.rollout_stuck_since.map(|t| t.0),
        capacity: persisted.capacity,
        capacity_blocked_until: persisted.capacity_blocked_until.map(|t| t.0),
    }
}

/// Rounds a time down to whole seconds, as the API server stores it.
pub fn whole_seconds(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_memory_survives_the_round_trip_through_the_status() {
        let memory = Memory {
            skewed_since: Some(at("2026-06-01T00:00:00Z")),
            last_action: Some(at("2026-06-01T00:01:00Z")),
            episode: true,
            in_flight: vec![InFlight {
                pod: "web-1".into(),
                pod_uid: "u1".into(),
                topology_key: "topology.kubernetes.io/zone".into(),
                to_domain: "a".into(),
                at: at("2026-06-01T00:01:00Z"),
                baseline: Baseline {
                    skews: vec![("topology.kubernetes.io/zone".into(), 3)],
                    distance: 2,
                    topology_key: "topology.kubernetes.io/zone".into(),
                    from_domain: "c".into(),
                    from_count: Some(3),
                },
            }],
            failed_moves: 1,
            backoff: Some(Duration::from_secs(600)),
            backoff_until: Some(at("2026-06-01T00:11:00Z")),
            pdb_blocked_until: Some(at("2026-06-01T00:01:10Z")),
            actions: 4,
            rollout_generation: Some(7),
            rollout_started: Some(at("2026-06-01T00:00:30Z")),
            rollout_stuck_since: Some(at("2026-06-01T00:10:30Z")),
            capacity: Some(crate::api::CapacityRequest {
                topology_key: "topology.kubernetes.io/zone".into(),
                domain: "c".into(),
                pods: 1,
                via: crate::api::CapacityVia::PlaceholderPods,
                names: vec!["sg-cap-0123456789-0".into()],
                requested_at: Time(at("2026-06-01T00:00:40Z")),
                used: true,
            }),
            capacity_blocked_until: Some(at("2026-06-01T00:20:00Z")),
        };
        let status = RebalanceStatus {
            last_action_time: memory.last_action.map(Time),
            actions: memory.actions,
            memory: to_status(&memory),
            ..Default::default()
        };
        // Through JSON, as the API server would hand it back.
        let status: RebalanceStatus =
            serde_json::from_value(serde_json::to_value(&status).unwrap()).unwrap();
        assert_eq!(from_status(&status), memory);
    }

    #[test]
    fn an_idle_memory_writes_nothing() {
        assert_eq!(to_status(&Memory::default()), None);
        assert_eq!(from_status(&RebalanceStatus::default()), Memory::default());
    }
}
