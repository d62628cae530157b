//! Route decisions of the Gateway API traffic routing, from plain data (a route's `spec.rules`
//! and `status.parents` as JSON) to plain data: which rule the operator steers, the rules it
//! would write (only the weights of its own two backendRefs changed, its own header and mirror
//! rules added or removed, everything else as read), what it observes of a route (weights set,
//! whether the Gateways accepted it), and whether a route's Gateways can mirror. No I/O;
//! `controller/routes.rs` reads and writes.
//!
//! Why whole rules: in the Gateway API CRDs `spec.rules` and `rules[].backendRefs` are
//! `x-kubernetes-list-type: atomic`, so a server-side apply cannot own a single weight; whoever
//! applies `rules` owns the whole list. The operator therefore writes back the rules it read
//! with only its weights (and its own rules) changed, so no field of the user's is lost.

use serde_json::{Value, json};

use crate::api::routing::{
    FEATURE_PERCENTAGE_MIRROR, FEATURE_REQUEST_MIRROR, HeaderMatch, OWNED_RULE_PREFIX, RouteKind,
    RouteReference, RouteStatus, SetHeaderRoute, SetMirrorRoute,
};

/// The most rules a route may have (the Gateway API CRDs' `maxItems`).
pub const MAX_RULES: usize = 16;

/// The two Services the operator owns, as backendRefs of a route in `namespace`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backends<'a> {
    /// The route's (and the SafeDeployment's) namespace.
    pub namespace: &'a str,
    /// The stable Service.
    pub stable: &'a str,
    /// The canary Service.
    pub canary: &'a str,
    /// The Services' port.
    pub port: i32,
}

/// Why a route cannot be steered; each says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteProblem {
    /// The route does not exist.
    #[error("the route does not exist (create it, with backendRefs to Services {stable} and {canary})")]
    Missing {
        /// The stable Service.
        stable: String,
        /// The canary Service.
        canary: String,
    },
    /// `rule.index` is beyond the route's rules.
    #[error("rule index {index} is out of range: the route has {count} rules of its own")]
    IndexOutOfRange {
        /// The index asked for.
        index: i64,
        /// The user's rules.
        count: usize,
    },
    /// No rule has the name `rule.name`.
    #[error("the route has no rule named {0:?}")]
    RuleNotFound(String),
    /// The steered rule lacks a backendRef to one of the operator's Services.
    #[error(
        "the steered rule has no backendRef to Service {service}: list both Services in it (the stable with weight 100, the canary with weight 0)"
    )]
    MissingBackend {
        /// The Service not referenced.
        service: String,
    },
    /// The steered rule references one of the operator's Services more than once.
    #[error("the steered rule names Service {service} in {count} backendRefs: name it once")]
    DuplicateBackend {
        /// The Service.
        service: String,
        /// How often.
        count: usize,
    },
    /// The operator's header and mirror rules would take the route past [`MAX_RULES`].
    #[error(
        "with {header_rules} header or mirror rule(s) the route would have {total} rules, more than the {MAX_RULES} a route may have"
    )]
    TooManyRules {
        /// The header and mirror rules wanted.
        header_rules: usize,
        /// The total.
        total: usize,
    },
}

/// The prefix of the rules this SafeDeployment owns in a route: `sd-<name>-`.
pub fn owned_prefix(sd_name: &str) -> String {
    format!("{OWNED_RULE_PREFIX}{sd_name}-")
}

/// The name of the operator's rule of header route `route` of SafeDeployment `sd_name`.
pub fn header_rule_name(sd_name: &str, route: &str) -> String {
    format!("{}{route}", owned_prefix(sd_name))
}

/// The name of the operator's rule of mirror route `route` of SafeDeployment `sd_name`: the
/// `.mirror` suffix keeps it apart from every header rule (a route name is a DNS label, no dot).
pub fn mirror_rule_name(sd_name: &str, route: &str) -> String {
    format!("{}{route}.mirror", owned_prefix(sd_name))
}

