//! Judging a finished move by its outcome, not by whether the scheduler did what was predicted:
//! a replacement the scheduler put in another domain than planned is a success when the workload
//! is closer to balance, and counting it as a failure would back off a rebalance that works.

use super::balance::min_moves;
use super::measure::{ConstraintMeasure, Measurement};
use super::planner::Move;

/// How far a workload is from balance: the fewest moves that would bring each constraint
/// within maxSkew, summed over its constraints.
pub fn distance(m: &Measurement) -> i64 {
    m.constraints.iter().map(constraint_distance).sum()
}

fn constraint_distance(c: &ConstraintMeasure) -> i64 {
    min_moves(&c.counts(), c.max_skew, c.below_min_domains)
}

/// What is known of the replacement when the move is judged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Replacement<'a> {
    /// The evicted pod is gone and its replacement is Ready (the workload is settled).
    pub ready: bool,
    /// The replacement's domain of the move's topology key, when the caller knows it; otherwise
    /// it is inferred from the counts.
    pub domain: Option<&'a str>,
}

/// Why a finished move did not help.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotBetter {
    /// The replacement is back in the domain the pod was evicted from.
    CameBack,
    /// A constraint went from within maxSkew to above it, or its skew grew above it.
    MadeWorse(String),
    /// Nothing got worse, but the workload is no closer to balance.
    NoCloser,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MoveOutcome {
    Succeeded,
    Failed(NotBetter),
    /// The replacement is not Ready yet: too early to judge.
    Pending,
}

/// What a move is judged against: the spread it was planned from, kept small (a move in
/// flight is remembered in the policy's status, and a hostname constraint has a domain per node).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Baseline {
    /// Per constraint, in the workload's order: its topology key and skew before the move.
    pub skews: Vec<(String, i32)>,
    /// The workload's [`distance`] from balance before the move.
    pub distance: i64,
    /// The move's topology key, the domain it left and the pods that domain held.
    pub topology_key: String,
    pub from_domain: String,
    pub from_count: Option<i32>,
}

impl Baseline {
    pub fn of(before: &Measurement, mv: &Move) -> Self {
        Self {
            skews: before
                .constraints
                .iter()
                .map(|c| (c.topology_key.clone(), c.effective_skew()))
                .collect(),
            distance: distance(before),
            topology_key: mv.topology_key.clone(),
            from_domain: mv.from_domain.clone(),
            from_count: before.count(&mv.topology_key, &mv.from_domain),
        }
    }
}

