//! A cluster whose API server has the WatchList feature off: a second kube-apiserver of the local
//! control plane, on the same etcd, started with `--feature-gates=WatchList=false`. It refuses
//! the streaming list every watch of the operator opens with by default; each watch then reads
//! pages instead, and the operator rolls out as on any cluster. Without the fallback, kube's
//! watcher retries the refused request forever and no cache ever syncs.

mod common;
mod operator;

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use kube::runtime::watcher;
use kube::{Client, Config};
use operator::{apply_stable_web, controller_command, opted_out_namespace};
use safedeploy::api::Phase;
use safedeploy::controller::InitialList;
use safedeploy::controller::initial_list::{self, streaming_list_refused};
use serde::Deserialize;
use serde_json::json;
use tokio::process::{Child, Command};

/// A kube-apiserver started from the local control plane's own flags (`SAFEDEPLOY_KWOK_CONFIG`,
/// printed by `e2e/cluster.sh env`), on another port, with WatchList off. Killed on drop.
struct WatchListOffServer {
    _process: Child,
    kubeconfig: std::path::PathBuf,
    client: Client,
}

impl WatchListOffServer {
    async fn start() -> WatchListOffServer {
        common::init();
        let config_path = std::env::var("SAFEDEPLOY_KWOK_CONFIG").expect(
            "SAFEDEPLOY_KWOK_CONFIG is not set: eval \"$(e2e/cluster.sh env)\" with the cluster up",
        );
        let text = std::fs::read_to_string(&config_path).expect("read kwok.yaml");
        // kwokctl writes several documents; the Cluster's lists the components.
        let component = serde_yaml::Deserializer::from_str(&text)
            .filter_map(|document| serde_yaml::Value::deserialize(document).ok())
            .filter_map(|document| document["components"].as_sequence().cloned())
            .flatten()
            .find(|c| c["name"].as_str() == Some("kube-apiserver"))
            .expect("a kube-apiserver component in kwok.yaml");
        let binary = component["binary"].as_str().expect("binary").to_string();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut args: Vec<String> = component["args"]
            .as_sequence()
            .expect("args")
            .iter()
            .filter_map(|a| a.as_str().map(str::to_string))
            // Its own port, no audit log, and it leaves the `kubernetes` Service's endpoints
            // to the cluster's own API server.
            .filter(|a| !a.starts_with("--secure-port=") && !a.starts_with("--audit-"))
            .collect();
        args.push(format!("--secure-port={port}"));
        args.push("--endpoint-reconciler-type=none".into());
        args.push("--feature-gates=WatchList=false".into());
        let log = std::env::temp_dir().join(format!("safedeploy-watchlist-off-{port}.log"));
        let log_file = std::fs::File::create(&log).expect("log");
        let process = Command::new(&binary)
            .args(&args)
            .stdout(log_file.try_clone().expect("log"))
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .expect("start kube-apiserver");

        let mut kubeconfig = kube::config::Kubeconfig::read().expect("KUBECONFIG");
        for cluster in &mut kubeconfig.clusters {
            if let Some(cluster) = cluster.cluster.as_mut() {
                cluster.server = Some(format!("https://127.0.0.1:{port}"));
            }
        }
        let kubeconfig_path =
            std::env::temp_dir().join(format!("safedeploy-watchlist-off-{port}.kubeconfig"));
        std::fs::write(
            &kubeconfig_path,
            serde_yaml::to_string(&kubeconfig).expect("kubeconfig yaml"),
        )
        .expect("write kubeconfig");
        let config = Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .expect("client config");
        let client = Client::try_from(config).expect("client");
        let probe = client.clone();
        common::wait_until(
            Duration::from_secs(90),
            "the second API server ready (its log: see the temp dir)",
            || {
                let probe = probe.clone();
                async move {
                    let request = http::Request::get("/readyz").body(Vec::new())?;
                    Ok(probe.request_text(request).await.ok().filter(|t| t == "ok"))
                }
            },
        )
        .await;
        WatchListOffServer {
            _process: process,
            kubeconfig: kubeconfig_path,
            client,
        }
    }
}

