//! The workload kinds a policy governs (Deployment, StatefulSet, Argo Rollout), seen through one
//! shape: identity, pod selector, pod template, replica counts. Adding a kind means adding one
//! constructor here and one watch in the controller.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::api::DynamicObject;
use kube::core::{GroupVersionKind, Selector};
use serde::Deserialize;

use crate::api::WorkloadKind;
use crate::{snapshot, topology};

/// The Argo Rollouts resource.
pub fn rollout_gvk() -> GroupVersionKind {
    GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Rollout")
}

/// Why a workload object cannot be governed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WorkloadError {
    #[error("{kind:?} {name} has no spec")]
    MissingSpec { kind: WorkloadKind, name: String },
    #[error("{kind:?} {name} has an invalid pod selector: {reason}")]
    InvalidSelector {
        kind: WorkloadKind,
        name: String,
        reason: String,
    },
    #[error("{kind:?} {name} has an unreadable spec: {reason}")]
    Malformed {
        kind: WorkloadKind,
        name: String,
        reason: String,
    },
}

/// Replica counts that say whether a workload is settled.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplicaStatus {
    pub desired: i32,
    /// Pods that exist (`status.replicas`), old and new.
    pub current: i32,
    pub updated: i32,
    pub ready: i32,
    pub available: i32,
    pub generation: i64,
    pub observed_generation: i64,
}

impl ReplicaStatus {
    /// Not rolling out, not scaling, nothing unavailable: the only time moving pods is safe.
    pub fn is_settled(&self) -> bool {
        self.observed_generation >= self.generation
            && self.current == self.desired
            && self.updated == self.desired
            && self.ready == self.desired
            && self.available == self.desired
    }
}

/// A governed workload, whatever its kind.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkloadObject {
    pub kind: WorkloadKind,
    pub metadata: ObjectMeta,
    pub selector: LabelSelector,
    pub template: PodTemplateSpec,
    pub replicas: ReplicaStatus,
    /// Argo Rollouts' `spec.restartAt`, if set.
    pub restart_at: Option<String>,
}

