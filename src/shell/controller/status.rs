//! Writing a policy's status: a merge patch that carries the resourceVersion it was computed from,
//! so a stale leader (or a reconcile on a stale read) never overwrites a newer status; the API
//! server answers 409 instead. The cache lags this process's own writes, so the version and
//! status each write builds on are its own last write's until the cache has seen it. Writes of
//! one policy that wait for their turn together go out as one (a group commit): a hundred
//! workloads' in-flight records cost a few round trips, not a hundred.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};

use crate::api::{HAPolicy, HAPolicyStatus};
use crate::core::policy_status::status_patch;

/// How many of this process's versions of a policy are remembered.
const CHAIN: usize = 64;

/// How long the write that takes its turn first waits for others to join it: a policy's workloads
/// step side by side, and their evictions' in-flight records come within milliseconds of each
/// other, while a status write of a large policy takes a few hundred.
const GROUP_LINGER: std::time::Duration = std::time::Duration::from_millis(15);

/// This process's last status write per policy.
#[derive(Default)]
pub struct StatusWrites {
    written: Mutex<HashMap<(String, String), Written>>,
    /// One write at a time: a policy's workloads step side by side, and each eviction's
    /// in-flight record is written before it is sent; two writes on the same base would make
    /// the second a 409.
    turn: tokio::sync::Mutex<()>,
    /// The changes waiting for their turn, per policy; the next write carries them all.
    waiting: Mutex<HashMap<(String, String), Vec<Waiting>>>,
    /// The status each policy's last reconcile decided (written, or on its way), and the version
    /// the cache showed then.
    decided: Mutex<HashMap<(String, String), Decided>>,
}

struct Decided {
    seen: Option<String>,
    status: HAPolicyStatus,
}

/// What a write makes of the status it builds on.
type Change = Arc<dyn Fn(Option<&HAPolicyStatus>) -> HAPolicyStatus + Send + Sync>;

/// A change waiting for its turn, and where to say whether another write carried it.
struct Waiting {
    change: Change,
    carried: oneshot::Sender<bool>,
}

struct Written {
    /// The versions the cache may show while it catches up with this process's writes: the one
    /// the first of them built on, then each one they made, in order (the last is the newest).
    ours: Vec<String>,
    status: HAPolicyStatus,
}

impl Written {
    fn newest(&self) -> &str {
        self.ours.last().map_or("", String::as_str)
    }
}

/// What a status write builds on.
pub struct Base {
    pub status: Option<HAPolicyStatus>,
    pub resource_version: Option<String>,
}

impl StatusWrites {
    /// The status and resourceVersion the next write on `policy` builds on: the cached policy's,
    /// unless the cache still shows what it showed at this process's last write (then that write's).
    pub fn base(&self, policy: &HAPolicy) -> Base {
        let cached = policy.resource_version();
        let written = self.lock();
        match written.get(&key(policy)) {
            // The cache shows a version before this process's newest write (one it built on or
            // made): nobody else wrote in between, so the newest write is the base. A version not
            // in the chain is someone else's, or the cache has caught up.
            Some(w)
                if cached
                    .as_deref()
                    .is_some_and(|c| c != w.newest() && w.ours.iter().any(|v| v == c)) =>
            {
                Base {
                    status: Some(w.status.clone()),
                    resource_version: Some(w.newest().to_string()),
                }
            }
            _ => Base {
                status: policy.status.clone(),
                resource_version: cached,
            },
        }
    }

    /// Remembers the status a reconcile of `policy` decided, before it is written: the next
    /// reconcile builds on it ([`StatusWrites::latest`]) even while the write is on its way.
    pub fn decide(&self, policy: &HAPolicy, status: HAPolicyStatus) {
        let seen = policy.resource_version();
        lock(&self.decided).insert(key(policy), Decided { seen, status });
    }

