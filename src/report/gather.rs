//! Gathering the cluster state a report needs: read-only `list` calls, nothing else.

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;

use crate::api::HAPolicy;
use crate::core::snapshot::LeanPod;
use crate::core::workload::{KindDescriptor, kinds};
use crate::shell::controller::stores::nodepool_resource;
use kube::api::{DynamicObject, ListParams};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use super::ReportError;
use super::build::ClusterState;

/// Which namespaces to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    Namespace(String),
    All,
}

/// Lists nodes (cluster-wide: domains are made of every node) and, in `scope`, pods,
/// PodDisruptionBudgets and the workloads of every supported kind the API server serves.
pub async fn gather(client: &Client, scope: &Scope) -> Result<ClusterState, ReportError> {
    let nodes = list(Api::<Node>::all(client.clone()), "nodes").await?;
    let pods = list(scoped::<LeanPod>(client, scope), "pods").await?;
    let budgets = list(
        scoped::<PodDisruptionBudget>(client, scope),
        "poddisruptionbudgets",
    )
    .await?;
    let mut workloads = Vec::new();
    let mut kinds_served = Vec::new();
    for kind in kinds() {
        if let Some(listed) = list_kind(client, scope, kind).await? {
            workloads.extend(listed);
            kinds_served.push(kind.kind);
        }
    }
    // Optional: without the CRD, or the right to read them, rows show no injection mode.
    let policies = scoped::<HAPolicy>(client, scope)
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    let admission = crate::shell::controller::admission::probe(client)
        .await
        .ok();
    // Optional: where NodePools are served (and may be read), their zones are the expected ones.
    let nodepools = Api::<DynamicObject>::all_with(client.clone(), &nodepool_resource())
        .list(&ListParams::default())
        .await
        .ok()
        .map(|l| {
            (l.items.iter())
                .map(|p| serde_json::to_value(p).unwrap_or_default())
                .collect()
        });
    Ok(ClusterState {
        nodes,
        pods,
        workloads,
        kinds_served,
        budgets,
        policies,
        admission,
        nodepools,
    })
}

fn scoped<K>(client: &Client, scope: &Scope) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match scope {
        Scope::Namespace(ns) => Api::namespaced(client.clone(), ns),
        Scope::All => Api::all(client.clone()),
    }
}

async fn list<K>(api: Api<K>, resource: &'static str) -> Result<Vec<K>, ReportError>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    api.list(&ListParams::default())
        .await
        .map(|l| l.items)
        .map_err(|source| ReportError::List { resource, source })
}

/// The workloads of one kind (each stamped with its apiVersion and kind, which a list's items
/// lack), or `None` when the API server does not serve the kind (404: its CRD is not installed).
async fn list_kind(
    client: &Client,
    scope: &Scope,
    kind: &'static KindDescriptor,
) -> Result<Option<Vec<DynamicObject>>, ReportError> {
    let resource = kind.api_resource();
    let api: Api<DynamicObject> = match scope {
        Scope::Namespace(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        Scope::All => Api::all_with(client.clone(), &resource),
    };
    match api.list(&ListParams::default()).await {
        Ok(list) => Ok(Some(
            list.items
                .into_iter()
                .map(|mut o| {
                    o.types = Some(kube::api::TypeMeta {
                        api_version: kind.api_version(),
                        kind: kind.name().to_string(),
                    });
                    o
                })
                .collect(),
        )),
        Err(e) if resource_absent(&e) => Ok(None),
        Err(source) => Err(ReportError::List {
            resource: kind.plural,
            source,
        }),
    }
}

/// A 404 on a collection: the API server does not serve the resource. Checked by code, not
/// reason, because for an unknown API group the body is a plain "404 page not found", which kube
/// reports without a `NotFound` reason.
fn resource_absent(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    #[test]
    fn an_unknown_api_group_means_no_rollouts() {
        let unparsed =
            Status::failure("404 page not found", "Failed to parse error data").with_code(404);
        assert!(resource_absent(&kube::Error::Api(Box::new(unparsed))));
        let forbidden = Status::failure("forbidden", "Forbidden").with_code(403);
        assert!(!resource_absent(&kube::Error::Api(Box::new(forbidden))));
    }
}