impl WorkloadObject {
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }

    pub fn namespace(&self) -> &str {
        self.metadata.namespace.as_deref().unwrap_or_default()
    }

    pub fn labels(&self) -> BTreeMap<String, String> {
        self.metadata.labels.clone().unwrap_or_default()
    }

    /// The pod selector as kube's matcher.
    pub fn pod_selector(&self) -> Result<Selector, WorkloadError> {
        Selector::try_from(self.selector.clone()).map_err(|e| WorkloadError::InvalidSelector {
            kind: self.kind,
            name: self.name().to_string(),
            reason: e.to_string(),
        })
    }

    /// The label the controller of this kind stamps on pods of one template revision, which
    /// injected constraints use as `matchLabelKeys` so old and new pods are counted apart.
    pub fn revision_label(&self) -> Option<&'static str> {
        match self.kind {
            WorkloadKind::Deployment => Some("pod-template-hash"),
            WorkloadKind::Rollout => Some("rollouts-pod-template-hash"),
            WorkloadKind::StatefulSet => None,
        }
    }

    /// The workload in the core's terms, measured by `constraints`.
    ///
    /// The core's [`topology::PodTemplate`] (the pod the workload would create next) takes the
    /// template's labels, its placement (node selector, required node affinity, tolerations) and
    /// its requests, so eligibility and node fit are judged for the pod the scheduler would place.
    /// Pass the constraints to measure with, e.g. [`crate::constraints::TemplatePlan::measured`]
    /// or the template's own ([`crate::constraints::measured_from_template`]).
    ///
    /// Fails only when the pod selector cannot be turned into a matcher.
    pub fn to_core(
        &self,
        constraints: Vec<topology::SpreadConstraint>,
    ) -> Result<topology::Workload, WorkloadError> {
        let spec = self.template.spec.clone().unwrap_or_default();
        Ok(topology::Workload {
            namespace: self.namespace().to_string(),
            name: self.name().to_string(),
            pod_selector: self.pod_selector()?,
            template: topology::PodTemplate {
                labels: self
                    .template
                    .metadata
                    .as_ref()
                    .and_then(|m| m.labels.clone())
                    .unwrap_or_default(),
                placement: snapshot::placement_of(&spec),
                requests: snapshot::requests_of(&spec),
            },
            constraints,
        })
    }

    pub fn from_deployment(d: &Deployment) -> Result<Self, WorkloadError> {
        let name = d.metadata.name.clone().unwrap_or_default();
        let spec = d.spec.as_ref().ok_or(WorkloadError::MissingSpec {
            kind: WorkloadKind::Deployment,
            name,
        })?;
        let status = d.status.clone().unwrap_or_default();
        Ok(Self {
            kind: WorkloadKind::Deployment,
            metadata: d.metadata.clone(),
            selector: spec.selector.clone(),
            template: spec.template.clone(),
            replicas: ReplicaStatus {
                desired: spec.replicas.unwrap_or(1),
                current: status.replicas.unwrap_or(0),
                updated: status.updated_replicas.unwrap_or(0),
                ready: status.ready_replicas.unwrap_or(0),
                available: status.available_replicas.unwrap_or(0),
                generation: d.metadata.generation.unwrap_or(0),
                observed_generation: status.observed_generation.unwrap_or(0),
            },
            restart_at: None,
        })
    }

    pub fn from_statefulset(s: &StatefulSet) -> Result<Self, WorkloadError> {
        let name = s.metadata.name.clone().unwrap_or_default();
        let spec = s.spec.as_ref().ok_or(WorkloadError::MissingSpec {
            kind: WorkloadKind::StatefulSet,
            name,
        })?;
        let status = s.status.clone().unwrap_or_default();
        // A StatefulSet is mid-update while its current and update revisions differ.
        let updated = if status.current_revision == status.update_revision {
            status.updated_replicas.unwrap_or(status.replicas)
        } else {
            status.updated_replicas.unwrap_or(0)
        };
        Ok(Self {
            kind: WorkloadKind::StatefulSet,
            metadata: s.metadata.clone(),
            selector: spec.selector.clone(),
            template: spec.template.clone(),
            replicas: ReplicaStatus {
                desired: spec.replicas.unwrap_or(1),
                current: status.replicas,
                updated,
                ready: status.ready_replicas.unwrap_or(0),
                available: status.available_replicas.unwrap_or(0),
                generation: s.metadata.generation.unwrap_or(0),
                observed_generation: status.observed_generation.unwrap_or(0),
            },
            restart_at: None,
        })
    }

    /// An Argo Rollout, read from its dynamic form (the CRD may or may not be installed).
    pub fn from_rollout(r: &DynamicObject) -> Result<Self, WorkloadError> {
        let name = r.metadata.name.clone().unwrap_or_default();
        let malformed = |reason: String| WorkloadError::Malformed {
            kind: WorkloadKind::Rollout,
            name: name.clone(),
            reason,
        };
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Spec {
            replicas: Option<i32>,
            selector: LabelSelector,
            #[serde(default)]
            template: PodTemplateSpec,
            restart_at: Option<String>,
        }
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "camelCase", default)]
        struct Status {
            replicas: i32,
            updated_replicas: i32,
            ready_replicas: i32,
            available_replicas: i32,
            // Argo Rollouts reports observedGeneration as a string.
            observed_generation: Option<serde_json::Value>,
        }
        let spec_value = r
            .data
            .get("spec")
            .cloned()
            .ok_or(WorkloadError::MissingSpec {
                kind: WorkloadKind::Rollout,
                name: name.clone(),
            })?;
        let spec: Spec =
            serde_json::from_value(spec_value).map_err(|e| malformed(e.to_string()))?;
        let status: Status = r
            .data
            .get("status")
            .cloned()
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| malformed(e.to_string()))?
            .unwrap_or_default();
        let observed_generation = match &status.observed_generation {
            Some(serde_json::Value::String(s)) => s.parse().unwrap_or(0),
            Some(serde_json::Value::Number(n)) => n.as_i64().unwrap_or(0),
            _ => 0,
        };
        Ok(Self {
            kind: WorkloadKind::Rollout,
            metadata: r.metadata.clone(),
            selector: spec.selector,
            template: spec.template,
            replicas: ReplicaStatus {
                desired: spec.replicas.unwrap_or(1),
                current: status.replicas,
                updated: status.updated_replicas,
                ready: status.ready_replicas,
                available: status.available_replicas,
                generation: r.metadata.generation.unwrap_or(0),
                observed_generation,
            },
            restart_at: spec.restart_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_deployment_mid_rollout_is_not_settled() {
        let mut d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "shop", "generation": 3},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}}},
            "status": {"observedGeneration": 3, "replicas": 3, "updatedReplicas": 1,
                       "readyReplicas": 2, "availableReplicas": 2}
        }))
        .unwrap();
        let w = WorkloadObject::from_deployment(&d).unwrap();
        assert!(!w.replicas.is_settled());
        assert_eq!(w.revision_label(), Some("pod-template-hash"));
        d.status = Some(
            serde_json::from_value(json!({"observedGeneration": 3, "replicas": 2,
            "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2}))
            .unwrap(),
        );
        assert!(
            WorkloadObject::from_deployment(&d)
                .unwrap()
                .replicas
                .is_settled()
        );
    }

    #[test]
    fn to_core_carries_identity_template_and_constraints() {
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web", "v": "1"}},
                                  "spec": {"nodeSelector": {"disk": "ssd"}, "containers": [
                                      {"name": "c", "resources": {"requests": {"cpu": "250m"}}}]}}}
        }))
        .unwrap();
        let w = WorkloadObject::from_deployment(&d).unwrap();
        let selector = w.pod_selector().unwrap();
        let core = w
            .to_core(vec![topology::SpreadConstraint::new(
                topology::ZONE_KEY,
                1,
                selector.clone(),
            )])
            .unwrap();
        assert_eq!(
            (core.namespace.as_str(), core.name.as_str()),
            ("shop", "web")
        );
        assert_eq!(core.pod_selector, selector);
        assert_eq!(core.template.labels.get("v").map(String::as_str), Some("1"));
        assert!(core.template.placement.is_pinned());
        assert_eq!(core.template.requests, topology::Resources::new(250, 0, 1));
        assert_eq!(core.constraints.len(), 1);
    }

    #[test]
    fn to_core_rejects_an_invalid_selector() {
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"selector": {"matchExpressions": [{"key": "app", "operator": "Sideways"}]},
                     "template": {}}
        }))
        .unwrap();
        let w = WorkloadObject::from_deployment(&d).unwrap();
        assert!(matches!(
            w.to_core(vec![]),
            Err(WorkloadError::InvalidSelector { .. })
        ));
    }

    #[test]
    fn a_rollout_reads_from_its_dynamic_form() {
        let r: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "was", "namespace": "petclinic", "generation": 2},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"tier": "was"}},
                     "template": {"metadata": {"labels": {"tier": "was"}},
                                  "spec": {"containers": [{"name": "c", "image": "i"}]}}},
            "status": {"observedGeneration": "2", "replicas": 2, "updatedReplicas": 2,
                       "readyReplicas": 2, "availableReplicas": 2}
        }))
        .unwrap();
        let w = WorkloadObject::from_rollout(&r).unwrap();
        assert_eq!(w.kind, WorkloadKind::Rollout);
        assert!(w.replicas.is_settled());
        assert_eq!(w.revision_label(), Some("rollouts-pod-template-hash"));
    }

    #[test]
    fn a_malformed_rollout_is_an_error_not_a_panic() {
        let r: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "bad", "namespace": "x"},
            "spec": {"selector": "not a selector"}
        }))
        .unwrap();
        assert!(matches!(
            WorkloadObject::from_rollout(&r),
            Err(WorkloadError::Malformed { .. })
        ));
    }
}