    /// `policy` as its next reconcile builds on it: with the status this process last decided,
    /// unless the cache shows a version that is not this process's (someone else wrote since).
    pub fn latest(&self, policy: &HAPolicy) -> Option<HAPolicy> {
        let cached = policy.resource_version();
        let decided = lock(&self.decided);
        let d = decided.get(&key(policy))?;
        let ours = cached == d.seen
            || (self.lock().get(&key(policy)))
                .is_some_and(|w| w.ours.iter().any(|v| Some(v) == cached.as_ref()));
        if !ours || policy.status.as_ref() == Some(&d.status) {
            return None;
        }
        let mut latest = policy.clone();
        latest.status = Some(d.status.clone());
        Some(latest)
    }

    /// The reconcile's last write: the status `change` makes of the current base, unless it is
    /// what the base already holds; `Err` with 409 when the policy changed since the base was read.
    /// Nothing of the same policy comes after it to wait for, so it does not linger.
    pub async fn write(
        &self,
        client: &Client,
        policy: &HAPolicy,
        change: impl Fn(Option<&HAPolicyStatus>) -> HAPolicyStatus + Send + Sync + 'static,
    ) -> Result<(), kube::Error> {
        self.write_lingering(client, policy, std::time::Duration::ZERO, change)
            .await
    }

    /// Writes the status `change` makes of the current base (this process's last write, or the
    /// cached status), in turn with every other write of this process. Changes to the same policy
    /// that wait meanwhile go out with it, applied in the order they came; one that a failed write
    /// carried is written again on its own, so each caller sees its own error.
    pub async fn write_onto(
        &self,
        client: &Client,
        policy: &HAPolicy,
        change: impl Fn(Option<&HAPolicyStatus>) -> HAPolicyStatus + Send + Sync + 'static,
    ) -> Result<(), kube::Error> {
        self.write_lingering(client, policy, GROUP_LINGER, change)
            .await
    }

    /// [`StatusWrites::write_onto`]; a write that finds no other waiting waits `linger` for some
    /// to join it.
    async fn write_lingering(
        &self,
        client: &Client,
        policy: &HAPolicy,
        linger: std::time::Duration,
        change: impl Fn(Option<&HAPolicyStatus>) -> HAPolicyStatus + Send + Sync + 'static,
    ) -> Result<(), kube::Error> {
        let change: Change = Arc::new(change);
        let (carried, mut was_carried) = oneshot::channel();
        (self.waiting_lock().entry(key(policy)).or_default()).push(Waiting {
            change: change.clone(),
            carried,
        });
        let _turn = self.turn.lock().await;
        if !linger.is_zero() && self.waiting_on(policy) == 1 {
            tokio::time::sleep(linger).await;
        }
        let batch = match was_carried.try_recv() {
            Ok(true) => return Ok(()),
            // Carried by a write that failed (or lost): written alone now.
            Ok(false) | Err(oneshot::error::TryRecvError::Closed) => Vec::new(),
            Err(oneshot::error::TryRecvError::Empty) => {
                (self.waiting_lock().remove(&key(policy))).unwrap_or_default()
            }
        };
        let changes: Vec<&Change> = if batch.is_empty() {
            vec![&change]
        } else {
            batch.iter().map(|w| &w.change).collect()
        };
        let result = self.write_changes(client, policy, &changes).await;
        for waiting in batch {
            // Its own sender included: nobody reads it any more, and a send to nobody is fine.
            let _ = waiting.carried.send(result.is_ok());
        }
        result
    }

    /// One status write: `changes` applied in turn to the base.
    async fn write_changes(
        &self,
        client: &Client,
        policy: &HAPolicy,
        changes: &[&Change],
    ) -> Result<(), kube::Error> {
        let base = self.base(policy);
        let mut status = base.status.clone();
        for change in changes {
            status = Some(change(status.as_ref()));
        }
        let Some(status) = &status else {
            return Ok(());
        };
        if base.status.as_ref() == Some(status) {
            return Ok(());
        }
        let mut body = status_patch(status);
        if let Some(version) = &base.resource_version {
            body["metadata"] = serde_json::json!({ "resourceVersion": version });
        }
        let api: Api<HAPolicy> =
            Api::namespaced(client.clone(), &policy.namespace().unwrap_or_default());
        let written = api
            .patch_status(
                &policy.name_any(),
                &PatchParams::default(),
                &Patch::Merge(body),
            )
            .await?;
        if let Some(made) = written.resource_version() {
            let built_on = base.resource_version.unwrap_or_default();
            let mut all = self.lock();
            match all.get_mut(&key(policy)) {
                Some(w) if w.newest() == built_on => {
                    w.ours.push(made);
                    // The cache is never that far behind; the chain stays short.
                    if w.ours.len() > CHAIN {
                        w.ours.remove(0);
                    }
                    w.status = status.clone();
                }
                _ => {
                    all.insert(
                        key(policy),
                        Written {
                            ours: vec![built_on, made],
                            status: status.clone(),
                        },
                    );
                }
            }
        }
        Ok(())
    }

