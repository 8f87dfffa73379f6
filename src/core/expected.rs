//! Which domains a policy's workloads must cover, per topology key (pure).
//!
//! A key's expected domains come from the policy (`spec.expectedDomains`) or, for the zone key
//! when the policy names none, from the Karpenter NodePools (`karpenter.sh/v1`) that may launch
//! nodes: the union of the zones each pool's `spec.template.spec.requirements` allow, read as
//! Karpenter reads them (several requirements on the zone key intersect; `In` lists zones,
//! `NotIn` excludes them from the zones known, `Exists` or no requirement allows any zone,
//! `DoesNotExist` allows none). A pool that allows any zone says nothing about which ones: it
//! adds the zones that have nodes, as the scheduler counts them. A malformed pool is a warning,
//! never a failure, and adds nothing.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::api::{DomainSource, ExpectedDomainsStatus, HAPolicySpec};
use crate::core::topology::ZONE_KEY;

/// The zones one NodePool allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PoolZones {
    /// Any zone (no requirement on the zone key, or `Exists`).
    Any,
    /// Only these.
    Only(BTreeSet<String>),
    /// Any zone but these (`NotIn`).
    Except(BTreeSet<String>),
}

/// A NodePool's name and what it allows, or why it cannot be read.
pub type ReadPool = (String, Result<PoolZones, String>);

/// Reads one NodePool object (as JSON) the way Karpenter reads its zone requirements.
pub fn pool_zones(pool: &Value) -> ReadPool {
    let name = pool["metadata"]["name"]
        .as_str()
        .unwrap_or("<unnamed>")
        .to_string();
    let requirements = &pool["spec"]["template"]["spec"]["requirements"];
    let read = match requirements {
        Value::Null => Ok(PoolZones::Any),
        Value::Array(requirements) => (requirements.iter())
            .filter(|r| r["key"].as_str() == Some(ZONE_KEY))
            .try_fold(PoolZones::Any, |zones, r| {
                Ok(intersect(zones, requirement(r)?))
            }),
        _ => Err("spec.template.spec.requirements is not a list".to_string()),
    };
    (name, read)
}

/// One requirement on the zone key.
fn requirement(r: &Value) -> Result<PoolZones, String> {
    let values = || -> Result<BTreeSet<String>, String> {
        match &r["values"] {
            Value::Array(v) => v
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or("a value is not a string")
                })
                .collect::<Result<_, _>>()
                .map_err(str::to_string),
            Value::Null => Ok(BTreeSet::new()),
            _ => Err("values is not a list".to_string()),
        }
    };
    match r["operator"].as_str() {
        Some("In") => {
            let zones = values()?;
            if zones.is_empty() {
                return Err(format!("operator In on {ZONE_KEY} has no values"));
            }
            Ok(PoolZones::Only(zones))
        }
        Some("NotIn") => Ok(PoolZones::Except(values()?)),
        Some("Exists") => Ok(PoolZones::Any),
        Some("DoesNotExist") => Ok(PoolZones::Only(BTreeSet::new())),
        Some(other) => Err(format!("operator {other} cannot apply to {ZONE_KEY}")),
        None => Err(format!("a requirement on {ZONE_KEY} has no operator")),
    }
}

fn intersect(a: PoolZones, b: PoolZones) -> PoolZones {
    use PoolZones::*;
    match (a, b) {
        (Any, x) | (x, Any) => x,
        (Only(a), Only(b)) => Only(a.intersection(&b).cloned().collect()),
        (Only(a), Except(b)) | (Except(b), Only(a)) => Only(a.difference(&b).cloned().collect()),
        (Except(a), Except(b)) => Except(a.union(&b).cloned().collect()),
    }
}