fn rule_name(rule: &Value) -> Option<&str> {
    rule.get("name").and_then(Value::as_str)
}

/// Whether `rule` is one the operator added for `sd_name`: named with its prefix, and either a
/// header rule (sending only to the canary Service) or a mirror rule (sending only to the
/// stable Service, with a `RequestMirror` filter to the canary). A user's rule that happens to
/// carry the prefix is left alone.
fn is_owned(rule: &Value, sd_name: &str, backends: &Backends<'_>) -> bool {
    let prefix = owned_prefix(sd_name);
    let named = rule_name(rule).is_some_and(|n| n.starts_with(&prefix));
    let refs = backend_refs(rule);
    let only = |service: &str| {
        !refs.is_empty() && refs.iter().all(|r| names_service(r, backends, service))
    };
    let mirrors_to_canary = rule
        .get("filters")
        .and_then(Value::as_array)
        .is_some_and(|filters| {
            filters.iter().any(|f| {
                f.get("type").and_then(Value::as_str) == Some("RequestMirror")
                    && f.pointer("/requestMirror/backendRef")
                        .is_some_and(|b| names_service(b, backends, backends.canary))
            })
        });
    named && (only(backends.canary) || (only(backends.stable) && mirrors_to_canary))
}

fn backend_refs(rule: &Value) -> Vec<&Value> {
    rule.get("backendRefs")
        .and_then(Value::as_array)
        .map(|refs| refs.iter().collect())
        .unwrap_or_default()
}

/// Whether a backendRef names the Service `service` in the route's namespace (group `""` and
/// kind `Service` are the defaults).
fn names_service(backend: &Value, backends: &Backends<'_>, service: &str) -> bool {
    let text = |key: &str| backend.get(key).and_then(Value::as_str);
    text("name") == Some(service)
        && text("group").is_none_or(str::is_empty)
        && text("kind").is_none_or(|k| k == "Service")
        && text("namespace").is_none_or(|ns| ns == backends.namespace)
}

/// The user's rules: every rule but the operator's own.
fn user_rules<'a>(rules: &'a [Value], sd_name: &str, backends: &Backends<'_>) -> Vec<&'a Value> {
    rules
        .iter()
        .filter(|rule| !is_owned(rule, sd_name, backends))
        .collect()
}

/// The position among the user's rules of the rule `reference` names (default: the first).
fn locate(user: &[&Value], reference: &RouteReference) -> Result<usize, RouteProblem> {
    let rule = reference.rule.as_ref();
    if let Some(name) = rule.and_then(|r| r.name.as_ref()) {
        return user
            .iter()
            .position(|r| rule_name(r) == Some(name.as_str()))
            .ok_or_else(|| RouteProblem::RuleNotFound(name.clone()));
    }
    let index = i64::from(rule.and_then(|r| r.index).unwrap_or(0));
    usize::try_from(index)
        .ok()
        .filter(|i| *i < user.len())
        .ok_or(RouteProblem::IndexOutOfRange {
            index,
            count: user.len(),
        })
}

/// The position in `rule`'s backendRefs of the one naming `service`.
fn backend_position(
    rule: &Value,
    backends: &Backends<'_>,
    service: &str,
) -> Result<usize, RouteProblem> {
    let positions: Vec<usize> = backend_refs(rule)
        .iter()
        .enumerate()
        .filter(|(_, r)| names_service(r, backends, service))
        .map(|(i, _)| i)
        .collect();
    match positions.as_slice() {
        [one] => Ok(*one),
        [] => Err(RouteProblem::MissingBackend {
            service: service.to_string(),
        }),
        many => Err(RouteProblem::DuplicateBackend {
            service: service.to_string(),
            count: many.len(),
        }),
    }
}

/// A backendRef's weight (the Gateway API default is 1).
fn weight_of(backend: &Value) -> i32 {
    backend
        .get("weight")
        .and_then(Value::as_i64)
        .and_then(|w| i32::try_from(w).ok())
        .unwrap_or(1)
}

