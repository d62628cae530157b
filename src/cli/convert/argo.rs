//! An Argo Rollouts `Rollout` (and the `AnalysisTemplate`s it names) as a SafeDeployment: what
//! maps exactly is mapped, what maps with a change of meaning is mapped and noted, and what has
//! no equivalent is refused with the field named, so that a converted manifest never does
//! something the original did not say. The output is checked against the SafeDeployment types
//! before it is returned.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::condition;
use crate::api::SafeDeploymentSpec;
use crate::api::labels::LABEL_REVISION;

/// The Gateway API plugin of Argo Rollouts, the one traffic router that maps.
const GATEWAY_PLUGIN: &str = "argoproj-labs/gatewayAPI";

/// A converted Rollout.
#[derive(Debug, Clone, PartialEq)]
pub struct Converted {
    /// The SafeDeployment manifest.
    pub manifest: Value,
    /// What changed meaning on the way, for the person who reviews the result.
    pub notes: Vec<String>,
}

/// Converts every Rollout of `documents`, with the AnalysisTemplates and
/// ClusterAnalysisTemplates found there. Errors name each field that does not map (all of them,
/// not the first).
pub fn convert(documents: &[Value]) -> Result<Vec<Converted>, Vec<String>> {
    let templates: BTreeMap<String, &Value> = documents
        .iter()
        .filter(|d| {
            matches!(
                d["kind"].as_str(),
                Some("AnalysisTemplate" | "ClusterAnalysisTemplate")
            )
        })
        .filter_map(|d| Some((d["metadata"]["name"].as_str()?.to_owned(), d)))
        .collect();
    let rollouts: Vec<&Value> = documents
        .iter()
        .filter(|d| d["kind"] == "Rollout")
        .collect();
    if rollouts.is_empty() {
        return Err(vec!["no Rollout (kind: Rollout) in the input".into()]);
    }
    let mut converted = Vec::new();
    let mut errors = Vec::new();
    for rollout in rollouts {
        let name = rollout["metadata"]["name"]
            .as_str()
            .unwrap_or("?")
            .to_owned();
        let mut conversion = Conversion {
            templates: &templates,
            notes: Vec::new(),
            errors: Vec::new(),
        };
        let manifest = conversion.rollout(rollout);
        if conversion.errors.is_empty() {
            converted.push(Converted {
                manifest,
                notes: conversion.notes,
            });
        } else {
            errors.extend(
                conversion
                    .errors
                    .into_iter()
                    .map(|e| format!("Rollout {name}: {e}")),
            );
        }
    }
    if errors.is_empty() {
        Ok(converted)
    } else {
        Err(errors)
    }
}

struct Conversion<'a> {
    templates: &'a BTreeMap<String, &'a Value>,
    notes: Vec<String>,
    errors: Vec<String>,
}

/// Fields of the Rollout spec read by [`Conversion::rollout`]; any other is reported.
const KNOWN_SPEC_FIELDS: &[&str] = &[
    "replicas",
    "selector",
    "template",
    "strategy",
    "minReadySeconds",
    "revisionHistoryLimit",
    "progressDeadlineSeconds",
    "paused",
    "workloadRef",
];

