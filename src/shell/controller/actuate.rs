//! The writes skewguard makes to workloads and pods: server-side apply of its constraints,
//! evictions through the Eviction API, rollout restarts, and pods' deletion costs. Each returns a typed outcome; no
//! policy is decided here, and no kind is matched on (the kind's descriptor says where it lives).

use k8s_openapi::api::core::v1::{Pod, PodTemplate};
use kube::Client;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::Value;

use crate::api::{CapacityRequest, CapacityVia, FIELD_MANAGER};
use crate::core::constraints::TemplateApply;
use crate::core::pipeline::{StrandedPod, WriteError, WriteKind, WriteResult};
use crate::core::topology::{Move, deletion_cost};
use crate::core::workload::WorkloadObject;

/// Evicts the move's pod with its uid (and, where the snapshot had it, its resourceVersion) as
/// preconditions: a replacement of the same name (a StatefulSet's) or a pod changed since the
/// snapshot is not evicted (409, counted as gone: the next reconcile plans on what is there).
/// A PodDisruptionBudget's refusal (429) and a pod already gone (404) are outcomes, not errors.
/// config/admission/evictions_scoped.yaml refuses skewguard's evictions without a uid.
pub async fn evict(client: &Client, namespace: &str, m: &Move) -> WriteResult {
    match client.request::<Value>(eviction(namespace, m)).await {
        Ok(_) => WriteResult::Done,
        Err(kube::Error::Api(status)) if status.code == 429 => WriteResult::BudgetExhausted,
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {
            WriteResult::Gone
        }
        Err(source) => WriteResult::Failed(WriteError {
            kind: WriteKind::Evict,
            target: m.pod.clone(),
            source,
        }),
    }
}

/// The Eviction request for the move's pod. Built here, not with kube's `Api::evict`: kube 5
/// sends its delete options as `delete_options`, a field the API server does not know, so its
/// preconditions never reach the server.
fn eviction(namespace: &str, m: &Move) -> http::Request<Vec<u8>> {
    let mut preconditions = serde_json::json!({ "uid": m.pod_uid });
    if !m.pod_resource_version.is_empty() {
        preconditions["resourceVersion"] = Value::from(m.pod_resource_version.clone());
    }
    eviction_request(namespace, &m.pod, Some(preconditions))
}

/// An Eviction of `pod` with these delete preconditions (`None`: none).
pub fn eviction_request(
    namespace: &str,
    pod: &str,
    preconditions: Option<Value>,
) -> http::Request<Vec<u8>> {
    let mut body = serde_json::json!({
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": { "name": pod, "namespace": namespace },
    });
    if let Some(preconditions) = preconditions {
        body["deleteOptions"] = serde_json::json!({ "preconditions": preconditions });
    }
    let mut request = http::Request::new(body.to_string().into_bytes());
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = format!("/api/v1/namespaces/{namespace}/pods/{pod}/eviction")
        .parse()
        .unwrap_or_default();
    request.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    request
}