fn set_weight(rule: &mut Value, position: usize, weight: i32) {
    if let Some(backend) = rule
        .get_mut("backendRefs")
        .and_then(Value::as_array_mut)
        .and_then(|refs| refs.get_mut(position))
        .and_then(Value::as_object_mut)
    {
        backend.insert("weight".into(), json!(weight));
    }
}

/// The header matches of a header route, in the Gateway API's form (type made explicit, as
/// the API server would default it).
fn header_matches(matches: &[HeaderMatch]) -> Vec<Value> {
    matches
        .iter()
        .map(|m| match (&m.value, &m.regex) {
            (_, Some(regex)) => {
                json!({"type": "RegularExpression", "name": m.header_name, "value": regex})
            }
            (value, None) => {
                json!({"type": "Exact", "name": m.header_name, "value": value.clone().unwrap_or_default()})
            }
        })
        .collect()
}

/// The steered rule's matches (a match-all path for an HTTPRoute without any), each with
/// `headers` added, so the operator's rule is more specific than the steered rule and wins.
fn matches_with_headers(kind: RouteKind, steered: &Value, headers: &[Value]) -> Vec<Value> {
    let base: Vec<Value> = steered
        .get("matches")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .cloned()
        .unwrap_or_else(|| match kind {
            RouteKind::Http => vec![json!({"path": {"type": "PathPrefix", "value": "/"}})],
            RouteKind::Grpc => vec![json!({})],
        });
    base.into_iter()
        .map(|mut m| {
            if let Some(object) = m.as_object_mut() {
                let mut all: Vec<Value> = object
                    .get("headers")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                all.extend(headers.iter().cloned());
                object.insert("headers".into(), Value::Array(all));
            }
            m
        })
        .collect()
}

/// The operator's rule for header route `route`: the steered rule's matches with the header
/// matches added, and its filters, sending everything to the canary Service.
fn header_rule(
    kind: RouteKind,
    sd_name: &str,
    steered: &Value,
    route: &SetHeaderRoute,
    backends: &Backends<'_>,
) -> Value {
    let mut rule = json!({
        "name": header_rule_name(sd_name, &route.name),
        "matches": matches_with_headers(kind, steered, &header_matches(&route.matches)),
        "backendRefs": [{"group": "", "kind": "Service", "name": backends.canary,
                          "port": backends.port, "weight": 1}],
    });
    if let (Some(filters), Some(object)) = (steered.get("filters"), rule.as_object_mut()) {
        object.insert("filters".into(), filters.clone());
    }
    rule
}

/// The operator's rule for mirror route `route`: the steered rule's matches with the header
/// matches added, its filters and a `RequestMirror` filter to the canary Service (`percent`
/// only below 100, so a Gateway without percentage mirroring can take a full mirror), answered
/// by the stable Service alone.
fn mirror_rule(
    kind: RouteKind,
    sd_name: &str,
    steered: &Value,
    route: &SetMirrorRoute,
    backends: &Backends<'_>,
) -> Value {
    let mut mirror = json!({"backendRef": {"group": "", "kind": "Service",
                                           "name": backends.canary, "port": backends.port}});
    if route.percent() < 100
        && let Some(object) = mirror.as_object_mut()
    {
        object.insert("percent".into(), json!(route.percent()));
    }
    let mut filters: Vec<Value> = steered
        .get("filters")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    filters.push(json!({"type": "RequestMirror", "requestMirror": mirror}));
    json!({
        "name": mirror_rule_name(sd_name, &route.name),
        "matches": matches_with_headers(kind, steered, &header_matches(&route.matches)),
        "filters": filters,
        "backendRefs": [{"group": "", "kind": "Service", "name": backends.stable,
                          "port": backends.port, "weight": 1}],
    })
}

