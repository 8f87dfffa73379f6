//! Nothing stays stranded (pure): which Pending pods of a workload are deleted so that their
//! replacements are admitted with the relaxed form of an Adaptive entry.
//!
//! A pod is stranded when all of this holds:
//! - it is one of the workload's (its pod selector, its namespace), unbound, Pending, not being
//!   deleted, not Ready (a Pending pod serves nothing: deleting it costs no availability, which
//!   is what a PodDisruptionBudget protects), and no placeholder of skewguard's;
//! - the scheduler said why (`PodScheduled` False, reason `Unschedulable`) and its message counts
//!   nodes turned down only by a topology spread constraint: those nodes passed every filter
//!   before it (taints, affinity, room, volumes), so the pod is Pending because of the spread,
//!   not for want of room, a volume or an affinity;
//! - the pod itself carries a DoNotSchedule constraint on a key whose Adaptive entry has a zone
//!   Out now;
//! - the entry the admission policy reads (the status already written) publishes that key
//!   relaxed (ScheduleAnyway) since at least [`RELAXED_GRACE`]: the replacement will get it. Until
//!   then the pod waits, and the workload is looked at again when the grace is over.

use std::collections::BTreeSet;
use std::time::Duration;

use jiff::Timestamp;

use crate::api::{AdmittedWorkload, PodWhenUnsatisfiable};
use crate::core::topology::{Cluster, Workload};

use super::pipeline::StrandedPod;

/// How long after a relaxed entry is published its workload's stranded pods are deleted: the API
/// server's admission plugin sees the policy's status through its own watch, usually within a
/// second, and `since` is in whole seconds.
pub const RELAXED_GRACE: Duration = Duration::from_secs(2);

/// What the admission policy reads of the workload.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Published<'a> {
    /// The workload's entry in the status already written (`None`: none).
    Entry(Option<&'a AdmittedWorkload>),
    /// Nothing is published (paused, --dry-run): what would be deleted is told as if the relaxed
    /// form were.
    Assumed,
}

/// From when the admission policy adds `key`'s constraint in `form` (the entry's `since` plus
/// [`RELAXED_GRACE`]); `None`: it is not published so.
pub fn seen_at(
    published: Published<'_>,
    key: &str,
    form: PodWhenUnsatisfiable,
) -> Option<Timestamp> {
    let entry = match published {
        Published::Entry(entry) => entry?,
        Published::Assumed => return Some(Timestamp::MIN),
    };
    (entry.constraints.iter())
        .any(|c| c.topology_key == key && c.when_unsatisfiable == form)
        .then_some(entry.since.0)?
        .checked_add(jiff::SignedDuration::try_from(RELAXED_GRACE).ok()?)
        .ok()
}

/// How long until `key`'s constraint is added in `form` (zero: it is now; at least a second
/// otherwise, [`RELAXED_GRACE`] while it is not published so).
pub fn until_seen(
    published: Published<'_>,
    key: &str,
    form: PodWhenUnsatisfiable,
    now: Timestamp,
) -> Duration {
    match seen_at(published, key, form) {
        Some(at) if at <= now => Duration::ZERO,
        Some(at) => (at.duration_since(now).try_into())
            .unwrap_or(RELAXED_GRACE)
            .max(Duration::from_secs(1)),
        None => RELAXED_GRACE,
    }
}

/// The stranded pods to delete now, and when to look again for those that must wait for the
/// relaxed entry to be published (`None`: none waits).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stranded {
    pub delete: Vec<StrandedPod>,
    pub wait: Option<Duration>,
}

