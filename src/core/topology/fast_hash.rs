//! The hash map for the snapshot's and the pod index's indexes. Keys are short names and label
//! values; std's SipHash, built to resist flooding from the network, made indexing pods the
//! largest cost of a whole-cluster evaluation. foldhash (hashbrown's default) with a fixed seed
//! keeps iteration order the same from run to run.

use std::collections::HashMap;

/// A `HashMap` with foldhash's fast hasher.
pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

/// `value` hashed as a [`FastMap`] hashes its keys: for maps keyed by the hash of borrowed parts,
/// looked up without building an owned key.
pub fn fast_hash(value: impl std::hash::Hash) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::default().hash_one(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_keys_hash_equal_and_lookups_work() {
        let mut map: FastMap<String, usize> = FastMap::default();
        for i in 0..1000 {
            map.insert(format!("pod-{i}"), i);
        }
        assert!((0..1000).all(|i| map[&format!("pod-{i}")] == i));
        assert_eq!(map.get("pod-1000"), None);
    }
}
