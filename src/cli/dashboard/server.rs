//! The dashboard's HTTP routes. The page of a rollout is `/<namespace>/<name>` (the notifications
//! link there); everything else lives under `/_/`, a segment no namespace can have:
//!
//! * `GET /_/api/rollouts`, `GET /_/api/rollouts/<ns>/<name>`: the view model as JSON;
//! * `GET /_/api/watch`, `GET /_/api/rollouts/<ns>/<name>/watch`: the same, pushed as
//!   server-sent events from watches;
//! * `POST /_/api/rollouts/<ns>/<name>/<promote|promote-full|abort|retry|rollback>`: the
//!   kubectl plugin's request, written with the user's credentials (so the API server's RBAC
//!   and admission policies decide, and its refusal comes back with its own status code);
//! * `GET /_/<file>`: the embedded front end.
//!
//! Two guards, because the server holds the user's credentials: a request whose `Host` is not
//! the listening address (or an allowed name) is refused (DNS rebinding), and an action needs
//! the `X-Safedeploy-Action` header, which no cross-site form can send without a CORS preflight
//! that this server never grants.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Event as KubeEvent;
use kube::api::{Api, ListParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;

use super::view::{self, RolloutView};
use super::{Scope, assets, cluster};
use crate::api::SafeDeployment;
use crate::plugin::{ActionRequest, PluginError, send_request};

/// The header an action request must carry (see the module's documentation).
pub const ACTION_HEADER: &str = "x-safedeploy-action";

/// What the routes share: the user's client, the list's scope and the accepted `Host` values.
pub struct Dashboard {
    client: Client,
    scope: Scope,
    allowed_hosts: Vec<String>,
    any_host: bool,
    read_only: bool,
}

impl Dashboard {
    /// A dashboard acting with `client`, listing `scope`, listening on `address`; requests must
    /// name a loopback name of its port or one of `extra_hosts` in `Host` (any, when it listens
    /// on an unspecified address such as 0.0.0.0, where the operator of the machine chose).
    /// A `read_only` dashboard offers no action and refuses every action request, whatever its
    /// client may do (the chart's in-cluster dashboard, which acts for nobody).
    pub fn new(
        client: Client,
        scope: Scope,
        address: SocketAddr,
        extra_hosts: Vec<String>,
        read_only: bool,
    ) -> Arc<Self> {
        let port = address.port();
        let mut allowed_hosts = vec![
            address.to_string(),
            format!("localhost:{port}"),
            format!("127.0.0.1:{port}"),
            format!("[::1]:{port}"),
        ];
        allowed_hosts.extend(extra_hosts);
        Arc::new(Self {
            client,
            scope,
            allowed_hosts,
            any_host: address.ip().is_unspecified(),
            read_only,
        })
    }
}

/// The routes of the dashboard.
pub fn router(dashboard: Arc<Dashboard>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/{namespace}/{name}", get(page))
        .route("/_/{file}", get(asset))
        .route("/_/api/rollouts", get(list))
        .route("/_/api/watch", get(watch_list))
        .route("/_/api/rollouts/{namespace}/{name}", get(detail))
        .route(
            "/_/api/rollouts/{namespace}/{name}/watch",
            get(watch_detail),
        )
        .route("/_/api/rollouts/{namespace}/{name}/{action}", post(act))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&dashboard),
            check_host,
        ))
        .with_state(dashboard)
}

async fn check_host(
    State(dashboard): State<Arc<Dashboard>>,
    request: Request,
    next: Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    if dashboard.any_host || dashboard.allowed_hosts.iter().any(|h| h == host) {
        return next.run(request).await;
    }
    problem(
        StatusCode::MISDIRECTED_REQUEST,
        format!("Host {host:?} is not this dashboard's address (see --allowed-host)"),
    )
}

fn problem(status: StatusCode, message: String) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}

fn kube_problem(error: &kube::Error) -> Response {
    match error {
        kube::Error::Api(status) => problem(
            StatusCode::from_u16(status.code).unwrap_or(StatusCode::BAD_GATEWAY),
            status.message.clone(),
        ),
        other => problem(StatusCode::BAD_GATEWAY, other.to_string()),
    }
}

async fn page() -> Response {
    (
        [(header::CACHE_CONTROL, "no-cache")],
        Html(assets::INDEX_HTML),
    )
        .into_response()
}

