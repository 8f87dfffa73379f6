//! A snapshot of the cluster with the indexes the core needs to stay linear in its size.

use std::collections::HashMap;

use kube::core::{Expression, Selector, SelectorExt};

use super::model::{Node, Pod, Resources};

/// Nodes and pods as last observed, indexed by node name, namespace and label.
#[derive(Debug, Default)]
pub struct Cluster {
    nodes: Vec<Node>,
    node_index: HashMap<String, usize>,
    pods: Vec<Pod>,
    by_namespace: HashMap<String, Vec<usize>>,
    /// namespace -> label key -> label value -> pods: narrows selector matching to one posting list.
    by_label: HashMap<String, HashMap<String, HashMap<String, Vec<usize>>>>,
    /// Requests of the counted pods bound to each node, in node order.
    requested: Vec<Resources>,
}

impl Cluster {
    pub fn new(mut nodes: Vec<Node>, pods: Vec<Pod>) -> Self {
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        let node_index: HashMap<String, usize> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.clone(), i))
            .collect();
        let mut requested = vec![Resources::default(); nodes.len()];
        let mut by_namespace: HashMap<String, Vec<usize>> = HashMap::new();
        let mut by_label: HashMap<String, HashMap<String, HashMap<String, Vec<usize>>>> =
            HashMap::new();
        for (i, pod) in pods.iter().enumerate() {
            by_namespace.entry(pod.namespace.clone()).or_default().push(i);
            let labels = by_label.entry(pod.namespace.clone()).or_default();
            for (k, v) in &pod.labels {
                labels
                    .entry(k.clone())
                    .or_default()
                    .entry(v.clone())
                    .or_default()
                    .push(i);
            }
            if !pod.terminating && !pod.finished {
                if let Some(n) = pod.node_name.as_ref().and_then(|n| node_index.get(n)) {
                    requested[*n] = requested[*n].plus(&pod.requests);
                }
            }
        }
        Self {
            nodes,
            node_index,
            pods,
            by_namespace,
            by_label,
            requested,
        }
    }

    /// Nodes sorted by name.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub fn pods(&self) -> &[Pod] {
        &self.pods
    }

    pub fn node_index(&self, name: &str) -> Option<usize> {
        self.node_index.get(name).copied()
    }

    /// The node a pod is bound to, if that node is known.
    pub fn node_of(&self, pod: &Pod) -> Option<usize> {
        pod.node_name.as_deref().and_then(|n| self.node_index(n))
    }

    /// Allocatable minus what counted pods already request on the node.
    pub fn free(&self, node: usize) -> Resources {
        self.nodes[node].allocatable.minus(&self.requested[node])
    }

    /// Indexes of the pods of `namespace` whose labels match `selector`.
    pub fn select_pods(&self, namespace: &str, selector: &Selector) -> Vec<usize> {
        let candidates = self
            .posting_list(namespace, selector)
            .or_else(|| self.by_namespace.get(namespace).map(Vec::as_slice))
            .unwrap_or(&[]);
        candidates
            .iter()
            .copied()
            .filter(|&i| selector.matches(&self.pods[i].labels))
            .collect()
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
            .by_label
            .get(namespace)
            .and_then(|l| l.get(&key))
            .and_then(|vals| vals.get(&value))
            .map(Vec::as_slice);
        Some(found.unwrap_or(&[]))
    }
}
