//! The one gate every write goes through: a client whose non-read requests (evictions, applies,
//! patches, deletions, Events, status) are sent only while this process holds the lease *now*, by
//! monotonic time, and each within a timeout. The reconcile also stops at once when the lease is
//! lost ([`Fence::lost`]), so no step is half carried out by a process that no longer leads.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Method, Request, Response};
use kube::Client;
use kube::client::Body;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::core::lease::Holding;

/// Longest a write may take; one that hangs no longer holds the reconcile (or a stale leader's
/// write) open.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// A write refused by the gate.
#[derive(Debug, thiserror::Error)]
pub enum Fenced {
    #[error("not sent: this process does not hold the leader lease now")]
    NotLeading,
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
}

/// Whether this process holds the lease, shared by the election (which moves it) and every
/// writer (which reads it).
#[derive(Clone, Debug)]
pub struct Fence {
    holding: Arc<watch::Sender<Holding>>,
}

impl Fence {
    pub fn new(holding: Holding) -> Self {
        Self {
            holding: Arc::new(watch::Sender::new(holding)),
        }
    }

    /// Always open: `--leader-elect=false`.
    pub fn alone() -> Self {
        Self::new(Holding::Alone)
    }

    /// Closed until the election opens it.
    pub fn closed() -> Self {
        Self::new(Holding::Not)
    }

    pub fn set(&self, holding: Holding) {
        self.holding.send_replace(holding);
    }

    pub fn holding(&self) -> Holding {
        *self.holding.borrow()
    }

    /// Whether a write may go out now.
    pub fn held(&self) -> bool {
        self.holding().held_at(Instant::now())
    }

    /// The gate: `Ok` only while the lease is held now.
    pub fn check(&self) -> Result<(), Fenced> {
        if self.held() {
            Ok(())
        } else {
            Err(Fenced::NotLeading)
        }
    }

    /// Resolves once the lease is not held: at once when it is not, else when its renew deadline
    /// passes without a renewal, or the election gives it up.
    pub async fn lost(&self) {
        let mut rx = self.holding.subscribe();
        loop {
            let holding = *rx.borrow_and_update();
            match holding {
                Holding::Not => return,
                Holding::Until(until) if Instant::now() >= until => return,
                Holding::Until(until) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(until) => {}
                        _ = rx.changed() => {}
                    }
                }
                Holding::Alone => {
                    if rx.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
            }
        }
    }

    /// `client` behind the gate: reads pass, writes are refused unless the lease is held now, and
    /// time out after [`WRITE_TIMEOUT`].
    pub fn gate(&self, client: Client) -> Client {
        let namespace = client.default_namespace().to_string();
        Client::new(
            Gate {
                inner: client,
                fence: self.clone(),
            },
            namespace,
        )
    }
}

/// Whether a refused or timed-out write came from the gate.
pub fn is_fenced(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Service(e) if e.downcast_ref::<Fenced>().is_some())
}

#[derive(Clone)]
struct Gate {
    inner: Client,
    fence: Fence,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<Request<Body>> for Gate {
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let (client, fence) = (self.inner.clone(), self.fence.clone());
        Box::pin(async move {
            if matches!(
                *request.method(),
                Method::GET | Method::HEAD | Method::OPTIONS
            ) {
                return client.send(request).await.map_err(BoxError::from);
            }
            fence.check()?;
            match tokio::time::timeout(WRITE_TIMEOUT, client.send(request)).await {
                Ok(answer) => answer.map_err(BoxError::from),
                Err(_) => Err(Fenced::TimedOut(WRITE_TIMEOUT).into()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn lost_resolves_when_the_deadline_passes_without_a_renewal() {
        let fence = Fence::new(Holding::Until(Instant::now() + Duration::from_secs(10)));
        assert!(fence.check().is_ok());
        let lost = tokio::spawn({
            let fence = fence.clone();
            async move { fence.lost().await }
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        // A renewal moves the deadline.
        fence.set(Holding::Until(Instant::now() + Duration::from_secs(10)));
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert!(!lost.is_finished());
        assert!(fence.check().is_ok());
        tokio::time::sleep(Duration::from_secs(5)).await;
        lost.await.unwrap();
        assert!(matches!(fence.check(), Err(Fenced::NotLeading)));
    }
}