/// The rules the operator writes to a route: the user's rules as read, with only the weights of
/// the steered rule's two operator backendRefs set (canary `canary_weight`, stable the rest of
/// 100; any other backendRef keeps its weight), followed by one rule per header route and one
/// per mirror route in force. Rules the operator added earlier and no longer wants are left out
/// (removed); one it wants that someone deleted is added back.
#[allow(clippy::too_many_arguments)] // the route, where to steer, and the three things steered
pub fn desired_rules(
    kind: RouteKind,
    sd_name: &str,
    rules: &[Value],
    reference: &RouteReference,
    backends: &Backends<'_>,
    canary_weight: i32,
    header_routes: &[SetHeaderRoute],
    mirror_routes: &[SetMirrorRoute],
) -> Result<Vec<Value>, RouteProblem> {
    let user = user_rules(rules, sd_name, backends);
    let steered_at = locate(&user, reference)?;
    let mut out: Vec<Value> = user.into_iter().cloned().collect();
    let Some(steered) = out.get_mut(steered_at) else {
        return Err(RouteProblem::IndexOutOfRange {
            index: i64::try_from(steered_at).unwrap_or(i64::MAX),
            count: 0,
        });
    };
    let stable_at = backend_position(steered, backends, backends.stable)?;
    let canary_at = backend_position(steered, backends, backends.canary)?;
    let canary_weight = canary_weight.clamp(0, 100);
    set_weight(steered, canary_at, canary_weight);
    set_weight(steered, stable_at, 100_i32.saturating_sub(canary_weight));
    let steered = steered.clone();
    let wanted: Vec<&SetHeaderRoute> = header_routes
        .iter()
        .filter(|h| !h.matches.is_empty())
        .collect();
    let mirrors: Vec<&SetMirrorRoute> = mirror_routes
        .iter()
        .filter(|m| !m.matches.is_empty())
        .collect();
    let owned = wanted.len().saturating_add(mirrors.len());
    let total = out.len().saturating_add(owned);
    if total > MAX_RULES {
        return Err(RouteProblem::TooManyRules {
            header_rules: owned,
            total,
        });
    }
    out.extend(
        wanted
            .into_iter()
            .map(|h| header_rule(kind, sd_name, &steered, h, backends)),
    );
    out.extend(
        mirrors
            .into_iter()
            .map(|m| mirror_rule(kind, sd_name, &steered, m, backends)),
    );
    Ok(out)
}

/// One parent's verdict on a condition type, for the route's current `generation`: a verdict
/// about an older generation is not about what the operator wrote, so it counts as unknown.
fn parent_verdict(parent: &Value, type_: &str, generation: Option<i64>) -> (String, String) {
    let condition = parent
        .get("conditions")
        .and_then(Value::as_array)
        .and_then(|c| {
            c.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
        });
    let Some(condition) = condition else {
        return ("Unknown".into(), String::new());
    };
    let observed = condition.get("observedGeneration").and_then(Value::as_i64);
    let current = match (observed, generation) {
        (Some(observed), Some(generation)) => observed >= generation,
        _ => true,
    };
    let message = condition
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .chars()
        .take(256)
        .collect::<String>();
    if !current {
        return ("Unknown".into(), format!("{type_} not yet reported for this generation"));
    }
    let status = match condition.get("status").and_then(Value::as_str) {
        Some("True") => "True",
        Some("False") => "False",
        _ => "Unknown",
    };
    (status.into(), message)
}

/// The verdict of all parents on `type_`: `False` if any says False, `True` if there are
/// parents and all say True, else `Unknown`; with the messages of those that do not say True.
fn all_parents(parents: &[Value], type_: &str, generation: Option<i64>) -> (String, Vec<String>) {
    let verdicts: Vec<(String, String)> = parents
        .iter()
        .map(|p| parent_verdict(p, type_, generation))
        .collect();
    let status = if verdicts.iter().any(|(s, _)| s == "False") {
        "False"
    } else if !verdicts.is_empty() && verdicts.iter().all(|(s, _)| s == "True") {
        "True"
    } else {
        "Unknown"
    };
    let messages = verdicts
        .into_iter()
        .filter(|(s, m)| s != "True" && !m.is_empty())
        .map(|(_, m)| format!("{type_}: {m}"))
        .collect();
    (status.into(), messages)
}

