//! One descriptor per workload kind: everything the operator needs to know about a kind, in one
//! place.
//!
//! Every kind is read, watched, listed and written as a `DynamicObject` through its descriptor, so
//! the controller, the report and the writers never match on the kind. **Adding a kind** takes 5
//! places in 5 files (counted):
//! 1. a variant of [`WorkloadKind`] in `src/api/policy.rs` and in `WorkloadKind::ALL` (a test
//!    holds `ALL` to the enum's variants);
//! 2. its [`KindDescriptor`] below and its arm in `WorkloadKind::descriptor` (an exhaustive match:
//!    the compiler asks for it): its API coordinates, CRD, revision label, how its status says it
//!    is settled, its restart patch;
//! 3. `get/list/watch/patch` on its resource in `config/rbac/cluster_role.yaml` (the exact rule
//!    check in `tests/config.rs` reads the descriptors, so it asks for it);
//! 4. its resource in the `matchConstraints` of `config/admission/workload_owned_fields_only.yaml`,
//!    the ValidatingAdmissionPolicy that narrows that `patch` to the fields skewguard owns (a test
//!    in `tests/config.rs` holds the guard to every descriptor);
//! 5. for the end-to-end suite only, its resource in the testbed's list of what a test namespace
//!    holds (`testbed/src/harness.rs`), which does not depend on this crate.
//!
//! Nothing else changes: watches (`shell::controller::stores`), listing (`report::gather`), the
//! report's lines about kinds whose CRD is missing, the server-side apply body
//! (`constraints::TemplateApply`), restarts and Events read the descriptor.

use kube::api::ApiResource;
use kube::core::GroupVersionKind;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::WorkloadKind;

/// The annotation `kubectl rollout restart` sets; Argo CD users already know to ignore it.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// The status fields every supported kind reports (Deployment, StatefulSet and Rollout share
/// their names); a kind reads the ones it has.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RawStatus {
    pub replicas: i32,
    pub updated_replicas: Option<i32>,
    pub ready_replicas: i32,
    pub available_replicas: i32,
    /// A number for apps/v1, a string for Argo Rollouts.
    pub observed_generation: Option<Value>,
    pub current_revision: Option<String>,
    pub update_revision: Option<String>,
    pub conditions: Vec<RawCondition>,
    /// Argo Rollouts: the stable ReplicaSet's hash and the current template's.
    #[serde(rename = "stableRS")]
    pub stable_rs: Option<String>,
    pub current_pod_hash: Option<String>,
}

/// A status condition, as far as it is read.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawCondition {
    #[serde(rename = "type")]
    pub type_: String,
    pub reason: Option<String>,
}

impl RawStatus {
    pub fn observed_generation(&self) -> i64 {
        match &self.observed_generation {
            Some(Value::String(s)) => s.parse().unwrap_or(0),
            Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
            _ => 0,
        }
    }
}

/// What the operator knows about one workload kind.
#[derive(Debug)]
pub struct KindDescriptor {
    pub kind: WorkloadKind,
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    /// The CRD that must exist before the kind can be watched (`None`: built in).
    pub crd: Option<&'static str>,
    /// The label that tells a pod's revision apart, injected as `matchLabelKeys` so pods of
    /// different revisions are counted apart (`None`: pods of every revision count together).
    pub revision_label: Option<&'static str>,
    /// Scales in through a ReplicaSet, whose controller honours `pod-deletion-cost`.
    pub scales_through_replicasets: bool,
    /// Replicas on the newest revision, as the kind's status reports them.
    pub updated_replicas: fn(&RawStatus) -> i32,
    /// The merge patch that restarts the workload at `at` (RFC 3339).
    pub restart_patch: fn(&str) -> Value,
    /// Whether the status says the template's rollout is complete, from fields an eviction does
    /// not change (the replica counts lag behind evictions by as long as kube-controller-manager
    /// takes to write them); `None` when the status does not say.
    pub rolled_out: fn(&RawStatus) -> Option<bool>,
}

fn template_restart(at: &str) -> Value {
    json!({ "spec": { "template": { "metadata": { "annotations": { RESTARTED_AT: at } } } } })
}

static DEPLOYMENT: KindDescriptor = KindDescriptor {
    kind: WorkloadKind::Deployment,
    group: "apps",
    version: "v1",
    plural: "deployments",
    crd: None,
    revision_label: Some("pod-template-hash"),
    scales_through_replicasets: true,
    updated_replicas: |s| s.updated_replicas.unwrap_or(0),
    restart_patch: template_restart,
    // `kubectl rollout status`'s sign: Progressing with reason NewReplicaSetAvailable.
    rolled_out: |s| {
        (s.conditions.iter())
            .find(|c| c.type_ == "Progressing")
            .map(|c| c.reason.as_deref() == Some("NewReplicaSetAvailable"))
    },
};

