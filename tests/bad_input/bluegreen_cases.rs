//! The invalid blue-green strategies (`strategy.blueGreen`), part of
//! [`super::safe_deployment_cases`]; and the valid blue-green spec the boundary test accepts.

use serde_json::{Value, json};

use super::{Case, case, repeat};

/// A valid blue-green rollout: a pre- and a post-promotion analysis, a manual switch.
pub(crate) fn blue_green(m: &mut Value) {
    let mut template = super::valid_analysis();
    template["name"] = json!("smoke");
    let mut post = template.clone();
    post["name"] = json!("errors");
    m["spec"]["analyses"] = json!([template, post]);
    m["spec"]["strategy"] = json!({"blueGreen": {
        "prePromotionAnalysis": ["smoke"],
        "postPromotionAnalysis": ["errors"],
        "autoPromotionEnabled": false,
        "scaleDownDelaySeconds": 30,
    }});
}

fn blue_green_with(m: &mut Value, change: impl Fn(&mut Value)) {
    blue_green(m);
    change(&mut m["spec"]["strategy"]["blueGreen"]);
}

/// Rejected blue-green strategies, each with its message.
pub(crate) fn blue_green_cases() -> Vec<Case> {
    vec![
        case(
            "canary and blueGreen",
            "strategy sets exactly one of canary or blueGreen",
            |m| {
                let canary = m["spec"]["strategy"]["canary"].clone();
                blue_green(m);
                m["spec"]["strategy"]["canary"] = canary;
            },
        ),
        case(
            "neither canary nor blueGreen",
            "strategy sets exactly one of canary or blueGreen",
            |m| {
                m["spec"]["strategy"] = json!({});
            },
        ),
        case(
            "blueGreen with components",
            "strategy.blueGreen needs spec.template",
            |m| {
                blue_green(m);
                let template = m["spec"]["template"].clone();
                if let Some(spec) = m["spec"].as_object_mut() {
                    spec.remove("template");
                    spec.remove("replicas");
                }
                m["spec"]["components"] =
                    json!([{"name": "api", "replicas": 1, "template": template}]);
            },
        ),
        case(
            "pre-promotion analysis not in spec.analyses",
            "blueGreen.prePromotionAnalysis and postPromotionAnalysis name templates of spec.analyses",
            |m| blue_green_with(m, |b| b["prePromotionAnalysis"] = json!(["nope"])),
        ),
        case(
            "a template both pre and post",
            "a template cannot be both a pre- and a post-promotion analysis",
            |m| blue_green_with(m, |b| b["postPromotionAnalysis"] = json!(["smoke"])),
        ),
        case("a pre-promotion template twice", "Duplicate value", |m| {
            blue_green_with(m, |b| b["prePromotionAnalysis"] = json!(["smoke", "smoke"]))
        }),
        case(
            "autoPromotionSeconds with a manual switch",
            "autoPromotionSeconds switches automatically",
            |m| blue_green_with(m, |b| b["autoPromotionSeconds"] = json!(60)),
        ),
        case(
            "autoPromotionSeconds 0",
            "should be greater than or equal to 1",
            |m| {
                blue_green_with(m, |b| {
                    b["autoPromotionEnabled"] = json!(true);
                    b["autoPromotionSeconds"] = json!(0)
                })
            },
        ),
        case(
            "scaleDownDelaySeconds 3601",
            "should be less than or equal to 3600",
            |m| blue_green_with(m, |b| b["scaleDownDelaySeconds"] = json!(3601)),
        ),
        case(
            "same active and preview Service",
            "blueGreen.activeService and previewService must be different",
            |m| {
                blue_green_with(m, |b| {
                    b["activeService"] = json!("web");
                    b["previewService"] = json!("web")
                })
            },
        ),
        case(
            "active Service not a DNS label",
            "blueGreen.activeService must be a lowercase DNS label",
            |m| blue_green_with(m, |b| b["activeService"] = json!("Web_Active")),
        ),
        case("preview Service of 64 characters", "Too long", |m| {
            blue_green_with(m, |b| b["previewService"] = json!(repeat('p', 64)))
        }),
        case("nine pre-promotion analyses", "Too many", |m| {
            blue_green_with(m, |b| {
                b["prePromotionAnalysis"] =
                    json!((0..9).map(|i| format!("t{i}")).collect::<Vec<_>>())
            })
        }),
        case("template name of 64 characters", "Too long", |m| {
            blue_green_with(m, |b| b["postPromotionAnalysis"] = json!([repeat('t', 64)]))
        }),
    ]
}
