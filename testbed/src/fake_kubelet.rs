//! Plays the kubelet for Node objects the suite creates: registers the nodes (zone and hostname
//! labels, capacity, Ready), renews their Leases in `kube-node-lease` so kube-controller-manager's
//! node-lifecycle controller keeps them Ready, marks pods bound to them Running and Ready (after an
//! optional readiness delay) and finishes the deletion of terminating pods.
//!
//! Cordoning sets `spec.unschedulable` (as `kubectl cordon` does); a NotReady zone posts
//! `Ready=False` and stops renewing its Leases. In both cases the node-lifecycle controller adds the
//! real taints (`node.kubernetes.io/unschedulable`, `node.kubernetes.io/not-ready`) and the helpers
//! wait until it has. A NotReady node reports its pods not Ready, and from then on neither starts
//! nor finishes deleting pods (as a failed node); when it is Ready again its pods are Ready again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::task::JoinHandle;

use crate::harness::{wait_for, watch_backoff};

pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";
const MANAGER: &str = "fake-kubelet";
const LEASE_RENEW: Duration = Duration::from_secs(4);

/// The capacity (and allocatable) of every node; 4 CPUs, 16Gi and 110 pods by default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capacity {
    pub cpu: String,
    pub memory: String,
    pub pods: u32,
}

impl Default for Capacity {
    fn default() -> Self {
        Capacity {
            cpu: "4".into(),
            memory: "16Gi".into(),
            pods: 110,
        }
    }
}

#[derive(Debug, Clone)]
struct NodeState {
    zone: String,
    ip: String,
    ready: bool,
    capacity: Capacity,
    /// Labels besides the zone, hostname, OS and architecture (an autoscaler's NodePool labels).
    labels: BTreeMap<String, String>,
    /// Taints the node registers with (a NodePool's); none for [`FakeKubelet::ensure_nodes`].
    taints: Vec<Taint>,
}

/// A node to register one at a time ([`FakeKubelet::add_node`]), e.g. one an autoscaler launched.
#[derive(Debug, Clone)]
pub struct NewNode {
    pub name: String,
    pub zone: String,
    pub capacity: Capacity,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
}

#[derive(Default)]
struct State {
    nodes: BTreeMap<String, NodeState>,
    /// Pods being started or deleted right now, by uid, and whether an event for the pod came
    /// meanwhile (an eviction while it was starting, say): then the pod is read and acted on
    /// again when the current work ends, since no later event may come for it.
    in_flight: HashMap<String, bool>,
    readiness_delay: Duration,
    next_node_ip: u32,
}

/// The fake kubelet of every node the suite creates. Cheap to clone; tasks stop on [`FakeKubelet::stop`].
#[derive(Clone)]
pub struct FakeKubelet {
    client: Client,
    state: Arc<Mutex<State>>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    pod_ips: Arc<AtomicU32>,
    /// Held by whoever decides a node's Ready and posts it: a zone flip, a node layout, a lease
    /// round. Without it a lease round that read a node as Ready just before the zone was set
    /// NotReady would post Ready over it, and the not-ready taint would never come.
    node_status: Arc<tokio::sync::Mutex<()>>,
}

pub fn node_name(zone: &str, index: usize) -> String {
    format!("{zone}-node-{index}")
}

fn now() -> String {
    Timestamp::now().to_string()
}

/// The node the pod is bound to, if it is.
pub fn node_of(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref()?.node_name.as_deref()
}

