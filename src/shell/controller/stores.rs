//! Reflector-backed caches of everything the reconciler reads, and the triggers that requeue the
//! policies a change concerns. One initial LIST per kind, then watches: no periodic full LIST.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::utils::ResetTimerBackoff;
use kube::runtime::watcher::{self, Event, ExponentialBackoff};
use kube::runtime::{WatchStreamExt, reflector::store::Writer};
use kube::{Client, Resource, ResourceExt};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::api::{HAPolicy, WorkloadKind};
use crate::core::snapshot::{self, LeanPod};
use crate::core::topology::{Cluster, NodeSet};
use crate::core::workload::{
    KindDescriptor, Unreadable, WorkloadObject, kinds, referenced_templates,
};

use super::by_namespace::{IndexedStore, NamespaceIndex};
use super::pod_index::PodIndex;
use crate::shell::liveness::{TaskGuard, WatchTasks};

/// How every watch of the operator retries after an error: from half a second, doubling, at most
/// 5 s apart, reset after 30 s without one. kube's default (client-go's: up to 30 s, reset after
/// 2 min) is built for the thousands of watches of a big cluster; this operator holds a handful,
/// and after an API server outage the default left its caches up to half a minute stale (a
/// rebalance that resumed ~60 s after the server came back resumes in ~10 s with this).
pub fn watch_backoff() -> ResetTimerBackoff<ExponentialBackoff> {
    ResetTimerBackoff::new(
        backon::ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(500))
            .with_max_delay(Duration::from_secs(5))
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
            .into(),
        Duration::from_secs(30),
    )
}

/// How long after a watch of pods or workloads failed or listed again the pod cache alone is not
/// trusted to say a workload settled (both it and the workload's status must then agree).
/// Long enough for every watch to have re-listed after an outage (they retry at most 5 s apart).
pub const CACHE_QUIET: Duration = Duration::from_secs(10);

/// When a watch of pods or workloads last failed or listed again (an outage, a compaction): until
/// [`CACHE_QUIET`] after, either cache may be behind the other. The first list of each watch is
/// no gap: every cache starts from a list taken at the start.
#[derive(Clone, Debug, Default)]
pub struct WatchHealth(Arc<Mutex<Option<tokio::time::Instant>>>);

impl WatchHealth {
    fn disrupted(&self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(tokio::time::Instant::now());
    }

    /// No watch failed or listed again for [`CACHE_QUIET`].
    pub fn current(&self) -> bool {
        (*self.0.lock().unwrap_or_else(|p| p.into_inner()))
            .is_none_or(|at| at.elapsed() >= CACHE_QUIET)
    }

    /// What the watch of `what` reports into this health.
    pub fn observer(&self, what: &'static str) -> WatchObserver {
        WatchObserver {
            health: self.clone(),
            what,
            listed: false,
        }
    }
}

/// One watch's events for [`WatchHealth`]: an error is a gap, and so is a list after its first.
#[derive(Debug)]
pub struct WatchObserver {
    health: WatchHealth,
    what: &'static str,
    listed: bool,
}

impl WatchObserver {
    pub fn observe<K>(&mut self, event: &Result<Event<K>, watcher::Error>) {
        let gap = match event {
            Err(_) => Some("failed"),
            Ok(Event::Init) if self.listed => Some("lists again"),
            Ok(Event::InitDone) => {
                self.listed = true;
                None
            }
            Ok(_) => None,
        };
        if let Some(gap) = gap {
            info!(
                watch = self.what,
                gap,
                "moves are judged by the pod cache and the workloads' status together for a while"
            );
            self.health.disrupted();
        }
    }
}

/// What changed, in terms of the policies to look at again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// Something in this namespace changed.
    Namespace(String),
    /// Something every policy depends on changed (a node).
    All,
}

/// The watched workloads of one kind; empty until the kind's CRD (if it needs one) is seen.
type KindStore = Arc<OnceLock<IndexedStore<DynamicObject>>>;

