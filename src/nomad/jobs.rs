//! Job endpoints: list, register, read, versions, plan, revert, stable, deregister,
//! summary, evaluations, parse, dispatch and periodic force.

use std::collections::BTreeMap;

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::client::{Blocking, Call, Indexed, NomadClient, Scope};
use super::encoding::base64_encode;
use super::error::{NomadError, Operation};
use super::types::{
    Evaluation, JobDeregisterResponse, JobDispatchResponse, JobListStub, JobPlanResponse,
    JobRegisterResponse, JobStabilityResponse, JobSummary, PeriodicForceResponse, nullable,
};

impl NomadClient {
    /// `GET /v1/jobs`: the jobs of the scope (namespace `"*"` = all), optionally by ID
    /// prefix, optionally as a blocking query.
    pub async fn list_jobs(
        &self,
        scope: &Scope,
        prefix: Option<&str>,
        blocking: Option<Blocking>,
    ) -> Result<Indexed<Vec<JobListStub>>, NomadError> {
        let call = Call::get(scope, &["jobs"])
            .prefix(prefix)
            .blocking(blocking);
        self.execute_nullable(call).await
    }

    /// `POST /v1/job/:id` (or `/v1/jobs` for a job without `ID`): registers `job`.
    ///
    /// With `enforce_index: Some(n)` the register is a check-and-set (`EnforceIndex: true`,
    /// `JobModifyIndex: n`; 0 = the job must be new) and fails with
    /// [`NomadError::Conflict`] if the job changed since.
    pub async fn register_job(
        &self,
        scope: &Scope,
        job: &Value,
        enforce_index: Option<u64>,
    ) -> Result<JobRegisterResponse, NomadError> {
        let body = register_body(job, enforce_index);
        let call = match job.get("ID").and_then(Value::as_str) {
            Some(id) if !id.is_empty() => Call::post(scope, &["job", id], body),
            _ => Call::post(scope, &["jobs"], body),
        };
        let answer = self
            .execute::<JobRegisterResponse>(call.operation(Operation::Register))
            .await?;
        Ok(with_index(answer, |r| &mut r.index))
    }

    /// `GET /v1/job/:id`: the job as Nomad stores it.
    pub async fn read_job(&self, scope: &Scope, id: &str) -> Result<Value, NomadError> {
        let call = Call::get(scope, &["job", id]);
        Ok(self.execute::<Value>(call).await?.value)
    }

    /// `GET /v1/job/:id/versions`: every stored version, newest first.
    ///
    /// Accepts both Nomad's `{"Versions": [...]}` and the bare array older docs show.
    pub async fn job_versions(&self, scope: &Scope, id: &str) -> Result<Vec<Value>, NomadError> {
        let call = Call::get(scope, &["job", id, "versions"]);
        let answer = self.execute::<VersionsAnswer>(call).await?;
        Ok(answer.value.into_versions())
    }

    /// `POST /v1/job/:id/plan`: a dry run of `job` against the server's version, with the
    /// diff when `diff` is true.
    pub async fn plan_job(
        &self,
        scope: &Scope,
        id: &str,
        job: &Value,
        diff: bool,
    ) -> Result<JobPlanResponse, NomadError> {
        let body = json!({ "Job": job, "Diff": diff, "PolicyOverride": false });
        let call = Call::post(scope, &["job", id, "plan"], body).reads_only();
        Ok(self.execute::<JobPlanResponse>(call).await?.value)
    }

    /// `POST /v1/job/:id/revert`: registers `version` again as a new version.
    ///
    /// With `enforce_prior_version: Some(v)` Nomad reverts only if the current version is
    /// `v`, else [`NomadError::Conflict`]. Reverting to the current version is a
    /// [`NomadError::BadRequest`].
    pub async fn revert_job(
        &self,
        scope: &Scope,
        id: &str,
        version: u64,
        enforce_prior_version: Option<u64>,
    ) -> Result<JobRegisterResponse, NomadError> {
        let mut body = json!({ "JobID": id, "JobVersion": version });
        if let Some(prior) = enforce_prior_version {
            body["EnforcePriorVersion"] = json!(prior);
        }
        let call = Call::post(scope, &["job", id, "revert"], body).operation(Operation::Revert);
        let answer = self.execute::<JobRegisterResponse>(call).await?;
        Ok(with_index(answer, |r| &mut r.index))
    }

