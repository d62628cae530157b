//! Faults of both providers: hang, 500, empty vector, NaN, oversized body.
//!
//! One fault server answers the same body to both providers: the web metrics select
//! `$.data.result[*].value[1]`, so the body of a Prometheus answer serves as a JSON endpoint too.
//! Every body carries MARK; no observation, measurement or run status may contain it.

use super::*;

fn reply(status: StatusCode, content_type: &str, body: impl Into<Body>) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(body.into())
        .unwrap()
}

/// The answer of the fault server for `fault`.
async fn fault_reply(fault: &str) -> Response {
    let json = "application/json";
    match fault {
        // Never answers (the client's timeout must end the wait).
        "hang" => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            reply(StatusCode::OK, json, vector("1"))
        }
        // Answers the headers and the start of the body, then stalls.
        "hang-body" => {
            let start = futures::stream::once(async {
                Ok::<_, std::io::Error>(Bytes::from_static(br#"{"status":"#))
            });
            let body =
                Body::from_stream(futures::StreamExt::chain(start, futures::stream::pending()));
            reply(StatusCode::OK, json, body)
        }
        "500" => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            format!("panic at db.rs:12 password={MARK}"),
        ),
        "500-json" => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            json,
            format!(r#"{{"status":"error","errorType":"internal","error":"{MARK}"}}"#),
        ),
        "empty" => reply(
            StatusCode::OK,
            json,
            r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#,
        ),
        "nan" => reply(StatusCode::OK, json, vector("NaN")),
        // A body without end: it must be cut off at the limit, not buffered (nor timed out).
        "huge" => {
            let start = futures::stream::once(async {
                Ok::<_, std::io::Error>(Bytes::from(format!(
                    r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{"x":"{MARK}"#
                )))
            });
            let filler = Bytes::from(MARK.repeat(4096));
            let rest = futures::stream::repeat_with(move || Ok(filler.clone()));
            reply(
                StatusCode::OK,
                json,
                Body::from_stream(futures::StreamExt::chain(start, rest)),
            )
        }
        // A declared length over the limit is refused before reading.
        "huge-declared" => reply(
            StatusCode::OK,
            json,
            MARK.repeat(MAX_BODY_BYTES / MARK.len() + 1),
        ),
        // A selected string is described by its type, never quoted.
        "string" => reply(StatusCode::OK, json, vector(MARK)),
        "not-json" => reply(StatusCode::OK, "text/html", format!("<html>{MARK}</html>")),
        "weird-type" => reply(
            StatusCode::OK,
            json,
            format!(r#"{{"status":"success","data":{{"resultType":"{MARK}","result":[]}}}}"#),
        ),
        "bad-element" => reply(
            StatusCode::OK,
            json,
            format!(
                r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"{MARK}":1}}]}}}}"#
            ),
        ),
        "odd-content-type" => reply(StatusCode::BAD_GATEWAY, MARK, "x"),
        _ => reply(StatusCode::NOT_FOUND, "text/plain", MARK),
    }
}

/// The fault server: `/prom/{fault}/api/v1/query[_range]` and `/web/{fault}`; counts requests.
async fn fault_server() -> (SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let handler = move |Path(fault): Path<String>| {
        let hits = counted.clone();
        async move {
            hits.fetch_add(1, Ordering::SeqCst);
            fault_reply(&fault).await
        }
    };
    let router = Router::new()
        .route("/prom/{fault}/api/v1/query", get(handler.clone()))
        .route("/prom/{fault}/api/v1/query_range", get(handler.clone()))
        .route("/web/{fault}", get(handler));
    (serve(router).await, hits)
}

fn fault_prometheus(addr: SocketAddr, fault: &str) -> MetricSpec {
    let mut metric = prometheus_metric(addr, "up");
    if let Some(p) = metric.provider.prometheus.as_mut() {
        p.address = format!("http://{addr}/prom/{fault}");
        p.timeout = Some("300ms".into());
    }
    metric
}

fn fault_web(addr: SocketAddr, fault: &str) -> MetricSpec {
    let mut metric = web_metric(
        format!("http://{addr}/web/{fault}"),
        "$.data.result[*].value[1]",
    );
    if let Some(w) = metric.provider.web.as_mut() {
        w.headers_from = None;
        w.timeout = Some("300ms".into());
    }
    metric
}

