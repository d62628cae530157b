//! The `kubernetes` metric provider, pure: a Kubernetes signal (restarts, failing containers,
//! unready pods, start-up latency) of the canary's and the baseline's pods, as a value per side
//! and per-pod samples for the judge. The controller hands in the pods from its cache, so
//! measuring asks nothing of the API server and needs no metrics system.

use jiff::Timestamp;

use super::{ProviderError, SamplesReading, ValueReading};
use crate::api::analysis::{KubernetesProvider, KubernetesSignal};
use crate::api::health::{
    EffectiveGates, PodView, baseline_startup_latency, median, startup_allowance,
};

/// The pods of each side of a comparison: the canary revision's, and those `{{baseline}}`
/// selects (the stable revision's, or the fresh baseline's).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SidePods {
    /// The canary revision's pods.
    pub canary: Vec<PodView>,
    /// The baseline's pods.
    pub baseline: Vec<PodView>,
    /// How old a pod that is not Ready must be to count as not Ready, as for the built-in
    /// signal ([`crate::api::health::startup_allowance`]): a pod still starting is judged
    /// by its start-up latency, not as unready.
    pub startup_allowance_seconds: f64,
}

impl SidePods {
    /// The pods of revision `canary` among `pods`, and those whose revision label is
    /// `baseline` (the `{{baseline}}` value) among `baseline_side` (the fresh baseline's pods,
    /// or the revision pods with `Stable`), with the start-up allowance of the built-in gates.
    pub fn select(
        canary: &str,
        baseline: &str,
        pods: &[PodView],
        baseline_side: &[PodView],
        gates: &EffectiveGates,
        now: Timestamp,
    ) -> Self {
        let of = |pods: &[PodView], revision: &str| -> Vec<PodView> {
            pods.iter()
                .filter(|p| p.revision == revision)
                .cloned()
                .collect()
        };
        let baseline = of(baseline_side, baseline);
        let reference: Vec<&PodView> = baseline.iter().collect();
        let allowance = startup_allowance(baseline_startup_latency(&reference, now), gates);
        SidePods {
            canary: of(pods, canary),
            baseline,
            startup_allowance_seconds: allowance,
        }
    }
}

/// The readings of one side: the value (a sum, or the median start-up latency) and the
/// per-pod samples, each only when asked for. A side without live pods has no data.
pub fn readings(
    provider: &KubernetesProvider,
    pods: &[PodView],
    side: &str,
    startup_allowance_seconds: f64,
    want: (bool, bool),
    now: Timestamp,
) -> (Option<ValueReading>, Option<SamplesReading>) {
    let (want_value, want_samples) = want;
    let samples: Vec<f64> = pods
        .iter()
        .filter(|pod| !pod.terminating)
        .filter(|pod| {
            provider
                .component
                .as_ref()
                .is_none_or(|c| &pod.component == c)
        })
        .map(|pod| per_pod(provider.signal, pod, startup_allowance_seconds, now))
        .collect();
    let samples = if samples.is_empty() {
        let of_component = provider
            .component
            .as_ref()
            .map(|c| format!(" of component {c:?}"))
            .unwrap_or_default();
        Err(ProviderError::NoData(format!(
            "no {side} pods{of_component} to measure"
        )))
    } else {
        Ok(samples)
    };
    let value = want_value.then(|| {
        samples
            .as_ref()
            .map(|s| aggregate(provider.signal, s))
            .map_err(Clone::clone)
    });
    (value, want_samples.then_some(samples))
}

/// One pod's value of `signal`. A pod counts as not Ready only once it is older than
/// `startup_allowance_seconds`.
pub fn per_pod(
    signal: KubernetesSignal,
    pod: &PodView,
    startup_allowance_seconds: f64,
    now: Timestamp,
) -> f64 {
    match signal {
        KubernetesSignal::Restarts => f64::from(pod.restarts),
        KubernetesSignal::FailingContainers => f64::from(pod.failing_containers),
        KubernetesSignal::NotReadyPods => {
            let unready =
                !pod.ready && pod.startup_latency_seconds(now) > startup_allowance_seconds;
            if unready { 1.0 } else { 0.0 }
        }
        KubernetesSignal::StartupLatencySeconds => pod.startup_latency_seconds(now),
    }
}

