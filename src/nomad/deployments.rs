//! Deployment endpoints: list, and a job's latest deployment and all its deployments.

use super::client::{Blocking, Call, Indexed, NomadClient, Scope};
use super::error::NomadError;
use super::types::{Deployment, DeploymentUpdateResponse};

impl NomadClient {
    /// `GET /v1/deployments`: the deployments of the scope (namespace `"*"` = all),
    /// optionally by ID prefix, optionally as a blocking query.
    pub async fn list_deployments(
        &self,
        scope: &Scope,
        prefix: Option<&str>,
        blocking: Option<Blocking>,
    ) -> Result<Indexed<Vec<Deployment>>, NomadError> {
        let call = Call::get(scope, &["deployments"])
            .prefix(prefix)
            .blocking(blocking);
        self.execute_nullable(call).await
    }

    /// `GET /v1/job/:id/deployment`: the job's latest deployment; `None` when it has
    /// none (Nomad answers `200 null`).
    pub async fn job_deployment(
        &self,
        scope: &Scope,
        id: &str,
    ) -> Result<Option<Deployment>, NomadError> {
        let call = Call::get(scope, &["job", id, "deployment"]);
        Ok(self.execute::<Option<Deployment>>(call).await?.value)
    }

    /// `GET /v1/job/:id/deployments`: all of the job's deployments (`[]` for an unknown
    /// job).
    pub async fn job_deployments(
        &self,
        scope: &Scope,
        id: &str,
    ) -> Result<Vec<Deployment>, NomadError> {
        let call = Call::get(scope, &["job", id, "deployments"]);
        Ok(self.execute_nullable(call).await?.value)
    }

    /// `POST /v1/deployment/promote/:id`: promotes the canaries of every task group of the
    /// deployment (`All: true`), as `nomad deployment promote` does. Nomad refuses a
    /// deployment that has ended, or whose canaries are not all healthy.
    pub async fn promote_deployment(
        &self,
        scope: &Scope,
        id: &str,
    ) -> Result<DeploymentUpdateResponse, NomadError> {
        let body = serde_json::json!({ "DeploymentID": id, "All": true });
        let call = Call::post(scope, &["deployment", "promote", id], body);
        Ok(self.execute::<DeploymentUpdateResponse>(call).await?.value)
    }
}
