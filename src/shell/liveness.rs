//! Whether the watch tasks that feed the caches are alive and getting on: what `/healthz` says,
//! so the kubelet restarts an operator whose caches froze. A watch task that died (a panic
//! unwinds through its [`TaskGuard`]) or that has been handling one event for longer than
//! [`STUCK_AFTER`] fails the probe; a watch that waits for events, or retries against an API server
//! that is away, does not (a restart would not bring the server back).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// How long one event may take before its task counts as stuck: handling an event is a few
/// lookups and a copy, far below a millisecond.
pub const STUCK_AFTER: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Waiting,
    Busy(Instant),
    Died,
}

/// The registry of watch tasks; clones share it.
#[derive(Clone, Debug, Default)]
pub struct WatchTasks(Arc<Mutex<BTreeMap<u64, (String, State)>>>);

impl WatchTasks {
    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<u64, (String, State)>) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Registers a task named `name`; it counts as alive until its guard is dropped unfinished.
    pub fn register(&self, name: impl Into<String>) -> TaskGuard {
        let id = self.with(|tasks| {
            let id = tasks.keys().next_back().map_or(0, |k| k + 1);
            tasks.insert(id, (name.into(), State::Waiting));
            id
        });
        TaskGuard {
            tasks: self.clone(),
            id,
            finished: false,
        }
    }

    /// `Ok` while every task is alive and none is stuck, else which are not.
    pub fn check(&self) -> Result<(), String> {
        let now = Instant::now();
        let failing: Vec<String> = self.with(|tasks| {
            tasks
                .values()
                .filter_map(|(name, state)| match state {
                    State::Died => Some(format!("the {name} watch task died")),
                    State::Busy(since) if now.duration_since(*since) >= STUCK_AFTER => Some(
                        format!("the {name} watch task is stuck on one event for {STUCK_AFTER:?}"),
                    ),
                    _ => None,
                })
                .collect()
        });
        if failing.is_empty() {
            Ok(())
        } else {
            Err(failing.join("; "))
        }
    }
}

/// One task's entry: marks it busy around each event, and dead when dropped without
/// [`TaskGuard::finish`] (its loop ended, or a panic unwound through it).
#[derive(Debug)]
pub struct TaskGuard {
    tasks: WatchTasks,
    id: u64,
    finished: bool,
}

impl TaskGuard {
    fn set(&self, state: State) {
        self.tasks.with(|tasks| {
            if let Some(entry) = tasks.get_mut(&self.id) {
                entry.1 = state;
            }
        });
    }

    /// An event is being handled (until [`TaskGuard::idle`]).
    pub fn busy(&self) {
        self.set(State::Busy(Instant::now()));
    }

    /// The event is handled; the task waits for the next one.
    pub fn idle(&self) {
        self.set(State::Waiting);
    }

    /// The task's work is done (e.g. the CRD it waited for exists): it leaves the registry.
    pub fn finish(mut self) {
        self.finished = true;
        self.tasks.with(|tasks| tasks.remove(&self.id));
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        if !self.finished {
            self.set(State::Died);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_task_stuck_on_one_event_fails_the_check_a_waiting_one_never_does() {
        let tasks = WatchTasks::default();
        let pods = tasks.register("pods");
        assert_eq!(tasks.check(), Ok(()));
        // Waiting for events for an hour (a quiet cluster, or an API server away) is fine.
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(tasks.check(), Ok(()));
        pods.busy();
        tokio::time::advance(STUCK_AFTER - Duration::from_secs(1)).await;
        assert_eq!(tasks.check(), Ok(()));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(
            tasks
                .check()
                .unwrap_err()
                .contains("pods watch task is stuck")
        );
        pods.idle();
        assert_eq!(tasks.check(), Ok(()));
        pods.finish();
        assert_eq!(tasks.check(), Ok(()), "a finished task leaves the registry");
    }

    #[tokio::test]
    async fn a_task_that_panics_fails_the_check() {
        let tasks = WatchTasks::default();
        let guard = tasks.register("nodes");
        let _other = tasks.register("pods");
        let died = tokio::spawn(async move {
            guard.busy();
            let quantities: Vec<i64> = vec![i64::MAX, 1];
            // What a debug build did on an absurd quantity: an overflow panic mid-event.
            let _ = quantities
                .iter()
                .map(|q| q.checked_add(1).unwrap())
                .sum::<i64>();
            drop(guard);
        })
        .await;
        assert!(died.is_err_and(|e| e.is_panic()));
        let failing = tasks.check().unwrap_err();
        assert!(failing.contains("the nodes watch task died"), "{failing}");
        assert!(!failing.contains("pods"), "{failing}");
    }
}
