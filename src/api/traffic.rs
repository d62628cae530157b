//! The minimum-traffic guard of an analysis metric (`metrics[].minimumTraffic`): the data shape
//! and its CEL rules only. The judgement lives in `crate::analysis::traffic`, the query in
//! `crate::analysis::provider`.
//!
//! Why it exists: a count-style metric such as an error ratio passes trivially on a canary that
//! served almost nothing (0 errors of 3 requests is 0%). The guard asks the metric's provider
//! how much traffic the canary had, and withholds a pass below the minimum.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Largest `minimum` admission accepts.
pub const MAX_MINIMUM_TRAFFIC: f64 = 1.0e12;

/// Largest traffic reading that is believed. A count or rate above it (or infinite) is not a
/// plausible amount of traffic but a broken query, and never counts as enough.
pub const MAX_PLAUSIBLE_TRAFFIC: f64 = 1.0e15;

// Every minimum admission accepts can be met by a believable reading.
const _: () = assert!(MAX_MINIMUM_TRAFFIC < MAX_PLAUSIBLE_TRAFFIC);

/// The least traffic the canary must have had for a measurement of the metric to count as good
/// news. For a `prometheus` metric, `query` is PromQL sent to the metric's own Prometheus
/// (address and timeout), with the same placeholders as the metric's query; it must select the
/// canary (`{{canary}}` or `{{revision}}`) and give one value, such as the canary's requests
/// over the metric's window: `sum(increase(http_requests_total{version="{{canary}}"}[5m]))`.
/// For a `web` metric, `jsonPath` selects the traffic in the same answer as the canary's value
/// (whose URL or body must then select the canary).
///
/// Below `minimum` (or when the answer is empty, NaN, negative, infinite or above 10^15) the
/// measurement's verdict is `InsufficientTraffic`: not judged, never a pass, so the run cannot
/// pass on it and the rollout holds (bounded by the progress deadline). A `Fail` or `Critical`
/// verdict stands whatever the traffic: the guard only withholds good news. An error of the
/// traffic query is a provider error of the metric (`consecutiveErrorLimit` and `onError` apply).
/// Not for `kubernetes` metrics.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.minimum > 0.0 && self.minimum <= 1000000000000.0",
     "message": "minimumTraffic.minimum must be above 0 and at most 10^12 (with 0 every canary would have enough traffic)"},
    {"rule": "has(self.query) != has(self.jsonPath)",
     "message": "set exactly one of minimumTraffic.query (for a prometheus metric) or minimumTraffic.jsonPath (for a web metric)"},
    {"rule": r"!has(self.query) || self.query.matches(r'\{\{\s*(canary|revision)\s*\}\}')",
     "message": "minimumTraffic.query must select the canary with {{canary}} (or {{revision}}): the traffic of the whole service says nothing about the canary's"},
    {"rule": "!has(self.jsonPath) || self.jsonPath.startsWith('$')",
     "message": "minimumTraffic.jsonPath must start with $ (RFC 9535), such as $.data.requests"},
]))]
pub struct MinimumTraffic {
    /// For a `prometheus` metric: PromQL giving the canary's traffic as one value (a count over
    /// a window, or a rate), with the placeholders of the metric's query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 8192))]
    pub query: Option<String>,
    /// For a `web` metric: JSONPath (RFC 9535) selecting one number, the canary's traffic, in
    /// the answer to the canary's request, such as `$.data.requests`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub json_path: Option<String>,
    /// The least traffic (in the query's unit) that lets a measurement pass; above 0, at most
    /// 10^12.
    #[schemars(range(min = 0.0, max = 1.0e12))]
    pub minimum: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_as_documented_and_carries_its_rules() {
        let guard: MinimumTraffic = serde_yaml::from_str(
            "query: sum(increase(requests_total{version=\"{{canary}}\"}[1m]))\nminimum: 100\n",
        )
        .unwrap();
        assert_eq!(guard.minimum, 100.0);
        assert_eq!(guard.json_path, None);
        let schema = serde_json::to_string(&schemars::schema_for!(MinimumTraffic)).unwrap();
        assert!(schema.contains("minimumTraffic.minimum must be above 0"));
        assert!(schema.contains("minimumTraffic.query must select the canary"));
        assert!(schema.contains("set exactly one of minimumTraffic.query"));
        assert!(serde_json::from_str::<MinimumTraffic>(r#"{"query": "x"}"#).is_err());
    }
}
