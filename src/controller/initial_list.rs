//! How every watch of the operator reads the objects that exist when it starts: a streaming
//! list (one watch that begins with them, Kubernetes' WatchList), or pages of a list followed by
//! a watch. A server that refuses the streaming list (the WatchList feature gate off, or a
//! Kubernetes older than 1.27) gets paged lists instead, watch by watch: kube's watcher, unlike
//! client-go's, does not fall back by itself, and would retry the refused request forever with
//! its caches never synced.

use std::fmt::Debug;

use futures::StreamExt;
use futures::stream::BoxStream;
use kube::api::Api;
use kube::runtime::watcher::{self, InitialListStrategy};
use serde::de::DeserializeOwned;
use tracing::warn;

/// Objects per page of a paged (re)list. A list with `resourceVersion=0` (any semantic) is
/// served whole from the API server's watch cache, whatever the limit: one response holding
/// every pod in scope. The default (most recent) semantic honours the limit, so a relist of
/// 10,000 pods arrives in pages of this size instead.
pub const LIST_PAGE: u32 = 500;

/// How a watch reads the objects that exist when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum InitialList {
    /// One watch that begins with the objects that exist (`sendInitialEvents`, served from the
    /// API server's watch cache) and ends them with a bookmark: each object is parsed as it
    /// arrives, and no page of them is held at once, so a restart's peak memory stays near the
    /// caches' own (docs/benchmarks.md). A server that refuses it gets `paged` instead.
    #[default]
    Streaming,
    /// A list in pages of 500 objects, each page a request read whole before it is parsed, then
    /// a watch from the list's resourceVersion. Every Kubernetes version serves it.
    Paged,
}

impl InitialList {
    /// The watch configuration every watch of the operator starts from.
    pub fn watch_config(self) -> watcher::Config {
        let config = watcher::Config::default();
        match self {
            InitialList::Paged => config.page_size(LIST_PAGE),
            InitialList::Streaming => config.streaming_lists(),
        }
    }
}

/// A watch of `api` configured by `config` (see [`InitialList::watch_config`]). When `config`
/// asks for a streaming list and the server refuses it, this watch continues with paged lists,
/// keeping every other setting (selectors, timeouts), and says so once in the log.
pub fn watch<K>(
    api: Api<K>,
    config: watcher::Config,
) -> BoxStream<'static, Result<watcher::Event<K>, watcher::Error>>
where
    K: kube::Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    K::DynamicType: Default,
{
    if config.initial_list_strategy != InitialListStrategy::StreamingList {
        return watcher::watcher(api, config).boxed();
    }
    let paged = paged(config.clone());
    let streaming = watcher::watcher(api.clone(), config).boxed();
    futures::stream::unfold(
        (streaming, Some((api, paged))),
        |(mut events, mut fallback)| async move {
            loop {
                let event = events.next().await?;
                if let Err(error) = &event
                    && streaming_list_refused(error)
                    && let Some((api, paged)) = fallback.take()
                {
                    warn!(
                        resource = %K::plural(&Default::default()),
                        %error,
                        "the API server refused a streaming list; this watch reads pages instead"
                    );
                    events = watcher::watcher(api, paged).boxed();
                    continue;
                }
                return Some((event, (events, fallback)));
            }
        },
    )
    .boxed()
}

/// `config` with paged lists instead of a streaming one.
fn paged(mut config: watcher::Config) -> watcher::Config {
    config.initial_list_strategy = InitialListStrategy::ListWatch;
    config.page_size(LIST_PAGE)
}

/// Whether the server rejected the request for a streaming list as such: Kubernetes 1.27 on
/// with the WatchList feature gate off says `sendInitialEvents is forbidden for watch unless the
/// WatchList feature gate is enabled` (422 Invalid), and an older one forbids the
/// `resourceVersionMatch` a streaming list sends with it. Anything else (a 403, a network
/// error) is the same error a paged list would meet, and stays with the watcher's backoff.
pub fn streaming_list_refused(error: &watcher::Error) -> bool {
    let watcher::Error::WatchStartFailed(kube::Error::Api(status)) = error else {
        return false;
    };
    let names_the_parameter =
        |text: &str| text.contains("sendInitialEvents") || text.contains("resourceVersionMatch");
    matches!(status.code, 400 | 422)
        && (names_the_parameter(&status.message)
            || status
                .details
                .iter()
                .flat_map(|details| &details.causes)
                .any(|cause| names_the_parameter(&cause.field)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start_failed(status_json: &str) -> watcher::Error {
        let status: kube::core::Status = serde_json::from_str(status_json).unwrap();
        watcher::Error::WatchStartFailed(kube::Error::Api(Box::new(status)))
    }

    #[test]
    fn each_initial_list_strategy_configures_the_watch() {
        assert_eq!(
            InitialList::Streaming.watch_config().initial_list_strategy,
            InitialListStrategy::StreamingList
        );
        let paged_config = InitialList::Paged.watch_config();
        assert_eq!(paged_config.page_size, Some(LIST_PAGE));
        assert_eq!(
            paged_config.initial_list_strategy,
            InitialListStrategy::ListWatch
        );
        assert_eq!(InitialList::default(), InitialList::Streaming);
    }

    #[test]
    fn the_fallback_keeps_the_selectors_and_pages_the_list() {
        let streaming = InitialList::Streaming
            .watch_config()
            .labels("safedeploy.dev/name")
            .fields("metadata.name=a")
            .timeout(17);
        let fallback = paged(streaming.clone());
        assert_eq!(
            fallback.initial_list_strategy,
            InitialListStrategy::ListWatch
        );
        assert_eq!(fallback.page_size, Some(LIST_PAGE));
        assert_eq!(fallback.label_selector, streaming.label_selector);
        assert_eq!(fallback.field_selector, streaming.field_selector);
        assert_eq!(fallback.timeout, streaming.timeout);
    }

    #[test]
    fn a_refused_streaming_list_is_told_from_other_errors() {
        // What kube-apiserver 1.36 answers with `--feature-gates=WatchList=false`.
        let watch_list_off = start_failed(
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
            "message":"ListOptions.meta.k8s.io \"\" is invalid: sendInitialEvents: Forbidden: sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled",
            "reason":"Invalid","details":{"group":"meta.k8s.io","kind":"ListOptions","causes":[{"reason":"FieldValueForbidden","message":"Forbidden: sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled","field":"sendInitialEvents"}]},"code":422}"#,
        );
        assert!(streaming_list_refused(&watch_list_off));
        // A server before 1.27: the parameter that comes with it is refused.
        let before_watch_list = start_failed(
            r#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Invalid","code":422,
            "message":"ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch"}"#,
        );
        assert!(streaming_list_refused(&before_watch_list));

        // RBAC, a missing resource, an overloaded server: a paged list would meet them too.
        let forbidden = start_failed(
            r#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Forbidden","code":403,
            "message":"safedeployments.safedeploy.dev is forbidden: User \"x\" cannot watch resource \"safedeployments\""}"#,
        );
        assert!(!streaming_list_refused(&forbidden));
        let too_many = start_failed(
            r#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"TooManyRequests","code":429,"message":"too many requests"}"#,
        );
        assert!(!streaming_list_refused(&too_many));
        // The same words in another phase of the watch are not a refusal of the start.
        let status: kube::core::Status = serde_json::from_str(
            r#"{"status":"Failure","reason":"Invalid","code":422,"message":"sendInitialEvents"}"#,
        )
        .unwrap();
        assert!(!streaming_list_refused(&watcher::Error::WatchError(
            Box::new(status)
        )));
    }
}