    /// `POST /v1/job/:id/stable`: marks `version` stable (or not). Returns the write's index.
    pub async fn set_job_stable(
        &self,
        scope: &Scope,
        id: &str,
        version: u64,
        stable: bool,
    ) -> Result<u64, NomadError> {
        let body = json!({ "JobID": id, "JobVersion": version, "Stable": stable });
        let call = Call::post(scope, &["job", id, "stable"], body);
        let answer = self.execute::<JobStabilityResponse>(call).await?;
        let value = answer.value;
        Ok([value.index, value.job_modify_index, answer.index]
            .into_iter()
            .find(|i| *i != 0)
            .unwrap_or(0))
    }

    /// `DELETE /v1/job/:id`: stops the job (a new, stopped version), or removes it with
    /// every version when `purge` is true. Deleting a job that does not exist succeeds.
    pub async fn deregister_job(
        &self,
        scope: &Scope,
        id: &str,
        purge: bool,
    ) -> Result<JobDeregisterResponse, NomadError> {
        let call = Call::new(Method::DELETE, scope, &["job", id]).query("purge", purge.to_string());
        let answer = self.execute::<JobDeregisterResponse>(call).await?;
        Ok(with_index(answer, |r| &mut r.index))
    }

    /// `GET /v1/job/:id/summary`: allocation counts per task group.
    pub async fn job_summary(&self, scope: &Scope, id: &str) -> Result<JobSummary, NomadError> {
        let call = Call::get(scope, &["job", id, "summary"]);
        Ok(self.execute::<JobSummary>(call).await?.value)
    }

    /// `GET /v1/job/:id/evaluations`: the job's evaluations (`[]` for an unknown job).
    pub async fn job_evaluations(
        &self,
        scope: &Scope,
        id: &str,
    ) -> Result<Vec<Evaluation>, NomadError> {
        let call = Call::get(scope, &["job", id, "evaluations"]);
        Ok(self.execute_nullable(call).await?.value)
    }

    /// `POST /v1/jobs/parse`: converts a jobspec in HCL to the JSON job Nomad's API takes.
    /// A jobspec Nomad cannot parse is [`NomadError::BadRequest`] with Nomad's message
    /// (positions as `input.hcl:LINE,COL-COL`).
    pub async fn parse_job(&self, request: &ParseRequest<'_>) -> Result<Value, NomadError> {
        let mut body = json!({ "JobHCL": request.hcl, "Canonicalize": request.canonicalize });
        if request.hcl1 {
            body["hclv1"] = json!(true);
        }
        if let Some(variables) = request.variables {
            body["Variables"] = json!(variables);
        }
        let scope = Scope::default();
        let call = Call::post(&scope, &["jobs", "parse"], body).reads_only();
        Ok(self.execute::<Value>(call).await?.value)
    }

    /// `GET /v1/agent/self`: the release of the Nomad agent answering, such as `1.1.2`;
    /// asked once per client (its clones included) until it answers.
    pub async fn agent_version(&self) -> Result<String, NomadError> {
        let version = self
            .release_cell()
            .get_or_try_init(|| async {
                let scope = Scope::default();
                let call = Call::get(&scope, &["agent", "self"]);
                let answer = self.execute::<AgentSelf>(call).await?.value;
                Ok::<_, NomadError>(answer.config.version.version)
            })
            .await?;
        Ok(version.clone())
    }

    /// Whether the agent answering is release `at` (major, minor, patch) or later; an
    /// answer that is no release reads as older.
    pub async fn release_at_least(&self, at: (u64, u64, u64)) -> Result<bool, NomadError> {
        Ok(release_at_least(&self.agent_version().await?, at))
    }

    /// `POST /v1/job/:id/dispatch`: starts an instance of a parameterized job.
    pub async fn dispatch_job(
        &self,
        scope: &Scope,
        id: &str,
        payload: Option<&[u8]>,
        meta: BTreeMap<String, String>,
    ) -> Result<JobDispatchResponse, NomadError> {
        let mut body = json!({ "Meta": meta });
        if let Some(payload) = payload {
            body["Payload"] = json!(base64_encode(payload));
        }
        let call = Call::post(scope, &["job", id, "dispatch"], body);
        let answer = self.execute::<JobDispatchResponse>(call).await?;
        Ok(with_index(answer, |r| &mut r.index))
    }

    /// `POST /v1/job/:id/periodic/force`: launches a periodic job now.
    pub async fn force_periodic(
        &self,
        scope: &Scope,
        id: &str,
    ) -> Result<PeriodicForceResponse, NomadError> {
        let call = Call::new(Method::POST, scope, &["job", id, "periodic", "force"]);
        let answer = self.execute::<PeriodicForceResponse>(call).await?;
        Ok(with_index(answer, |r| &mut r.index))
    }
}

