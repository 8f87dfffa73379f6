//! The operator's HTTP endpoints: `/metrics` for Prometheus, `/healthz` and `/readyz` for the kubelet.
//!
//! Two routers, so the controller can serve them on two ports (`--metrics-addr`, a probe address) or
//! [`Router::merge`] them onto one, and one [`serve`] helper that stops on a shutdown future.

use std::future::Future;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::metrics::Metrics;

/// The content type of the OpenMetrics text exposition.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Whether the operator is ready to serve: caches synced and the HAPolicy CRD present. Clones share
/// the same state. It starts not ready, with the reason "starting".
#[derive(Clone, Debug)]
pub struct Health {
    not_ready: Arc<RwLock<Option<String>>>,
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

impl Health {
    pub fn new() -> Self {
        Health {
            not_ready: Arc::new(RwLock::new(Some("starting".to_string()))),
        }
    }

    pub fn set_ready(&self) {
        *self.write() = None;
    }

    /// Not ready, and why (e.g. "HAPolicy CRD not installed", "caches not synced").
    pub fn set_not_ready(&self, reason: impl Into<String>) {
        *self.write() = Some(reason.into());
    }

    /// `Ok` when ready, else the reason it is not.
    pub fn readiness(&self) -> Result<(), String> {
        let state = self.not_ready.read().unwrap_or_else(|p| p.into_inner());
        match &*state {
            None => Ok(()),
            Some(reason) => Err(reason.clone()),
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Option<String>> {
        self.not_ready.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// `GET /metrics`: the OpenMetrics text of `metrics`.
pub fn metrics_router(metrics: Metrics) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(metrics)
}

/// `GET /healthz` (200 while the process runs) and `GET /readyz` (200 when ready, else 503 and why).
pub fn health_router(health: Health) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(health)
}

/// Serves `router` on `listener` until `shutdown` completes, then finishes the requests in flight.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn scrape(State(metrics): State<Metrics>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)],
        metrics.encode(),
    )
}

async fn ready(State(health): State<Health>) -> impl IntoResponse {
    match health.readiness() {
        Ok(()) => (StatusCode::OK, "ok".to_string()),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason),
    }
}
