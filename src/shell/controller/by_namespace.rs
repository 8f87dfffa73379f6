//! A reflector store with the names of its objects indexed by namespace, kept from the same watch
//! events: a reconcile reads its own namespace's workloads and budgets without walking every
//! namespace's (kube's `Store` only hands out everything).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use kube::Resource;
use kube::runtime::reflector::store::Writer;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher::Event;

/// The names of the objects of each namespace.
type Names = HashMap<String, BTreeSet<String>>;

/// Object names by namespace, following a watch as a reflector does: a relist (`Init` ..
/// `InitDone`) is gathered apart and replaces the whole index only once it is complete, so
/// between the two the index still answers from the previous list.
#[derive(Clone, Debug, Default)]
pub struct NamespaceIndex(Arc<Mutex<Indexed>>);

#[derive(Debug, Default)]
struct Indexed {
    live: Names,
    relisting: Option<Names>,
}

impl NamespaceIndex {
    /// Follows one watch event.
    pub fn apply<K: Resource>(&self, event: &Event<K>) {
        let mut index = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let place = |o: &K| {
            let meta = o.meta();
            Some((meta.namespace.clone()?, meta.name.clone()?))
        };
        match event {
            Event::Apply(o) => {
                if let Some((namespace, name)) = place(o) {
                    index.live.entry(namespace).or_default().insert(name);
                }
            }
            Event::Delete(o) => {
                if let Some((namespace, name)) = place(o) {
                    let emptied = index.live.get_mut(&namespace).is_some_and(|names| {
                        names.remove(&name);
                        names.is_empty()
                    });
                    if emptied {
                        index.live.remove(&namespace);
                    }
                }
            }
            Event::Init => index.relisting = Some(Names::new()),
            Event::InitApply(o) => {
                if let (Some(relisting), Some((namespace, name))) =
                    (index.relisting.as_mut(), place(o))
                {
                    relisting.entry(namespace).or_default().insert(name);
                }
            }
            Event::InitDone => {
                if let Some(listed) = index.relisting.take() {
                    index.live = listed;
                }
            }
        }
    }

    /// The names of the namespace's objects, sorted.
    pub fn names(&self, namespace: &str) -> Vec<String> {
        let index = self.0.lock().unwrap_or_else(|p| p.into_inner());
        (index.live.get(namespace).into_iter().flatten())
            .cloned()
            .collect()
    }
}

/// A reflector's store and the namespace index of the same watch.
#[derive(Clone)]
pub struct IndexedStore<K: Resource + 'static>
where
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    pub store: Store<K>,
    index: NamespaceIndex,
    dyntype: K::DynamicType,
}

impl<K> IndexedStore<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    /// An empty store and the writer that fills it, as `reflector::store_with` gives them; every
    /// event the writer applies must go to [`Self::index`] too.
    pub fn new(dyntype: K::DynamicType) -> (Self, Writer<K>) {
        let writer = Writer::new(dyntype.clone());
        let store = Self {
            store: writer.as_reader(),
            index: NamespaceIndex::default(),
            dyntype,
        };
        (store, writer)
    }

    /// The index the watch feeds beside the writer.
    pub fn index(&self) -> &NamespaceIndex {
        &self.index
    }

    /// The namespace's objects, by name: what the index names and the store still holds.
    pub fn in_namespace(&self, namespace: &str) -> Vec<Arc<K>> {
        (self.index.names(namespace).into_iter())
            .filter_map(|name| {
                let key = ObjectRef::new_with(&name, self.dyntype.clone()).within(namespace);
                self.store.get(&key)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;

    fn budget(namespace: &str, name: &str) -> PodDisruptionBudget {
        let mut b = PodDisruptionBudget::default();
        b.metadata.namespace = Some(namespace.into());
        b.metadata.name = Some(name.into());
        b
    }

    /// Feeds the same events to a store and an index, as the controller's watch does.
    fn follow(events: Vec<Event<PodDisruptionBudget>>) -> IndexedStore<PodDisruptionBudget> {
        let (store, mut writer) = IndexedStore::new(());
        for e in &events {
            writer.apply_watcher_event(e);
            store.index().apply(e);
        }
        store
    }

    fn names(store: &IndexedStore<PodDisruptionBudget>, namespace: &str) -> Vec<String> {
        (store.in_namespace(namespace).iter())
            .map(|b| b.metadata.name.clone().unwrap_or_default())
            .collect()
    }

    #[test]
    fn a_namespace_holds_only_its_own_objects_and_forgets_deleted_ones() {
        let store = follow(vec![
            Event::Apply(budget("a", "web")),
            Event::Apply(budget("b", "web")),
            Event::Apply(budget("a", "db")),
            Event::Apply(budget("a", "db")),
            Event::Delete(budget("b", "web")),
        ]);
        assert_eq!(names(&store, "a"), ["db", "web"]);
        assert!(names(&store, "b").is_empty());
        assert!(names(&store, "c").is_empty());
        assert!(
            store.index().names("b").is_empty(),
            "the index itself forgets the deleted object"
        );
    }

    #[test]
    fn a_relist_replaces_the_index_only_once_it_is_complete() {
        let events = vec![
            Event::Apply(budget("a", "old")),
            Event::Init,
            Event::InitApply(budget("a", "new")),
        ];
        let store = follow(events.clone());
        assert_eq!(names(&store, "a"), ["old"], "answers from the last list");
        let mut done = events;
        done.push(Event::InitDone);
        let store = follow(done);
        assert_eq!(names(&store, "a"), ["new"], "the old object is gone");
        assert_eq!(store.index().names("a"), ["new"], "from the index too");
    }
}
