//! Only a live leader writes: leader election on the fake API server with renewals that hang, the
//! write gate, and evictions that name the pod they were planned on.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use skewguard::core::topology::Move;
use skewguard::shell::controller::actuate;
use skewguard::shell::controller::reconcile::reconcile;
use skewguard::shell::fence::is_fenced;
use skewguard::shell::leader::Leadership;

use super::fake_api::{FakeApi, Hang, Recorded, Rule};
use super::fixtures::*;
use super::no_injection;

const LEASE: &str = "/namespaces/skewguard-system/leases";

/// A Lease kept by the fake: created, read and replaced (each write a new resourceVersion).
fn lease_store() -> Rule {
    let stored: Arc<Mutex<Option<Value>>> = Arc::default();
    Box::new(move |r: &Recorded| {
        if !r.uri.contains(LEASE) {
            return None;
        }
        let mut stored = stored.lock().unwrap();
        let answer = match r.method.as_str() {
            "GET" => match stored.as_ref() {
                Some(lease) => (200, lease.clone()),
                None => (
                    404,
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                           "code": 404, "reason": "NotFound", "message": "not found"}),
                ),
            },
            _ => {
                let version = stored.as_ref().map_or(0, |l| {
                    l["metadata"]["resourceVersion"]
                        .as_str()
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(0)
                });
                let mut lease = r.body.clone();
                lease["metadata"]["resourceVersion"] = json!((version + 1).to_string());
                lease["metadata"]["namespace"] = json!("skewguard-system");
                *stored = Some(lease.clone());
                (if r.method == "POST" { 201 } else { 200 }, lease)
            }
        };
        Some(answer)
    })
}

