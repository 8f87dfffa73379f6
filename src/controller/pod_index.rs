//! The pods the core reads, kept from the pod watch: each namespace's pods already in the core's
//! terms, and what pods request on each node, updated one event at a time.
//!
//! A reconcile then costs its own namespace's pods (a copy of them) and the nodes, never a pass
//! over every pod of the cluster. Which pods hold a node's resources is the core's definition
//! ([`topology::Pod::holds_resources`]: terminating pods still hold theirs), applied to the
//! converted pod.

use std::collections::HashMap;
use std::sync::Mutex;

use kube::runtime::watcher::Event;
use tokio::sync::watch;

use crate::snapshot::{self, LeanPod};
use crate::topology::fast_hash::FastMap;
use crate::topology::{self, Resources};

#[derive(Debug, Default)]
struct Index {
    /// namespace -> pod name -> pod.
    namespaces: FastMap<String, FastMap<String, topology::Pod>>,
    /// node name -> what its pods request.
    requested: FastMap<String, Resources>,
}

impl Index {
    fn apply(&mut self, pod: topology::Pod) {
        self.delete(&pod.namespace, &pod.name);
        self.charge(&pod, Resources::plus);
        self.namespaces
            .entry(pod.namespace.clone())
            .or_default()
            .insert(pod.name.clone(), pod);
    }

    fn delete(&mut self, namespace: &str, name: &str) {
        let Some(pods) = self.namespaces.get_mut(namespace) else {
            return;
        };
        if let Some(old) = pods.remove(name) {
            if pods.is_empty() {
                self.namespaces.remove(namespace);
            }
            self.charge(&old, Resources::minus);
        }
    }

    fn charge(&mut self, pod: &topology::Pod, op: fn(&Resources, &Resources) -> Resources) {
        if !pod.holds_resources() {
            return;
        }
        let Some(node) = &pod.node_name else { return };
        let entry = self.requested.entry(node.clone()).or_default();
        *entry = op(entry, &pod.requests);
        if *entry == Resources::default() {
            self.requested.remove(node);
        }
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

    /// The pods of one namespace, in the core's terms, by name.
    pub fn pods_in(&self, namespace: &str) -> Vec<topology::Pod> {
        let mut pods: Vec<topology::Pod> = lock(&self.live)
            .namespaces
            .get(namespace)
            .map(|pods| pods.values().cloned().collect())
            .unwrap_or_default();
        pods.sort_by(|a, b| a.name.cmp(&b.name));
        pods
    }

    /// What pods of every namespace request on each of `nodes`, in their order.
    pub fn requested_on(&self, nodes: &[topology::Node]) -> Vec<Resources> {
        let index = lock(&self.live);
        nodes
            .iter()
            .map(|n| index.requested.get(&n.name).copied().unwrap_or_default())
            .collect()
    }

    pub fn len(&self) -> usize {
        lock(&self.live).namespaces.values().map(HashMap::len).sum()
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

    fn cpu_on(index: &PodIndex, node: &str) -> i64 {
        let nodes = [topology::Node {
            name: node.to_string(),
            ..Default::default()
        }];
        index.requested_on(&nodes)[0].cpu_millis
    }

    #[test]
    fn usage_follows_each_event() {
        let index = PodIndex::default();
        index.handle(Event::Apply(pod("a", "n1", "100m", false)));
        index.handle(Event::Apply(pod("b", "n1", "200m", false)));
        assert_eq!(cpu_on(&index, "n1"), 300);
        // Moved to another node (a replacement with the same name).
        index.handle(Event::Apply(pod("b", "n2", "200m", false)));
        assert_eq!((cpu_on(&index, "n1"), cpu_on(&index, "n2")), (100, 200));
        // A terminating pod holds its requests until it is gone, as the scheduler charges it;
        // a finished one holds nothing.
        index.handle(Event::Apply(pod("a", "n1", "100m", true)));
        assert_eq!(cpu_on(&index, "n1"), 100);
        index.handle(Event::Apply(pod_in_phase(
            "a",
            "n1",
            "100m",
            true,
            "Succeeded",
        )));
        assert_eq!(cpu_on(&index, "n1"), 0);
        index.handle(Event::Delete(pod("b", "n2", "200m", false)));
        assert_eq!(cpu_on(&index, "n2"), 0);
        assert_eq!(index.len(), 1);
        assert_eq!(index.pods_in("shop").len(), 1);
        assert!(index.pods_in("other").is_empty());
    }

    #[test]
    fn a_relist_replaces_the_index_whole_when_done() {
        let index = PodIndex::default();
        index.handle(Event::Apply(pod("old", "n1", "100m", false)));
        index.handle(Event::Init);
        index.handle(Event::InitApply(pod("new", "n1", "50m", false)));
        assert_eq!(
            cpu_on(&index, "n1"),
            100,
            "the old view until the list is done"
        );
        index.handle(Event::InitDone);
        assert_eq!(cpu_on(&index, "n1"), 50);
        assert_eq!(index.pods_in("shop")[0].name, "new");
    }
}
