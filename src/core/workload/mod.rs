//! The workload kinds a policy governs (Deployment, StatefulSet, Argo Rollout), seen through one
//! shape: identity, pod selector, pod template, replica counts. What differs between kinds lives
//! in their descriptors ([`kind`]), which also says how to add a kind.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::Resource;
use kube::api::DynamicObject;
use kube::core::Selector;
use serde::Deserialize;

use crate::api::WorkloadKind;
use crate::core::{snapshot, topology};

pub mod kind;

pub use kind::{KindDescriptor, RESTARTED_AT, RawStatus, kinds};

/// The Argo Rollouts resource.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum WorkloadError {
    #[error("{kind:?} {name} has no spec")]
    MissingSpec { kind: WorkloadKind, name: String },
    #[error("{kind:?} {name} has an invalid pod selector: {reason}")]
    InvalidSelector {
        kind: WorkloadKind,
        name: String,
        reason: String,
    },
    /// `selector: {}` (allowed for a Rollout) selects every pod of the namespace: governing it
    /// would move, annotate and report pods of other workloads.
    #[error(
        "{kind:?} {name} has an empty pod selector, which selects every pod of its namespace: \
         give spec.selector the labels of its own pods"
    )]
    EmptySelector { kind: WorkloadKind, name: String },
    /// An Argo Rollout's `workloadRef` names a workload whose template cannot be read.
    #[error("{kind:?} {name}: its workloadRef {reference}")]
    Reference {
        kind: WorkloadKind,
        name: String,
        reference: String,
    },
    #[error("{name} is not of a supported workload kind")]
    UnknownKind { name: String },
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
    /// The status says the template's rollout is complete, by fields evictions do not change
    /// (`None`: it does not say; the counts are read instead).
    pub rolled_out: Option<bool>,
}

impl ReplicaStatus {
    /// Not rolling out, not scaling, nothing unavailable: the only time moving pods is safe.
    pub fn is_settled(&self) -> bool {
        self.rollout_settled() && self.ready == self.desired && self.available == self.desired
    }

    /// No rollout under way, whatever the status's counts say of the pods (which the pod cache
    /// tells sooner, and which lag behind every eviction): the spec's generation is observed and
    /// the template is rolled out (by the kind's sign, or else by the counts).
    pub fn rollout_settled(&self) -> bool {
        self.observed_generation >= self.generation
            && self
                .rolled_out
                .unwrap_or(self.current == self.desired && self.updated == self.desired)
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
    /// Argo Rollouts' `spec.workloadRef`: the template lives in that workload (a Deployment), is
    /// read from it ([`WorkloadObject::with_referenced_template`]), and constraints are written
    /// to it (Argo refuses a template in the Rollout itself).
    pub workload_ref: Option<WorkloadRef>,
}

/// The workload an Argo Rollout takes its pod template from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct WorkloadRef {
    pub api_version: String,
    pub kind: String,
    pub name: String,
}

/// The Deployments (namespace, name) that Rollouts among `workloads` take their template from
/// (`workloadRef`): each is governed through its Rollout, not on its own, or a policy selecting both
/// would write the one template twice, with different revision labels.
pub fn referenced_templates<'a>(
    workloads: impl IntoIterator<Item = &'a WorkloadObject>,
) -> std::collections::BTreeSet<(String, String)> {
    workloads
        .into_iter()
        .filter_map(|w| {
            let r = w.workload_ref.as_ref()?;
            (r.kind == WorkloadKind::Deployment.name())
                .then(|| (w.namespace().to_string(), r.name.clone()))
        })
        .collect()
}

impl WorkloadObject {
    /// Whether it is a Deployment in `templates` ([`referenced_templates`]).
    pub fn is_referenced_template(
        &self,
        templates: &std::collections::BTreeSet<(String, String)>,
    ) -> bool {
        self.kind == WorkloadKind::Deployment
            && templates.contains(&(self.namespace().to_string(), self.name().to_string()))
    }
}

/// What every workload object, readable or not, is known by: its kind and its metadata.
pub trait Identified {
    fn kind(&self) -> WorkloadKind;
    fn meta(&self) -> &ObjectMeta;
}