/// Whether the pod's Ready condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Whether the pod has finished (Succeeded or Failed).
pub fn is_finished(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

impl State {
    /// A fresh node IP (172.16.x.y).
    fn next_ip(&mut self) -> String {
        self.next_node_ip += 1;
        format!(
            "172.16.{}.{}",
            self.next_node_ip / 250,
            self.next_node_ip % 250 + 1
        )
    }
}

impl FakeKubelet {
    /// Starts the pod watcher and the lease renewer on the current tokio runtime.
    pub fn start(client: Client) -> FakeKubelet {
        let kubelet = FakeKubelet {
            client,
            state: Arc::default(),
            tasks: Arc::default(),
            pod_ips: Arc::new(AtomicU32::new(0)),
            node_status: Arc::default(),
        };
        let watcher_task = tokio::spawn(kubelet.clone().watch_pods());
        let lease_task = tokio::spawn(kubelet.clone().renew_leases());
        kubelet
            .tasks
            .lock()
            .unwrap()
            .extend([watcher_task, lease_task]);
        kubelet
    }

    /// Stops the background tasks (the nodes stay).
    pub fn stop(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    /// Pods become Ready this long after they start Running (a readiness probe); zero by default.
    pub fn set_readiness_delay(&self, delay: Duration) {
        self.state.lock().unwrap().readiness_delay = delay;
    }

    /// Makes the cluster's nodes exactly `count` nodes per zone, named `<zone>-node-<i>`, all Ready,
    /// uncordoned and untainted, with the default [`Capacity`]. Nodes of earlier layouts that are
    /// not in this one are deleted (their pods are garbage-collected). Returns the node names.
    pub async fn ensure_nodes(&self, layout: &[(&str, usize)]) -> Vec<String> {
        self.ensure_nodes_with(layout, &Capacity::default()).await
    }

    pub async fn ensure_nodes_with(&self, layout: &[(&str, usize)], cap: &Capacity) -> Vec<String> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let wanted: Vec<(String, String)> = layout
            .iter()
            .flat_map(|(zone, n)| (0..*n).map(move |i| (node_name(zone, i), zone.to_string())))
            .collect();
        let wanted_names: HashSet<&str> = wanted.iter().map(|(n, _)| n.as_str()).collect();

        let status_guard = self.node_status.lock().await;
        let stale: Vec<String> = {
            let mut st = self.state.lock().unwrap();
            let stale = st
                .nodes
                .keys()
                .filter(|n| !wanted_names.contains(n.as_str()))
                .cloned()
                .collect::<Vec<_>>();
            for n in &stale {
                st.nodes.remove(n);
            }
            for (name, zone) in &wanted {
                let ip = st.next_ip();
                let entry = st.nodes.entry(name.clone()).or_insert(NodeState {
                    zone: zone.clone(),
                    ip,
                    ready: true,
                    capacity: cap.clone(),
                    labels: BTreeMap::new(),
                    taints: Vec::new(),
                });
                entry.zone = zone.clone();
                entry.ready = true;
                entry.capacity = cap.clone();
            }
            stale
        };
        for name in stale {
            let _ = nodes.delete(&name, &DeleteParams::default()).await;
        }
        for (name, _) in &wanted {
            self.register(name).await;
        }
        drop(status_guard);
        let names: Vec<String> = wanted.into_iter().map(|(n, _)| n).collect();
        self.wait_taints(&names, |taints| taints.is_empty(), "untainted")
            .await;
        self.resync_pods().await;
        names
    }

    /// Registers one more node (Ready, uncordoned, with `node`'s labels, taints and capacity),
    /// keeping every other node as it is; returns once only `node.taints` are on it (the
    /// node-lifecycle controller has lifted the not-ready taint a new node is created with).
    /// What an autoscaler's launch looks like from the API.
    pub async fn add_node(&self, node: NewNode) {
        let status_guard = self.node_status.lock().await;
        {
            let mut st = self.state.lock().unwrap();
            let ip = st.next_ip();
            st.nodes.insert(
                node.name.clone(),
                NodeState {
                    zone: node.zone,
                    ip,
                    ready: true,
                    capacity: node.capacity,
                    labels: node.labels,
                    taints: node.taints.clone(),
                },
            );
        }
        self.register(&node.name).await;
        drop(status_guard);
        let wanted: HashSet<String> = node.taints.into_iter().map(|t| t.key).collect();
        self.wait_taints(
            std::slice::from_ref(&node.name),
            |taints| taints.iter().all(|t| wanted.contains(t)),
            "up",
        )
        .await;
        self.resync_pods().await;
    }

    /// Deletes one node and stops playing its kubelet (its pods are garbage-collected): what an
    /// autoscaler's scale-down looks like from the API.
    pub async fn remove_node(&self, name: &str) {
        let status_guard = self.node_status.lock().await;
        self.state.lock().unwrap().nodes.remove(name);
        match Api::<Node>::all(self.client.clone())
            .delete(name, &DeleteParams::default())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => panic!("delete node {name}: {e}"),
        }
        drop(status_guard);
    }

    async fn register(&self, name: &str) {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let pp = PatchParams::apply(MANAGER).force();
        let (zone, extra, taints) = {
            let st = self.state.lock().unwrap();
            let node = &st.nodes[name];
            (node.zone.clone(), node.labels.clone(), node.taints.clone())
        };
        let mut labels = json!({
            ZONE_LABEL: zone, HOSTNAME_LABEL: name,
            "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"});
        for (k, v) in extra {
            labels[k] = json!(v);
        }
        let mut node = json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": labels},
        });
        if !taints.is_empty() {
            node["spec"] = json!({"taints": taints});
        }
        nodes
            .patch(name, &pp, &Patch::Apply(&node))
            .await
            .unwrap_or_else(|e| panic!("register node {name}: {e}"));
        // Uncordon whatever an earlier scenario left cordoned.
        self.set_node_unschedulable(name, false).await;
        self.post_status(name, true)
            .await
            .unwrap_or_else(|e| panic!("post status of node {name}: {e}"));
        self.renew_lease(name).await;
    }

    /// Posts the node's whole status, Ready or not. Always all of it: this is a server-side
    /// apply, and a field the kubelet applied before and leaves out now (its capacity, say)
    /// would be removed from the node.
    async fn post_status(&self, name: &str, ready: bool) -> Result<Node, kube::Error> {
        let (ip, cap) = {
            let st = self.state.lock().unwrap();
            let node = &st.nodes[name];
            (node.ip.clone(), node.capacity.clone())
        };
        let capacity = json!({"cpu": cap.cpu, "memory": cap.memory, "pods": cap.pods.to_string()});
        let status = json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name},
            "status": {
                "capacity": capacity, "allocatable": capacity,
                "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
                "conditions": [ready_condition(ready)],
                "nodeInfo": {
                    "machineID": name, "systemUUID": name, "bootID": name, "kernelVersion": "6.1.0",
                    "osImage": "fake", "containerRuntimeVersion": "fake://1.0", "kubeletVersion": "v1.33.0",
                    "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": "amd64"},
            },
        });
        Api::<Node>::all(self.client.clone())
            .patch_status(
                name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&status),
            )
            .await
    }

    /// The zone of every node this kubelet runs.
    pub fn zones(&self) -> BTreeMap<String, String> {
        let st = self.state.lock().unwrap();
        st.nodes
            .iter()
            .map(|(n, s)| (n.clone(), s.zone.clone()))
            .collect()
    }

    /// The zone of `node`, if it is one of ours.
    pub fn zone_of(&self, node: &str) -> Option<String> {
        self.state
            .lock()
            .unwrap()
            .nodes
            .get(node)
            .map(|s| s.zone.clone())
    }

    fn nodes_in(&self, zone: &str) -> Vec<String> {
        let st = self.state.lock().unwrap();
        let names: Vec<String> = st
            .nodes
            .iter()
            .filter(|(_, s)| s.zone == zone)
            .map(|(n, _)| n.clone())
            .collect();
        assert!(
            !names.is_empty(),
            "the fake kubelet has no node in zone {zone}"
        );
        names
    }

    /// `kubectl cordon` every node of `zone`; returns once the unschedulable taint is on them.
    pub async fn cordon_zone(&self, zone: &str) {
        self.set_unschedulable(zone, true).await;
    }

    /// `kubectl uncordon` every node of `zone`; returns once the unschedulable taint is gone.
    pub async fn uncordon_zone(&self, zone: &str) {
        self.set_unschedulable(zone, false).await;
    }

    async fn set_unschedulable(&self, zone: &str, cordoned: bool) {
        let names = self.nodes_in(zone);
        for name in &names {
            self.set_node_unschedulable(name, cordoned).await;
        }
        let has = move |taints: &[String]| {
            taints
                .iter()
                .any(|t| t == "node.kubernetes.io/unschedulable")
                == cordoned
        };
        let what = if cordoned { "cordoned" } else { "uncordoned" };
        self.wait_taints(&names, has, what).await;
    }

    /// `kubectl cordon` / `uncordon` one node: a merge patch of `spec.unschedulable`.
    async fn set_node_unschedulable(&self, name: &str, cordoned: bool) {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let value = if cordoned { json!(true) } else { json!(null) };
        nodes
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"unschedulable": value}})),
            )
            .await
            .unwrap_or_else(|e| panic!("cordon={cordoned} node {name}: {e}"));
    }

    /// Makes every node of `zone` Ready or NotReady (its kubelet dead: no lease renewals, no pod
    /// starts or deletions). Returns once the node-lifecycle controller's not-ready taint matches.
    pub async fn set_zone_ready(&self, zone: &str, ready: bool) {
        let names = self.nodes_in(zone);
        let status_guard = self.node_status.lock().await;
        {
            let mut st = self.state.lock().unwrap();
            for n in &names {
                if let Some(s) = st.nodes.get_mut(n) {
                    s.ready = ready;
                }
            }
        }
        for name in &names {
            self.post_status(name, ready)
                .await
                .unwrap_or_else(|e| panic!("set node {name} ready={ready}: {e}"));
            if ready {
                self.renew_lease(name).await;
            }
        }
        drop(status_guard);
        let has = move |taints: &[String]| {
            taints.iter().any(|t| t == "node.kubernetes.io/not-ready") != ready
        };
        let what = if ready { "Ready" } else { "NotReady" };
        self.wait_taints(&names, has, what).await;
        if ready {
            self.resync_pods().await;
        } else {
            self.mark_pods_not_ready(&names).await;
        }
    }

    /// What a failing node reports for its pods: containers not ready (the node-lifecycle
    /// controller only does this itself when the node stops reporting altogether).
    async fn mark_pods_not_ready(&self, names: &[String]) {
        let pods: Api<Pod> = Api::all(self.client.clone());
        for node in names {
            let lp = ListParams::default().fields(&format!("spec.nodeName={node}"));
            let list = pods
                .list(&lp)
                .await
                .unwrap_or_else(|e| panic!("list pods on {node}: {e}"));
            for pod in list.items.iter().filter(|p| is_ready(p)) {
                let t = now();
                let cond = |type_: &str| json!({"type": type_, "status": "False", "lastTransitionTime": t});
                let patch =
                    json!({"status": {"conditions": [cond("Ready"), cond("ContainersReady")]}});
                let api: Api<Pod> =
                    Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
                if let Err(e) = api
                    .patch_status(
                        &pod.name_any(),
                        &PatchParams::default(),
                        &Patch::Strategic(&patch),
                    )
                    .await
                {
                    eprintln!("fake-kubelet: mark pod {} not ready: {e}", pod.name_any());
                }
            }
        }
    }

    async fn wait_taints(&self, names: &[String], ok: impl Fn(&[String]) -> bool, what: &str) {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let names = names.to_vec();
        wait_for(
            &format!("nodes {names:?} {what}"),
            Duration::from_secs(60),
            || {
                let nodes = nodes.clone();
                let names = names.clone();
                let ok = &ok;
                async move {
                    for name in &names {
                        let node = nodes.get(name).await.ok()?;
                        let taints: Vec<String> = node
                            .spec
                            .and_then(|s| s.taints)
                            .unwrap_or_default()
                            .into_iter()
                            .map(|t| t.key)
                            .collect();
                        if !ok(&taints) {
                            return None;
                        }
                    }
                    Some(())
                }
            },
        )
        .await;
    }

    async fn renew_lease(&self, name: &str) {
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), "kube-node-lease");
        let lease = json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": 40,
                     "renewTime": Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()},
        });
        if let Err(e) = leases
            .patch(
                name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&lease),
            )
            .await
        {
            eprintln!("fake-kubelet: renew lease {name}: {e}");
        }
    }

    async fn renew_leases(self) {
        loop {
            tokio::time::sleep(LEASE_RENEW).await;
            let _status_guard = self.node_status.lock().await;
            let ready: Vec<String> = {
                let st = self.state.lock().unwrap();
                st.nodes
                    .iter()
                    .filter(|(_, s)| s.ready)
                    .map(|(n, _)| n.clone())
                    .collect()
            };
            for name in &ready {
                self.renew_lease(name).await;
            }
            if self.repost_ready(&ready).await {
                // A kubelet's status manager puts its pods' status back too: the node-lifecycle
                // controller marked them NotReady with the node.
                self.resync_pods().await;
            }
        }
    }

    /// What a kubelet does when its node's Ready condition is not what it reports (e.g. the
    /// node-lifecycle controller set it Unknown while the API server was away): posts Ready again.
    /// Errors (the API server is down) are only logged; the next round tries again. Returns
    /// whether it posted Ready for any node.
    async fn repost_ready(&self, ready: &[String]) -> bool {
        if ready.is_empty() {
            return false;
        }
        let nodes: Api<Node> = Api::all(self.client.clone());
        let list = match nodes.list(&ListParams::default()).await {
            Ok(list) => list,
            Err(e) => {
                eprintln!("fake-kubelet: list nodes: {e}");
                return false;
            }
        };
        let mut reposted = false;
        for node in list.items {
            let name = node.name_any();
            if !ready.contains(&name) {
                continue;
            }
            let is_ready = node
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            if is_ready {
                continue;
            }
            eprintln!("fake-kubelet: node {name} is not Ready on the server; posting Ready again");
            match self.post_status(&name, true).await {
                Ok(_) => reposted = true,
                Err(e) => eprintln!("fake-kubelet: post Ready for node {name}: {e}"),
            }
        }
        reposted
    }

    async fn watch_pods(self) {
        let pods: Api<Pod> = Api::all(self.client.clone());
        let mut stream = watcher(pods, watcher::Config::default())
            .backoff(watch_backoff())
            .applied_objects()
            .boxed();
        while let Some(event) = stream.next().await {
            match event {
                Ok(pod) => self.handle(pod),
                Err(e) => eprintln!("fake-kubelet: pod watch: {e}"),
            }
        }
    }

    /// Acts on every pod again (after a zone comes back, or new nodes appear).
    async fn resync_pods(&self) {
        let pods: Api<Pod> = Api::all(self.client.clone());
        match pods.list(&Default::default()).await {
            Ok(list) => list.items.into_iter().for_each(|p| self.handle(p)),
            Err(e) => eprintln!("fake-kubelet: list pods: {e}"),
        }
    }

    /// Decides what a kubelet would do with `pod`, and does it in the background.
    fn handle(&self, pod: Pod) {
        let Some(node) = node_of(&pod).map(String::from) else {
            return;
        };
        let uid = pod.uid().unwrap_or_default();
        let deleting = pod.metadata.deletion_timestamp.is_some();
        if !deleting && (is_ready(&pod) || is_finished(&pod)) {
            return;
        }
        let (host_ip, delay) = {
            let mut st = self.state.lock().unwrap();
            let Some(node) = st.nodes.get(&node).filter(|n| n.ready) else {
                return;
            };
            let host_ip = node.ip.clone();
            if let Some(changed) = st.in_flight.get_mut(&uid) {
                *changed = true;
                return;
            }
            st.in_flight.insert(uid.clone(), false);
            (host_ip, st.readiness_delay)
        };
        let kubelet = self.clone();
        tokio::spawn(async move {
            if deleting {
                kubelet.finish_deletion(&pod).await;
            } else {
                kubelet.run_pod(&pod, &host_ip, delay).await;
            }
            let changed = kubelet.state.lock().unwrap().in_flight.remove(&uid);
            if changed == Some(true) {
                kubelet.handle_again(&pod).await;
            }
        });
    }

    /// Reads `pod` again (its own status writes made some of the events that came meanwhile) and
    /// acts on what it is now.
    async fn handle_again(&self, pod: &Pod) {
        let api: Api<Pod> =
            Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
        match api.get_opt(&pod.name_any()).await {
            Ok(Some(now)) if now.uid() == pod.uid() => self.handle(now),
            Ok(_) => {}
            Err(e) => eprintln!("fake-kubelet: read pod {} again: {e}", pod.name_any()),
        }
    }

    async fn finish_deletion(&self, pod: &Pod) {
        let api: Api<Pod> =
            Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: pod.uid().map(|uid| kube::api::Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&pod.name_any(), &dp).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => eprintln!("fake-kubelet: delete pod {}: {e}", pod.name_any()),
        }
    }

    async fn run_pod(&self, pod: &Pod, host_ip: &str, delay: Duration) {
        let api: Api<Pod> =
            Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
        let name = pod.name_any();
        let pod_ip = match pod.status.as_ref().and_then(|s| s.pod_ip.clone()) {
            Some(ip) => ip,
            None => {
                let n = self.pod_ips.fetch_add(1, Ordering::Relaxed);
                format!("10.244.{}.{}", n / 250, n % 250 + 1)
            }
        };
        let started = pod
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map(|t| t.0.to_string())
            .unwrap_or_else(now);
        if !delay.is_zero() {
            let status = pod_status(pod, host_ip, &pod_ip, &started, false);
            if let Err(e) = api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await
            {
                eprintln!("fake-kubelet: start pod {name}: {e}");
                return;
            }
            tokio::time::sleep(delay).await;
            // The pod may have been deleted, or its node died, meanwhile.
            let alive = match api.get_opt(&name).await {
                Ok(Some(p)) => p.uid() == pod.uid() && p.metadata.deletion_timestamp.is_none(),
                _ => false,
            };
            let node_ready = node_of(pod)
                .and_then(|n| self.state.lock().unwrap().nodes.get(n).map(|s| s.ready))
                .unwrap_or(false);
            if !alive || !node_ready {
                return;
            }
        }
        let status = pod_status(pod, host_ip, &pod_ip, &started, true);
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => eprintln!("fake-kubelet: run pod {name}: {e}"),
        }
    }
}

