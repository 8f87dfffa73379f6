//! Writes that outlast their reconcile's wait: they go on beside the next reconciles, the workload
//! is not assessed again meanwhile, the move they recorded in flight stays in the status, and their
//! end asks for the policy again.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use kube::ResourceExt;
use serde_json::json;
use skewguard::shell::controller::context::Limits;
use skewguard::shell::controller::reconcile::reconcile;
use tokio::sync::watch;

use super::fake_api::{FakeApi, Hang, Recorded, Rule};
use super::fixtures::*;
use super::no_injection;

/// Status patches answered with a new resourceVersion each (from 42), as the API server does.
fn versioned_status() -> Rule {
    let version = Arc::new(AtomicU64::new(41));
    Box::new(move |r: &Recorded| {
        (r.is("PATCH", "/hapolicies/")).then(|| {
            let v = version.fetch_add(1, Ordering::SeqCst) + 1;
            (
                200,
                json!({"apiVersion": "skewguard.dev/v1alpha1", "kind": "HAPolicy",
                       "metadata": {"name": "petclinic", "namespace": NS,
                                    "resourceVersion": v.to_string()},
                       "spec": {"selector": {}, "spread": [{"topologyKey": "topology.kubernetes.io/zone"}]},
                       "status": r.body["status"].clone()}),
            )
        })
    })
}

#[tokio::test]
async fn a_slow_eviction_goes_on_beside_the_reconcile_and_asks_for_the_policy_again() {
    let (open, gate) = watch::channel(false);
    let evictions: Hang = Arc::new(|r: &Recorded| r.uri.contains("/eviction"));
    let (client, api) = FakeApi::start_gated(vec![versioned_status()], evictions, Some(gate));
    let mut p = policy("petclinic", "2026-01-01T00:00:00Z", no_injection());
    p.metadata.resource_version = Some("41".into());
    let ctx = context_with_limits(
        client,
        vec![p.clone()],
        vec![dynamic_deployment(&web(plain_template(), json!([])))],
        piled_pods(),
        vec![],
        Limits {
            writes_waited_for: Duration::from_millis(50),
            ..limits(false)
        },
    );
    let mut wakes = ctx.wakes.take().expect("the wakes are not taken yet");

    // The eviction is not answered: the reconcile finishes without it.
    reconcile(Arc::new(p.clone()), ctx.clone()).await.unwrap();
    assert_eq!(api.evictions(), 1, "sent, and unanswered");
    assert_eq!(ctx.busy.len(), 1);
    // Its last status write keeps the move in flight its writer recorded before evicting.
    let entry = &api.last_status()["workloads"][0];
    assert_eq!(
        entry["rebalance"]["memory"]["inFlight"][0]["pod"], "web-1",
        "{entry}"
    );

    // Meanwhile the workload is not assessed again: no second eviction, no second record.
    let writes = api.writes().len();
    reconcile(Arc::new(p.clone()), ctx.clone()).await.unwrap();
    assert_eq!(api.evictions(), 1);
    let records = (api.writes()[writes..].iter())
        .filter(|r| r.is("PATCH", "/status"))
        .filter(|r| r.body["status"]["workloads"][0]["rebalance"]["memory"]["inFlight"].is_null())
        .count();
    assert_eq!(records, 0, "no write drops the move in flight");

    // The eviction goes through: the writer keeps what it concluded and asks for the policy.
    open.send_replace(true);
    let woken = tokio::time::timeout(Duration::from_secs(5), wakes.recv())
        .await
        .expect("the writer asks for the policy again")
        .expect("a policy");
    assert_eq!(woken.name, p.name_any());
    assert!(ctx.busy.is_empty());
    reconcile(Arc::new(p), ctx.clone()).await.unwrap();
    assert_eq!(api.evictions(), 1, "the move waits for its replacement");
    let entry = &api.last_status()["workloads"][0];
    assert_eq!(entry["rebalance"]["actions"], 1, "{entry}");
    assert_eq!(
        entry["rebalance"]["memory"]["inFlight"][0]["pod"], "web-1",
        "{entry}"
    );
}

/// A status write that fails after the reconcile stopped waiting is counted, and asks for the
/// policy again as the error policy would have (a 409: a second later).
#[tokio::test]
async fn a_status_write_refused_after_the_reconcile_asks_for_the_policy_again() {
    let (open, gate) = watch::channel(false);
    let statuses: Hang = Arc::new(|r: &Recorded| r.is("PATCH", "/status"));
    let conflict: Rule = Box::new(|r: &Recorded| {
        r.is("PATCH", "/status").then(|| {
            (
                409,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 409,
                       "reason": "Conflict", "message": "the object has been modified"}),
            )
        })
    });
    let (client, api) = FakeApi::start_gated(vec![conflict], statuses, Some(gate));
    let p = policy("petclinic", "2026-01-01T00:00:00Z", no_injection());
    let ctx = context_with_limits(
        client,
        vec![p.clone()],
        vec![dynamic_deployment(&web(plain_template(), json!([])))],
        vec![pod("web-1", "a-1"), pod("web-2", "c-1")],
        vec![],
        Limits {
            writes_waited_for: Duration::from_millis(50),
            ..limits(false)
        },
    );
    let mut wakes = ctx.wakes.take().expect("the wakes are not taken yet");
    reconcile(Arc::new(p.clone()), ctx.clone())
        .await
        .expect("the reconcile does not wait for the answer");
    assert!(api.requests().iter().any(|r| r.is("PATCH", "/status")));
    assert!(wakes.try_recv().is_err(), "nothing failed yet");
    open.send_replace(true);
    let started = tokio::time::Instant::now();
    let woken = tokio::time::timeout(Duration::from_secs(5), wakes.recv())
        .await
        .expect("the failed write asks for the policy again")
        .expect("a policy");
    assert_eq!(woken.name, p.name_any());
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "after a second, not at once"
    );
    // Nothing was written: the next reconcile writes the status again (what it decided is not
    // taken for written), and its 409 comes within the wait this time.
    let status_patches = |api: &FakeApi| {
        (api.requests().iter())
            .filter(|r| r.is("PATCH", "/status"))
            .count()
    };
    let before = status_patches(&api);
    let again = reconcile(Arc::new(p.clone()), ctx.clone()).await;
    assert!(again.is_err(), "the conflict is the reconcile's own now");
    assert_eq!(status_patches(&api), before + 1);
    // Counted twice: by the write beside the first reconcile, and by the second reconcile.
    let errors = ctx.metrics.encode();
    assert!(
        errors.contains("skewguard_reconcile_errors_total{error=\"status\"} 2"),
        "{}",
        errors
            .lines()
            .filter(|l| l.contains("errors"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
