//! Each rule on a hand-made history that keeps it, and on one that breaks it.

use super::*;
use crate::soak::history::{
    Fault, LeaseRecord, Outcome, OwnerRecord, PdbRecord, StatusRecord, WorkloadRecord,
};

fn t(s: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + s).unwrap()
}

fn ms(s: i64, ms: i64) -> Timestamp {
    Timestamp::from_millisecond((1_800_000_000 + s) * 1000 + ms).unwrap()
}

fn web() -> Workload {
    Workload::new("Deployment", "web")
}

fn rules() -> Rules {
    Rules {
        governed: BTreeMap::from([(
            web(),
            Governed {
                max_disruptions: 1,
                cooldown: Duration::from_secs(60),
            },
        )]),
        lease_duration: Duration::from_secs(9),
        replacement_timeout: Duration::from_secs(300),
        lag: Duration::from_millis(500),
        recoveries: vec![],
    }
}

fn pod(at: Timestamp, name: &str, owner: Option<Workload>, zone: &str) -> PodRecord {
    PodRecord {
        at,
        uid: format!("uid-{name}"),
        name: name.to_string(),
        labels: BTreeMap::from([("app".to_string(), "web".to_string())]),
        owner,
        zone: Some(zone.to_string()),
        ready: true,
        ready_since: None,
        terminating: false,
        gone: false,
        created: at,
        opted_out: false,
    }
}

fn rs_owned(at: Timestamp, name: &str, zone: &str) -> PodRecord {
    pod(at, name, Some(Workload::new("ReplicaSet", "web-1")), zone)
}

fn gone(p: &PodRecord, at: Timestamp) -> PodRecord {
    PodRecord {
        at,
        gone: true,
        ..p.clone()
    }
}

fn request(at: Timestamp, replica: &str, target: Target, code: u16) -> RequestRecord {
    RequestRecord {
        at,
        replica: replica.to_string(),
        method: "POST".into(),
        path: "/x".into(),
        target,
        fault: None,
        outcome: Outcome::Answered(code),
    }
}

fn evict(at: Timestamp, replica: &str, pod: &str) -> RequestRecord {
    request(
        at,
        replica,
        Target::Eviction {
            pod: pod.to_string(),
            uid: None,
        },
        201,
    )
}

fn lease(at: Timestamp, replica: &str) -> RequestRecord {
    request(
        at,
        replica,
        Target::Lease {
            name: "skewguard-leader".into(),
            holder: Some(format!("{replica}-1")),
        },
        200,
    )
}

/// web (4 replicas) in two zones, a leading: the base every test adds to.
fn base() -> History {
    History {
        pods: vec![
            rs_owned(t(0), "web-a", "z1"),
            rs_owned(t(0), "web-b", "z1"),
            rs_owned(t(0), "web-c", "z1"),
            rs_owned(t(0), "web-d", "z2"),
        ],
        owners: vec![OwnerRecord {
            at: t(0),
            replicaset: "web-1".into(),
            owner: Some(web()),
        }],
        workloads: vec![WorkloadRecord {
            at: t(0),
            workload: web(),
            replicas: 4,
        }],
        requests: vec![lease(t(1), "a")],
        ..History::default()
    }
}

/// Checks `h` and expects `n` violations of `invariant`.
fn expect_broken(h: &History, rules: &Rules, invariant: &str, n: usize) -> Report {
    let report = check(h, rules);
    assert_eq!(broken(&report, invariant), n, "{:#?}", report.violations);
    report
}

fn broken(report: &Report, invariant: &str) -> usize {
    (report.violations.iter())
        .filter(|v| v.invariant == invariant)
        .count()
}

#[test]
fn one_eviction_judged_then_the_next_keeps_every_rule() {
    let mut h = base();
    h.requests.push(evict(t(5), "a", "web-a"));
    let a = h.pods[0].clone();
    h.pods.push(gone(&a, t(6)));
    h.pods.push(rs_owned(t(7), "web-e", "z2"));
    h.requests.push(lease(t(8), "a"));
    h.requests.push(evict(t(10), "a", "web-b"));
    let report = check(&h, &rules());
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    assert_eq!(report.checks[MAX_IN_FLIGHT], 2);
    assert_eq!(report.checks[OWNED_ONLY], 2);
    assert_eq!(report.checks[LEADER_ONLY], 2);
    assert!(report.total_checks() >= 8);
}