async fn asset(Path(file): Path<String>) -> Response {
    match assets::find(&file) {
        Some(asset) => (
            [
                (header::CONTENT_TYPE, asset.content_type),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            asset.bytes,
        )
            .into_response(),
        None => problem(StatusCode::NOT_FOUND, format!("no file {file}")),
    }
}

async fn list(State(dashboard): State<Arc<Dashboard>>) -> Response {
    let api = cluster::rollouts(dashboard.client.clone(), &dashboard.scope);
    match api.list(&ListParams::default()).await {
        Ok(list) => {
            let rows: Vec<view::RolloutSummary> = list.items.iter().map(view::summary).collect();
            Json(json!({"scope": scope_text(&dashboard.scope), "rollouts": rows})).into_response()
        }
        Err(error) => kube_problem(&error),
    }
}

fn scope_text(scope: &Scope) -> String {
    match scope {
        Scope::Namespace(namespace) => namespace.clone(),
        Scope::All => String::new(),
    }
}

/// The page of `namespace/name` as the user may see it: None when it does not exist.
async fn build_view(
    client: &Client,
    namespace: &str,
    name: &str,
    read_only: bool,
) -> Result<Option<RolloutView>, kube::Error> {
    let api: Api<SafeDeployment> = Api::namespaced(client.clone(), namespace);
    let Some(sd) = api.get_opt(name).await? else {
        return Ok(None);
    };
    let may_act = async { !read_only && cluster::may_patch(client.clone(), namespace, name).await };
    let (events, may_act) =
        futures::join!(cluster::events(client.clone(), namespace, name), may_act);
    Ok(Some(view::rollout(&sd, &events, may_act)))
}

async fn detail(
    State(dashboard): State<Arc<Dashboard>>,
    Path((namespace, name)): Path<(String, String)>,
) -> Response {
    match build_view(&dashboard.client, &namespace, &name, dashboard.read_only).await {
        Ok(Some(view)) => Json(view).into_response(),
        Ok(None) => problem(
            StatusCode::NOT_FOUND,
            format!("no SafeDeployment {namespace}/{name}"),
        ),
        Err(error) => kube_problem(&error),
    }
}

fn sse_json(kind: &str, value: &impl serde::Serialize) -> Event {
    match Event::default().event(kind).json_data(value) {
        Ok(event) => event,
        // Serializing the view model cannot fail (plain data); say so if it ever does.
        Err(error) => Event::default()
            .event("problem")
            .data(format!("cannot encode {kind}: {error}")),
    }
}

async fn watch_list(
    State(dashboard): State<Arc<Dashboard>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let api = cluster::rollouts(dashboard.client.clone(), &dashboard.scope);
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .map(|event| {
            Ok(match event {
                Ok(watcher::Event::Init) => Event::default().event("reset").data("{}"),
                Ok(watcher::Event::InitApply(sd) | watcher::Event::Apply(sd)) => {
                    sse_json("summary", &view::summary(&sd))
                }
                Ok(watcher::Event::Delete(sd)) => sse_json(
                    "deleted",
                    &json!({"namespace": sd.namespace(), "name": sd.name_any()}),
                ),
                Ok(watcher::Event::InitDone) => Event::default().event("ready").data("{}"),
                Err(error) => sse_json("problem", &json!({"error": error.to_string()})),
            })
        });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn watch_detail(
    State(dashboard): State<Arc<Dashboard>>,
    Path((namespace, name)): Path<(String, String)>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let client = dashboard.client.clone();
    let read_only = dashboard.read_only;
    let by_name = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let rollouts: Api<SafeDeployment> = Api::namespaced(client.clone(), &namespace);
    let events: Api<KubeEvent> = Api::namespaced(client.clone(), &namespace);
    let events_config = watcher::Config::default().fields(&cluster::events_selector(&name));
    // Any change of the object or of an Event about it redraws the page.
    let rollout_changes = watcher(rollouts, by_name)
        .default_backoff()
        .map(|event| event.map(|_| ()).map_err(|e| e.to_string()));
    let event_changes = watcher(events, events_config)
        .default_backoff()
        .map(|event| event.map(|_| ()).map_err(|e| e.to_string()));
    let stream = futures::stream::select(rollout_changes.boxed(), event_changes.boxed()).then(
        move |change| {
            let (client, namespace, name) = (client.clone(), namespace.clone(), name.clone());
            async move {
                Ok(match change {
                    Err(error) => sse_json("problem", &json!({"error": error})),
                    Ok(()) => match build_view(&client, &namespace, &name, read_only).await {
                        Ok(Some(view)) => sse_json("rollout", &view),
                        Ok(None) => {
                            sse_json("deleted", &json!({"namespace": namespace, "name": name}))
                        }
                        Err(error) => sse_json("problem", &json!({"error": error.to_string()})),
                    },
                })
            }
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// The query of an action: the revision of a rollback.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ActionQuery {
    to_revision: Option<i64>,
}

/// The request an action path names, or why it names none.
pub fn action_request(action: &str, to_revision: Option<i64>) -> Result<ActionRequest, String> {
    match (action, to_revision) {
        ("promote", _) => Ok(ActionRequest::Promote { full: false }),
        ("promote-full", _) => Ok(ActionRequest::Promote { full: true }),
        ("abort", _) => Ok(ActionRequest::Abort),
        ("retry", _) => Ok(ActionRequest::Retry),
        ("rollback", Some(to_revision)) if to_revision >= 0 => {
            Ok(ActionRequest::Rollback { to_revision })
        }
        ("rollback", _) => Err("rollback needs ?toRevision=<revision number>".into()),
        (other, _) => Err(format!("no action {other:?}")),
    }
}

async fn act(
    State(dashboard): State<Arc<Dashboard>>,
    Path((namespace, name, action)): Path<(String, String, String)>,
    Query(query): Query<ActionQuery>,
    headers: HeaderMap,
) -> Response {
    if dashboard.read_only {
        return problem(
            StatusCode::FORBIDDEN,
            "this dashboard is read-only (--read-only): use the kubectl plugin or your own `safedeploy dashboard`".into(),
        );
    }
    if !headers.contains_key(ACTION_HEADER) {
        return problem(
            StatusCode::FORBIDDEN,
            format!("an action needs the {ACTION_HEADER} header"),
        );
    }
    let request = match action_request(&action, query.to_revision) {
        Ok(request) => request,
        Err(message) => return problem(StatusCode::BAD_REQUEST, message),
    };
    let api: Api<SafeDeployment> = Api::namespaced(dashboard.client.clone(), &namespace);
    match send_request(&api, &name, request).await {
        Ok(()) => (
            StatusCode::ACCEPTED,
            Json(json!({"message": format!("{} of {namespace}/{name} requested", request.verb())})),
        )
            .into_response(),
        Err(PluginError::Refused { message, code, .. }) => problem(
            StatusCode::from_u16(code).unwrap_or(StatusCode::FORBIDDEN),
            message,
        ),
        Err(PluginError::Kube(error)) => kube_problem(&error),
        Err(other) => problem(StatusCode::BAD_GATEWAY, other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serves the routes with a client of an API server that does not exist: the guards and
    /// the embedded files answer before any call to it.
    async fn offline_dashboard() -> String {
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let client = Client::try_from(config).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let dashboard = Dashboard::new(
            client,
            Scope::All,
            address,
            vec!["dash.example".into()],
            false,
        );
        tokio::spawn(async move { axum::serve(listener, router(dashboard)).await });
        format!("http://{address}")
    }

    #[tokio::test]
    async fn a_foreign_host_and_an_action_without_the_header_are_refused() {
        let base = offline_dashboard().await;
        let http = reqwest::Client::new();
        // DNS rebinding: the browser sends the attacker's name as Host.
        for host in ["attacker.example", "attacker.example:80", "localhost:1"] {
            let response = http
                .get(format!("{base}/_/api/rollouts"))
                .header("host", host)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), 421, "{host}");
        }
        let response = http
            .get(format!("{base}/_/app.js"))
            .header("host", "dash.example")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "an allowed host");
        // A cross-site form can POST, but not with the header.
        let response = http
            .post(format!("{base}/_/api/rollouts/shop/web/abort"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 403);
        let response = http
            .post(format!("{base}/_/api/rollouts/shop/web/delete"))
            .header(ACTION_HEADER, "1")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 400, "no such action");
    }

    #[tokio::test]
    async fn the_pages_and_files_are_embedded_and_nothing_else_is_served() {
        let base = offline_dashboard().await;
        let http = reqwest::Client::new();
        for page in ["/", "/shop/web"] {
            let response = http.get(format!("{base}{page}")).send().await.unwrap();
            assert_eq!(response.status().as_u16(), 200, "{page}");
            let body = response.text().await.unwrap();
            assert!(body.contains("/_/app.js"), "{page}: {body}");
        }
        let response = http
            .get(format!("{base}/_/uPlot.iife.min.js"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        assert!(response.bytes().await.unwrap().len() > 40_000);
        for missing in [
            "/_/..%2FCargo.toml",
            "/_/index.html.bak",
            "/_/%2Fetc%2Fpasswd",
        ] {
            let response = http.get(format!("{base}{missing}")).send().await.unwrap();
            assert_eq!(response.status().as_u16(), 404, "{missing}");
        }
    }

    #[test]
    fn an_action_path_names_one_of_the_plugins_requests() {
        assert_eq!(
            action_request("promote", None),
            Ok(ActionRequest::Promote { full: false })
        );
        assert_eq!(
            action_request("promote-full", None),
            Ok(ActionRequest::Promote { full: true })
        );
        assert_eq!(
            action_request("rollback", Some(3)),
            Ok(ActionRequest::Rollback { to_revision: 3 })
        );
        assert!(action_request("rollback", None).is_err());
        assert!(action_request("rollback", Some(-1)).is_err());
        assert!(action_request("break-glass", None).is_err());
        assert!(action_request("", None).is_err());
    }
}