/// The nodes, and the [`NodeSet`] built from them, rebuilt only after a node changed.
#[derive(Clone)]
pub struct Nodes {
    pub store: Store<Node>,
    changed: Arc<AtomicBool>,
    built: Arc<Mutex<Arc<NodeSet>>>,
}

impl Nodes {
    fn new(store: Store<Node>) -> Self {
        Self {
            store,
            changed: Arc::new(AtomicBool::new(true)),
            built: Arc::default(),
        }
    }

    /// The nodes in the core's terms, shared by every reconcile until a node changes.
    pub fn node_set(&self) -> Arc<NodeSet> {
        let mut built = self.built.lock().unwrap_or_else(|p| p.into_inner());
        if self.changed.swap(false, Ordering::AcqRel) {
            *built = Arc::new(NodeSet::new(
                self.store
                    .state()
                    .iter()
                    .map(|n| snapshot::node_from(n))
                    .collect(),
            ));
        }
        built.clone()
    }

    fn mark_changed(&self) {
        self.changed.store(true, Ordering::Release);
    }
}

/// A cluster-scoped API behind a CRD that may be installed later (Karpenter's NodePools,
/// SIG Autoscaling's CapacityBuffers): whether its CRD is there, and (when asked) its objects,
/// watched from the moment it is.
#[derive(Clone, Default)]
pub struct OptionalApi {
    served: Arc<AtomicBool>,
    objects: Arc<OnceLock<Store<DynamicObject>>>,
}

impl OptionalApi {
    /// Whether the API server serves it (its CRD was seen).
    pub fn served(&self) -> bool {
        self.served.load(Ordering::Acquire)
    }

    /// Its objects (`None`: not served, or not watched).
    pub fn objects(&self) -> Option<Vec<Arc<DynamicObject>>> {
        self.objects.get().map(Store::state)
    }

    /// An API served with these objects (tests; the report).
    pub fn fixed(objects: Vec<DynamicObject>, resource: ApiResource) -> Self {
        let api = Self::default();
        api.served.store(true, Ordering::Release);
        let mut writer = Writer::new(resource);
        let reader = writer.as_reader();
        for o in objects {
            writer.apply_watcher_event(&Event::Apply(o));
        }
        let _ = api.objects.set(reader);
        api
    }
}

/// Karpenter's NodePool (karpenter.sh/v1, cluster-scoped).
pub fn nodepool_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &kube::core::GroupVersionKind::gvk("karpenter.sh", "v1", "NodePool"),
        "nodepools",
    )
}

/// Read-only views of the caches.
#[derive(Clone)]
pub struct Stores {
    workloads: Arc<BTreeMap<WorkloadKind, KindStore>>,
    pub pods: Arc<PodIndex>,
    pub nodes: Nodes,
    pub pdbs: IndexedStore<PodDisruptionBudget>,
    health: WatchHealth,
    /// Karpenter's NodePools, where served.
    pub nodepools: OptionalApi,
    /// Whether CapacityBuffers (autoscaling.x-k8s.io) are served.
    pub capacity_buffers: OptionalApi,
}

impl Stores {
    /// Stores holding fixed objects, as if every watch had listed them (tests; the report).
    pub fn fixed(
        nodes: Vec<Node>,
        pods: Vec<LeanPod>,
        workloads: Vec<DynamicObject>,
        pdbs: Vec<PodDisruptionBudget>,
    ) -> Self {
        let mut by_kind: BTreeMap<WorkloadKind, Vec<DynamicObject>> = BTreeMap::new();
        for w in workloads {
            let kind = w
                .types
                .as_ref()
                .and_then(|t| WorkloadKind::of(&t.api_version, &t.kind));
            if let Some(kind) = kind {
                by_kind.entry(kind).or_default().push(w);
            }
        }
        let workloads = kinds()
            .map(|d| {
                let slot = KindStore::default();
                if d.crd.is_none() || by_kind.contains_key(&d.kind) {
                    let objects = by_kind.remove(&d.kind).unwrap_or_default();
                    let _ = slot.set(indexed_store_of(d.api_resource(), objects));
                }
                (d.kind, slot)
            })
            .collect();
        Self {
            workloads: Arc::new(workloads),
            pods: Arc::new(PodIndex::of(pods)),
            nodes: Nodes::new(store_of(nodes)),
            pdbs: indexed_store_of((), pdbs),
            health: WatchHealth::default(),
            nodepools: OptionalApi::default(),
            capacity_buffers: OptionalApi::default(),
        }
    }