/// Deletes a Pending pod stranded by its DoNotSchedule spread (its uid a precondition, so a
/// replacement of the same name is never deleted); one already gone, or replaced, is an outcome.
/// config/admission/room_requests_only.yaml lets skewguard delete only unbound, Pending,
/// controller-owned pods the scheduler found unschedulable with a DoNotSchedule spread.
pub async fn delete_pending(client: &Client, namespace: &str, pod: &StrandedPod) -> WriteResult {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let params = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: Some(pod.uid.clone()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match pods.delete(&pod.pod, &params).await {
        Ok(_) => WriteResult::Done,
        // Gone, or a new pod of the same name (the precondition failed).
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {
            WriteResult::Gone
        }
        Err(source) => WriteResult::Failed(WriteError {
            kind: WriteKind::DeletePending,
            target: pod.pod.clone(),
            source,
        }),
    }
}

/// Server-side apply of skewguard's own fields (a partial body, never a whole object), to the
/// object the body names: the workload, or the Deployment a Rollout's `workloadRef` names.
pub async fn apply(
    client: &Client,
    workload: &WorkloadObject,
    body: &TemplateApply,
) -> WriteResult {
    let params = PatchParams::apply(FIELD_MANAGER);
    let resource = body.kind.descriptor().api_resource();
    let api =
        Api::<DynamicObject>::namespaced_with(client.clone(), workload.namespace(), &resource);
    match api.patch(&body.name, &params, &Patch::Apply(body)).await {
        Ok(_) => WriteResult::Done,
        Err(source) => WriteResult::Failed(WriteError {
            kind: WriteKind::Inject,
            target: format!("{} {}", body.kind, body.name),
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
        // An apply to a pod deleted since the snapshot tries to create it, which fails
        // validation: the pod is gone, not the write wrong.
        Err(kube::Error::Api(status))
            if status.code == 422 && matches!(pods.get_opt(pod).await, Ok(None)) =>
        {
            WriteResult::Gone
        }
        Err(source) => WriteResult::Failed(WriteError {
            kind: WriteKind::DeletionCost,
            target: pod.to_string(),
            source,
        }),
    }
}

/// Asks the autoscaler for room: creates the request's objects in order (a PodTemplate and its
/// CapacityBuffer, or the placeholder pods). An object that already exists (a retry, or a new
/// leader carrying on) counts as made.
pub async fn request_capacity(client: &Client, namespace: &str, objects: &[Value]) -> WriteResult {
    for object in objects {
        let made = create(client, namespace, object).await;
        if let Err(source) = made {
            let kind = object["kind"].as_str().unwrap_or("object");
            let name = object["metadata"]["name"].as_str().unwrap_or_default();
            return WriteResult::Failed(WriteError {
                kind: WriteKind::RequestCapacity,
                target: format!("{kind} {name}"),
                source,
            });
        }
    }
    WriteResult::Done
}

/// Gives the room back: deletes what the request made (what is gone already is fine).
pub async fn release_capacity(
    client: &Client,
    namespace: &str,
    request: &CapacityRequest,
) -> WriteResult {
    let resources: Vec<ApiResource> = match request.via {
        CapacityVia::CapacityBuffer => vec![
            capacity_buffer_resource(),
            ApiResource::erase::<PodTemplate>(&()),
        ],
        CapacityVia::PlaceholderPods => vec![ApiResource::erase::<Pod>(&())],
    };
    for resource in &resources {
        let api = Api::<DynamicObject>::namespaced_with(client.clone(), namespace, resource);
        for name in &request.names {
            match api.delete(name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(source) => {
                    return WriteResult::Failed(WriteError {
                        kind: WriteKind::ReleaseCapacity,
                        target: format!("{} {name}", resource.kind),
                        source,
                    });
                }
            }
        }
    }
    WriteResult::Done
}

/// SIG Autoscaling's CapacityBuffer (autoscaling.x-k8s.io/v1beta1).
pub fn capacity_buffer_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &kube::core::GroupVersionKind::gvk("autoscaling.x-k8s.io", "v1beta1", "CapacityBuffer"),
        "capacitybuffers",
    )
}

/// Creates one whole object (its apiVersion and kind say where); one that exists is made.
async fn create(client: &Client, namespace: &str, object: &Value) -> Result<(), kube::Error> {
    let object: DynamicObject =
        serde_json::from_value(object.clone()).map_err(kube::Error::SerdeError)?;
    let resource = match object.types.as_ref().map(|t| t.kind.as_str()) {
        Some("CapacityBuffer") => capacity_buffer_resource(),
        Some("PodTemplate") => ApiResource::erase::<PodTemplate>(&()),
        _ => ApiResource::erase::<Pod>(&()),
    };
    let api = Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &resource);
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..Default::default()
    };
    match api.create(&params, &object).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(e) => Err(e),
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
