//! Leader election on a Lease (kube-lease-manager): only the leader writes; the others keep
//! their caches warm and take over within the lease duration.

use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::api::FIELD_MANAGER;

/// What a lease manager is built from, kept to build a fresh one after an error.
struct LeaseSettings {
    client: Client,
    name: String,
    namespace: String,
    identity: String,
    duration_seconds: u64,
}

impl LeaseSettings {
    async fn manager(&self) -> kube_lease_manager::Result<LeaseManager> {
        LeaseManagerBuilder::new(self.client.clone(), &self.name)
            .with_namespace(&self.namespace)
            .with_identity(&self.identity)
            .with_duration(self.duration_seconds)
            .with_grace((self.duration_seconds / 3).max(1))
            .with_field_manager(format!("{FIELD_MANAGER}-leader"))
            .build()
            .await
    }
}

/// Leadership as a watch channel, and the way to step down on shutdown.
pub struct Leadership {
    pub is_leader: watch::Receiver<bool>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    /// Keeps the channel of a replica that runs alone open.
    _alone: Option<watch::Sender<bool>>,
}

impl Leadership {
    /// Always the leader: for `--leader-elect=false`.
    pub fn alone() -> Self {
        let (tx, rx) = watch::channel(true);
        Self {
            is_leader: rx,
            stop: None,
            task: None,
            _alone: Some(tx),
        }
    }

    /// Joins the election for `lease_name` in `namespace`.
    pub async fn elect(
        client: Client,
        namespace: &str,
        lease_name: &str,
        identity: &str,
        duration_seconds: u64,
    ) -> kube_lease_manager::Result<Self> {
        let lease = LeaseSettings {
            client,
            name: lease_name.to_string(),
            namespace: namespace.to_string(),
            identity: identity.to_string(),
            duration_seconds,
        };
        let mut manager = lease.manager().await?;
        info!(lease = lease_name, %namespace, identity, "joined leader election");
        let (tx, rx) = watch::channel(false);
        let (stop, mut stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    biased;
                    _ = &mut stopped => break,
                    changed = manager.changed() => match changed {
                        Ok(leading) => {
                            let _ = tx.send(leading);
                        }
                        Err(e) => {
                            // Unsure whether we still hold the lease: stop writing until we know.
                            warn!(error = %e, "leader election failed; retrying");
                            let _ = tx.send(false);
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            // A manager reports only changes from what it last believed, and it
                            // still believes it leads: a fresh one answers with the Lease as it is
                            // (the API server may come back with us still holding it).
                            match lease.manager().await {
                                Ok(fresh) => manager = fresh,
                                Err(e) => warn!(error = %e, "leader election: no new lease manager yet"),
                            }
                        }
                    },
                }
            }
            let _ = tx.send(false);
            match manager.release().await {
                Ok(()) => info!("lease released"),
                Err(e) => warn!(error = %e, "could not release the lease"),
            }
        });
        Ok(Self {
            is_leader: rx,
            stop: Some(stop),
            task: Some(task),
            _alone: None,
        })
    }

    /// Steps down and frees the Lease so another replica takes over at once.
    pub async fn release(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take()
            && let Err(e) = task.await
        {
            warn!(error = %e, "leader election task failed");
        }
    }
}