#[test]
fn two_evictions_in_flight_break_max_disruptions() {
    let mut h = base();
    h.requests.push(evict(t(5), "a", "web-a"));
    h.requests.push(evict(t(6), "a", "web-b"));
    expect_broken(&h, &rules(), MAX_IN_FLIGHT, 1);
}

#[test]
fn a_replacement_the_watch_saw_a_moment_late_still_counts() {
    let mut h = base();
    h.requests.push(evict(t(5), "a", "web-a"));
    // The proxy stamped the second eviction 200 ms before the test's watch saw the replacement
    // Ready (the operator had seen it).
    h.pods.push(rs_owned(ms(6, 200), "web-e", "z2"));
    h.requests.push(evict(t(6), "a", "web-b"));
    expect_broken(&h, &rules(), MAX_IN_FLIGHT, 0);
}

#[test]
fn a_replacement_counts_as_ready_from_its_own_stamp() {
    let mut h = base();
    h.requests.push(evict(t(5), "a", "web-a"));
    // The watch saw it 3 s late; the kubelet stamped it Ready at 5 s.
    let mut late = rs_owned(t(9), "web-e", "z2");
    late.created = t(5);
    late.ready_since = Some(t(5));
    h.pods.push(late);
    h.requests.push(evict(ms(6, 500), "a", "web-b"));
    expect_broken(&h, &rules(), MAX_IN_FLIGHT, 0);
}

#[test]
fn a_scale_in_ends_an_eviction_in_flight() {
    let mut h = base();
    h.requests.push(evict(t(5), "a", "web-a"));
    let a = h.pods[0].clone();
    h.pods.push(gone(&a, t(6)));
    h.workloads.push(WorkloadRecord {
        at: t(7),
        workload: web(),
        replicas: 3,
    });
    h.requests.push(evict(t(9), "a", "web-b"));
    expect_broken(&h, &rules(), MAX_IN_FLIGHT, 0);
}

#[test]
fn bare_and_foreign_pods_and_opted_out_ones_are_never_touched() {
    let mut h = base();
    h.pods.push(pod(t(0), "bare", None, "z1"));
    h.pods.push(pod(
        t(0),
        "canary-x",
        Some(Workload::new("ReplicaSet", "canary-1")),
        "z1",
    ));
    h.owners.push(OwnerRecord {
        at: t(0),
        replicaset: "canary-1".into(),
        owner: Some(Workload::new("Deployment", "web-canary")),
    });
    let mut shy = rs_owned(t(0), "web-shy", "z1");
    shy.opted_out = true;
    h.pods.push(shy);
    h.requests.push(evict(t(5), "a", "bare"));
    h.requests.push(request(
        t(5),
        "a",
        Target::Pod {
            pod: "canary-x".into(),
        },
        200,
    ));
    h.requests.push(evict(t(5), "a", "web-shy"));
    h.requests.push(evict(t(5), "a", "never-seen"));
    let report = expect_broken(&h, &rules(), OWNED_ONLY, 3);
    assert_eq!(broken(&report, OPT_OUT), 1, "{:#?}", report.violations);
}

#[test]
fn writes_without_the_lease_or_after_it_passed_are_caught() {
    let mut h = base();
    // b never held it.
    h.requests.push(request(t(2), "b", Target::Other, 200));
    // a's lease (renewed at 1 s, 9 s long) has run out at 11 s.
    h.requests.push(request(t(11), "a", Target::Other, 200));
    // b takes it at 12 s; a writes at 13 s after renewing at 12.5 s? No: b took it first.
    h.requests.push(lease(t(12), "b"));
    h.requests.push(request(t(13), "b", Target::Other, 200));
    let mut late = lease(ms(11, 500), "a");
    late.outcome = Outcome::Withheld;
    late.fault = Some(Fault::StalledLease);
    h.requests.push(late);
    expect_broken(&h, &rules(), LEADER_ONLY, 2);

    // a renews, b takes over, a writes on its old renewal: caught.
    let mut h = base();
    h.requests.push(lease(t(12), "b"));
    h.requests.push(request(t(5), "a", Target::Other, 200));
    h.requests.push(request(t(13), "a", Target::Other, 200));
    expect_broken(&h, &rules(), LEADER_ONLY, 2);
}

