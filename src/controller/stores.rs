//! Reflector-backed caches of everything the reconciler reads, and the triggers that requeue the
//! policies a change concerns. One initial LIST per kind, then watches: no periodic full LIST.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, reflector::store::Writer};
use kube::{Client, Resource, ResourceExt};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::api::{HAPolicy, WorkloadKind};
use crate::snapshot::{self, LeanPod};
use crate::topology::Resources;
use crate::workload::{WorkloadError, WorkloadObject, rollout_gvk};

/// The name of the Argo Rollouts CRD, watched so Rollouts are governed as soon as it appears.
pub const ROLLOUT_CRD: &str = "rollouts.argoproj.io";

/// What changed, in terms of the policies to look at again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// Something in this namespace changed.
    Namespace(String),
    /// Something every policy depends on changed (a node).
    All,
}

/// Read-only views of the caches.
#[derive(Clone)]
pub struct Stores {
    pub deployments: Store<Deployment>,
    pub statefulsets: Store<StatefulSet>,
    pub pods: Store<LeanPod>,
    pub nodes: Store<Node>,
    pub pdbs: Store<PodDisruptionBudget>,
    /// Set once the Rollout CRD is seen.
    pub rollouts: Arc<OnceLock<Store<DynamicObject>>>,
}

impl Stores {
    /// The workloads of the given kinds in a namespace, each converted or with the reason it
    /// cannot be.
    pub fn workloads(
        &self,
        namespace: &str,
        kinds: &[WorkloadKind],
    ) -> Vec<Result<WorkloadObject, WorkloadError>> {
        let in_ns = |o: &dyn Fn() -> Option<String>| o().as_deref() == Some(namespace);
        let mut out = Vec::new();
        if kinds.contains(&WorkloadKind::Deployment) {
            out.extend(
                self.deployments
                    .state()
                    .iter()
                    .filter(|d| in_ns(&|| d.namespace()))
                    .map(|d| WorkloadObject::from_deployment(d)),
            );
        }
        if kinds.contains(&WorkloadKind::StatefulSet) {
            out.extend(
                self.statefulsets
                    .state()
                    .iter()
                    .filter(|s| in_ns(&|| s.namespace()))
                    .map(|s| WorkloadObject::from_statefulset(s)),
            );
        }
        if kinds.contains(&WorkloadKind::Rollout)
            && let Some(rollouts) = self.rollouts.get()
        {
            out.extend(
                rollouts
                    .state()
                    .iter()
                    .filter(|r| in_ns(&|| r.namespace()))
                    .map(|r| WorkloadObject::from_rollout(r)),
            );
        }
        out
    }

    /// Pods of one namespace, in the core's terms.
    pub fn pods_in(&self, namespace: &str) -> Vec<crate::topology::Pod> {
        self.pods
            .state()
            .iter()
            .filter(|p| p.namespace().as_deref() == Some(namespace))
            .map(|p| snapshot::pod_from(p))
            .collect()
    }

    pub fn nodes(&self) -> Vec<crate::topology::Node> {
        self.nodes
            .state()
            .iter()
            .map(|n| snapshot::node_from(n))
            .collect()
    }

    /// Whether a PodDisruptionBudget of the namespace selecting pods with these labels allows no
    /// disruption now (as its controller last computed it).
    pub fn budget_exhausted(
        &self,
        namespace: &str,
        pod_labels: &std::collections::BTreeMap<String, String>,
    ) -> bool {
        use kube::core::{Selector, SelectorExt};
        self.pdbs.state().iter().any(|pdb| {
            let Some(spec) = pdb.spec.as_ref() else {
                return false;
            };
            pdb.namespace().as_deref() == Some(namespace)
                && spec
                    .selector
                    .clone()
                    .and_then(|s| Selector::try_from(s).ok())
                    // policy/v1: an empty selector selects every pod of the namespace.
                    .is_some_and(|s| s.matches(pod_labels))
                && pdb.status.as_ref().is_some_and(|s| {
                    s.observed_generation >= pdb.metadata.generation && s.disruptions_allowed <= 0
                })
        })
    }

