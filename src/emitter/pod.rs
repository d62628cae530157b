//! The emitter as a per-pod demo application (the image `e2e/image.sh` builds): faults chosen
//! by flags or environment variables, so that one image plays a good revision and bad ones on a
//! real kubelet.
//!
//! * `GET /readyz`: 503 until `--start-delay-seconds` have passed since the start, then `ok` (a
//!   slow-starting revision, measured by the kubelet's readiness probe).
//! * `--crash-after-seconds N`: the process exits with status 1 after N seconds (a crashing
//!   revision: the kubelet restarts it, `restartCount` rises, then CrashLoopBackOff).
//! * `GET /`: one real request, answered after the version's configured latency, with status 500
//!   in the version's error ratio (drawn from the same seeded generator as the simulation).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use super::state::Emitter;

/// The faults of one pod, from the command line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PodFaults {
    /// `/readyz` answers 503 until this long after the start.
    pub start_delay: Duration,
    /// The process exits with status 1 this long after the start.
    pub crash_after: Option<Duration>,
}

#[derive(Clone)]
struct PodState {
    emitter: Arc<Emitter>,
    ready_at: Instant,
}

/// `/readyz` and `/` over `emitter`, for a pod started at `started`.
pub fn pod_routes(emitter: Arc<Emitter>, faults: PodFaults, started: Instant) -> Router {
    Router::new()
        .route("/readyz", get(readyz))
        .route("/", get(request))
        .with_state(PodState {
            emitter,
            ready_at: started + faults.start_delay,
        })
}

async fn readyz(State(state): State<PodState>) -> (StatusCode, &'static str) {
    if Instant::now() >= state.ready_at {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting")
    }
}

async fn request(State(state): State<PodState>) -> (StatusCode, String) {
    let Some((version, failed, latency)) = state.emitter.serve_one() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "no version\n".to_owned());
    };
    tokio::time::sleep(latency).await;
    if failed {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{version} failed\n"),
        )
    } else {
        (StatusCode::OK, format!("{version}\n"))
    }
}

/// Resolves after `faults.crash_after` (never, without it).
pub async fn crash_timer(faults: PodFaults) -> u64 {
    match faults.crash_after {
        Some(after) => {
            tokio::time::sleep(after).await;
            after.as_secs()
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emitter::SettingsUpdate;
    use crate::emitter::model::settings;

    async fn serve(app: Router) -> (String, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (base, server)
    }

    #[tokio::test]
    async fn readiness_waits_for_the_start_delay_and_requests_fail_in_the_error_ratio() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let emitter = Arc::new(Emitter::new(settings(1.0, 1.0, 10.0), 1).unwrap());
        emitter.configure("v2", &SettingsUpdate::default()).unwrap();
        let faults = PodFaults {
            start_delay: Duration::from_millis(400),
            crash_after: None,
        };
        let (base, server) = serve(pod_routes(emitter, faults, Instant::now())).await;
        let client = reqwest::Client::new();
        let early = client.get(format!("{base}/readyz")).send().await.unwrap();
        assert_eq!(early.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let later = client.get(format!("{base}/readyz")).send().await.unwrap();
        assert_eq!(later.status(), reqwest::StatusCode::OK);
        // Error ratio 1: every real request fails, and names its version.
        let answer = client.get(format!("{base}/")).send().await.unwrap();
        assert_eq!(answer.status(), reqwest::StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(answer.text().await.unwrap(), "v2 failed\n");
        server.abort();
    }

    #[tokio::test]
    async fn a_request_without_a_version_is_unavailable_not_a_panic() {
        let emitter = Arc::new(Emitter::new(settings(0.0, 1.0, 10.0), 1).unwrap());
        let faults = PodFaults {
            start_delay: Duration::ZERO,
            crash_after: None,
        };
        let (base, server) = serve(pod_routes(emitter, faults, Instant::now())).await;
        let answer = reqwest::get(format!("{base}/")).await.unwrap();
        assert_eq!(answer.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
        server.abort();
    }

    #[tokio::test]
    async fn the_crash_timer_fires_after_its_delay_and_never_without_one() {
        let crash = PodFaults {
            start_delay: Duration::ZERO,
            crash_after: Some(Duration::from_millis(50)),
        };
        let fired = tokio::time::timeout(Duration::from_secs(5), crash_timer(crash)).await;
        assert_eq!(fired.ok(), Some(0), "whole seconds after the start");
        let none = PodFaults {
            start_delay: Duration::ZERO,
            crash_after: None,
        };
        let outcome = tokio::time::timeout(Duration::from_millis(300), crash_timer(none)).await;
        assert!(outcome.is_err(), "no crash without --crash-after-seconds");
    }
}