/// A workload whose spec cannot be read: it is still selected and reported, with the reason,
/// and nothing is written to it.
#[derive(Clone, Debug, PartialEq)]
pub struct Unreadable {
    pub kind: WorkloadKind,
    pub metadata: ObjectMeta,
    pub error: WorkloadError,
}

impl Identified for Unreadable {
    fn kind(&self) -> WorkloadKind {
        self.kind
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
}

impl Identified for WorkloadObject {
    fn kind(&self) -> WorkloadKind {
        self.kind
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
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

    /// The labels its pods are created with (the pod template's; none when it has none): what a
    /// PodDisruptionBudget's selector is matched against.
    pub fn template_labels(&self) -> &BTreeMap<String, String> {
        static NONE: BTreeMap<String, String> = BTreeMap::new();
        (self.template.metadata.as_ref())
            .and_then(|m| m.labels.as_ref())
            .unwrap_or(&NONE)
    }

    /// `spec.selector` names no label at all: it would select every pod of the namespace.
    fn selector_is_empty(&self) -> bool {
        let s = &self.selector;
        s.match_labels.as_ref().is_none_or(|l| l.is_empty())
            && s.match_expressions.as_ref().is_none_or(|e| e.is_empty())
    }

    /// The pod selector as kube's matcher; an empty one is refused ([`WorkloadError::EmptySelector`]).
    pub fn pod_selector(&self) -> Result<Selector, WorkloadError> {
        if self.selector_is_empty() {
            return Err(WorkloadError::EmptySelector {
                kind: self.kind,
                name: self.name().to_string(),
            });
        }
        Selector::try_from(self.selector.clone()).map_err(|e| WorkloadError::InvalidSelector {
            kind: self.kind,
            name: self.name().to_string(),
            reason: e.to_string(),
        })
    }

    /// The label the controller of this kind stamps on pods of one template revision, which
    /// injected constraints use as `matchLabelKeys` so old and new pods are counted apart.
    pub fn revision_label(&self) -> Option<&'static str> {
        self.kind.descriptor().revision_label
    }

    /// The workload in the core's terms, measured by `constraints`.
    ///
    /// The core's [`topology::PodTemplate`] (the pod the workload would create next) takes the
    /// template's labels, its placement (node selector, required node affinity, tolerations) and
    /// its requests, so eligibility and node fit are judged for the pod the scheduler would place.
    /// Pass the constraints to measure with, e.g. [`crate::core::constraints::TemplatePlan::measured`]
    /// or the template's own ([`crate::core::constraints::measured_from_template`]).
    ///
    /// Fails only when the pod selector cannot be turned into a matcher.
    pub fn to_core(
        &self,
        constraints: Vec<topology::SpreadConstraint>,
    ) -> Result<topology::Workload, WorkloadError> {
        Ok(self.to_core_selecting(constraints, self.pod_selector()?))
    }

    /// [`Self::to_core`] with the pod selector already parsed ([`Self::pod_selector`]).
    pub fn to_core_selecting(
        &self,
        constraints: Vec<topology::SpreadConstraint>,
        pod_selector: Selector,
    ) -> topology::Workload {
        let no_spec = PodSpec::default();
        let spec = self.template.spec.as_ref().unwrap_or(&no_spec);
        topology::Workload {
            namespace: self.namespace().to_string(),
            name: self.name().to_string(),
            pod_selector,
            owner: Some(topology::PodOwner {
                kind: self.kind,
                name: self.name().to_string(),
            }),
            template: topology::PodTemplate {
                labels: self
                    .template
                    .metadata
                    .as_ref()
                    .and_then(|m| m.labels.clone())
                    .unwrap_or_default(),
                placement: snapshot::placement_of(spec),
                requests: snapshot::requests_of(spec),
            },
            constraints,
        }
    }

    /// Reads a workload of any supported kind from its dynamic form (as watched and listed).
    pub fn from_dynamic(object: &DynamicObject) -> Result<Self, WorkloadError> {
        let name = object.metadata.name.clone().unwrap_or_default();
        let kind = object
            .types
            .as_ref()
            .and_then(|t| WorkloadKind::of(&t.api_version, &t.kind))
            .ok_or_else(|| WorkloadError::UnknownKind { name: name.clone() })?;
        Self::read(kind, object)
    }