/// Lets the election's first attempts run (paused time moves on by itself).
async fn until(what: impl Fn() -> bool) {
    for _ in 0..100 {
        if what() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never happened");
}

/// Writes other than the Lease's, from the `from`th request on.
fn writes_since(api: &FakeApi, from: usize) -> Vec<Recorded> {
    api.requests()[from..]
        .iter()
        .filter(|r| r.method != "GET" && !r.uri.contains(LEASE))
        .cloned()
        .collect()
}

/// A fake whose Lease requests (and, when `status_hangs`, the policy's status patches) go
/// unanswered once `hanging` is set.
fn hanging_api(hanging: &Arc<AtomicBool>, status_hangs: bool) -> (kube::Client, FakeApi) {
    let flag = hanging.clone();
    let hang: Hang = Arc::new(move |r: &Recorded| {
        flag.load(Ordering::SeqCst)
            && (r.uri.contains(LEASE) || (status_hangs && r.uri.contains("/status")))
    });
    FakeApi::start_hanging(vec![lease_store()], hang)
}

/// Joins the election on the fake (a 15 s lease) and waits until it leads.
async fn leading(client: &kube::Client) -> Leadership {
    let leadership = Leadership::elect(
        client.clone(),
        "skewguard-system",
        "skewguard-leader",
        "a",
        15,
    );
    until(|| leadership.fence.held()).await;
    leadership
}

#[tokio::test(start_paused = true)]
async fn a_renewal_that_hangs_past_the_lease_lets_no_write_through() {
    let hanging = Arc::new(AtomicBool::new(false));
    let (client, api) = hanging_api(&hanging, false);
    let leadership = leading(&client).await;
    let p = policy("petclinic", "2026-01-01T00:00:00Z", no_injection());

    // Leading, the field scenario evicts.
    let ctx = piled_web_fenced(client.clone(), &p, piled_pods(), leadership.fence.clone());
    reconcile(Arc::new(p.clone()), ctx).await.unwrap();
    assert_eq!(api.evictions(), 1);

    // The renewals hang: past the renew deadline (10 s after the last renewal was sent) the
    // process stops writing, although no answer ever said it lost the lease.
    hanging.store(true, Ordering::SeqCst);
    let from = api.requests().len();
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert!(
        api.requests()[from..].iter().any(|r| r.uri.contains(LEASE)),
        "a renewal was sent and hangs"
    );
    assert!(!leadership.fence.held());
    assert!(!*leadership.is_leader.borrow());
    let ctx = piled_web_fenced(client.clone(), &p, piled_pods(), leadership.fence.clone());
    reconcile(Arc::new(p), ctx.clone()).await.unwrap();
    for _ in 0..200 {
        tokio::task::yield_now().await;
    }
    let writes = writes_since(&api, from);
    assert!(writes.is_empty(), "no write follows: {writes:#?}");

    // The gate itself: a write sent straight through the context's client is refused, unsent.
    let sent_before = api.requests().len();
    let m = Move {
        pod: "web-1".into(),
        pod_uid: "web-1-uid".into(),
        ..Default::default()
    };
    match actuate::evict(&ctx.client, NS, &m).await {
        skewguard::core::pipeline::WriteResult::Failed(e) => assert!(is_fenced(&e.source), "{e}"),
        other => panic!("not refused: {other:?}"),
    }
    assert_eq!(api.requests().len(), sent_before);
}

#[tokio::test(start_paused = true)]
async fn losing_the_lease_cancels_the_reconcile_in_flight() {
    let hanging = Arc::new(AtomicBool::new(false));
    let (client, api) = hanging_api(&hanging, true);
    let leadership = leading(&client).await;
    // Renewals and the status write before the eviction hang: the reconcile, started while
    // leading, is stopped when the lease's renew deadline passes, and never evicts.
    hanging.store(true, Ordering::SeqCst);
    let p = policy("petclinic", "2026-01-01T00:00:00Z", no_injection());
    let ctx = piled_web_fenced(client, &p, piled_pods(), leadership.fence.clone());
    let started = tokio::time::Instant::now();
    let requeue = reconcile(Arc::new(p), ctx).await.unwrap();
    assert_eq!(requeue, kube::runtime::controller::Action::await_change());
    assert!(started.elapsed() <= Duration::from_secs(10));
    assert!(
        api.requests().iter().any(|r| r.uri.contains("/status")),
        "the in-flight record was being written"
    );
    assert_eq!(api.evictions(), 0);
}

#[tokio::test]
async fn an_eviction_names_its_pod_by_uid_and_version_after_recording_it_in_flight() {
    let (client, api) = FakeApi::start(vec![]);
    let mut p = policy("petclinic", "2026-01-01T00:00:00Z", no_injection());
    p.metadata.resource_version = Some("41".into());
    let pods = vec![
        pod_with_version("web-1", "c-1", "uid-1", "7"),
        pod_with_version("web-2", "c-1", "uid-2", "8"),
    ];
    let ctx = piled_web_fenced(client, &p, pods, skewguard::shell::fence::Fence::alone());
    reconcile(Arc::new(p), ctx).await.unwrap();
    let writes = api.writes();
    let eviction = (writes.iter().position(|r| r.is("POST", "/eviction"))).expect("an eviction");
    let preconditions = &writes[eviction].body["deleteOptions"]["preconditions"];
    assert_eq!(preconditions["uid"], "uid-1");
    assert_eq!(preconditions["resourceVersion"], "7");
    // Before it: the status, on the policy's resourceVersion, with the move in flight.
    let record = &writes[eviction - 1];
    assert!(
        record.is("PATCH", "/hapolicies/petclinic/status"),
        "{record:?}"
    );
    assert_eq!(record.body["metadata"]["resourceVersion"], "41");
    let in_flight = &record.body["status"]["workloads"][0]["rebalance"]["memory"]["inFlight"];
    assert_eq!(in_flight[0]["pod"], "web-1");
    assert_eq!(in_flight[0]["podUid"], "uid-1");
}

/// Answers an eviction whose uid precondition is not `uid` as the API server does.
fn replaced_by(uid: &'static str) -> Rule {
    Box::new(move |r: &Recorded| {
        (r.uri.contains("/eviction")
            && r.body["deleteOptions"]["preconditions"]["uid"] != json!(uid))
        .then(|| {
            (
                409,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 409,
                       "reason": "Conflict",
                       "message": format!("Precondition failed: UID in object meta: {uid}")}),
            )
        })
    })
}

#[tokio::test]
async fn a_pod_replaced_under_its_name_is_not_evicted() {
    // The snapshot still has web-1 as uid-1; the API server has its replacement, uid-new.
    let (client, api) = FakeApi::start(vec![replaced_by("uid-new")]);
    let p = policy("petclinic", "2026-01-01T00:00:00Z", no_injection());
    let pods = vec![
        pod_with_version("web-1", "c-1", "uid-1", "7"),
        pod_with_version("web-2", "c-1", "uid-2", "8"),
    ];
    let ctx = piled_web_fenced(client, &p, pods, skewguard::shell::fence::Fence::alone());
    reconcile(Arc::new(p), ctx).await.unwrap();
    assert_eq!(api.evictions(), 1, "one eviction was asked for");
    // Refused on its uid: nothing counted, nothing left in flight, no PodEvicted.
    let status = api.last_status();
    let rebalance = &status["workloads"][0]["rebalance"];
    assert_eq!(rebalance["actions"], 0, "{rebalance}");
    assert!(rebalance["memory"]["inFlight"].is_null(), "{rebalance}");
    let reasons = api.event_reasons().await;
    assert!(!reasons.contains(&"PodEvicted".to_string()), "{reasons:?}");
}
