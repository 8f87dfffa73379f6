//! Leader election on a Lease (kube-lease-manager): only the leader writes; the others keep
//! their caches warm and take over within the lease duration.

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::constraints::FIELD_MANAGER;

/// Leadership as a watch channel, and what releases the Lease on shutdown.
pub struct Leadership {
    pub is_leader: watch::Receiver<bool>,
    task: Option<JoinHandle<kube_lease_manager::Result<LeaseManager>>>,
    /// Keeps the channel of a replica that runs alone open.
    _alone: Option<watch::Sender<bool>>,
}

impl Leadership {
    /// Always the leader: for `--leader-elect=false`.
    pub fn alone() -> Self {
        let (tx, rx) = watch::channel(true);
        Self {
            is_leader: rx,
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
        let manager = LeaseManagerBuilder::new(client, lease_name)
            .with_namespace(namespace)
            .with_identity(identity)
            .with_duration(duration_seconds)
            .with_grace((duration_seconds / 3).max(1))
            .with_field_manager(format!("{FIELD_MANAGER}-leader"))
            .build()
            .await?;
        let (is_leader, task) = manager.watch().await;
        info!(lease = lease_name, %namespace, identity, "joined leader election");
        Ok(Self {
            is_leader,
            task: Some(task),
            _alone: None,
        })
    }

    /// Steps down and frees the Lease so another replica takes over at once.
    pub async fn release(self) {
        let Some(task) = self.task else { return };
        // Dropping the receiver ends the manager's loop; it hands the manager back to release.
        drop(self.is_leader);
        match task.await {
            Ok(Ok(manager)) => {
                if let Err(e) = manager.release().await {
                    warn!(error = %e, "could not release the lease");
                } else {
                    info!("lease released");
                }
            }
            Ok(Err(e)) => warn!(error = %e, "leader election ended with an error"),
            Err(e) => warn!(error = %e, "leader election task failed"),
        }
    }
}