/// The workload's stranded pods (see the module doc). `out_keys`: the keys of the policy's
/// Adaptive entries with a zone Out; `published`: what the admission policy reads now.
pub fn stranded_pods(
    cluster: &Cluster,
    workload: &Workload,
    out_keys: &BTreeSet<String>,
    published: Published<'_>,
    now: Timestamp,
) -> Stranded {
    let mut out = Stranded::default();
    if out_keys.is_empty() {
        return out;
    }
    for pod in cluster.pods() {
        let Some(unschedulable) = &pod.unschedulable else {
            continue;
        };
        if pod.namespace != workload.namespace
            || pod.node_name.is_some()
            || pod.terminating
            || pod.finished
            || pod.ready
            || pod.placeholder
            || !unschedulable.by_spread
            || !workload.owns(pod)
        {
            continue;
        }
        let Some(key) = (pod.hard_spread_keys.iter()).find(|k| out_keys.contains(*k)) else {
            continue;
        };
        let relaxed = PodWhenUnsatisfiable::ScheduleAnyway;
        match until_seen(published, key, relaxed, now) {
            Duration::ZERO => out.delete.push(StrandedPod {
                pod: pod.name.clone(),
                uid: pod.uid.clone(),
                topology_key: key.clone(),
                pending_seconds: if pod.created > 0 {
                    (now.as_second() - pod.created).max(0)
                } else {
                    0
                },
            }),
            left => out.wait = Some(out.wait.map_or(left, |w| w.min(left))),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};

    use super::*;
    use crate::api::{AdmittedConstraint, NodeInclusionPolicy, WorkloadKind};
    use crate::core::topology::fixtures::{self, constraint, labels, node};
    use crate::core::topology::{Pod, Unschedulable, ZONE_KEY};

    const NS: &str = "shop";

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn web() -> Workload {
        fixtures::workload(NS, "web", vec![constraint(ZONE_KEY, 1, "web")])
    }

    /// A Pending pod of web, admitted with DoNotSchedule on the zone key, that the scheduler left
    /// Pending for the spread.
    fn stranded(name: &str) -> Pod {
        Pod {
            node_name: None,
            ready: false,
            created: at(-30).as_second(),
            spread_keys: vec![ZONE_KEY.into()],
            hard_spread_keys: vec![ZONE_KEY.into()],
            unschedulable: Some(Unschedulable {
                by_spread: true,
                since: at(-29).as_second(),
            }),
            ..fixtures::pod(name, NS, "web", "unused")
        }
    }

    fn published(when: PodWhenUnsatisfiable, since: i64) -> AdmittedWorkload {
        AdmittedWorkload {
            kind: WorkloadKind::Deployment,
            name: "web".into(),
            pod_selector: LabelSelector::default(),
            constraints: vec![AdmittedConstraint {
                topology_key: ZONE_KEY.into(),
                max_skew: 1,
                when_unsatisfiable: when,
                min_domains: None,
                label_selector: LabelSelector::default(),
                match_label_keys: None,
                node_affinity_policy: NodeInclusionPolicy::Honor,
                node_taints_policy: NodeInclusionPolicy::Honor,
            }],
            anti_affinity: None,
            since: Time(at(since)),
        }
    }

    fn out() -> BTreeSet<String> {
        BTreeSet::from([ZONE_KEY.to_string()])
    }

    fn names(s: &Stranded) -> Vec<&str> {
        s.delete.iter().map(|p| p.pod.as_str()).collect()
    }

    #[test]
    fn only_pods_pending_for_the_hard_spread_of_an_out_zone_are_deleted() {
        let running = fixtures::pod("web-0", NS, "web", "b-0");
        let mut no_room = stranded("no-room");
        no_room.unschedulable = Some(Unschedulable {
            by_spread: false,
            since: 0,
        });
        let mut relaxed_already = stranded("relaxed");
        relaxed_already.hard_spread_keys.clear();
        let mut other_app = stranded("other");
        other_app.labels = labels(&[("app", "api")]);
        let mut elsewhere = stranded("elsewhere");
        elsewhere.namespace = "other".into();
        let mut deleting = stranded("deleting");
        deleting.terminating = true;
        let mut placeholder = stranded("placeholder");
        placeholder.placeholder = true;
        let mut bound = stranded("bound");
        bound.node_name = Some("b-0".into());
        let mut not_yet = stranded("not-yet-tried");
        not_yet.unschedulable = None;
        let cluster = Cluster::new(
            vec![node("a-0", "a"), node("b-0", "b")],
            vec![
                running,
                stranded("web-1"),
                no_room,
                relaxed_already,
                other_app,
                elsewhere,
                deleting,
                placeholder,
                bound,
                not_yet,
            ],
        );
        let relaxed = published(PodWhenUnsatisfiable::ScheduleAnyway, -10);
        let s = stranded_pods(
            &cluster,
            &web(),
            &out(),
            Published::Entry(Some(&relaxed)),
            at(0),
        );
        assert_eq!(names(&s), ["web-1"]);
        assert_eq!(s.delete[0].topology_key, ZONE_KEY);
        assert_eq!(s.delete[0].pending_seconds, 30);
        assert_eq!(s.wait, None);
        // No zone Out (Recovering, Healthy): nothing.
        let none = stranded_pods(
            &cluster,
            &web(),
            &BTreeSet::new(),
            Published::Entry(Some(&relaxed)),
            at(0),
        );
        assert_eq!(none, Stranded::default());
    }

    #[test]
    fn a_pod_waits_until_the_relaxed_form_is_published() {
        let cluster = Cluster::new(vec![node("a-0", "a")], vec![stranded("web-1")]);
        // Not published relaxed yet (this reconcile writes it): look again after the grace.
        let hard = published(PodWhenUnsatisfiable::DoNotSchedule, -100);
        let s = stranded_pods(
            &cluster,
            &web(),
            &out(),
            Published::Entry(Some(&hard)),
            at(0),
        );
        assert_eq!((s.delete.len(), s.wait), (0, Some(RELAXED_GRACE)));
        let s = stranded_pods(&cluster, &web(), &out(), Published::Entry(None), at(0));
        assert_eq!((s.delete.len(), s.wait), (0, Some(RELAXED_GRACE)));
        // Published a second ago: one more second.
        let fresh = published(PodWhenUnsatisfiable::ScheduleAnyway, -1);
        let s = stranded_pods(
            &cluster,
            &web(),
            &out(),
            Published::Entry(Some(&fresh)),
            at(0),
        );
        assert_eq!((s.delete.len(), s.wait), (0, Some(Duration::from_secs(1))));
        let s = stranded_pods(
            &cluster,
            &web(),
            &out(),
            Published::Entry(Some(&fresh)),
            at(1),
        );
        assert_eq!(names(&s), ["web-1"]);
        // Paused or dry-run: told at once, as if published.
        let s = stranded_pods(&cluster, &web(), &out(), Published::Assumed, at(0));
        assert_eq!(names(&s), ["web-1"]);
    }
}
