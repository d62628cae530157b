//! What one SafeDeployment and one ReplicaSet cost in the operator's caches: heap bytes and
//! allocations of the parsed object (what kube's reflector would keep) against the cached form
//! (`CachedSafeDeployment`, `OwnedReplicaSet`), and the time to parse a SafeDeployment and to
//! read the cached one back. The objects are real ones, as the API server sent them: the
//! bench-peers workload's SafeDeployment after a promotion and a stable ReplicaSet
//! (`tests/fixtures/bench/`). Run: `cargo bench --bench cache_memory`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};
use std::time::Instant;

use safedeploy::api::SafeDeployment;
use safedeploy::controller::cached::{CachedReplicaSet, CachedSafeDeployment, OwnedReplicaSet};

/// The system allocator, counting the bytes and allocations that are live.
struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
static LIVE_ALLOCATIONS: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Relaxed);
        LIVE_ALLOCATIONS.fetch_add(1, Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Relaxed);
        LIVE_ALLOCATIONS.fetch_sub(1, Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new_size as isize - layout.size() as isize, Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const OBJECTS: usize = 1_000;
const ROUNDS: u32 = 10_000;

/// Live heap bytes and allocations per object while `OBJECTS` made by `make` are kept (each in
/// an `Arc`, as a reflector store keeps them).
fn held_per_object<T>(make: impl Fn() -> T) -> (isize, isize) {
    let (bytes, allocations) = (LIVE_BYTES.load(Relaxed), LIVE_ALLOCATIONS.load(Relaxed));
    let kept: Vec<Arc<T>> = (0..OBJECTS).map(|_| Arc::new(make())).collect();
    let per_object = (
        (LIVE_BYTES.load(Relaxed) - bytes) / OBJECTS as isize,
        (LIVE_ALLOCATIONS.load(Relaxed) - allocations) / OBJECTS as isize,
    );
    drop(kept);
    per_object
}

/// Mean time of `f` over `ROUNDS` calls.
fn time_per_call<T>(f: impl Fn() -> T) -> std::time::Duration {
    let start = Instant::now();
    for _ in 0..ROUNDS {
        black_box(f());
    }
    start.elapsed() / ROUNDS
}

fn main() {
    let text = include_str!("../tests/fixtures/bench/safedeployment-promoted.json");
    let parse = || -> SafeDeployment {
        let mut sd: SafeDeployment = serde_json::from_str(text).expect("the fixture parses");
        // What the cache would keep at best (the reflector keeps managedFields otherwise).
        sd.metadata.managed_fields = None;
        sd
    };
    let cache =
        || -> CachedSafeDeployment { serde_json::from_str(text).expect("the fixture caches") };
    let cached = cache();
    let (parsed_bytes, parsed_allocations) = held_per_object(parse);
    let (cached_bytes, cached_allocations) = held_per_object(cache);
    println!(
        "object JSON as sent (with managedFields): {} bytes",
        text.len()
    );
    println!(
        "parsed SafeDeployment: {parsed_bytes} heap bytes in {parsed_allocations} allocations per object"
    );
    println!(
        "CachedSafeDeployment:  {cached_bytes} heap bytes in {cached_allocations} allocations per object"
    );
    let replica_set = include_str!("../tests/fixtures/bench/replicaset-stable.json");
    let full_replica_set = || -> k8s_openapi::api::apps::v1::ReplicaSet {
        let mut rs: k8s_openapi::api::apps::v1::ReplicaSet =
            serde_json::from_str(replica_set).expect("the fixture parses");
        rs.metadata.managed_fields = None;
        rs
    };
    let watched_replica_set =
        || -> CachedReplicaSet { serde_json::from_str(replica_set).expect("the fixture parses") };
    let watched = watched_replica_set();
    let (full_bytes, full_allocations) = held_per_object(full_replica_set);
    let (watched_bytes, watched_allocations) = held_per_object(watched_replica_set);
    let (owned_bytes, owned_allocations) = held_per_object(|| OwnedReplicaSet::of(&watched));
    println!(
        "ReplicaSet, parsed whole:     {full_bytes} heap bytes in {full_allocations} allocations per object"
    );
    println!(
        "ReplicaSet, as watched:       {watched_bytes} heap bytes in {watched_allocations} allocations per object"
    );
    println!(
        "ReplicaSet, as cached:        {owned_bytes} heap bytes in {owned_allocations} allocations per object"
    );
    println!("parse to SafeDeployment:       {:?}", time_per_call(parse));
    println!("parse to CachedSafeDeployment: {:?}", time_per_call(cache));
    println!(
        "expand (a reconcile's read):   {:?}",
        time_per_call(|| cached.expand().expect("the cached form reads back"))
    );
}
