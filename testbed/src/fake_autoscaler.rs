//! Plays a node autoscaler (Karpenter's part) beside the [`FakeKubelet`]: reads Karpenter
//! `NodePool`s (`karpenter.sh/v1`), launches a node for Pending pods that no node fits, serves SIG
//! Autoscaling's `CapacityBuffer`s (`autoscaling.x-k8s.io/v1beta1`) and removes nodes that stayed
//! empty for their pool's `consolidateAfter`. Nodes are launched and removed through the fake
//! kubelet ([`FakeKubelet::add_node`], [`FakeKubelet::remove_node`]), so they become Ready, run
//! pods and go away as the suite's other nodes do. The CRDs are in `../shared/testdata/`
//! ([`crate::harness::TestdataCrd`] installs them); without the NodePool CRD, or without a
//! NodePool, nothing is launched; without the CapacityBuffer CRD, buffers are simply not served.
//!
//! One loop (every 250 ms) over watched Pods, Nodes, PodTemplates, NodePools and CapacityBuffers,
//! like Karpenter's single provisioning loop:
//!
//! 1. **Room.** Every Ready, uncordoned node offers its allocatable CPU, memory and pod count
//!    less the requests of the pods bound to it.
//! 2. **Buffers.** Each buffer (oldest first) resolves its pod shape (`podTemplateRef`, or a
//!    Deployment / StatefulSet / ReplicaSet / Job `scalableRef`) and its chunk count (`replicas`,
//!    `percentage` of the scalable's replicas, `limits`; the least of those set), and its chunks
//!    are placed first-fit on that room, as the virtual pods Karpenter simulates: no pod is
//!    created. A node holding a chunk is reserved (never consolidated). The status gets
//!    `replicas`, `podTemplateRef`, `podTemplateGeneration`, `provisioningStrategy` and the
//!    conditions `ReadyForProvisioning` and `Provisioning` (True once every chunk has room on a
//!    Ready node, False while a node is being launched for them or none can be); a
//!    `buffer.x-k8s.io/static-capacity` buffer also gets `Completed` True then. Buffers of any
//!    other strategy are left alone.
//! 3. **Pending pods.** Pods the scheduler marked `PodScheduled=False` / `Unschedulable` (but
//!    not those preempting their way onto a node, `status.nominatedNodeName`, nor DaemonSet
//!    pods) are placed first-fit on what room is left. Fitting means: the node's labels satisfy the pod's
//!    `nodeSelector` and required node affinity, the pod tolerates the node's NoSchedule /
//!    NoExecute taints, and its requests fit. Topology spread and pod (anti-)affinity are not
//!    simulated: a pod Pending only because of them gets no node.
//! 4. **Launch.** Each chunk or pod that found no room is given a pool and a zone: the pools in
//!    Karpenter's order (highest `weight` first, then by name), the first one with a zone that the
//!    pool's `spec.template.spec.requirements` on `topology.kubernetes.io/zone` allow (`In`,
//!    `NotIn`, `Exists`; `DoesNotExist` allows none, as every node here has a zone), that the
//!    pod's own selector and affinity admit (with the pool's labels), whose taints it tolerates,
//!    and that is not [never filled](AutoscalerConfig::never_fill). Among several such zones,
//!    the one with the fewest Ready nodes (then by name): a zone left without nodes after an
//!    outage comes first. The zones considered are those of the nodes, those the pools and the
//!    pod name, and [`AutoscalerConfig::zones`]. Demand for the same pool and zone is batched:
//!    once the oldest of it has waited [`AutoscalerConfig::provisioning_delay`], ONE node is
//!    launched for all of it, as large as [`AutoscalerConfig::node_capacity`] or as their
//!    requests add up to, whichever is larger, labelled `karpenter.sh/nodepool: <pool>` plus the
//!    pool's template labels (and the first value of each `In` requirement on another key), with
//!    the pool's taints. Static pools (`spec.replicas`) and pools being deleted launch nothing;
//!    pool `limits` are not enforced.
//! 5. **Consolidation** (when on): a node labelled with a known pool, holding no pods but
//!    DaemonSet ones (none here) for the pool's `spec.disruption.consolidateAfter` (a duration
//!    such as `30s`; `Never` never), is a candidate unless the node or one of its pods is
//!    annotated `karpenter.sh/do-not-disrupt: "true"`, a buffer chunk is placed on it, or it was
//!    launched for pods still Pending (for up to 30 s, as Karpenter's nomination). A node that
//!    stayed a candidate for [`AutoscalerConfig::consolidation_validation`] (Karpenter's 15 s
//!    validation) is tainted `karpenter.sh/disrupted:NoSchedule`, checked empty once more, and
//!    deleted. One node a round; disruption budgets are not modelled.
//!
//! A test starts it with [`crate::harness::Ctx::start_autoscaler`] (after laying out its nodes
//! with [`FakeKubelet::ensure_nodes`], which removes every node not in the layout, earlier
//! autoscaled ones included) and it stops when the [`FakeAutoscaler`] is dropped; the nodes it
//! launched stay until then.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    Node, NodeSelectorRequirement, NodeSelectorTerm, Pod, PodSpec, PodTemplate, Taint, Toleration,
};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::ApiResource;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::fake_kubelet::{Capacity, FakeKubelet, NewNode, ZONE_LABEL, is_finished};
use crate::harness::{custom_resource, wait_for, watch_backoff};

/// The label Karpenter puts on every node of a NodePool; the autoscaler manages (and may
/// consolidate) only nodes carrying it.
pub const NODEPOOL_LABEL: &str = "karpenter.sh/nodepool";
/// On a node or pod (value `"true"`): Karpenter does not voluntarily disrupt the node.
pub const DO_NOT_DISRUPT: &str = "karpenter.sh/do-not-disrupt";
/// The NoSchedule taint Karpenter puts on a node it is about to remove.
pub const DISRUPTED_TAINT: &str = "karpenter.sh/disrupted";
/// The default (and CapacityBuffer's own default) provisioning strategy.
pub const ACTIVE_CAPACITY: &str = "buffer.x-k8s.io/active-capacity";
/// The one-time strategy: like active, plus `Completed` True once the room exists.
pub const STATIC_CAPACITY: &str = "buffer.x-k8s.io/static-capacity";

const TICK: Duration = Duration::from_millis(250);
/// How long a node launched for pending pods is kept from consolidation while they are Pending.
const NOMINATION: Duration = Duration::from_secs(30);

/// `NodePool` (karpenter.sh/v1, cluster-scoped).
pub fn nodepool_resource() -> ApiResource {
    custom_resource("karpenter.sh", "v1", "NodePool", "nodepools")
}

/// `CapacityBuffer` (autoscaling.x-k8s.io/v1beta1, namespaced).
pub fn capacitybuffer_resource() -> ApiResource {
    custom_resource(
        "autoscaling.x-k8s.io",
        "v1beta1",
        "CapacityBuffer",
        "capacitybuffers",
    )
}

/// How the fake autoscaler behaves. `AutoscalerConfig::default()` is Karpenter-like with a 5 s
/// launch; the methods change one setting each.
#[derive(Debug, Clone)]
pub struct AutoscalerConfig {
    /// How long demand waits before a node is launched for it (the batching window and the
    /// cloud's launch time in one). 5 s by default.
    pub provisioning_delay: Duration,
    /// Whether empty nodes are removed after their pool's `consolidateAfter`. On by default.
    pub consolidation: bool,
    /// How long a node must stay a consolidation candidate (empty for `consolidateAfter`, not
    /// protected) before it is removed: Karpenter's validation, 15 s there and by default. It is
    /// what keeps a node whose buffer was just deleted for the pods about to land on it.
    pub consolidation_validation: Duration,
    /// Zones the cloud has no capacity in: nothing is ever launched there (to test a
    /// provisioning timeout). Pods and buffers that can only go there stay without room.
    pub never_filled: BTreeSet<String>,
    /// The smallest node launched; a larger one when the batch's requests add up to more.
    /// [`Capacity::default`] by default.
    pub node_capacity: Capacity,
    /// Zones the cloud offers besides those the nodes, pools and pods name (for pools that say
    /// `Exists` or `NotIn`).
    pub zones: Vec<String>,
}

impl Default for AutoscalerConfig {
    fn default() -> Self {
        AutoscalerConfig {
            provisioning_delay: Duration::from_secs(5),
            consolidation: true,
            consolidation_validation: Duration::from_secs(15),
            never_filled: BTreeSet::new(),
            node_capacity: Capacity::default(),
            zones: Vec::new(),
        }
    }
}

impl AutoscalerConfig {
    pub fn provisioning_delay(mut self, delay: Duration) -> Self {
        self.provisioning_delay = delay;
        self
    }

