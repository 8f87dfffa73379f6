//! The imperative shell: watches the cluster, hands what it sees to the core, carries out what
//! comes back.

pub mod actuate;
pub mod admission;
pub mod by_namespace;
pub mod context;
pub mod events;
pub mod pod_index;
pub mod reconcile;
pub mod status;
pub mod stores;
pub mod writer;

use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use kube::api::{Api, ListParams};
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::api::HAPolicy;
use crate::shell::cli::RunArgs;
use crate::shell::http::{Health, MetricsServing, health_router, serve, start_metrics};
use crate::shell::leader::Leadership;
use crate::shell::metrics::Metrics;

use context::{Context, Limits, Settings};

/// Why the controller could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("no usable Kubernetes configuration (in-cluster or KUBECONFIG): {0}")]
    Config(#[source] kube::Error),
    #[error(
        "the HAPolicy CRD (hapolicies.skewguard.dev) is not installed: install it with `kubectl apply -k config/crd` (or `skewguard crd | kubectl apply -f -`)"
    )]
    CrdMissing,
    #[error("cannot reach the API server: {0}")]
    Api(#[source] kube::Error),
    #[error("cannot listen on {0}: {1}")]
    Bind(std::net::SocketAddr, #[source] std::io::Error),
    #[error("metrics endpoint: {0}")]
    Metrics(#[source] crate::shell::http::MetricsServerError),
}

/// How long a reconcile waits for its workloads' writes: on a quiet API server they are done well
/// within it; on a saturated one they go on beside the next reconciles ([`writer`]).
const WRITES_WAITED_FOR: Duration = Duration::from_millis(100);

/// Runs the controller until SIGTERM/SIGINT.
pub async fn run(args: RunArgs) -> Result<(), RunError> {
    let client = client().await?;
    if let Some(namespace) = &args.namespace {
        warn!(
            namespace,
            "--namespace: node fit counts only this namespace's pods (other namespaces' requests \
             are not watched), so a node they fill may look free to a move"
        );
    }
    let policies: Api<HAPolicy> = match &args.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let metrics = Metrics::new();
    let health = Health::new();
    let shutdown = shutdown_signal().shared();
    start_metrics(
        &MetricsServing::from_args(&args),
        client.clone(),
        metrics.clone(),
        shutdown.clone(),
    )
    .await
    .map_err(RunError::Metrics)?;
    serve_http(
        args.health_addr,
        health_router(health.clone()),
        shutdown.clone(),
    )
    .await?;
    health.set_not_ready("the HAPolicy CRD is not installed yet");
    check_crd(&policies).await?;
    health.set_not_ready("caches are syncing");
    let (stores, mut triggers) =
        stores::start(&client, args.namespace.as_deref(), &health.watch_tasks());

    let identity = args.identity.clone().unwrap_or_else(default_identity);
    let leadership = if args.leader_elect {
        Leadership::elect(
            client.clone(),
            &args.lease_namespace,
            &args.lease_name,
            &identity,
            args.lease_duration_seconds,
        )
    } else {
        Leadership::alone()
    };

    // No debounce: kube's debounce postpones a run at each new trigger, so a namespace whose pods
    // change more often than the debounce (a rebalance in progress: evictions, replacements
    // turning Ready) was reconciled only in its pauses, each workload's next step late by up to
    // the debounce or more. Triggers that come while a policy is being reconciled already
    // coalesce into one run after it.
    let controller = Controller::new(policies, watcher::Config::default())
        .with_config(ControllerConfig::default())
        .trigger_backoff(stores::watch_backoff());
    let policy_store = controller.store();
    let trigger_store = policy_store.clone();
    let requeues = futures::stream::poll_fn(move |cx| triggers.poll_recv(cx))
        .flat_map(move |t| futures::stream::iter(stores::policies_for(&trigger_store, &t)));
    let ctx = Arc::new(Context::new(
        client.clone(),
        stores,
        policy_store,
        leadership.fence.clone(),
        metrics.clone(),
        &identity,
        Limits {
            settings: Settings {
                dry_run: args.dry_run,
            },
            max_concurrent_rollouts: usize::try_from(args.max_concurrent_rollouts).unwrap_or(1),
            evictions_per_second: args.max_evictions_per_second,
            deletion_cost_writes_per_second: args.max_deletion_cost_writes_per_second,
            // Paced as evictions are, in a budget of their own: a Pending pod serves nothing,
            // and its deletion never waits for a workload's eviction.
            pending_deletions_per_second: args.max_evictions_per_second,
            writes_waited_for: WRITES_WAITED_FOR,
        },
    ));
    // Writes that end after their reconcile stopped waiting ask for their policy again.
    let wakes = ctx
        .wakes
        .take()
        .map(|mut rx| futures::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    let requeues = futures::stream::select(requeues, futures::stream::iter(wakes).flatten());
    probe_admission(&client, &ctx.admission, &metrics).await;
    info!("waiting for the caches to sync");
    wait_for_caches(&ctx.stores).await;
    info!("caches synced");
    health.set_ready();

    tokio::spawn(housekeeping(ctx.clone(), leadership.is_leader.clone()));
    tokio::spawn(watch_admission(ctx.clone()));
    // A change of what the cluster offers for admission mode may change every policy's mode.
    let admission_changed =
        futures::stream::unfold(ctx.admission.subscribe(), |mut rx| async move {
            rx.changed().await.ok()?;
            rx.borrow_and_update();
            Some(((), rx))
        });
    // On taking the lease, what this process remembers may be stale (the previous leader may
    // have acted since): forget it, so every reconcile reads the memory from the status first.
    let leading_ctx = ctx.clone();
    let became_leader =
        futures::stream::unfold(leadership.is_leader.clone(), |mut rx| async move {
            rx.changed().await.ok()?;
            let leading = *rx.borrow_and_update();
            info!(leading, "leadership changed");
            Some((leading, rx))
        })
        .filter_map(move |leading| {
            if leading {
                leading_ctx.forget_all();
            }
            futures::future::ready(leading.then_some(()))
        });

    controller
        .reconcile_on(requeues)
        .reconcile_all_on(futures::stream::select(became_leader, admission_changed))
        .graceful_shutdown_on(shutdown)
        .run(reconcile::reconcile, reconcile::error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                match e {
                    kube::runtime::controller::Error::ObjectNotFound(_) => {}
                    other => warn!(error = %other, "reconcile error"),
                }
            }
        })
        .await;
    info!("shutting down");
    leadership.release().await;
    Ok(())
}

/// Binds `addr` and serves `router` in the background until shutdown.
async fn serve_http(
    addr: std::net::SocketAddr,
    router: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| RunError::Bind(addr, e))?;
    info!(addr = %listener.local_addr().unwrap_or(addr), "serving HTTP");
    tokio::spawn(async move {
        if let Err(e) = serve(listener, router, shutdown).await {
            error!(error = %e, "HTTP server failed");
        }
    });
    Ok(())
}