/// The zones the pools together may launch nodes in (`None`: they say nothing beyond the zones
/// that have nodes), and a warning per pool that cannot be read. `with_nodes` are the zones that
/// have nodes: what `NotIn` and `Any` are read against.
pub fn nodepool_zones(
    pools: &[ReadPool],
    with_nodes: &BTreeSet<String>,
) -> (Option<BTreeSet<String>>, Vec<String>) {
    let mut warnings = Vec::new();
    let mut named = BTreeSet::new();
    let mut zones = BTreeSet::new();
    let mut says_more = false;
    for (name, read) in pools {
        match read {
            Ok(PoolZones::Only(only)) => {
                named.extend(only.iter().cloned());
                zones.extend(only.iter().cloned());
                says_more = true;
            }
            Ok(PoolZones::Except(_)) | Ok(PoolZones::Any) => {}
            Err(why) => warnings.push(format!("NodePool {name}: {why}; its zones are ignored")),
        }
    }
    let known: BTreeSet<String> = with_nodes.union(&named).cloned().collect();
    for (_, read) in pools {
        match read {
            Ok(PoolZones::Except(except)) => {
                zones.extend(known.difference(except).cloned());
            }
            Ok(PoolZones::Any) => zones.extend(with_nodes.iter().cloned()),
            _ => {}
        }
    }
    // Only when some pool names zones do the pools say more than the nodes do.
    (says_more.then_some(zones), warnings)
}

/// The expected domains in force for a policy: its own entries, and for the zone key (when it
/// names none) the NodePools' zones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expected {
    pub keys: Vec<ExpectedDomainsStatus>,
    pub warnings: Vec<String>,
}

impl Expected {
    /// The expected domains of `key`, if it has some.
    pub fn of(&self, key: &str) -> Option<&[String]> {
        (self.keys.iter())
            .find(|k| k.topology_key == key)
            .map(|k| &k.domains[..])
    }
}

/// Resolves a policy's expected domains; `nodepools` is `None` where the NodePool API is not
/// served (or not read yet).
pub fn expected_domains(
    spec: &HAPolicySpec,
    nodepools: Option<(&[ReadPool], &BTreeSet<String>)>,
) -> Expected {
    let mut keys: Vec<ExpectedDomainsStatus> = (spec.expected_domains.iter())
        .map(|e| {
            let domains: BTreeSet<String> = e.domains.iter().cloned().collect();
            ExpectedDomainsStatus {
                topology_key: e.topology_key.clone(),
                domains: domains.into_iter().collect(),
                source: DomainSource::Policy,
            }
        })
        .collect();
    let mut warnings = Vec::new();
    let spreads_over_zones = spec.spread.iter().any(|s| s.topology_key == ZONE_KEY);
    if spreads_over_zones
        && !keys.iter().any(|k| k.topology_key == ZONE_KEY)
        && let Some((pools, with_nodes)) = nodepools
    {
        let from_pools = from_nodepools(pools, with_nodes);
        keys.extend(from_pools.keys);
        warnings = from_pools.warnings;
    }
    Expected { keys, warnings }
}