    /// Forgets the policies not in `live`.
    pub fn retain(&self, live: &std::collections::BTreeSet<(String, String)>) {
        self.lock().retain(|k, _| live.contains(k));
        lock(&self.decided).retain(|k, _| live.contains(k));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Written>> {
        self.written.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many changes of `policy` wait for their turn.
    fn waiting_on(&self, policy: &HAPolicy) -> usize {
        self.waiting_lock().get(&key(policy)).map_or(0, Vec::len)
    }

    fn waiting_lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Vec<Waiting>>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn key(policy: &HAPolicy) -> (String, String) {
    (policy.namespace().unwrap_or_default(), policy.name_any())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy_at(version: &str) -> HAPolicy {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "skewguard.dev/v1alpha1", "kind": "HAPolicy",
            "metadata": {"name": "p", "namespace": "shop", "resourceVersion": version},
            "spec": {"selector": {}, "spread": [{"topologyKey": "topology.kubernetes.io/zone"}]},
            "status": {"observedGeneration": 1}
        }))
        .unwrap()
    }

    /// Three writes in a row (10 -> 11 -> 12 -> 13) while the cache shows 11: the next write
    /// builds on 13, not on 11 (which the API server would refuse with a 409). A version that is
    /// not ours, or our newest, is the cache's own.
    #[test]
    fn a_cache_behind_our_own_writes_builds_on_the_newest() {
        let writes = StatusWrites::default();
        let ours = HAPolicyStatus {
            observed_generation: Some(2),
            ..HAPolicyStatus::default()
        };
        writes.lock().insert(
            key(&policy_at("10")),
            Written {
                ours: ["10", "11", "12", "13"].map(String::from).to_vec(),
                status: ours.clone(),
            },
        );
        for behind in ["10", "11", "12"] {
            let base = writes.base(&policy_at(behind));
            assert_eq!(base.resource_version.as_deref(), Some("13"), "{behind}");
            assert_eq!(base.status, Some(ours.clone()));
        }
        for current in ["13", "14"] {
            let base = writes.base(&policy_at(current));
            assert_eq!(base.resource_version.as_deref(), Some(current));
            assert_ne!(base.status, Some(ours.clone()));
        }
    }

    /// A reconcile builds on the status the last one decided while its write is on its way (the
    /// cache shows the version it saw, or one of this process's writes), not after someone
    /// else's write (a version not ours).
    #[test]
    fn the_next_reconcile_builds_on_the_status_decided_last() {
        let writes = StatusWrites::default();
        let decided = HAPolicyStatus {
            observed_generation: Some(7),
            ..HAPolicyStatus::default()
        };
        writes.lock().insert(
            key(&policy_at("10")),
            Written {
                ours: ["9", "10"].map(String::from).to_vec(),
                status: HAPolicyStatus::default(),
            },
        );
        writes.decide(&policy_at("10"), decided.clone());
        for ours in ["9", "10"] {
            let latest = writes.latest(&policy_at(ours)).expect(ours);
            assert_eq!(latest.status, Some(decided.clone()), "{ours}");
            assert_eq!(latest.metadata.resource_version.as_deref(), Some(ours));
        }
        assert!(
            writes.latest(&policy_at("11")).is_none(),
            "someone else wrote"
        );
        let mut caught_up = policy_at("10");
        caught_up.status = Some(decided);
        assert!(
            writes.latest(&caught_up).is_none(),
            "the cache shows it already"
        );
    }

    fn entry(name: &str) -> crate::api::WorkloadStatus {
        serde_json::from_value(serde_json::json!({
            "kind": "Deployment", "name": name, "replicas": 1, "balanced": true
        }))
        .unwrap()
    }

