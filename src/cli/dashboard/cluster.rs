//! The dashboard's reads from the API server, all with the user's client: the SafeDeployments,
//! the Events about one, and whether the user may patch it (a SelfSubjectAccessReview).

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::Event;
use kube::Client;
use kube::api::{Api, ListParams, PostParams};

use super::Scope;
use super::view::EventNote;
use crate::api::SafeDeployment;
use crate::api::safedeployment::GROUP;

/// The SafeDeployments of `scope`.
pub fn rollouts(client: Client, scope: &Scope) -> Api<SafeDeployment> {
    match scope {
        Scope::Namespace(namespace) => Api::namespaced(client, namespace),
        Scope::All => Api::all(client),
    }
}

/// Whether the user may patch SafeDeployment `namespace/name`: every action is such a patch
/// (a request annotation). False when the review itself fails.
pub async fn may_patch(client: Client, namespace: &str, name: &str) -> bool {
    let reviews: Api<SelfSubjectAccessReview> = Api::all(client);
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(namespace.to_string()),
                verb: Some("patch".into()),
                group: Some(GROUP.into()),
                resource: Some("safedeployments".into()),
                name: Some(name.to_string()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    match reviews.create(&PostParams::default(), &review).await {
        Ok(created) => created.status.is_some_and(|s| s.allowed),
        Err(error) => {
            tracing::warn!(%error, "SelfSubjectAccessReview failed; offering no actions");
            false
        }
    }
}

/// The field selector of the Events about SafeDeployment `name`.
pub fn events_selector(name: &str) -> String {
    format!("involvedObject.kind=SafeDeployment,involvedObject.name={name}")
}

/// The Events about SafeDeployment `namespace/name`; none when the user may not list them.
pub async fn events(client: Client, namespace: &str, name: &str) -> Vec<EventNote> {
    let api: Api<Event> = Api::namespaced(client, namespace);
    let params = ListParams::default().fields(&events_selector(name));
    match api.list(&params).await {
        Ok(list) => list.items.iter().map(event_note).collect(),
        Err(error) => {
            tracing::debug!(%error, "cannot list the Events; the timeline shows the status only");
            Vec::new()
        }
    }
}

/// The timeline's view of an Event.
pub fn event_note(event: &Event) -> EventNote {
    let at = event
        .last_timestamp
        .as_ref()
        .map(|t| t.0)
        .or(event.event_time.as_ref().map(|t| t.0))
        .or(event.first_timestamp.as_ref().map(|t| t.0))
        .or(event.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .map(|t| t.to_string())
        .unwrap_or_default();
    EventNote {
        at,
        reason: event.reason.clone().unwrap_or_default(),
        message: event.message.clone().unwrap_or_default(),
        kind: event.type_.clone().unwrap_or_default(),
        count: event
            .count
            .or(event.series.as_ref().and_then(|s| s.count))
            .unwrap_or(1),
    }
}
