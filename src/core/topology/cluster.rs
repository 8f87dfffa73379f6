//! A snapshot of the cluster with the indexes the core needs to stay linear in its size.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use kube::core::{Expression, Selector, SelectorExt};

use super::eligibility::counts_for_constraint;
use super::fast_hash::{FastMap, fast_hash};
use super::model::{InclusionPolicy, Node, Placement, Pod, Resources, SpreadConstraint, Workload};
use super::pod_memo::label_hash;

/// Nodes and pods as last observed, indexed by node name, namespace and label.
/// The cluster's nodes, with the indexes every reconcile shares: built once per change of the
/// nodes (not per reconcile), so a reconcile costs its namespace's pods, not the whole cluster.
#[derive(Debug)]
pub struct NodeSet {
    nodes: Vec<Node>,
    /// Tells this set from every other made by this process: a pod remembers its node's place
    /// per set ([`PodMemo`](super::pod_memo::PodMemo)).
    generation: u32,
    node_index: FastMap<String, usize>,
    keys: Mutex<HashMap<String, Arc<KeyIndex>>>,
    /// By [`EligibilityKey::hash_of`] the borrowed parts: a lookup copies nothing (each
    /// constraint of each workload asks at every reconcile).
    eligibility: Mutex<FastMap<u64, EligibilityBucket>>,
    /// What is derived from the nodes alone (a key's zones' health), made once per node set and
    /// shared by every policy's reconcile: by what it is and the key it is of.
    derived: Mutex<HashMap<(TypeId, String), Arc<dyn Any + Send + Sync>>>,
}

impl Default for NodeSet {
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

impl NodeSet {
    pub fn new(mut nodes: Vec<Node>) -> Self {
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        let node_index = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.clone(), i))
            .collect();
        static GENERATIONS: AtomicU32 = AtomicU32::new(1);
        Self {
            nodes,
            generation: GENERATIONS.fetch_add(1, Ordering::Relaxed).max(1),
            node_index,
            keys: Mutex::default(),
            eligibility: Mutex::default(),
            derived: Mutex::default(),
        }
    }

    /// `make`'s result over the nodes for `key`, made once per node set.
    pub fn derived<T: Any + Send + Sync>(
        &self,
        key: &str,
        make: impl FnOnce(&[Node]) -> T,
    ) -> Arc<T> {
        let id = (TypeId::of::<T>(), key.to_string());
        let lock = || self.derived.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(made) = lock().get(&id).and_then(|m| m.clone().downcast::<T>().ok()) {
            return made;
        }
        let made = Arc::new(make(&self.nodes));
        lock().insert(id, made.clone());
        made
    }

    /// Nodes sorted by name.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub fn node_index(&self, name: &str) -> Option<usize> {
        self.node_index.get(name).copied()
    }

    /// The index of the node `pod` is bound to, if it is one of these (remembered by the pod).
    pub fn node_of(&self, pod: &Pod) -> Option<usize> {
        let name = pod.node_name.as_deref()?;
        (pod.memo).node_index(self.generation, || self.node_index(name))
    }

    /// Allocatable less `requested` on each node (nothing requested past the end of
    /// `requested`).
    pub fn free_room(&self, requested: &[Resources]) -> Arc<[Resources]> {
        (self.nodes.iter().enumerate())
            .map(|(i, n)| {
                let taken = requested.get(i).copied().unwrap_or_default();
                n.allocatable.minus(&taken)
            })
            .collect()
    }
}

/// A snapshot the core reasons about: the shared nodes and one namespace's pods (or any set of
/// pods), with what every namespace's pods request on each node.
#[derive(Debug, Default)]
pub struct Cluster {
    nodes: Arc<NodeSet>,
    /// Shared with the pod cache: a snapshot holds handles, not copies.
    pods: Vec<Arc<Pod>>,
    /// The node of each pod (by index), looked up once per snapshot rather than per question.
    pod_node: Vec<Option<u32>>,
    namespaces: FastMap<String, NamespaceIndex>,
    /// Allocatable less the requests of the pods holding resources on each node (terminating
    /// ones included), in node order: every plan starts from it.
    free: Arc<[Resources]>,
}