fn ready_condition(ready: bool) -> serde_json::Value {
    let t = now();
    let (status, reason, message) = if ready {
        ("True", "KubeletReady", "kubelet is posting ready status")
    } else {
        ("False", "KubeletNotReady", "container runtime is down")
    };
    json!({"type": "Ready", "status": status, "reason": reason, "message": message,
           "lastHeartbeatTime": t, "lastTransitionTime": t})
}

/// The status a kubelet reports for a pod whose containers all run (and are ready when `ready`).
fn pod_status(
    pod: &Pod,
    host_ip: &str,
    pod_ip: &str,
    started: &str,
    ready: bool,
) -> serde_json::Value {
    let t = now();
    let flag = if ready { "True" } else { "False" };
    let containers: Vec<serde_json::Value> = pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|c| {
            json!({
                "name": c.name, "image": c.image.clone().unwrap_or_default(),
                "imageID": format!("fake://{}", c.image.clone().unwrap_or_default()),
                "containerID": format!("fake://{}-{}", pod.uid().unwrap_or_default(), c.name),
                "ready": ready, "started": true, "restartCount": 0,
                "state": {"running": {"startedAt": started}},
            })
        })
        .collect();
    let cond = |type_: &str, status: &str| json!({"type": type_, "status": status, "lastProbeTime": null, "lastTransitionTime": t});
    json!({"status": {
        "phase": "Running", "hostIP": host_ip, "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip, "podIPs": [{"ip": pod_ip}], "startTime": started,
        "conditions": [cond("PodScheduled", "True"), cond("Initialized", "True"),
                       cond("ContainersReady", flag), cond("Ready", flag)],
        "containerStatuses": containers,
    }})
}

/// Counts `pods` per zone of the node they are bound to (unbound pods under `""`).
pub fn count_by_zone<'a>(
    kubelet: &FakeKubelet,
    pods: impl IntoIterator<Item = &'a Pod>,
) -> BTreeMap<String, usize> {
    let zones: HashMap<String, String> = kubelet.zones().into_iter().collect();
    let mut counts = BTreeMap::new();
    for pod in pods {
        let zone = node_of(pod)
            .and_then(|n| zones.get(n).cloned())
            .unwrap_or_default();
        *counts.entry(zone).or_insert(0) += 1;
    }
    counts
}
