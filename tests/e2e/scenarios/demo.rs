//! The demo (`make demo`, `testbed/src/demo/`) told inside the suite, non-interactively (plain
//! lines into a buffer): the story `skewguard-demo` tells on its own control plane, with the same
//! code, held to its outcome.

use std::collections::BTreeMap;

use skewguard_testbed::demo::screen::Screen;
use skewguard_testbed::demo::story;

use super::support::{ZONE_A, ZONE_C};
use crate::harness::Ctx;

pub async fn demo_tells_the_field_story(ctx: Ctx) {
    let (mut screen, buf) = Screen::buffer();
    let (outcome, running) = story(&ctx, &mut screen).await;
    drop(running);
    let text = buf.text();
    let why = || format!("{outcome:#?}\n----- the demo's output -----\n{text}");

    assert!(outcome.balanced(), "not balanced: {}", why());
    assert_eq!(
        outcome.evictions(),
        outcome.lower_bound(),
        "evictions against the fewest possible: {}",
        why()
    );
    let one_each: BTreeMap<String, usize> =
        [(ZONE_A.to_string(), 1), (ZONE_C.to_string(), 1)].into();
    for w in &outcome.workloads {
        assert_eq!(w.evictions, w.lower_bound, "{}: {}", w.name, why());
        // The operator's counter and a pod watch agree with its status.
        assert_eq!(
            w.evictions_metric.unwrap_or(0.0),
            f64::from(w.evictions),
            "{}: {}",
            w.name,
            why()
        );
        assert_eq!(
            w.pods_evicted_seen,
            w.evictions as usize,
            "{}: {}",
            w.name,
            why()
        );
        if w.name == "redis-master" {
            assert_eq!(w.evictions, 0, "one replica is never moved: {}", why());
            assert_eq!(
                w.ready_by_zone,
                BTreeMap::from([(ZONE_C.to_string(), 1)]),
                "{}",
                why()
            );
        } else {
            // Piled into 2c twice (before the policy, after the drill): one move each time at least.
            assert!(w.lower_bound >= 2, "{}: {}", w.name, why());
            assert_eq!(w.ready_by_zone, one_each, "{}: {}", w.name, why());
        }
    }
    assert_eq!(
        outcome.spof_before,
        ["redis-master", "was", "web"],
        "{}",
        why()
    );
    assert_eq!(outcome.spof_after, ["redis-master"], "{}", why());
    let expected_kind = if ctx.rollout_crd {
        "Rollout"
    } else {
        "Deployment"
    };
    assert_eq!(outcome.was_kind, expected_kind);

    // What a person reads: the report's verdict, the table's last word, and no escape codes.
    for needle in [
        "Single points of failure:",
        "petclinic/redis-master",
        "PodEvicted",
        "deploy/web  2a=1 2c=1  skew 0  Idle (Balanced)",
        "skewguard_rebalance_actions_total{workload=\"web\",action=\"evict\",result=\"success\"}",
    ] {
        let needle = needle.replace("petclinic/", &format!("{}/", ctx.ns));
        assert!(
            text.contains(&needle),
            "no {needle:?} in the output: {}",
            why()
        );
    }
    assert!(!text.contains('\x1b'), "escape codes in plain output");
    println!("\n  demo: {}", outcome.summary());
}