/// The register body: the job, and the check-and-set fields when asked.
fn register_body(job: &Value, enforce_index: Option<u64>) -> Value {
    match enforce_index {
        Some(index) => json!({ "Job": job, "EnforceIndex": true, "JobModifyIndex": index }),
        None => json!({ "Job": job }),
    }
}

/// The body's `Index`, or `X-Nomad-Index` when the body has none.
fn with_index<T>(answer: Indexed<T>, index: impl FnOnce(&mut T) -> &mut u64) -> T {
    let mut value = answer.value;
    let slot = index(&mut value);
    if *slot == 0 {
        *slot = answer.index;
    }
    value
}

/// The two shapes of `GET /v1/job/:id/versions`.
#[derive(Deserialize)]
#[serde(untagged)]
enum VersionsAnswer {
    /// `{"Versions": [...], "Diffs": ...}` (what Nomad sends).
    Wrapped {
        #[serde(rename = "Versions", default, deserialize_with = "nullable")]
        versions: Vec<Value>,
    },
    /// `[...]` (what the 0.6 documentation shows).
    Bare(Vec<Value>),
}

impl VersionsAnswer {
    fn into_versions(self) -> Vec<Value> {
        match self {
            Self::Wrapped { versions } | Self::Bare(versions) => versions,
        }
    }
}

/// Whether `version` (`1.1.2`, `v1.6.0`, `1.10.2-ent`) is release `at` or later; what is
/// no release reads as older than any.
pub fn release_at_least(version: &str, at: (u64, u64, u64)) -> bool {
    let mut parts = version
        .trim_start_matches('v')
        .split(['.', '-', '+'])
        .map(|p| p.parse::<u64>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => {
            let patch = parts.next().flatten().unwrap_or(0);
            (major, minor, patch) >= at
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn releases_compare_by_major_minor_and_patch() {
        assert!(super::release_at_least("1.2.4", (1, 2, 4)));
        assert!(super::release_at_least("v1.10.0-ent", (1, 2, 4)));
        assert!(!super::release_at_least("1.1.2", (1, 2, 4)));
        assert!(!super::release_at_least("1.2.3+ent", (1, 2, 4)));
        assert!(!super::release_at_least("unknown", (0, 0, 0)));
    }

    use super::*;

    #[test]
    fn register_body_has_cas_fields_only_when_asked() {
        let job = json!({"ID": "web"});
        assert_eq!(
            register_body(&job, Some(0)),
            json!({"Job": {"ID": "web"}, "EnforceIndex": true, "JobModifyIndex": 0})
        );
        assert_eq!(register_body(&job, None), json!({"Job": {"ID": "web"}}));
    }

    #[test]
    fn versions_in_both_shapes() {
        let wrapped: VersionsAnswer =
            serde_json::from_str(r#"{"Versions":[{"Version":1},{"Version":0}],"Diffs":null}"#)
                .expect("wrapped");
        assert_eq!(wrapped.into_versions().len(), 2);
        let bare: VersionsAnswer = serde_json::from_str(r#"[{"Version":0}]"#).expect("bare");
        assert_eq!(bare.into_versions().len(), 1);
        let null: VersionsAnswer = serde_json::from_str(r#"{"Versions":null}"#).expect("null");
        assert!(null.into_versions().is_empty());
    }

    #[test]
    fn index_falls_back_to_header() {
        let answer = Indexed {
            index: 9,
            value: JobRegisterResponse::default(),
        };
        assert_eq!(with_index(answer, |r| &mut r.index).index, 9);
        let answer = Indexed {
            index: 9,
            value: JobRegisterResponse {
                index: 4,
                ..Default::default()
            },
        };
        assert_eq!(with_index(answer, |r| &mut r.index).index, 4);
    }
}

/// What [`NomadClient::parse_job`] sends.
#[derive(Clone, Copy, Debug, Default)]
pub struct ParseRequest<'a> {
    /// The jobspec.
    pub hcl: &'a str,
    /// Parse with the HCL1 parser.
    pub hcl1: bool,
    /// Variable values in var-file format (Nomad 1.6 and later; older Nomad ignores it).
    pub variables: Option<&'a str>,
    /// Fill in Nomad's defaults.
    pub canonicalize: bool,
}

#[derive(Deserialize)]
struct AgentSelf {
    config: AgentConfig,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AgentConfig {
    version: AgentVersion,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AgentVersion {
    version: String,
}
