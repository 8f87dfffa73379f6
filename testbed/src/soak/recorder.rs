//! Fills a [`History`] from the test's own watches (through the suite's client, not the fault
//! proxy): pods, ReplicaSets, Deployments, StatefulSets, Rollouts, PodDisruptionBudgets, the
//! leader Lease and the policies' status entries of one namespace, each state stamped when seen.
//! A watch that re-lists after an outage (an API server restart) records what vanished meanwhile
//! as gone, at the re-list.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Debug;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DynamicObject};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;

use super::history::{
    History, LeaseRecord, OwnerRecord, PdbRecord, PodRecord, StatusRecord, Workload, WorkloadRecord,
};
use crate::fake_kubelet::{FakeKubelet, is_ready, node_of};
use crate::harness::{hapolicy_resource, rollout_resource, wait_for, watch_backoff};

/// The annotations (and values) by which a pod opts out of eviction.
pub const OPT_OUTS: [(&str, &str); 3] = [
    ("skewguard.dev/do-not-evict", "true"),
    ("karpenter.sh/do-not-disrupt", "true"),
    ("cluster-autoscaler.kubernetes.io/safe-to-evict", "false"),
];

/// The watches; they stop when it is dropped.
pub struct Recorder {
    history: Arc<Mutex<History>>,
    synced: Arc<AtomicUsize>,
    tasks: Vec<JoinHandle<()>>,
}

impl Recorder {
    /// Starts every watch on namespace `ns` (the Lease named `lease`) and returns once each has
    /// listed. `kubelet` says which zone a node is in.
    pub async fn start(client: Client, ns: &str, lease: &str, kubelet: FakeKubelet) -> Recorder {
        let history: Arc<Mutex<History>> = Arc::default();
        let synced = Arc::new(AtomicUsize::new(0));
        let h = (history.clone(), synced.clone());
        let mut tasks = vec![
            watch(
                Api::<Pod>::namespaced(client.clone(), ns),
                h.clone(),
                move |h, at, p, gone| {
                    h.pods.push(pod_record(at, p, gone, &kubelet));
                },
            ),
            watch(
                Api::<ReplicaSet>::namespaced(client.clone(), ns),
                h.clone(),
                |h, at, rs, _| {
                    h.owners.push(OwnerRecord {
                        at,
                        replicaset: rs.name_any(),
                        owner: controller(rs.meta()),
                    });
                },
            ),
            watch(
                Api::<PodDisruptionBudget>::namespaced(client.clone(), ns),
                h.clone(),
                |h, at, p, _| {
                    let spec = p.spec.clone().unwrap_or_default();
                    let status = p.status.clone().unwrap_or_default();
                    h.pdbs.push(PdbRecord {
                        at,
                        name: p.name_any(),
                        match_labels: spec
                            .selector
                            .and_then(|s| s.match_labels)
                            .unwrap_or_default(),
                        disruptions_allowed: i64::from(status.disruptions_allowed),
                        disrupted_pods: status
                            .disrupted_pods
                            .unwrap_or_default()
                            .into_keys()
                            .collect(),
                    });
                },
            ),
        ];
        let mut replicas = Replicas::default();
        tasks.push(watch(
            Api::<Deployment>::namespaced(client.clone(), ns),
            h.clone(),
            move |h, at, d, _| {
                let n = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                replicas.note(h, at, Workload::new("Deployment", &d.name_any()), n.into());
            },
        ));
        let mut replicas = Replicas::default();
        tasks.push(watch(
            Api::<StatefulSet>::namespaced(client.clone(), ns),
            h.clone(),
            move |h, at, s, _| {
                let n = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                replicas.note(h, at, Workload::new("StatefulSet", &s.name_any()), n.into());
            },
        ));
        let mut replicas = Replicas::default();
        let rollouts =
            Api::<DynamicObject>::namespaced_with(client.clone(), ns, &rollout_resource());
        tasks.push(watch(rollouts, h.clone(), move |h, at, r, _| {
            let n = r.data["spec"]["replicas"].as_i64().unwrap_or(1);
            replicas.note(h, at, Workload::new("Rollout", &r.name_any()), n);
        }));
        let lease = lease.to_string();
        tasks.push(watch(
            Api::<Lease>::namespaced(client.clone(), ns),
            h.clone(),
            move |h, at, l, gone| {
                if l.name_any() != lease {
                    return;
                }
                let holder = (!gone)
                    .then(|| l.spec.as_ref().and_then(|s| s.holder_identity.clone()))
                    .flatten()
                    .filter(|h| !h.is_empty());
                if h.leases.last().is_none_or(|last| last.holder != holder) {
                    h.leases.push(LeaseRecord { at, holder });
                }
            },
        ));
        let mut last: BTreeMap<Workload, (bool, Option<Timestamp>)> = BTreeMap::new();
        let policies = Api::<DynamicObject>::namespaced_with(client, ns, &hapolicy_resource());
        tasks.push(watch(policies, h, move |h, at, p, _| {
            for w in p.data["status"]["workloads"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let workload = Workload::new(
                    w["kind"].as_str().unwrap_or(""),
                    w["name"].as_str().unwrap_or(""),
                );
                let episode = w["rebalance"]["memory"]["episode"]
                    .as_bool()
                    .unwrap_or(false);
                let last_action = w["rebalance"]["lastActionTime"]
                    .as_str()
                    .and_then(|t| t.parse().ok());
                if last.insert(workload.clone(), (episode, last_action))
                    != Some((episode, last_action))
                {
                    h.statuses.push(StatusRecord {
                        at,
                        workload,
                        episode,
                        last_action,
                    });
                }
            }
        }));
        let n = tasks.len();
        let recorder = Recorder {
            history,
            synced,
            tasks,
        };
        wait_for(
            "the soak's watches to list",
            Duration::from_secs(60),
            || {
                let done = recorder.synced.load(Ordering::SeqCst) >= n;
                async move { done.then_some(()) }
            },
        )
        .await;
        recorder
    }

