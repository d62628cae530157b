//! Hostile configurations: Secrets without opt-in, addresses outside the allow-list, redirects
//! and Host headers.

use super::*;

fn secret(name: &str, label: Option<&str>, data: &[(&str, &[u8])]) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: label.map(|v| BTreeMap::from([(HEADERS_SECRET_LABEL.to_string(), v.into())])),
            ..ObjectMeta::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.to_vec())))
                .collect(),
        ),
        ..Secret::default()
    }
}

#[test]
fn a_secret_is_used_for_headers_only_with_the_opt_in_label() {
    let value: &[u8] = b"Bearer db-root-password";
    for label in [None, Some("false"), Some("yes"), Some("")] {
        let Err(ProviderError::Config(message)) =
            headers_from_secret(&secret("db-root", label, &[("Authorization", value)]))
        else {
            panic!("{label:?} was accepted");
        };
        assert!(message.contains("\"db-root\""), "{message}");
        assert!(message.contains(HEADERS_SECRET_LABEL), "{message}");
        assert!(!message.contains("db-root-password"), "{message}");
    }
    assert_eq!(
        headers_from_secret(&secret("token", Some("true"), &[("Authorization", value)])),
        Ok(BTreeMap::from([(
            "Authorization".to_string(),
            "Bearer db-root-password".to_string()
        )]))
    );
    let binary = headers_from_secret(&secret("bin", Some("true"), &[("X-Key", &[0xff, 0xfe])]));
    assert!(
        matches!(&binary, Err(ProviderError::Config(m)) if m.contains("X-Key")),
        "{binary:?}"
    );
}

/// A JSON endpoint that counts its requests and remembers the last Authorization header.
async fn counting_endpoint() -> (SocketAddr, Arc<AtomicUsize>, Arc<std::sync::Mutex<String>>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(std::sync::Mutex::new(String::new()));
    let (h, s) = (hits.clone(), seen.clone());
    let handler = move |headers: HeaderMap| {
        let (hits, seen) = (h.clone(), s.clone());
        async move {
            hits.fetch_add(1, Ordering::SeqCst);
            if let Some(auth) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
                *seen.lock().unwrap() = auth.to_string();
            }
            (StatusCode::OK, r#"{"value":0.2}"#)
        }
    };
    let router = Router::new().fallback(get(handler));
    (serve(router).await, hits, seen)
}