/// A side's value from its per-pod values: counts add up; start-up latency is the median pod's,
/// so one slow node does not stand for the revision.
pub fn aggregate(signal: KubernetesSignal, values: &[f64]) -> f64 {
    match signal {
        KubernetesSignal::StartupLatencySeconds => median(values.to_vec()).unwrap_or(0.0),
        _ => values.iter().sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    fn pod(component: &str, created: i64, ready_at: Option<i64>, restarts: i32) -> PodView {
        PodView {
            name: format!("{component}-{created}"),
            revision: "r".into(),
            component: component.into(),
            created_at: at(created),
            ready: ready_at.is_some(),
            ready_at: ready_at.map(at),
            restarts,
            failing_containers: i32::from(restarts > 1),
            terminating: false,
        }
    }

    fn provider(signal: KubernetesSignal, component: Option<&str>) -> KubernetesProvider {
        KubernetesProvider {
            signal,
            component: component.map(str::to_string),
        }
    }

    #[test]
    fn the_sides_are_the_canary_pods_and_the_pods_the_baseline_selector_names() {
        let with_revision = |revision: &str, created: i64, ready_after: i64| PodView {
            revision: revision.into(),
            ..pod("main", created, Some(created + ready_after), 0)
        };
        let pods = vec![
            with_revision("canary", 0, 9),
            with_revision("stable", 0, 1),
            with_revision("old", 0, 1),
        ];
        let fresh = vec![
            with_revision("stable-baseline", 0, 2),
            with_revision("stable-baseline", 1, 4),
        ];
        let gates = EffectiveGates::from_spec(None);
        let sides = SidePods::select("canary", "stable-baseline", &pods, &fresh, &gates, at(50));
        assert_eq!(sides.canary, vec![pods[0].clone()]);
        assert_eq!(sides.baseline, fresh);
        // The baseline's median start-up (3 s) plus the default critical start-up (60 s).
        assert_eq!(sides.startup_allowance_seconds, 63.0);
        let sides = SidePods::select("canary", "stable", &pods, &pods, &gates, at(50));
        assert_eq!(sides.baseline, vec![pods[1].clone()]);
    }

    #[test]
    fn counts_add_up_over_the_live_pods() {
        let mut gone = pod("api", 0, Some(1), 7);
        gone.terminating = true;
        let pods = vec![pod("api", 0, Some(1), 1), pod("api", 0, None, 2), gone];
        let now = at(100);
        let restarts = readings(
            &provider(KubernetesSignal::Restarts, None),
            &pods,
            "canary",
            0.0,
            (true, true),
            now,
        );
        assert_eq!(
            restarts.0,
            Some(Ok(3.0)),
            "the terminating pod's 7 are left out"
        );
        assert_eq!(restarts.1, Some(Ok(vec![1.0, 2.0])));
        let failing = readings(
            &provider(KubernetesSignal::FailingContainers, None),
            &pods,
            "canary",
            0.0,
            (true, false),
            now,
        );
        assert_eq!(failing, (Some(Ok(1.0)), None));
        // Not Ready for 100 s counts; a pod starting for 20 s is within a 60 s allowance.
        let mut starting = pods.clone();
        starting.push(pod("api", 80, None, 0));
        let not_ready = readings(
            &provider(KubernetesSignal::NotReadyPods, None),
            &starting,
            "canary",
            60.0,
            (true, true),
            now,
        );
        assert_eq!(not_ready.0, Some(Ok(1.0)));
        assert_eq!(not_ready.1, Some(Ok(vec![0.0, 1.0, 0.0])));
    }

    #[test]
    fn start_up_latency_is_the_median_pod_and_a_starting_pod_counts_with_its_age() {
        // Ready after 2 s and 4 s; the third is still starting, 30 s old.
        let pods = vec![
            pod("main", 0, Some(2), 0),
            pod("main", 10, Some(14), 0),
            pod("main", 70, None, 0),
        ];
        let (value, samples) = readings(
            &provider(KubernetesSignal::StartupLatencySeconds, None),
            &pods,
            "canary",
            0.0,
            (true, true),
            at(100),
        );
        assert_eq!(value, Some(Ok(4.0)));
        assert_eq!(samples, Some(Ok(vec![2.0, 4.0, 30.0])));
        assert_eq!(
            aggregate(KubernetesSignal::StartupLatencySeconds, &[1.0, 3.0]),
            2.0
        );
    }

    #[test]
    fn a_component_filter_and_an_empty_side_give_no_data() {
        let pods = vec![pod("api", 0, Some(1), 4), pod("worker", 0, Some(1), 9)];
        let (value, _) = readings(
            &provider(KubernetesSignal::Restarts, Some("worker")),
            &pods,
            "canary",
            0.0,
            (true, false),
            at(10),
        );
        assert_eq!(value, Some(Ok(9.0)));
        let (value, samples) = readings(
            &provider(KubernetesSignal::Restarts, Some("gateway")),
            &pods,
            "baseline",
            0.0,
            (true, true),
            at(10),
        );
        let expected =
            ProviderError::NoData("no baseline pods of component \"gateway\" to measure".into());
        assert_eq!(value, Some(Err(expected.clone())));
        assert_eq!(samples, Some(Err(expected)));
        assert_eq!(
            readings(
                &provider(KubernetesSignal::Restarts, None),
                &[],
                "canary",
                0.0,
                (false, false),
                at(10)
            ),
            (None, None)
        );
    }
}