    pub fn consolidation(mut self, on: bool) -> Self {
        self.consolidation = on;
        self
    }

    pub fn consolidation_validation(mut self, validation: Duration) -> Self {
        self.consolidation_validation = validation;
        self
    }

    pub fn never_fill(mut self, zone: &str) -> Self {
        self.never_filled.insert(zone.to_string());
        self
    }

    pub fn node_capacity(mut self, capacity: Capacity) -> Self {
        self.node_capacity = capacity;
        self
    }

    pub fn zones(mut self, zones: &[&str]) -> Self {
        self.zones = zones.iter().map(|z| z.to_string()).collect();
        self
    }
}

/// A node the autoscaler launched or removed.
#[derive(Debug, Clone)]
pub struct NodeRecord {
    pub name: String,
    pub zone: String,
    pub pool: String,
    pub at: Instant,
}

#[derive(Default)]
struct Records {
    created: Vec<NodeRecord>,
    removed: Vec<NodeRecord>,
}

/// A running fake autoscaler; stops (its nodes stay) when dropped or [stopped](FakeAutoscaler::stop).
pub struct FakeAutoscaler {
    config: Arc<Mutex<AutoscalerConfig>>,
    records: Arc<Mutex<Records>>,
    tasks: Vec<JoinHandle<()>>,
}

/// The watched objects the loop reads.
#[derive(Clone)]
struct Stores {
    pods: Store<Pod>,
    nodes: Store<Node>,
    templates: Store<PodTemplate>,
    pools: Store<DynamicObject>,
    buffers: Store<DynamicObject>,
}

/// Names unique within a run (several autoscalers may run one after another).
static NODE_SERIAL: AtomicU32 = AtomicU32::new(0);

impl FakeAutoscaler {
    /// Starts the watches and the loop on the current tokio runtime; returns once the pods, nodes
    /// and PodTemplates are listed (the NodePools and CapacityBuffers come when their CRDs are
    /// installed).
    pub async fn start(client: Client, kubelet: FakeKubelet, config: AutoscalerConfig) -> Self {
        let mut tasks = Vec::new();
        let pods = watch_all::<Pod>(Api::all(client.clone()), (), &mut tasks, true);
        let nodes = watch_all::<Node>(Api::all(client.clone()), (), &mut tasks, true);
        let templates = watch_all::<PodTemplate>(Api::all(client.clone()), (), &mut tasks, true);
        let mut watch_crd = |ar: ApiResource| {
            watch_all::<DynamicObject>(Api::all_with(client.clone(), &ar), ar, &mut tasks, false)
        };
        let pools = watch_crd(nodepool_resource());
        let buffers = watch_crd(capacitybuffer_resource());
        let _ = pods.wait_until_ready().await;
        let _ = nodes.wait_until_ready().await;
        let _ = templates.wait_until_ready().await;
        let stores = Stores {
            pods,
            nodes,
            templates,
            pools,
            buffers,
        };
        let config = Arc::new(Mutex::new(config));
        let records: Arc<Mutex<Records>> = Arc::default();
        let shell = Shell {
            client,
            kubelet,
            stores,
            config: config.clone(),
            records: records.clone(),
        };
        tasks.push(tokio::spawn(shell.run()));
        FakeAutoscaler {
            config,
            records,
            tasks,
        }
    }

    /// Stops the watches and the loop (the nodes stay).
    pub fn stop(&mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
    }

    /// How many nodes it has launched.
    pub fn nodes_created(&self) -> usize {
        self.records.lock().unwrap().created.len()
    }

    /// How many nodes it has removed.
    pub fn nodes_removed(&self) -> usize {
        self.records.lock().unwrap().removed.len()
    }

    /// The nodes it has launched, oldest first.
    pub fn created(&self) -> Vec<NodeRecord> {
        self.records.lock().unwrap().created.clone()
    }

    /// The nodes it has removed, oldest first.
    pub fn removed(&self) -> Vec<NodeRecord> {
        self.records.lock().unwrap().removed.clone()
    }

    /// Makes `zone` never filled (`true`) or fillable again, from the next round on.
    pub fn set_never_filled(&self, zone: &str, never: bool) {
        let mut c = self.config.lock().unwrap();
        if never {
            c.never_filled.insert(zone.to_string());
        } else {
            c.never_filled.remove(zone);
        }
    }

    /// Turns consolidation on or off from the next round on.
    pub fn set_consolidation(&self, on: bool) {
        self.config.lock().unwrap().consolidation = on;
    }

    /// Waits until it has launched a node in `zone` and returns its name.
    pub async fn wait_node_in(&self, zone: &str, timeout: Duration) -> String {
        wait_for(
            &format!("the fake autoscaler to launch a node in {zone}"),
            timeout,
            || {
                let found = self
                    .created()
                    .into_iter()
                    .find(|r| r.zone == zone)
                    .map(|r| r.name);
                async move { found }
            },
        )
        .await
    }
}

impl Drop for FakeAutoscaler {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A reflector over `api`, driven by a task pushed onto `tasks`. Errors are logged when `log`
/// (the CRD kinds' watches fail quietly while their CRD is not installed).
fn watch_all<K>(
    api: Api<K>,
    dyntype: K::DynamicType,
    tasks: &mut Vec<JoinHandle<()>>,
    log: bool,
) -> Store<K>
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Clone + Eq + std::hash::Hash + Send + Sync,
{
    let kind = K::kind(&dyntype).to_string();
    let writer = reflector::store::Writer::new(dyntype);
    let reader = writer.as_reader();
    let stream = watcher(api, watcher::Config::default())
        .backoff(watch_backoff())
        .reflect(writer);
    tasks.push(tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            if let Err(e) = event
                && log
            {
                eprintln!("fake-autoscaler: {kind} watch: {e}");
            }
        }
    }));
    reader
}

/// Requests or room: millicores, bytes, pods.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Res {
    cpu: i64,
    mem: i64,
    pods: i64,
}

impl Res {
    fn fits_in(&self, room: &Res) -> bool {
        self.cpu <= room.cpu && self.mem <= room.mem && self.pods <= room.pods
    }

    fn plus(self, o: Res) -> Res {
        Res {
            cpu: self.cpu + o.cpu,
            mem: self.mem + o.mem,
            pods: self.pods + o.pods,
        }
    }

    fn minus(self, o: Res) -> Res {
        Res {
            cpu: self.cpu - o.cpu,
            mem: self.mem - o.mem,
            pods: self.pods - o.pods,
        }
    }

    fn max(self, o: Res) -> Res {
        Res {
            cpu: self.cpu.max(o.cpu),
            mem: self.mem.max(o.mem),
            pods: self.pods.max(o.pods),
        }
    }
}

/// A Kubernetes quantity (`100m`, `1.5`, `128Mi`, `1G`, `1e3`) as a number of its unit.
fn parse_quantity(s: &str) -> Option<f64> {
    let s = s.trim();
    // Binary suffixes are powers of 1024, decimal ones powers of 1000.
    let binary = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]
        .iter()
        .zip(1..)
        .map(|(suffix, power)| (*suffix, 1024f64.powi(power)));
    let decimal = ["n", "u", "m", "", "k", "M", "G", "T", "P", "E"]
        .iter()
        .zip(-3..)
        .filter(|(suffix, _)| !suffix.is_empty())
        .map(|(suffix, power)| (*suffix, 1000f64.powi(power)));
    let (number, factor) = binary
        .chain(decimal)
        .find_map(|(suffix, f)| s.strip_suffix(suffix).map(|n| (n, f)))
        .unwrap_or((s, 1.0));
    number.parse::<f64>().ok().map(|n| n * factor)
}

/// `cpu`, `memory` and `pods` of a resource list (missing ones are zero).
fn resources(
    list: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
) -> Res {
    let get = |key: &str| {
        list.and_then(|l| l.get(key))
            .and_then(|q| parse_quantity(&q.0))
            .unwrap_or(0.0)
    };
    Res {
        cpu: (get("cpu") * 1000.0).ceil() as i64,
        mem: get("memory").ceil() as i64,
        pods: get("pods").round() as i64,
    }
}

/// What one pod of `spec` asks for: its containers' requests (limits where a request is
/// missing) added up, or its largest init container's if larger, plus the overhead; one pod.
fn pod_requests(spec: &PodSpec) -> Res {
    let container = |c: &k8s_openapi::api::core::v1::Container| {
        let r = c.resources.as_ref();
        let requests = resources(r.and_then(|r| r.requests.as_ref()));
        let limits = resources(r.and_then(|r| r.limits.as_ref()));
        Res {
            cpu: if requests.cpu > 0 {
                requests.cpu
            } else {
                limits.cpu
            },
            mem: if requests.mem > 0 {
                requests.mem
            } else {
                limits.mem
            },
            pods: 0,
        }
    };
    let sum = spec
        .containers
        .iter()
        .map(container)
        .fold(Res::default(), Res::plus);
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .map(container)
        .fold(Res::default(), Res::max);
    let overhead = resources(spec.overhead.as_ref());
    Res {
        pods: 1,
        ..sum.max(init).plus(overhead)
    }
}

