//! The Ready capacity behind a Service's selector, sampled while workloads hand pods over
//! (adoption, release, migration): the least count seen is what a test asserts on.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;

use super::is_ready;

/// Samples the Ready, not terminating pods labelled `app=<app>` every 100 ms until stopped:
/// the capacity a Service selecting them has, through a move between workloads.
pub struct CapacitySampler {
    stop: Arc<AtomicBool>,
    samples: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<i64>,
}

impl CapacitySampler {
    pub fn start(pods: Api<Pod>, app: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(AtomicUsize::new(0));
        let selector = format!("app={app}");
        let (stop_flag, count) = (stop.clone(), samples.clone());
        let task = tokio::spawn(async move {
            let mut least = i64::MAX;
            while !stop_flag.load(Ordering::SeqCst) {
                if let Ok(list) = pods.list(&ListParams::default().labels(&selector)).await {
                    let ready = list
                        .items
                        .iter()
                        .filter(|p| p.metadata.deletion_timestamp.is_none())
                        .filter(|p| is_ready(p))
                        .count();
                    least = least.min(i64::try_from(ready).unwrap_or(i64::MAX));
                    count.fetch_add(1, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            least
        });
        CapacitySampler {
            stop,
            samples,
            task,
        }
    }

    /// Stops sampling; returns the least Ready count seen and how many samples were taken.
    pub async fn finish(self) -> (i64, usize) {
        self.stop.store(true, Ordering::SeqCst);
        let least = self.task.await.expect("the sampler");
        (least, self.samples.load(Ordering::SeqCst))
    }
}
