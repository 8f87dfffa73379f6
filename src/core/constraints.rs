//! Which spread constraints a workload is measured by, and which ones skewguard writes into its
//! pod template (pure: no client, no clock).
//!
//! The user's own constraints always win: the policy's entries are injected only for topology keys
//! on which the template has no constraint skewguard does not own, and measurement uses the
//! constraints really in the template, plus the policy's entries for keys still missing.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{
    PodAffinityTerm, TopologySpreadConstraint, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::Selector;
use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::api::{
    FIELD_MANAGER, HAPolicySpec, HostAntiAffinity, NodeInclusionPolicy, PodWhenUnsatisfiable,
    SpreadEntry, WhenUnsatisfiable, WorkloadKind,
};
use crate::core::topology::{self, HOSTNAME_KEY, InclusionPolicy, SpreadConstraint};
use crate::core::workload::WorkloadObject;

/// The weight of the injected preferred hostname anti-affinity, as the field teams wrote by hand.
pub const ANTI_AFFINITY_WEIGHT: i32 = 100;

/// What a policy means for one workload's template.
#[derive(Clone, Debug, PartialEq)]
pub struct TemplatePlan {
    /// Constraints to measure skew with, in template order, then the policy's missing ones.
    pub measured: Vec<SpreadConstraint>,
    /// The constraints skewguard should own in the template.
    pub injected: Vec<TopologySpreadConstraint>,
    /// The preferred hostname anti-affinity skewguard should own, if any.
    pub anti_affinity: Option<WeightedPodAffinityTerm>,
    /// Whether applying `injected`/`anti_affinity` would change the template.
    pub changes_template: bool,
}

/// How the policy's Adaptive entries are written: never into a template (switching a template's
/// constraint would roll the workload out), and in admission mode in the form the health of
/// their zones calls for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdaptiveForms {
    /// Admission mode: Adaptive entries are published (else they are not written at all).
    pub admission: bool,
    /// The keys whose Adaptive entry is published relaxed (ScheduleAnyway, no minDomains): a
    /// zone of the key is Out or Recovering.
    pub relaxed: BTreeSet<String>,
}

/// Works out the constraints for a workload under a policy (Adaptive entries as in template
/// mode: not written).
pub fn plan_template(policy: &HAPolicySpec, workload: &WorkloadObject) -> TemplatePlan {
    plan_template_selecting(
        policy,
        workload,
        workload.pod_selector().ok().as_ref(),
        &AdaptiveForms::default(),
    )
}

/// [`plan_template`] with the workload's pod selector already parsed (`None`: it cannot be), which
/// the measured policy constraints select with, and the forms of its Adaptive entries.
pub fn plan_template_selecting(
    policy: &HAPolicySpec,
    workload: &WorkloadObject,
    pod_selector: Option<&Selector>,
    adaptive: &AdaptiveForms,
) -> TemplatePlan {
    let existing: &[TopologySpreadConstraint] = (workload.template.spec.as_ref())
        .and_then(|s| s.topology_spread_constraints.as_deref())
        .unwrap_or_default();
    let ours = owned_constraint_keys(&workload.metadata);
    let user_keys: BTreeSet<&str> = existing
        .iter()
        .filter(|c| !ours.contains(&(c.topology_key.clone(), c.when_unsatisfiable.clone())))
        .map(|c| c.topology_key.as_str())
        .collect();
    let injected: Vec<TopologySpreadConstraint> = if policy.inject_constraints {
        policy
            .spread
            .iter()
            .filter(|e| !user_keys.contains(e.topology_key.as_str()))
            .filter(|e| e.when_unsatisfiable != WhenUnsatisfiable::Adaptive || adaptive.admission)
            .map(|e| {
                let relaxed = e.when_unsatisfiable == WhenUnsatisfiable::Adaptive
                    && adaptive.relaxed.contains(&e.topology_key);
                constraint_as(e, workload, !relaxed && e.when_unsatisfiable.is_hard())
            })
            .collect()
    } else {
        Vec::new()
    };
    let template_keys: BTreeSet<&str> = existing.iter().map(|c| c.topology_key.as_str()).collect();
    let mut measured: Vec<SpreadConstraint> = existing.iter().map(measured_from_template).collect();
    measured.extend(
        policy
            .spread
            .iter()
            .filter(|e| !template_keys.contains(e.topology_key.as_str()))
            .map(|e| measured_from_policy(e, workload, pod_selector.cloned())),
    );
    let anti_affinity = (policy.inject_constraints
        && policy.host_anti_affinity == HostAntiAffinity::Preferred
        && (owns_anti_affinity(&workload.metadata) || !has_preferred_anti_affinity(workload)))
    .then(|| host_anti_affinity(workload));
    let currently_ours: Vec<&TopologySpreadConstraint> = existing
        .iter()
        .filter(|c| ours.contains(&(c.topology_key.clone(), c.when_unsatisfiable.clone())))
        .collect();
    let constraints_change = currently_ours.len() != injected.len()
        || injected.iter().any(|c| !currently_ours.contains(&c));
    let anti_affinity_changes = anti_affinity.is_some() != owns_anti_affinity(&workload.metadata)
        || anti_affinity
            .as_ref()
            .is_some_and(|a| !current_preferred(workload).contains(a));
    TemplatePlan {
        measured,
        injected,
        anti_affinity,
        changes_template: constraints_change || anti_affinity_changes,
    }
}