/// A node's allocatable room (its capacity where allocatable is missing).
fn allocatable(node: &Node) -> Res {
    let status = node.status.as_ref();
    resources(
        status
            .and_then(|s| s.allocatable.as_ref())
            .or_else(|| status.and_then(|s| s.capacity.as_ref())),
    )
}

/// A Go-style duration as NodePools write it (`30s`, `1h30m`); `None` for `Never` or garbage.
fn parse_duration(s: &str) -> Option<Duration> {
    if s == "Never" || s.is_empty() {
        return None;
    }
    let mut total = 0u64;
    let mut number = String::new();
    for ch in s.chars() {
        if ch.is_ascii_digit() {
            number.push(ch);
            continue;
        }
        let n: u64 = number.parse().ok()?;
        number.clear();
        total += n * match ch {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return None,
        };
    }
    number.is_empty().then(|| Duration::from_secs(total))
}

/// Where a pod may go: its `nodeSelector`, required node affinity and tolerations.
#[derive(Debug, Clone, Default)]
struct Placement {
    node_selector: BTreeMap<String, String>,
    /// `requiredDuringSchedulingIgnoredDuringExecution` terms (ORed); `None` when there are none.
    terms: Option<Vec<NodeSelectorTerm>>,
    tolerations: Vec<Toleration>,
}

impl Placement {
    fn of(spec: &PodSpec) -> Placement {
        Placement {
            node_selector: spec.node_selector.clone().unwrap_or_default(),
            terms: spec
                .affinity
                .as_ref()
                .and_then(|a| a.node_affinity.as_ref())
                .and_then(|n| {
                    n.required_during_scheduling_ignored_during_execution
                        .as_ref()
                })
                .map(|r| r.node_selector_terms.clone()),
            tolerations: spec.tolerations.clone().unwrap_or_default(),
        }
    }

    /// Whether a node named `name` with `labels` and `taints` admits the pod (resources aside).
    fn admits(&self, name: &str, labels: &BTreeMap<String, String>, taints: &[Taint]) -> bool {
        let selected = self
            .node_selector
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v));
        let affine = self
            .terms
            .as_ref()
            .is_none_or(|terms| terms.iter().any(|t| term_matches(t, name, labels)));
        let tolerated = taints
            .iter()
            .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
            .all(|taint| self.tolerations.iter().any(|t| tolerates(t, taint)));
        selected && affine && tolerated
    }

    /// The zones it names (its zone selector, `In` / `NotIn` values on the zone key).
    fn named_zones(&self) -> impl Iterator<Item = String> + '_ {
        let selected = self.node_selector.get(ZONE_LABEL).cloned();
        let in_terms = self.terms.iter().flatten().flat_map(|t| {
            t.match_expressions
                .iter()
                .flatten()
                .filter(|r| r.key == ZONE_LABEL)
                .flat_map(|r| r.values.clone().unwrap_or_default())
        });
        selected.into_iter().chain(in_terms)
    }
}

/// A node selector term: every expression on labels and every field (`metadata.name`) holds; an
/// empty term matches nothing.
fn term_matches(term: &NodeSelectorTerm, name: &str, labels: &BTreeMap<String, String>) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs
        .iter()
        .all(|r| requirement_holds(r, labels.get(&r.key).map(String::as_str)))
        && fields.iter().all(|r| {
            let value = (r.key == "metadata.name").then_some(name);
            requirement_holds(r, value)
        })
}

fn requirement_holds(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    let number = |v: &str| v.parse::<i64>().ok();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" => {
            matches!((value.and_then(number), values.first().and_then(|v| number(v))), (Some(a), Some(b)) if a > b)
        }
        "Lt" => {
            matches!((value.and_then(number), values.first().and_then(|v| number(v))), (Some(a), Some(b)) if a < b)
        }
        _ => false,
    }
}

fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = t.effect.as_deref().filter(|e| !e.is_empty())
        && effect != taint.effect
    {
        return false;
    }
    let exists = t.operator.as_deref() == Some("Exists");
    match t.key.as_deref().filter(|k| !k.is_empty()) {
        None => exists,
        Some(key) if key != taint.key => false,
        Some(_) => {
            exists || t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
    }
}

/// One NodePool as the loop uses it.
#[derive(Debug, Clone)]
struct Pool {
    name: String,
    weight: i64,
    /// The pool's requirements on the zone key (ANDed): operator and values.
    zone_rules: Vec<(String, Vec<String>)>,
    /// Labels its nodes get besides zone and hostname.
    labels: BTreeMap<String, String>,
    taints: Vec<Taint>,
    /// `None`: never consolidated.
    consolidate_after: Option<Duration>,
    /// Whether it may launch nodes (not static, not being deleted).
    launches: bool,
}

impl Pool {
    fn from_object(obj: &DynamicObject) -> Option<Pool> {
        let spec = obj.data.get("spec")?;
        let template = &spec["template"];
        let mut labels: BTreeMap<String, String> =
            serde_json::from_value(template["metadata"]["labels"].clone()).unwrap_or_default();
        let requirements: Vec<NodeSelectorRequirement> =
            serde_json::from_value(template["spec"]["requirements"].clone()).unwrap_or_default();
        let mut zone_rules = Vec::new();
        for r in requirements {
            let values = r.values.unwrap_or_default();
            if r.key == ZONE_LABEL {
                zone_rules.push((r.operator, values));
            } else if r.operator == "In"
                && let Some(first) = values.first()
            {
                labels.entry(r.key).or_insert_with(|| first.clone());
            }
        }
        let name = obj.name_any();
        labels.insert(NODEPOOL_LABEL.to_string(), name.clone());
        let consolidate_after = match spec["disruption"]["consolidateAfter"].as_str() {
            None => Some(Duration::ZERO),
            Some(s) => parse_duration(s),
        };
        Some(Pool {
            weight: spec["weight"].as_i64().unwrap_or(0),
            zone_rules,
            labels,
            taints: serde_json::from_value(template["spec"]["taints"].clone()).unwrap_or_default(),
            consolidate_after,
            launches: spec.get("replicas").is_none_or(Value::is_null)
                && obj.metadata.deletion_timestamp.is_none(),
            name,
        })
    }

    /// Whether its zone requirements allow `zone`, as Karpenter reads them.
    fn allows(&self, zone: &str) -> bool {
        self.zone_rules
            .iter()
            .all(|(op, values)| match op.as_str() {
                "In" => values.iter().any(|v| v == zone),
                "NotIn" => !values.iter().any(|v| v == zone),
                "Exists" => true,
                // Every node here has a zone; Gt/Lt make no sense on zone names.
                _ => false,
            })
    }

    /// The labels of a node it would launch in `zone` named `name`.
    fn node_labels(&self, zone: &str, name: &str) -> BTreeMap<String, String> {
        let mut labels = self.labels.clone();
        labels.insert(ZONE_LABEL.into(), zone.into());
        labels.insert("kubernetes.io/hostname".into(), name.into());
        labels.insert("kubernetes.io/os".into(), "linux".into());
        labels.insert("kubernetes.io/arch".into(), "amd64".into());
        labels
    }
}

/// Karpenter's order: highest weight first, then by name.
fn karpenter_order(mut pools: Vec<Pool>) -> Vec<Pool> {
    pools.sort_by(|a, b| b.weight.cmp(&a.weight).then_with(|| a.name.cmp(&b.name)));
    pools
}

/// A CapacityBuffer's pod shape and chunk count, or why it has none.
#[derive(Debug, Clone)]
enum Resolved {
    Ready {
        spec: Box<PodSpec>,
        chunks: i64,
        template: Option<(String, Option<i64>)>,
    },
    Failed {
        reason: &'static str,
        message: String,
    },
}

/// One CapacityBuffer as the loop uses it.
#[derive(Debug, Clone)]
struct Buffer {
    namespace: String,
    name: String,
    uid: String,
    generation: i64,
    strategy: String,
    status: Value,
    resolved: Resolved,
}

