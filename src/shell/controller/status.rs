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
    /// The policy's resourceVersion in the cache when it was written.
    cached: String,
    /// The resourceVersion the write made.
    made: String,
    status: HAPolicyStatus,
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
            Some(w) if cached.as_deref() == Some(w.cached.as_str()) => Base {
                status: Some(w.status.clone()),
                resource_version: Some(w.made.clone()),
            },
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
        if let (Some(cached), Some(made)) = (policy.resource_version(), written.resource_version())
        {
            self.lock().insert(
                key(policy),
                Written {
                    cached,
                    made,
                    status: status.clone(),
                },
            );
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