    /// The names of the workload entries a status write sent, and the version it built on.
    fn sent(body: &[u8]) -> (Vec<String>, String) {
        let body: serde_json::Value = serde_json::from_slice(body).unwrap();
        let names = (body["status"]["workloads"].as_array().unwrap().iter())
            .map(|w| w["name"].as_str().unwrap().to_string())
            .collect();
        let version = body["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default();
        (names, version.to_string())
    }

    fn answer(code: u16, version: &str) -> http::Response<kube::client::Body> {
        let mut policy = serde_json::to_value(policy_at(version)).unwrap();
        if code != 200 {
            policy = serde_json::json!({"kind": "Status", "apiVersion": "v1", "code": code,
                "status": "Failure", "reason": "Conflict", "message": "changed"});
        }
        http::Response::builder()
            .status(code)
            .body(kube::client::Body::from(
                serde_json::to_vec(&policy).unwrap(),
            ))
            .unwrap()
    }

    /// Three in-flight records of one policy: the first goes out alone; the two that waited for
    /// its turn go out together, on the version it made; a write that carried a waiting change and
    /// failed leaves that change to be written again by its own caller.
    #[tokio::test]
    async fn writes_that_wait_for_their_turn_go_out_together() {
        let (service, mut api) = tower_test::mock::pair::<
            http::Request<kube::client::Body>,
            http::Response<kube::client::Body>,
        >();
        let client = Client::new(service, "default");
        let writes = Arc::new(StatusWrites::default());
        let policy = Arc::new(policy_at("10"));
        let write = |name: &'static str| {
            let (writes, client, policy) = (writes.clone(), client.clone(), policy.clone());
            tokio::spawn(async move {
                let entry = entry(name);
                (writes.write_onto(&client, &policy, move |base| {
                    crate::core::policy_status::with_workload(base, entry.clone())
                }))
                .await
            })
        };
        let a = write("a");
        let (request, respond) = api.next_request().await.unwrap();
        let body = request.into_body().collect_bytes().await.unwrap();
        assert_eq!(sent(&body), (vec!["a".to_string()], "10".to_string()));
        let (b, c) = (write("b"), write("c"));
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        respond.send_response(answer(200, "11"));
        a.await.unwrap().unwrap();
        let (request, respond) = api.next_request().await.unwrap();
        let body = request.into_body().collect_bytes().await.unwrap();
        let all = ["a", "b", "c"].map(String::from).to_vec();
        assert_eq!(sent(&body), (all.clone(), "11".to_string()));
        respond.send_response(answer(200, "12"));
        b.await.unwrap().unwrap();
        c.await.unwrap().unwrap();

        // The next two wait behind a write that fails: each is then written on its own.
        let d = write("d");
        let (_, respond) = api.next_request().await.unwrap();
        let (e, f) = (write("e"), write("f"));
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        respond.send_response(answer(500, ""));
        assert!(d.await.unwrap().is_err());
        let (request, respond) = api.next_request().await.unwrap();
        let body = request.into_body().collect_bytes().await.unwrap();
        assert_eq!(sent(&body).1, "12");
        respond.send_response(answer(409, ""));
        let (request, respond) = api.next_request().await.unwrap();
        let body = request.into_body().collect_bytes().await.unwrap();
        assert_eq!(sent(&body).0.len(), all.len() + 1, "one change alone");
        respond.send_response(answer(200, "13"));
        let results = [e.await.unwrap().is_ok(), f.await.unwrap().is_ok()];
        assert_eq!(results.iter().filter(|ok| **ok).count(), 1, "{results:?}");

        // Two asked for within the linger of each other, nothing in flight: one write.
        let (g, h) = (write("g"), write("h"));
        let (request, respond) = api.next_request().await.unwrap();
        let body = request.into_body().collect_bytes().await.unwrap();
        let (names, version) = sent(&body);
        assert_eq!(version, "13");
        assert!(
            names.ends_with(&["g".to_string(), "h".to_string()]),
            "{names:?}"
        );
        respond.send_response(answer(200, "14"));
        g.await.unwrap().unwrap();
        h.await.unwrap().unwrap();
    }
}
