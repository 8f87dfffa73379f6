//! Writing a policy's status: a merge patch that carries the resourceVersion it was computed from,
//! so a stale leader (or a reconcile on a stale read) never overwrites a newer status; the API
//! server answers 409 instead. The cache lags this process's own writes, so the version and
//! status each write builds on are its own last write's until the cache has seen it.

use std::collections::HashMap;
use std::sync::Mutex;

use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};

use crate::api::{HAPolicy, HAPolicyStatus};
use crate::core::policy_status::status_patch;

/// How many of this process's versions of a policy are remembered.
const CHAIN: usize = 64;

/// This process's last status write per policy.
#[derive(Default)]
pub struct StatusWrites {
    written: Mutex<HashMap<(String, String), Written>>,
    /// One write at a time: a policy's workloads step side by side, and each eviction's
    /// in-flight record is written before it is sent; two writes on the same base would make
    /// the second a 409.
    turn: tokio::sync::Mutex<()>,
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

    /// Writes `status` unless it is what the base already holds; `Err` with 409 when the policy
    /// changed since the base was read.
    pub async fn write(
        &self,
        client: &Client,
        policy: &HAPolicy,
        status: &HAPolicyStatus,
    ) -> Result<(), kube::Error> {
        self.write_onto(client, policy, |_| status.clone()).await
    }

    /// Writes the status `change` makes of the current base (this process's last write, or the
    /// cached status), in turn with every other write of this process.
    pub async fn write_onto(
        &self,
        client: &Client,
        policy: &HAPolicy,
        change: impl FnOnce(Option<&HAPolicyStatus>) -> HAPolicyStatus,
    ) -> Result<(), kube::Error> {
        let _turn = self.turn.lock().await;
        let base = self.base(policy);
        let status = &change(base.status.as_ref());
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
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Written>> {
        self.written.lock().unwrap_or_else(|p| p.into_inner())
    }
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
}
