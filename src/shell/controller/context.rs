//! What every reconcile shares: the client, the caches, what is remembered per workload (its
//! memory and the rollout slots), the global eviction pace, leadership and the settings from the
//! command line. [`Context::new`] is the one way to build it (the binary and the tests).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::Store;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::shell::fence::Fence;

use crate::api::HAPolicy;
use crate::core::injection::AdmissionSupport;
use crate::core::pipeline::{Conclusion, WorkloadMemory};
use crate::core::rollout_slots::{RolloutPermit, RolloutSlots};
use crate::shell::metrics::Metrics;

pub use crate::core::pipeline::{Settings, WorkloadKey};

use super::status::StatusWrites;
use super::stores::Stores;
use super::writer::{Busy, Wakes};

/// How fast and how much the operator may act, from the command line.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    pub settings: Settings,
    /// Workloads rolling out at once because skewguard wrote their template, cluster-wide.
    pub max_concurrent_rollouts: usize,
    /// Evictions per second, cluster-wide.
    pub evictions_per_second: f64,
    /// Deletion-cost annotations per second, cluster-wide.
    pub deletion_cost_writes_per_second: f64,
    /// Deletions of stranded Pending pods per second, cluster-wide.
    pub pending_deletions_per_second: f64,
    /// How long a reconcile waits for its workloads' writes before it finishes without them
    /// ([`super::writer`]).
    pub writes_waited_for: Duration,
}

pub struct Context {
    /// Behind the fence: every write it sends is refused unless this process leads now.
    pub client: Client,
    pub stores: Stores,
    pub policies: Store<HAPolicy>,
    pub recorder: Recorder,
    pub settings: Settings,
    max_concurrent_rollouts: usize,
    remembered: Mutex<Remembered>,
    /// Evictions, cluster-wide (`--max-evictions-per-second`).
    pub limiter: RateLimiter,
    /// Deletion-cost annotations, cluster-wide (`--max-deletion-cost-writes-per-second`).
    pub pod_writes: RateLimiter,
    /// Deletions of stranded Pending pods, cluster-wide (at `--max-evictions-per-second`, in a
    /// budget of their own).
    pub pending_deletions: RateLimiter,
    /// Whether this process leads now: the gate of [`Context::client`], and what cancels a
    /// reconcile when the lease is lost.
    pub fence: Fence,
    pub metrics: Metrics,
    /// What the cluster offers for admission mode, as last probed (`None`: not known yet).
    pub admission: watch::Sender<Option<AdmissionSupport>>,
    /// This process's last status write per policy (the resourceVersion the next builds on).
    pub statuses: StatusWrites,
    /// How long a reconcile waits for its workloads' writes ([`Limits::writes_waited_for`]).
    pub writes_waited_for: Duration,
    /// The workloads whose writes go on beside the reconciles.
    pub busy: Busy,
    /// How those writes ask for their policy again when they end.
    pub wakes: Wakes,
}

/// What this process remembers between reconciles. All of it is forgotten on taking the lease
/// (the previous leader may have acted since) and read again from the policies' status.
#[derive(Default)]
struct Remembered {
    memory: HashMap<WorkloadKey, WorkloadMemory>,
    /// `None` until read from the policies' status.
    slots: Option<RolloutSlots>,
    /// When each workload's last move was judged, until its next eviction (step latency).
    judged_at: HashMap<WorkloadKey, Instant>,
}

