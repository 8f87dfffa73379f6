//! The petclinic field scenario as metrics input: web's 2 pods both in ap-northeast-2c, was spread
//! 1+1, redis-master a single replica (a single point of failure) on a cluster of 17 nodes.
#![allow(dead_code)]

use std::time::Duration;

use skewguard::shell::metrics::{
    ActionResult, ConstraintMetrics, ErrorCategory, Metrics, WorkloadMetrics, WriteKind,
    ZoneMetrics,
};

pub const ZONE: &str = "topology.kubernetes.io/zone";
pub const HOST: &str = "kubernetes.io/hostname";

pub fn constraint(
    key: &str,
    skew: i64,
    max_skew: i64,
    domains: &[(&str, i64)],
) -> ConstraintMetrics {
    ConstraintMetrics {
        topology_key: key.to_string(),
        skew,
        max_skew,
        domains: domains.iter().map(|(d, n)| (d.to_string(), *n)).collect(),
        ..Default::default()
    }
}

pub fn web() -> WorkloadMetrics {
    WorkloadMetrics {
        kind: "Deployment".into(),
        workload: "web".into(),
        replicas: 2,
        balanced: false,
        constraints: vec![
            constraint(
                ZONE,
                2,
                1,
                &[("ap-northeast-2a", 0), ("ap-northeast-2c", 2)],
            ),
            constraint(
                HOST,
                1,
                1,
                &[("node-c1", 1), ("node-c2", 1), ("node-a1", 0)],
            ),
        ],
        zone_loss: Some((ZONE.into(), 1.0)),
        blocked_reason: Some("NoCapacity".into()),
        ..Default::default()
    }
}

pub fn was() -> WorkloadMetrics {
    WorkloadMetrics {
        kind: "Rollout".into(),
        workload: "was".into(),
        replicas: 2,
        balanced: true,
        constraints: vec![constraint(
            ZONE,
            0,
            1,
            &[("ap-northeast-2a", 1), ("ap-northeast-2c", 1)],
        )],
        zone_loss: Some((ZONE.into(), 0.5)),
        blocked_reason: None,
        ..Default::default()
    }
}

/// redis-master, on a cluster of 17 nodes: too many hostname domains for per-domain series.
pub fn redis_master() -> WorkloadMetrics {
    let hosts: Vec<(String, i64)> = (0..17)
        .map(|i| (format!("node-{i}"), i64::from(i == 3)))
        .collect();
    WorkloadMetrics {
        kind: "StatefulSet".into(),
        workload: "redis-master".into(),
        replicas: 1,
        balanced: true,
        constraints: vec![
            constraint(
                ZONE,
                1,
                1,
                &[("ap-northeast-2a", 0), ("ap-northeast-2c", 1)],
            ),
            ConstraintMetrics {
                topology_key: HOST.into(),
                skew: 1,
                max_skew: 1,
                domains: hosts,
                ..Default::default()
            },
        ],
        zone_loss: Some((ZONE.into(), 1.0)),
        blocked_reason: Some("VolumePinned".into()),
        ..Default::default()
    }
}

/// Metrics with a series in every family: the scenario observed (web and was by template,
/// redis-master by admission with one pod created without its constraints and one admitted
/// relaxed), zone 2a Out, one eviction, one error, one reconcile.
pub fn every_family() -> Metrics {
    let metrics = Metrics::new();
    let template = |w: WorkloadMetrics| WorkloadMetrics {
        injection: Some("Template"),
        ..w
    };
    let admission = WorkloadMetrics {
        injection: Some("Admission"),
        pods_missing_constraints: Some(1),
        relaxed_pods: vec![(ZONE.into(), 1)],
        ..redis_master()
    };
    // was misses an expected zone (2b, from the NodePools): expected skew and the missing domain.
    let mut was_missing = template(was());
    was_missing.constraints[0].expected_skew = Some(1);
    was_missing.constraints[0].missing_domains = vec!["ap-northeast-2b".into()];
    metrics.observe_policy(
        "petclinic",
        "petclinic",
        &[template(web()), was_missing, admission],
    );
    metrics.observe_ready_to_judged(Duration::from_millis(200));
    metrics.observe_judged_to_eviction(Duration::from_secs(3));
    metrics.record_action(
        "petclinic",
        "petclinic",
        "Deployment",
        "web",
        WriteKind::Evict,
        ActionResult::Success,
    );
    metrics.observe_zones(
        "petclinic",
        "petclinic",
        &[
            ZoneMetrics {
                topology_key: ZONE.into(),
                domain: "ap-northeast-2a".into(),
                health: "Out",
            },
            ZoneMetrics {
                topology_key: ZONE.into(),
                domain: "ap-northeast-2c".into(),
                health: "Healthy",
            },
        ],
    );
    metrics.record_error(ErrorCategory::KubeApi);
    metrics.observe_reconcile(Duration::from_millis(10));
    metrics.set_policies("petclinic", 1);
    metrics.set_leader(true);
    metrics
}