/// How many chunks: the least of `replicas`, `percentage` of the scalable's replicas and what
/// `limits` hold (each when set); `None` when none is set.
fn chunk_count(spec: &Value, scalable_replicas: Option<i64>, chunk: &Res) -> Option<i64> {
    let mut counts = Vec::new();
    if let Some(r) = spec["replicas"].as_i64() {
        counts.push(r);
    }
    if let (Some(p), Some(n)) = (spec["percentage"].as_i64(), scalable_replicas) {
        let c = (p * n + 99) / 100;
        counts.push(if p > 0 { c.max(1) } else { 0 });
    }
    if let Some(limits) = spec["limits"].as_object() {
        let limit = |key: &str, per: i64, scale: f64| {
            let l = limits.get(key).and_then(|v| match v {
                Value::String(s) => parse_quantity(s),
                Value::Number(n) => n.as_f64(),
                _ => None,
            })?;
            (per > 0).then(|| ((l * scale) as i64) / per)
        };
        let by_limits = [
            limit("cpu", chunk.cpu, 1000.0),
            limit("memory", chunk.mem, 1.0),
            limit("pods", 1, 1.0),
        ];
        if let Some(n) = by_limits.into_iter().flatten().min() {
            counts.push(n);
        }
    }
    counts.into_iter().min().map(|n| n.max(0))
}

/// The planner's view of one node.
#[derive(Debug, Clone)]
struct SimNode {
    name: String,
    zone: Option<String>,
    labels: BTreeMap<String, String>,
    taints: Vec<Taint>,
    /// Ready, uncordoned, not being deleted.
    schedulable: bool,
    room: Res,
    /// Pods bound to it that are not finished and not DaemonSet pods.
    pods: usize,
    do_not_disrupt: bool,
    /// A buffer chunk is placed on it.
    reserved: bool,
}

impl SimNode {
    /// Takes `need` for a pod placed by `placement` if it fits; whether it did.
    fn take(&mut self, need: &Res, placement: &Placement) -> bool {
        let fits = self.schedulable
            && need.fits_in(&self.room)
            && placement.admits(&self.name, &self.labels, &self.taints);
        if fits {
            self.room = self.room.minus(*need);
        }
        fits
    }
}

fn annotated_do_not_disrupt(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> bool {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(DO_NOT_DISRUPT))
        .is_some_and(|v| v == "true")
}

fn is_daemonset_pod(pod: &Pod) -> bool {
    pod.owner_references().iter().any(|o| o.kind == "DaemonSet")
}

/// Pending because the scheduler found no node for it, and a node is what it needs (as
/// Karpenter's "provisionable" pods: not preempting its way onto a node, not a DaemonSet's).
fn is_unschedulable(pod: &Pod) -> bool {
    let spec = pod.spec.as_ref();
    let preempting = pod
        .status
        .as_ref()
        .and_then(|s| s.nominated_node_name.as_deref())
        .is_some_and(|n| !n.is_empty());
    spec.is_some_and(|s| s.node_name.is_none())
        && !preempting
        && !is_daemonset_pod(pod)
        && spec.is_none_or(|s| {
            s.scheduler_name
                .as_deref()
                .is_none_or(|n| n == "default-scheduler")
        })
        && pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter().any(|c| {
                    c.type_ == "PodScheduled"
                        && c.status == "False"
                        && c.reason.as_deref() == Some("Unschedulable")
                })
            })
}

fn is_ready_node(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The nodes as the planner sees them, the pods' requests taken off their room.
fn sim_nodes(nodes: &[Arc<Node>], pods: &[Arc<Pod>]) -> Vec<SimNode> {
    let mut sim: Vec<SimNode> = nodes
        .iter()
        .map(|n| {
            let spec = n.spec.as_ref();
            SimNode {
                name: n.name_any(),
                zone: n.labels().get(ZONE_LABEL).cloned(),
                labels: n.labels().clone(),
                taints: spec.and_then(|s| s.taints.clone()).unwrap_or_default(),
                schedulable: is_ready_node(n)
                    && !spec.and_then(|s| s.unschedulable).unwrap_or(false)
                    && n.metadata.deletion_timestamp.is_none(),
                room: allocatable(n),
                pods: 0,
                do_not_disrupt: annotated_do_not_disrupt(&n.metadata),
                reserved: false,
            }
        })
        .collect();
    sim.sort_by(|a, b| a.name.cmp(&b.name));
    let index: HashMap<String, usize> = sim
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.clone(), i))
        .collect();
    for pod in pods {
        let Some(spec) = pod.spec.as_ref() else {
            continue;
        };
        let Some(&i) = spec.node_name.as_ref().and_then(|n| index.get(n)) else {
            continue;
        };
        if is_finished(pod) {
            continue;
        }
        let node = &mut sim[i];
        node.room = node.room.minus(pod_requests(spec));
        if !is_daemonset_pod(pod) {
            node.pods += 1;
        }
        node.do_not_disrupt |= annotated_do_not_disrupt(&pod.metadata);
    }
    sim
}

/// Something that needs room: a pending pod or a buffer chunk.
#[derive(Debug, Clone)]
struct Demand {
    key: String,
    need: Res,
    placement: Placement,
    /// The pending pod's uid, for nomination.
    pod: Option<String>,
    /// The buffer's uid.
    buffer: Option<String>,
}

/// A node to launch.
#[derive(Debug, Clone)]
struct Launch {
    pool: String,
    zone: String,
    labels: BTreeMap<String, String>,
    taints: Vec<Taint>,
    capacity: Capacity,
    pods: Vec<String>,
}

/// What the loop remembers between rounds.
#[derive(Default)]
struct Memory {
    /// When each unmet demand was first seen.
    first_seen: HashMap<String, Instant>,
    /// Since when each node has been empty.
    empty_since: HashMap<String, Instant>,
    /// Nodes launched for pods: until when, and for which pods.
    nominated: HashMap<String, (Instant, Vec<String>)>,
    /// Since when each node has been a consolidation candidate.
    candidate_since: HashMap<String, Instant>,
}

/// What one round decided.
#[derive(Default)]
struct Plan {
    /// Buffer (namespace, name) and the status it should have, when that differs.
    statuses: Vec<(String, String, Value)>,
    launches: Vec<Launch>,
    /// A node to remove.
    removal: Option<String>,
}

/// What one round reads.
struct World<'a> {
    nodes: &'a [Arc<Node>],
    pods: &'a [Arc<Pod>],
    pools: &'a [Pool],
    buffers: &'a [Buffer],
    config: &'a AutoscalerConfig,
}

/// Why demand could not be given a pool and zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NoTarget {
    /// A pool would take it, but only in never-filled zones.
    InsufficientCapacity,
    /// No pool takes it anywhere.
    NoCompatibleNodePool,
}

fn plan(world: &World, memory: &mut Memory, now: Instant) -> Plan {
    let mut sim = sim_nodes(world.nodes, world.pods);
    // Buffers first: their chunks take room as the virtual pods they are.
    let (mut unmet, buffer_unmet) = place_buffers(&mut sim, world.buffers);
    unmet.extend(place_pending(&mut sim, world.pods));
    let (launches, blocked) = launches(world, &sim, &unmet, memory, now);
    let statuses = (world.buffers.iter())
        .filter_map(|b| {
            let unmet = buffer_unmet.get(&b.uid).copied().unwrap_or(0);
            let status = buffer_status(b, unmet, blocked.get(&b.uid).copied())?;
            Some((b.namespace.clone(), b.name.clone(), status))
        })
        .collect();
    Plan {
        statuses,
        launches,
        removal: removal(world, &sim, memory, now),
    }
}

/// Oldest first, then by name.
fn by_age<K: Resource>(a: &K, b: &K) -> std::cmp::Ordering {
    let created = |k: &K| k.meta().creation_timestamp.as_ref().map(|t| t.0);
    created(a)
        .cmp(&created(b))
        .then_with(|| a.meta().name.cmp(&b.meta().name))
}

/// Places every buffer's chunks first-fit (marking the nodes they land on reserved); the chunks
/// without room, and how many each buffer has.
fn place_buffers(sim: &mut [SimNode], buffers: &[Buffer]) -> (Vec<Demand>, HashMap<String, usize>) {
    let mut unmet = Vec::new();
    let mut per_buffer: HashMap<String, usize> = HashMap::new();
    for b in buffers {
        let Resolved::Ready { spec, chunks, .. } = &b.resolved else {
            continue;
        };
        let need = pod_requests(spec);
        let placement = Placement::of(spec);
        for i in 0..*chunks {
            if let Some(node) = sim
                .iter_mut()
                .find_map(|n| n.take(&need, &placement).then_some(n))
            {
                node.reserved = true;
            } else {
                *per_buffer.entry(b.uid.clone()).or_default() += 1;
                unmet.push(Demand {
                    key: format!("buffer/{}/{i}", b.uid),
                    need,
                    placement: placement.clone(),
                    pod: None,
                    buffer: Some(b.uid.clone()),
                });
            }
        }
    }
    (unmet, per_buffer)
}

