//! The emitter's HTTP API: `/metrics`, `/control`, `/control/{version}` and `/healthz` over a
//! shared [`Emitter`].

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::EmitterError;
use super::model::SettingsUpdate;
use super::state::{Emitter, VersionView};

impl IntoResponse for EmitterError {
    fn into_response(self) -> Response {
        let status = match &self {
            Self::UnknownVersion(_) => StatusCode::NOT_FOUND,
            Self::InvalidSetting(_) | Self::InvalidVersion(_) => StatusCode::BAD_REQUEST,
            Self::Io(_) | Self::InjectedCrash(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let mut body = String::new();
        // Writing to a String cannot fail.
        let _ = write!(body, "{}", serde_json::json!({ "error": self.to_string() }));
        (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}

/// The HTTP routes over a shared emitter.
pub fn router(emitter: Arc<Emitter>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route("/control", get(list))
        .route(
            "/control/{version}",
            get(get_version).post(configure).delete(remove),
        )
        .with_state(emitter)
}

async fn metrics(State(emitter): State<Arc<Emitter>>) -> Response {
    match emitter.encode_metrics() {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn list(State(emitter): State<Arc<Emitter>>) -> axum::Json<Vec<VersionView>> {
    axum::Json(emitter.list())
}

async fn get_version(
    State(emitter): State<Arc<Emitter>>,
    Path(version): Path<String>,
) -> Result<axum::Json<VersionView>, EmitterError> {
    emitter.get(&version).map(axum::Json)
}

async fn configure(
    State(emitter): State<Arc<Emitter>>,
    Path(version): Path<String>,
    Query(update): Query<SettingsUpdate>,
) -> Result<axum::Json<VersionView>, EmitterError> {
    emitter.configure(&version, &update).map(axum::Json)
}

async fn remove(
    State(emitter): State<Arc<Emitter>>,
    Path(version): Path<String>,
) -> Result<StatusCode, EmitterError> {
    emitter.remove(&version).map(|()| StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emitter::model::settings;
    use crate::emitter::state::metric_value;

    /// Sends a request of the test; the answer (any status).
    async fn send(request: reqwest::RequestBuilder) -> reqwest::Response {
        request.send().await.unwrap()
    }

    #[tokio::test]
    async fn http_control_round_trip() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let emitter = Arc::new(Emitter::new(settings(0.0, 50.0, 10.0), 1).unwrap());
        emitter
            .configure("stable", &SettingsUpdate::default())
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router(emitter)).await;
        });
        let client = reqwest::Client::new();

        let health = send(client.get(format!("{base}/healthz"))).await;
        assert_eq!(health.text().await.unwrap(), "ok");

        let changed: serde_json::Value = send(client.post(format!(
            "{base}/control/canary?errorRatio=0.25&latencyMs=120"
        )))
        .await
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
        assert_eq!(changed["version"], "canary");
        assert_eq!(changed["errorRatio"], 0.25);
        assert_eq!(changed["latencyMs"], 120.0);
        assert_eq!(changed["rps"], 10.0);

        let read: serde_json::Value = send(client.get(format!("{base}/control/canary")))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(read["errorRatio"], 0.25);

        let all: Vec<serde_json::Value> = send(client.get(format!("{base}/control")))
            .await
            .json()
            .await
            .unwrap();
        let names: Vec<&str> = all.iter().filter_map(|v| v["version"].as_str()).collect();
        assert_eq!(names, ["canary", "stable"]);

        let invalid = send(client.post(format!("{base}/control/canary?errorRatio=7"))).await;
        assert_eq!(invalid.status(), reqwest::StatusCode::BAD_REQUEST);
        let not_a_number = send(client.post(format!("{base}/control/canary?latencyMs=fast"))).await;
        assert_eq!(not_a_number.status(), reqwest::StatusCode::BAD_REQUEST);
        let unknown = send(client.get(format!("{base}/control/nope"))).await;
        assert_eq!(unknown.status(), reqwest::StatusCode::NOT_FOUND);

        let metrics = send(client.get(format!("{base}/metrics")))
            .await
            .text()
            .await
            .unwrap();
        assert_eq!(
            metric_value(
                &metrics,
                "safedeploy_demo_configured_error_ratio{version=\"canary\"}"
            ),
            Some(0.25)
        );

        let deleted = send(client.delete(format!("{base}/control/canary"))).await;
        assert_eq!(deleted.status(), reqwest::StatusCode::NO_CONTENT);
        server.abort();
    }
}
