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

/// A UID as the caches key objects by: the 16 bytes of a UUID written as the API server writes
/// one (lowercase hex, 8-4-4-4-12), or any other text as it is. Each cached object's UID and its
/// controller's are kept twice (by controller, and by object); as `String`s that was four heap
/// allocations of 36 bytes per object, the largest share of these caches at the peak of a bulk
/// change (docs/benchmarks.md).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Uid {
    Uuid([u8; 16]),
    Other(Box<str>),
}

impl Uid {
    fn of(text: &str) -> Uid {
        uuid_bytes(text).map_or_else(|| Uid::Other(text.into()), Uid::Uuid)
    }
}

/// The bytes of `text` if it is a UUID in lowercase hex with its four dashes; None otherwise
/// (uppercase too, so that two different texts never share a key).
fn uuid_bytes(text: &str) -> Option<[u8; 16]> {
    let text = text.as_bytes();
    if text.len() != 36 {
        return None;
    }
    let mut bytes = [0u8; 16];
    let mut nibbles = 0;
    for (i, &c) in text.iter().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            if c != b'-' {
                return None;
            }
            continue;
        }
        let nibble = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        bytes[nibbles / 2] |= nibble << if nibbles % 2 == 0 { 4 } else { 0 };
        nibbles += 1;
    }
    Some(bytes)
}

/// The objects of every controller, by the controller's UID (each with its own UID), and each
/// object's controller.
struct ByController<C> {
    controlled: HashMap<Uid, Vec<(Uid, Arc<C>)>>,
    controller_of: HashMap<Uid, Uid>,
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
        let uid = Uid::of(uid);
        self.remove(&uid);
        let Some(controller) = controller_uid(object.meta()) else {
            return;
        };
        let controller = Uid::of(controller);
        self.controlled
            .entry(controller.clone())
            .or_default()
            .push((uid.clone(), Arc::new(object.cached())));
        self.controller_of.insert(uid, controller);
    }

    fn remove(&mut self, uid: &Uid) {
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
            .get(&Uid::of(controller))
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
                    self.write().remove(&Uid::of(uid));
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
    fn a_uuid_is_kept_as_its_bytes_and_any_other_uid_as_its_text() {
        let uuid = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
        assert_eq!(
            Uid::of(uuid),
            Uid::Uuid([
                0x0f, 0x1e, 0x2d, 0x3c, 0x4b, 0x5a, 0x69, 0x78, 0x87, 0x96, 0xa5, 0xb4, 0xc3, 0xd2,
                0xe1, 0xf0
            ])
        );
        // Each of these is some other text, never the bytes of a UUID it resembles: two
        // different UIDs must not share a key.
        for other in [
            "0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0",
            "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
            "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f",
            "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0a",
            "0f1e2d3c+4b5a-6978-8796-a5b4c3d2e1f0",
            "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1fg",
            "",
        ] {
            assert_eq!(Uid::of(other), Uid::Other(other.into()), "{other:?}");
        }
        assert_ne!(
            Uid::of(uuid),
            Uid::of("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f1")
        );
    }

    #[test]
    fn objects_with_uuid_uids_are_found_moved_and_forgotten() {
        let uuid = |n: u8| format!("00000000-0000-4000-8000-0000000000{n:02x}");
        let with_uuids = |name: &str, own: u8, controller: u8| {
            let mut rs = replica_set(name, Some(&uuid(controller)));
            rs.metadata.uid = Some(uuid(own));
            rs
        };
        let (cache, mut writer) = owned_cache::<CachedReplicaSet>();
        writer.apply(&watcher::Event::Apply(with_uuids("a1", 1, 0xa)));
        writer.apply(&watcher::Event::Apply(with_uuids("a2", 2, 0xa)));
        writer.apply(&watcher::Event::Apply(with_uuids("b1", 3, 0xb)));
        assert_eq!(names(cache.controlled_by(&uuid(0xa))), ["a1", "a2"]);
        assert!(
            cache.controlled_by(&uuid(0xa).to_uppercase()).is_empty(),
            "another text, another UID"
        );
        writer.apply(&watcher::Event::Apply(with_uuids("a2", 2, 0xb)));
        assert_eq!(names(cache.controlled_by(&uuid(0xa))), ["a1"]);
        assert_eq!(names(cache.controlled_by(&uuid(0xb))), ["a2", "b1"]);
        writer.apply(&watcher::Event::Delete(with_uuids("a1", 1, 0xa)));
        assert!(cache.controlled_by(&uuid(0xa)).is_empty());
        assert_eq!(cache.len(), 2);
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
