//! The cached SafeDeployment's body: its spec and status as compact JSON, LZ4-compressed
//! against one dictionary every body shares, so that what every object repeats (keys, condition
//! types, reasons and messages, health signals, pod-template fields) is held once.

use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use crate::api::{SafeDeploymentSpec, SafeDeploymentStatus};

/// The spec and status, as the cached body holds them.
#[derive(Serialize)]
struct BodyRef<'a> {
    spec: &'a SafeDeploymentSpec,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: &'a Option<SafeDeploymentStatus>,
}

/// The spec and status, read back from the cached body.
#[derive(Deserialize)]
struct Body {
    spec: SafeDeploymentSpec,
    #[serde(default)]
    status: Option<SafeDeploymentStatus>,
}

/// A cached SafeDeployment that could not be read back: a bug, since the cache holds what the
/// operator itself compressed from what serde wrote.
#[derive(Debug, thiserror::Error)]
pub enum CacheReadError {
    /// The compressed body did not decompress.
    #[error("decompressing the cached body: {0}")]
    Decompress(#[from] lz4_flex::block::DecompressError),
    /// The decompressed body did not parse.
    #[error("parsing the cached body: {0}")]
    Parse(#[from] serde_json::Error),
}

/// The LZ4 dictionary every cached body is compressed against: a made-up SafeDeployment's
/// spec and status (`cached/dictionary.json`, with names no workload uses), written the way the
/// cache writes a body, so that its keys, condition types, reasons and messages, health
/// signals and pod-template fields appear in the order serde writes them. A body of a few KB
/// compresses to a few hundred bytes (3,580 bytes of a real promoted object to 489; 1,453
/// without the dictionary). Built once; a dictionary that does not parse (a bug the
/// unit tests catch) leaves it empty, which only compresses less.
pub fn body_dictionary() -> &'static [u8] {
    static DICTIONARY: LazyLock<Vec<u8>> = LazyLock::new(|| {
        serde_json::from_str::<Body>(include_str!("dictionary.json"))
            .and_then(|Body { spec, status }| json(&spec, &status))
            .unwrap_or_default()
    });
    &DICTIONARY
}

/// The cached body of a spec and status.
pub(super) fn encode(
    spec: &SafeDeploymentSpec,
    status: &Option<SafeDeploymentStatus>,
) -> Result<Box<[u8]>, serde_json::Error> {
    Ok(compress(&json(spec, status)?))
}

/// The spec and status of a body [`encode`] made.
pub(super) fn decode(
    body: &[u8],
) -> Result<(SafeDeploymentSpec, Option<SafeDeploymentStatus>), CacheReadError> {
    let Body { spec, status } = serde_json::from_slice(&decompress(body)?)?;
    Ok((spec, status))
}

/// A spec and status as serde writes them, the way the body and the dictionary hold them.
fn json(
    spec: &SafeDeploymentSpec,
    status: &Option<SafeDeploymentStatus>,
) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&BodyRef { spec, status })
}

/// `json` compressed against the dictionary, with its length in front.
pub(super) fn compress(json: &[u8]) -> Box<[u8]> {
    lz4_flex::block::compress_prepend_size_with_dict(json, body_dictionary()).into_boxed_slice()
}

/// The JSON of a body [`compress`] made.
pub(super) fn decompress(body: &[u8]) -> Result<Vec<u8>, CacheReadError> {
    Ok(lz4_flex::block::decompress_size_prepended_with_dict(
        body,
        body_dictionary(),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dictionary_is_a_safe_deployment_body_and_shrinks_real_ones() {
        // The dictionary parses as a spec and status (an empty one would compress less,
        // silently), and it carries none of the bench workload's names, so that the bench's
        // ratio is what any workload gets.
        let dictionary = std::str::from_utf8(body_dictionary()).unwrap();
        assert!(dictionary.len() > 2_000, "{dictionary}");
        assert!(!dictionary.contains("app-1") && !dictionary.contains("registry.local"));
        // A promoted object of the bench workload, as the API server sent it.
        let text = include_str!("../../../tests/fixtures/bench/safedeployment-promoted.json");
        let cached: super::super::CachedSafeDeployment = serde_json::from_str(text).unwrap();
        let json = decompress(&cached.body).unwrap();
        let without_dictionary = lz4_flex::block::compress_prepend_size(&json);
        assert!(
            cached.body.len() * 2 < without_dictionary.len() && cached.body.len() * 5 < json.len(),
            "{} bytes with the dictionary, {} without, {} of JSON",
            cached.body.len(),
            without_dictionary.len(),
            json.len()
        );
        // And it reads back to the same object.
        let sd: crate::api::SafeDeployment = serde_json::from_str(text).unwrap();
        let expanded = cached.expand().unwrap();
        assert_eq!(expanded.spec, sd.spec);
        assert_eq!(
            serde_json::to_value(&expanded.status).unwrap(),
            serde_json::to_value(&sd.status).unwrap()
        );
    }
}