/// The nodes that count for one constraint of one kind of pod.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Eligibility {
    /// For each node (cluster order), its domain if the node counts.
    pub node_domain: Vec<Option<u32>>,
    /// For each domain of the key, whether some node of it counts.
    pub eligible: Vec<bool>,
    pub domain_count: usize,
    /// Every node carrying the key counts.
    pub every_keyed_node: bool,
}

/// The cached eligibilities whose keys hash alike (almost always one).
type EligibilityBucket = Vec<(EligibilityKey, Arc<Eligibility>)>;

#[derive(Clone, Debug, PartialEq, Eq)]
struct EligibilityKey {
    all_keys: Vec<String>,
    key: String,
    node_affinity_policy: InclusionPolicy,
    node_taints_policy: InclusionPolicy,
    placement: Placement,
}

impl EligibilityKey {
    fn hash_of(all_keys: &[&str], constraint: &SpreadConstraint, placement: &Placement) -> u64 {
        fast_hash((
            all_keys,
            &constraint.topology_key,
            constraint.node_affinity_policy,
            constraint.node_taints_policy,
            placement,
        ))
    }

    fn is(&self, all_keys: &[&str], constraint: &SpreadConstraint, placement: &Placement) -> bool {
        self.all_keys
            .iter()
            .map(String::as_str)
            .eq(all_keys.iter().copied())
            && self.key == constraint.topology_key
            && self.node_affinity_policy == constraint.node_affinity_policy
            && self.node_taints_policy == constraint.node_taints_policy
            && self.placement == *placement
    }
}

/// The pods of one namespace, and label (key, value) -> pods, which narrows selector matching to
/// one posting list.
#[derive(Debug, Default)]
struct NamespaceIndex {
    pods: Vec<usize>,
    /// Keyed by [`label_hash`]: no label copied per snapshot. Two labels that hash alike share a
    /// list, which only widens it (every candidate is matched against the whole selector).
    by_label: FastMap<u64, Vec<usize>>,
}

/// The domains of one topology key over all nodes.
#[derive(Debug, PartialEq, Eq)]
pub struct KeyIndex {
    /// The distinct values of the key, sorted.
    pub domains: Arc<[String]>,
    /// For each node (cluster order), the index of its value, or `None` without the label.
    pub node_domain: Vec<Option<u32>>,
    /// Every node carries the key.
    pub on_every_node: bool,
    /// No two nodes share a value (hostname, as a rule): a domain is one node.
    pub one_node_per_domain: bool,
}

impl Cluster {
    /// A snapshot of these nodes and pods; what the pods request is all that is requested.
    pub fn new(nodes: Vec<Node>, pods: Vec<Pod>) -> Self {
        let nodes = Arc::new(NodeSet::new(nodes));
        let mut requested = vec![Resources::default(); nodes.nodes.len()];
        for pod in &pods {
            if pod.holds_resources()
                && let Some(n) = pod.node_name.as_ref().and_then(|n| nodes.node_index(n))
            {
                requested[n] = requested[n].plus(&pod.requests);
            }
        }
        Self::on(nodes, pods.into_iter().map(Arc::new).collect(), &requested)
    }

    /// A snapshot of `pods` on shared nodes, with `requested[i]` requested on node `i` by pods of
    /// every namespace.
    pub fn on(nodes: Arc<NodeSet>, pods: Vec<Arc<Pod>>, requested: &[Resources]) -> Self {
        let free = nodes.free_room(requested);
        Self::with_free_room(nodes, pods, free)
    }

    /// This snapshot with `extra` nodes besides (provisional ones: room an autoscaler would
    /// add), which nothing runs on yet.
    pub fn with_nodes(&self, extra: Vec<Node>) -> Cluster {
        let nodes: Vec<Node> = self.nodes().iter().cloned().chain(extra).collect();
        let set = Arc::new(NodeSet::new(nodes));
        let free: Arc<[Resources]> = (set.nodes().iter())
            .map(|n| {
                self.node_index(&n.name)
                    .map_or(n.allocatable, |i| self.free(i))
            })
            .collect();
        Cluster::with_free_room(set, self.pods.clone(), free)
    }