/// The first event of a watch that is not `Init` (the watcher emits `Init` before its first
/// request).
async fn first_answer<K: Send + 'static>(
    events: &mut futures::stream::BoxStream<'static, Result<watcher::Event<K>, watcher::Error>>,
) -> Result<watcher::Event<K>, watcher::Error> {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(30), events.next())
            .await
            .expect("an answer within 30 s")
            .expect("the watch goes on");
        if !matches!(event, Ok(watcher::Event::Init)) {
            return event;
        }
    }
}

/// Creates a ConfigMap `name` with the label the test's watches select (`watched=yes`).
async fn create_watched(config_maps: &Api<ConfigMap>, name: &str) {
    let config_map = json!({"metadata": {"name": name, "labels": {"watched": "yes"}}});
    config_maps
        .create(
            &PostParams::default(),
            &serde_json::from_value(config_map).expect("a ConfigMap"),
        )
        .await
        .expect("create a ConfigMap");
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn without_watch_list_each_watch_reads_pages_and_the_operator_rolls_out() {
    let server = WatchListOffServer::start().await;
    let ns = opted_out_namespace("nowatchlist").await;
    let config_maps: Api<ConfigMap> = Api::namespaced(server.client.clone(), &ns.name);
    create_watched(&config_maps, "listed").await;

    // The server really refuses a streaming list (kube's watcher alone would retry it forever),
    // and the cluster's own API server serves it: the difference is the feature gate.
    // Only this test's ConfigMaps (the namespace has its CA bundle too).
    let streaming = InitialList::Streaming.watch_config().labels("watched=yes");
    let refused =
        first_answer(&mut watcher::watcher(config_maps.clone(), streaming.clone()).boxed())
            .await
            .expect_err("WatchList is off");
    assert!(streaming_list_refused(&refused), "{refused}");
    let on_main: Api<ConfigMap> = ns.api();
    let served = first_answer(&mut watcher::watcher(on_main, streaming.clone()).boxed()).await;
    // Served either way: this server's watch cache may not hold yet the ConfigMap just created
    // through the other server (a streaming list reads the cache as it is), and then its
    // first answer is the end of an empty list.
    assert!(
        matches!(
            served,
            Ok(watcher::Event::InitApply(_) | watcher::Event::InitDone)
        ),
        "{served:?}"
    );

    // The operator's watch pages instead: the object that exists, the end of the list, then
    // the changes after it.
    let mut events = initial_list::watch(config_maps.clone(), streaming);
    let listed = first_answer(&mut events).await.expect("a listed object");
    assert!(
        matches!(&listed, watcher::Event::InitApply(cm) if cm.metadata.name.as_deref() == Some("listed")),
        "{listed:?}"
    );
    assert!(matches!(
        first_answer(&mut events).await,
        Ok(watcher::Event::InitDone)
    ));
    create_watched(&config_maps, "later").await;
    let later = first_answer(&mut events).await.expect("a change");
    assert!(
        matches!(&later, watcher::Event::Apply(cm) if cm.metadata.name.as_deref() == Some("later")),
        "{later:?}"
    );

    // The operator itself, default flags, against that server: its caches sync and it rolls
    // out.
    let log_path = std::env::temp_dir().join(format!("safedeploy-{}.log", ns.name));
    let _operator = controller_command(
        std::path::Path::new(env!("CARGO_BIN_EXE_safedeploy")),
        &ns.name,
        std::fs::File::create(&log_path).expect("log"),
    )
    .env("KUBECONFIG", &server.kubeconfig)
    .spawn()
    .expect("start the operator");
    let steps = json!([{"setWeight": 100}]);
    let status = apply_stable_web(&ns, 1, &steps).await;
    assert_eq!(status.phase, Phase::Healthy);
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(
        log.contains("the API server refused a streaming list"),
        "the operator's log says nothing of the fallback:\n{log}"
    );
}
