//! The I/O of the Gateway API traffic routing (`strategy.canary.trafficRouting`): reads the
//! steered routes for the decision (`core::routing::observe_route`), and carries out a
//! decision's [`TrafficPlan`] before any ReplicaSet is scaled: each route's `spec.rules` as
//! `core::routing::desired_rules` computes them from the live route, then the stable and
//! canary Services (owned by the SafeDeployment, applied whole).
//!
//! A route write applies **only** `spec.rules` (with the `resourceVersion` read as a
//! precondition, and `force`): the Gateway API CRDs make `rules` and `backendRefs` atomic lists,
//! so the operator's field manager takes ownership of the whole `spec.rules` while it steers,
//! and of nothing else (hostnames, parentRefs and metadata stay the user's). The rules it
//! writes are the live ones with only its two weights and its own header rules changed.
//! docs/traffic-routing.md says what a GitOps tool sees.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, ApiResource, DynamicObject, Patch};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use tracing::info;

use super::cached::CachedSafeDeployment;
use super::error::{ReconcileError, writing};
use super::{Context, apply};
use crate::api::SafeDeployment;
use crate::api::labels::{LABEL_NAME, LABEL_REVISION};
use crate::api::routing::{
    GATEWAY_GROUP, GATEWAY_VERSION, ROUTES_FINALIZER, RouteKind, TrafficRouting,
};
use crate::core::rollout::TrafficPlan;
use crate::core::routing::{self, Backends, RouteObservation};

/// The API resource of a route kind.
pub fn route_resource(kind: RouteKind) -> ApiResource {
    ApiResource {
        group: GATEWAY_GROUP.into(),
        version: GATEWAY_VERSION.into(),
        api_version: format!("{GATEWAY_GROUP}/{GATEWAY_VERSION}"),
        kind: kind.as_str().into(),
        plural: kind.plural().into(),
    }
}

fn routes_api(ctx: &Context, namespace: &str, kind: RouteKind) -> Api<DynamicObject> {
    Api::namespaced_with(ctx.client.clone(), namespace, &route_resource(kind))
}

/// The routing of `sd`, if it steers routes.
fn routing(sd: &SafeDeployment) -> Option<&TrafficRouting> {
    sd.spec.strategy.canary.traffic_routing.as_ref()
}

/// The Services' names and port, as backendRefs see them.
struct Names {
    stable: String,
    canary: String,
    port: i32,
}

impl Names {
    fn of(sd: &SafeDeployment, routing: &TrafficRouting) -> Names {
        let name = sd.name_any();
        Names {
            stable: routing.stable_service_name(&name),
            canary: routing.canary_service_name(&name),
            port: routing.service_port(),
        }
    }

    fn backends<'a>(&'a self, namespace: &'a str) -> Backends<'a> {
        Backends {
            namespace,
            stable: &self.stable,
            canary: &self.canary,
            port: self.port,
        }
    }
}

/// Reads a route as JSON; None when it does not exist.
async fn read_route(api: &Api<DynamicObject>, name: &str) -> Result<Option<Value>, kube::Error> {
    match api.get(name).await {
        Ok(route) => Ok(Some(serde_json::to_value(route).unwrap_or(Value::Null))),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(None),
        Err(error) => Err(error),
    }
}

/// Every steered route of `sd` as observed now (empty without routing). A route that cannot be
/// read for a reason the user can fix (no such API, forbidden) is observed with that problem;
/// only a failure to reach the API server fails the reconcile.
pub async fn observe(
    ctx: &Context,
    sd: &SafeDeployment,
    namespace: &str,
) -> Result<Vec<RouteObservation>, ReconcileError> {
    let Some(routing) = routing(sd) else {
        return Ok(Vec::new());
    };
    let names = Names::of(sd, routing);
    let backends = names.backends(namespace);
    let sd_name = sd.name_any();
    let mut observed = Vec::new();
    for (kind, reference) in routing.routes() {
        let api = routes_api(ctx, namespace, kind);
        let seen = match read_route(&api, &reference.name).await {
            Ok(live) => routing::observe_route(kind, &sd_name, reference, live.as_ref(), &backends),
            Err(kube::Error::Api(status)) => RouteObservation {
                kind,
                name: reference.name.clone(),
                problem: Some(format!(
                    "the route cannot be read ({} {}): is the Gateway API installed, and may the operator read {}?",
                    status.code,
                    status.message,
                    kind.plural()
                )),
                ..RouteObservation::default()
            },
            Err(error) => return Err(error.into()),
        };
        observed.push(seen);
    }
    Ok(observed)
}

