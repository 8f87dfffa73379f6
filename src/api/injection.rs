//! How a policy's constraints reach the pods: written into the pod templates, or added to each pod
//! as the API server admits it (a MutatingAdmissionPolicy, Kubernetes 1.36+), and what the
//! operator publishes in the policy's status for that admission policy to read.
//!
//! skewguard ships one static MutatingAdmissionPolicy and its binding (`config/admission-mode/`),
//! whose parameters are the HAPolicies of the pod's namespace. The operator never creates or
//! changes admission policies: it only publishes `status.admission` on each HAPolicy, which the
//! admission policy reads. Everything published there is bounded by the schema below (enums,
//! minimums, unique keys) and checked again by the admission expressions, so a broken parameter
//! never makes a pod invalid: the pod is admitted without the constraint instead.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::policy::WorkloadKind;
use super::spread::{NodeInclusionPolicy, PodWhenUnsatisfiable};

/// `spec.injection`: how the policy's constraints reach the pods.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
// Bounded like every string under a CEL rule (the spec's Adaptive rule reads it).
#[schemars(extend("maxLength" = 9))]
pub enum Injection {
    /// Admission where the API server serves MutatingAdmissionPolicies
    /// (admissionregistration.k8s.io/v1, Kubernetes 1.36+) and skewguard's admission policy and
    /// binding (config/admission-mode/) are installed; else Template.
    #[default]
    Auto,
    /// Write the constraints into the pod templates (server-side apply, field manager skewguard):
    /// each workload rolls out once.
    Template,
    /// Add the constraints to each pod when it is created; nothing is written to the workloads.
    Admission,
}

/// The mode a policy is in: see [`Injection`].
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InjectionMode {
    Template,
    Admission,
}

impl InjectionMode {
    pub fn as_str(self) -> &'static str {
        match self {
            InjectionMode::Template => "Template",
            InjectionMode::Admission => "Admission",
        }
    }
}

impl std::fmt::Display for InjectionMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `status.injection`: the mode the policy is in, and why.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct InjectionStatus {
    pub mode: InjectionMode,
    /// Requested (spec.injection says so), AdmissionPolicyInstalled, AdmissionNotServed,
    /// AdmissionPolicyNotInstalled, or AdmissionSupportUnknown.
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// `status.admission`: what skewguard's MutatingAdmissionPolicy reads, per governed workload.
/// Published only in Admission mode, and not while the policy is paused or the operator runs with
/// --dry-run.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionParameters {
    #[serde(default)]
    pub workloads: Vec<AdmittedWorkload>,
}

/// One workload's pods and what is added to each of them at creation.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AdmittedWorkload {
    pub kind: WorkloadKind,
    pub name: String,
    /// The workload's pod selector: pods do not carry their workload's labels, so this is how a
    /// pod being created is recognised as one of the workload's.
    pub pod_selector: LabelSelector,
    /// Added to a pod that has no constraint for their topology key (the pod's own win): the same
    /// content template injection writes.
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["topologyKey", "whenUnsatisfiable"]))]
    pub constraints: Vec<AdmittedConstraint>,
    /// Added when the pod has no preferred pod anti-affinity (hostAntiAffinity: Preferred).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anti_affinity: Option<AdmittedAntiAffinity>,
    /// Since when this entry has been published as it is: pods created from then on (after a
    /// short grace for the API server to see it) must carry its constraints.
    pub since: Time,
}

/// A pod `topologySpreadConstraints` entry, with the fields template injection writes.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AdmittedConstraint {
    #[schemars(length(min = 1, max = 317))]
    pub topology_key: String,
    #[schemars(range(min = 1))]
    pub max_skew: i32,
    /// An Adaptive entry is published as DoNotSchedule or ScheduleAnyway, by its zones' health.
    pub when_unsatisfiable: PodWhenUnsatisfiable,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub min_domains: Option<i32>,
    pub label_selector: LabelSelector,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_label_keys: Option<Vec<String>>,
    pub node_affinity_policy: NodeInclusionPolicy,
    pub node_taints_policy: NodeInclusionPolicy,
}

/// A preferred pod anti-affinity term, shaped like the pod's
/// `preferredDuringSchedulingIgnoredDuringExecution` entries.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AdmittedAntiAffinity {
    #[schemars(range(min = 1, max = 100))]
    pub weight: i32,
    pub pod_affinity_term: AdmittedAffinityTerm,
}

/// The part of a pod affinity term skewguard fills in.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AdmittedAffinityTerm {
    #[schemars(length(min = 1, max = 317))]
    pub topology_key: String,
    pub label_selector: LabelSelector,
}
