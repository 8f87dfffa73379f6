//! Whether a PodDisruptionBudget lets a workload's pods be disrupted now (pure: over the budgets
//! as their controller last computed them).

use std::collections::BTreeMap;

use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::core::{Selector, SelectorExt};

/// Whether a budget of `namespace` that selects pods labelled `pod_labels` allows no disruption
/// now. A budget whose status is older than its spec is not trusted either way.
pub fn budget_exhausted<'a>(
    budgets: impl IntoIterator<Item = &'a PodDisruptionBudget>,
    namespace: &str,
    pod_labels: &BTreeMap<String, String>,
) -> bool {
    budgets.into_iter().any(|pdb| {
        let Some(spec) = pdb.spec.as_ref() else {
            return false;
        };
        // The status first: most budgets have room, and then their selector is never parsed.
        pdb.metadata.namespace.as_deref() == Some(namespace)
            && pdb.status.as_ref().is_some_and(|s| {
                s.observed_generation >= pdb.metadata.generation && s.disruptions_allowed <= 0
            })
            && spec
                .selector
                .clone()
                .and_then(|s| Selector::try_from(s).ok())
                // policy/v1: an empty selector selects every pod of the namespace.
                .is_some_and(|s| s.matches(pod_labels))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn budget(ns: &str, allowed: i32, observed: i64) -> PodDisruptionBudget {
        serde_json::from_value(json!({
            "metadata": {"name": "b", "namespace": ns, "generation": 2},
            "spec": {"selector": {"matchLabels": {"tier": "web"}}},
            "status": {"observedGeneration": observed, "disruptionsAllowed": allowed,
                       "currentHealthy": 2, "desiredHealthy": 2, "expectedPods": 2}
        }))
        .unwrap()
    }

    #[test]
    fn a_current_budget_without_room_blocks_only_its_own_pods() {
        let web = BTreeMap::from([("tier".to_string(), "web".to_string())]);
        let db = BTreeMap::from([("tier".to_string(), "db".to_string())]);
        assert!(budget_exhausted(&[budget("a", 0, 2)], "a", &web));
        assert!(!budget_exhausted(&[budget("a", 0, 2)], "a", &db));
        assert!(!budget_exhausted(&[budget("a", 0, 2)], "b", &web));
        assert!(!budget_exhausted(&[budget("a", 1, 2)], "a", &web));
        assert!(
            !budget_exhausted(&[budget("a", 0, 1)], "a", &web),
            "stale status"
        );
    }
}
