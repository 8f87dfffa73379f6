//! What losing one domain would cost a workload: the question a zone outage asks.

use std::collections::BTreeMap;

use super::cluster::Cluster;
use super::measure::own_counted_pods;
use super::model::Workload;

/// The worst single-domain loss.
#[derive(Clone, Debug, PartialEq)]
pub struct DomainLoss {
    pub domain: String,
    pub pods_lost: i32,
    pub total: i32,
    /// `pods_lost / total`; 1.0 means a single point of failure.
    pub fraction: f64,
}

impl DomainLoss {
    pub fn is_single_point_of_failure(&self) -> bool {
        self.total > 0 && self.pods_lost == self.total
    }
}

/// Label value used for pods on nodes that lack the key.
pub const UNKNOWN_DOMAIN: &str = "<none>";

/// The workload's running pods per value of `topology_key` on their nodes.
pub fn pods_by_domain(
    cluster: &Cluster,
    workload: &Workload,
    topology_key: &str,
) -> BTreeMap<String, i32> {
    own_pods_by_domain(cluster, &own_counted_pods(cluster, workload), topology_key)
}

/// [`pods_by_domain`] of pods already found: `own_pods`, the workload's counted pods (as its
/// measurement lists them).
pub fn own_pods_by_domain(
    cluster: &Cluster,
    own_pods: &[usize],
    topology_key: &str,
) -> BTreeMap<String, i32> {
    // By the key's domain index (the nodes' values, looked up once per node set), not by
    // reading each pod's node labels.
    let key = cluster.key_index(topology_key);
    let mut domains: Vec<Option<u32>> = (own_pods.iter())
        .map(|&i| cluster.node_of_pod(i).and_then(|n| key.node_domain[n]))
        .collect();
    domains.sort_unstable();
    let mut by_domain: Vec<(Option<u32>, i32)> = Vec::new();
    for domain in domains {
        match by_domain.last_mut() {
            Some((d, n)) if *d == domain => *n += 1,
            _ => by_domain.push((domain, 1)),
        }
    }
    (by_domain.into_iter())
        .map(|(d, n)| {
            let name = d.map_or(UNKNOWN_DOMAIN, |d| key.domains[d as usize].as_str());
            (name.to_string(), n)
        })
        .collect()
}

/// The domain whose loss costs the most pods (the first by name on a tie); `None` without pods.
pub fn worst_domain_loss(pods_by_domain: &BTreeMap<String, i32>) -> Option<DomainLoss> {
    let total: i32 = pods_by_domain.values().sum();
    let (domain, lost) = pods_by_domain.iter().filter(|(_, n)| **n > 0).fold(
        None::<(&String, i32)>,
        |best, (d, n)| match best {
            Some((_, b)) if b >= *n => best,
            _ => Some((d, *n)),
        },
    )?;
    Some(DomainLoss {
        domain: domain.clone(),
        pods_lost: lost,
        total,
        fraction: f64::from(lost) / f64::from(total),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_pods_in_one_zone_is_a_single_point_of_failure() {
        let counts = BTreeMap::from([("2a".to_string(), 0), ("2c".to_string(), 1)]);
        let loss = worst_domain_loss(&counts).unwrap();
        assert_eq!(loss.domain, "2c");
        assert_eq!(loss.fraction, 1.0);
        assert!(loss.is_single_point_of_failure());
    }

    #[test]
    fn spread_pods_lose_the_largest_share() {
        let counts = BTreeMap::from([
            ("a".to_string(), 3),
            ("b".to_string(), 3),
            ("c".to_string(), 2),
        ]);
        let loss = worst_domain_loss(&counts).unwrap();
        assert_eq!(
            (loss.domain.as_str(), loss.pods_lost, loss.total),
            ("a", 3, 8)
        );
        assert!((loss.fraction - 0.375).abs() < 1e-9);
        assert!(!loss.is_single_point_of_failure());
    }

    #[test]
    fn no_pods_no_loss() {
        assert_eq!(worst_domain_loss(&BTreeMap::new()), None);
    }
}