/// Places the unschedulable pods (oldest first) first-fit; those without room.
fn place_pending(sim: &mut [SimNode], pods: &[Arc<Pod>]) -> Vec<Demand> {
    let mut pending: Vec<&Arc<Pod>> = pods.iter().filter(|p| is_unschedulable(p)).collect();
    pending.sort_by(|a, b| by_age(a.as_ref(), b.as_ref()));
    let mut unmet = Vec::new();
    for pod in pending {
        let spec = pod.spec.as_ref().expect("an unschedulable pod has a spec");
        let need = pod_requests(spec);
        let placement = Placement::of(spec);
        if !sim.iter_mut().any(|n| n.take(&need, &placement)) {
            let uid = pod.uid().unwrap_or_default();
            unmet.push(Demand {
                key: format!("pod/{uid}"),
                need,
                placement,
                pod: Some(uid),
                buffer: None,
            });
        }
    }
    unmet
}

/// Gives each unmet demand a pool and a zone, and a node to each pool and zone whose oldest
/// demand has waited the provisioning delay; also why a buffer's chunks got no pool or zone.
fn launches(
    world: &World,
    sim: &[SimNode],
    unmet: &[Demand],
    memory: &mut Memory,
    now: Instant,
) -> (Vec<Launch>, HashMap<String, NoTarget>) {
    let mut ready_per_zone: BTreeMap<String, usize> = BTreeMap::new();
    for n in sim.iter().filter(|n| n.schedulable) {
        if let Some(z) = &n.zone {
            *ready_per_zone.entry(z.clone()).or_default() += 1;
        }
    }
    let universe: BTreeSet<String> = (world.config.zones.iter().cloned())
        .chain(sim.iter().filter_map(|n| n.zone.clone()))
        .chain(
            (world.pools.iter())
                .flat_map(|p| p.zone_rules.iter().flat_map(|(_, v)| v.iter().cloned())),
        )
        .collect();
    let keys: HashSet<&str> = unmet.iter().map(|d| d.key.as_str()).collect();
    memory.first_seen.retain(|k, _| keys.contains(k.as_str()));
    let mut groups: BTreeMap<(String, String), Vec<&Demand>> = BTreeMap::new();
    let mut blocked: HashMap<String, NoTarget> = HashMap::new();
    for d in unmet {
        memory.first_seen.entry(d.key.clone()).or_insert(now);
        match target(d, world.pools, &universe, &ready_per_zone, world.config) {
            Ok(key) => groups.entry(key).or_default().push(d),
            Err(why) => {
                if let Some(b) = &d.buffer {
                    blocked.insert(b.clone(), why);
                }
            }
        }
    }
    let mut launches = Vec::new();
    for ((pool_name, zone), demands) in groups {
        let oldest = (demands.iter())
            .filter_map(|d| memory.first_seen.get(&d.key))
            .min()
            .copied()
            .unwrap_or(now);
        if now.duration_since(oldest) < world.config.provisioning_delay {
            continue;
        }
        let pool = (world.pools.iter())
            .find(|p| p.name == pool_name)
            .expect("a group's pool is one of the pools");
        let total = demands
            .iter()
            .fold(Res::default(), |acc, d| acc.plus(d.need));
        launches.push(Launch {
            labels: pool.labels.clone(),
            taints: pool.taints.clone(),
            capacity: node_capacity(&world.config.node_capacity, total),
            pods: demands.iter().filter_map(|d| d.pod.clone()).collect(),
            pool: pool_name,
            zone,
        });
    }
    (launches, blocked)
}

/// The node to consolidate this round, if any: the first that has been a candidate (empty for
/// its pool's `consolidateAfter`, not protected) for the validation period.
fn removal(world: &World, sim: &[SimNode], memory: &mut Memory, now: Instant) -> Option<String> {
    let names: HashSet<&str> = sim.iter().map(|n| n.name.as_str()).collect();
    memory.empty_since.retain(|n, _| names.contains(n.as_str()));
    memory.nominated.retain(|n, _| names.contains(n.as_str()));
    for node in sim {
        if node.pods == 0 {
            memory.empty_since.entry(node.name.clone()).or_insert(now);
        } else {
            memory.empty_since.remove(&node.name);
        }
    }
    let unbound: HashSet<String> = (world.pods.iter())
        .filter(|p| p.spec.as_ref().is_some_and(|s| s.node_name.is_none()))
        .filter_map(|p| p.uid())
        .collect();
    let candidates: Vec<&SimNode> = sim
        .iter()
        .filter(|_| world.config.consolidation)
        .filter(|n| !n.do_not_disrupt && !n.reserved && n.pods == 0)
        .filter(|n| {
            memory.nominated.get(&n.name).is_none_or(|(until, pods)| {
                now >= *until || !pods.iter().any(|p| unbound.contains(p))
            })
        })
        .filter(|n| {
            let after = (n.labels.get(NODEPOOL_LABEL))
                .and_then(|p| world.pools.iter().find(|pool| &pool.name == p))
                .and_then(|pool| pool.consolidate_after);
            let since = memory.empty_since.get(&n.name).copied().unwrap_or(now);
            after.is_some_and(|after| now.duration_since(since) >= after)
        })
        .collect();
    let candidate_names: HashSet<&str> = candidates.iter().map(|n| n.name.as_str()).collect();
    memory
        .candidate_since
        .retain(|n, _| candidate_names.contains(n.as_str()));
    candidates
        .iter()
        .find(|n| {
            let since = *memory.candidate_since.entry(n.name.clone()).or_insert(now);
            now.duration_since(since) >= world.config.consolidation_validation
        })
        .map(|n| n.name.clone())
}

/// The pool and zone for `d`: the first pool (in order) that allows a zone the demand admits and
/// that is not never-filled; among its zones, the one with the fewest Ready nodes.
fn target(
    d: &Demand,
    pools: &[Pool],
    universe: &BTreeSet<String>,
    ready_per_zone: &BTreeMap<String, usize>,
    config: &AutoscalerConfig,
) -> Result<(String, String), NoTarget> {
    let zones: BTreeSet<String> = universe
        .iter()
        .cloned()
        .chain(d.placement.named_zones())
        .collect();
    let mut why = NoTarget::NoCompatibleNodePool;
    for pool in pools.iter().filter(|p| p.launches) {
        let admitted: Vec<&String> = zones
            .iter()
            .filter(|z| pool.allows(z))
            .filter(|z| {
                d.placement
                    .admits("", &pool.node_labels(z, ""), &pool.taints)
            })
            .collect();
        if !admitted.is_empty() {
            why = NoTarget::InsufficientCapacity;
        }
        let best = admitted
            .into_iter()
            .filter(|z| !config.never_filled.contains(*z))
            .min_by_key(|z| (ready_per_zone.get(*z).copied().unwrap_or(0), (*z).clone()));
        if let Some(zone) = best {
            return Ok((pool.name.clone(), zone.clone()));
        }
    }
    Err(why)
}

/// `base`, grown where `total` needs more (whole CPUs, whole GiB).
fn node_capacity(base: &Capacity, total: Res) -> Capacity {
    let base_cpu = parse_quantity(&base.cpu).unwrap_or(0.0);
    let base_mem = parse_quantity(&base.memory).unwrap_or(0.0);
    let gib = 1073741824.0;
    let cpu = if (total.cpu as f64) / 1000.0 > base_cpu {
        ((total.cpu + 999) / 1000).to_string()
    } else {
        base.cpu.clone()
    };
    let memory = if total.mem as f64 > base_mem {
        format!("{}Gi", (total.mem as f64 / gib).ceil() as i64)
    } else {
        base.memory.clone()
    };
    Capacity {
        cpu,
        memory,
        pods: base.pods.max(total.pods as u32),
    }
}

