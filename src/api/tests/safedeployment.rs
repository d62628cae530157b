//! The status types as they are read and written.

use super::*;

#[test]
fn status_maps_read_and_write_as_the_objects_a_btree_map_gives() {
    let written = serde_json::json!({
        "number": 2, "hash": "abc",
        "images": {"web/app": "app:v2", "api/app": "api:v2", "db/app": "db:v1"},
        "config": {"secret/tls": "sha256:2", "configmap/flags": "sha256:1"}
    });
    let record: RevisionRecord = serde_json::from_value(written.clone()).unwrap();
    assert_eq!(
        record.images.get("api/app").map(String::as_str),
        Some("api:v2")
    );
    assert_eq!(record.config.len(), 2);
    let as_btree: BTreeMap<String, String> =
        serde_json::from_value(written["images"].clone()).unwrap();
    assert_eq!(
        serde_json::to_string(&record.images).unwrap(),
        serde_json::to_string(&as_btree).unwrap(),
        "the same keys in the same (sorted) order"
    );
    // Empty maps are left out, as before.
    let bare = serde_json::to_value(RevisionRecord::default()).unwrap();
    assert!(bare.get("images").is_none() && bare.get("config").is_none());
}
