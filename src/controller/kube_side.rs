//! The Kubernetes side of a reconcile: writing an object's status and publishing its
//! Events, behind [`KubeSide`] so that the reconcile steps can run against a recorder in
//! tests ([`ApiServer`] is the real one).

use std::future::Future;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::api::{Patch, PatchParams};
use serde_json::{Map, Value};

use crate::crd::{NomadJob, NomadJobStatus};

use super::context::Context;
use super::error::Error;
use super::report::Notice;

/// The object a reconcile writes to: where it is, and how Events refer to it.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// What its Events are about.
    pub reference: ObjectReference,
}

impl Target {
    /// The target of an object with `metadata`; `None` without a namespace or name.
    pub fn of(metadata: &ObjectMeta) -> Option<Self> {
        let namespace = metadata.namespace.clone()?;
        let name = metadata.name.clone()?;
        let reference = ObjectReference {
            api_version: Some(format!("{}/v1alpha1", crate::crd::GROUP)),
            kind: Some("NomadJob".into()),
            namespace: Some(namespace.clone()),
            name: Some(name.clone()),
            uid: metadata.uid.clone(),
            resource_version: metadata.resource_version.clone(),
            ..ObjectReference::default()
        };
        Some(Self {
            namespace,
            name,
            reference,
        })
    }
}

/// Writes status and publishes Events for the reconcile steps.
pub trait KubeSide: Sync {
    /// Writes `after` as the status of `target`, whose status is `before`; nothing when
    /// they are equal.
    fn write_status(
        &self,
        target: &Target,
        before: &NomadJobStatus,
        after: &NomadJobStatus,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Publishes `notice` about `target` (failures are logged, never returned).
    fn publish(&self, target: &Target, notice: Notice) -> impl Future<Output = ()> + Send;

    /// Whether the NomadJob CRD itself is being deleted (then no deletion stops a job).
    fn crd_terminating(&self) -> impl Future<Output = Result<bool, Error>> + Send;
}

/// The real apiserver, through the context's client and Event publisher.
pub struct ApiServer<'a> {
    ctx: &'a Context,
}

impl<'a> ApiServer<'a> {
    /// The apiserver of `ctx`.
    pub fn new(ctx: &'a Context) -> Self {
        Self { ctx }
    }
}

/// Field manager of the operator's writes.
pub const FIELD_MANAGER: &str = "nomad-operator";

/// The parameters of the operator's patches.
pub fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    }
}

impl KubeSide for ApiServer<'_> {
    async fn write_status(
        &self,
        target: &Target,
        before: &NomadJobStatus,
        after: &NomadJobStatus,
    ) -> Result<(), Error> {
        if before == after {
            return Ok(());
        }
        if !self.ctx.leadership.holds() {
            return Err(Error::NotLeader);
        }
        tracing::debug!(
            object = format!("{}/{}", target.namespace, target.name),
            changed = ?super::status::changed_fields(before, after),
            "writing status"
        );
        let patch = serde_json::json!({
            "status": merge_patch(&to_json(before), &to_json(after)),
        });
        // The answer is not decoded: an object whose spec cannot be decoded must still
        // get its status.
        let request = kube::core::Request::new(NomadJob::url_path(&(), Some(&target.namespace)))
            .patch_subresource(
                "status",
                &target.name,
                &patch_params(),
                &Patch::Merge(&patch),
            )
            .map_err(|e| Error::Kube(kube::Error::BuildRequest(e)))?;
        self.ctx.kube.request_text(request).await?;
        self.ctx.metrics.status_writes.inc();
        Ok(())
    }

    async fn crd_terminating(&self) -> Result<bool, Error> {
        Ok(super::crd_presence::crd_terminating(&self.ctx.kube).await?)
    }

    async fn publish(&self, target: &Target, notice: Notice) {
        self.ctx
            .events
            .publish(notice.into_event("Reconcile"), target.reference.clone())
            .await;
    }
}

fn to_json(status: &NomadJobStatus) -> Value {
    serde_json::to_value(status).unwrap_or(Value::Object(Map::new()))
}

/// The JSON merge patch (RFC 7386) that turns `before` into `after`: changed members
/// with their new value, removed ones as `null`, nested objects patched member by
/// member, anything else replaced whole.
pub fn merge_patch(before: &Value, after: &Value) -> Value {
    match (before, after) {
        (Value::Object(old), Value::Object(new)) => {
            let mut patch = Map::new();
            for (key, value) in new {
                match old.get(key) {
                    Some(previous) if previous == value => {}
                    Some(previous) => {
                        patch.insert(key.clone(), merge_patch(previous, value));
                    }
                    None => {
                        patch.insert(key.clone(), value.clone());
                    }
                }
            }
            for key in old.keys().filter(|k| !new.contains_key(*k)) {
                patch.insert(key.clone(), Value::Null);
            }
            Value::Object(patch)
        }
        _ => after.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_merge_patch_sets_changes_and_removes_what_is_gone() {
        let before = json!({
            "jobVersion": 1,
            "deployment": {"id": "d1", "status": "running", "taskGroups": {"web": {"healthy": 0}}},
            "plan": {"diffType": "Edited"},
            "conditions": [{"type": "Ready", "status": "False"}]
        });
        let after = json!({
            "jobVersion": 1,
            "deployment": {"id": "d1", "status": "successful", "taskGroups": {"web": {"healthy": 2}}},
            "conditions": [{"type": "Ready", "status": "True"}]
        });
        assert_eq!(
            merge_patch(&before, &after),
            json!({
                "deployment": {"status": "successful", "taskGroups": {"web": {"healthy": 2}}},
                "plan": null,
                "conditions": [{"type": "Ready", "status": "True"}]
            })
        );
        assert_eq!(merge_patch(&after, &after), json!({}));
    }
}