/// The status `b` should have, or `None` when it has it already (the conditions' times aside).
fn buffer_status(b: &Buffer, unmet: usize, blocked: Option<NoTarget>) -> Option<Value> {
    let mut conditions: Vec<(&str, bool, &str, String)> = Vec::new();
    let mut status = json!({"provisioningStrategy": b.strategy});
    match &b.resolved {
        Resolved::Failed { reason, message } => {
            conditions.push(("ReadyForProvisioning", false, reason, message.clone()));
        }
        Resolved::Ready {
            chunks, template, ..
        } => {
            status["replicas"] = json!(chunks);
            if let Some((name, generation)) = template {
                status["podTemplateRef"] = json!({"name": name});
                if let Some(g) = generation {
                    status["podTemplateGeneration"] = json!(g);
                }
            }
            conditions.push((
                "ReadyForProvisioning",
                true,
                "Resolved",
                format!("{chunks} chunk(s) of the pod template"),
            ));
            let provisioned = unmet == 0;
            let (reason, message) = match (provisioned, blocked) {
                (true, _) => (
                    "CapacityAvailable",
                    format!("room for {chunks} chunk(s) on Ready nodes"),
                ),
                (false, Some(NoTarget::InsufficientCapacity)) => (
                    "InsufficientCapacity",
                    format!("{unmet} chunk(s) without room; their zones have no capacity"),
                ),
                (false, Some(NoTarget::NoCompatibleNodePool)) => (
                    "NoCompatibleNodePool",
                    format!(
                        "{unmet} chunk(s) without room; no NodePool can launch a node for them"
                    ),
                ),
                (false, None) => (
                    "NodesLaunching",
                    format!("{unmet} chunk(s) without room; launching"),
                ),
            };
            conditions.push(("Provisioning", provisioned, reason, message));
            if b.strategy == STATIC_CAPACITY && provisioned {
                conditions.push((
                    "Completed",
                    true,
                    "CapacityAvailable",
                    "the room exists".into(),
                ));
            }
        }
    }
    let current = b.status["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let now = Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let conditions: Vec<Value> = conditions
        .into_iter()
        .map(|(type_, ok, reason, message)| {
            let status = if ok { "True" } else { "False" };
            let same = current
                .iter()
                .find(|c| c["type"] == type_)
                .filter(|c| c["status"] == status);
            json!({
                "type": type_, "status": status, "reason": reason, "message": message,
                "observedGeneration": b.generation,
                "lastTransitionTime": same.map_or(json!(now), |c| c["lastTransitionTime"].clone()),
            })
        })
        .collect();
    status["conditions"] = json!(conditions);
    let unchanged = [
        "provisioningStrategy",
        "replicas",
        "podTemplateRef",
        "podTemplateGeneration",
        "conditions",
    ]
    .iter()
    .all(|k| b.status[*k] == status[*k]);
    (!unchanged).then_some(status)
}

/// The loop and what it writes with.
struct Shell {
    client: Client,
    kubelet: FakeKubelet,
    stores: Stores,
    config: Arc<Mutex<AutoscalerConfig>>,
    records: Arc<Mutex<Records>>,
}

impl Shell {
    async fn run(self) {
        let mut memory = Memory::default();
        loop {
            tokio::time::sleep(TICK).await;
            let config = self.config.lock().unwrap().clone();
            let nodes = self.stores.nodes.state();
            let pods = self.stores.pods.state();
            let pools = karpenter_order(
                (self.stores.pools.state().iter())
                    .filter_map(|o| Pool::from_object(o))
                    .collect(),
            );
            let buffers = self.buffers().await;
            let world = World {
                nodes: &nodes,
                pods: &pods,
                pools: &pools,
                buffers: &buffers,
                config: &config,
            };
            let plan = plan(&world, &mut memory, Instant::now());
            for (ns, name, status) in plan.statuses {
                let api: Api<DynamicObject> =
                    Api::namespaced_with(self.client.clone(), &ns, &capacitybuffer_resource());
                let patch = Patch::Merge(json!({"status": status}));
                match api
                    .patch_status(&name, &PatchParams::default(), &patch)
                    .await
                {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => {
                        eprintln!("fake-autoscaler: status of CapacityBuffer {ns}/{name}: {e}")
                    }
                }
            }
            for launch in plan.launches {
                let name = self.launch(launch.clone()).await;
                memory
                    .nominated
                    .insert(name, (Instant::now() + NOMINATION, launch.pods));
            }
            if let Some(node) = plan.removal
                && self.consolidate(&node).await
            {
                memory.empty_since.remove(&node);
            }
        }
    }

    /// Every served buffer (oldest first) with its shape resolved.
    async fn buffers(&self) -> Vec<Buffer> {
        let mut objects = self.stores.buffers.state();
        objects.sort_by(|a, b| by_age(a.as_ref(), b.as_ref()));
        let mut out = Vec::new();
        for obj in objects {
            if obj.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let spec = obj.data["spec"].clone();
            let strategy = spec["provisioningStrategy"]
                .as_str()
                .unwrap_or(ACTIVE_CAPACITY)
                .to_string();
            if strategy != ACTIVE_CAPACITY && strategy != STATIC_CAPACITY {
                continue;
            }
            let namespace = obj.namespace().unwrap_or_default();
            let resolved = self.resolve(&namespace, &spec).await;
            out.push(Buffer {
                name: obj.name_any(),
                uid: obj.uid().unwrap_or_default(),
                generation: obj.metadata.generation.unwrap_or(0),
                status: obj.data["status"].clone(),
                namespace,
                strategy,
                resolved,
            });
        }
        out
    }

    /// The buffer's pod shape and chunk count.
    async fn resolve(&self, namespace: &str, spec: &Value) -> Resolved {
        let failed = |reason, message: String| Resolved::Failed { reason, message };
        if let Some(name) = spec["podTemplateRef"]["name"].as_str() {
            let found = self
                .stores
                .templates
                .state()
                .into_iter()
                .find(|t| t.namespace().as_deref() == Some(namespace) && t.name_any() == name);
            let Some(template) = found else {
                return failed(
                    "PodTemplateNotFound",
                    format!("PodTemplate {name} not found"),
                );
            };
            let Some(pod_spec) = template.template.as_ref().and_then(|t| t.spec.clone()) else {
                return failed(
                    "InvalidPodTemplate",
                    format!("PodTemplate {name} has no pod spec"),
                );
            };
            return match chunk_count(spec, None, &pod_requests(&pod_spec)) {
                Some(chunks) => Resolved::Ready {
                    spec: Box::new(pod_spec),
                    chunks,
                    template: Some((name.to_string(), template.metadata.generation)),
                },
                None => failed("InvalidSpec", "neither replicas nor limits is set".into()),
            };
        }
        let scalable = &spec["scalableRef"];
        let (Some(kind), Some(name)) = (scalable["kind"].as_str(), scalable["name"].as_str())
        else {
            return failed(
                "InvalidSpec",
                "neither podTemplateRef nor scalableRef is set".into(),
            );
        };
        let group = scalable["apiGroup"].as_str().unwrap_or("");
        let (version, plural) = match (group, kind) {
            ("apps", "Deployment") => ("v1", "deployments"),
            ("apps", "StatefulSet") => ("v1", "statefulsets"),
            ("apps", "ReplicaSet") => ("v1", "replicasets"),
            ("batch", "Job") => ("v1", "jobs"),
            _ => {
                return failed(
                    "UnsupportedScalableRef",
                    format!("the fake autoscaler reads no {kind}.{group}"),
                );
            }
        };
        let ar = custom_resource(group, version, kind, plural);
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), namespace, &ar);
        let Ok(Some(obj)) = api.get_opt(name).await else {
            return failed("ScalableRefNotFound", format!("{kind} {name} not found"));
        };
        let Ok(pod_spec) =
            serde_json::from_value::<PodSpec>(obj.data["spec"]["template"]["spec"].clone())
        else {
            return failed(
                "InvalidScalableRef",
                format!("{kind} {name} has no pod template"),
            );
        };
        let replicas = if kind == "Job" {
            obj.data["spec"]["parallelism"].as_i64().unwrap_or(1)
        } else {
            obj.data["spec"]["replicas"].as_i64().unwrap_or(1)
        };
        match chunk_count(spec, Some(replicas), &pod_requests(&pod_spec)) {
            Some(chunks) => Resolved::Ready {
                spec: Box::new(pod_spec),
                chunks,
                template: None,
            },
            None => failed(
                "InvalidSpec",
                "none of replicas, percentage and limits is set".into(),
            ),
        }
    }

    /// Launches one node through the fake kubelet and waits until the node watch has it; its name.
    async fn launch(&self, launch: Launch) -> String {
        let n = NODE_SERIAL.fetch_add(1, Ordering::Relaxed) + 1;
        let name = format!("{}-{}-{n}", launch.pool, launch.zone);
        let mut labels = launch.labels;
        labels.insert("karpenter.sh/registered".into(), "true".into());
        labels.insert("karpenter.sh/initialized".into(), "true".into());
        self.kubelet
            .add_node(NewNode {
                name: name.clone(),
                zone: launch.zone.clone(),
                capacity: launch.capacity,
                labels,
                taints: launch.taints,
            })
            .await;
        let nodes = self.stores.nodes.clone();
        wait_for(
            &format!("the node watch to see {name} Ready"),
            Duration::from_secs(30),
            || {
                let seen = nodes
                    .state()
                    .iter()
                    .any(|n| n.name_any() == name && is_ready_node(n));
                async move { seen.then_some(()) }
            },
        )
        .await;
        self.records.lock().unwrap().created.push(NodeRecord {
            name: name.clone(),
            zone: launch.zone,
            pool: launch.pool,
            at: Instant::now(),
        });
        name
    }

    /// Taints `node` disrupted, checks once more that no pod landed on it, and removes it;
    /// whether it did (when a pod landed meanwhile, the taint is taken off again).
    async fn consolidate(&self, node: &str) -> bool {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let Ok(Some(current)) = nodes.get_opt(node).await else {
            return false;
        };
        let mut taints = current
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default();
        if !taints.iter().any(|t| t.key == DISRUPTED_TAINT) {
            taints.push(Taint {
                key: DISRUPTED_TAINT.into(),
                effect: "NoSchedule".into(),
                ..Taint::default()
            });
        }
        // The resourceVersion makes it a compare-and-swap of the taint list.
        let patch = json!({
            "metadata": {"resourceVersion": current.resource_version()},
            "spec": {"taints": taints},
        });
        if let Err(e) = nodes
            .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            eprintln!("fake-autoscaler: taint {node} disrupted: {e}");
            return false;
        }
        let pods: Api<Pod> = Api::all(self.client.clone());
        let lp = ListParams::default().fields(&format!("spec.nodeName={node}"));
        let landed = match pods.list(&lp).await {
            Ok(list) => list
                .items
                .iter()
                .any(|p| !is_finished(p) && !is_daemonset_pod(p)),
            Err(e) => {
                eprintln!("fake-autoscaler: list pods on {node}: {e}");
                true
            }
        };
        if landed {
            let kept: Vec<Taint> = taints
                .into_iter()
                .filter(|t| t.key != DISRUPTED_TAINT)
                .collect();
            let patch = json!({"spec": {"taints": kept}});
            if let Err(e) = nodes
                .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                eprintln!("fake-autoscaler: untaint {node}: {e}");
            }
            return false;
        }
        let zone = current
            .labels()
            .get(ZONE_LABEL)
            .cloned()
            .unwrap_or_default();
        let pool = current
            .labels()
            .get(NODEPOOL_LABEL)
            .cloned()
            .unwrap_or_default();
        self.kubelet.remove_node(node).await;
        self.records.lock().unwrap().removed.push(NodeRecord {
            name: node.to_string(),
            zone,
            pool,
            at: Instant::now(),
        });
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, zone: &str, pool: Option<&str>, cpu: &str) -> Arc<Node> {
        let mut labels = json!({ZONE_LABEL: zone});
        if let Some(p) = pool {
            labels[NODEPOOL_LABEL] = json!(p);
        }
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "labels": labels},
                "status": {
                    "allocatable": {"cpu": cpu, "memory": "16Gi", "pods": "110"},
                    "conditions": [{"type": "Ready", "status": "True"}],
                },
            }))
            .unwrap(),
        )
    }

    fn pod(name: &str, zone: Option<&str>, cpu: &str, node: Option<&str>) -> Arc<Pod> {
        let mut spec = json!({"containers": [{"name": "app",
            "resources": {"requests": {"cpu": cpu, "memory": "256Mi"}}}]});
        if let Some(z) = zone {
            spec["nodeSelector"] = json!({ZONE_LABEL: z});
        }
        let mut status = json!({"phase": "Pending"});
        match node {
            Some(n) => {
                spec["nodeName"] = json!(n);
                status = json!({"phase": "Running"});
            }
            None => {
                status["conditions"] = json!([{"type": "PodScheduled", "status": "False",
                                               "reason": "Unschedulable"}]);
            }
        }
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}")},
                "spec": spec, "status": status,
            }))
            .unwrap(),
        )
    }

    fn pool(name: &str, requirements: Value, disruption: Value) -> Pool {
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "karpenter.sh/v1", "kind": "NodePool",
            "metadata": {"name": name},
            "spec": {
                "template": {"metadata": {"labels": {"team": "e2e"}},
                             "spec": {"requirements": requirements}},
                "disruption": disruption,
            },
        }))
        .unwrap();
        Pool::from_object(&obj).unwrap()
    }

    fn zones_in(values: &[&str]) -> Value {
        json!([{"key": ZONE_LABEL, "operator": "In", "values": values}])
    }

    fn buffer(name: &str, zone: &str, chunks: i64) -> Buffer {
        let spec: PodSpec = serde_json::from_value(json!({
            "nodeSelector": {ZONE_LABEL: zone},
            "containers": [{"name": "app", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}],
        }))
        .unwrap();
        Buffer {
            namespace: "ns".into(),
            name: name.into(),
            uid: format!("uid-{name}"),
            generation: 1,
            strategy: ACTIVE_CAPACITY.into(),
            status: Value::Null,
            resolved: Resolved::Ready {
                spec: Box::new(spec),
                chunks,
                template: Some((name.into(), Some(1))),
            },
        }
    }

    struct Case {
        nodes: Vec<Arc<Node>>,
        pods: Vec<Arc<Pod>>,
        pools: Vec<Pool>,
        buffers: Vec<Buffer>,
        config: AutoscalerConfig,
    }

    impl Case {
        fn plan(&self, memory: &mut Memory, now: Instant) -> Plan {
            let world = World {
                nodes: &self.nodes,
                pods: &self.pods,
                pools: &self.pools,
                buffers: &self.buffers,
                config: &self.config,
            };
            plan(&world, memory, now)
        }
    }

    fn condition(status: &Value, type_: &str) -> (String, String) {
        let c = status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == type_)
            .unwrap();
        (
            c["status"].as_str().unwrap().into(),
            c["reason"].as_str().unwrap().into(),
        )
    }

    #[test]
    fn quantities_and_durations() {
        assert_eq!(parse_quantity("100m"), Some(0.1));
        assert_eq!(parse_quantity("2"), Some(2.0));
        assert_eq!(parse_quantity("128Mi"), Some(134217728.0));
        assert_eq!(parse_quantity("1G"), Some(1e9));
        assert_eq!(parse_quantity("1e3"), Some(1000.0));
        assert_eq!(parse_quantity("x"), None);
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("0s"), Some(Duration::ZERO));
        assert_eq!(parse_duration("Never"), None);
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("5d"), None);
    }

    #[test]
    fn pools_read_zones_as_karpenter_does() {
        let p = pool("a", zones_in(&["z1", "z2"]), json!({}));
        assert!(p.allows("z1") && !p.allows("z3"));
        assert_eq!(p.consolidate_after, Some(Duration::ZERO), "0s by default");
        assert_eq!(p.labels.get(NODEPOOL_LABEL).map(String::as_str), Some("a"));
        assert_eq!(p.labels.get("team").map(String::as_str), Some("e2e"));
        let not_in = pool(
            "b",
            json!([{"key": ZONE_LABEL, "operator": "NotIn", "values": ["z1"]},
                   {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand", "spot"]}]),
            json!({"consolidateAfter": "Never"}),
        );
        assert!(!not_in.allows("z1") && not_in.allows("z9"));
        assert_eq!(
            not_in
                .labels
                .get("karpenter.sh/capacity-type")
                .map(String::as_str),
            Some("on-demand")
        );
        assert_eq!(not_in.consolidate_after, None);
        let exists = pool(
            "c",
            json!([{"key": ZONE_LABEL, "operator": "Exists"}]),
            json!({}),
        );
        assert!(exists.allows("anything"));
        let none = pool(
            "d",
            json!([{"key": ZONE_LABEL, "operator": "DoesNotExist"}]),
            json!({}),
        );
        assert!(!none.allows("z1"));
        let unconstrained = pool("e", json!([]), json!({}));
        assert!(unconstrained.allows("z1"));
        let mut heavy = pool("z-heavy", json!([]), json!({}));
        heavy.weight = 10;
        let order: Vec<String> = karpenter_order(vec![unconstrained, exists, heavy])
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(order, ["z-heavy", "c", "e"], "weight first, then name");
    }

    #[test]
    fn chunks_are_the_least_of_what_is_set() {
        let chunk = Res {
            cpu: 1000,
            mem: 1 << 30,
            pods: 1,
        };
        assert_eq!(chunk_count(&json!({"replicas": 3}), None, &chunk), Some(3));
        assert_eq!(
            chunk_count(&json!({"percentage": 20}), Some(10), &chunk),
            Some(2)
        );
        assert_eq!(
            chunk_count(&json!({"percentage": 1}), Some(10), &chunk),
            Some(1)
        );
        assert_eq!(
            chunk_count(
                &json!({"replicas": 5, "limits": {"cpu": "2500m"}}),
                None,
                &chunk
            ),
            Some(2)
        );
        assert_eq!(
            chunk_count(&json!({"limits": {"memory": "3Gi"}}), None, &chunk),
            Some(3)
        );
        assert_eq!(chunk_count(&json!({}), None, &chunk), None);
    }

    #[test]
    fn pending_pods_in_an_empty_zone_get_one_node_after_the_delay() {
        let case = Case {
            nodes: vec![node("a-0", "z1", None, "4")],
            pods: vec![
                pod("p1", Some("z2"), "2", None),
                pod("p2", Some("z2"), "2", None),
                pod("p3", Some("z2"), "2", None),
            ],
            pools: vec![pool("default", zones_in(&["z1", "z2"]), json!({}))],
            buffers: vec![],
            config: AutoscalerConfig::default(),
        };
        let mut memory = Memory::default();
        let t0 = Instant::now();
        assert!(
            case.plan(&mut memory, t0).launches.is_empty(),
            "not before the delay"
        );
        let plan = case.plan(&mut memory, t0 + Duration::from_secs(5));
        assert_eq!(plan.launches.len(), 1, "{:?}", plan.launches);
        let launch = &plan.launches[0];
        assert_eq!(
            (launch.pool.as_str(), launch.zone.as_str()),
            ("default", "z2")
        );
        assert_eq!(launch.capacity.cpu, "6", "large enough for all three");
        assert_eq!(launch.pods.len(), 3);
    }

    #[test]
    fn pods_that_fit_an_existing_node_get_none() {
        let case = Case {
            nodes: vec![node("a-0", "z1", None, "4")],
            pods: vec![
                pod("running", Some("z1"), "1", Some("a-0")),
                pod("p1", Some("z1"), "2", None),
            ],
            pools: vec![pool("default", zones_in(&["z1", "z2"]), json!({}))],
            buffers: vec![],
            config: AutoscalerConfig::default().provisioning_delay(Duration::ZERO),
        };
        assert!(
            case.plan(&mut Memory::default(), Instant::now())
                .launches
                .is_empty()
        );
    }

    #[test]
    fn an_unpinned_pod_goes_to_the_zone_with_the_fewest_nodes_of_the_first_pool() {
        let case = Case {
            nodes: vec![node("a-0", "z1", None, "1")],
            pods: vec![pod("p1", None, "2", None)],
            pools: karpenter_order(vec![
                pool("b-second", zones_in(&["z3"]), json!({})),
                pool("a-first", zones_in(&["z1", "z2"]), json!({})),
            ]),
            buffers: vec![],
            config: AutoscalerConfig::default().provisioning_delay(Duration::ZERO),
        };
        let plan = case.plan(&mut Memory::default(), Instant::now());
        assert_eq!(plan.launches.len(), 1);
        assert_eq!(
            (
                plan.launches[0].pool.as_str(),
                plan.launches[0].zone.as_str()
            ),
            ("a-first", "z2")
        );
    }

    #[test]
    fn buffers_reserve_room_and_say_when_it_exists() {
        let mut case = Case {
            nodes: vec![node("a-0", "z1", None, "4")],
            pods: vec![],
            pools: vec![pool("default", zones_in(&["z1", "z2", "z3"]), json!({}))],
            buffers: vec![buffer("in-z2", "z2", 2), buffer("in-z3", "z3", 1)],
            config: AutoscalerConfig::default()
                .provisioning_delay(Duration::ZERO)
                .consolidation_validation(Duration::ZERO)
                .never_fill("z3"),
        };
        let plan = case.plan(&mut Memory::default(), Instant::now());
        assert_eq!(plan.launches.len(), 1, "{:?}", plan.launches);
        assert_eq!(plan.launches[0].zone, "z2");
        let status = |plan: &Plan, name: &str| {
            plan.statuses
                .iter()
                .find(|(_, n, _)| n == name)
                .map(|(_, _, s)| s.clone())
                .unwrap()
        };
        let z2 = status(&plan, "in-z2");
        assert_eq!(
            condition(&z2, "Provisioning"),
            ("False".into(), "NodesLaunching".into())
        );
        assert_eq!(z2["replicas"], json!(2));
        assert_eq!(z2["podTemplateRef"]["name"], json!("in-z2"));
        let z3 = status(&plan, "in-z3");
        assert_eq!(
            condition(&z3, "Provisioning"),
            ("False".into(), "InsufficientCapacity".into())
        );

        // With the node up, the chunks fit and the node is reserved (never consolidated).
        case.nodes
            .push(node("default-z2-1", "z2", Some("default"), "4"));
        let mut memory = Memory::default();
        let plan = case.plan(&mut memory, Instant::now());
        assert!(plan.launches.is_empty());
        assert_eq!(
            condition(&status(&plan, "in-z2"), "Provisioning"),
            ("True".into(), "CapacityAvailable".into())
        );
        let later = case.plan(&mut memory, Instant::now() + Duration::from_secs(60));
        assert_eq!(later.removal, None, "reserved by the buffer");
        case.buffers.remove(0);
        let after = case.plan(&mut memory, Instant::now() + Duration::from_secs(60));
        assert_eq!(after.removal.as_deref(), Some("default-z2-1"));
    }

    #[test]
    fn empty_managed_nodes_go_after_consolidate_after_unless_kept() {
        let mut case = Case {
            nodes: vec![
                node("static", "z1", None, "4"),
                node("managed", "z2", Some("default"), "4"),
            ],
            pods: vec![],
            pools: vec![pool(
                "default",
                zones_in(&["z1", "z2"]),
                json!({"consolidateAfter": "30s"}),
            )],
            buffers: vec![],
            config: AutoscalerConfig::default().consolidation_validation(Duration::ZERO),
        };
        let mut memory = Memory::default();
        let t0 = Instant::now();
        assert_eq!(case.plan(&mut memory, t0).removal, None);
        assert_eq!(
            case.plan(&mut memory, t0 + Duration::from_secs(29)).removal,
            None
        );
        assert_eq!(
            case.plan(&mut memory, t0 + Duration::from_secs(30))
                .removal
                .as_deref(),
            Some("managed"),
            "the unmanaged node is never removed"
        );

        // A pod on it restarts the clock.
        case.pods.push(pod("p", Some("z2"), "1", Some("managed")));
        assert_eq!(
            case.plan(&mut memory, t0 + Duration::from_secs(31)).removal,
            None
        );
        case.pods.clear();
        assert_eq!(
            case.plan(&mut memory, t0 + Duration::from_secs(40)).removal,
            None
        );

        // Annotated do-not-disrupt: kept.
        let mut kept = (*case.nodes[1]).clone();
        kept.metadata.annotations = Some([(DO_NOT_DISRUPT.to_string(), "true".to_string())].into());
        case.nodes[1] = Arc::new(kept);
        assert_eq!(
            case.plan(&mut memory, t0 + Duration::from_secs(90)).removal,
            None
        );

        // Consolidation off: kept.
        case.nodes[1] = node("managed", "z2", Some("default"), "4");
        case.config.consolidation = false;
        assert_eq!(
            case.plan(&mut memory, t0 + Duration::from_secs(90)).removal,
            None
        );
        case.config.consolidation = true;
        assert_eq!(
            case.plan(&mut memory, t0 + Duration::from_secs(90))
                .removal
                .as_deref(),
            Some("managed")
        );
    }

    #[test]
    fn a_candidate_is_removed_only_after_staying_one_for_the_validation() {
        let mut case = Case {
            nodes: vec![node("managed", "z2", Some("default"), "4")],
            pods: vec![],
            pools: vec![pool(
                "default",
                zones_in(&["z2"]),
                json!({"consolidateAfter": "0s"}),
            )],
            buffers: vec![],
            config: AutoscalerConfig::default(),
        };
        let mut memory = Memory::default();
        let t0 = Instant::now();
        assert_eq!(case.plan(&mut memory, t0).removal, None);
        assert_eq!(
            case.plan(&mut memory, t0 + Duration::from_secs(14)).removal,
            None
        );
        // A pod lands (the one the deleted buffer made room for): no longer a candidate.
        case.pods.push(pod("p", Some("z2"), "1", Some("managed")));
        assert_eq!(
            case.plan(&mut memory, t0 + Duration::from_secs(16)).removal,
            None
        );
        case.pods.clear();
        assert_eq!(
            case.plan(&mut memory, t0 + Duration::from_secs(17)).removal,
            None
        );
        assert_eq!(
            case.plan(&mut memory, t0 + Duration::from_secs(32))
                .removal
                .as_deref(),
            Some("managed"),
            "15 s after it became a candidate again"
        );
    }
}