    /// Reads an object known to be of `kind` (a watch of that kind's resource).
    pub fn read(kind: WorkloadKind, object: &DynamicObject) -> Result<Self, WorkloadError> {
        let name = object.metadata.name.clone().unwrap_or_default();
        let malformed = |reason: String| WorkloadError::Malformed {
            kind,
            name: name.clone(),
            reason,
        };
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Spec {
            replicas: Option<i32>,
            // A Rollout with a workloadRef may leave it out (then the referenced workload's).
            selector: Option<LabelSelector>,
            #[serde(default)]
            template: PodTemplateSpec,
            restart_at: Option<String>,
            workload_ref: Option<WorkloadRef>,
        }
        let spec_value = object.data.get("spec").ok_or(WorkloadError::MissingSpec {
            kind,
            name: name.clone(),
        })?;
        let spec = Spec::deserialize(spec_value).map_err(|e| malformed(e.to_string()))?;
        let status = object
            .data
            .get("status")
            .map(RawStatus::deserialize)
            .transpose()
            .map_err(|e| malformed(e.to_string()))?
            .unwrap_or_default();
        Ok(Self {
            kind,
            metadata: object.metadata.clone(),
            selector: spec.selector.unwrap_or_default(),
            template: spec.template,
            replicas: ReplicaStatus {
                desired: spec.replicas.unwrap_or(1),
                current: status.replicas,
                updated: (kind.descriptor().updated_replicas)(&status),
                ready: status.ready_replicas,
                available: status.available_replicas,
                generation: object.metadata.generation.unwrap_or(0),
                rolled_out: (kind.descriptor().rolled_out)(&status),
                observed_generation: status.observed_generation(),
            },
            restart_at: spec.restart_at,
            workload_ref: spec.workload_ref,
        })
    }

    /// Where the template is written: the workload itself, or the Deployment its `workloadRef`
    /// names (kind and name).
    pub fn template_target(&self) -> (WorkloadKind, &str) {
        match &self.workload_ref {
            Some(r) => (WorkloadKind::Deployment, r.name.as_str()),
            None => (self.kind, self.name()),
        }
    }

    /// A Rollout with a `workloadRef` takes its template (and, when it has none, its selector)
    /// from the referenced Deployment, as Argo Rollouts does; `referenced` looks a Deployment of
    /// the workload's namespace up by name. Any other workload is returned as it is.
    pub fn with_referenced_template(
        mut self,
        referenced: impl FnOnce(&str) -> Option<WorkloadObject>,
    ) -> Result<Self, WorkloadError> {
        let Some(reference) = &self.workload_ref else {
            return Ok(self);
        };
        let refused = |reference: String| WorkloadError::Reference {
            kind: self.kind,
            name: self.name().to_string(),
            reference,
        };
        let deployment = WorkloadKind::Deployment.descriptor();
        if reference.kind != deployment.name() || reference.api_version != deployment.api_version()
        {
            return Err(refused(format!(
                "names a {} ({}): skewguard reads the template of an apps/v1 Deployment only",
                reference.kind, reference.api_version
            )));
        }
        let Some(source) = referenced(&reference.name) else {
            return Err(refused(format!(
                "names Deployment {}, which does not exist",
                reference.name
            )));
        };
        self.template = source.template;
        if self.selector_is_empty() {
            self.selector = source.selector;
        }
        Ok(self)
    }

