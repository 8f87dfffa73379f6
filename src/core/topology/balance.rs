//! How far a constraint is from balance: the fewest pods that must move to bring it within
//! maxSkew. The planner uses it as the potential every move must lower, and the tests use it as
//! the lower bound a plan must meet.

/// The fewest moves that bring `counts` within `max_skew`.
///
/// Pods only move out of domains above the final range and into domains below it, so for a final
/// range `[L, L + max_skew]` the cost is the larger of the pods above it and the room below it;
/// the answer is the cheapest feasible `L`. With `floor_zero` (minDomains not met) the minimum is
/// pinned to 0 and only the pods above `max_skew` count.
pub fn min_moves(counts: &[i32], max_skew: i32, floor_zero: bool) -> i64 {
    Histogram::from_counts(counts).min_moves(max_skew, floor_zero)
}

/// Domain counts as a histogram (`domains[v]` = how many domains hold `v` pods): a move's effect
/// depends only on the two counts it touches, so the planner can price moves without rescanning
/// every domain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Histogram {
    domains: Vec<i64>,
}

impl Histogram {
    pub fn from_counts(counts: &[i32]) -> Self {
        let mut h = Self::default();
        for &c in counts {
            h.add(c);
        }
        h
    }

    pub fn add(&mut self, count: i32) {
        let v = count.max(0) as usize;
        if self.domains.len() <= v + 1 {
            self.domains.resize(v + 2, 0);
        }
        self.domains[v] += 1;
    }

    /// `domains` more domains holding `count` pods each.
    pub fn add_many(&mut self, count: i32, domains: usize) {
        if domains > 0 {
            self.add(count);
            self.domains[count.max(0) as usize] += domains as i64 - 1;
        }
    }

    pub fn remove(&mut self, count: i32) {
        self.domains[count.max(0) as usize] -= 1;
    }

    /// The histogram after a pod leaves a domain holding `from` pods and joins one holding
    /// `to`; `None` on either side when that side is not counted (the pod is not counted there,
    /// or the node is no domain).
    pub fn after(&self, from: Option<i32>, to: Option<i32>) -> Self {
        let mut h = self.clone();
        if let Some(from) = from.filter(|f| *f > 0) {
            h.remove(from);
            h.add(from - 1);
        }
        if let Some(to) = to {
            h.remove(to);
            h.add(to + 1);
        }
        h
    }

    /// The smallest count over the domains, `None` without domains.
    pub fn lowest(&self) -> Option<i32> {
        self.domains.iter().position(|n| *n > 0).map(|v| v as i32)
    }

    pub fn skew(&self, floor_zero: bool) -> i32 {
        let present = || {
            self.domains
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(v, _)| v as i32)
        };
        let Some(max) = present().max() else {
            return 0;
        };
        let min = if floor_zero {
            0
        } else {
            present().min().unwrap_or(0)
        };
        max - min
    }

    pub fn min_moves(&self, max_skew: i32, floor_zero: bool) -> i64 {
        let s = i64::from(max_skew.max(0));
        let k: i64 = self.domains.iter().sum();
        if k == 0 {
            return 0;
        }
        let n: i64 = self
            .domains
            .iter()
            .enumerate()
            .map(|(v, d)| v as i64 * d)
            .sum();
        let above = |l: i64| -> i64 {
            self.domains
                .iter()
                .enumerate()
                .map(|(v, d)| (v as i64 - l - s).max(0) * d)
                .sum()
        };
        let below = |l: i64| -> i64 {
            self.domains
                .iter()
                .enumerate()
                .map(|(v, d)| (l - v as i64).max(0) * d)
                .sum()
        };
        if floor_zero {
            return above(0);
        }
        // Feasible final minimums: k*L <= n <= k*(L+s).
        let lowest = ((n - k * s) as f64 / k as f64).ceil().max(0.0) as i64;
        let highest = n / k;
        (lowest..=highest)
            .map(|l| above(l).max(below(l)))
            .min()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descheduler_single_constraint_vectors() {
        let cases: &[(&[i32], i32, i64)] = &[
            (&[2, 1], 1, 0),
            (&[3, 1], 1, 1),
            (&[5, 2], 1, 1),
            (&[4, 0], 1, 2),
            (&[0, 1, 100], 1, 66),
            (&[0, 1, 3, 5], 1, 3),
            (&[8, 7, 0], 1, 5),
            (&[5, 5, 5], 1, 0),
            (&[2, 6], 2, 1),
        ];
        for (counts, skew, want) in cases {
            assert_eq!(
                min_moves(counts, *skew, false),
                *want,
                "{counts:?} maxSkew {skew}"
            );
        }
    }

    #[test]
    fn floor_zero_counts_only_pods_above_max_skew() {
        assert_eq!(min_moves(&[2, 2, 1], 2, true), 0);
        assert_eq!(min_moves(&[3, 1], 2, true), 1);
    }

    #[test]
    fn many_domains_at_once_are_as_many_added_one_by_one() {
        let mut at_once = Histogram::from_counts(&[3, 1]);
        at_once.add_many(0, 4);
        at_once.add_many(2, 0);
        assert_eq!(at_once, Histogram::from_counts(&[3, 0, 0, 1, 0, 0]));
    }

    #[test]
    fn histogram_move_matches_recount() {
        let h = Histogram::from_counts(&[4, 0, 2]);
        let moved = h.after(Some(4), Some(0));
        let recounted = Histogram::from_counts(&[3, 1, 2]);
        assert_eq!(moved.skew(false), recounted.skew(false));
        assert_eq!(moved.min_moves(1, false), recounted.min_moves(1, false));
        assert_eq!(h.skew(false), 4);
        assert_eq!(h.after(Some(4), Some(0)).skew(false), 2);
    }
}