    /// What all running pods request on each node, every namespace included.
    pub fn requested_per_node(&self) -> HashMap<String, Resources> {
        let mut out: HashMap<String, Resources> = HashMap::new();
        for pod in self.pods.state() {
            let counted = pod.metadata.deletion_timestamp.is_none()
                && !matches!(pod.status.phase.as_deref(), Some("Succeeded" | "Failed"));
            if let (true, Some(node)) = (counted, &pod.spec.node_name) {
                let entry = out.entry(node.clone()).or_default();
                *entry = entry.plus(&pod.spec.requests());
            }
        }
        out
    }
}

/// Drops what the lean pod still carries but the core never reads: the metadata the API server
/// manages, and every condition but Ready.
pub fn prune_pod(pod: &mut LeanPod) {
    pod.metadata.managed_fields = None;
    pod.metadata.annotations = None;
    pod.metadata.owner_references = None;
    pod.spec.settle_requests();
    if let Some(conditions) = pod.status.conditions.as_mut() {
        conditions.retain(|c| c.type_ == "Ready");
    }
}

/// Keeps only what the core needs of a node.
pub fn prune_node(node: &mut Node) {
    node.metadata.managed_fields = None;
    node.metadata.annotations = None;
    if let Some(status) = node.status.as_mut() {
        *status = k8s_openapi::api::core::v1::NodeStatus {
            allocatable: status.allocatable.take(),
            capacity: status.capacity.take(),
            conditions: status
                .conditions
                .take()
                .map(|c| c.into_iter().filter(|c| c.type_ == "Ready").collect()),
            ..Default::default()
        };
    }
}

fn drop_managed_fields<K: Resource>(o: &mut K) {
    o.meta_mut().managed_fields = None;
}

/// Starts every watch; returns the stores and the stream of triggers.
pub fn start(
    client: &Client,
    namespace: Option<&str>,
) -> (Stores, mpsc::UnboundedReceiver<Trigger>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let wc = watcher::Config::default();
    let deployments = spawn_watch(
        api(client, namespace),
        wc.clone(),
        drop_managed_fields,
        tx.clone(),
        false,
    );
    let statefulsets = spawn_watch(
        api(client, namespace),
        wc.clone(),
        drop_managed_fields,
        tx.clone(),
        false,
    );
    let pods = spawn_watch(
        api(client, namespace),
        wc.clone(),
        prune_pod,
        tx.clone(),
        false,
    );
    let pdbs = spawn_watch(
        api(client, namespace),
        wc.clone(),
        drop_managed_fields,
        tx.clone(),
        false,
    );
    let nodes = spawn_watch(
        Api::all(client.clone()),
        wc.clone(),
        prune_node,
        tx.clone(),
        true,
    );
    let rollouts = Arc::new(OnceLock::new());
    tokio::spawn(watch_rollout_crd(
        client.clone(),
        namespace.map(String::from),
        rollouts.clone(),
        tx,
    ));
    (
        Stores {
            deployments,
            statefulsets,
            pods,
            nodes,
            pdbs,
            rollouts,
        },
        rx,
    )
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as Resource>::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Runs a reflector in the background and turns its events into triggers.
fn spawn_watch<K>(
    api: Api<K>,
    wc: watcher::Config,
    prune: fn(&mut K),
    tx: mpsc::UnboundedSender<Trigger>,
    affects_all: bool,
) -> Store<K>
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
    <K as Resource>::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, wc).default_backoff().modify(prune);
    tokio::spawn(forward(stream, writer, tx, affects_all));
    reader
}

fn watcher<K>(
    api: Api<K>,
    wc: watcher::Config,
) -> impl Stream<Item = Result<Event<K>, watcher::Error>> + Send
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    watcher::watcher(api, wc)
}