impl Context {
    /// A context over started (or fixed) caches; Events are reported as `identity`. `client` is
    /// put behind `fence`, so nothing written through the context escapes it.
    pub fn new(
        client: Client,
        stores: Stores,
        policies: Store<HAPolicy>,
        fence: Fence,
        metrics: Metrics,
        identity: &str,
        limits: Limits,
    ) -> Self {
        let client = fence.gate(client);
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "skewguard".into(),
                instance: Some(identity.to_string()),
            },
        );
        Self {
            client,
            stores,
            policies,
            recorder,
            settings: limits.settings,
            max_concurrent_rollouts: limits.max_concurrent_rollouts,
            remembered: Mutex::default(),
            limiter: RateLimiter::per_second_saving_up(limits.evictions_per_second),
            pod_writes: RateLimiter::per_second_saving_up(limits.deletion_cost_writes_per_second),
            pending_deletions: RateLimiter::per_second_saving_up(
                limits.pending_deletions_per_second,
            ),
            fence,
            metrics,
            admission: watch::Sender::new(None),
            statuses: StatusWrites::default(),
            writes_waited_for: limits.writes_waited_for,
            busy: Busy::default(),
            wakes: Wakes::default(),
        }
    }

    pub fn is_leader(&self) -> bool {
        self.fence.held()
    }

    /// What the cluster offers for admission mode, as last probed.
    pub fn admission_support(&self) -> Option<AdmissionSupport> {
        self.admission.borrow().clone()
    }

    /// What this process remembers of a workload (`None`: nothing yet; the policy's status says).
    pub fn memory_of(&self, key: &WorkloadKey) -> Option<WorkloadMemory> {
        self.lock().memory.get(key).cloned()
    }

    /// A rollout permit for the workload's step. The first after a start or after taking the
    /// lease reads every policy's status, so the slots held before count.
    pub async fn rollout_permit(&self, key: &WorkloadKey) -> RolloutPermit {
        if self.lock().slots.is_none() {
            // Every policy must be known before their slots are counted.
            let _ = self.policies.wait_until_ready().await;
            let read = RolloutSlots::from_status(
                self.max_concurrent_rollouts,
                self.policies.state().iter().map(AsRef::as_ref),
            );
            self.lock().slots.get_or_insert(read);
        }
        let mut remembered = self.lock();
        let slots = remembered
            .slots
            .get_or_insert_with(|| RolloutSlots::new(self.max_concurrent_rollouts));
        slots.permit(key)
    }

    /// Keeps what a workload's step concluded: its memory and its rollout slot. Returns when its
    /// previous move was judged if this step evicted again (for the step-latency histogram).
    pub fn keep(
        &self,
        key: &WorkloadKey,
        conclusion: &Conclusion,
        evicted: bool,
        assessed_at: Instant,
    ) -> Option<Instant> {
        let mut remembered = self.lock();
        if let Some(slots) = remembered.slots.as_mut() {
            slots.settle(key, conclusion.slot);
        }
        remembered
            .memory
            .insert(key.clone(), conclusion.memory.clone());
        let judged_before = if evicted {
            remembered.judged_at.remove(key)
        } else {
            None
        };
        if conclusion.moves_judged > 0 {
            remembered.judged_at.insert(key.clone(), assessed_at);
        }
        judged_before
    }

    /// Forgets everything this process remembers, so the next reconciles read the memory from
    /// the policies' status (on taking the lease: the previous leader may have acted since).
    pub fn forget_all(&self) {
        *self.lock() = Remembered::default();
    }

    /// Forgets the workloads `policy` handled before but no longer selects.
    pub fn forget_except(&self, namespace: &str, policy: &str, keep: &[WorkloadKey]) {
        self.retain(|k| k.namespace != namespace || k.policy != policy || keep.contains(k));
    }

    /// Forgets every workload of the policies that no longer exist.
    pub fn forget_policies_except(&self, live: &std::collections::BTreeSet<(String, String)>) {
        self.retain(|k| live.contains(&(k.namespace.clone(), k.policy.clone())));
        self.statuses.retain(live);
    }

    fn retain(&self, keep: impl Fn(&WorkloadKey) -> bool) {
        let mut remembered = self.lock();
        remembered.memory.retain(|k, _| keep(k));
        remembered.judged_at.retain(|k, _| keep(k));
        if let Some(slots) = remembered.slots.as_mut() {
            slots.retain(keep);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Remembered> {
        self.remembered.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Spaces disruptions across all workloads to protect the API server; each workload's own
/// pacing (one step at a time, replacements Ready first) is what keeps services safe.
///
/// A reconcile never waits for a slot: it reserves a place for the pod it wants to evict and comes
/// back when its slot comes. The slots are shared fairly across namespaces: the waiting pods are
/// served one namespace after the other (each namespace's in the order they asked), so one
/// namespace's backlog never holds every other namespace's evictions behind it. A place can move
/// later when another namespace starts asking (by one slot per namespace ahead of it at most);
/// whoever comes back early is told how long to wait still.
///
/// The pace is a token bucket (client-go's flowcontrol): `rate` per second on average, with up
/// to [`BURST_WINDOW`] of slots missed while no reconcile asked kept for the next one. Without
/// it, a reconcile sends one eviction at most and the next comes back a reconcile's time later,
/// so a policy of a hundred workloads evicted at a fraction of the rate.
pub struct RateLimiter {
    interval: Duration,
    /// How many slots may go at once after a pause.
    burst: u32,
    state: Mutex<Slots>,
}

/// How much of the rate a pause saves up for the next reconcile (client-go's default burst is
/// two seconds' worth).
pub const BURST_WINDOW: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Slots {
    /// When the next disruption may go.
    next: Option<Instant>,
    /// The waiting pods, in the order they first asked.
    waiting: Vec<Waiting>,
    /// When each namespace last had a pod go (forgotten after [`RESERVATION_GRACE`]).
    served: HashMap<String, Instant>,
}

struct Waiting {
    key: (WorkloadKey, String),
    /// The slot last promised: a place not asked for again [`RESERVATION_GRACE`] after it is
    /// given up.
    due: Instant,
}

/// A reservation not used this long after its slot is given up.
const RESERVATION_GRACE: Duration = Duration::from_secs(30);

/// How late a reconcile may come back for its slot and still keep its place ahead of others.
const LATE: Duration = Duration::from_secs(2);

impl RateLimiter {
    /// `rate` per second, one at a time: each slot comes `1 / rate` after the one before.
    pub fn per_second(rate: f64) -> Self {
        Self::per_second_with_burst(rate, 1)
    }

    /// `rate` per second on average, up to [`BURST_WINDOW`]'s worth at once after a pause: what
    /// the operator's limits use.
    pub fn per_second_saving_up(rate: f64) -> Self {
        let burst = (rate * BURST_WINDOW.as_secs_f64()).floor();
        Self::per_second_with_burst(rate, if burst >= 1.0 { burst as u32 } else { 1 })
    }

    /// `rate` per second on average, up to `burst` at once; the command line refuses anything but
    /// a positive rate.
    pub fn per_second_with_burst(rate: f64, burst: u32) -> Self {
        let interval = if rate > 0.0 && rate.is_finite() {
            Duration::from_secs_f64(1.0 / rate)
        } else {
            Duration::ZERO
        };
        Self {
            interval,
            burst: burst.max(1),
            state: Mutex::default(),
        }
    }

    /// `None`: go now. `Some(wait)`: the slot for `what` (a pod, or the workload's n-th
    /// eviction) comes in `wait`; ask again for the same `what` then.
    pub fn reserve(&self, workload: &WorkloadKey, what: &str) -> Option<Duration> {
        let now = Instant::now();
        let mut slots = self.state.lock().unwrap_or_else(|p| p.into_inner());
        slots.waiting.retain(|w| w.due + RESERVATION_GRACE > now);
        slots.served.retain(|_, at| *at + RESERVATION_GRACE > now);
        let key = (workload.clone(), what.to_string());
        if !slots.waiting.iter().any(|w| w.key == key) {
            slots.waiting.push(Waiting {
                key: key.clone(),
                due: now,
            });
        }
        // Slots missed during a pause are still there, up to the burst.
        let floor = (now.checked_sub(self.interval * (self.burst - 1))).unwrap_or(now);
        let first = slots.next.map_or(floor, |next| next.max(floor));
        // A pod that missed its slot by more than [`LATE`] holds no one back until it asks again.
        let place = fair_order(&slots.waiting, &slots.served)
            .iter()
            .filter(|&&i| slots.waiting[i].key == key || slots.waiting[i].due + LATE >= now)
            .position(|&i| slots.waiting[i].key == key)
            .unwrap_or(0);
        let slot = first + self.interval * u32::try_from(place).unwrap_or(u32::MAX);
        if slot <= now {
            slots.waiting.retain(|w| w.key != key);
            slots.next = Some(first + self.interval);
            slots.served.insert(workload.namespace.clone(), now);
            return None;
        }
        if let Some(w) = slots.waiting.iter_mut().find(|w| w.key == key) {
            w.due = slot;
        }
        Some(slot - now)
    }
}

impl RateLimiter {
    /// Whether anything waits for a slot now (a place asked for within [`LATE`] of its slot).
    pub fn is_busy(&self) -> bool {
        let now = Instant::now();
        let slots = self.state.lock().unwrap_or_else(|p| p.into_inner());
        slots.waiting.iter().any(|w| w.due + LATE >= now)
    }
}

/// The waiting pods (indexes into `waiting`) in the order they are served: the first of each
/// namespace, then the second of each, and so on; namespaces served longest ago (or never) first,
/// then in the order their first waiting pod asked.
fn fair_order(waiting: &[Waiting], served: &HashMap<String, Instant>) -> Vec<usize> {
    let mut namespaces: Vec<(&str, Vec<usize>)> = Vec::new();
    for (i, w) in waiting.iter().enumerate() {
        let namespace = w.key.0.namespace.as_str();
        match namespaces.iter_mut().find(|(n, _)| *n == namespace) {
            Some((_, pods)) => pods.push(i),
            None => namespaces.push((namespace, vec![i])),
        }
    }
    // A stable sort: namespaces served at the same time (or never) keep their order of asking.
    namespaces.sort_by_key(|(n, _)| served.get(*n).copied());
    let rounds = namespaces.iter().map(|(_, p)| p.len()).max().unwrap_or(0);
    (0..rounds)
        .flat_map(|round| {
            namespaces
                .iter()
                .filter_map(move |(_, p)| p.get(round).copied())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> WorkloadKey {
        WorkloadKey::new("ns", "p", crate::api::WorkloadKind::Deployment, name)
    }

    #[tokio::test(start_paused = true)]
    async fn slots_are_reserved_in_order_and_kept_for_their_pod() {
        let limiter = RateLimiter::per_second(10.0);
        assert!(!limiter.is_busy());
        assert_eq!(limiter.reserve(&key("a"), "a-1"), None);
        assert!(!limiter.is_busy(), "a went at once");
        let b = limiter.reserve(&key("b"), "b-1").unwrap();
        assert!(limiter.is_busy(), "b waits");
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

    fn in_namespace(namespace: &str, name: &str) -> WorkloadKey {
        WorkloadKey::new(namespace, "p", crate::api::WorkloadKind::Deployment, name)
    }

    #[tokio::test(start_paused = true)]
    async fn one_namespaces_backlog_does_not_hold_the_others_evictions() {
        let limiter = RateLimiter::per_second(10.0);
        let busy = in_namespace("busy", "web");
        // `busy` asks for ten evictions at once: the first goes, nine wait 100..900 ms.
        assert_eq!(limiter.reserve(&busy, "p0"), None);
        for i in 1..10 {
            assert_eq!(
                limiter.reserve(&busy, &format!("p{i}")),
                Some(Duration::from_millis(100 * i))
            );
        }
        // `quiet` asks next: busy was just served, so quiet's pod takes the next slot, not
        // the one after all nine of busy's; busy's pods each move back by one slot.
        let quiet = in_namespace("quiet", "api");
        assert_eq!(
            limiter.reserve(&quiet, "q0"),
            Some(Duration::from_millis(100))
        );
        assert_eq!(
            limiter.reserve(&busy, "p1"),
            Some(Duration::from_millis(200))
        );
        assert_eq!(
            limiter.reserve(&busy, "p9"),
            Some(Duration::from_millis(1000))
        );
        tokio::time::advance(Duration::from_millis(100)).await;
        // busy asks first, but the slot is quiet's; the pace holds (one per slot).
        assert_eq!(
            limiter.reserve(&busy, "p1"),
            Some(Duration::from_millis(100))
        );
        assert_eq!(limiter.reserve(&quiet, "q0"), None);
        assert_eq!(
            limiter.reserve(&busy, "p1"),
            Some(Duration::from_millis(100))
        );
        // Two namespaces waiting: they take turns.
        assert_eq!(
            limiter.reserve(&quiet, "q1"),
            Some(Duration::from_millis(200))
        );
        assert_eq!(
            limiter.reserve(&busy, "p2"),
            Some(Duration::from_millis(300))
        );
        tokio::time::advance(Duration::from_millis(100)).await;
        assert_eq!(limiter.reserve(&busy, "p1"), None);
    }

    /// At 10 per second with a second saved up: ten go at once after a pause, then one every
    /// 100 ms; a second of evictions never exceeds the rate plus the burst.
    #[tokio::test(start_paused = true)]
    async fn a_pause_saves_up_a_second_of_slots() {
        let limiter = RateLimiter::per_second_saving_up(10.0);
        let go = |n: usize| {
            (0..n)
                .filter(|i| {
                    limiter
                        .reserve(&key(&format!("w{i}")), "eviction 1")
                        .is_none()
                })
                .count()
        };
        assert_eq!(go(14), 10, "a fresh limiter holds a second's slots");
        tokio::time::advance(Duration::from_millis(100)).await;
        // The four that waited are first in line; one slot has come since.
        assert_eq!(go(14), 1);
        tokio::time::advance(Duration::from_millis(300)).await;
        assert_eq!(go(14), 3);
        // A long pause saves up no more than the burst.
        tokio::time::advance(Duration::from_secs(10)).await;
        let mut sent = 0;
        for _ in 0..10 {
            sent += go(20);
            tokio::time::advance(Duration::from_millis(100)).await;
        }
        assert_eq!(
            sent,
            10 + 9,
            "one second after a pause: the burst and the rate"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_place_not_asked_for_in_time_holds_no_one_back() {
        let limiter = RateLimiter::per_second(10.0);
        assert_eq!(limiter.reserve(&key("a"), "a-1"), None);
        assert!(limiter.reserve(&key("b"), "b-1").is_some());
        // b does not come back in time: its place no longer delays c, and once it asks again
        // it waits its turn anew.
        tokio::time::advance(LATE + Duration::from_secs(1)).await;
        assert_eq!(limiter.reserve(&key("c"), "c-1"), None);
        assert_eq!(
            limiter.reserve(&key("b"), "b-1"),
            Some(Duration::from_millis(100))
        );
    }
}