    /// These stores, with NodePools served and holding `pools` (tests).
    pub fn with_nodepools(mut self, pools: Vec<DynamicObject>) -> Self {
        self.nodepools = OptionalApi::fixed(pools, nodepool_resource());
        self
    }

    /// The pod and workload caches have had no gap for [`CACHE_QUIET`]: the pods' own Ready may
    /// say a workload settled without waiting for its status.
    pub fn pods_current(&self) -> bool {
        self.health.current()
    }

    /// The workloads of the given kinds in a namespace, each converted or with the reason it
    /// cannot be.
    pub fn workloads(
        &self,
        namespace: &str,
        kinds: &[WorkloadKind],
    ) -> Vec<Result<WorkloadObject, Box<Unreadable>>> {
        let mut out = Vec::new();
        // A Rollout's workloadRef names a Deployment of its namespace: its template is read there.
        let deployment = |name: &str| {
            let store = self.workloads.get(&WorkloadKind::Deployment)?.get()?;
            let found = (store.in_namespace(namespace).into_iter())
                .find(|d| d.metadata.name.as_deref() == Some(name))?;
            WorkloadObject::read(WorkloadKind::Deployment, &found).ok()
        };
        for kind in kinds {
            let Some(store) = self.workloads.get(kind).and_then(|s| s.get()) else {
                continue;
            };
            out.extend(store.in_namespace(namespace).iter().map(|o| {
                let read = WorkloadObject::read(*kind, o);
                read.and_then(|w| w.with_referenced_template(deployment))
                    .map_err(|error| {
                        Box::new(Unreadable {
                            kind: *kind,
                            metadata: o.metadata.clone(),
                            error,
                        })
                    })
            }));
        }
        // A Rollout's template Deployment is governed through the Rollout only.
        let templates = referenced_templates(out.iter().flatten());
        out.retain(|w| (w.as_ref()).map_or(true, |w| !w.is_referenced_template(&templates)));
        out
    }

    /// A snapshot for reconciling one namespace: its pods on the shared nodes, with what every
    /// namespace's pods request on each node.
    pub fn snapshot(&self, namespace: &str) -> Cluster {
        let nodes = self.nodes.node_set();
        let free = self.pods.free_on(&nodes);
        Cluster::with_free_room(nodes, self.pods.pods_in(namespace), free)
    }

    /// The namespace's PodDisruptionBudgets (read once per reconcile, asked per workload with
    /// [`crate::core::budgets::budget_exhausted`]).
    pub fn budgets(&self, namespace: &str) -> Vec<Arc<PodDisruptionBudget>> {
        self.pdbs.in_namespace(namespace)
    }

    /// Waits until every cache holds its first list (kinds behind a missing CRD excepted).
    pub async fn wait_until_ready(&self) -> bool {
        let workloads = futures::future::join_all(
            self.workloads
                .values()
                .filter_map(|s| s.get())
                .map(|s| s.store.wait_until_ready()),
        );
        let (workloads, nodes, pdbs, ()) = futures::join!(
            workloads,
            self.nodes.store.wait_until_ready(),
            self.pdbs.store.wait_until_ready(),
            self.pods.wait_until_ready(),
        );
        workloads.iter().all(Result::is_ok) && nodes.is_ok() && pdbs.is_ok()
    }
}

