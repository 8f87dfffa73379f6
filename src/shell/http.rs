//! The operator's HTTP endpoints: `/metrics` for Prometheus, `/healthz` and `/readyz` for the kubelet.
//!
//! Two routers, so the controller can serve them on two ports (`--metrics-addr`, a probe address) or
//! [`Router::merge`] them onto one, and one [`serve`] helper that stops on a shutdown future.
//! [`start_metrics`] serves `/metrics` as production wants it: HTTPS ([`crate::shell::tls`]) and only to
//! callers the API server says may `get /metrics` ([`crate::shell::metrics_auth`]); the probes stay plain
//! HTTP, as the kubelet expects.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tracing::{debug, error, info, warn};

use crate::shell::cli::RunArgs;
use crate::shell::conn_limits::{LimitedListener, Limits};
use crate::shell::liveness::WatchTasks;
use crate::shell::metrics::Metrics;
use crate::shell::metrics_auth::{Authorizer, Verdict};
use crate::shell::tls::{self, CurrentCert, TlsError, TlsListener};

/// The content type of the OpenMetrics text exposition.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Whether the operator is ready to serve: caches synced and the HAPolicy CRD present. Clones share
/// the same state. It starts not ready, with the reason "starting".
#[derive(Clone, Debug)]
pub struct Health {
    not_ready: Arc<RwLock<Option<String>>>,
    /// The watch tasks `/healthz` answers for.
    tasks: WatchTasks,
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
            tasks: WatchTasks::default(),
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

    /// The registry the watch tasks report into (see [`crate::shell::liveness`]).
    pub fn watch_tasks(&self) -> WatchTasks {
        self.tasks.clone()
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

/// `GET /metrics` for callers `auth` allows: 401 without an accepted bearer token, 403 when its user
/// may not `get /metrics`, 500 when the API server cannot be asked. Other paths answer 404 unchecked.
pub fn authorized_metrics_router(metrics: Metrics, auth: Authorizer) -> Router {
    metrics_router(metrics).route_layer(from_fn_with_state(auth, require_metrics_reader))
}

async fn require_metrics_reader(
    State(auth): State<Authorizer>,
    request: Request,
    next: Next,
) -> Response {
    match auth
        .authorize(request.headers().get(header::AUTHORIZATION))
        .await
    {
        Ok(Verdict::Allowed { username }) => {
            debug!(%username, "scrape allowed");
            next.run(request).await
        }
        Ok(refused) => {
            let message = refused.message();
            debug!(status = %refused.status(), message = message.trim_end(), "scrape refused");
            let mut response = (refused.status(), refused.message()).into_response();
            if refused.status() == StatusCode::UNAUTHORIZED {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            if refused.status() == StatusCode::TOO_MANY_REQUESTS {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            response
        }
        Err(e) => {
            warn!(error = %e, "cannot check a scrape's credentials");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot check the credentials; see the operator's log\n",
            )
                .into_response()
        }
    }
}

/// How `/metrics` is served (`skewguard run --metrics-*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsServing {
    pub addr: SocketAddr,
    /// HTTPS and token checks; `false` is plain, open HTTP (local runs).
    pub secure: bool,
    /// `tls.crt` and `tls.key` to serve; `None` makes a self-signed certificate for `cert_names`.
    pub cert_dir: Option<PathBuf>,
    pub cert_names: Vec<String>,
}

impl MetricsServing {
    /// From the flags; the self-signed certificate names localhost and the metrics Service in the
    /// operator's namespace.
    pub fn from_args(args: &RunArgs) -> Self {
        let ns = &args.lease_namespace;
        MetricsServing {
            addr: args.metrics_addr,
            secure: args.metrics_secure,
            cert_dir: args.metrics_cert_dir.clone(),
            cert_names: vec![
                "localhost".to_string(),
                "127.0.0.1".to_string(),
                "skewguard-metrics".to_string(),
                format!("skewguard-metrics.{ns}.svc"),
                format!("skewguard-metrics.{ns}.svc.cluster.local"),
            ],
        }
    }
}

/// Why `/metrics` could not be served.
#[derive(Debug, thiserror::Error)]
pub enum MetricsServerError {
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, #[source] std::io::Error),
    #[error("metrics TLS: {0}")]
    Tls(#[from] TlsError),
    #[error("--metrics-cert-dir needs --metrics-secure (HTTPS)")]
    CertDirWithoutTls,
}

/// Binds `serving.addr` and serves `/metrics` in the background until `shutdown`; returns the
/// bound address. Secure serving checks tokens with `client` (the operator's own credentials).
pub async fn start_metrics(
    serving: &MetricsServing,
    client: kube::Client,
    metrics: Metrics,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<SocketAddr, MetricsServerError> {
    if !serving.secure && serving.cert_dir.is_some() {
        return Err(MetricsServerError::CertDirWithoutTls);
    }
    // The certificate first: a bad Secret fails the start before the port is taken.
    let cert = match (&serving.cert_dir, serving.secure) {
        (_, false) => None,
        (Some(dir), true) => Some(CurrentCert::new(tls::load_dir(dir)?)),
        (None, true) => Some(CurrentCert::new(tls::self_signed(
            serving.cert_names.clone(),
        )?)),
    };
    let listener = TcpListener::bind(serving.addr)
        .await
        .map_err(|e| MetricsServerError::Bind(serving.addr, e))?;
    let bound = listener
        .local_addr()
        .map_err(|e| MetricsServerError::Bind(serving.addr, e))?;
    let Some(cert) = cert else {
        warn!(addr = %bound, "serving metrics over plain HTTP to anyone (--metrics-secure=false)");
        tokio::spawn(async move {
            if let Err(e) = serve(listener, metrics_router(metrics), shutdown).await {
                error!(error = %e, "metrics server failed");
            }
        });
        return Ok(bound);
    };
    let config = tls::server_config(cert.clone())?;
    let listener = TlsListener::new(listener, config, Limits::default())
        .map_err(|e| MetricsServerError::Bind(serving.addr, e))?;
    let watcher = serving
        .cert_dir
        .clone()
        .map(|dir| tokio::spawn(tls::watch_dir(dir, cert)));
    let router = authorized_metrics_router(metrics, Authorizer::new(client));
    let certificate = serving
        .cert_dir
        .as_ref()
        .map_or("self-signed".to_string(), |d| d.display().to_string());
    info!(addr = %bound, %certificate, "serving metrics over HTTPS to callers allowed to get /metrics");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await
        {
            error!(error = %e, "metrics server failed");
        }
        if let Some(w) = watcher {
            w.abort();
        }
    });
    Ok(bound)
}

/// `GET /healthz` (200 while every watch task is alive and getting on, else 503 and which is not)
/// and `GET /readyz` (200 when ready, else 503 and why).
pub fn health_router(health: Health) -> Router {
    Router::new()
        .route("/healthz", get(live))
        .route("/readyz", get(ready))
        .with_state(health)
}

/// Serves `router` on `listener` (under the [`Limits`]) until `shutdown` completes, then finishes
/// the requests in flight.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(LimitedListener::new(listener, Limits::default()), router)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn scrape(State(metrics): State<Metrics>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)],
        metrics.encode(),
    )
}

async fn live(State(health): State<Health>) -> impl IntoResponse {
    match health.tasks.check() {
        Ok(()) => (StatusCode::OK, "ok".to_string()),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason),
    }
}

async fn ready(State(health): State<Health>) -> impl IntoResponse {
    match health.readiness() {
        Ok(()) => (StatusCode::OK, "ok".to_string()),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason),
    }
}
