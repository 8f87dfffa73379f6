//! The cluster-wide budget of rollouts skewguard may start (`--max-concurrent-rollouts`), with
//! reserve/commit semantics as the eviction rate limiter has: a workload's reconcile asks for a
//! [`RolloutPermit`] before it is assessed (a free slot is reserved for it then, so two reconciles
//! never both take the last one), and its conclusion says whether it holds the slot afterwards
//! ([`SlotChange`]), which the shell applies once.
//!
//! Whether a workload holds a slot is part of its persisted memory
//! (`rebalance.memory.rolloutGeneration`); this set is only its index, rebuilt from the policies'
//! status in one place ([`RolloutSlots::from_status`]) after a start or a change of leader.

use std::collections::BTreeSet;

use crate::api::HAPolicy;
use crate::core::pipeline::WorkloadKey;

/// Whether a write of this step that starts a rollout may go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RolloutPermit {
    /// The workload holds a slot, or one was reserved for it.
    Granted,
    /// Every slot is taken by other workloads.
    Denied { in_use: usize, max: usize },
}

/// Whether a workload holds a slot once its step is concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotChange {
    /// It started a rollout (or one it started is not done yet).
    Hold,
    /// It holds none: its reservation, if any, is given back.
    Release,
}

/// Who holds a slot, and who has one reserved while its step is carried out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolloutSlots {
    max: usize,
    held: BTreeSet<WorkloadKey>,
    reserved: BTreeSet<WorkloadKey>,
}

impl RolloutSlots {
    pub fn new(max: usize) -> Self {
        Self {
            max,
            held: BTreeSet::new(),
            reserved: BTreeSet::new(),
        }
    }

    /// The slots the policies' status says are held: each workload whose memory names a rollout
    /// skewguard started that is not done yet.
    pub fn from_status<'a>(max: usize, policies: impl IntoIterator<Item = &'a HAPolicy>) -> Self {
        let mut slots = Self::new(max);
        for p in policies {
            let (namespace, policy) = (
                p.metadata.namespace.as_deref().unwrap_or_default(),
                p.metadata.name.as_deref().unwrap_or_default(),
            );
            let holding = p.status.iter().flat_map(|s| &s.workloads).filter(|w| {
                (w.rebalance.memory.as_ref()).is_some_and(|m| m.rollout_generation.is_some())
            });
            slots
                .held
                .extend(holding.map(|w| WorkloadKey::new(namespace, policy, w.kind, &w.name)));
        }
        slots
    }

    /// Slots held or reserved.
    pub fn in_use(&self) -> usize {
        self.held.union(&self.reserved).count()
    }

    /// A permit for `key`'s step: granted when it holds a slot or one is free (reserved for it
    /// until [`RolloutSlots::settle`]).
    pub fn permit(&mut self, key: &WorkloadKey) -> RolloutPermit {
        if self.held.contains(key) || self.reserved.contains(key) {
            return RolloutPermit::Granted;
        }
        let in_use = self.in_use();
        if in_use >= self.max {
            return RolloutPermit::Denied {
                in_use,
                max: self.max,
            };
        }
        self.reserved.insert(key.clone());
        RolloutPermit::Granted
    }

    /// Applies what `key`'s conclusion says, ending its reservation.
    pub fn settle(&mut self, key: &WorkloadKey, change: SlotChange) {
        self.reserved.remove(key);
        match change {
            SlotChange::Hold => {
                self.held.insert(key.clone());
            }
            SlotChange::Release => {
                self.held.remove(key);
            }
        }
    }

    /// Keeps only the workloads `keep` says still exist.
    pub fn retain(&mut self, keep: impl Fn(&WorkloadKey) -> bool) {
        self.held.retain(&keep);
        self.reserved.retain(&keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::WorkloadKind;

    fn key(name: &str) -> WorkloadKey {
        WorkloadKey::new("ns", "p", WorkloadKind::Deployment, name)
    }

    #[test]
    fn a_reserved_slot_counts_until_it_is_settled() {
        let mut slots = RolloutSlots::new(1);
        assert_eq!(slots.permit(&key("a")), RolloutPermit::Granted);
        // a's step is under way: the last slot is reserved for it.
        assert_eq!(
            slots.permit(&key("b")),
            RolloutPermit::Denied { in_use: 1, max: 1 }
        );
        // Asking again while reserved (or holding) is granted again.
        assert_eq!(slots.permit(&key("a")), RolloutPermit::Granted);
        slots.settle(&key("a"), SlotChange::Release);
        assert_eq!(slots.permit(&key("b")), RolloutPermit::Granted);
        slots.settle(&key("b"), SlotChange::Hold);
        assert_eq!(
            slots.permit(&key("a")),
            RolloutPermit::Denied { in_use: 1, max: 1 }
        );
        assert_eq!(slots.permit(&key("b")), RolloutPermit::Granted);
        slots.settle(&key("b"), SlotChange::Hold);
        assert_eq!(slots.in_use(), 1);
        slots.retain(|k| k.name != "b");
        assert_eq!(slots.in_use(), 0);
    }

    #[test]
    fn held_slots_are_read_from_the_policies_status() {
        let policy: HAPolicy = serde_json::from_value(serde_json::json!({
            "apiVersion": "skewguard.dev/v1alpha1", "kind": "HAPolicy",
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {"selector": {}, "spread": [{"topologyKey": "k"}]},
            "status": {"workloads": [
                {"kind": "Deployment", "name": "rolling", "replicas": 2, "balanced": true,
                 "rebalance": {"state": "Idle", "memory": {"rolloutGeneration": 3}}},
                {"kind": "Deployment", "name": "idle", "replicas": 2, "balanced": true,
                 "rebalance": {"state": "Idle", "memory": {}}}
            ]}
        }))
        .unwrap();
        let mut slots = RolloutSlots::from_status(2, [&policy]);
        assert_eq!(slots.in_use(), 1);
        assert_eq!(slots.permit(&key("rolling")), RolloutPermit::Granted);
        assert_eq!(slots.in_use(), 1, "a holder reserves nothing more");
    }
}
