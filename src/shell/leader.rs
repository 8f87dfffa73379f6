//! Leader election on a Lease, as client-go's leaderelection does it: only the leader writes, the
//! others keep their caches warm and take over once the lease runs out. Holding is measured by
//! monotonic time ([`crate::core::lease`]) and kept in a [`Fence`], the gate every write goes
//! through: a renewal that hangs or fails closes it at its renew deadline, whatever the API server
//! answers later.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::{Client, ResourceExt};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::api::FIELD_MANAGER;
use crate::core::lease::{self, Holding, LeaseTiming, Observed, Record, Step};
use crate::shell::fence::Fence;

/// Leadership as a watch channel and a fence, and the way to step down on shutdown.
pub struct Leadership {
    pub is_leader: watch::Receiver<bool>,
    /// What every write checks.
    pub fence: Fence,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    /// Keeps the channel of a replica that runs alone open.
    _alone: Option<watch::Sender<bool>>,
}

/// Why an attempt on the Lease failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("lease {0}: {1}")]
    Api(String, #[source] kube::Error),
    #[error("lease {0}: no answer within {1:?}")]
    TimedOut(String, std::time::Duration),
}

/// One candidate: the Lease it competes for and what it last saw of it.
struct Candidate {
    api: Api<Lease>,
    name: String,
    identity: String,
    timing: LeaseTiming,
    observed: Option<Observed>,
}

/// What an attempt ended with.
enum Attempt {
    /// Ours, renewed (or taken) by a request sent at this instant.
    Held(Instant),
    /// Another holds it, or took it first.
    Other,
}

impl Leadership {
    /// Always the leader: for `--leader-elect=false`.
    pub fn alone() -> Self {
        let (tx, rx) = watch::channel(true);
        Self {
            is_leader: rx,
            fence: Fence::alone(),
            stop: None,
            task: None,
            _alone: Some(tx),
        }
    }

    /// Joins the election for `lease_name` in `namespace`; renews every retry period while it
    /// leads, and tries for the lease as often while it does not.
    pub fn elect(
        client: Client,
        namespace: &str,
        lease_name: &str,
        identity: &str,
        duration_seconds: u64,
    ) -> Self {
        let mut candidate = Candidate {
            api: Api::namespaced(client, namespace),
            name: lease_name.to_string(),
            identity: identity.to_string(),
            timing: LeaseTiming::of_seconds(duration_seconds),
            observed: None,
        };
        info!(lease = lease_name, %namespace, identity, "joined leader election");
        let fence = Fence::closed();
        let (tx, rx) = watch::channel(false);
        let (stop, mut stopped) = oneshot::channel::<()>();
        let task = tokio::spawn({
            let fence = fence.clone();
            async move {
                'elect: loop {
                    let timing = candidate.timing;
                    let (timeout, name) = (timing.attempt_timeout, candidate.name.clone());
                    let attempt = tokio::time::timeout(timeout, candidate.attempt());
                    tokio::pin!(attempt);
                    // An attempt that outlasts the renew deadline steps down when the deadline
                    // passes, not when the attempt gives up.
                    let result = loop {
                        let deadline = expiry(&fence);
                        tokio::select! {
                            biased;
                            _ = &mut stopped => break 'elect,
                            r = &mut attempt => break r.unwrap_or_else(|_| Err(LeaseError::TimedOut(name, timeout))),
                            _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                                fence.set(Holding::Not);
                                warn!("leader lease not renewed within its renew deadline: stopped writing");
                                tx.send_if_modified(|leading| std::mem::replace(leading, false));
                            }
                        }
                    };
                    match result {
                        Ok(Attempt::Held(sent)) => fence.set(Holding::renewed(sent, &timing)),
                        Ok(Attempt::Other) => fence.set(Holding::Not),
                        // Unsure whether the renewal went through: the fence closes by itself
                        // at the renew deadline of the last one that did.
                        Err(e) => warn!(error = %e, "leader election: attempt failed"),
                    }
                    tx.send_if_modified(|leading| {
                        let now = fence.held();
                        let changed = *leading != now;
                        *leading = now;
                        changed
                    });
                    // The next attempt, or the deadline passing, whichever comes first.
                    let next = Instant::now() + timing.retry_period;
                    let wake = expiry(&fence).map_or(next, |until| next.min(until));
                    tokio::select! {
                        biased;
                        _ = &mut stopped => break,
                        _ = tokio::time::sleep_until(wake) => {}
                    }
                    if !fence.held() {
                        fence.set(Holding::Not);
                        tx.send_if_modified(|leading| std::mem::replace(leading, false));
                    }
                }
                let held = fence.held();
                fence.set(Holding::Not);
                let _ = tx.send(false);
                if held {
                    let timeout = candidate.timing.attempt_timeout;
                    match tokio::time::timeout(timeout, candidate.release()).await {
                        Ok(Ok(())) => info!("lease released"),
                        Ok(Err(e)) => warn!(error = %e, "could not release the lease"),
                        Err(_) => warn!("could not release the lease: no answer in time"),
                    }
                }
            }
        });
        Self {
            is_leader: rx,
            fence,
            stop: Some(stop),
            task: Some(task),
            _alone: None,
        }
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

