//! The backend recipes of docs/metrics-backends.md (Datadog, New Relic NerdGraph, Graphite),
//! read from the page itself and pointed at local fakes. Each fake checks the request's shape
//! (path, method, parameters, headers, the time window) and answers in the real API's response
//! shape, so a recipe that drifts from the API, or a window that does not follow the
//! measurement's instant, fails here.
//!
//! Unit level on purpose: the Secret's path from the API server (opt-in label read from the
//! metadata, then the data) is `controller::analysis::secret_headers`, which the real-cluster
//! tests of headersFrom already cover; what is new here is the request each recipe makes.

use std::sync::Mutex;

use super::*;

const PAGE: &str = include_str!("../../../../docs/metrics-backends.md");

/// The analysis template of the page's block marked `# recipe: <name>`, its hosts replaced by
/// the fake's address.
fn recipe(name: &str, addr: SocketAddr) -> AnalysisTemplate {
    let marker = format!("```yaml\n# recipe: {name}\n");
    let start = PAGE.find(&marker).expect("the recipe is on the page") + "```yaml\n".len();
    let end = start + PAGE[start..].find("```").expect("the block ends");
    let text = PAGE[start..end]
        .replace("https://api.datadoghq.com", &format!("http://{addr}"))
        .replace("https://api.newrelic.com", &format!("http://{addr}"))
        .replace("http://graphite.monitoring:8080", &format!("http://{addr}"));
    serde_yaml::from_str(&text).expect("the recipe is an analysis template")
}

/// What a fake saw: the requests' time windows as the API's own parameters, and the revisions
/// they asked for.
#[derive(Default)]
struct Seen {
    windows: Vec<(String, String)>,
    revisions: Vec<String>,
}

type Shared = Arc<Mutex<Seen>>;

/// The value each fake answers for a revision: the canary 10% above the baseline.
fn value_of(revision: &str) -> Option<f64> {
    match revision {
        "canary-hash" => Some(0.33),
        "stable-hash" => Some(0.30),
        _ => None,
    }
}

