//! What every reconcile shares: the client, the caches, what is remembered per workload, the
//! global eviction pace, leadership and the settings from the command line.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use kube::Client;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::{ObjectRef, Store};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::api::{HAPolicy, WorkloadKind};
use crate::core::injection::AdmissionSupport;
use crate::core::pipeline::WorkloadMemory;
use crate::shell::metrics::Metrics;

pub use crate::core::pipeline::Settings;

use super::stores::Stores;

/// Identifies a workload, as seen by one policy, across reconciles (a policy that loses a
/// conflict keeps its own memory, so the two never overwrite each other's).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkloadKey {
    pub namespace: String,
    pub policy: String,
    pub kind: WorkloadKind,
    pub name: String,
}

pub struct Context {
    pub client: Client,
    pub stores: Stores,
    pub policies: Store<HAPolicy>,
    pub recorder: Recorder,
    pub settings: Settings,
    pub memory: Mutex<HashMap<WorkloadKey, WorkloadMemory>>,
    /// The workloads rolling out because skewguard wrote their template (cluster-wide budget of
    /// `--max-concurrent-rollouts`), and whether it was read from the policies' status yet.
    pub rollouts: Mutex<RolloutHolders>,
    /// Evictions, cluster-wide (`--max-evictions-per-second`).
    pub limiter: RateLimiter,
    /// Deletion-cost annotations, cluster-wide (`--max-deletion-cost-writes-per-second`).
    pub pod_writes: RateLimiter,
    pub leader: watch::Receiver<bool>,
    pub metrics: Metrics,
    /// What the cluster offers for admission mode, as last probed (`None`: not known yet).
    pub admission: watch::Sender<Option<AdmissionSupport>>,
}

impl Context {
    pub fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }

    /// What the cluster offers for admission mode, as last probed.
    pub fn admission_support(&self) -> Option<AdmissionSupport> {
        self.admission.borrow().clone()
    }

    /// What is remembered about a workload: in this process's memory, or else what the policy's
    /// status says (written by this process before a restart, or by the previous leader).
    pub fn memory_of(&self, key: &WorkloadKey) -> WorkloadMemory {
        if let Some(memory) = self.lock_memory().get(key) {
            return memory.clone();
        }
        let policy = ObjectRef::<HAPolicy>::new(&key.policy).within(&key.namespace);
        self.policies
            .get(&policy)
            .and_then(|p| {
                p.status.as_ref().and_then(|s| {
                    s.workloads
                        .iter()
                        .find(|w| w.kind == key.kind && w.name == key.name)
                        .map(WorkloadMemory::restored)
                })
            })
            .unwrap_or_default()
    }

    /// Forgets everything this process remembers, so the next reconciles read the memory from
    /// the policies' status (on taking the lease: the previous leader may have acted since).
    pub fn forget_all(&self) {
        self.lock_memory().clear();
        *self.lock_rollouts() = RolloutHolders::default();
    }

    pub fn remember(&self, key: WorkloadKey, memory: WorkloadMemory) {
        self.lock_memory().insert(key, memory);
    }

    /// Forgets the workloads `policy` handled before but no longer selects.
    pub fn forget_except(&self, namespace: &str, policy: &str, keep: &[WorkloadKey]) {
        let kept =
            |k: &WorkloadKey| k.namespace != namespace || k.policy != policy || keep.contains(k);
        self.lock_memory().retain(|k, _| kept(k));
        self.lock_rollouts().holders.retain(kept);
    }

    /// Forgets every workload of the policies that no longer exist.
    pub fn forget_policies_except(&self, live: &std::collections::BTreeSet<(String, String)>) {
        let keep = |k: &WorkloadKey| live.contains(&(k.namespace.clone(), k.policy.clone()));
        self.lock_memory().retain(|k, _| keep(k));
        self.lock_rollouts().holders.retain(keep);
    }

    /// How many workloads other than `key` hold a rollout slot. The first call after start or
    /// after taking the lease reads every policy's status, so slots held before a restart count.
    pub async fn rollouts_elsewhere(&self, key: &WorkloadKey) -> usize {
        if !self.lock_rollouts().synced {
            // Every policy must be known before their slots are counted.
            let _ = self.policies.wait_until_ready().await;
            let held = held_rollouts(&self.policies.state());
            let mut rollouts = self.lock_rollouts();
            if !rollouts.synced {
                rollouts.holders.extend(held);
                rollouts.synced = true;
            }
        }
        let rollouts = self.lock_rollouts();
        rollouts.holders.len() - usize::from(rollouts.holders.contains(key))
    }

    /// Records whether `key` holds a rollout slot now.
    pub fn hold_rollout(&self, key: &WorkloadKey, holds: bool) {
        let mut rollouts = self.lock_rollouts();
        if holds {
            rollouts.holders.insert(key.clone());
        } else {
            rollouts.holders.remove(key);
        }
    }

    fn lock_rollouts(&self) -> std::sync::MutexGuard<'_, RolloutHolders> {
        self.rollouts.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_memory(&self) -> std::sync::MutexGuard<'_, HashMap<WorkloadKey, WorkloadMemory>> {
        self.memory.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Who holds one of the cluster-wide rollout slots.
