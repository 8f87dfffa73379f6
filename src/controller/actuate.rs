//! The writes skewguard makes to workloads and pods: server-side apply of its constraints,
//! evictions through the Eviction API, and rollout restarts. Each returns a typed outcome; no
//! policy is decided here.

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, EvictParams, Patch, PatchParams};
use serde_json::{Value, json};

use crate::api::WorkloadKind;
use crate::constraints::FIELD_MANAGER;
use crate::workload::{WorkloadObject, rollout_gvk};

/// The annotation `kubectl rollout restart` sets; Argo CD users already know to ignore it.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// What the Eviction API said.
#[derive(Debug)]
pub enum EvictionOutcome {
    Evicted,
    /// 429: a PodDisruptionBudget has no room now.
    BudgetExhausted,
    /// The pod is already gone.
    Gone,
    Failed(kube::Error),
}

pub async fn evict(client: &Client, namespace: &str, pod: &str) -> EvictionOutcome {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    match pods.evict(pod, &EvictParams::default()).await {
        Ok(_) => EvictionOutcome::Evicted,
        Err(kube::Error::Api(status)) if status.code == 429 => EvictionOutcome::BudgetExhausted,
        Err(kube::Error::Api(status)) if status.code == 404 => EvictionOutcome::Gone,
        Err(e) => EvictionOutcome::Failed(e),
    }
}

/// Server-side apply of skewguard's own fields (a partial body, never a whole object).
pub async fn apply(
    client: &Client,
    workload: &WorkloadObject,
    body: &Value,
) -> Result<(), kube::Error> {
    let params = PatchParams::apply(FIELD_MANAGER);
    patch(client, workload, &params, &Patch::Apply(body)).await
}

/// Restarts the workload as `kubectl rollout restart` (Deployment, StatefulSet) or
/// `kubectl argo rollouts restart` (Rollout) would.
pub async fn restart(
    client: &Client,
    workload: &WorkloadObject,
    now: Timestamp,
) -> Result<(), kube::Error> {
    let at = now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let body = restart_patch(workload.kind, &at);
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..Default::default()
    };
    patch(client, workload, &params, &Patch::Merge(&body)).await
}

/// The merge patch that restarts a workload of `kind` at `at` (RFC 3339).
pub fn restart_patch(kind: WorkloadKind, at: &str) -> Value {
    match kind {
        WorkloadKind::Rollout => json!({ "spec": { "restartAt": at } }),
        WorkloadKind::Deployment | WorkloadKind::StatefulSet => json!({
            "spec": { "template": { "metadata": { "annotations": { RESTARTED_AT: at } } } }
        }),
    }
}

async fn patch<P: serde::Serialize + std::fmt::Debug>(
    client: &Client,
    workload: &WorkloadObject,
    params: &PatchParams,
    patch: &Patch<P>,
) -> Result<(), kube::Error> {
    let (ns, name) = (workload.namespace(), workload.name());
    match workload.kind {
        WorkloadKind::Deployment => {
            Api::<Deployment>::namespaced(client.clone(), ns)
                .patch(name, params, patch)
                .await?;
        }
        WorkloadKind::StatefulSet => {
            Api::<StatefulSet>::namespaced(client.clone(), ns)
                .patch(name, params, patch)
                .await?;
        }
        WorkloadKind::Rollout => {
            let resource = ApiResource::from_gvk(&rollout_gvk());
            Api::<DynamicObject>::namespaced_with(client.clone(), ns, &resource)
                .patch(name, params, patch)
                .await?;
        }
    }
    Ok(())
}