static STATEFULSET: KindDescriptor = KindDescriptor {
    kind: WorkloadKind::StatefulSet,
    group: "apps",
    version: "v1",
    plural: "statefulsets",
    crd: None,
    revision_label: None,
    scales_through_replicasets: false,
    // Mid-update while the current and update revisions differ; once they agree, every
    // replica is on the newest one even if `updatedReplicas` is not reported.
    updated_replicas: |s| {
        if s.current_revision == s.update_revision {
            s.updated_replicas.unwrap_or(s.replicas)
        } else {
            s.updated_replicas.unwrap_or(0)
        }
    },
    restart_patch: template_restart,
    rolled_out: |s| match (&s.current_revision, &s.update_revision) {
        (Some(current), Some(update)) => Some(current == update),
        _ => None,
    },
};

static ROLLOUT: KindDescriptor = KindDescriptor {
    kind: WorkloadKind::Rollout,
    group: "argoproj.io",
    version: "v1alpha1",
    plural: "rollouts",
    crd: Some("rollouts.argoproj.io"),
    revision_label: Some("rollouts-pod-template-hash"),
    scales_through_replicasets: true,
    updated_replicas: |s| s.updated_replicas.unwrap_or(0),
    restart_patch: |at| json!({ "spec": { "restartAt": at } }),
    // The stable ReplicaSet is the current template's.
    rolled_out: |s| match (&s.stable_rs, &s.current_pod_hash) {
        (Some(stable), Some(current)) => Some(stable == current),
        _ => None,
    },
};

/// Every kind's descriptor, in [`WorkloadKind::ALL`] order.
pub fn kinds() -> impl Iterator<Item = &'static KindDescriptor> {
    WorkloadKind::ALL.iter().map(|k| k.descriptor())
}

impl KindDescriptor {
    pub fn name(&self) -> &'static str {
        self.kind.name()
    }

    pub fn gvk(&self) -> GroupVersionKind {
        GroupVersionKind::gvk(self.group, self.version, self.name())
    }

    /// `apps/v1`, `argoproj.io/v1alpha1`.
    pub fn api_version(&self) -> String {
        format!("{}/{}", self.group, self.version)
    }

    pub fn api_resource(&self) -> ApiResource {
        ApiResource::from_gvk_with_plural(&self.gvk(), self.plural)
    }
}

impl WorkloadKind {
    pub fn descriptor(self) -> &'static KindDescriptor {
        match self {
            WorkloadKind::Deployment => &DEPLOYMENT,
            WorkloadKind::StatefulSet => &STATEFULSET,
            WorkloadKind::Rollout => &ROLLOUT,
        }
    }

    /// The kind's name as the API spells it.
    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::Rollout => "Rollout",
        }
    }

    /// The kind an object of `api_version`/`kind` is, if it is a supported one.
    pub fn of(api_version: &str, kind: &str) -> Option<WorkloadKind> {
        kinds()
            .find(|d| d.name() == kind && d.api_version() == api_version)
            .map(|d| d.kind)
    }
}

impl std::fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_kind_the_enum_has() {
        let schema = serde_json::to_value(schemars::schema_for!(WorkloadKind)).unwrap();
        let variants: Vec<&str> = schema["enum"]
            .as_array()
            .expect("a unit enum's schema lists its variants")
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        let all: Vec<&str> = WorkloadKind::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(all, variants);
    }

    #[test]
    fn descriptors_are_in_kind_order_and_round_trip() {
        for kind in WorkloadKind::ALL {
            let d = kind.descriptor();
            assert_eq!(d.kind, kind);
            assert_eq!(WorkloadKind::of(&d.api_version(), d.name()), Some(kind));
        }
        assert_eq!(WorkloadKind::of("apps/v1", "Rollout"), None);
    }

    #[test]
    fn restart_patches_follow_kubectl() {
        assert_eq!(
            (WorkloadKind::Rollout.descriptor().restart_patch)("t"),
            json!({"spec": {"restartAt": "t"}})
        );
        assert_eq!(
            (WorkloadKind::StatefulSet.descriptor().restart_patch)("t")["spec"]["template"]["metadata"]
                ["annotations"][RESTARTED_AT],
            "t"
        );
    }
}