#[tokio::test]
async fn a_secret_without_the_label_is_never_sent() {
    let (addr, hits, _) = counting_endpoint().await;
    let providers = Providers::new().unwrap();
    let metric = web_metric(format!("http://{addr}/value"), "$.value");
    let refused: SecretHeaders =
        BTreeMap::from([("stats-token".to_string(), Err(not_opted_in("stats-token")))]);
    let reading = canary_value(&providers, &metric, &refused).await;
    assert!(
        matches!(&reading, Some(Err(ProviderError::Config(m))) if m.contains("\"stats-token\"") && m.contains(HEADERS_SECRET_LABEL)),
        "{reading:?}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0, "a request was sent");
}

#[test]
fn the_allow_list_matches_parsed_urls_not_strings() {
    let list = only(&[
        "http://prometheus.monitoring:9090",
        "https://slo.example.com/api/",
        "https://stats.example.com/v1",
    ]);
    for allowed in [
        "http://prometheus.monitoring:9090/api/v1/query",
        "http://PROMETHEUS.monitoring:9090/prom/api/v1/query",
        "https://slo.example.com/api/x?rev=abc",
        "https://slo.example.com:443/api/",
        "https://stats.example.com/v1",
        "https://stats.example.com/v1/p99",
    ] {
        assert_eq!(list.check(allowed), Ok(()), "{allowed}");
    }
    for refused in [
        "http://prometheus.monitoring.evil.example:9090/api/v1/query",
        "http://prometheus.monitoring:9091/api/v1/query",
        "http://prometheus.monitoring/api/v1/query",
        "https://prometheus.monitoring:9090/api/v1/query",
        "http://prometheus.monitoring:9090@169.254.169.254/latest/meta-data",
        "https://slo.example.com/admin",
        "https://slo.example.com/apix",
        "https://slo.example.com/api/../admin",
        "https://slo.example.com/api/%2e%2e/admin",
        "https://stats.example.com/v10",
        "http://slo.example.com/api/x",
        "not a url",
    ] {
        let result = list.check(refused);
        assert!(
            matches!(&result, Err(ProviderError::Config(m)) if m.contains("SafeDeploymentPolicy \"prod\"") && m.contains("allowedProviderUrls") && m.contains("no request was sent")),
            "{refused}: {result:?}"
        );
    }
    assert_eq!(Egress::Any.check("http://169.254.169.254/"), Ok(()));
    assert!(only(&[]).check("http://prometheus:9090/").is_err());
    // Entries the CRD refuses match nothing here either.
    assert!(
        only(&["prometheus:9090"])
            .check("http://prometheus:9090/")
            .is_err()
    );
    assert!(
        only(&["http://u:p@prometheus:9090/"])
            .check("http://prometheus:9090/")
            .is_err()
    );
}

#[tokio::test]
async fn addresses_outside_the_allow_list_are_errors_and_get_no_request() {
    let (addr, hits, seen) = counting_endpoint().await;
    let providers = Providers::new().unwrap();
    let egress = only(&["http://127.0.0.1:1/allowed"]);
    let web = web_metric(format!("http://{addr}/value"), "$.value");
    let mut range = prometheus_metric(addr, "up");
    range.thresholds = None;
    range.statistical = Some(StatisticalCheck {
        mann_whitney: MannWhitneySpec::default(),
    });
    if let Some(p) = range.provider.prometheus.as_mut() {
        p.range = Some(RangeSpec {
            window: "1m".into(),
            step: "5s".into(),
        });
    }
    for metric in [web, prometheus_metric(addr, "up"), range] {
        let obs = providers
            .measure(
                &metric,
                &vars(),
                &secrets(),
                &egress,
                &SidePods::default(),
                now(),
            )
            .await;
        let reading = obs
            .canary
            .clone()
            .map(|r| r.map(|_| ()))
            .or_else(|| obs.canary_samples.clone().map(|r| r.map(|_| ())));
        assert!(
            matches!(&reading, Some(Err(ProviderError::Config(m))) if m.contains("allowedProviderUrls") && m.contains(&addr.to_string())),
            "{obs:?}"
        );
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0, "a request was sent");
    assert_eq!(*seen.lock().unwrap(), "");
    // Inside the list, the same web metric measures (and sends the Secret's header).
    let inside = only(&[&format!("http://{addr}/")]);
    let metric = web_metric(format!("http://{addr}/value"), "$.value");
    let obs = providers
        .measure(
            &metric,
            &vars(),
            &secrets(),
            &inside,
            &SidePods::default(),
            now(),
        )
        .await;
    assert_eq!(obs.canary, Some(Ok(0.2)));
    assert_eq!(*seen.lock().unwrap(), "Bearer s3cret");
}

#[tokio::test]
async fn redirects_are_not_followed_and_headers_do_not_travel() {
    let (target, hits, seen) = counting_endpoint().await;
    let location = format!("http://{target}/value");
    let redirect = Router::new().route(
        "/moved",
        get(move || {
            let location = location.clone();
            async move {
                Response::builder()
                    .status(StatusCode::FOUND)
                    .header("location", location)
                    .body(Body::empty())
                    .unwrap()
            }
        }),
    );
    let addr = serve(redirect).await;
    let providers = Providers::new().unwrap();
    let web = web_metric(format!("http://{addr}/moved"), "$.value");
    let reading = canary_value(&providers, &web, &secrets()).await;
    assert!(
        matches!(&reading, Some(Err(ProviderError::BadStatus { status: 302, message })) if message.contains("redirects are not followed")),
        "{reading:?}"
    );
    let mut prom = prometheus_metric(addr, "up");
    if let Some(p) = prom.provider.prometheus.as_mut() {
        p.address = format!("http://{addr}/moved");
    }
    let obs = measure_now(&providers, &prom).await;
    assert!(matches!(&obs.canary, Some(Err(_))), "{obs:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the redirect was followed");
    assert_eq!(*seen.lock().unwrap(), "");
}

#[tokio::test]
async fn a_host_header_is_refused() {
    let (addr, hits, _) = counting_endpoint().await;
    let providers = Providers::new().unwrap();
    let mut metric = web_metric(format!("http://{addr}/value"), "$.value");
    if let Some(w) = metric.provider.web.as_mut() {
        w.headers = vec![HttpHeader {
            name: "Host".into(),
            value: "internal-admin".into(),
        }];
    }
    let reading = canary_value(&providers, &metric, &secrets()).await;
    assert!(
        matches!(&reading, Some(Err(ProviderError::Config(m))) if m.contains("Host")),
        "{reading:?}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}