/// Both providers' metrics against `fault`.
fn fault_metrics(addr: SocketAddr, fault: &str) -> [(&'static str, MetricSpec); 2] {
    [
        ("prometheus", fault_prometheus(addr, fault)),
        ("web", fault_web(addr, fault)),
    ]
}

/// The canary reading of `metric`, asserting that MARK appears nowhere in the observation.
async fn fault_reading(providers: &Providers, metric: &MetricSpec) -> (ValueReading, Duration) {
    let started = std::time::Instant::now();
    let obs = measure_now(providers, metric).await;
    let elapsed = started.elapsed();
    let text = format!("{obs:?}");
    assert!(!text.contains(MARK), "body bytes in {text}");
    let reading = obs.canary.expect("the canary value was asked for");
    (reading, elapsed)
}

#[tokio::test]
async fn a_hanging_provider_ends_at_the_timeout_as_unreachable() {
    let (addr, _) = fault_server().await;
    let providers = Providers::new().unwrap();
    for fault in ["hang", "hang-body"] {
        for (provider, metric) in fault_metrics(addr, fault) {
            let (reading, elapsed) = fault_reading(&providers, &metric).await;
            eprintln!("{provider} {fault}: {elapsed:?} {reading:?}");
            assert!(
                matches!(&reading, Err(ProviderError::Unreachable(m)) if m.contains("timed out")),
                "{provider} {fault}: {reading:?}"
            );
            assert!(
                elapsed >= Duration::from_millis(300) && elapsed < Duration::from_millis(1500),
                "{provider} {fault}: took {elapsed:?} with a 300ms timeout"
            );
        }
    }
}

#[test]
fn the_timeout_is_clamped_to_a_minute() {
    assert_eq!(timeout(None), Ok(Duration::from_secs(10)));
    assert_eq!(timeout(Some(&"45s".into())), Ok(Duration::from_secs(45)));
    assert_eq!(timeout(Some(&"10m".into())), Ok(MAX_TIMEOUT));
    assert_eq!(timeout(Some(&"9999h".into())), Ok(Duration::from_secs(60)));
    assert!(matches!(
        timeout(Some(&"0s".into())),
        Err(ProviderError::Config(_))
    ));
}

#[tokio::test]
async fn a_500_is_a_bad_status_with_length_and_content_type_only() {
    let (addr, _) = fault_server().await;
    let providers = Providers::new().unwrap();
    for (provider, metric) in fault_metrics(addr, "500") {
        let (reading, _) = fault_reading(&providers, &metric).await;
        let expected = format!(
            "content type text/plain, {} bytes",
            format!("panic at db.rs:12 password={MARK}").len()
        );
        assert_eq!(
            reading,
            Err(ProviderError::BadStatus {
                status: 500,
                message: expected
            }),
            "{provider}"
        );
    }
    // A Prometheus error answer keeps its documented errorType, not its error text.
    let (reading, _) = fault_reading(&providers, &fault_prometheus(addr, "500-json")).await;
    assert!(
        matches!(&reading, Err(ProviderError::BadStatus { status: 500, message }) if message.starts_with("errorType internal")),
        "{reading:?}"
    );
    // A content type that is not a media type is not repeated.
    for (provider, metric) in fault_metrics(addr, "odd-content-type") {
        let (reading, _) = fault_reading(&providers, &metric).await;
        assert!(
            matches!(&reading, Err(ProviderError::BadStatus { status: 502, message }) if message == "an unrecognised content type, 1 bytes"),
            "{provider}: {reading:?}"
        );
    }
}

#[tokio::test]
async fn an_empty_vector_is_no_data_and_nan_is_nan() {
    let (addr, _) = fault_server().await;
    let providers = Providers::new().unwrap();
    for (provider, metric) in fault_metrics(addr, "empty") {
        let (reading, _) = fault_reading(&providers, &metric).await;
        assert!(
            matches!(&reading, Err(e) if e.is_no_data()),
            "{provider}: {reading:?}"
        );
    }
    for (provider, metric) in fault_metrics(addr, "nan") {
        let (reading, _) = fault_reading(&providers, &metric).await;
        assert!(
            matches!(reading, Ok(v) if v.is_nan()),
            "{provider}: {reading:?}"
        );
        let obs = measure_now(&providers, &metric).await;
        let judged = crate::analysis::judge::judge_metric(&metric, Some(&obs));
        assert_eq!(
            judged.verdict,
            crate::api::analysis::MetricVerdict::NaN,
            "{provider}"
        );
    }
}

#[tokio::test]
async fn an_oversized_body_is_cut_off_at_the_limit() {
    let (addr, _) = fault_server().await;
    let providers = Providers::new().unwrap();
    for fault in ["huge", "huge-declared"] {
        for (provider, mut metric) in fault_metrics(addr, fault) {
            // Long enough that only the size limit can end the endless body in time.
            if let Some(p) = metric.provider.prometheus.as_mut() {
                p.timeout = Some("20s".into());
            }
            if let Some(w) = metric.provider.web.as_mut() {
                w.timeout = Some("20s".into());
            }
            let (reading, elapsed) = fault_reading(&providers, &metric).await;
            eprintln!("{provider} {fault}: {elapsed:?} {reading:?}");
            assert!(
                matches!(&reading, Err(ProviderError::Parse(m)) if m.contains(&format!("larger than {MAX_BODY_BYTES} bytes"))),
                "{provider} {fault}: {reading:?}"
            );
            assert!(
                elapsed < Duration::from_secs(5),
                "{provider} {fault}: {elapsed:?}"
            );
        }
    }
    assert_eq!(MAX_BODY_BYTES, 1024 * 1024);
}

#[tokio::test]
async fn malformed_answers_are_described_without_their_content() {
    let (addr, _) = fault_server().await;
    let providers = Providers::new().unwrap();
    for fault in ["string", "not-json", "weird-type", "bad-element", "unknown"] {
        for (provider, metric) in fault_metrics(addr, fault) {
            let (reading, _) = fault_reading(&providers, &metric).await;
            assert!(reading.is_err(), "{provider} {fault}: {reading:?}");
        }
    }
    let (reading, _) = fault_reading(&providers, &fault_web(addr, "string")).await;
    assert_eq!(
        reading,
        Err(ProviderError::Parse(
            "the value at $.data.result[*].value[1] is a string, not a number".into()
        ))
    );
    let (reading, _) = fault_reading(&providers, &fault_web(addr, "not-json")).await;
    assert!(
        matches!(&reading, Err(ProviderError::Parse(m)) if m == "the answer is not JSON (content type text/html, 31 bytes; syntax error at line 1 column 1)"),
        "{reading:?}"
    );
}

/// Runs `template` to its end (at most 6 measurements, each one interval later) and returns
/// every outcome and the final status, serialised.
async fn run_to_the_end(
    providers: &Providers,
    template: &AnalysisTemplate,
) -> (Vec<RunOutcome>, String) {
    let mut status = run::start(template, Some("canary-hash"), None, now());
    let mut outcomes = Vec::new();
    for i in 0..6 {
        let at = now()
            .checked_add(jiff::SignedDuration::from_secs(10 * i))
            .unwrap();
        let obs = measure_template_at(providers, template, at).await;
        let outcome = run::advance(template, &mut status, &obs, at);
        let done = !matches!(outcome, RunOutcome::Continue { .. });
        outcomes.push(outcome);
        if done {
            break;
        }
    }
    (outcomes, serde_json::to_string(&status).unwrap())
}

#[tokio::test]
async fn no_fault_of_either_provider_leads_to_a_passed_run() {
    let (addr, _) = fault_server().await;
    let providers = Providers::new().unwrap();
    for fault in ["hang", "500", "empty", "nan", "huge", "string"] {
        for (provider, metric) in fault_metrics(addr, fault) {
            let template = AnalysisTemplate {
                name: "faults".into(),
                interval: Some("10s".into()),
                count: Some(3),
                metrics: vec![metric],
                ..AnalysisTemplate::default()
            };
            let (outcomes, status) = run_to_the_end(&providers, &template).await;
            eprintln!("{provider} {fault}: {:?}", outcomes.last());
            assert!(
                !outcomes.contains(&RunOutcome::Passed),
                "{provider} {fault}: {outcomes:?}"
            );
            assert!(
                !matches!(outcomes.last(), Some(RunOutcome::Continue { .. })),
                "{provider} {fault}: the run did not end: {outcomes:?}"
            );
            assert!(!status.contains(MARK), "{provider} {fault}: {status}");
        }
    }
    // The same template against a healthy answer passes, so the faults are what held it.
    let template = AnalysisTemplate {
        name: "ok".into(),
        interval: Some("10s".into()),
        count: Some(3),
        metrics: vec![prometheus_metric(serve(fake_prometheus()).await, LATENCY)],
        ..AnalysisTemplate::default()
    };
    let (outcomes, _) = run_to_the_end(&providers, &template).await;
    assert_eq!(outcomes.last(), Some(&RunOutcome::Passed), "{outcomes:?}");
}
