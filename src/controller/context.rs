//! What every reconcile shares: the client, the caches, what is remembered per workload, the
//! global eviction pace, leadership and the settings from the command line.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use kube::Client;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::Store;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::api::{HAPolicy, RebalanceState, WorkloadKind};
use crate::decision::Memory;
use crate::metrics::Metrics;

use super::stores::Stores;

/// Settings from the command line that change what reconciles do.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Write nothing to workloads or pods; say what would have been done.
    pub dry_run: bool,
}

/// Identifies a workload, as seen by one policy, across reconciles (a policy that loses a
/// conflict keeps its own record, so the two never overwrite each other's memory).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkloadKey {
    pub namespace: String,
    pub policy: String,
    pub kind: WorkloadKind,
    pub name: String,
}

/// What is remembered about a workload: the decision memory, and what was last told, so
/// Events mark changes instead of repeating on every reconcile.
#[derive(Clone, Debug, Default)]
pub struct Record {
    pub memory: Memory,
    pub reported: Option<(RebalanceState, String)>,
}

pub struct Context {
    pub client: Client,
    pub stores: Stores,
    pub policies: Store<HAPolicy>,
    pub recorder: Recorder,
    pub settings: Settings,
    pub records: Mutex<HashMap<WorkloadKey, Record>>,
    pub limiter: RateLimiter,
    pub leader: watch::Receiver<bool>,
    pub metrics: Metrics,
}

impl Context {
    pub fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }

    pub fn record(&self, key: &WorkloadKey) -> Record {
        self.lock_records().get(key).cloned().unwrap_or_default()
    }

    pub fn store_record(&self, key: WorkloadKey, record: Record) {
        self.lock_records().insert(key, record);
    }

    /// Forgets the workloads `policy` handled before but no longer selects.
    pub fn forget_except(&self, namespace: &str, policy: &str, keep: &[WorkloadKey]) {
        self.lock_records()
            .retain(|k, _| k.namespace != namespace || k.policy != policy || keep.contains(k));
    }

    fn lock_records(&self) -> std::sync::MutexGuard<'_, HashMap<WorkloadKey, Record>> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Spaces disruptions across all workloads to protect the API server; each workload's own
/// pacing (one step at a time, replacements Ready first) is what keeps services safe.
pub struct RateLimiter {
    interval: Duration,
    next: tokio::sync::Mutex<Instant>,
}

impl RateLimiter {
    pub fn per_second(rate: f64) -> Self {
        let interval = if rate > 0.0 && rate.is_finite() {
            Duration::from_secs_f64(1.0 / rate)
        } else {
            Duration::ZERO
        };
        Self {
            interval,
            next: tokio::sync::Mutex::new(Instant::now()),
        }
    }

    /// Waits for the next slot.
    pub async fn acquire(&self) {
        let slot = {
            let mut next = self.next.lock().await;
            let slot = (*next).max(Instant::now());
            *next = slot + self.interval;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}