/// What the operator observes of one route (`live` is the whole object as read, None when it
/// does not exist): the weights on the steered rule, the header rules of this SafeDeployment it
/// carries, the Gateways' verdicts, and what is wrong.
pub fn observe_route(
    kind: RouteKind,
    sd_name: &str,
    reference: &RouteReference,
    live: Option<&Value>,
    backends: &Backends<'_>,
) -> RouteObservation {
    let mut observed = RouteObservation {
        kind,
        name: reference.name.clone(),
        ..RouteObservation::default()
    };
    let Some(live) = live else {
        observed.problem = Some(
            RouteProblem::Missing {
                stable: backends.stable.to_string(),
                canary: backends.canary.to_string(),
            }
            .to_string(),
        );
        return observed;
    };
    let rules: Vec<Value> = live
        .pointer("/spec/rules")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    observed.owned_rules = rules
        .iter()
        .filter(|r| is_owned(r, sd_name, backends))
        .filter_map(|r| rule_name(r).map(str::to_string))
        .collect();
    let user = user_rules(&rules, sd_name, backends);
    match locate(&user, reference) {
        Ok(at) => {
            if let Some(steered) = user.get(at) {
                let refs = backend_refs(steered);
                let weight = |service: &str| {
                    backend_position(steered, backends, service)
                        .ok()
                        .and_then(|p| refs.get(p))
                        .map(|r| weight_of(r))
                };
                observed.stable_weight = weight(backends.stable);
                observed.canary_weight = weight(backends.canary);
                if let Err(problem) = backend_position(steered, backends, backends.stable)
                    .and_then(|_| backend_position(steered, backends, backends.canary))
                {
                    observed.problem = Some(problem.to_string());
                }
            }
        }
        Err(problem) => observed.problem = Some(problem.to_string()),
    }
    let generation = live.pointer("/metadata/generation").and_then(Value::as_i64);
    let parents: Vec<Value> = live
        .pointer("/status/parents")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let (accepted, mut messages) = all_parents(&parents, "Accepted", generation);
    let (resolved, more) = all_parents(&parents, "ResolvedRefs", generation);
    messages.extend(more);
    observed.accepted = accepted;
    observed.resolved_refs = resolved;
    observed.parents_message = messages.join("; ");
    observed
}

/// One Gateway a route is attached to, as read for mirroring: its name, and its class's
/// `status.supportedFeatures` (None when the Gateway or its class cannot be read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayFeatures {
    /// The Gateway (`namespace/name`).
    pub gateway: String,
    /// Its GatewayClass, when the Gateway was read.
    pub class: Option<String>,
    /// The class's supported features, when the class was read (entries are `{name: ...}`
    /// since Gateway API v1.2, plain strings before).
    pub features: Option<Vec<String>>,
}

