//! The scenarios, one function each; [`all`] is the list the runner picks from.

mod admission;
mod api;
mod autoscaler;
mod cluster;
mod demo;
mod drill;
mod fleet;
mod guards;
mod install;
mod memory;
mod monitoring;
mod operator;
mod scale;
mod scale_in;
mod soak;
mod workload_ref;
mod zones;

// The petclinic workloads and what the operator scenarios share live in the testbed crate, shared
// with the demo.
pub use skewguard_testbed::{fixtures, support};

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
    /// Skipped when the NodePool or CapacityBuffer CRD is not in `../shared/testdata`.
    pub needs_autoscaling: bool,
    pub timeout: Duration,
    pub run: fn(Ctx) -> BoxFuture<'static, ()>,
}

const fn scenario(name: &'static str, run: fn(Ctx) -> BoxFuture<'static, ()>) -> Scenario {
    Scenario {
        name,
        ignored: false,
        needs_rollout: false,
        needs_autoscaling: false,
        timeout: Duration::from_secs(180),
        run,
    }
}

pub fn all() -> Vec<Scenario> {
    vec![
        scenario("crd_installs_and_server_applies_defaults", |c| {
            Box::pin(api::crd_installs_and_server_applies_defaults(c))
        }),
        scenario("invalid_policies_are_rejected", |c| {
            Box::pin(api::invalid_policies_are_rejected(c))
        }),
        scenario("undeploy_keeps_the_crd_and_the_policies", |c| {
            Box::pin(install::undeploy_keeps_the_crd_and_the_policies(c))
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
            needs_autoscaling: true,
            timeout: Duration::from_secs(120),
            ..scenario("autoscaler_launches_a_node_for_pending_pods", |c| {
                Box::pin(autoscaler::autoscaler_launches_a_node_for_pending_pods(c))
            })
        },
        Scenario {
            needs_autoscaling: true,
            timeout: Duration::from_secs(120),
            ..scenario("autoscaler_serves_a_capacity_buffer", |c| {
                Box::pin(autoscaler::autoscaler_serves_a_capacity_buffer(c))
            })
        },
        Scenario {
            needs_autoscaling: true,
            timeout: Duration::from_secs(120),
            ..scenario("autoscaler_consolidates_empty_nodes", |c| {
                Box::pin(autoscaler::autoscaler_consolidates_empty_nodes(c))
            })
        },
        Scenario {
            needs_autoscaling: true,
            timeout: Duration::from_secs(300),
            ..scenario("recovered_empty_zone_via_capacity_buffer", |c| {
                Box::pin(zones::recovered_empty_zone_via_capacity_buffer(c))
            })
        },
        Scenario {
            needs_autoscaling: true,
            timeout: Duration::from_secs(300),
            ..scenario("recovered_empty_zone_via_placeholder_pods", |c| {
                Box::pin(zones::recovered_empty_zone_via_placeholder_pods(c))
            })
        },
        Scenario {
            needs_autoscaling: true,
            timeout: Duration::from_secs(240),
            ..scenario("a_zone_the_autoscaler_never_fills", |c| {
                Box::pin(zones::a_zone_the_autoscaler_never_fills(c))
            })
        },
        Scenario {
            needs_autoscaling: true,
            timeout: Duration::from_secs(180),
            ..scenario("provisioning_off_reports_and_creates_nothing", |c| {
                Box::pin(zones::provisioning_off_reports_and_creates_nothing(c))
            })
        },
        Scenario {
            needs_rollout: true,
            ..scenario("field_scenario", |c| Box::pin(operator::field_scenario(c)))
        },
        Scenario {
            needs_rollout: true,
            ..scenario(
                "workload_ref_rollout_is_read_and_written_through_its_deployment",
                |c| {
                    Box::pin(
                        workload_ref::workload_ref_rollout_is_read_and_written_through_its_deployment(c),
                    )
                },
            )
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
        scenario("metrics_need_an_authorized_token", |c| {
            Box::pin(monitoring::metrics_need_an_authorized_token(c))
        }),
        scenario("prometheus_sees_petclinic", |c| {
            Box::pin(monitoring::prometheus_sees_petclinic(c))
        }),
        Scenario {
            ignored: true,
            timeout: Duration::from_secs(1800),
            ..scenario("memory_with_50000_pods", |c| {
                Box::pin(memory::memory_with_50000_pods(c))
            })
        },
        Scenario {
            ignored: true,
            timeout: Duration::from_secs(1800),
            ..scenario("a_hundred_deployments_at_scale", |c| {
                Box::pin(scale::a_hundred_deployments_at_scale(c))
            })
        },
        scenario("admission_policy_limits_skewguard", |c| {
            Box::pin(scale_in::admission_policy_limits_skewguard(c))
        }),
        scenario("admission_guard_evictions_are_scoped", |c| {
            Box::pin(guards::evictions_are_scoped_to_policies_and_uids(c))
        }),
        scenario("admission_guard_workload_and_status_writes", |c| {
            Box::pin(guards::workload_and_status_writes_follow_the_policy(c))
        }),
        scenario("scale_in_6_to_3", |c| {
            Box::pin(scale_in::scale_in_6_to_3(c))
        }),
        scenario("scale_in_9_to_3", |c| {
            Box::pin(scale_in::scale_in_9_to_3(c))
        }),
        scenario("scale_in_6_to_3_turned_off", |c| {
            Box::pin(scale_in::scale_in_6_to_3_turned_off(c))
        }),
        scenario("scale_in_9_to_3_turned_off", |c| {
            Box::pin(scale_in::scale_in_9_to_3_turned_off(c))
        }),
        Scenario {
            timeout: Duration::from_secs(240),
            ..scenario("restart_mid_episode_keeps_cooldown_and_in_flight", |c| {
                Box::pin(fleet::restart_mid_episode_keeps_cooldown_and_in_flight(c))
            })
        },
        Scenario {
            timeout: Duration::from_secs(300),
            ..scenario("twenty_deployments_adopted_two_at_a_time", |c| {
                Box::pin(fleet::twenty_deployments_adopted_two_at_a_time(c))
            })
        },
        Scenario {
            needs_rollout: true,
            ..scenario("a_malformed_rollout_beside_a_healthy_deployment", |c| {
                Box::pin(fleet::a_malformed_rollout_beside_a_healthy_deployment(c))
            })
        },
        Scenario {
            timeout: Duration::from_secs(120),
            ..scenario("opted_out_pods_are_never_evicted", |c| {
                Box::pin(fleet::opted_out_pods_are_never_evicted(c))
            })
        },
        Scenario {
            timeout: Duration::from_secs(300),
            ..scenario("api_server_outage_mid_rebalance", |c| {
                Box::pin(fleet::api_server_outage_mid_rebalance(c))
            })
        },
        Scenario {
            timeout: Duration::from_secs(300),
            ..scenario("admission_mode_adopts_without_rollouts", |c| {
                Box::pin(admission::admission_mode_adopts_without_rollouts(c))
            })
        },
        Scenario {
            timeout: Duration::from_secs(240),
            ..scenario("admission_mode_never_blocks_pods", |c| {
                Box::pin(admission::admission_mode_never_blocks_pods(c))
            })
        },
        Scenario {
            timeout: Duration::from_secs(600),
            ..scenario("zone_drill_do_not_schedule", |c| {
                Box::pin(drill::zone_drill_do_not_schedule(c))
            })
        },
        Scenario {
            timeout: Duration::from_secs(600),
            ..scenario("zone_drill_schedule_anyway", |c| {
                Box::pin(drill::zone_drill_schedule_anyway(c))
            })
        },
        Scenario {
            timeout: Duration::from_secs(600),
            ..scenario("zone_drill_adaptive", |c| {
                Box::pin(drill::zone_drill_adaptive(c))
            })
        },
        Scenario {
            timeout: Duration::from_secs(300),
            ..scenario(
                "adaptive_deletes_stranded_pods_and_follows_a_declared_zone",
                |c| Box::pin(drill::adaptive_deletes_stranded_pods_and_follows_a_declared_zone(c)),
            )
        },
        Scenario {
            timeout: Duration::from_secs(180),
            ..scenario("demo_tells_the_field_story", |c| {
                Box::pin(demo::demo_tells_the_field_story(c))
            })
        },
        Scenario {
            needs_rollout: true,
            timeout: Duration::from_secs(1500),
            ..scenario("soak_3_minutes", |c| Box::pin(soak::soak_3_minutes(c)))
        },
        // `make soak`: SKEWGUARD_SOAK_MINUTES (default 30) of faults and churn.
        Scenario {
            ignored: true,
            needs_rollout: true,
            timeout: Duration::from_secs(60 * (soak::minutes_from_env() + 25)),
            ..scenario("soak", |c| Box::pin(soak::soak_from_env(c)))
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