/// The zone key's expected domains as the NodePools say (none when they say nothing more than
/// the nodes do).
pub fn from_nodepools(pools: &[ReadPool], with_nodes: &BTreeSet<String>) -> Expected {
    let (zones, warnings) = nodepool_zones(pools, with_nodes);
    let keys = (zones.filter(|z| !z.is_empty()).into_iter())
        .map(|zones| ExpectedDomainsStatus {
            topology_key: ZONE_KEY.to_string(),
            domains: zones.into_iter().collect(),
            source: DomainSource::NodePools,
        })
        .collect();
    Expected { keys, warnings }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pool(name: &str, requirements: Value) -> Value {
        json!({"metadata": {"name": name},
               "spec": {"template": {"spec": {"requirements": requirements}}}})
    }

    fn zone(op: &str, values: &[&str]) -> Value {
        json!({"key": ZONE_KEY, "operator": op, "values": values})
    }

    fn set(zones: &[&str]) -> BTreeSet<String> {
        zones.iter().map(|z| z.to_string()).collect()
    }

    #[test]
    fn requirements_are_read_as_karpenter_reads_them() {
        let read = |reqs| pool_zones(&pool("p", reqs)).1;
        assert_eq!(
            read(json!([zone("In", &["a", "b"])])),
            Ok(PoolZones::Only(set(&["a", "b"])))
        );
        assert_eq!(
            read(json!([zone("NotIn", &["c"])])),
            Ok(PoolZones::Except(set(&["c"])))
        );
        assert_eq!(read(json!([zone("Exists", &[])])), Ok(PoolZones::Any));
        assert_eq!(
            read(json!([zone("DoesNotExist", &[])])),
            Ok(PoolZones::Only(set(&[])))
        );
        // Other keys say nothing about zones; several on the zone key intersect.
        assert_eq!(
            read(
                json!([{"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot"]}])
            ),
            Ok(PoolZones::Any)
        );
        assert_eq!(
            read(json!([zone("In", &["a", "b", "c"]), zone("NotIn", &["b"])])),
            Ok(PoolZones::Only(set(&["a", "c"])))
        );
        assert_eq!(
            pool_zones(&json!({"metadata": {"name": "p"}})).1,
            Ok(PoolZones::Any)
        );
        // Malformed: an error, never a panic.
        assert!(read(json!([zone("Gt", &["1"])])).is_err());
        assert!(read(json!([zone("In", &[])])).is_err());
        assert!(read(json!([{"key": ZONE_KEY}])).is_err());
        assert!(read(json!("not a list")).is_err());
        assert!(read(json!([{"key": ZONE_KEY, "operator": "In", "values": [1]}])).is_err());
    }

    #[test]
    fn several_pools_are_their_union_against_the_zones_with_nodes() {
        let with_nodes = set(&["a", "b"]);
        let pools = |reqs: Vec<Value>| -> Vec<ReadPool> {
            reqs.into_iter()
                .enumerate()
                .map(|(i, r)| pool_zones(&pool(&format!("p{i}"), r)))
                .collect()
        };
        // The recovered zone c has no nodes: a pool that lists it makes it expected.
        let (zones, warnings) = nodepool_zones(
            &pools(vec![json!([zone("In", &["a", "b", "c"])])]),
            &with_nodes,
        );
        assert_eq!((zones, warnings.len()), (Some(set(&["a", "b", "c"])), 0));
        // Two pools: the union; NotIn reads against every zone known.
        let (zones, _) = nodepool_zones(
            &pools(vec![
                json!([zone("In", &["c"])]),
                json!([zone("NotIn", &["a"])]),
            ]),
            &with_nodes,
        );
        assert_eq!(zones, Some(set(&["b", "c"])));
        // Pools without zone requirements say nothing more than the nodes do.
        let (zones, _) = nodepool_zones(&pools(vec![json!([])]), &with_nodes);
        assert_eq!(zones, None);
        // A malformed pool is a warning, and the others still count.
        let (zones, warnings) = nodepool_zones(
            &pools(vec![
                json!([zone("Lt", &["x"])]),
                json!([zone("In", &["c"])]),
            ]),
            &with_nodes,
        );
        assert_eq!(zones, Some(set(&["c"])));
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].starts_with("NodePool p0:"), "{warnings:?}");
    }

    #[test]
    fn the_policy_names_its_own_and_the_pools_fill_in_the_zone_key() {
        let spec = |extra: Value| -> HAPolicySpec {
            let mut spec = json!({"selector": {}, "spread": [{"topologyKey": ZONE_KEY}]});
            for (k, v) in extra.as_object().cloned().unwrap_or_default() {
                spec[k] = v;
            }
            serde_json::from_value(spec).unwrap()
        };
        let pools = vec![pool_zones(&pool(
            "p",
            json!([zone("In", &["a", "b", "c"])]),
        ))];
        let with_nodes = set(&["a", "b"]);
        let from_pools = expected_domains(&spec(json!({})), Some((&pools, &with_nodes)));
        assert_eq!(
            from_pools.of(ZONE_KEY),
            Some(&["a".to_string(), "b".into(), "c".into()][..])
        );
        assert_eq!(from_pools.keys[0].source, DomainSource::NodePools);
        let own = expected_domains(
            &spec(json!({"expectedDomains": [{"topologyKey": ZONE_KEY, "domains": ["b", "a"]}]})),
            Some((&pools, &with_nodes)),
        );
        assert_eq!(own.of(ZONE_KEY), Some(&["a".to_string(), "b".into()][..]));
        assert_eq!(own.keys[0].source, DomainSource::Policy);
        assert_eq!(
            expected_domains(&spec(json!({})), None),
            Expected::default()
        );
    }
}