/// The names in a GatewayClass's `status.supportedFeatures` (objects with a `name`, or strings).
pub fn supported_feature_names(status_features: Option<&Value>) -> Vec<String> {
    status_features
        .and_then(Value::as_array)
        .map(|features| {
            features
                .iter()
                .filter_map(|f| f.as_str().or_else(|| f.get("name").and_then(Value::as_str)))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Why mirror routes cannot be written to `route` (None: every Gateway's class declares what
/// they need). A rule with a filter the Gateway does not implement fails the requests it
/// matches, so the operator mirrors only where support is declared, never on a guess.
pub fn mirror_support_problem(
    route: &str,
    gateways: &[GatewayFeatures],
    needs_percentage: bool,
) -> Option<String> {
    if gateways.is_empty() {
        return Some(format!(
            "HTTPRoute {route} has no Gateway parent to mirror through"
        ));
    }
    let mut needed = vec![FEATURE_REQUEST_MIRROR];
    if needs_percentage {
        needed.push(FEATURE_PERCENTAGE_MIRROR);
    }
    let problems: Vec<String> = gateways
        .iter()
        .filter_map(|g| {
            let Some(class) = &g.class else {
                return Some(format!("Gateway {} cannot be read", g.gateway));
            };
            let Some(features) = &g.features else {
                return Some(format!(
                    "GatewayClass {class} (of Gateway {}) cannot be read",
                    g.gateway
                ));
            };
            let missing: Vec<&str> = needed
                .iter()
                .copied()
                .filter(|n| !features.iter().any(|f| f == n))
                .collect();
            (!missing.is_empty()).then(|| {
                format!(
                    "GatewayClass {class} (of Gateway {}) does not declare {} in status.supportedFeatures",
                    g.gateway,
                    missing.join(" and ")
                )
            })
        })
        .collect();
    (!problems.is_empty()).then(|| {
        format!(
            "setMirrorRoute cannot mirror through HTTPRoute {route}: {}",
            problems.join("; ")
        )
    })
}

/// One steered route as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteObservation {
    /// Its kind.
    pub kind: RouteKind,
    /// Its name.
    pub name: String,
    /// The canary backendRef's weight on the steered rule.
    pub canary_weight: Option<i32>,
    /// The stable backendRef's weight on the steered rule.
    pub stable_weight: Option<i32>,
    /// The names of this SafeDeployment's header and mirror rules it carries.
    pub owned_rules: Vec<String>,
    /// All parents' `Accepted`: `True`, `False` or `Unknown`.
    pub accepted: String,
    /// All parents' `ResolvedRefs`.
    pub resolved_refs: String,
    /// What the parents said where they did not say True.
    pub parents_message: String,
    /// Why the route cannot be steered, if it cannot.
    pub problem: Option<String>,
}

impl Default for RouteObservation {
    fn default() -> Self {
        RouteObservation {
            kind: RouteKind::Http,
            name: String::new(),
            canary_weight: None,
            stable_weight: None,
            owned_rules: Vec::new(),
            accepted: "Unknown".into(),
            resolved_refs: "Unknown".into(),
            parents_message: String::new(),
            problem: None,
        }
    }
}

impl RouteObservation {
    /// Whether this route carries `canary_weight`, exactly the header rules `headers` and the
    /// mirror rules `mirrors` (names of header and mirror routes), and no Gateway refused it.
    pub fn carries(
        &self,
        sd_name: &str,
        canary_weight: i32,
        headers: &[String],
        mirrors: &[String],
    ) -> bool {
        let mut want: Vec<String> = headers
            .iter()
            .map(|h| header_rule_name(sd_name, h))
            .chain(mirrors.iter().map(|m| mirror_rule_name(sd_name, m)))
            .collect();
        want.sort();
        let mut have = self.owned_rules.clone();
        have.sort();
        self.problem.is_none()
            && self.canary_weight == Some(canary_weight)
            && have == want
            && self.accepted != "False"
            && self.resolved_refs != "False"
    }

    /// As status shows it.
    pub fn to_status(&self) -> RouteStatus {
        let message = match (&self.problem, self.parents_message.is_empty()) {
            (Some(problem), _) => problem.clone(),
            (None, false) => self.parents_message.clone(),
            (None, true) => String::new(),
        };
        RouteStatus {
            kind: self.kind.as_str().to_string(),
            name: self.name.clone(),
            canary_weight: self.canary_weight,
            stable_weight: self.stable_weight,
            accepted: self.accepted.clone(),
            resolved_refs: self.resolved_refs.clone(),
            message: message.chars().take(1024).collect(),
        }
    }
}

#[cfg(test)]
#[path = "routing_tests.rs"]
mod tests;