/// Judges one move from the spread it was planned from (`before`) and the spread now
/// (`after`): it succeeded when the replacement is Ready and the distance from balance went
/// down, wherever the scheduler put it; it failed when the replacement came back into the
/// domain it left, or a constraint got worse.
pub fn judge_move(
    before: &Baseline,
    after: &Measurement,
    replacement: &Replacement<'_>,
) -> MoveOutcome {
    if !replacement.ready {
        return MoveOutcome::Pending;
    }
    for ((key, skew), a) in before.skews.iter().zip(&after.constraints) {
        if *key != a.topology_key {
            continue;
        }
        let limit = a.max_skew.max(*skew);
        if a.effective_skew() > limit {
            return MoveOutcome::Failed(NotBetter::MadeWorse(a.topology_key.clone()));
        }
    }
    let came_back = match replacement.domain {
        Some(domain) => domain == before.from_domain,
        None => match (
            before.from_count,
            after.count(&before.topology_key, &before.from_domain),
        ) {
            (Some(b), Some(a)) => a >= b,
            _ => false,
        },
    };
    if came_back && !before.from_domain.is_empty() {
        return MoveOutcome::Failed(NotBetter::CameBack);
    }
    if distance(after) < before.distance {
        MoveOutcome::Succeeded
    } else {
        MoveOutcome::Failed(NotBetter::NoCloser)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use kube::core::Selector;

    use super::*;
    use crate::core::topology::{
        Cluster, Node, Pod, Resources, SpreadConstraint, Workload, measure,
    };

    /// A workload measured over zones holding `counts` pods, maxSkew 1.
    fn spread(counts: &[(&str, usize)]) -> Measurement {
        let selector: Selector = [("app", "web")].into_iter().collect();
        let nodes = counts
            .iter()
            .map(|(z, _)| Node {
                name: format!("{z}-1"),
                labels: BTreeMap::from([("zone".into(), z.to_string())]),
                ready: true,
                allocatable: Resources::new(1000, 1 << 30, 10),
                ..Default::default()
            })
            .collect();
        let pods = counts
            .iter()
            .flat_map(|(z, n)| {
                (0..*n).map(move |i| Pod {
                    name: format!("{z}-{i}"),
                    namespace: "ns".into(),
                    labels: BTreeMap::from([("app".into(), "web".into())]),
                    node_name: Some(format!("{z}-1")),
                    ..Default::default()
                })
            })
            .collect();
        let w = Workload {
            namespace: "ns".into(),
            name: "web".into(),
            pod_selector: selector.clone(),
            owner: None,
            template: Default::default(),
            constraints: vec![SpreadConstraint::new("zone", 1, selector)],
        };
        measure(&Cluster::new(nodes, pods), &w)
    }

    fn c_to_a() -> Move {
        Move {
            topology_key: "zone".into(),
            from_domain: "c".into(),
            to_domain: "a".into(),
            ..Default::default()
        }
    }

    const READY: Replacement<'static> = Replacement {
        ready: true,
        domain: None,
    };

    #[test]
    fn distance_sums_min_moves() {
        assert_eq!(distance(&spread(&[("a", 0), ("b", 0), ("c", 3)])), 2);
        assert_eq!(distance(&spread(&[("a", 1), ("b", 1), ("c", 1)])), 0);
    }

    #[test]
    fn an_unpredicted_domain_that_lowers_the_distance_succeeds() {
        let before = spread(&[("a", 0), ("b", 0), ("c", 3)]);
        let after = spread(&[("a", 0), ("b", 1), ("c", 2)]);
        assert_eq!(
            judge_move(&Baseline::of(&before, &c_to_a()), &after, &READY),
            MoveOutcome::Succeeded
        );
        let seen_in_b = Replacement {
            ready: true,
            domain: Some("b"),
        };
        assert_eq!(
            judge_move(&Baseline::of(&before, &c_to_a()), &after, &seen_in_b),
            MoveOutcome::Succeeded
        );
    }

    #[test]
    fn coming_back_fails_and_not_ready_waits() {
        let before = spread(&[("a", 0), ("b", 0), ("c", 3)]);
        assert_eq!(
            judge_move(&Baseline::of(&before, &c_to_a()), &before, &READY),
            MoveOutcome::Failed(NotBetter::CameBack)
        );
        let back = Replacement {
            ready: true,
            domain: Some("c"),
        };
        let after = spread(&[("a", 0), ("b", 1), ("c", 2)]);
        assert_eq!(
            judge_move(&Baseline::of(&before, &c_to_a()), &after, &back),
            MoveOutcome::Failed(NotBetter::CameBack)
        );
        assert_eq!(
            judge_move(
                &Baseline::of(&before, &c_to_a()),
                &after,
                &Replacement::default()
            ),
            MoveOutcome::Pending
        );
    }

    #[test]
    fn making_a_constraint_worse_fails() {
        // Within maxSkew before, above after.
        let before = spread(&[("a", 1), ("b", 1), ("c", 1)]);
        let after = spread(&[("a", 0), ("b", 1), ("c", 2)]);
        let mut mv = c_to_a();
        mv.from_domain = "a".into();
        assert_eq!(
            judge_move(&Baseline::of(&before, &mv), &after, &READY),
            MoveOutcome::Failed(NotBetter::MadeWorse("zone".into()))
        );
    }

    #[test]
    fn no_closer_is_a_failure() {
        // Left c, but the spread is as far from balance as before (another pod came to c).
        let before = spread(&[("a", 0), ("b", 1), ("c", 3)]);
        let after = spread(&[("a", 1), ("b", 0), ("c", 3)]);
        let mv = Move {
            from_domain: "b".into(),
            ..c_to_a()
        };
        assert_eq!(
            judge_move(&Baseline::of(&before, &mv), &after, &READY),
            MoveOutcome::Failed(NotBetter::NoCloser)
        );
    }
}
