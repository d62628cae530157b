//! The kubernetes provider: signals of the pods handed in, judged like any metric.

use super::*;

fn kube_pod(revision: &str, created: i64, ready_after: i64, restarts: i32) -> PodView {
    let at = |s: i64| {
        now()
            .checked_sub(jiff::SignedDuration::from_secs(600 - s))
            .unwrap()
    };
    PodView {
        name: format!("{revision}-{created}"),
        revision: revision.into(),
        component: "main".into(),
        created_at: at(created),
        ready: true,
        ready_at: Some(at(created + ready_after)),
        restarts,
        failing_containers: 0,
        terminating: false,
    }
}

fn kubernetes_metric(signal: crate::api::analysis::KubernetesSignal) -> MetricSpec {
    MetricSpec {
        name: "pods".into(),
        provider: Provider {
            kubernetes: Some(crate::api::analysis::KubernetesProvider {
                signal,
                component: None,
            }),
            ..Provider::default()
        },
        ..MetricSpec::default()
    }
}

#[tokio::test]
async fn kubernetes_signals_are_read_from_the_pods_handed_in_and_judged_like_any_metric() {
    use crate::api::analysis::{KubernetesSignal, MetricVerdict};
    let providers = Providers::new().unwrap();
    // Canary pods start in 9–11 s, the fresh baseline's in 2–3 s.
    let pods = SidePods {
        canary: vec![
            kube_pod("canary", 0, 9, 0),
            kube_pod("canary", 1, 10, 1),
            kube_pod("canary", 2, 11, 0),
        ],
        baseline: vec![kube_pod("base", 0, 2, 0), kube_pod("base", 1, 3, 0)],
        startup_allowance_seconds: 60.0,
    };
    let mut latency = kubernetes_metric(KubernetesSignal::StartupLatencySeconds);
    latency.relative = Some(RelativeCheck {
        max_regression_percent: 50.0,
        ..RelativeCheck::default()
    });
    // No query: validation accepts a relative check on the baseline's own pods.
    let template = AnalysisTemplate {
        name: "pods".into(),
        count: Some(1),
        metrics: vec![latency.clone()],
        ..AnalysisTemplate::default()
    };
    assert!(run::schedule(&template).is_ok());
    let obs = measure_with(&providers, &latency, &SecretHeaders::new(), &pods).await;
    assert_eq!(obs.canary, Some(Ok(10.0)));
    assert_eq!(obs.baseline, Some(Ok(2.5)));
    let judged = crate::analysis::judge::judge_metric(&latency, Some(&obs));
    assert_eq!(judged.verdict, MetricVerdict::Fail, "{judged:?}");

    let mut restarts = kubernetes_metric(KubernetesSignal::Restarts);
    restarts.thresholds = Some(MetricThresholds {
        target: 0.0,
        acceptable: 1.0,
        critical: 3.0,
    });
    let obs = measure_with(&providers, &restarts, &SecretHeaders::new(), &pods).await;
    assert_eq!((&obs.canary, &obs.baseline), (&Some(Ok(1.0)), &None));
    let judged = crate::analysis::judge::judge_metric(&restarts, Some(&obs));
    assert_eq!(judged.verdict, MetricVerdict::Pass, "{judged:?}");

    // Without canary pods there is no data, which the metric's policy then decides.
    let obs = measure_now(&providers, &restarts).await;
    assert!(
        matches!(&obs.canary, Some(Err(e)) if e.is_no_data()),
        "{obs:?}"
    );
}