/// When the lease, held now, stops being held without a renewal.
fn expiry(fence: &Fence) -> Option<Instant> {
    match fence.holding() {
        Holding::Until(until) if until > Instant::now() => Some(until),
        _ => None,
    }
}

impl Candidate {
    fn error(&self, e: kube::Error) -> LeaseError {
        LeaseError::Api(self.name.clone(), e)
    }

    /// Reads the Lease, then renews it, takes it, or leaves it to its holder. Every write carries
    /// the resourceVersion it read, so two candidates never both succeed.
    async fn attempt(&mut self) -> Result<Attempt, LeaseError> {
        let sent = Instant::now();
        let Some(mut current) = self.read().await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..Default::default()
                },
                spec: Some(self.claim(None, true)),
            };
            return match self.api.create(&self.params(), &lease).await {
                Ok(_) => Ok(Attempt::Held(sent)),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(Attempt::Other),
                Err(e) => Err(self.error(e)),
            };
        };
        let spec = current.spec.clone().unwrap_or_default();
        let record = Record {
            holder: spec.holder_identity.clone(),
            duration_seconds: spec.lease_duration_seconds.unwrap_or(0),
            renew_time: spec.renew_time.as_ref().map(|t| t.0.to_string()),
        };
        let observed = lease::observe(self.observed.take(), record, Instant::now());
        let step = lease::next_step(&observed, &self.identity, Instant::now());
        self.observed = Some(observed);
        let acquire = match step {
            Step::Wait => return Ok(Attempt::Other),
            Step::Renew => false,
            Step::Acquire => true,
        };
        current.spec = Some(self.claim(Some(spec), acquire));
        match self.api.replace(&self.name, &self.params(), &current).await {
            Ok(_) => {
                if acquire {
                    info!(lease = %self.name, identity = %self.identity, "took the lease");
                }
                Ok(Attempt::Held(sent))
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Attempt::Other),
            Err(e) => Err(self.error(e)),
        }
    }

    /// The spec that holds the lease for this candidate from now.
    fn claim(&self, previous: Option<LeaseSpec>, acquire: bool) -> LeaseSpec {
        let now = MicroTime(jiff::Timestamp::now());
        let mut spec = previous.unwrap_or_default();
        if acquire {
            spec.acquire_time = Some(now.clone());
            spec.lease_transitions = Some(spec.lease_transitions.map_or(0, |t| t + 1));
        }
        spec.holder_identity = Some(self.identity.clone());
        spec.lease_duration_seconds =
            Some(i32::try_from(self.timing.duration.as_secs()).unwrap_or(i32::MAX));
        spec.renew_time = Some(now);
        spec
    }

    /// Gives the lease up if this candidate still holds it (as client-go does: no holder, a
    /// one-second duration), so another replica takes over at once.
    async fn release(&self) -> Result<(), LeaseError> {
        let Some(mut current) = self.read().await? else {
            return Ok(());
        };
        let mut spec = current.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(jiff::Timestamp::now()));
        current.spec = Some(spec);
        let name = current.name_any();
        match self.api.replace(&name, &self.params(), &current).await {
            // Taken or changed since it was read: not ours to give up.
            Ok(_) | Err(kube::Error::Api(_)) => Ok(()),
            Err(e) => Err(self.error(e)),
        }
    }

    async fn read(&self) -> Result<Option<Lease>, LeaseError> {
        self.api
            .get_opt(&self.name)
            .await
            .map_err(|e| self.error(e))
    }

    fn params(&self) -> PostParams {
        PostParams {
            field_manager: Some(format!("{FIELD_MANAGER}-leader")),
            ..Default::default()
        }
    }
}
