//! A Prometheus of the analysis tests' own, which a test can stop and start again while a
//! rollout's analysis step measures it (the shared one serves other tests).

use std::time::Duration;

use serde_json::json;

use super::{error_ratio_metric, manifest_with_analysis, start_canary};
use crate::common;
use crate::operator::{self, apply_stable, setup, wait_status};

/// A Prometheus of this test's own (the shared one serves other tests), scraping the emitter.
pub(crate) struct OwnPrometheus {
    child: Option<tokio::process::Child>,
}

impl OwnPrometheus {
    pub(crate) async fn start(dir: std::path::PathBuf, port: u16) -> Self {
        let emitter = common::emitter_url();
        let target = emitter.trim_start_matches("http://").to_string();
        std::fs::create_dir_all(dir.join("data")).expect("prometheus dir");
        let config = format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nscrape_configs:\n- job_name: emitter\n  static_configs: [{{targets: ['{target}']}}]\n"
        );
        std::fs::write(dir.join("prometheus.yml"), config).expect("config");
        let child = tokio::process::Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start prometheus");
        let url = format!("http://127.0.0.1:{port}/-/ready");
        common::wait_until(Duration::from_secs(30), "prometheus to be ready", || {
            let url = url.clone();
            async move {
                Ok(common::http()
                    .get(&url)
                    .send()
                    .await
                    .ok()
                    .filter(|r| r.status().is_success())
                    .map(|_| ()))
            }
        })
        .await;
        OwnPrometheus { child: Some(child) }
    }

    pub(crate) async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }
}

/// A rollout whose analysis step measures a Prometheus of its own, stopped while that step
/// runs (`on_error` is the metric's `onError`, with `consecutiveErrorLimit: 1`).
pub(crate) struct StoppedPrometheus {
    pub(crate) ns: common::TestNamespace,
    pub(crate) _operator: operator::Operator,
    pub(crate) prometheus: OwnPrometheus,
    pub(crate) dir: std::path::PathBuf,
    pub(crate) port: u16,
    pub(crate) v1: Option<String>,
    pub(crate) canary: String,
}

impl StoppedPrometheus {
    pub(crate) async fn start(prefix: &str, on_error: &str) -> Self {
        let (ns, operator) = setup(prefix).await;
        let port = 19500 + (std::process::id() % 200) as u16 * 2 + u16::from(on_error == "Fail");
        let dir = std::env::temp_dir().join(format!("safedeploy-prom-{}", ns.name));
        let mut prometheus = OwnPrometheus::start(dir.clone(), port).await;
        let address = format!("http://127.0.0.1:{port}");
        let run = common::random_suffix(6);
        let steps =
            json!([{"setWeight": 50}, {"analysis": {"template": "errors"}}, {"setWeight": 100}]);
        let mut metric = error_ratio_metric(&address, "10s");
        metric["onError"] = json!(on_error);
        let analysis = json!({
            "name": "errors", "interval": "2s", "count": 3, "initialDelay": "4s",
            // A wider window than the other test: a restarted Prometheus under load may miss a
            // scrape, and the last measurement of a run must have data.
            "metrics": [metric]
        });
        let v1 = apply_stable(
            &ns,
            &manifest_with_analysis(&format!("v1-{run}"), steps.clone(), analysis.clone(), false),
        )
        .await
        .stable_revision;
        let v2 = manifest_with_analysis(&format!("v2-{run}"), steps, analysis, false);
        let canary = start_canary(&ns, &v2, 0.0, None, 100.0).await;
        // Prometheus goes away while the analysis step runs.
        wait_status(
            &ns,
            "web",
            Duration::from_secs(30),
            "the analysis step",
            |s| s.current_step_index == Some(1),
        )
        .await;
        prometheus.stop().await;
        Self {
            ns,
            _operator: operator,
            prometheus,
            dir,
            port,
            v1,
            canary,
        }
    }
}
