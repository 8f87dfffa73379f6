//! The pods the core reads, kept from the pod watch: each namespace's pods already in the core's
//! terms, and what pods request on each node, updated one event at a time.
//!
//! A reconcile then costs its own namespace's pods (a shared handle on each) and the nodes, never
//! a pass over every pod of the cluster. Which pods hold a node's resources is the core's definition
//! ([`topology::Pod::holds_resources`]: terminating pods still hold theirs), applied to the
//! converted pod.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use kube::runtime::watcher::Event;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::core::snapshot::{self, LeanPod};
use crate::core::topology::fast_hash::FastMap;
use crate::core::topology::{self, NodeSet, Resources};

#[derive(Debug, Default)]
struct Index {
    /// namespace -> pod name -> pod, in name order (a snapshot lists them so). Each pod is shared
    /// with the snapshots that hold it, not copied into them.
    namespaces: FastMap<String, BTreeMap<String, Arc<topology::Pod>>>,
    /// node name -> what its pods request.
    requested: FastMap<String, Tally>,
    /// What is left on each node of one node set once `requested` is taken, until a pod or the
    /// node set changes: every reconcile between two pod events shares it instead of looking
    /// each node up again.
    laid_out: Option<(Arc<NodeSet>, Arc<[Resources]>)>,
    /// (namespace, name) -> when the watch first showed the pod Ready (since it last was not).
    ready_at: FastMap<(String, String), Instant>,
}

impl Index {
    fn apply(&mut self, pod: topology::Pod) {
        let was_ready = (self.namespaces.get(&pod.namespace))
            .and_then(|pods| pods.get(&pod.name))
            .is_some_and(|old| old.ready && old.uid == pod.uid);
        let id = (pod.namespace.clone(), pod.name.clone());
        if !pod.ready {
            self.ready_at.remove(&id);
        } else if !was_ready {
            self.ready_at.insert(id, Instant::now());
        }
        self.remove(&pod.namespace, &pod.name);
        self.charge(&pod, 1);
        self.namespaces
            .entry(pod.namespace.clone())
            .or_default()
            .insert(pod.name.clone(), Arc::new(pod));
    }

    fn delete(&mut self, namespace: &str, name: &str) {
        self.ready_at
            .remove(&(namespace.to_string(), name.to_string()));
        self.remove(namespace, name);
    }

    fn remove(&mut self, namespace: &str, name: &str) {
        let Some(pods) = self.namespaces.get_mut(namespace) else {
            return;
        };
        if let Some(old) = pods.remove(name) {
            if pods.is_empty() {
                self.namespaces.remove(namespace);
            }
            self.charge(&old, -1);
        }
    }

    /// Adds (`sign` 1) or takes back (-1) what the pod requests on its node.
    fn charge(&mut self, pod: &topology::Pod, sign: i128) {
        if !pod.holds_resources() {
            return;
        }
        let Some(node) = &pod.node_name else { return };
        self.laid_out = None;
        let entry = self.requested.entry(node.clone()).or_default();
        entry.add(&pod.requests, sign);
        if *entry == Tally::default() {
            self.requested.remove(node);
        }
    }
}

/// What a node's pods request, summed in i128: exact for any number of i64 requests, so taking a
/// pod back always undoes adding it (a saturating i64 sum would not: one pod asking `1e400Ki`
/// would leave its node full after it is gone). Read out saturated to i64.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Tally {
    cpu_millis: i128,
    memory_bytes: i128,
    pods: i128,
}

impl Tally {
    fn add(&mut self, r: &Resources, sign: i128) {
        self.cpu_millis += sign * i128::from(r.cpu_millis);
        self.memory_bytes += sign * i128::from(r.memory_bytes);
        self.pods += sign * i128::from(r.pods);
    }

    fn resources(&self) -> Resources {
        let clamp = |v: i128| i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX });
        Resources::new(
            clamp(self.cpu_millis),
            clamp(self.memory_bytes),
            clamp(self.pods),
        )
    }
}

/// The pod index: fed by the pod watcher's events, read by every reconcile.
#[derive(Debug)]
pub struct PodIndex {
    live: Mutex<Index>,
    /// The index a re-list is building; swapped in whole when the list is complete, so a reconcile
    /// never sees half a list.
    relisting: Mutex<Option<Index>>,
    synced: watch::Sender<bool>,
}