    /// A snapshot of `pods` on shared nodes with `free[i]` left on node `i` (as
    /// [`NodeSet::free_room`] works it out): the pod index keeps it between pod events, so
    /// snapshots of every namespace share one.
    pub fn with_free_room(
        nodes: Arc<NodeSet>,
        pods: Vec<Arc<Pod>>,
        free: Arc<[Resources]>,
    ) -> Self {
        let pod_node = (pods.iter())
            .map(|p| nodes.node_of(p).map(|n| n as u32))
            .collect();
        let mut namespaces: FastMap<String, NamespaceIndex> = FastMap::default();
        // A snapshot is mostly one namespace: its index is found once, not once per pod.
        let mut current: Option<(&str, NamespaceIndex)> = None;
        for (i, pod) in pods.iter().enumerate() {
            let namespace = pod.namespace.as_str();
            if current.as_ref().is_none_or(|(n, _)| *n != namespace) {
                if let Some((n, index)) = current.take() {
                    namespaces.insert(n.to_string(), index);
                }
                current = Some((namespace, namespaces.remove(namespace).unwrap_or_default()));
            }
            let Some((_, index)) = current.as_mut() else {
                continue;
            };
            index.pods.push(i);
            for &label in pod.memo.label_hashes(&pod.labels) {
                index.by_label.entry(label).or_default().push(i);
            }
        }
        if let Some((n, index)) = current {
            namespaces.insert(n.to_string(), index);
        }
        Self {
            nodes,
            pods,
            namespaces,
            free,
            pod_node,
        }
    }

    /// The nodes that count for `constraint` when placing a pod shaped like `placement`: they
    /// carry every one of `all_keys` (the keys of the pod's constraints of the same class,
    /// DoNotSchedule or ScheduleAnyway) and pass the
    /// constraint's node affinity and taint policies.
    pub fn eligibility(
        &self,
        all_keys: &[&str],
        constraint: &SpreadConstraint,
        placement: &Placement,
    ) -> Arc<Eligibility> {
        let hash = EligibilityKey::hash_of(all_keys, constraint, placement);
        let mut cache = self
            .nodes
            .eligibility
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let found = (cache.get(&hash).into_iter().flatten())
            .find(|(k, _)| k.is(all_keys, constraint, placement));
        if let Some((_, found)) = found {
            return found.clone();
        }
        let indexes: Vec<Arc<KeyIndex>> = all_keys.iter().map(|k| self.key_index(k)).collect();
        let key = self.key_index(&constraint.topology_key);
        let mut eligible = vec![false; key.domains.len()];
        let node_domain: Vec<Option<u32>> = self
            .nodes
            .nodes
            .iter()
            .enumerate()
            .map(|(i, node)| {
                let d = key.node_domain[i]?;
                let counts = indexes.iter().all(|k| k.node_domain[i].is_some())
                    && counts_for_constraint(constraint, placement, node);
                counts.then(|| {
                    eligible[d as usize] = true;
                    d
                })
            })
            .collect();
        let domain_count = eligible.iter().filter(|e| **e).count();
        let every_keyed_node = (node_domain.iter())
            .zip(&key.node_domain)
            .all(|(counted, keyed)| counted.is_some() == keyed.is_some());
        let found = Arc::new(Eligibility {
            node_domain,
            eligible,
            domain_count,
            every_keyed_node,
        });
        let cache_key = EligibilityKey {
            all_keys: all_keys.iter().map(|k| k.to_string()).collect(),
            key: constraint.topology_key.clone(),
            node_affinity_policy: constraint.node_affinity_policy,
            node_taints_policy: constraint.node_taints_policy,
            placement: placement.clone(),
        };
        cache
            .entry(hash)
            .or_default()
            .push((cache_key, found.clone()));
        found
    }

