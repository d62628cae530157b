//! The heap the operator reports (`safedeploy_heap_bytes`) follows the allocator: memory handed
//! out shows as `in_use`, memory freed in the middle of the heap (where glibc keeps it) as
//! `free`. Its own test binary, so that no other test allocates in the same process meanwhile.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn the_heap_metrics_follow_allocations_and_frees() {
    use safedeploy::telemetry::Metrics;

    const BLOCK: usize = 256;
    const BLOCKS: usize = 96 * 1024; // 24 MiB in small blocks, served from an arena
    let metrics = Metrics::default();
    let heap = |kind: &str| -> u64 {
        let text = metrics.render();
        let prefix = format!("safedeploy_heap_bytes{{kind=\"{kind}\"}} ");
        text.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("no heap_bytes {kind} in\n{text}"))
    };
    let in_use_before = heap("in_use");
    let mut blocks: Vec<Vec<u8>> = (0..BLOCKS).map(|i| vec![(i % 251) as u8; BLOCK]).collect();
    // The pin keeps the freed blocks below the arena's top, where glibc keeps them as free.
    let pin = vec![1u8; BLOCK];
    let in_use_filled = heap("in_use");
    assert!(
        in_use_filled >= in_use_before + (BLOCK * BLOCKS) as u64,
        "in use {in_use_before} -> {in_use_filled} after 24 MiB"
    );
    blocks.clear();
    blocks.shrink_to_fit();
    let (in_use_freed, free) = (heap("in_use"), heap("free"));
    assert!(
        in_use_freed + (BLOCK * BLOCKS / 2) as u64 <= in_use_filled,
        "in use {in_use_filled} -> {in_use_freed} after freeing 24 MiB"
    );
    assert!(
        free >= (BLOCK * BLOCKS / 2) as u64,
        "free after freeing 24 MiB: {free}"
    );
    assert_eq!(pin.len(), BLOCK);
}