/// Keeps true what no reconcile owns: policies per namespace, leadership, and everything
/// remembered about policies that were deleted (a deleted policy is never reconciled again).
async fn housekeeping(ctx: Arc<Context>, leader: tokio::sync::watch::Receiver<bool>) {
    let mut interval = tokio::time::interval(Duration::from_secs(5));
    loop {
        interval.tick().await;
        ctx.metrics.set_leader(*leader.borrow());
        let live: std::collections::BTreeSet<(String, String)> = ctx
            .policies
            .state()
            .iter()
            .map(|p| (p.namespace().unwrap_or_default(), p.name_any()))
            .collect();
        ctx.metrics.retain_policies(&live);
        ctx.forget_policies_except(&live);
    }
}

/// How often what the cluster offers for admission mode is read again.
const ADMISSION_PROBE_INTERVAL: Duration = Duration::from_secs(30);

/// Reads what the cluster offers for admission mode into `support` (kept as it was when the read
/// fails: a failed probe never changes a policy's mode).
async fn probe_admission(
    client: &Client,
    support: &watch::Sender<Option<crate::core::injection::AdmissionSupport>>,
    metrics: &Metrics,
) {
    match admission::probe(client).await {
        Ok(found) => {
            metrics.set_admission(&found);
            support.send_if_modified(|current| {
                let changed = current.as_ref() != Some(&found);
                if changed {
                    info!(
                        served = found.served,
                        policy = found.policy_installed,
                        binding = found.binding_installed,
                        warnings = found.warnings.len(),
                        "admission support"
                    );
                    *current = Some(found);
                }
                changed
            });
        }
        Err(e) => {
            warn!(error = %e, "cannot read whether admission policies are served and installed")
        }
    }
}

/// Reads admission support again every [`ADMISSION_PROBE_INTERVAL`] (every 5 s while unknown).
async fn watch_admission(ctx: Arc<Context>) {
    loop {
        let wait = if ctx.admission.borrow().is_some() {
            ADMISSION_PROBE_INTERVAL
        } else {
            Duration::from_secs(5)
        };
        tokio::time::sleep(wait).await;
        probe_admission(&ctx.client, &ctx.admission, &ctx.metrics).await;
    }
}

/// A client that does not retry 429s by itself: the Eviction API answers 429 when a
/// PodDisruptionBudget has no room, and the decision core must see that at once (kube's default
/// retries would hold the reconcile for minutes on the server's Retry-After).
async fn client() -> Result<Client, RunError> {
    let mut config = kube::Config::infer()
        .await
        .map_err(|e| RunError::Config(kube::Error::InferConfig(e)))?;
    config.default_retry = false;
    Client::try_from(config).map_err(RunError::Config)
}

async fn check_crd(policies: &Api<HAPolicy>) -> Result<(), RunError> {
    match policies
        .list_metadata(&ListParams::default().limit(1))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Err(RunError::CrdMissing),
        Err(e) => Err(RunError::Api(e)),
    }
}

async fn wait_for_caches(stores: &stores::Stores) {
    if !stores.wait_until_ready().await {
        error!("a cache stopped before it synced");
    }
}

fn default_identity() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| format!("skewguard-{}", std::process::id()))
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