fn budget(at: Timestamp, allowed: i64, disrupted: &[&str]) -> PdbRecord {
    PdbRecord {
        at,
        name: "web".into(),
        match_labels: BTreeMap::from([("app".to_string(), "web".to_string())]),
        disruptions_allowed: allowed,
        disrupted_pods: disrupted.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn an_eviction_past_an_exhausted_budget_is_caught() {
    // Allowed 1, the eviction counts web-a: fine.
    let mut h = base();
    h.pdbs = vec![budget(t(0), 1, &[]), budget(ms(5, 100), 0, &["web-a"])];
    h.requests.push(evict(t(5), "a", "web-a"));
    let report = expect_broken(&h, &rules(), PDB_FLOOR, 0);
    assert_eq!(report.checks[PDB_FLOOR], 1);

    // Allowed 0 just before the status that counts web-a.
    let mut h = base();
    h.pdbs = vec![budget(t(0), 0, &[]), budget(ms(5, 100), 0, &["web-a"])];
    h.requests.push(evict(t(5), "a", "web-a"));
    expect_broken(&h, &rules(), PDB_FLOOR, 1);

    // No counting status seen, the last one said 0 and nothing within the lag said otherwise.
    let mut h = base();
    h.pdbs = vec![budget(t(0), 0, &[])];
    h.requests.push(evict(t(5), "a", "web-a"));
    expect_broken(&h, &rules(), PDB_FLOOR, 1);
}

fn status(at: Timestamp, episode: bool, last: i64) -> StatusRecord {
    StatusRecord {
        at,
        workload: web(),
        episode,
        last_action: Some(t(last)),
    }
}

#[test]
fn an_eviction_inside_the_cooldown_after_an_episode_is_caught() {
    let mut h = base();
    h.requests.push(evict(t(5), "a", "web-a"));
    h.statuses.push(status(t(6), true, 5));
    h.statuses.push(status(t(20), false, 5));
    // A new leader after a restart evicts 40 s after the last action: inside the 60 s cooldown.
    h.requests.push(lease(t(44), "b"));
    h.pods.push(rs_owned(t(9), "web-e", "z2"));
    h.requests.push(evict(t(45), "b", "web-b"));
    expect_broken(&h, &rules(), COOLDOWN, 1);

    // Within the episode (the status still says so), steps follow without cooldown.
    let mut h = base();
    h.requests.push(evict(t(5), "a", "web-a"));
    h.statuses.push(status(t(6), true, 5));
    h.pods.push(rs_owned(t(9), "web-e", "z2"));
    h.requests.push(lease(t(8), "a"));
    h.requests.push(evict(t(10), "a", "web-b"));
    let report = check(&h, &rules());
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
}

#[test]
fn a_recovery_with_more_evictions_than_needed_is_caught() {
    let mut h = base();
    h.requests.push(lease(t(10), "a"));
    // Two moves out of z1; one replacement lands in z3, the other back in z1 (wasted).
    h.requests.push(evict(t(11), "a", "web-a"));
    h.pods.push(rs_owned(t(12), "web-e", "z3"));
    h.requests.push(evict(t(14), "a", "web-b"));
    h.pods.push(rs_owned(t(15), "web-f", "z1"));
    let mut rules = rules();
    rules.recoveries.push(Recovery {
        name: "drill".into(),
        from: t(10),
        to: t(20),
        lower_bounds: BTreeMap::from([(web(), 1)]),
    });
    expect_broken(&h, &rules, RECOVERY_BOUND, 0);

    // The same two moves, both useful-looking but the bound says one was enough.
    let mut h = base();
    h.requests.push(lease(t(10), "a"));
    h.requests.push(evict(t(11), "a", "web-a"));
    h.pods.push(rs_owned(t(12), "web-e", "z3"));
    h.requests.push(evict(t(14), "a", "web-b"));
    h.pods.push(rs_owned(t(15), "web-f", "z2"));
    expect_broken(&h, &rules, RECOVERY_BOUND, 1);
}

#[test]
fn leader_changes_count_hand_overs() {
    let h = History {
        leases: [
            None,
            Some("a-1"),
            Some("a-1"),
            Some("b-1"),
            None,
            Some("a-2"),
        ]
        .iter()
        .enumerate()
        .map(|(i, h)| LeaseRecord {
            at: t(i as i64),
            holder: h.map(str::to_string),
        })
        .collect(),
        ..History::default()
    };
    assert_eq!(h.leader_changes(), 2);
}