    /// Reads a typed object (a `Deployment`, a `StatefulSet`) through its JSON form, the way the
    /// API server would have sent it.
    pub fn from_object<K: Resource<DynamicType = ()> + serde::Serialize>(
        object: &K,
    ) -> Result<Self, WorkloadError> {
        let name = object.meta().name.clone().unwrap_or_default();
        let mut value = serde_json::to_value(object).map_err(|e| WorkloadError::Malformed {
            kind: WorkloadKind::Deployment,
            name: name.clone(),
            reason: e.to_string(),
        })?;
        if let Some(map) = value.as_object_mut() {
            map.insert("apiVersion".into(), K::api_version(&()).into());
            map.insert("kind".into(), K::kind(&()).into());
        }
        let dynamic: DynamicObject =
            serde_json::from_value(value).map_err(|_| WorkloadError::UnknownKind { name })?;
        Self::from_dynamic(&dynamic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::Deployment;
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
        let w = WorkloadObject::from_object(&d).unwrap();
        assert!(!w.replicas.is_settled());
        assert_eq!(w.revision_label(), Some("pod-template-hash"));
        d.status = Some(
            serde_json::from_value(json!({"observedGeneration": 3, "replicas": 2,
            "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2}))
            .unwrap(),
        );
        assert!(
            WorkloadObject::from_object(&d)
                .unwrap()
                .replicas
                .is_settled()
        );
    }

    #[test]
    fn each_kind_says_its_rollout_is_done_by_fields_evictions_do_not_change() {
        let status =
            |v: serde_json::Value| -> kind::RawStatus { serde_json::from_value(v).unwrap() };
        let done = |k: WorkloadKind, v| (k.descriptor().rolled_out)(&status(v));
        let progressing = |reason: &str| {
            json!({"replicas": 1, "updatedReplicas": 1, "conditions": [
                {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"},
                {"type": "Progressing", "status": "True", "reason": reason}]})
        };
        assert_eq!(
            done(
                WorkloadKind::Deployment,
                progressing("NewReplicaSetAvailable")
            ),
            Some(true)
        );
        assert_eq!(
            done(WorkloadKind::Deployment, progressing("ReplicaSetUpdated")),
            Some(false)
        );
        assert_eq!(done(WorkloadKind::Deployment, json!({"replicas": 2})), None);
        assert_eq!(
            done(
                WorkloadKind::StatefulSet,
                json!({"currentRevision": "a", "updateRevision": "a"})
            ),
            Some(true)
        );
        assert_eq!(
            done(
                WorkloadKind::StatefulSet,
                json!({"currentRevision": "a", "updateRevision": "b"})
            ),
            Some(false)
        );
        assert_eq!(
            done(
                WorkloadKind::Rollout,
                json!({"stableRS": "h1", "currentPodHash": "h1"})
            ),
            Some(true)
        );
        assert_eq!(
            done(
                WorkloadKind::Rollout,
                json!({"stableRS": "h1", "currentPodHash": "h2"})
            ),
            Some(false)
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
        let w = WorkloadObject::from_object(&d).unwrap();
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
        let w = WorkloadObject::from_object(&d).unwrap();
        assert!(matches!(
            w.to_core(vec![]),
            Err(WorkloadError::InvalidSelector { .. })
        ));
    }

    #[test]
    fn an_empty_selector_is_refused_not_taken_for_every_pod() {
        let r: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "all", "namespace": "shop"},
            "spec": {"selector": {}, "template": {"metadata": {"labels": {"app": "all"}}}}
        }))
        .unwrap();
        let w = WorkloadObject::from_dynamic(&r).unwrap();
        let refused = w.pod_selector().unwrap_err();
        assert!(matches!(refused, WorkloadError::EmptySelector { .. }));
        assert!(
            refused
                .to_string()
                .contains("selects every pod of its namespace")
        );
        assert!(w.to_core(vec![]).is_err());
    }

    #[test]
    fn to_core_knows_whose_pods_are_its_own() {
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}}}
        }))
        .unwrap();
        let core = WorkloadObject::from_object(&d)
            .unwrap()
            .to_core(vec![])
            .unwrap();
        assert_eq!(
            core.owner,
            Some(topology::PodOwner {
                kind: WorkloadKind::Deployment,
                name: "web".into()
            })
        );
    }

    fn referencing_rollout(
        reference: serde_json::Value,
        selector: serde_json::Value,
    ) -> WorkloadObject {
        let r: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "was", "namespace": "petclinic"},
            "spec": {"replicas": 2, "selector": selector, "workloadRef": reference}
        }))
        .unwrap();
        WorkloadObject::from_dynamic(&r).unwrap()
    }

    fn referenced_deployment() -> WorkloadObject {
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "was-template", "namespace": "petclinic"},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"tier": "was"}},
                     "template": {"metadata": {"labels": {"tier": "was"}},
                                  "spec": {"containers": [{"name": "c", "image": "i",
                                           "resources": {"requests": {"cpu": "300m"}}}]}}}
        }))
        .unwrap();
        WorkloadObject::from_object(&d).unwrap()
    }

    #[test]
    fn a_workload_ref_rollout_reads_the_referenced_template_and_writes_there() {
        let deployment_ref =
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "was-template"});
        // No selector of its own: the Deployment's, as Argo Rollouts takes it.
        let r = referencing_rollout(deployment_ref.clone(), json!(null));
        assert!(
            r.template.spec.is_none(),
            "the Rollout's own template is empty"
        );
        assert_eq!(
            r.template_target(),
            (WorkloadKind::Deployment, "was-template")
        );
        let r = r
            .with_referenced_template(|name| (name == "was-template").then(referenced_deployment))
            .unwrap();
        // The Deployment is governed through the Rollout, not on its own.
        let templates = referenced_templates([&r]);
        assert!(referenced_deployment().is_referenced_template(&templates));
        assert!(!r.is_referenced_template(&templates));
        assert_eq!(
            r.template_labels().get("tier").map(String::as_str),
            Some("was")
        );
        let core = r.to_core(vec![]).unwrap();
        assert_eq!(core.template.requests, topology::Resources::new(300, 0, 1));
        assert_eq!(
            core.owner,
            Some(topology::PodOwner {
                kind: WorkloadKind::Rollout,
                name: "was".into()
            }),
            "its pods are the Rollout's own, not the Deployment's"
        );
        // Its own selector, when it has one, stays.
        let own = referencing_rollout(deployment_ref, json!({"matchLabels": {"app": "was"}}))
            .with_referenced_template(|_| Some(referenced_deployment()))
            .unwrap();
        assert_eq!(
            own.selector
                .match_labels
                .unwrap()
                .get("app")
                .map(String::as_str),
            Some("was")
        );
    }

    #[test]
    fn a_workload_ref_that_cannot_be_read_is_an_error_that_says_why() {
        let missing = referencing_rollout(
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "gone"}),
            json!({"matchLabels": {"tier": "was"}}),
        )
        .with_referenced_template(|_| None)
        .unwrap_err();
        assert!(
            missing
                .to_string()
                .contains("names Deployment gone, which does not exist"),
            "{missing}"
        );
        let other = referencing_rollout(
            json!({"apiVersion": "v1", "kind": "PodTemplate", "name": "t"}),
            json!({"matchLabels": {"tier": "was"}}),
        )
        .with_referenced_template(|_| Some(referenced_deployment()))
        .unwrap_err();
        assert!(other.to_string().contains("Deployment only"), "{other}");
        // A Rollout without a workloadRef is left as it is.
        let plain = referenced_deployment();
        assert_eq!(plain.clone().with_referenced_template(|_| None), Ok(plain));
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
        let w = WorkloadObject::from_dynamic(&r).unwrap();
        assert_eq!(w.kind, WorkloadKind::Rollout);
        assert!(w.replicas.is_settled());
        assert_eq!(w.revision_label(), Some("rollouts-pod-template-hash"));
    }

    #[test]
    fn template_labels_are_the_pods_not_the_objects() {
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "shop", "labels": {"team": "shop"}},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web", "tier": "front"}}}}
        }))
        .unwrap();
        let w = WorkloadObject::from_object(&d).unwrap();
        let want: BTreeMap<String, String> = [("app", "web"), ("tier", "front")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into();
        assert_eq!(w.template_labels(), &want);
        let bare: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "bare", "namespace": "shop"},
            "spec": {"selector": {"matchLabels": {"app": "bare"}}, "template": {}}
        }))
        .unwrap();
        assert!(
            WorkloadObject::from_object(&bare)
                .unwrap()
                .template_labels()
                .is_empty()
        );
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
            WorkloadObject::from_dynamic(&r),
            Err(WorkloadError::Malformed { .. })
        ));
    }
}