/// A store and its namespace index holding `objects`, as if a watch had listed them.
fn indexed_store_of<K>(dyntype: K::DynamicType, objects: Vec<K>) -> IndexedStore<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    let (store, mut writer) = IndexedStore::new(dyntype);
    for o in objects {
        let event = Event::Apply(o);
        writer.apply_watcher_event(&event);
        store.index().apply(&event);
    }
    store
}

/// A store holding `objects`, as if a watch had listed them (tests; the fixed stores).
pub fn store_of<K>(objects: Vec<K>) -> Store<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (reader, mut writer) = reflector::store();
    for o in objects {
        writer.apply_watcher_event(&Event::Apply(o));
    }
    reader
}

/// Drops what the lean pod still carries but the core never reads: the metadata the API server
/// manages, every annotation but the eviction opt-outs, and every condition but Ready and (while
/// the pod is unbound) the scheduler's PodScheduled False, whose message says why.
pub fn prune_pod(pod: &mut LeanPod) {
    // skewguard's own entry says whether it owns the deletion-cost annotation.
    if let Some(fields) = pod.metadata.managed_fields.as_mut() {
        fields.retain(|m| m.manager.as_deref() == Some(crate::api::FIELD_MANAGER));
    }
    if pod
        .metadata
        .managed_fields
        .as_ref()
        .is_some_and(|f| f.is_empty())
    {
        pod.metadata.managed_fields = None;
    }
    if let Some(annotations) = pod.metadata.annotations.as_mut() {
        annotations.retain(|k, _| {
            k == crate::core::topology::deletion_cost::DELETION_COST_ANNOTATION
                || crate::core::topology::OPT_OUT_ANNOTATIONS
                    .iter()
                    .any(|(o, _)| o == k)
        });
    }
    if pod
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.is_empty())
    {
        pod.metadata.annotations = None;
    }
    // Only the controller reference says whose the pod is (`core::pod_owner`), and only its kind,
    // version and name.
    pod.metadata.owner_references = (pod.metadata.owner_references.take())
        .and_then(|refs| crate::core::pod_owner::controller_of(&refs).cloned())
        .map(|r| {
            vec![OwnerReference {
                api_version: r.api_version,
                kind: r.kind,
                name: r.name,
                controller: Some(true),
                ..Default::default()
            }]
        });
    pod.spec.settle_requests();
    if let Some(conditions) = pod.status.conditions.as_mut() {
        let unbound = pod.spec.node_name.is_none();
        conditions.retain(|c| {
            c.type_ == "Ready" || (unbound && c.type_ == "PodScheduled" && c.status == "False")
        });
        for c in conditions.iter_mut() {
            c.last_probe_time = None;
        }
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

/// Starts every watch, each registered in `tasks` (what `/healthz` answers for); returns the
/// stores and the stream of triggers.
pub fn start(
    client: &Client,
    namespace: Option<&str>,
    tasks: &WatchTasks,
) -> (Stores, mpsc::UnboundedReceiver<Trigger>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let wc = watcher::Config::default();
    let health = WatchHealth::default();
    let pods = Arc::new(PodIndex::default());
    tokio::spawn(watch_pods(
        api(client, namespace),
        pods.clone(),
        tx.clone(),
        health.clone(),
        tasks.register("pods"),
    ));
    let pdbs = spawn_watch(
        api(client, namespace),
        wc.clone(),
        drop_managed_fields,
        tx.clone(),
        tasks.register("PodDisruptionBudgets"),
    );
    let (node_store, node_writer) = reflector::store();
    let nodes = Nodes::new(node_store);
    let node_stream = watcher(Api::all(client.clone()), wc.clone())
        .backoff(watch_backoff())
        .modify(prune_node);
    tokio::spawn(forward(
        node_stream,
        node_writer,
        None,
        tx.clone(),
        Some(nodes.clone()),
        None,
        tasks.register("nodes"),
    ));
    let sinks = Sinks {
        tx: tx.clone(),
        health: health.clone(),
        tasks: tasks.clone(),
    };
    let mut workloads = BTreeMap::new();
    for kind in kinds() {
        let slot = KindStore::default();
        match kind.crd {
            None => start_kind(client, namespace, kind, &slot, &sinks),
            Some(crd) => {
                tokio::spawn(watch_crd(
                    client.clone(),
                    namespace.map(String::from),
                    crd,
                    kind,
                    slot.clone(),
                    sinks.clone(),
                ));
            }
        }
        workloads.insert(kind.kind, slot);
    }
    (
        Stores {
            workloads: Arc::new(workloads),
            pods,
            nodes,
            pdbs,
            health,
            nodepools: watch_optional_api(
                client,
                "nodepools.karpenter.sh",
                Some(nodepool_resource()),
                &tx,
                tasks,
            ),
            capacity_buffers: watch_optional_api(
                client,
                "capacitybuffers.autoscaling.x-k8s.io",
                None,
                &tx,
                tasks,
            ),
        },
        rx,
    )
}

/// Where a workload watch reports: its triggers, the caches' gaps, and its liveness.
#[derive(Clone)]
struct Sinks {
    tx: mpsc::UnboundedSender<Trigger>,
    health: WatchHealth,
    tasks: WatchTasks,
}

/// Starts the reflector of one workload kind into `slot`.
fn start_kind(
    client: &Client,
    namespace: Option<&str>,
    kind: &'static KindDescriptor,
    slot: &KindStore,
    sinks: &Sinks,
) {
    let Sinks { tx, health, tasks } = sinks;
    let resource = kind.api_resource();
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    let (store, writer) = IndexedStore::new(resource);
    let stream = watcher::watcher(api, watcher::Config::default())
        .backoff(watch_backoff())
        .modify(drop_managed_fields);
    let index = Some(store.index().clone());
    tokio::spawn(forward(
        stream,
        writer,
        index,
        tx.clone(),
        None,
        Some(health.clone()),
        tasks.register(kind.plural),
    ));
    let _ = slot.set(store);
}

/// Feeds the pod index from the pod watch (pruned to what the core reads) and turns changes into
/// triggers for their namespace.
async fn watch_pods(
    api: Api<LeanPod>,
    index: Arc<PodIndex>,
    tx: mpsc::UnboundedSender<Trigger>,
    health: WatchHealth,
    task: TaskGuard,
) {
    let stream = watcher(api, watcher::Config::default())
        .backoff(watch_backoff())
        .modify(prune_pod);
    let mut stream = std::pin::pin!(stream);
    let mut observer = health.observer("pods");
    while let Some(event) = stream.next().await {
        task.busy();
        observer.observe(&event);
        let trigger = match &event {
            Ok(Event::Apply(p) | Event::Delete(p)) => {
                p.metadata.namespace.clone().map(Trigger::Namespace)
            }
            Ok(Event::InitDone) => Some(Trigger::All),
            Ok(Event::Init | Event::InitApply(_)) => None,
            Err(e) => {
                warn!(error = %e, "pod watch failed; retrying with backoff");
                None
            }
        };
        if let Ok(event) = event {
            index.handle(event);
        }
        if let Some(t) = trigger
            && tx.send(t).is_err()
        {
            return task.finish();
        }
        task.idle();
    }
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

/// Runs a namespaced reflector and its namespace index in the background and turns their
/// events into triggers.
fn spawn_watch<K>(
    api: Api<K>,
    wc: watcher::Config,
    prune: fn(&mut K),
    tx: mpsc::UnboundedSender<Trigger>,
    task: TaskGuard,
) -> IndexedStore<K>
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
    <K as Resource>::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    let (store, writer) = IndexedStore::new(Default::default());
    let stream = watcher(api, wc).backoff(watch_backoff()).modify(prune);
    let index = Some(store.index().clone());
    tokio::spawn(forward(stream, writer, index, tx, None, None, task));
    store
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

/// Feeds a reflector (and the namespace index beside it) from a watch, and turns changes into
/// triggers: a namespaced object's change concerns its namespace, a node's every policy.
async fn forward<K, S>(
    stream: S,
    writer: Writer<K>,
    index: Option<NamespaceIndex>,
    tx: mpsc::UnboundedSender<Trigger>,
    nodes: Option<Nodes>,
    health: Option<WatchHealth>,
    task: TaskGuard,
) where
    K: Resource + Clone + 'static,
    <K as Resource>::DynamicType: Eq + std::hash::Hash + Clone,
    S: Stream<Item = Result<Event<K>, watcher::Error>> + Send,
{
    let mut stream = std::pin::pin!(stream.reflect(writer));
    let mut observer = health.as_ref().map(|h| h.observer("workloads"));
    while let Some(event) = stream.next().await {
        task.busy();
        if let Some(observer) = &mut observer {
            observer.observe(&event);
        }
        if let (Some(index), Ok(event)) = (&index, &event) {
            index.apply(event);
        }
        if let (Some(nodes), Ok(Event::Apply(_) | Event::Delete(_) | Event::InitDone)) =
            (&nodes, &event)
        {
            nodes.mark_changed();
        }
        let trigger = match event {
            Ok(Event::Apply(o) | Event::Delete(o)) if nodes.is_none() => {
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
            return task.finish();
        }
        task.idle();
    }
}

/// Returns once the CRD named `crd` exists (watched by name, retried with backoff).
async fn crd_installed(client: &Client, crd: &str) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let wc = watcher::Config::default().fields(&format!("metadata.name={crd}"));
    let mut stream = std::pin::pin!(
        watcher::watcher(crds, wc)
            .backoff(watch_backoff())
            .applied_objects()
    );
    while let Some(seen) = stream.next().await {
        match seen {
            Ok(seen) if seen.name_any() == crd => return,
            Ok(_) => {}
            Err(e) => warn!(crd, error = %e, "watching the CRD failed; retrying"),
        }
    }
}

/// Watches for a kind's CRD; once it exists, starts the kind's reflector.
async fn watch_crd(
    client: Client,
    namespace: Option<String>,
    crd: &'static str,
    kind: &'static KindDescriptor,
    slot: KindStore,
    sinks: Sinks,
) {
    let waiting = sinks.tasks.register(format!("{crd} CRD"));
    crd_installed(&client, crd).await;
    info!(crd, "CRD found: governing {}s too", kind.name());
    start_kind(&client, namespace.as_deref(), kind, &slot, &sinks);
    waiting.finish();
}

/// Watches for an optional API's CRD; once it exists, marks it served and (with a resource)
/// watches its objects, every change a trigger for every policy.
fn watch_optional_api(
    client: &Client,
    crd: &'static str,
    resource: Option<ApiResource>,
    tx: &mpsc::UnboundedSender<Trigger>,
    tasks: &WatchTasks,
) -> OptionalApi {
    let api = OptionalApi::default();
    let (client, found, tx, tasks) = (client.clone(), api.clone(), tx.clone(), tasks.clone());
    tokio::spawn(async move {
        let waiting = tasks.register(format!("{crd} CRD"));
        crd_installed(&client, crd).await;
        info!(crd, "CRD found");
        found.served.store(true, Ordering::Release);
        if let Some(resource) = &resource {
            let writer = Writer::new(resource.clone());
            let store = writer.as_reader();
            let objects = Api::<DynamicObject>::all_with(client.clone(), resource);
            let stream = watcher::watcher(objects, watcher::Config::default())
                .backoff(watch_backoff())
                .modify(drop_managed_fields);
            let task = tasks.register(crd);
            tokio::spawn(forward(stream, writer, None, tx.clone(), None, None, task));
            let _ = found.objects.set(store);
        }
        let _ = tx.send(Trigger::All);
        waiting.finish();
    });
    api
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

    #[tokio::test(start_paused = true)]
    async fn the_first_list_is_no_gap_a_relist_or_an_error_is() {
        let health = WatchHealth::default();
        let mut pods = health.observer("pods");
        let event = |e: Event<LeanPod>| -> Result<Event<LeanPod>, watcher::Error> { Ok(e) };
        pods.observe(&event(Event::Init));
        pods.observe(&event(Event::InitDone));
        assert!(health.current(), "the start is no gap");
        pods.observe(&event(Event::Init));
        assert!(!health.current(), "a list after the first is");
        tokio::time::advance(CACHE_QUIET).await;
        assert!(health.current(), "current again after the quiet time");
        let mut workloads = health.observer("workloads");
        workloads.observe::<LeanPod>(&Err(watcher::Error::NoResourceVersion));
        assert!(!health.current(), "an error of any watch is a gap");
    }

    #[test]
    fn pruning_keeps_everything_the_core_reads() {
        let mut pod: LeanPod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-1", "namespace": "shop",
                         "labels": {"app": "web", "pod-template-hash": "h1"},
                         "ownerReferences": [
                             {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-h1",
                              "uid": "rs-uid", "controller": true, "blockOwnerDeletion": true},
                             {"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "c"}],
                         "annotations": {"a": "b", "karpenter.sh/do-not-disrupt": "true",
                                         "controller.kubernetes.io/pod-deletion-cost": "-2000"},
                         "managedFields": [
                             {"manager": "kubectl", "operation": "Apply"},
                             {"manager": "skewguard", "operation": "Apply", "fieldsType": "FieldsV1",
                              "fieldsV1": {"f:metadata": {"f:annotations": {
                                  "f:controller.kubernetes.io/pod-deletion-cost": {}}}}}]},
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
        assert_eq!(
            pod.metadata.managed_fields.as_ref().map(Vec::len),
            Some(1),
            "only skewguard's own entry is kept"
        );
        assert_eq!(
            pod.metadata.annotations.as_ref().map(|a| a.len()),
            Some(2),
            "only the opt-out and the deletion cost are kept"
        );
        assert!(before.opted_out);
        assert_eq!(before.deletion_cost, Some(-2000));
        assert!(before.deletion_cost_ours);
        assert_eq!(pod.status.conditions.as_ref().map(Vec::len), Some(1));
        assert_eq!(
            before.requests,
            crate::core::topology::Resources::new(100, 64 << 20, 1)
        );
        assert!(before.ready && before.has_volume_claims);
        assert_eq!(
            before.owner,
            Some(crate::core::topology::PodOwner {
                kind: WorkloadKind::Deployment,
                name: "web".into()
            })
        );
        assert_eq!(
            pod.metadata.owner_references.as_ref().map(Vec::len),
            Some(1),
            "only the controller reference is kept"
        );

        // An unbound pod keeps what the scheduler said of it, and the form of its constraints.
        let mut pending: LeanPod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-2", "namespace": "shop"},
            "spec": {"topologySpreadConstraints": [
                {"topologyKey": "topology.kubernetes.io/zone", "maxSkew": 1,
                 "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "web"}}}]},
            "status": {"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                 "lastProbeTime": null, "lastTransitionTime": "2026-01-01T00:00:00Z",
                 "message": "0/2 nodes are available: 2 node(s) didn't match pod topology spread constraints."}]}
        }))
        .unwrap();
        let before = snapshot::pod_from(&pending);
        prune_pod(&mut pending);
        assert_eq!(snapshot::pod_from(&pending), before);
        assert!(before.unschedulable.is_some_and(|u| u.by_spread));
        assert_eq!(before.hard_spread_keys, ["topology.kubernetes.io/zone"]);
    }
}
