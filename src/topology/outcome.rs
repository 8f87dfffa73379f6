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
    let counts: Vec<i32> = c.domains.iter().map(|(_, n)| n).collect();
    min_moves(&counts, c.max_skew, c.below_min_domains)
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

/// Judges one move from the spread it was planned from (`before`) and the spread now
/// (`after`): it succeeded when the replacement is Ready and the distance from balance went
/// down, wherever the scheduler put it; it failed when the replacement came back into the
/// domain it left, or a constraint got worse.
pub fn judge_move(
    before: &Measurement,
    after: &Measurement,
    mv: &Move,
    replacement: &Replacement<'_>,
) -> MoveOutcome {
    if !replacement.ready {
        return MoveOutcome::Pending;
    }
    for (b, a) in before.constraints.iter().zip(&after.constraints) {
        if b.topology_key != a.topology_key {
            continue;
        }
        let limit = b.max_skew.max(b.skew);
        if a.skew > limit {
            return MoveOutcome::Failed(NotBetter::MadeWorse(a.topology_key.clone()));
        }
    }
    let came_back = match replacement.domain {
        Some(domain) => domain == mv.from_domain,
        None => {
            let count = |m: &Measurement| m.count(&mv.topology_key, &mv.from_domain);
            match (count(before), count(after)) {
                (Some(b), Some(a)) => a >= b,
                _ => false,
            }
        }
    };
    if came_back && !mv.from_domain.is_empty() {
        return MoveOutcome::Failed(NotBetter::CameBack);
    }
    if distance(after) < distance(before) {
        MoveOutcome::Succeeded
    } else {
        MoveOutcome::Failed(NotBetter::NoCloser)
    }
}
