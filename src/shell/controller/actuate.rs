//! The writes skewguard makes to workloads and pods: server-side apply of its constraints,
//! evictions through the Eviction API, rollout restarts, and pods' deletion costs. Each returns a typed outcome; no
//! policy is decided here, and no kind is matched on (the kind's descriptor says where it lives).

use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, DynamicObject, EvictParams, Patch, PatchParams};
use serde_json::Value;

use crate::api::FIELD_MANAGER;
use crate::core::constraints::TemplateApply;
use crate::core::pipeline::{WriteError, WriteKind, WriteResult};
use crate::core::topology::deletion_cost;
use crate::core::workload::WorkloadObject;

/// Evicts a pod; a PodDisruptionBudget's refusal (429) and a pod already gone (404) are outcomes,
/// not errors.
pub async fn evict(client: &Client, namespace: &str, pod: &str) -> WriteResult {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    match pods.evict(pod, &EvictParams::default()).await {
        Ok(_) => WriteResult::Done,
        Err(kube::Error::Api(status)) if status.code == 429 => WriteResult::BudgetExhausted,
        Err(kube::Error::Api(status)) if status.code == 404 => WriteResult::Gone,
        Err(source) => WriteResult::Failed(WriteError {
            kind: WriteKind::Evict,
            target: pod.to_string(),
            source,
        }),
    }
}

/// Server-side apply of skewguard's own fields (a partial body, never a whole object).
pub async fn apply(
    client: &Client,
    workload: &WorkloadObject,
    body: &TemplateApply,
) -> WriteResult {
    let params = PatchParams::apply(FIELD_MANAGER);
    match patch(client, workload, &params, &Patch::Apply(body)).await {
        Ok(()) => WriteResult::Done,
        Err(source) => WriteResult::Failed(WriteError {
            kind: WriteKind::Inject,
            target: format!("{} {}", workload.kind, workload.name()),
            source,
        }),
    }
}

/// Restarts the workload as `kubectl rollout restart` (or `kubectl argo rollouts restart`) would,
/// with the kind's restart patch.
pub async fn restart(client: &Client, workload: &WorkloadObject, body: &Value) -> WriteResult {
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..Default::default()
    };
    match patch(client, workload, &params, &Patch::Merge(body)).await {
        Ok(()) => WriteResult::Done,
        Err(source) => WriteResult::Failed(WriteError {
            kind: WriteKind::Restart,
            target: format!("{} {}", workload.kind, workload.name()),
            source,
        }),
    }
}

/// Sets (`Some`) or gives up (`None`) skewguard's `pod-deletion-cost` annotation on a pod: a
/// server-side apply of that one annotation, so giving it up removes it only if skewguard owns it.
pub async fn set_deletion_cost(
    client: &Client,
    namespace: &str,
    pod: &str,
    cost: Option<i32>,
) -> WriteResult {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let body = deletion_cost::apply_body(pod, cost);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    match pods.patch(pod, &params, &Patch::Apply(&body)).await {
        Ok(_) => WriteResult::Done,
        Err(kube::Error::Api(status)) if status.code == 404 => WriteResult::Gone,
        Err(source) => WriteResult::Failed(WriteError {
            kind: WriteKind::DeletionCost,
            target: pod.to_string(),
            source,
        }),
    }
}

async fn patch<P: serde::Serialize + std::fmt::Debug>(
    client: &Client,
    workload: &WorkloadObject,
    params: &PatchParams,
    patch: &Patch<P>,
) -> Result<(), kube::Error> {
    let resource = workload.kind.descriptor().api_resource();
    Api::<DynamicObject>::namespaced_with(client.clone(), workload.namespace(), &resource)
        .patch(workload.name(), params, patch)
        .await
        .map(|_| ())
}