async fn forward<K, S>(
    stream: S,
    writer: Writer<K>,
    tx: mpsc::UnboundedSender<Trigger>,
    affects_all: bool,
) where
    K: Resource + Clone + 'static,
    <K as Resource>::DynamicType: Eq + std::hash::Hash + Clone,
    S: Stream<Item = Result<Event<K>, watcher::Error>> + Send,
{
    let mut stream = std::pin::pin!(stream.reflect(writer));
    while let Some(event) = stream.next().await {
        let trigger = match event {
            Ok(Event::Apply(o) | Event::Delete(o)) if !affects_all => {
                o.meta().namespace.clone().map(Trigger::Namespace)
            }
            Ok(Event::Apply(_) | Event::Delete(_) | Event::InitDone) => Some(Trigger::All),
            Ok(Event::Init | Event::InitApply(_)) => None,
            Err(e) => {
                warn!(error = %e, "watch failed; retrying with backoff");
                None
            }
        };
        if let Some(t) = trigger
            && tx.send(t).is_err()
        {
            return;
        }
    }
}

/// Watches for the Rollout CRD; once it exists, starts the Rollout reflector.
async fn watch_rollout_crd(
    client: Client,
    namespace: Option<String>,
    slot: Arc<OnceLock<Store<DynamicObject>>>,
    tx: mpsc::UnboundedSender<Trigger>,
) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let wc = watcher::Config::default().fields(&format!("metadata.name={ROLLOUT_CRD}"));
    let mut stream = std::pin::pin!(
        watcher::watcher(crds, wc)
            .default_backoff()
            .applied_objects()
    );
    while let Some(crd) = stream.next().await {
        match crd {
            Ok(crd) if crd.name_any() == ROLLOUT_CRD && slot.get().is_none() => {
                info!("Argo Rollouts CRD found: governing Rollouts too");
                let resource = ApiResource::from_gvk(&rollout_gvk());
                let api: Api<DynamicObject> = match &namespace {
                    Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
                    None => Api::all_with(client.clone(), &resource),
                };
                let writer = Writer::new(resource.clone());
                let reader = writer.as_reader();
                let stream = watcher::watcher(api, watcher::Config::default())
                    .default_backoff()
                    .modify(drop_managed_fields);
                tokio::spawn(forward(stream, writer, tx.clone(), false));
                let _ = slot.set(reader);
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e, "watching the Rollout CRD failed; retrying"),
        }
    }
}

/// Policies of a namespace, for mapping a trigger to the policies to requeue.
pub fn policies_for(policies: &Store<HAPolicy>, trigger: &Trigger) -> Vec<ObjectRef<HAPolicy>> {
    policies
        .state()
        .iter()
        .filter(|p| match trigger {
            Trigger::All => true,
            Trigger::Namespace(ns) => p.namespace().as_deref() == Some(ns.as_str()),
        })
        .map(|p| ObjectRef::from_obj(p.as_ref()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pruning_keeps_everything_the_core_reads() {
        let mut pod: LeanPod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-1", "namespace": "shop", "labels": {"app": "web"},
                         "annotations": {"a": "b"},
                         "managedFields": [{"manager": "kubectl", "operation": "Apply"}]},
            "spec": {"nodeName": "n1", "priority": 3,
                     "tolerations": [{"operator": "Exists"}],
                     "containers": [{"name": "a", "image": "i",
                                     "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
                                                   "limits": {"memory": "1Gi"}}}],
                     "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "d"}}]},
            "status": {"phase": "Running", "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Ready", "status": "True"}]}
        }))
        .unwrap();
        let before = snapshot::pod_from(&pod);
        prune_pod(&mut pod);
        assert_eq!(snapshot::pod_from(&pod), before);
        assert!(pod.spec.containers.is_empty());
        assert!(pod.metadata.managed_fields.is_none() && pod.metadata.annotations.is_none());
        assert_eq!(pod.status.conditions.as_ref().map(Vec::len), Some(1));
        assert_eq!(
            before.requests,
            crate::topology::Resources::new(100, 64 << 20, 1)
        );
        assert!(before.ready && before.has_volume_claims);
    }
}
