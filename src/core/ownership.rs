//! One owner per workload: when several policies select it, the oldest (creationTimestamp, then
//! name) governs and the others report a conflict.

use kube::ResourceExt;
use kube::core::{Selector, SelectorExt};

use crate::api::HAPolicy;
use crate::core::workload::Identified;

/// Whether the policy selects the workload: same namespace, a kind it covers, labels matching.
/// Only the object's identity is read, so a workload whose spec cannot be read is selected (and
/// reported) like any other.
pub fn selects(policy: &HAPolicy, workload: &impl Identified) -> bool {
    Selection::of(policy).selects(workload)
}

/// A policy with its label selector parsed once: a policy phase asks it of every workload of the
/// namespace, and of each selected one again for the policy that governs it.
pub struct Selection<'a> {
    pub policy: &'a HAPolicy,
    /// `None`: the selector is invalid and selects nothing.
    selector: Option<Selector>,
}

impl<'a> Selection<'a> {
    pub fn of(policy: &'a HAPolicy) -> Self {
        Self {
            policy,
            selector: Selector::try_from(policy.spec.selector.clone()).ok(),
        }
    }

    /// See [`selects`].
    pub fn selects(&self, workload: &impl Identified) -> bool {
        static NO_LABELS: std::collections::BTreeMap<String, String> =
            std::collections::BTreeMap::new();
        let meta = workload.meta();
        self.policy.metadata.namespace == meta.namespace
            && self.policy.spec.workload_kinds.contains(&workload.kind())
            && (self.selector.as_ref())
                .is_some_and(|s| s.matches(meta.labels.as_ref().unwrap_or(&NO_LABELS)))
    }
}

/// The name of the policy that governs the workload among `policies`, if any selects it.
pub fn governing_policy<'a>(
    policies: impl IntoIterator<Item = &'a HAPolicy>,
    workload: &impl Identified,
) -> Option<String> {
    let selections: Vec<Selection> = policies.into_iter().map(Selection::of).collect();
    governing(&selections, workload).map(|p| p.name_any())
}

/// The policy that governs the workload among `selections`: the oldest that selects it
/// (creationTimestamp, then name).
pub fn governing<'a>(
    selections: &[Selection<'a>],
    workload: &impl Identified,
) -> Option<&'a HAPolicy> {
    (selections.iter())
        .filter(|s| s.selects(workload))
        .map(|s| s.policy)
        .min_by(|a, b| {
            let created = |p: &HAPolicy| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
            (created(a).cmp(&created(b))).then_with(|| a.metadata.name.cmp(&b.metadata.name))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::workload::WorkloadObject;
    use k8s_openapi::api::apps::v1::Deployment;
    use serde_json::json;

    fn policy(name: &str, created: &str, kinds: &[&str]) -> HAPolicy {
        serde_json::from_value(json!({
            "apiVersion": "skewguard.dev/v1alpha1", "kind": "HAPolicy",
            "metadata": {"name": name, "namespace": "shop", "creationTimestamp": created},
            "spec": {"selector": {"matchLabels": {"team": "a"}}, "workloadKinds": kinds,
                     "spread": [{"topologyKey": "topology.kubernetes.io/zone"}]}
        }))
        .unwrap()
    }

    fn deployment(ns: &str) -> WorkloadObject {
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": ns, "labels": {"team": "a"}},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {}}
        }))
        .unwrap();
        WorkloadObject::from_object(&d).unwrap()
    }

    #[test]
    fn the_oldest_policy_governs_then_the_first_by_name() {
        let old = policy("zeta", "2026-01-01T00:00:00Z", &["Deployment"]);
        let new = policy("alpha", "2026-02-01T00:00:00Z", &["Deployment"]);
        assert_eq!(
            governing_policy([&new, &old], &deployment("shop")).as_deref(),
            Some("zeta")
        );
        let twin = policy("beta", "2026-01-01T00:00:00Z", &["Deployment"]);
        assert_eq!(
            governing_policy([&old, &twin], &deployment("shop")).as_deref(),
            Some("beta")
        );
    }

    #[test]
    fn a_policy_only_selects_its_namespace_and_kinds() {
        let p = policy("p", "2026-01-01T00:00:00Z", &["Deployment"]);
        assert!(selects(&p, &deployment("shop")));
        assert!(!selects(&p, &deployment("other")));
        let sts_only = policy("s", "2026-01-01T00:00:00Z", &["StatefulSet"]);
        assert!(!selects(&sts_only, &deployment("shop")));
        assert_eq!(governing_policy([&sts_only], &deployment("shop")), None);
    }
}
