//! Gathering the cluster state a report needs: read-only `list` calls, nothing else.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Node;

use crate::snapshot::LeanPod;
use kube::api::{ApiResource, DynamicObject, ListParams};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use super::ReportError;
use super::build::ClusterState;
use crate::workload::rollout_gvk;

/// Which namespaces to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    Namespace(String),
    All,
}

/// Lists nodes (cluster-wide: domains are made of every node) and, in `scope`, pods, Deployments,
/// StatefulSets and Argo Rollouts (`None` when the Rollout CRD is not installed).
pub async fn gather(client: &Client, scope: &Scope) -> Result<ClusterState, ReportError> {
    let nodes = list(Api::<Node>::all(client.clone()), "nodes").await?;
    let pods = list(scoped::<LeanPod>(client, scope), "pods").await?;
    let deployments = list(scoped::<Deployment>(client, scope), "deployments").await?;
    let statefulsets = list(scoped::<StatefulSet>(client, scope), "statefulsets").await?;
    let rollouts = list_rollouts(client, scope).await?;
    Ok(ClusterState {
        nodes,
        pods,
        deployments,
        statefulsets,
        rollouts,
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

/// Rollouts, or `None` when the API server does not know the resource (404: no Argo Rollouts).
async fn list_rollouts(
    client: &Client,
    scope: &Scope,
) -> Result<Option<Vec<DynamicObject>>, ReportError> {
    let resource = ApiResource::from_gvk_with_plural(&rollout_gvk(), "rollouts");
    let api: Api<DynamicObject> = match scope {
        Scope::Namespace(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        Scope::All => Api::all_with(client.clone(), &resource),
    };
    match api.list(&ListParams::default()).await {
        Ok(list) => Ok(Some(list.items)),
        Err(e) if resource_absent(&e) => Ok(None),
        Err(source) => Err(ReportError::List {
            resource: "rollouts.argoproj.io",
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
