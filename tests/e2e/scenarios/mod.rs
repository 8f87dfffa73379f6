//! The scenarios, one function each; [`all`] is the list the runner picks from.

mod api;
mod cluster;
pub mod fixtures;
mod operator;
mod scale;
mod scale_in;
pub mod support;

use std::time::Duration;

use futures::future::BoxFuture;

use crate::harness::Ctx;

/// One end-to-end scenario: runs in its own namespace, panics (with a readable message) on failure.
pub struct Scenario {
    pub name: &'static str,
    /// Only with `--ignored` / `--include-ignored` (e.g. the scale scenario, `make e2e-scale`).
    pub ignored: bool,
    /// Skipped when the Rollout CRD is not available.
    pub needs_rollout: bool,
    pub timeout: Duration,
    /// Fails because of a known operator bug (described here): skipped, and said so, unless
    /// `SKEWGUARD_E2E_KNOWN_BUGS=1`. Remove the marker with the fix.
    pub known_bug: Option<&'static str>,
    pub run: fn(Ctx) -> BoxFuture<'static, ()>,
}

const fn scenario(name: &'static str, run: fn(Ctx) -> BoxFuture<'static, ()>) -> Scenario {
    Scenario {
        name,
        ignored: false,
        needs_rollout: false,
        timeout: Duration::from_secs(180),
        known_bug: None,
        run,
    }
}

/// The operator-driven scale-in scenarios wait for the controller to write the deletion costs of
/// `topology::deletion_cost` (issue 12); remove the marker once it does.
const SCALE_IN_NOT_WIRED: &str =
    "the controller does not write pod-deletion-cost yet (issue 12: wire topology::deletion_costs)";

pub fn all() -> Vec<Scenario> {
    vec![
        scenario("crd_installs_and_server_applies_defaults", |c| {
            Box::pin(api::crd_installs_and_server_applies_defaults(c))
        }),
        scenario("invalid_policies_are_rejected", |c| {
            Box::pin(api::invalid_policies_are_rejected(c))
        }),
        scenario("fake_kubelet_runs_pods", |c| {
            Box::pin(cluster::fake_kubelet_runs_pods(c))
        }),
        Scenario {
            needs_rollout: true,
            ..scenario("rollout_owned_replicaset_pods_are_scheduled", |c| {
                Box::pin(cluster::rollout_owned_replicaset_pods_are_scheduled(c))
            })
        },
        scenario("operator_binary_runs", |c| {
            Box::pin(cluster::operator_binary_runs(c))
        }),
        Scenario {
            needs_rollout: true,
            ..scenario("field_scenario", |c| Box::pin(operator::field_scenario(c)))
        },
        scenario("pdb_blocks_then_allows", |c| {
            Box::pin(operator::pdb_blocks_then_allows(c))
        }),
        scenario("dead_zone_gets_nothing", |c| {
            Box::pin(operator::dead_zone_gets_nothing(c))
        }),
        scenario("restart_once_per_cooldown", |c| {
            Box::pin(operator::restart_once_per_cooldown(c))
        }),
        scenario("user_constraints_win", |c| {
            Box::pin(operator::user_constraints_win(c))
        }),
        scenario("paused_writes_nothing", |c| {
            Box::pin(operator::paused_writes_nothing(c))
        }),
        scenario("dry_run_writes_nothing", |c| {
            Box::pin(operator::dry_run_writes_nothing(c))
        }),
        scenario("leader_election_hands_over", |c| {
            Box::pin(operator::leader_election_hands_over(c))
        }),
        scenario("admission_policy_limits_skewguard", |c| {
            Box::pin(scale_in::admission_policy_limits_skewguard(c))
        }),
        scenario("scale_in_core_costs_6_to_3", |c| {
            Box::pin(scale_in::scale_in_core_costs_6_to_3(c))
        }),
        scenario("scale_in_without_costs_6_to_3", |c| {
            Box::pin(scale_in::scale_in_without_costs_6_to_3(c))
        }),
        scenario("scale_in_core_costs_9_to_3", |c| {
            Box::pin(scale_in::scale_in_core_costs_9_to_3(c))
        }),
        scenario("scale_in_without_costs_9_to_3", |c| {
            Box::pin(scale_in::scale_in_without_costs_9_to_3(c))
        }),
        Scenario {
            known_bug: Some(SCALE_IN_NOT_WIRED),
            ..scenario("scale_in_operator_6_to_3", |c| {
                Box::pin(scale_in::scale_in_operator_6_to_3(c))
            })
        },
        Scenario {
            known_bug: Some(SCALE_IN_NOT_WIRED),
            ..scenario("scale_in_operator_9_to_3", |c| {
                Box::pin(scale_in::scale_in_operator_9_to_3(c))
            })
        },
        Scenario {
            ignored: true,
            timeout: Duration::from_secs(3600),
            ..scenario("three_zones_at_scale", |c| {
                Box::pin(scale::three_zones_at_scale(c))
            })
        },
    ]
}