/// A policy entry as it is written into a template: the workload's own pod selector, plus the
/// revision label so old and new pods of a rollout are counted apart. An Adaptive entry in its
/// hard form (DoNotSchedule, with its minDomains).
pub fn injected_constraint(
    entry: &SpreadEntry,
    workload: &WorkloadObject,
) -> TopologySpreadConstraint {
    constraint_as(entry, workload, entry.when_unsatisfiable.is_hard())
}

/// A policy entry in the hard (DoNotSchedule, with minDomains) or the soft form.
fn constraint_as(
    entry: &SpreadEntry,
    workload: &WorkloadObject,
    hard: bool,
) -> TopologySpreadConstraint {
    let form = if hard {
        PodWhenUnsatisfiable::DoNotSchedule
    } else {
        PodWhenUnsatisfiable::ScheduleAnyway
    };
    TopologySpreadConstraint {
        topology_key: entry.topology_key.clone(),
        max_skew: entry.max_skew,
        when_unsatisfiable: form.as_str().to_string(),
        min_domains: entry.min_domains.filter(|_| hard),
        label_selector: Some(workload.selector.clone()),
        match_label_keys: workload.revision_label().map(|l| vec![l.to_string()]),
        node_affinity_policy: Some(policy_name(entry.node_affinity_policy).to_string()),
        node_taints_policy: Some(policy_name(entry.node_taints_policy).to_string()),
    }
}

fn policy_name(p: NodeInclusionPolicy) -> &'static str {
    match p {
        NodeInclusionPolicy::Honor => "Honor",
        NodeInclusionPolicy::Ignore => "Ignore",
    }
}

/// A template constraint in the core's terms; unset policies take the scheduler's defaults
/// (`nodeAffinityPolicy: Honor`, `nodeTaintsPolicy: Ignore`).
pub fn measured_from_template(c: &TopologySpreadConstraint) -> SpreadConstraint {
    let inclusion = |v: &Option<String>, default| match v.as_deref() {
        Some("Honor") => InclusionPolicy::Honor,
        Some("Ignore") => InclusionPolicy::Ignore,
        _ => default,
    };
    SpreadConstraint {
        topology_key: c.topology_key.clone(),
        max_skew: c.max_skew,
        when_unsatisfiable: if c.when_unsatisfiable == "DoNotSchedule" {
            topology::WhenUnsatisfiable::DoNotSchedule
        } else {
            topology::WhenUnsatisfiable::ScheduleAnyway
        },
        min_domains: c.min_domains,
        // An invalid selector is rejected by the API server; if one slips through it matches
        // nothing, as a missing one does.
        selector: c
            .label_selector
            .clone()
            .and_then(|s| Selector::try_from(s).ok()),
        match_label_keys: c.match_label_keys.clone().unwrap_or_default(),
        node_affinity_policy: inclusion(&c.node_affinity_policy, InclusionPolicy::Honor),
        node_taints_policy: inclusion(&c.node_taints_policy, InclusionPolicy::Ignore),
    }
}

