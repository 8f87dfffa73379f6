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
use crate::metrics::Metrics;
use crate::pipeline::WorkloadMemory;

pub use crate::pipeline::Settings;

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
    pub limiter: RateLimiter,
    pub leader: watch::Receiver<bool>,
    pub metrics: Metrics,
}

impl Context {
    pub fn is_leader(&self) -> bool {
        *self.leader.borrow()
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
    }

    pub fn remember(&self, key: WorkloadKey, memory: WorkloadMemory) {
        self.lock_memory().insert(key, memory);
    }

    /// Forgets the workloads `policy` handled before but no longer selects.
    pub fn forget_except(&self, namespace: &str, policy: &str, keep: &[WorkloadKey]) {
        self.lock_memory()
            .retain(|k, _| k.namespace != namespace || k.policy != policy || keep.contains(k));
    }

    /// Forgets every workload of the policies that no longer exist.
    pub fn forget_policies_except(&self, live: &std::collections::BTreeSet<(String, String)>) {
        self.lock_memory()
            .retain(|k, _| live.contains(&(k.namespace.clone(), k.policy.clone())));
    }

    fn lock_memory(&self) -> std::sync::MutexGuard<'_, HashMap<WorkloadKey, WorkloadMemory>> {
        self.memory.lock().unwrap_or_else(|p| p.into_inner())
    }
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
