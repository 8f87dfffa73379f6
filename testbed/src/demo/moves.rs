//! The fewest evictions that can fix a spread: the lower bound the demo holds skewguard to.

/// The fewest single-pod moves that bring `counts` (pods per eligible domain) within `max_skew`
/// (the largest minus the smallest count). Pods that must leave a domain over the cap and pods a
/// domain under the floor must get are both moves; one move can do one of each, so for a floor
/// `m` and a cap `m + max_skew` the moves are the larger of the two, and the bound is the best
/// feasible `m` (every domain can reach `[m, m + max_skew]` with the pods there are).
pub fn fewest_moves(counts: &[u32], max_skew: u32) -> u32 {
    let k = counts.len() as u64;
    let n: u64 = counts.iter().map(|&c| u64::from(c)).sum();
    if k == 0 {
        return 0;
    }
    let s = u64::from(max_skew);
    (0..=n / k)
        .filter(|m| k * (m + s) >= n)
        .map(|m| {
            let over: u64 = counts
                .iter()
                .map(|&c| u64::from(c).saturating_sub(m + s))
                .sum();
            let under: u64 = counts.iter().map(|&c| m.saturating_sub(u64::from(c))).sum();
            over.max(under)
        })
        .min()
        .unwrap_or(0) as u32
}

/// The lower bound over several constraints at once: every constraint must end within its
/// maxSkew, so no fix takes fewer moves than the most demanding one alone.
pub fn fewest_moves_for_all(per_key: &[(Vec<u32>, u32)]) -> u32 {
    per_key
        .iter()
        .map(|(counts, max_skew)| fewest_moves(counts, *max_skew))
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every distribution of `n` pods over `counts.len()` domains, reached by moving pods one at a
    /// time: a breadth-first search, the oracle for small cases.
    fn oracle(counts: &[u32], max_skew: u32) -> u32 {
        use std::collections::{HashSet, VecDeque};
        let ok =
            |c: &[u32]| c.iter().max().unwrap_or(&0) - c.iter().min().unwrap_or(&0) <= max_skew;
        let mut seen = HashSet::new();
        let mut queue = VecDeque::from([(counts.to_vec(), 0)]);
        while let Some((c, d)) = queue.pop_front() {
            if ok(&c) {
                return d;
            }
            for from in 0..c.len() {
                for to in 0..c.len() {
                    if from != to && c[from] > 0 {
                        let mut next = c.clone();
                        next[from] -= 1;
                        next[to] += 1;
                        if seen.insert(next.clone()) {
                            queue.push_back((next, d + 1));
                        }
                    }
                }
            }
        }
        unreachable!("some distribution is always within maxSkew")
    }

    #[test]
    fn the_petclinic_cases() {
        assert_eq!(fewest_moves(&[0, 2], 1), 1, "web piled into 2c");
        assert_eq!(
            fewest_moves(&[0, 1], 1),
            0,
            "redis-master: one pod is balanced"
        );
        assert_eq!(fewest_moves(&[1, 1], 1), 0);
        assert_eq!(fewest_moves(&[0, 0, 1, 1], 1), 0, "hostnames");
        assert_eq!(fewest_moves(&[0, 4], 1), 2);
        assert_eq!(fewest_moves(&[3, 0, 0], 1), 2);
        assert_eq!(fewest_moves(&[], 1), 0);
        assert_eq!(
            fewest_moves_for_all(&[(vec![0, 2], 1), (vec![0, 0, 2, 0], 1)]),
            1
        );
    }

    #[test]
    fn matches_a_search_over_every_small_case() {
        for k in 1..=4u32 {
            for s in 1..=3u32 {
                // Every count vector with entries 0..=5.
                for code in 0..6u32.pow(k) {
                    let counts: Vec<u32> = (0..k).map(|i| code / 6u32.pow(i) % 6).collect();
                    assert_eq!(
                        fewest_moves(&counts, s),
                        oracle(&counts, s),
                        "{counts:?} maxSkew {s}"
                    );
                }
            }
        }
    }
}