/// The API resource of the Gateway API's `Gateway` (namespaced) or `GatewayClass` (cluster).
fn gateway_resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: GATEWAY_GROUP.into(),
        version: GATEWAY_VERSION.into(),
        api_version: format!("{GATEWAY_GROUP}/{GATEWAY_VERSION}"),
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// Reads an object; None when it does not exist or may not be read (a problem for the user to
/// fix, said in the preflight message), an error when the API server cannot be reached.
async fn read_optional(
    api: &Api<DynamicObject>,
    name: &str,
) -> Result<Option<Value>, ReconcileError> {
    match api.get(name).await {
        Ok(object) => Ok(serde_json::to_value(object).ok()),
        Err(kube::Error::Api(status)) if (400..500).contains(&status.code) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// The Gateways `route` (its live JSON) is attached to, in `namespace` by default, each with its
/// class's supported features as read.
async fn gateway_features(
    ctx: &Context,
    namespace: &str,
    route: &Value,
) -> Result<Vec<routing::GatewayFeatures>, ReconcileError> {
    let classes: Api<DynamicObject> = Api::all_with(
        ctx.client.clone(),
        &gateway_resource("GatewayClass", "gatewayclasses"),
    );
    let mut seen: Vec<routing::GatewayFeatures> = Vec::new();
    let parents = route
        .pointer("/spec/parentRefs")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for parent in parents.iter().take(32) {
        let text = |key: &str| parent.get(key).and_then(Value::as_str);
        if text("kind").is_some_and(|k| k != "Gateway")
            || text("group").is_some_and(|g| g != GATEWAY_GROUP)
        {
            continue;
        }
        let Some(name) = text("name") else { continue };
        let gateway_namespace = text("namespace").unwrap_or(namespace);
        let key = format!("{gateway_namespace}/{name}");
        if seen.iter().any(|g| g.gateway == key) {
            continue;
        }
        let gateways: Api<DynamicObject> = Api::namespaced_with(
            ctx.client.clone(),
            gateway_namespace,
            &gateway_resource("Gateway", "gateways"),
        );
        let class = read_optional(&gateways, name).await?.and_then(|g| {
            g.pointer("/spec/gatewayClassName")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
        let features = match &class {
            Some(class) => read_optional(&classes, class)
                .await?
                .map(|c| routing::supported_feature_names(c.pointer("/status/supportedFeatures"))),
            None => None,
        };
        seen.push(routing::GatewayFeatures {
            gateway: key,
            class,
            features,
        });
    }
    Ok(seen)
}

/// Why `sd`'s mirror routes cannot be written (a preflight problem per HTTPRoute whose Gateways
/// do not declare mirroring); empty when no step mirrors. Read only for a revision about to roll
/// out: the Gateways and their classes are two reads per route.
pub async fn mirror_problems(
    ctx: &Context,
    sd: &SafeDeployment,
    namespace: &str,
) -> Result<Vec<String>, ReconcileError> {
    let Some(routing) = routing(sd) else {
        return Ok(Vec::new());
    };
    let mirrors: Vec<&crate::api::routing::SetMirrorRoute> = sd
        .spec
        .strategy
        .canary
        .steps
        .iter()
        .filter_map(|s| s.set_mirror_route.as_ref())
        .filter(|m| !m.matches.is_empty())
        .collect();
    if mirrors.is_empty() {
        return Ok(Vec::new());
    }
    let needs_percentage = mirrors.iter().any(|m| m.percent() < 100);
    let mut problems = Vec::new();
    for (kind, reference) in routing.routes() {
        if kind != RouteKind::Http {
            continue;
        }
        let api = routes_api(ctx, namespace, kind);
        // A missing route is the routes' own problem, reported with them.
        let Some(live) = read_route(&api, &reference.name).await.ok().flatten() else {
            continue;
        };
        let gateways = gateway_features(ctx, namespace, &live).await?;
        if let Some(problem) =
            routing::mirror_support_problem(&reference.name, &gateways, needs_percentage)
        {
            problems.push(problem);
        }
    }
    Ok(problems)
}

/// Carries out `plan` for `sd`: every route, then the Services (see the module doc). A route
/// that cannot be steered (missing, no such rule) is skipped: the decision sees it in the next
/// observation and holds the step.
pub async fn apply_plan(
    ctx: &Context,
    sd: &SafeDeployment,
    namespace: &str,
    plan: &TrafficPlan,
) -> Result<(), ReconcileError> {
    let Some(routing) = routing(sd) else {
        return Ok(());
    };
    let names = Names::of(sd, routing);
    // The routes first: a revert's weight 0 must not wait for a Service write (which can
    // fail, say on a Service someone else owns). Either order is safe for the Services'
    // switch, since nothing is scaled down before both are written: at a promotion the stable
    // weight goes back to 100 while the stable Service still selects the old revision at full
    // size, then the Service switches to the new revision (all Ready).
    let backends = names.backends(namespace);
    for (kind, reference) in routing.routes() {
        let api = routes_api(ctx, namespace, kind);
        steer_route(ctx, &api, sd, kind, reference, &backends, plan).await?;
    }
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), namespace);
    for (name, revision) in [
        (&names.stable, &plan.stable_revision),
        (&names.canary, &plan.canary_revision),
    ] {
        apply_service(ctx, &services, sd, name, revision, routing).await?;
    }
    Ok(())
}

/// Whether `sd` steers at least one route (blue-green and a route-less routing steer none).
fn steers_routes(sd: &SafeDeployment) -> bool {
    routing(sd).is_some_and(|r| r.routes().next().is_some())
}

fn has_finalizer(sd: &SafeDeployment) -> bool {
    super::finalizers::has(sd, ROUTES_FINALIZER)
}

async fn apply_finalizer(
    ctx: &Context,
    sd: &SafeDeployment,
    namespace: &str,
    present: bool,
) -> Result<(), ReconcileError> {
    super::finalizers::set(ctx, sd, namespace, ROUTES_FINALIZER, present).await
}

/// Whether `plan` puts anything of the operator's on the routes (a canary weight above 0, a
/// header or a mirror rule): only then does a deletion have something to undo.
pub fn plan_steers(plan: Option<&TrafficPlan>) -> bool {
    plan.is_some_and(TrafficPlan::steers)
}

/// Keeps [`ROUTES_FINALIZER`] on `sd` exactly while the routes carry something of the
/// operator's: the reconcile adds it (`steering`) before it writes a weight or header rule, and
/// removes it only after the routes were written back at rest. At rest the routes are the
/// user's own, so deleting the SafeDeployment has nothing to undo, and an operator that is
/// uninstalled first leaves nothing behind that waits for it.
pub async fn keep_finalizer(
    ctx: &Context,
    sd: &SafeDeployment,
    namespace: &str,
    steering: bool,
) -> Result<(), ReconcileError> {
    let wanted = steering && steers_routes(sd);
    if wanted == has_finalizer(sd) {
        return Ok(());
    }
    apply_finalizer(ctx, sd, namespace, wanted).await
}

/// On deletion: returns every steered route's rule to the weights at rest (stable 100, canary
/// 0) and removes the operator's header rules (each route written only if it differs, with the
/// same read-compute-apply as a step), then removes the finalizer so the SafeDeployment goes.
/// The routes are then what the user's manifest says, and no rule of the operator's points at
/// the Services that go with the SafeDeployment. The field manager keeps its ownership of
/// `spec.rules` (the values are the user's; a GitOps re-apply takes them back).
pub async fn release_on_deletion(
    ctx: &Context,
    sd: &SafeDeployment,
    namespace: &str,
) -> Result<(), ReconcileError> {
    if !has_finalizer(sd) {
        return Ok(());
    }
    if let Some(routing) = routing(sd) {
        let names = Names::of(sd, routing);
        let backends = names.backends(namespace);
        let at_rest = TrafficPlan {
            stable_revision: String::new(),
            canary_revision: String::new(),
            canary_weight: 0,
            header_routes: Vec::new(),
            mirror_routes: Vec::new(),
        };
        for (kind, reference) in routing.routes() {
            let api = routes_api(ctx, namespace, kind);
            match steer_route(ctx, &api, sd, kind, reference, &backends, &at_rest).await {
                // Refused for good (forbidden, invalid): the deletion must not hang on a
                // route the operator may not write; say so and let the object go.
                Err(ReconcileError::Write {
                    source: kube::Error::Api(status),
                    what,
                }) if (400..500).contains(&status.code) && status.code != 409 => {
                    tracing::warn!(rollout = %sd.name_any(), route = %reference.name, %what,
                        code = status.code, message = %status.message,
                        "route not released before deletion");
                }
                other => other?,
            }
        }
    }
    apply_finalizer(ctx, sd, namespace, false).await?;
    info!(rollout = %sd.name_any(), "routes released before deletion");
    Ok(())
}

/// How often a route write is tried again after the route changed between read and write.
const ROUTE_ATTEMPTS: u32 = 3;

/// Writes one route's rules if they differ from what `plan` wants.
async fn steer_route(
    ctx: &Context,
    api: &Api<DynamicObject>,
    sd: &SafeDeployment,
    kind: RouteKind,
    reference: &crate::api::routing::RouteReference,
    backends: &Backends<'_>,
    plan: &TrafficPlan,
) -> Result<(), ReconcileError> {
    let sd_name = sd.name_any();
    let what = format!("set the weights of {} {}", kind.as_str(), reference.name);
    let mut attempt = 1;
    loop {
        let Some(live) = read_route(api, &reference.name)
            .await
            .map_err(writing(what.clone()))?
        else {
            return Ok(());
        };
        let rules: Vec<Value> = live
            .pointer("/spec/rules")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let Ok(wanted) = routing::desired_rules(
            kind,
            &sd_name,
            &rules,
            reference,
            backends,
            plan.canary_weight,
            &plan.header_routes,
            &plan.mirror_routes,
        ) else {
            return Ok(());
        };
        if wanted == rules {
            return Ok(());
        }
        let patch = json!({
            "apiVersion": format!("{GATEWAY_GROUP}/{GATEWAY_VERSION}"),
            "kind": kind.as_str(),
            "metadata": {
                "name": reference.name,
                "resourceVersion": live.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null),
            },
            "spec": {"rules": wanted},
        });
        ctx.ensure_leader()?;
        match api
            .patch(
                &reference.name,
                &apply::apply_params(),
                &Patch::Apply(&patch),
            )
            .await
        {
            Err(kube::Error::Api(status)) if status.code == 409 && attempt < ROUTE_ATTEMPTS => {
                attempt += 1;
            }
            Err(error) => return Err(writing(what)(error)),
            Ok(_) => {
                info!(rollout = %sd_name, route = %reference.name, kind = kind.as_str(),
                      canary_weight = plan.canary_weight,
                      header_routes = plan.header_routes.len(),
                      mirror_routes = plan.mirror_routes.len(), "route weights set");
                return Ok(());
            }
        }
    }
}

/// The Service `name` selecting `revision`'s pods of `sd`, owned by `sd`.
pub fn service(
    sd: &SafeDeployment,
    name: &str,
    revision: &str,
    routing: &TrafficRouting,
) -> Service {
    let mut selector = sd.spec.selector.match_labels.clone();
    selector.insert(LABEL_REVISION.to_string(), revision.to_string());
    Service {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: sd.namespace(),
            labels: Some([(LABEL_NAME.to_string(), sd.name_any())].into()),
            owner_references: sd.controller_owner_ref(&()).map(|o| vec![o]),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(selector),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: routing.service_port(),
                target_port: Some(IntOrString::Int(routing.pod_port())),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    }
}

/// Applies the Service `name` when it is missing or differs; refuses to take over a Service
/// that exists and is not controlled by `sd` (someone else's traffic).
async fn apply_service(
    ctx: &Context,
    api: &Api<Service>,
    sd: &SafeDeployment,
    name: &str,
    revision: &str,
    routing: &TrafficRouting,
) -> Result<(), ReconcileError> {
    let wanted = service(sd, name, revision, routing);
    match api.get(name).await {
        Ok(live) => {
            let ours = live
                .owner_references()
                .iter()
                .any(|o| o.controller == Some(true) && Some(&o.uid) == sd.meta().uid.as_ref());
            if !ours {
                return Err(ReconcileError::ServiceTaken(name.to_string()));
            }
            let same = live.spec.as_ref().and_then(|s| s.selector.as_ref())
                == wanted.spec.as_ref().and_then(|s| s.selector.as_ref())
                && live.spec.as_ref().and_then(|s| s.ports.as_ref()).map(|p| {
                    p.iter()
                        .map(|p| (p.port, p.target_port.clone()))
                        .collect::<Vec<_>>()
                }) == wanted
                    .spec
                    .as_ref()
                    .and_then(|s| s.ports.as_ref())
                    .map(|p| {
                        p.iter()
                            .map(|p| (p.port, p.target_port.clone()))
                            .collect::<Vec<_>>()
                    });
            if same {
                return Ok(());
            }
        }
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        Err(error) => return Err(writing(format!("read Service {name}"))(error)),
    }
    apply::apply_object(ctx, api, &wanted, format!("apply Service {name}")).await?;
    info!(rollout = %sd.name_any(), service = name, revision, "service selects revision");
    Ok(())
}

/// The SafeDeployments to look at again when routes change: those in the route's namespace
/// that steer a route of that kind and name (a user's re-apply, a Gateway's status, the
/// operator's own write). A route API the cluster does not serve (no Gateway API CRDs) or that
/// the operator may not watch yields nothing: the routes are then read at each reconcile only.
pub fn route_triggers(
    client: &kube::Client,
    namespace: &Option<String>,
    store: kube::runtime::reflector::Store<CachedSafeDeployment>,
) -> futures::stream::BoxStream<'static, kube::runtime::reflector::ObjectRef<CachedSafeDeployment>>
{
    use futures::StreamExt;
    use kube::runtime::{WatchStreamExt, watcher};
    let streams = [RouteKind::Http, RouteKind::Grpc].map(|kind| {
        let resource = route_resource(kind);
        // `PartialObjectMeta`: the API server sends metadata only (a route's name and namespace
        // are all the mapping needs).
        let api: Api<kube::core::PartialObjectMeta<DynamicObject>> = match namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        let store = store.clone();
        futures::stream::once(async move {
            let served = api.list(&kube::api::ListParams::default().limit(1)).await;
            (api, served)
        })
        .flat_map(move |(api, served)| match served {
            Ok(_) => watcher(api, watcher::Config::default().page_size(500))
                .default_backoff()
                .touched_objects()
                .filter_map(|route| futures::future::ready(route.ok()))
                .boxed(),
            Err(error) => {
                info!(kind = kind.as_str(), %error, "routes of this kind are not watched; they are read at each reconcile");
                futures::stream::empty().boxed()
            }
        })
        .flat_map(move |route: kube::core::PartialObjectMeta<DynamicObject>| {
            futures::stream::iter(steering(&store, kind, &route.metadata))
        })
        .boxed()
    });
    futures::stream::select_all(streams).boxed()
}

/// The SafeDeployments that steer `route`.
fn steering(
    store: &kube::runtime::reflector::Store<CachedSafeDeployment>,
    kind: RouteKind,
    route: &ObjectMeta,
) -> Vec<kube::runtime::reflector::ObjectRef<CachedSafeDeployment>> {
    let (Some(name), Some(namespace)) = (route.name.as_deref(), route.namespace.clone()) else {
        return Vec::new();
    };
    store
        .state()
        .iter()
        .filter(|sd| sd.namespace().as_deref() == Some(namespace.as_str()))
        .filter(|sd| sd.steers(kind, name))
        .map(|sd| kube::runtime::reflector::ObjectRef::from_obj(sd.as_ref()))
        .collect()
}
