//! The caches of owned objects (ReplicaSets, pods), kept by the UID of each object's
//! controller: a reconcile reads what one owner controls without looking at any other cached
//! object. A store keyed by name (kube's reflector store) had every reconcile scan all of them,
//! so a bulk change of N SafeDeployments cost N² look-ups. Each object is kept in the form the
//! reconciles read ([`Owned::Cached`]), not as it was watched.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::runtime::watcher;
use tokio::sync::watch;

use super::cached::{CachedPod, CachedReplicaSet, OwnedReplicaSet, WatchedPod};

/// The UID of the owner reference with `controller: true`.
pub fn controller_uid(metadata: &ObjectMeta) -> Option<&str> {
    metadata
        .owner_references
        .as_deref()?
        .iter()
        .find(|o| o.controller == Some(true))
        .map(|o| o.uid.as_str())
}

/// A watched object an owned cache can keep: what it keeps of it.
pub trait Owned: Resource {
    /// The form the cache keeps.
    type Cached: Send + Sync;
    /// What the cache keeps of this object.
    fn cached(&self) -> Self::Cached;
}

impl Owned for CachedReplicaSet {
    type Cached = OwnedReplicaSet;
    fn cached(&self) -> OwnedReplicaSet {
        OwnedReplicaSet::of(self)
    }
}

impl Owned for WatchedPod {
    type Cached = CachedPod;
    fn cached(&self) -> CachedPod {
        CachedPod::of(self)
    }
}

/// The objects of every controller, by the controller's UID (each with its own UID), and each
/// object's controller.
struct ByController<C> {
    controlled: HashMap<String, Vec<(String, Arc<C>)>>,
    controller_of: HashMap<String, String>,
}

impl<C> Default for ByController<C> {
    fn default() -> Self {
        ByController {
            controlled: HashMap::new(),
            controller_of: HashMap::new(),
        }
    }
}

impl<C> ByController<C> {
    /// Stores `object` (replacing an earlier version). One without a UID or a controller is
    /// nobody's and is not kept.
    fn insert<K: Owned<Cached = C>>(&mut self, object: &K) {
        let Some(uid) = object.meta().uid.as_deref() else {
            return;
        };
        self.remove(uid);
        let Some(controller) = controller_uid(object.meta()) else {
            return;
        };
        self.controlled
            .entry(controller.to_string())
            .or_default()
            .push((uid.to_string(), Arc::new(object.cached())));
        self.controller_of
            .insert(uid.to_string(), controller.to_string());
    }

    fn remove(&mut self, uid: &str) {
        let Some(controller) = self.controller_of.remove(uid) else {
            return;
        };
        if let Some(objects) = self.controlled.get_mut(&controller) {
            objects.retain(|(object_uid, _)| object_uid != uid);
            if objects.is_empty() {
                self.controlled.remove(&controller);
            }
        }
    }

    fn len(&self) -> usize {
        self.controller_of.len()
    }
}

/// Reading side of an owned cache. Cheap to clone.
pub struct OwnedCache<K: Owned> {
    objects: Arc<RwLock<ByController<K::Cached>>>,
    ready: watch::Receiver<bool>,
}

/// Writing side of an owned cache: fed every event of the cache's watch.
pub struct OwnedCacheWriter<K: Owned> {
    objects: Arc<RwLock<ByController<K::Cached>>>,
    /// The objects of a (re)list under way: they replace the cache at its end, as a reflector
    /// store does, so objects deleted while the watch was down are forgotten.
    relisting: Option<ByController<K::Cached>>,
    ready: watch::Sender<bool>,
}

/// An empty owned cache and its writer.
pub fn owned_cache<K: Owned>() -> (OwnedCache<K>, OwnedCacheWriter<K>) {
    let objects = Arc::new(RwLock::new(ByController::default()));
    let (ready_tx, ready_rx) = watch::channel(false);
    (
        OwnedCache {
            objects: objects.clone(),
            ready: ready_rx,
        },
        OwnedCacheWriter {
            objects,
            relisting: None,
            ready: ready_tx,
        },
    )
}

impl<K: Owned> Clone for OwnedCache<K> {
    fn clone(&self) -> Self {
        OwnedCache {
            objects: self.objects.clone(),
            ready: self.ready.clone(),
        }
    }
}

impl<K: Owned> OwnedCache<K> {
    /// The cached objects whose controller has UID `controller`.
    pub fn controlled_by(&self, controller: &str) -> Vec<Arc<K::Cached>> {
        self.objects
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .controlled
            .get(controller)
            .map(|objects| objects.iter().map(|(_, o)| o.clone()).collect())
            .unwrap_or_default()
    }