#[derive(Debug, Default)]
pub struct RolloutHolders {
    pub holders: std::collections::BTreeSet<WorkloadKey>,
    pub synced: bool,
}

/// The workloads whose status says skewguard started a rollout that is not done yet.
fn held_rollouts(policies: &[std::sync::Arc<HAPolicy>]) -> Vec<WorkloadKey> {
    policies
        .iter()
        .flat_map(|p| {
            let (namespace, policy) = (
                p.metadata.namespace.clone().unwrap_or_default(),
                p.metadata.name.clone().unwrap_or_default(),
            );
            p.status
                .iter()
                .flat_map(|s| &s.workloads)
                .filter(|w| {
                    w.rebalance
                        .memory
                        .as_ref()
                        .is_some_and(|m| m.rollout_generation.is_some())
                })
                .map(move |w| WorkloadKey {
                    namespace: namespace.clone(),
                    policy: policy.clone(),
                    kind: w.kind,
                    name: w.name.clone(),
                })
        })
        .collect()
}

/// Spaces disruptions across all workloads to protect the API server; each workload's own
/// pacing (one step at a time, replacements Ready first) is what keeps services safe.
///
/// A reconcile never waits for a slot: it reserves the next free one for the pod it wants to
/// evict and comes back when the slot arrives. So each workload steps as soon as its own
/// replacement is Ready and its slot comes, and no workload waits for another's.
pub struct RateLimiter {
    interval: Duration,
    state: Mutex<Slots>,
}

#[derive(Default)]
struct Slots {
    next: Option<Instant>,
    /// (workload, pod) -> the slot reserved for it.
    reserved: HashMap<(WorkloadKey, String), Instant>,
}

/// A reservation not used this long after its slot is given up.
const RESERVATION_GRACE: Duration = Duration::from_secs(30);

impl RateLimiter {
    /// `rate` evictions per second; the command line refuses anything but a positive rate.
    pub fn per_second(rate: f64) -> Self {
        let interval = if rate > 0.0 && rate.is_finite() {
            Duration::from_secs_f64(1.0 / rate)
        } else {
            Duration::ZERO
        };
        Self {
            interval,
            state: Mutex::default(),
        }
    }

    /// `None`: go now. `Some(wait)`: the pod's slot comes in `wait`; ask again then.
    pub fn reserve(&self, workload: &WorkloadKey, pod: &str) -> Option<Duration> {
        let now = Instant::now();
        let mut slots = self.state.lock().unwrap_or_else(|p| p.into_inner());
        slots.reserved.retain(|_, at| *at + RESERVATION_GRACE > now);
        let key = (workload.clone(), pod.to_string());
        if let Some(at) = slots.reserved.get(&key).copied() {
            if at <= now {
                slots.reserved.remove(&key);
                return None;
            }
            return Some(at - now);
        }
        let slot = slots.next.map_or(now, |next| next.max(now));
        slots.next = Some(slot + self.interval);
        if slot <= now {
            return None;
        }
        slots.reserved.insert(key, slot);
        Some(slot - now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> WorkloadKey {
        WorkloadKey {
            namespace: "ns".into(),
            policy: "p".into(),
            kind: WorkloadKind::Deployment,
            name: name.into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn slots_are_reserved_in_order_and_kept_for_their_pod() {
        let limiter = RateLimiter::per_second(10.0);
        assert_eq!(limiter.reserve(&key("a"), "a-1"), None);
        let b = limiter.reserve(&key("b"), "b-1").unwrap();
        let c = limiter.reserve(&key("c"), "c-1").unwrap();
        assert_eq!(
            (b, c),
            (Duration::from_millis(100), Duration::from_millis(200))
        );
        // Asking again keeps the place in the queue.
        assert_eq!(limiter.reserve(&key("b"), "b-1"), Some(b));
        tokio::time::advance(Duration::from_millis(100)).await;
        assert_eq!(limiter.reserve(&key("b"), "b-1"), None);
        assert_eq!(
            limiter.reserve(&key("c"), "c-1"),
            Some(Duration::from_millis(100))
        );
    }
}