impl Conversion<'_> {
    fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }

    fn refuse(&mut self, text: impl Into<String>) {
        self.errors.push(text.into());
    }

    fn rollout(&mut self, rollout: &Value) -> Value {
        let spec = &rollout["spec"];
        let mut metadata = Map::new();
        for key in ["name", "namespace", "labels"] {
            if let Some(value) = rollout["metadata"].get(key) {
                metadata.insert(key.into(), value.clone());
            }
        }
        let mut out = Map::new();
        if let Some(reference) = spec.get("workloadRef") {
            if let Some(adopted) = self.workload_ref(reference) {
                out.insert("workloadRef".into(), adopted);
            }
            if spec.get("template").is_some() {
                self.refuse("spec.workloadRef and spec.template: set one of them");
            }
        }
        for (key, value) in spec.as_object().into_iter().flatten() {
            if !KNOWN_SPEC_FIELDS.contains(&key.as_str()) {
                self.note(format!(
                    "spec.{key} has no equivalent and was left out ({value})"
                ));
            }
        }
        if let Some(replicas) = spec.get("replicas") {
            out.insert("replicas".into(), replicas.clone());
        }
        out.insert("selector".into(), self.selector(&spec["selector"]));
        match spec.get("template") {
            Some(template) => {
                out.insert("template".into(), template.clone());
            }
            None if spec.get("workloadRef").is_none() => self.refuse("spec.template is missing"),
            None => {}
        }
        for key in ["minReadySeconds", "revisionHistoryLimit", "paused"] {
            if let Some(value) = spec.get(key) {
                out.insert(key.into(), value.clone());
            }
        }
        if let Some(seconds) = spec["progressDeadlineSeconds"].as_i64() {
            out.insert("progressDeadline".into(), json!(format!("{seconds}s")));
        }
        let strategy = &spec["strategy"];
        if strategy.get("blueGreen").is_some() {
            self.refuse("spec.strategy.blueGreen: only canary strategies convert");
        }
        let mut analyses = Vec::new();
        if let Some(canary) = strategy.get("canary") {
            out.insert("strategy".into(), self.canary(canary, &mut analyses));
        } else if strategy.get("blueGreen").is_none() {
            self.refuse("spec.strategy.canary is missing");
        }
        if !analyses.is_empty() {
            out.insert("analyses".into(), Value::Array(analyses));
        }
        self.note(
            "safedeploy rolls out only a signed local-validation attestation: sign each revision \
             with `safedeploy attest` in the pipeline (see the README's five-minute tour)",
        );
        let manifest = json!({
            "apiVersion": "safedeploy.dev/v1alpha1",
            "kind": "SafeDeployment",
            "metadata": metadata,
            "spec": out,
        });
        if self.errors.is_empty()
            && let Err(error) =
                serde_json::from_value::<SafeDeploymentSpec>(manifest["spec"].clone())
        {
            self.refuse(format!(
                "the converted spec does not read as a SafeDeployment: {error}"
            ));
        }
        manifest
    }

    /// Argo's `workloadRef` (a Deployment; `scaleDown` never, onsuccess or progressively,
    /// default never) as safedeploy's, whose default is `Progressively`: an absent `scaleDown`
    /// is written out as `Never` so the converted object behaves as the Rollout did.
    fn workload_ref(&mut self, reference: &Value) -> Option<Value> {
        let kind = reference["kind"].as_str().unwrap_or_default();
        if kind != "Deployment" {
            self.refuse(format!(
                "spec.workloadRef.kind {kind:?}: only a Deployment can be adopted"
            ));
            return None;
        }
        let Some(name) = reference["name"].as_str() else {
            self.refuse("spec.workloadRef.name is missing");
            return None;
        };
        let scale_down = match reference["scaleDown"].as_str() {
            None => {
                self.note(
                    "spec.workloadRef.scaleDown was not set (Argo's default is never): written \
                     as Never; consider Progressively, which scales the Deployment down pod by \
                     pod as the SafeDeployment's pods become available",
                );
                "Never"
            }
            Some("never") => "Never",
            Some("onsuccess") => "OnSuccess",
            Some("progressively") => "Progressively",
            Some(other) => {
                self.refuse(format!(
                    "spec.workloadRef.scaleDown {other:?}: expected never, onsuccess or progressively"
                ));
                return None;
            }
        };
        Some(
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": name, "scaleDown": scale_down}),
        )
    }

    fn selector(&mut self, selector: &Value) -> Value {
        if selector.get("matchExpressions").is_some() {
            self.refuse("spec.selector.matchExpressions: only matchLabels selectors convert");
        }
        json!({"matchLabels": selector.get("matchLabels").cloned().unwrap_or_else(|| json!({}))})
    }

    fn canary(&mut self, canary: &Value, analyses: &mut Vec<Value>) -> Value {
        let mut out = Map::new();
        for (key, value) in canary.as_object().into_iter().flatten() {
            match key.as_str() {
                "steps" | "analysis" | "trafficRouting" | "maxUnavailable" | "canaryService"
                | "stableService" => {}
                "maxSurge" => self.note(format!(
                    "strategy.canary.maxSurge ({value}) was left out: safedeploy sizes the canary \
                     from the step's weight and keeps the stable at its floor"
                )),
                _ => self.note(format!(
                    "strategy.canary.{key} has no equivalent and was left out ({value})"
                )),
            }
        }
        let mut steps = Vec::new();
        for (index, step) in canary["steps"].as_array().into_iter().flatten().enumerate() {
            if let Some(step) = self.step(index, step, analyses) {
                steps.push(step);
            }
        }
        out.insert("steps".into(), Value::Array(steps));
        match &canary["maxUnavailable"] {
            Value::Null => {}
            Value::Number(n) => {
                out.insert("maxUnavailable".into(), Value::Number(n.clone()));
            }
            other => self.refuse(format!(
                "strategy.canary.maxUnavailable {other}: only a number of pods converts (a \
                 percentage depends on the replica count)"
            )),
        }
        if let Some(background) = canary.get("analysis") {
            let args = background.get("args");
            if let Some(name) = self.analysis_reference(
                "strategy.canary.analysis",
                &background["templates"],
                args,
                analyses,
            ) {
                out.insert("backgroundAnalysis".into(), json!(name));
            }
            if let Some(step) = background.get("startingStep") {
                self.note(format!(
                    "strategy.canary.analysis.startingStep ({step}) was left out: background \
                     analysis runs from the first step"
                ));
            }
        }
        if let Some(routing) = canary.get("trafficRouting") {
            if let Some(routing) = self.traffic_routing(canary, routing) {
                out.insert("trafficRouting".into(), routing);
            }
        } else if canary.get("canaryService").is_some() || canary.get("stableService").is_some() {
            self.note(
                "canaryService/stableService were left out: without trafficRouting the weight is \
                 the replica ratio, and Services that select the app's labels reach both \
                 revisions",
            );
        }
        json!({"canary": out})
    }

    fn step(&mut self, index: usize, step: &Value, analyses: &mut Vec<Value>) -> Option<Value> {
        let at = format!("strategy.canary.steps[{index}]");
        let object = step.as_object()?;
        let (kind, body) = object.iter().next()?;
        match kind.as_str() {
            "setWeight" => Some(json!({"setWeight": body})),
            "pause" => {
                let duration = match &body["duration"] {
                    Value::Null => None,
                    Value::Number(n) => Some(format!("{n}s")),
                    Value::String(s) if s.chars().all(|c| c.is_ascii_digit()) => {
                        Some(format!("{s}s"))
                    }
                    Value::String(s) => Some(s.clone()),
                    other => {
                        self.refuse(format!("{at}.pause.duration {other} is not a duration"));
                        None
                    }
                };
                Some(match duration {
                    Some(d) => json!({"pause": {"duration": d}}),
                    None => json!({"pause": {}}),
                })
            }
            "analysis" => {
                let name = self.analysis_reference(
                    &format!("{at}.analysis"),
                    &body["templates"],
                    body.get("args"),
                    analyses,
                )?;
                Some(json!({"analysis": {"template": name}}))
            }
            "setCanaryScale" => Some(json!({"setCanaryScale": body})),
            "setHeaderRoute" => self.header_route(&at, body),
            "setMirrorRoute" => self.mirror_route(&at, body),
            other => {
                self.refuse(format!(
                    "{at}.{other}: no equivalent step (safedeploy's steps: setWeight, pause, \
                     analysis, setCanaryScale, setHeaderRoute, setMirrorRoute)"
                ));
                None
            }
        }
    }

    /// One of Argo's header value matches (`exact`, `regex` or `prefix`) as safedeploy's header
    /// match (a prefix becomes an anchored, escaped regex); None, refused with `what`, otherwise.
    fn header_match(&mut self, header: &Value, value: &Value, what: String) -> Option<Value> {
        if let Some(exact) = value.get("exact") {
            Some(json!({"headerName": header, "value": exact}))
        } else if let Some(regex) = value.get("regex") {
            Some(json!({"headerName": header, "regex": regex}))
        } else if let Some(prefix) = value["prefix"].as_str() {
            Some(json!({"headerName": header, "regex": format!("^{}.*", regex_escape(prefix))}))
        } else {
            self.refuse(what);
            None
        }
    }

    fn header_route(&mut self, at: &str, body: &Value) -> Option<Value> {
        let mut matches = Vec::new();
        for m in body["match"].as_array().into_iter().flatten() {
            let what = format!("{at}.setHeaderRoute: a match without exact, regex or prefix");
            matches.extend(self.header_match(&m["headerName"], &m["headerValue"], what));
        }
        Some(json!({"setHeaderRoute": {"name": body["name"], "match": matches}}))
    }

    /// Argo's `setMirrorRoute` holds a list of matches (any of them), each of a method, a path
    /// and headers (all of them); safedeploy's mirror route is one set of headers, so only a
    /// single match of headers converts.
    fn mirror_route(&mut self, at: &str, body: &Value) -> Option<Value> {
        let matches = body["match"].as_array().cloned().unwrap_or_default();
        let mut mirror = json!({"name": body["name"]});
        if let Some(percentage) = body.get("percentage").filter(|p| !p.is_null()) {
            mirror["percentage"] = percentage.clone();
        }
        let [only] = matches.as_slice() else {
            if matches.is_empty() {
                return Some(json!({"setMirrorRoute": mirror}));
            }
            self.refuse(format!(
                "{at}.setMirrorRoute: {} matches; safedeploy mirrors one set of header matches",
                matches.len()
            ));
            return None;
        };
        if only.get("method").is_some() || only.get("path").is_some() {
            self.refuse(format!(
                "{at}.setMirrorRoute: method and path matches have no equivalent (header matches only)"
            ));
            return None;
        }
        let mut headers = Vec::new();
        for (name, value) in only["headers"].as_object().into_iter().flatten() {
            let what = format!("{at}.setMirrorRoute: header {name} without exact, regex or prefix");
            headers.extend(self.header_match(&json!(name), value, what));
        }
        if headers.is_empty() {
            self.refuse(format!(
                "{at}.setMirrorRoute: a match without headers (safedeploy mirrors requests that carry given headers)"
            ));
            return None;
        }
        mirror["match"] = Value::Array(headers);
        Some(json!({"setMirrorRoute": mirror}))
    }

    fn traffic_routing(&mut self, canary: &Value, routing: &Value) -> Option<Value> {
        let Some(plugin) = routing["plugins"].get(GATEWAY_PLUGIN) else {
            let routers: Vec<&String> = routing
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, _)| k)
                .collect();
            self.refuse(format!(
                "strategy.canary.trafficRouting ({routers:?}): only the Gateway API plugin \
                 ({GATEWAY_PLUGIN}) converts; move the routes to the Gateway API or drop \
                 trafficRouting to weigh by replica ratio"
            ));
            return None;
        };
        let names = |single: &str, many: &str| -> Vec<Value> {
            let mut names: Vec<Value> = plugin[single]
                .as_str()
                .map(|n| json!({"name": n}))
                .into_iter()
                .collect();
            names.extend(
                plugin[many]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r["name"].as_str().map(|n| json!({"name": n}))),
            );
            names
        };
        let http = names("httpRoute", "httpRoutes");
        let grpc = names("grpcRoute", "grpcRoutes");
        if plugin.get("namespace").is_some() {
            self.note("the plugin's namespace was left out: routes are read in the SafeDeployment's namespace");
        }
        if http.is_empty() && grpc.is_empty() {
            self.refuse("the Gateway API plugin names no httpRoute(s) or grpcRoute(s)");
            return None;
        }
        let mut gateway = Map::new();
        if !http.is_empty() {
            gateway.insert("httpRoutes".into(), Value::Array(http));
        }
        if !grpc.is_empty() {
            gateway.insert("grpcRoutes".into(), Value::Array(grpc));
        }
        let mut out = Map::new();
        out.insert("gatewayAPI".into(), Value::Object(gateway));
        for key in ["stableService", "canaryService"] {
            if let Some(name) = canary.get(key) {
                out.insert(key.into(), name.clone());
            }
        }
        self.note(
            "the stable and canary Services are created and owned by the operator: delete the ones \
             Argo Rollouts used (or rename them) before you apply, as safedeploy never takes over \
             a Service it did not create",
        );
        Some(Value::Object(out))
    }

    /// One template of an analysis reference, converted into `analyses` once; its name.
    fn analysis_reference(
        &mut self,
        at: &str,
        templates: &Value,
        args: Option<&Value>,
        analyses: &mut Vec<Value>,
    ) -> Option<String> {
        let names: Vec<&str> = templates
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["templateName"].as_str())
            .collect();
        let [name] = names[..] else {
            self.refuse(format!(
                "{at}.templates: exactly one template per analysis converts (found {}); merge \
                 their metrics into one AnalysisTemplate",
                names.len()
            ));
            return None;
        };
        let Some(template) = self.templates.get(name).copied() else {
            self.refuse(format!("{at}: AnalysisTemplate {name} is not in the input"));
            return None;
        };
        if !analyses.iter().any(|a| a["name"] == name) {
            let converted = self.template(name, template, args)?;
            analyses.push(converted);
        }
        Some(name.to_owned())
    }

    fn template(&mut self, name: &str, template: &Value, args: Option<&Value>) -> Option<Value> {
        let values = self.argument_values(name, &template["spec"]["args"], args);
        let metrics = template["spec"]["metrics"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if metrics.is_empty() {
            self.refuse(format!("AnalysisTemplate {name} has no metrics"));
            return None;
        }
        let mut out = Map::new();
        out.insert("name".into(), json!(name));
        let first = &metrics[0];
        for (key, target) in [("interval", "interval"), ("initialDelay", "initialDelay")] {
            if let Some(value) = first[key].as_str() {
                out.insert(target.into(), json!(value));
            }
        }
        match &first["count"] {
            Value::Null => {}
            Value::Number(n) => {
                out.insert("count".into(), Value::Number(n.clone()));
            }
            Value::String(s) => match s.parse::<i64>() {
                Ok(n) => {
                    out.insert("count".into(), json!(n));
                }
                Err(_) => self.refuse(format!(
                    "AnalysisTemplate {name}: count {s:?} is not a number"
                )),
            },
            other => self.refuse(format!(
                "AnalysisTemplate {name}: count {other} is not a number"
            )),
        }
        for metric in &metrics[1..] {
            for key in ["interval", "count", "initialDelay"] {
                if metric[key] != first[key] {
                    self.note(format!(
                        "AnalysisTemplate {name}: metric {} has its own {key} ({}); safedeploy \
                         measures a template's metrics together, at the first metric's ({})",
                        metric["name"], metric[key], first[key]
                    ));
                }
            }
        }
        let mut converted = Vec::new();
        for metric in &metrics {
            if let Some(m) = self.metric(name, metric, &values) {
                converted.push(m);
            }
        }
        out.insert("metrics".into(), Value::Array(converted));
        Some(Value::Object(out))
    }

    /// `{{args.x}}` → its text: a value given by the Rollout, else the template's default; the
    /// pod-template hash arguments become safedeploy's revision variables.
    fn argument_values(
        &mut self,
        name: &str,
        declared: &Value,
        given: Option<&Value>,
    ) -> BTreeMap<String, String> {
        let mut values = BTreeMap::new();
        let lists = [declared, given.unwrap_or(&Value::Null)];
        for list in lists {
            for arg in list.as_array().into_iter().flatten() {
                let Some(arg_name) = arg["name"].as_str() else {
                    continue;
                };
                if let Some(value) = arg["value"].as_str() {
                    values.insert(arg_name.to_owned(), value.to_owned());
                } else if let Some(hash) = arg["valueFrom"]["podTemplateHashValue"].as_str() {
                    let variable = if hash == "Stable" {
                        "{{stable}}"
                    } else {
                        "{{canary}}"
                    };
                    values.insert(arg_name.to_owned(), variable.to_owned());
                    self.note(format!(
                        "AnalysisTemplate {name}: argument {arg_name} (the pod-template hash) became \
                         {variable}, the revision in the pods' {LABEL_REVISION} label: the series \
                         must carry that label (not rollouts-pod-template-hash)"
                    ));
                } else if arg.get("valueFrom").is_some() {
                    self.refuse(format!(
                        "AnalysisTemplate {name}: argument {arg_name} takes its value from a field \
                         or Secret; put the value in the query"
                    ));
                }
            }
        }
        values
    }

    fn metric(
        &mut self,
        template: &str,
        metric: &Value,
        args: &BTreeMap<String, String>,
    ) -> Option<Value> {
        let name = metric["name"].as_str().unwrap_or("?");
        let at = format!("AnalysisTemplate {template}, metric {name}");
        let substitute = |text: &str| -> String {
            let mut text = text.to_owned();
            for (arg, value) in args {
                text = text
                    .replace(&format!("{{{{args.{arg}}}}}"), value)
                    .replace(&format!("{{{{ args.{arg} }}}}"), value);
            }
            text
        };
        let provider = &metric["provider"];
        let provider = if let Some(p) = provider.get("prometheus") {
            let mut out = json!({"address": substitute(p["address"].as_str().unwrap_or_default()), "query": substitute(p["query"].as_str().unwrap_or_default())});
            if let Some(seconds) = p["timeout"].as_i64() {
                out["timeout"] = json!(format!("{seconds}s"));
            }
            json!({"prometheus": out})
        } else if let Some(w) = provider.get("web") {
            let mut out = json!({"url": substitute(w["url"].as_str().unwrap_or_default()), "jsonPath": json_path(w["jsonPath"].as_str().unwrap_or_default())});
            if let Some(method) = w["method"].as_str() {
                out["method"] = json!(method);
            }
            if let Some(body) = w["body"].as_str() {
                out["body"] = json!(substitute(body));
            }
            let headers: Vec<Value> = w["headers"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|h| json!({"name": h["key"], "value": substitute(h["value"].as_str().unwrap_or_default())}))
                .collect();
            if !headers.is_empty() {
                out["headers"] = Value::Array(headers);
                self.note(format!(
                    "{at}: the web headers are copied as plain values; move secrets to \
                     headersFrom.secretRef"
                ));
            }
            if let Some(seconds) = w["timeoutSeconds"].as_i64() {
                out["timeout"] = json!(format!("{seconds}s"));
            }
            json!({"web": out})
        } else {
            let kinds: Vec<&String> = provider
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, _)| k)
                .collect();
            self.refuse(format!(
                "{at}: provider {kinds:?} does not convert; only prometheus and web do (query other \
                 backends through web)"
            ));
            return None;
        };
        if let Some(leftover) = provider.to_string().find("{{args.") {
            self.refuse(format!(
                "{at}: an argument without a value is left in the provider (at byte {leftover})"
            ));
        }
        let (direction, thresholds) = match condition::thresholds(
            metric["successCondition"].as_str(),
            metric["failureCondition"].as_str(),
        ) {
            Ok(pair) => pair,
            Err(error) => {
                self.refuse(format!("{at}: {error}"));
                return None;
            }
        };
        let limit = metric["failureLimit"].as_i64().unwrap_or(0);
        if limit != 0 {
            self.note(format!(
                "{at}: failureLimit {limit} was left out: a value past the critical level fails \
                 the run at once; loosen thresholds.critical to tolerate some"
            ));
        }
        let mut out = json!({
            "name": name,
            "provider": provider,
            "direction": direction,
            "thresholds": thresholds,
            "onError": "Inconclusive",
        });
        if let Some(limit) = metric["consecutiveErrorLimit"].as_i64() {
            out["consecutiveErrorLimit"] = json!(limit);
        }
        Some(out)
    }
}

/// Argo's web `jsonPath` is Kubernetes JSONPath (`{$.data.value}`); safedeploy's is RFC 9535
/// (`$.data.value`). Plain paths read the same once the braces are gone.
fn json_path(kubernetes: &str) -> String {
    let inner = kubernetes
        .trim()
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .unwrap_or(kubernetes.trim());
    if inner.starts_with('$') {
        inner.to_owned()
    } else {
        format!("$.{}", inner.trim_start_matches('.'))
    }
}

fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
#[path = "argo_tests.rs"]
mod tests;