/// A policy entry as measured: what [`measured_from_template`] makes of its
/// [`injected_constraint`], built directly with the workload's selector already parsed. An
/// Adaptive entry is measured in its hard form, whatever form a given pod was admitted with.
fn measured_from_policy(
    entry: &SpreadEntry,
    workload: &WorkloadObject,
    pod_selector: Option<Selector>,
) -> SpreadConstraint {
    let inclusion = |p: NodeInclusionPolicy| match p {
        NodeInclusionPolicy::Honor => InclusionPolicy::Honor,
        NodeInclusionPolicy::Ignore => InclusionPolicy::Ignore,
    };
    let hard = entry.when_unsatisfiable.is_hard();
    SpreadConstraint {
        topology_key: entry.topology_key.clone(),
        max_skew: entry.max_skew,
        when_unsatisfiable: if hard {
            topology::WhenUnsatisfiable::DoNotSchedule
        } else {
            topology::WhenUnsatisfiable::ScheduleAnyway
        },
        min_domains: entry.min_domains.filter(|_| hard),
        selector: pod_selector,
        match_label_keys: workload
            .revision_label()
            .map(|l| vec![l.to_string()])
            .unwrap_or_default(),
        node_affinity_policy: inclusion(entry.node_affinity_policy),
        node_taints_policy: inclusion(entry.node_taints_policy),
    }
}

fn host_anti_affinity(workload: &WorkloadObject) -> WeightedPodAffinityTerm {
    WeightedPodAffinityTerm {
        weight: ANTI_AFFINITY_WEIGHT,
        pod_affinity_term: PodAffinityTerm {
            topology_key: HOSTNAME_KEY.to_string(),
            label_selector: Some(workload.selector.clone()),
            ..Default::default()
        },
    }
}

fn current_preferred(workload: &WorkloadObject) -> Vec<WeightedPodAffinityTerm> {
    workload
        .template
        .spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .clone()
        })
        .unwrap_or_default()
}

fn has_preferred_anti_affinity(workload: &WorkloadObject) -> bool {
    !current_preferred(workload).is_empty()
}

/// The server-side apply body: only the fields skewguard owns, never a whole object. Typed, so
/// the client serializes it once when it is sent (and never when the write is not carried out).
#[derive(Clone, Debug, PartialEq)]
pub struct TemplateApply {
    pub kind: WorkloadKind,
    pub name: String,
    pub namespace: String,
    pub constraints: Vec<TopologySpreadConstraint>,
    pub anti_affinity: Option<WeightedPodAffinityTerm>,
}

impl TemplateApply {
    /// The body that applies `plan` to `workload` (or to the Deployment its `workloadRef` names),
    /// taking the plan's constraints and term.
    pub fn new(workload: &WorkloadObject, plan: TemplatePlan) -> Self {
        // A Rollout with a workloadRef: the referenced Deployment's template (Argo refuses one in
        // the Rollout).
        let (kind, name) = workload.template_target();
        Self {
            kind,
            name: name.to_string(),
            namespace: workload.namespace().to_string(),
            constraints: plan.injected,
            anti_affinity: plan.anti_affinity,
        }
    }
}

impl Serialize for TemplateApply {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Body<'a> {
            api_version: String,
            kind: &'static str,
            metadata: Metadata<'a>,
            spec: Spec<'a>,
        }
        #[derive(Serialize)]
        struct Metadata<'a> {
            name: &'a str,
            namespace: &'a str,
        }
        #[derive(Serialize)]
        struct Spec<'a> {
            template: Template<'a>,
        }
        #[derive(Serialize)]
        struct Template<'a> {
            spec: PodSpec<'a>,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct PodSpec<'a> {
            topology_spread_constraints: &'a [TopologySpreadConstraint],
            #[serde(skip_serializing_if = "Option::is_none")]
            affinity: Option<Affinity<'a>>,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Affinity<'a> {
            pod_anti_affinity: AntiAffinity<'a>,
        }
        #[derive(Serialize)]
        struct AntiAffinity<'a> {
            #[serde(rename = "preferredDuringSchedulingIgnoredDuringExecution")]
            preferred: [&'a WeightedPodAffinityTerm; 1],
        }
        let kind = self.kind.descriptor();
        Body {
            api_version: kind.api_version(),
            kind: kind.name(),
            metadata: Metadata {
                name: &self.name,
                namespace: &self.namespace,
            },
            spec: Spec {
                template: Template {
                    spec: PodSpec {
                        topology_spread_constraints: &self.constraints,
                        affinity: self.anti_affinity.as_ref().map(|term| Affinity {
                            pod_anti_affinity: AntiAffinity { preferred: [term] },
                        }),
                    },
                },
            },
        }
        .serialize(serializer)
    }
}

