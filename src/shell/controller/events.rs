//! Publishing Events (events.k8s.io, through kube's Recorder) on the policy and the workload.
//! Which Events a reconcile warrants is decided in the pure pipeline ([`crate::core::pipeline::notices`]);
//! publishing never fails a reconcile.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder};
use tracing::warn;

use crate::core::pipeline::Notice;

/// Publishes on the workload (with the policy as related object) and on the policy (with the
/// workload); an Event about a pod has the pod as its related object on both.
pub async fn publish(
    recorder: &Recorder,
    notice: &Notice,
    workload: &ObjectReference,
    policy: &ObjectReference,
) {
    let subject = format!(
        "{} {}",
        workload.kind.as_deref().unwrap_or("workload"),
        workload.name.as_deref().unwrap_or_default()
    );
    let event = |secondary: &ObjectReference, note: String| Event {
        type_: if notice.warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: notice.reason.as_str().to_string(),
        note: Some(note),
        action: "Rebalance".to_string(),
        secondary: Some(secondary.clone()),
    };
    let pod = notice.pod.as_ref().map(|p| ObjectReference {
        api_version: Some("v1".to_string()),
        kind: Some("Pod".to_string()),
        name: Some(p.name.clone()),
        namespace: workload.namespace.clone(),
        uid: Some(p.uid.clone()),
        ..Default::default()
    });
    // On the policy the note names the workload, since one policy governs many.
    let on_workload = event(pod.as_ref().unwrap_or(policy), notice.note.clone());
    let on_policy = event(
        pod.as_ref().unwrap_or(workload),
        format!("{subject}: {}", notice.note),
    );
    for (ev, regarding) in [(on_workload, workload), (on_policy, policy)] {
        if let Err(e) = recorder.publish(&ev, regarding).await {
            warn!(error = %e, reason = notice.reason.as_str(), object = ?regarding.name, "could not publish event");
        }
    }
}

/// Publishes an Event about the policy itself (its zones' health).
pub async fn publish_on_policy(recorder: &Recorder, notice: &Notice, policy: &ObjectReference) {
    let event = Event {
        type_: if notice.warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: notice.reason.as_str().to_string(),
        note: Some(notice.note.clone()),
        action: "ZoneHealth".to_string(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&event, policy).await {
        warn!(error = %e, reason = notice.reason.as_str(), object = ?policy.name, "could not publish event");
    }
}