    /// How many objects are cached.
    pub fn len(&self) -> usize {
        self.objects
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no object is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Resolves once the first list has been stored; an error if the writer was dropped first.
    pub async fn wait_until_ready(&self) -> Result<(), watch::error::RecvError> {
        self.ready
            .clone()
            .wait_for(|ready| *ready)
            .await
            .map(|_| ())
    }
}

impl<K: Owned> OwnedCacheWriter<K> {
    /// Applies one event of the watch.
    pub fn apply(&mut self, event: &watcher::Event<K>) {
        match event {
            watcher::Event::Apply(object) => self.write().insert(object),
            watcher::Event::Delete(object) => {
                if let Some(uid) = object.meta().uid.as_deref() {
                    self.write().remove(uid);
                }
            }
            watcher::Event::Init => self.relisting = Some(ByController::default()),
            watcher::Event::InitApply(object) => {
                self.relisting
                    .get_or_insert_with(ByController::default)
                    .insert(object);
            }
            watcher::Event::InitDone => {
                let listed = self.relisting.take().unwrap_or_default();
                *self.write() = listed;
                self.ready.send_replace(true);
            }
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, ByController<K::Cached>> {
        self.objects.write().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    fn replica_set(name: &str, controller: Option<&str>) -> CachedReplicaSet {
        CachedReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                uid: Some(format!("uid-{name}")),
                owner_references: controller.map(|c| {
                    vec![
                        OwnerReference {
                            uid: format!("other-{c}"),
                            controller: Some(false),
                            ..Default::default()
                        },
                        OwnerReference {
                            uid: c.into(),
                            controller: Some(true),
                            ..Default::default()
                        },
                    ]
                }),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn names(objects: Vec<Arc<OwnedReplicaSet>>) -> Vec<String> {
        let mut names: Vec<String> = objects.iter().map(|rs| rs.name.clone()).collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn objects_are_found_by_their_controller_only() {
        let (cache, mut writer) = owned_cache::<CachedReplicaSet>();
        writer.apply(&watcher::Event::Init);
        writer.apply(&watcher::Event::InitApply(replica_set("a1", Some("rs-a"))));
        writer.apply(&watcher::Event::InitApply(replica_set("b1", Some("rs-b"))));
        writer.apply(&watcher::Event::InitApply(replica_set("orphan", None)));
        assert!(cache.is_empty(), "a list under way is not visible");
        writer.apply(&watcher::Event::InitDone);
        cache.wait_until_ready().await.unwrap();
        writer.apply(&watcher::Event::Apply(replica_set("a2", Some("rs-a"))));
        assert_eq!(names(cache.controlled_by("rs-a")), ["a1", "a2"]);
        assert_eq!(names(cache.controlled_by("rs-b")), ["b1"]);
        assert!(
            cache.controlled_by("other-rs-a").is_empty(),
            "not a controller"
        );
        assert_eq!(cache.len(), 3, "the orphan is not kept");
    }

    #[test]
    fn an_update_replaces_and_a_changed_controller_moves_the_object() {
        let (cache, mut writer) = owned_cache::<CachedReplicaSet>();
        writer.apply(&watcher::Event::Apply(replica_set("a1", Some("rs-a"))));
        let mut scaled = replica_set("a1", Some("rs-a"));
        scaled.spec = Some(super::super::cached::CachedReplicaSetSpec { replicas: Some(2) });
        writer.apply(&watcher::Event::Apply(scaled));
        let found = cache.controlled_by("rs-a");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].replicas, 2);
        writer.apply(&watcher::Event::Apply(replica_set("a1", Some("rs-b"))));
        assert!(cache.controlled_by("rs-a").is_empty());
        assert_eq!(names(cache.controlled_by("rs-b")), ["a1"]);
        writer.apply(&watcher::Event::Apply(replica_set("a1", None)));
        assert!(cache.is_empty(), "released by its controller: nobody's");
    }

    #[test]
    fn a_delete_forgets_and_a_relist_drops_what_was_deleted_meanwhile() {
        let (cache, mut writer) = owned_cache::<CachedReplicaSet>();
        for name in ["a1", "a2", "a3"] {
            writer.apply(&watcher::Event::Apply(replica_set(name, Some("rs-a"))));
        }
        writer.apply(&watcher::Event::Delete(replica_set("a2", Some("rs-a"))));
        assert_eq!(names(cache.controlled_by("rs-a")), ["a1", "a3"]);
        writer.apply(&watcher::Event::Init);
        writer.apply(&watcher::Event::InitApply(replica_set("a3", Some("rs-a"))));
        assert_eq!(
            cache.len(),
            2,
            "the old objects stay until the relist is done"
        );
        writer.apply(&watcher::Event::InitDone);
        assert_eq!(names(cache.controlled_by("rs-a")), ["a3"]);
        writer.apply(&watcher::Event::Delete(replica_set("a3", Some("rs-a"))));
        assert!(cache.is_empty());
    }
}
