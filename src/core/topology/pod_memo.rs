//! What a snapshot works out from a pod alone, kept with the pod. A pod is immutable once
//! observed (the watch replaces it whole), yet every reconcile of its namespace indexes it
//! again: its labels' posting-list keys and its node's place in the node set were hashed anew
//! each time (a fifth of the whole-cluster pass). Here they are made once per pod version, and
//! the node's place once per node set.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use super::fast_hash::fast_hash;
use super::model::Labels;

/// The posting-list key of one label.
pub(crate) fn label_hash(key: &str, value: &str) -> u64 {
    fast_hash((key, value))
}

/// A cache of what is derived from the pod it sits in: made on first use, never part of what
/// the pod is. A clone starts empty (the clone may be changed before it is used) and every
/// memo equals every other.
#[derive(Default)]
pub struct PodMemo {
    label_hashes: OnceLock<Box<[u64]>>,
    /// The node set's generation (high half, never 0) and the node's index + 1 (low half, 0:
    /// not in that set); 0 when not yet looked up.
    node: AtomicU64,
}

impl PodMemo {
    /// The posting-list keys of `labels`, which must be the pod's own.
    pub(crate) fn label_hashes(&self, labels: &Labels) -> &[u64] {
        self.label_hashes
            .get_or_init(|| labels.iter().map(|(k, v)| label_hash(k, v)).collect())
    }

    /// The pod's node's index in the node set of `generation` (never 0), looked up with
    /// `lookup` the first time this set asks.
    pub(crate) fn node_index(
        &self,
        generation: u32,
        lookup: impl FnOnce() -> Option<usize>,
    ) -> Option<usize> {
        let known = self.node.load(Ordering::Relaxed);
        if known != 0 && (known >> 32) as u32 == generation {
            return (known as u32).checked_sub(1).map(|i| i as usize);
        }
        let found = lookup();
        // A node set beyond u32::MAX - 1 nodes is not cached (and does not exist).
        if let Some(slot) = found.map_or(Some(0), |i| u32::try_from(i + 1).ok()) {
            let packed = (u64::from(generation) << 32) | u64::from(slot);
            self.node.store(packed, Ordering::Relaxed);
        }
        found
    }
}

impl Clone for PodMemo {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl PartialEq for PodMemo {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for PodMemo {}

impl std::fmt::Debug for PodMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PodMemo")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_hashes_are_made_once_and_a_clone_starts_empty() {
        let memo = PodMemo::default();
        let labels: Labels = [("app".to_string(), "web".to_string())].into();
        assert_eq!(memo.label_hashes(&labels), &[label_hash("app", "web")]);
        // Made once: other labels later are not looked at (the pod cannot change).
        assert_eq!(
            memo.label_hashes(&Labels::new()),
            &[label_hash("app", "web")]
        );
        assert!(memo.clone().label_hashes(&Labels::new()).is_empty());
    }

    #[test]
    fn a_node_index_is_looked_up_once_per_node_set() {
        let memo = PodMemo::default();
        let mut lookups = 0;
        let mut index = |generation, found: Option<usize>| {
            memo.node_index(generation, || {
                lookups += 1;
                found
            })
        };
        assert_eq!(index(1, Some(7)), Some(7));
        assert_eq!(index(1, Some(99)), Some(7), "the same set: remembered");
        assert_eq!(index(2, None), None, "another set: looked up again");
        assert_eq!(index(2, Some(3)), None, "not in that set: remembered too");
        assert_eq!(index(3, Some(0)), Some(0));
        assert_eq!(lookups, 3);
    }

    /// The same pods in snapshots over different node sets (a widened snapshot with provisional
    /// nodes sorts in before them): each set finds the pod's node at its own place.
    #[test]
    fn snapshots_over_other_node_sets_place_the_same_pod_afresh() {
        use crate::core::topology::Cluster;
        use crate::core::topology::fixtures::{node, pod};
        use kube::core::Selector;

        let base = Cluster::new(
            vec![node("b-0", "b")],
            vec![pod("web-1", "shop", "web", "b-0")],
        );
        assert_eq!(base.node_of_pod(0), Some(0));
        let widened = base.with_nodes(vec![node("a-0", "a")]);
        assert!(std::sync::Arc::ptr_eq(&base.pods()[0], &widened.pods()[0]));
        assert_eq!(widened.node_of_pod(0), Some(1), "a-0 sorts first");
        assert_eq!(
            base.node_of_pod(0),
            Some(0),
            "the first set's place is not taken for it"
        );
        let web: Selector = [("app", "web")].into_iter().collect();
        assert_eq!(widened.select_pods("shop", &web), [0]);
        assert_eq!(base.select_pods("shop", &web), [0]);
    }
}