fn refuse(status: StatusCode, why: &str) -> (StatusCode, String) {
    (status, serde_json::json!({ "errors": [why] }).to_string())
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Datadog's `GET /api/v1/query`: both keys, `from`/`to` in seconds, the query.
fn fake_datadog(seen: Shared) -> Router {
    let query = move |headers: HeaderMap, Query(params): Query<HashMap<String, String>>| {
        let seen = seen.clone();
        async move {
            if header(&headers, "dd-api-key") != Some("dd-api")
                || header(&headers, "dd-application-key") != Some("dd-app")
            {
                return refuse(StatusCode::FORBIDDEN, "Forbidden");
            }
            let (Some(from), Some(to), Some(query)) =
                (params.get("from"), params.get("to"), params.get("query"))
            else {
                return refuse(StatusCode::BAD_REQUEST, "from, to and query are required");
            };
            let seconds = |t: &str| t.parse::<i64>().ok();
            let (Some(from_s), Some(_)) = (seconds(from), seconds(to)) else {
                return refuse(StatusCode::BAD_REQUEST, "from and to are epoch seconds");
            };
            let prefix = "avg:trace.http.request.duration.by.service.99p{service:checkout,version:";
            let Some(revision) = query.strip_prefix(prefix).and_then(|r| r.strip_suffix('}'))
            else {
                return refuse(StatusCode::BAD_REQUEST, "unexpected query");
            };
            let mut seen = seen.lock().unwrap();
            seen.windows.push((from.clone(), to.clone()));
            seen.revisions.push(revision.to_string());
            let Some(value) = value_of(revision) else {
                return (StatusCode::OK, r#"{"status":"ok","series":[]}"#.into());
            };
            let ms = from_s * 1000;
            let body = serde_json::json!({
                "status": "ok", "res_type": "time_series", "query": query,
                "from_date": ms, "to_date": ms + 300_000,
                "series": [{
                    "metric": "trace.http.request.duration.by.service.99p",
                    "scope": format!("service:checkout,version:{revision}"),
                    "expression": query, "interval": 60, "length": 3, "unit": null,
                    "pointlist": [[ms as f64, 9.0], [(ms + 60_000) as f64, 8.0], [(ms + 120_000) as f64, value]],
                }],
            });
            (StatusCode::OK, body.to_string())
        }
    };
    Router::new().route("/api/v1/query", get(query))
}

/// NerdGraph's `POST /graphql`: the API-Key, a JSON body whose GraphQL query holds the NRQL
/// with `SINCE`/`UNTIL` in epoch milliseconds.
fn fake_newrelic(seen: Shared) -> Router {
    let graphql = move |headers: HeaderMap, body: String| {
        let seen = seen.clone();
        async move {
            if header(&headers, "api-key") != Some("NRAK-test") {
                return refuse(StatusCode::UNAUTHORIZED, "Invalid API key");
            }
            if header(&headers, "content-type") != Some("application/json") {
                return refuse(StatusCode::UNSUPPORTED_MEDIA_TYPE, "JSON body expected");
            }
            let Ok(parsed) = serde_json::from_str::<serde_json::Value>(&body) else {
                return refuse(StatusCode::BAD_REQUEST, "the body is not JSON");
            };
            let query = parsed["query"].as_str().unwrap_or_default();
            let nrql_start = "{ actor { account(id: 1234567) { nrql(query: \"SELECT average(duration) AS p99 FROM Transaction WHERE appName = 'checkout' AND tags.revision = '";
            let Some(rest) = query.strip_prefix(nrql_start) else {
                return refuse(StatusCode::BAD_REQUEST, "unexpected GraphQL query");
            };
            let Some((revision, rest)) = rest.split_once("' SINCE ") else {
                return refuse(StatusCode::BAD_REQUEST, "no SINCE");
            };
            let Some((since, rest)) = rest.split_once(" UNTIL ") else {
                return refuse(StatusCode::BAD_REQUEST, "no UNTIL");
            };
            let Some(until) = rest.strip_suffix("\") { results } } } }") else {
                return refuse(StatusCode::BAD_REQUEST, "unexpected GraphQL query end");
            };
            let mut seen = seen.lock().unwrap();
            seen.windows.push((since.to_string(), until.to_string()));
            seen.revisions.push(revision.to_string());
            let results = match value_of(revision) {
                Some(value) => serde_json::json!([{ "p99": value }]),
                None => serde_json::json!([{ "p99": null }]),
            };
            let body = serde_json::json!({
                "data": { "actor": { "account": { "nrql": { "results": results } } } }
            });
            (StatusCode::OK, body.to_string())
        }
    };
    Router::new().route("/graphql", post(graphql))
}

/// Graphite's `GET /render`: target, `from`/`until` in seconds, JSON, one consolidated point.
fn fake_graphite(seen: Shared) -> Router {
    let render = move |Query(params): Query<HashMap<String, String>>| {
        let seen = seen.clone();
        async move {
            let get = |k: &str| params.get(k).map(String::as_str);
            if get("format") != Some("json") || get("maxDataPoints") != Some("1") {
                return refuse(StatusCode::BAD_REQUEST, "format=json&maxDataPoints=1 expected");
            }
            let (Some(from), Some(until), Some(target)) =
                (get("from"), get("until"), get("target"))
            else {
                return refuse(StatusCode::BAD_REQUEST, "from, until and target are required");
            };
            let Some(revision) = target
                .strip_prefix("stats.timers.checkout.")
                .and_then(|t| t.strip_suffix(".p99"))
            else {
                return refuse(StatusCode::BAD_REQUEST, "unexpected target");
            };
            let mut seen = seen.lock().unwrap();
            seen.windows.push((from.to_string(), until.to_string()));
            seen.revisions.push(revision.to_string());
            let point = value_of(revision).map_or(serde_json::Value::Null, |v| v.into());
            let body = serde_json::json!([{
                "target": target, "tags": { "name": target },
                "datapoints": [[point, until.parse::<i64>().unwrap_or(0)]],
            }]);
            (StatusCode::OK, body.to_string())
        }
    };
    Router::new().route("/render", get(render))
}

fn keys(secret: &str, pairs: &[(&str, &str)]) -> SecretHeaders {
    let data = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    BTreeMap::from([(secret.to_string(), Ok(data))])
}

async fn measure_recipe(
    template: &AnalysisTemplate,
    secrets: &SecretHeaders,
    at: Timestamp,
) -> MetricObservation {
    let providers = Providers::new().unwrap();
    let mut observations = providers
        .measure_template(
            template,
            &vars(),
            secrets,
            &Egress::Any,
            &SidePods::default(),
            at,
        )
        .await;
    assert_eq!(observations.len(), 1);
    observations.remove(0)
}

/// Measures the recipe at two instants five minutes apart (as consecutive measurements, or a
/// replay's simulated ones) and checks the values and the windows the fake saw.
async fn check_recipe(
    name: &str,
    fake: fn(Shared) -> Router,
    secrets: SecretHeaders,
    window_of: fn(Timestamp) -> (String, String),
) {
    let seen = Shared::default();
    let addr = serve(fake(seen.clone())).await;
    let template = recipe(name, addr);
    let first: Timestamp = "2026-03-01T12:00:00Z".parse().unwrap();
    let second: Timestamp = "2026-03-01T12:05:00Z".parse().unwrap();
    for at in [first, second] {
        let observation = measure_recipe(&template, &secrets, at).await;
        assert_eq!(observation.canary, Some(Ok(0.33)), "{name} canary at {at}");
        assert_eq!(observation.baseline, Some(Ok(0.30)), "{name} baseline at {at}");
        let outcome = run::advance(
            &template,
            &mut Default::default(),
            std::slice::from_ref(&observation),
            at,
        );
        assert!(matches!(outcome, RunOutcome::Continue { .. }), "{name}: {outcome:?}");
    }
    let seen = seen.lock().unwrap();
    let (w1, w2) = (window_of(first), window_of(second));
    // Canary and baseline, at each instant; the second window starts where the first ended.
    assert_eq!(seen.windows.len(), 4, "{name}");
    assert!(seen.windows[..2].iter().all(|w| *w == w1), "{name}: {:?}", seen.windows);
    assert!(seen.windows[2..].iter().all(|w| *w == w2), "{name}: {:?}", seen.windows);
    assert_eq!(w1.1, w2.0, "{name}: consecutive windows join");
    let mut revisions = seen.revisions.clone();
    revisions.sort();
    assert_eq!(
        revisions,
        ["canary-hash", "canary-hash", "stable-hash", "stable-hash"],
        "{name}"
    );
}

fn seconds_window(at: Timestamp) -> (String, String) {
    let start = at.as_second() - 300;
    (start.to_string(), at.as_second().to_string())
}

fn millis_window(at: Timestamp) -> (String, String) {
    let start = at.as_millisecond() - 300_000;
    (start.to_string(), at.as_millisecond().to_string())
}

#[tokio::test]
async fn datadog_recipe_sends_both_keys_and_the_window_in_seconds() {
    let secrets = keys(
        "datadog-keys",
        &[("DD-API-KEY", "dd-api"), ("DD-APPLICATION-KEY", "dd-app")],
    );
    check_recipe("datadog", fake_datadog, secrets, seconds_window).await;
}

#[tokio::test]
async fn newrelic_recipe_posts_nrql_with_the_window_in_milliseconds() {
    let secrets = keys("newrelic-key", &[("API-Key", "NRAK-test")]);
    check_recipe("newrelic", fake_newrelic, secrets, millis_window).await;
}

#[tokio::test]
async fn graphite_recipe_renders_one_point_of_the_window() {
    check_recipe("graphite", fake_graphite, SecretHeaders::new(), seconds_window).await;
}

#[tokio::test]
async fn a_recipe_with_a_wrong_or_withheld_key_never_passes() {
    let seen = Shared::default();
    let addr = serve(fake_datadog(seen.clone())).await;
    let template = recipe("datadog", addr);
    let at = now();
    // A wrong key: the API's 403 is an error, not a value.
    let wrong = keys(
        "datadog-keys",
        &[("DD-API-KEY", "dd-api"), ("DD-APPLICATION-KEY", "stolen")],
    );
    let observation = measure_recipe(&template, &wrong, at).await;
    assert!(
        matches!(observation.canary, Some(Err(ProviderError::BadStatus { status: 403, .. }))),
        "{:?}",
        observation.canary
    );
    // A Secret that did not opt in: nothing is sent at all.
    let withheld = BTreeMap::from([("datadog-keys".to_string(), Err(not_opted_in("datadog-keys")))]);
    let observation = measure_recipe(&template, &withheld, at).await;
    assert!(matches!(observation.canary, Some(Err(ProviderError::Config(_)))));
    assert!(seen.lock().unwrap().windows.is_empty(), "no request got through");
}

#[tokio::test]
async fn an_empty_series_is_no_data() {
    let seen = Shared::default();
    let addr = serve(fake_datadog(seen.clone())).await;
    let template = recipe("datadog", addr);
    let secrets = keys(
        "datadog-keys",
        &[("DD-API-KEY", "dd-api"), ("DD-APPLICATION-KEY", "dd-app")],
    );
    let mut unknown = vars();
    unknown.canary = "never-deployed".into();
    let providers = Providers::new().unwrap();
    let observation = providers
        .measure_template(&template, &unknown, &secrets, &Egress::Any, &SidePods::default(), now())
        .await
        .remove(0);
    assert!(
        matches!(observation.canary, Some(Err(ProviderError::NoData(_)))),
        "{:?}",
        observation.canary
    );
    assert_eq!(observation.baseline, Some(Ok(0.30)));
}