    /// Replaces what the snapshot's own pods request on each node with a cluster-wide figure
    /// (the controller snapshots one namespace's pods, but every namespace fills the nodes).
    /// The same snapshot with what is requested on each node (by name) replaced.
    pub fn with_requested(mut self, requested: &HashMap<String, Resources>) -> Self {
        let requested: Vec<Resources> = (self.nodes.nodes.iter())
            .map(|node| requested.get(&node.name).copied().unwrap_or_default())
            .collect();
        self.free = self.nodes.free_room(&requested);
        self
    }

    /// The domains of `key`, shared by every constraint over it.
    pub fn key_index(&self, key: &str) -> Arc<KeyIndex> {
        let mut keys = self
            .nodes
            .keys
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(index) = keys.get(key) {
            return index.clone();
        }
        let mut domains: Vec<&String> = self
            .nodes
            .nodes
            .iter()
            .filter_map(|n| n.labels.get(key))
            .collect();
        domains.sort();
        domains.dedup();
        let position: HashMap<&str, u32> = domains
            .iter()
            .enumerate()
            .map(|(i, d)| (d.as_str(), i as u32))
            .collect();
        let node_domain: Vec<Option<u32>> = (self.nodes.nodes.iter())
            .map(|n| n.labels.get(key).map(|v| position[v.as_str()]))
            .collect();
        let index = Arc::new(KeyIndex {
            domains: domains.iter().copied().cloned().collect(),
            on_every_node: node_domain.iter().all(Option::is_some),
            one_node_per_domain: node_domain.iter().flatten().count() == domains.len(),
            node_domain,
        });
        keys.insert(key.to_string(), index.clone());
        index
    }

    /// Nodes sorted by name.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes.nodes
    }

    /// The shared node set this snapshot is on.
    pub fn node_set(&self) -> &Arc<NodeSet> {
        &self.nodes
    }

    pub fn pods(&self) -> &[Arc<Pod>] {
        &self.pods
    }

    pub fn node_index(&self, name: &str) -> Option<usize> {
        self.nodes.node_index(name)
    }

    /// The node a pod is bound to, if that node is known.
    pub fn node_of(&self, pod: &Pod) -> Option<usize> {
        self.nodes.node_of(pod)
    }

    /// [`node_of`](Self::node_of) the pod at `pod` in [`pods`](Self::pods).
    pub fn node_of_pod(&self, pod: usize) -> Option<usize> {
        self.pod_node
            .get(pod)
            .copied()
            .flatten()
            .map(|n| n as usize)
    }

    /// Allocatable minus what the pods holding resources already request on the node.
    pub fn free(&self, node: usize) -> Resources {
        self.free[node]
    }

    /// [`free`](Self::free) of every node, in node order.
    pub fn free_room(&self) -> &[Resources] {
        &self.free
    }

    /// Indexes of the pods of `namespace` whose labels match `selector`.
    pub fn select_pods(&self, namespace: &str, selector: &Selector) -> Vec<usize> {
        let candidates = self
            .posting_list(namespace, selector)
            .or_else(|| self.namespaces.get(namespace).map(|n| n.pods.as_slice()))
            .unwrap_or(&[]);
        candidates
            .iter()
            .copied()
            .filter(|&i| selector.matches(&self.pods[i].labels))
            .collect()
    }

    /// Indexes of the workload's own pods ([`Workload::owns`]): what it may move, annotate and
    /// report, never a pod of another workload its selector happens to match.
    pub fn own_pods(&self, workload: &Workload) -> Vec<usize> {
        let mut pods = self.select_pods(&workload.namespace, &workload.pod_selector);
        pods.retain(|&i| workload.owns(&self.pods[i]));
        pods
    }

    /// The pods carrying one label the selector demands, when it demands an exact value.
    fn posting_list(&self, namespace: &str, selector: &Selector) -> Option<&[usize]> {
        let (key, value) = selector.clone().into_iter().find_map(|e| match e {
            Expression::Equal(k, v) => Some((k, v)),
            Expression::In(k, values) if values.len() == 1 => {
                values.into_iter().next().map(|v| (k, v))
            }
            _ => None,
        })?;
        let found = self
            .namespaces
            .get(namespace)
            .and_then(|n| n.by_label.get(&label_hash(&key, &value)))
            .map(Vec::as_slice);
        Some(found.unwrap_or(&[]))
    }
}