impl Default for PodIndex {
    fn default() -> Self {
        Self {
            live: Mutex::default(),
            relisting: Mutex::default(),
            synced: watch::Sender::new(false),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every update leaves the index consistent before the next one starts.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl PodIndex {
    /// An index already holding these pods (tests, the report).
    pub fn of(pods: impl IntoIterator<Item = LeanPod>) -> Self {
        let index = Self::default();
        for pod in pods {
            index.handle(Event::Apply(pod));
        }
        index.synced.send_replace(true);
        index
    }

    /// Takes one watcher event.
    pub fn handle(&self, event: Event<LeanPod>) {
        match event {
            Event::Apply(pod) => lock(&self.live).apply(snapshot::pod_from(&pod)),
            Event::Delete(pod) => {
                let (ns, name) = (
                    pod.metadata.namespace.unwrap_or_default(),
                    pod.metadata.name.unwrap_or_default(),
                );
                lock(&self.live).delete(&ns, &name);
            }
            Event::Init => *lock(&self.relisting) = Some(Index::default()),
            Event::InitApply(pod) => {
                if let Some(index) = lock(&self.relisting).as_mut() {
                    index.apply(snapshot::pod_from(&pod));
                }
            }
            Event::InitDone => {
                if let Some(index) = lock(&self.relisting).take() {
                    *lock(&self.live) = index;
                }
                self.synced.send_replace(true);
            }
        }
    }

    /// The pods of one namespace, in the core's terms, by name: handles for one snapshot, shared
    /// with the index (a pod event replaces the index's handle, never a snapshot's pod).
    pub fn pods_in(&self, namespace: &str) -> Vec<Arc<topology::Pod>> {
        (lock(&self.live).namespaces.get(namespace))
            .map(|pods| pods.values().cloned().collect())
            .unwrap_or_default()
    }

    /// When the pod watch showed the pod Ready (since it last was not); `None` while it is not.
    pub fn ready_at(&self, namespace: &str, name: &str) -> Option<Instant> {
        (lock(&self.live).ready_at)
            .get(&(namespace.to_string(), name.to_string()))
            .copied()
    }

    /// What is free on each of `nodes`, in their order, once the pods of every namespace have
    /// taken their requests ([`NodeSet::free_room`]).
    pub fn free_on(&self, nodes: &Arc<NodeSet>) -> Arc<[Resources]> {
        let mut index = lock(&self.live);
        if let Some((set, free)) = &index.laid_out
            && Arc::ptr_eq(set, nodes)
        {
            return free.clone();
        }
        let requested: Vec<Resources> = (nodes.nodes().iter())
            .map(|n| {
                (index.requested.get(&n.name)).map_or_else(Resources::default, Tally::resources)
            })
            .collect();
        let free = nodes.free_room(&requested);
        index.laid_out = Some((nodes.clone(), free.clone()));
        free
    }

    pub fn len(&self) -> usize {
        lock(&self.live)
            .namespaces
            .values()
            .map(BTreeMap::len)
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until the first list is complete.
    pub async fn wait_until_ready(&self) {
        let mut rx = self.synced.subscribe();
        let _ = rx.wait_for(|synced| *synced).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, node: &str, cpu: &str, deleting: bool) -> LeanPod {
        pod_in_phase(name, node, cpu, deleting, "Running")
    }

    fn pod_in_phase(name: &str, node: &str, cpu: &str, deleting: bool, phase: &str) -> LeanPod {
        let mut meta = json!({"name": name, "namespace": "shop", "labels": {"app": "web"}});
        if deleting {
            meta["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        serde_json::from_value(json!({
            "metadata": meta,
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i",
                     "resources": {"requests": {"cpu": cpu}}}]},
            "status": {"phase": phase}
        }))
        .unwrap()
    }

    /// One node set for a whole test, as the controller shares it: what was laid out for it
    /// must follow every event all the same.
    fn nodes() -> Arc<NodeSet> {
        let node = |name: &str| topology::Node {
            name: name.to_string(),
            ..Default::default()
        };
        Arc::new(NodeSet::new(vec![node("n1"), node("n2")]))
    }

    /// What pods request on `node`: the free room's shortfall (these nodes allocate nothing).
    fn cpu_on(index: &PodIndex, nodes: &Arc<NodeSet>, node: &str) -> i64 {
        let at = nodes.nodes().iter().position(|n| n.name == node).unwrap();
        -index.free_on(nodes)[at].cpu_millis
    }

    #[test]
    fn usage_follows_each_event() {
        let (index, nodes) = (PodIndex::default(), nodes());
        index.handle(Event::Apply(pod("a", "n1", "100m", false)));
        index.handle(Event::Apply(pod("b", "n1", "200m", false)));
        assert_eq!(cpu_on(&index, &nodes, "n1"), 300);
        // Moved to another node (a replacement with the same name).
        index.handle(Event::Apply(pod("b", "n2", "200m", false)));
        assert_eq!(
            (cpu_on(&index, &nodes, "n1"), cpu_on(&index, &nodes, "n2")),
            (100, 200)
        );
        // A terminating pod holds its requests until it is gone, as the scheduler charges it;
        // a finished one holds nothing.
        index.handle(Event::Apply(pod("a", "n1", "100m", true)));
        assert_eq!(cpu_on(&index, &nodes, "n1"), 100);
        index.handle(Event::Apply(pod_in_phase(
            "a",
            "n1",
            "100m",
            true,
            "Succeeded",
        )));
        assert_eq!(cpu_on(&index, &nodes, "n1"), 0);
        index.handle(Event::Delete(pod("b", "n2", "200m", false)));
        assert_eq!(cpu_on(&index, &nodes, "n2"), 0);
        assert_eq!(index.len(), 1);
        assert_eq!(index.pods_in("shop").len(), 1);
        assert!(index.pods_in("other").is_empty());
    }