    /// Everything recorded so far.
    pub fn history(&self) -> History {
        self.history.lock().unwrap().clone()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Records a workload's replicas when they change.
#[derive(Default)]
struct Replicas(HashMap<Workload, i64>);

impl Replicas {
    fn note(&mut self, h: &mut History, at: Timestamp, workload: Workload, replicas: i64) {
        if self.0.insert(workload.clone(), replicas) != Some(replicas) {
            h.workloads.push(WorkloadRecord {
                at,
                workload,
                replicas,
            });
        }
    }
}

fn controller(meta: &ObjectMeta) -> Option<Workload> {
    let refs: &[OwnerReference] = meta.owner_references.as_deref().unwrap_or(&[]);
    refs.iter()
        .find(|r| r.controller == Some(true))
        .map(|r| Workload::new(&r.kind, &r.name))
}

fn pod_record(at: Timestamp, p: &Pod, gone: bool, kubelet: &FakeKubelet) -> PodRecord {
    let annotations = p.annotations();
    PodRecord {
        at,
        uid: p.uid().unwrap_or_default(),
        name: p.name_any(),
        labels: p.labels().clone(),
        owner: controller(p.meta()),
        zone: node_of(p).and_then(|n| kubelet.zone_of(n)),
        ready: is_ready(p),
        ready_since: (p.status.as_ref().and_then(|s| s.conditions.as_ref()))
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready" && c.status == "True"))
            .and_then(|c| c.last_transition_time.as_ref())
            .map(|t| t.0),
        terminating: p.metadata.deletion_timestamp.is_some(),
        gone,
        created: (p.metadata.creation_timestamp.as_ref()).map_or(at, |t| t.0),
        opted_out: OPT_OUTS
            .iter()
            .any(|(k, v)| annotations.get(*k).map(String::as_str) == Some(*v)),
    }
}

/// Watches `api`, calling `record(history, seen at, object, gone)` for every state seen; an
/// object missing from a re-list is recorded gone. Counts `synced` up once, at its first list.
fn watch<K, F>(
    api: Api<K>,
    (history, synced): (Arc<Mutex<History>>, Arc<AtomicUsize>),
    mut record: F,
) -> JoinHandle<()>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    F: FnMut(&mut History, Timestamp, &K, bool) + Send + 'static,
{
    tokio::spawn(async move {
        let mut stream = watcher(api, watcher::Config::default())
            .backoff(watch_backoff())
            .boxed();
        let mut live: HashMap<String, K> = HashMap::new();
        let mut listed: HashSet<String> = HashSet::new();
        let mut first = true;
        while let Some(event) = stream.next().await {
            let Ok(event) = event else { continue };
            let at = Timestamp::now();
            let mut h = history.lock().unwrap();
            match event {
                watcher::Event::Init => listed.clear(),
                watcher::Event::InitApply(o) => {
                    let uid = o.uid().unwrap_or_default();
                    listed.insert(uid.clone());
                    record(&mut h, at, &o, false);
                    live.insert(uid, o);
                }
                watcher::Event::InitDone => {
                    let vanished: Vec<String> = live
                        .keys()
                        .filter(|u| !listed.contains(*u))
                        .cloned()
                        .collect();
                    for uid in vanished {
                        if let Some(o) = live.remove(&uid) {
                            record(&mut h, at, &o, true);
                        }
                    }
                    if std::mem::take(&mut first) {
                        synced.fetch_add(1, Ordering::SeqCst);
                    }
                }
                watcher::Event::Apply(o) => {
                    record(&mut h, at, &o, false);
                    live.insert(o.uid().unwrap_or_default(), o);
                }
                watcher::Event::Delete(o) => {
                    live.remove(&o.uid().unwrap_or_default());
                    record(&mut h, at, &o, true);
                }
            }
        }
    })
}