/// The managedFields entries of skewguard's own applies.
fn our_fields(meta: &ObjectMeta) -> impl Iterator<Item = &Value> {
    meta.managed_fields
        .iter()
        .flatten()
        .filter(|m| m.manager.as_deref() == Some(FIELD_MANAGER))
        .filter_map(|m| m.fields_v1.as_ref().map(|f| &f.0))
}

fn template_spec_fields(fields: &Value) -> Option<&Value> {
    fields.get("f:spec")?.get("f:template")?.get("f:spec")
}

/// (topologyKey, whenUnsatisfiable) of the constraints skewguard owns, read from managedFields.
pub fn owned_constraint_keys(meta: &ObjectMeta) -> BTreeSet<(String, String)> {
    let mut keys = BTreeSet::new();
    for fields in our_fields(meta) {
        let Some(list) = template_spec_fields(fields)
            .and_then(|s| s.get("f:topologySpreadConstraints"))
            .and_then(Value::as_object)
        else {
            continue;
        };
        for item in list.keys() {
            let Some(Ok(key)) = item.strip_prefix("k:").map(serde_json::from_str::<Value>) else {
                continue;
            };
            if let (Some(t), Some(w)) = (
                key.get("topologyKey").and_then(Value::as_str),
                key.get("whenUnsatisfiable").and_then(Value::as_str),
            ) {
                keys.insert((t.to_string(), w.to_string()));
            }
        }
    }
    keys
}

fn owns_anti_affinity(meta: &ObjectMeta) -> bool {
    our_fields(meta).any(|f| {
        template_spec_fields(f)
            .and_then(|s| s.get("f:affinity"))
            .and_then(|a| a.get("f:podAntiAffinity"))
            .is_some()
    })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::Deployment;
    use serde_json::json;

    use super::*;

    #[test]
    fn a_policy_entry_is_measured_as_its_injected_form_would_be() {
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}}}
        }))
        .unwrap();
        let w = WorkloadObject::from_object(&d).unwrap();
        let selector = w.pod_selector().unwrap();
        for when in [
            WhenUnsatisfiable::ScheduleAnyway,
            WhenUnsatisfiable::DoNotSchedule,
            WhenUnsatisfiable::Adaptive,
        ] {
            for policy in [NodeInclusionPolicy::Honor, NodeInclusionPolicy::Ignore] {
                let entry = SpreadEntry {
                    max_skew: 2,
                    min_domains: Some(3),
                    when_unsatisfiable: when,
                    node_affinity_policy: policy,
                    node_taints_policy: policy,
                    ..SpreadEntry::new(topology::ZONE_KEY)
                };
                assert_eq!(
                    measured_from_policy(&entry, &w, Some(selector.clone())),
                    measured_from_template(&injected_constraint(&entry, &w)),
                    "{when:?}, policy: {policy:?}"
                );
            }
        }
    }

    #[test]
    fn the_apply_body_names_the_object_and_holds_only_owned_fields() {
        let constraint = TopologySpreadConstraint {
            topology_key: "topology.kubernetes.io/zone".into(),
            max_skew: 1,
            when_unsatisfiable: "DoNotSchedule".into(),
            ..Default::default()
        };
        let mut body = TemplateApply {
            kind: WorkloadKind::StatefulSet,
            name: "db".into(),
            namespace: "shop".into(),
            constraints: vec![constraint.clone()],
            anti_affinity: None,
        };
        let spec = json!({"template": {"spec": {"topologySpreadConstraints": [
            {"topologyKey": "topology.kubernetes.io/zone", "maxSkew": 1,
             "whenUnsatisfiable": "DoNotSchedule"}]}}});
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
                   "metadata": {"name": "db", "namespace": "shop"}, "spec": spec})
        );
        body.kind = WorkloadKind::Rollout;
        body.anti_affinity = Some(WeightedPodAffinityTerm {
            weight: ANTI_AFFINITY_WEIGHT,
            pod_affinity_term: PodAffinityTerm {
                topology_key: HOSTNAME_KEY.into(),
                ..Default::default()
            },
        });
        let value = serde_json::to_value(&body).unwrap();
        assert_eq!(value["apiVersion"], "argoproj.io/v1alpha1");
        assert_eq!(
            value["spec"]["template"]["spec"]["affinity"],
            json!({"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 100, "podAffinityTerm": {"topologyKey": HOSTNAME_KEY}}]}})
        );
    }
}