    #[test]
    fn an_absurd_request_fills_its_node_and_leaves_nothing_behind_when_gone() {
        let (index, nodes) = (PodIndex::default(), nodes());
        index.handle(Event::Apply(pod("small", "n1", "100m", false)));
        // `1e400` CPUs reads as i64::MAX millicores; twice that must neither wrap nor panic.
        index.handle(Event::Apply(pod("huge-1", "n1", "1e400", false)));
        index.handle(Event::Apply(pod("huge-2", "n1", "1e400k", false)));
        assert_eq!(
            cpu_on(&index, &nodes, "n1"),
            i64::MAX,
            "saturated, not wrapped"
        );
        let n1 = nodes.nodes().iter().position(|n| n.name == "n1").unwrap();
        assert!(!index.free_on(&nodes)[n1].covers(&Resources::new(1, 0, 0)));
        index.handle(Event::Delete(pod("huge-1", "n1", "1e400", false)));
        index.handle(Event::Delete(pod("huge-2", "n1", "1e400k", false)));
        assert_eq!(cpu_on(&index, &nodes, "n1"), 100, "exactly what is left");
    }

    #[test]
    fn a_namespace_list_follows_each_event_of_that_namespace() {
        let index = PodIndex::default();
        index.handle(Event::Apply(pod("b", "n1", "100m", false)));
        let names = |index: &PodIndex| -> Vec<String> {
            index
                .pods_in("shop")
                .iter()
                .map(|p| p.name.clone())
                .collect()
        };
        assert_eq!(names(&index), ["b"]);
        index.handle(Event::Apply(pod("a", "n1", "100m", false)));
        assert_eq!(names(&index), ["a", "b"], "by name, with the new pod");
        index.handle(Event::Apply(pod("a", "n2", "100m", false)));
        assert_eq!(index.pods_in("shop")[0].node_name.as_deref(), Some("n2"));
        index.handle(Event::Delete(pod("b", "n1", "100m", false)));
        assert_eq!(names(&index), ["a"]);
    }

    fn ready(mut pod: LeanPod, uid: &str) -> LeanPod {
        pod.metadata.uid = Some(uid.to_string());
        pod.status.conditions = Some(vec![k8s_openapi::api::core::v1::PodCondition {
            type_: "Ready".into(),
            status: "True".into(),
            ..Default::default()
        }]);
        pod
    }

    #[tokio::test(start_paused = true)]
    async fn the_moment_a_pod_turned_ready_is_kept_until_it_is_not() {
        let index = PodIndex::default();
        index.handle(Event::Apply(pod("a", "n1", "100m", false)));
        assert_eq!(index.ready_at("shop", "a"), None, "not Ready yet");
        tokio::time::advance(std::time::Duration::from_secs(1)).await;
        let turned = Instant::now();
        index.handle(Event::Apply(ready(pod("a", "n1", "100m", false), "u1")));
        tokio::time::advance(std::time::Duration::from_secs(2)).await;
        // Another event of the same Ready pod keeps the moment it turned Ready.
        index.handle(Event::Apply(ready(pod("a", "n1", "100m", false), "u1")));
        assert_eq!(index.ready_at("shop", "a"), Some(turned));
        // A replacement with the same name (a StatefulSet's) turns Ready anew.
        index.handle(Event::Apply(ready(pod("a", "n2", "100m", false), "u2")));
        assert_eq!(index.ready_at("shop", "a"), Some(Instant::now()));
        index.handle(Event::Delete(pod("a", "n2", "100m", false)));
        assert_eq!(index.ready_at("shop", "a"), None);
    }

    #[test]
    fn a_relist_replaces_the_index_whole_when_done() {
        let (index, nodes) = (PodIndex::default(), nodes());
        index.handle(Event::Apply(pod("old", "n1", "100m", false)));
        index.handle(Event::Init);
        index.handle(Event::InitApply(pod("new", "n1", "50m", false)));
        assert_eq!(
            cpu_on(&index, &nodes, "n1"),
            100,
            "the old view until the list is done"
        );
        index.handle(Event::InitDone);
        assert_eq!(cpu_on(&index, &nodes, "n1"), 50);
        assert_eq!(index.pods_in("shop")[0].name, "new");
    }
}
