//! Step 1 of a reconcile, **observe**: what Nomad says about the job, read with as few
//! calls as the step needs, and typed views of the answers that are parsed once.

use std::collections::BTreeMap;

use serde_json::Value;

use super::counts::group_counts;
use crate::crd::{META_OWNER_NAME, META_OWNER_NAMESPACE, META_OWNER_UID};
use crate::nomad::{
    AllocationListStub, Deployment, DiffType, Evaluation, FieldDiff, JobListStub, JobPlanResponse,
    JobSummary, NomadClient, NomadError, Scope, TaskGroupDiff,
};

/// The fields of a Nomad job (`GET /v1/job/:id`) that the operator decides on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobView {
    /// `Version`.
    pub version: u64,
    /// `JobModifyIndex`: moves only when the spec changes; the check-and-set value.
    pub job_modify_index: u64,
    /// `ModifyIndex`: moves on any change.
    pub modify_index: u64,
    /// `Stop`: the job was deregistered (or submitted stopped).
    pub stop: bool,
    /// `Status`: `pending`, `running` or `dead`.
    pub status: String,
    /// The `NomadJob` recorded in the job's `Meta` (namespace, name), if any.
    pub owner: Option<(String, String)>,
    /// Whether Nomad creates a deployment for this job: a service job whose update
    /// strategy (job or group level) has `MaxParallel > 0`.
    pub expects_deployment: bool,
    /// `CreateIndex`: stays the same over every version of the job, and differs for a
    /// job purged and created again under the same ID.
    pub create_index: u64,
    /// The owner UID its `Meta` records (jobs registered by older operators).
    pub owner_uid: Option<String>,
    /// Each task group's `Count`.
    pub group_counts: BTreeMap<String, u64>,
    /// `Type`: `service`, `batch`, `system` or `sysbatch`.
    pub job_type: String,
    /// The `Periodic` block of a periodic job (enabled or not).
    pub periodic: Option<Value>,
    /// The job is parameterized (it runs only when dispatched).
    pub parameterized: bool,
}

impl JobView {
    /// A job that runs only through the jobs it launches: periodic or parameterized.
    pub fn launches_children(&self) -> bool {
        self.periodic.is_some() || self.parameterized
    }

    /// A batch job that runs by itself (not a periodic or parameterized parent): it is
    /// done when its allocations complete.
    pub fn runs_to_completion(&self) -> bool {
        matches!(self.job_type.as_str(), "batch" | "sysbatch") && !self.launches_children()
    }
}

impl JobView {
    /// Reads the fields the operator uses from a job as Nomad stores it.
    pub fn parse(job: &Value) -> Self {
        let u64_field = |key: &str| job.get(key).and_then(Value::as_u64).unwrap_or(0);
        let meta = |key: &str| {
            job.get("Meta")
                .and_then(|m| m.get(key))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let owner = match (meta(META_OWNER_NAMESPACE), meta(META_OWNER_NAME)) {
            (Some(namespace), Some(name)) => Some((namespace, name)),
            _ => None,
        };
        Self {
            version: u64_field("Version"),
            job_modify_index: u64_field("JobModifyIndex"),
            modify_index: u64_field("ModifyIndex"),
            stop: job.get("Stop").and_then(Value::as_bool).unwrap_or(false),
            status: job
                .get("Status")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            owner,
            expects_deployment: expects_deployment(job),
            create_index: u64_field("CreateIndex"),
            owner_uid: meta(META_OWNER_UID),
            group_counts: group_counts(job),
            job_type: job
                .get("Type")
                .and_then(Value::as_str)
                .unwrap_or("service")
                .to_string(),
            periodic: job.get("Periodic").filter(|p| p.is_object()).cloned(),
            parameterized: job.get("ParameterizedJob").is_some_and(Value::is_object),
        }
    }

    /// The job a register with check-and-set index 0 created from `sent`, told by the
    /// plan made for it just before (`plan`, a diff of type `Added` against no job) and
    /// the register's `JobModifyIndex` (`register_index`), without reading it back.
    ///
    /// A job created by that register is at version 0 and has every index equal to the
    /// register's; its `Meta`, `Stop` and `Type` are the ones sent. What Nomad fills in
    /// (group counts, update strategies merged from the job into its groups) comes from
    /// the plan's diff, which Nomad makes of the job after filling them in, exactly as
    /// the register stores it. `None` when that cannot be told so: the plan saw a job, or
    /// has no diff, or the job is periodic or parameterized (their blocks are kept as
    /// Nomad stores them: such a job is read).
    pub fn created(plan: &Planned, sent: &Value, register_index: u64) -> Option<Self> {
        let diff = plan.answer.diff.as_ref()?;
        if plan.diff != DiffType::Added || plan.job_modify_index != 0 {
            return None;
        }
        let mut view = Self::parse(sent);
        if view.launches_children() {
            return None;
        }
        let new_value = |fields: &[FieldDiff], name: &str| {
            fields
                .iter()
                .find(|f| f.name == name)
                .map(|f| f.new.clone())
        };
        if let Some(job_type) = new_value(&diff.fields, "Type") {
            view.job_type = job_type;
        }
        view.version = 0;
        view.job_modify_index = register_index;
        view.modify_index = register_index;
        view.create_index = register_index;
        view.status = if view.stop { "dead" } else { "pending" }.to_string();
        view.group_counts = diff
            .task_groups
            .iter()
            .filter_map(|g| {
                let count = new_value(&g.fields, "Count")?.parse().ok()?;
                Some((g.name.clone(), count))
            })
            .collect();
        let parallel = |g: &TaskGroupDiff| {
            g.objects
                .iter()
                .filter(|o| o.name == "Update")
                .filter_map(|o| new_value(&o.fields, "MaxParallel")?.parse::<i64>().ok())
                .any(|max_parallel| max_parallel > 0)
        };
        view.expects_deployment =
            view.job_type == "service" && diff.task_groups.iter().any(parallel);
        Some(view)
    }
}

/// Whether Nomad will create a deployment for this (stored, canonical) job: a service
/// job with a group whose update strategy has `MaxParallel > 0`. Nomad decides per group,
/// on the group's strategy, into which it has merged the job's own (`update` at job
/// level) when the job was submitted; a group that sets `max_parallel = 0` under a job
/// level `update` gets no deployment.
fn expects_deployment(job: &Value) -> bool {
    let service = job.get("Type").and_then(Value::as_str).unwrap_or("service") == "service";
    let parallel = |group: &Value| {
        group
            .get("Update")
            .and_then(|u| u.get("MaxParallel"))
            .and_then(Value::as_i64)
            .unwrap_or(0)
            > 0
    };
    let groups = job.get("TaskGroups").and_then(Value::as_array);
    service && groups.is_some_and(|gs| gs.iter().any(parallel))
}

/// One entry of `GET /v1/job/:id/versions`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionView {
    /// `Version`.
    pub version: u64,
    /// `JobModifyIndex` of the register that created the version.
    pub job_modify_index: u64,
    /// `Stable`: set by a successful deployment.
    pub stable: bool,
}

impl VersionView {
    fn parse(job: &Value) -> Self {
        Self {
            version: job.get("Version").and_then(Value::as_u64).unwrap_or(0),
            job_modify_index: job
                .get("JobModifyIndex")
                .and_then(Value::as_u64)
                .unwrap_or(0),
            stable: job.get("Stable").and_then(Value::as_bool).unwrap_or(false),
        }
    }
}

/// The plan made in this reconcile: what the decisions need of it.
#[derive(Clone, Debug, PartialEq)]
pub struct Planned {
    /// The top-level diff type (only it counts: sub-objects of `Edited` may say `None`).
    pub diff: DiffType,
    /// The server job's `JobModifyIndex` (0 for a new job): the register's check-and-set
    /// index, and the job state the ownership check must have seen.
    pub job_modify_index: u64,
    /// The whole answer, for `status.plan`.
    pub answer: JobPlanResponse,
}

impl Planned {
    /// Wraps a plan answer.
    pub fn new(answer: JobPlanResponse) -> Self {
        Self {
            diff: answer.diff_type().unwrap_or(DiffType::None),
            job_modify_index: answer.job_modify_index,
            answer,
        }
    }
}

/// Nomad's view of the job, as far as this reconcile has read it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    /// The job, `None` when it does not exist.
    pub job: Option<JobView>,
    /// Its deployments, any order.
    pub deployments: Vec<Deployment>,
    /// Its summary and allocations, read last (for the status only).
    pub details: Option<Details>,
    /// The plan made in this reconcile since the job was last read.
    pub plan: Option<Planned>,
    /// Its versions, newest first, when a decision needed them.
    pub versions: Option<Vec<VersionView>>,
}

/// What only the status needs: the job summary and the allocations, and what explains
/// them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Details {
    /// The summary (`None` when Nomad has none).
    pub summary: Option<JobSummary>,
    /// The allocations, any order.
    pub allocations: Vec<AllocationListStub>,
    /// The job's evaluations, read only while the summary has allocations queued (the
    /// scheduler's reasons why they are not placed).
    pub evaluations: Vec<Evaluation>,
    /// The jobs a periodic or parameterized job launched (read only for those).
    pub children: Vec<JobListStub>,
}

impl Details {
    /// Whether any task group has allocations waiting to be placed.
    pub fn queued(&self) -> bool {
        self.summary
            .as_ref()
            .is_some_and(|s| s.summary.values().any(|g| g.queued > 0))
    }

    /// Whether `job`'s evaluations are to be read: allocations wait to be placed, and
    /// the scheduler's reasons why are in its evaluations (not for a stopped job, nor
    /// for one that only launches others).
    pub fn needs_evaluations(&self, job: &JobView) -> bool {
        self.queued() && !job.stop && !job.launches_children()
    }
}

impl Observed {
    /// The job's `JobModifyIndex`, 0 when it does not exist (what a plan reports then).
    pub fn job_modify_index(&self) -> u64 {
        self.job.as_ref().map_or(0, |j| j.job_modify_index)
    }
}

/// Reads the job and, when it exists, its deployments.
pub async fn job_and_deployments(
    nomad: &NomadClient,
    scope: &Scope,
    id: &str,
) -> Result<Observed, NomadError> {
    let job = read_job(nomad, scope, id).await?;
    let deployments = match &job {
        Some(_) => nomad.job_deployments(scope, id).await?,
        None => Vec::new(),
    };
    Ok(Observed {
        job: job.as_ref().map(JobView::parse),
        deployments,
        ..Observed::default()
    })
}

/// Reads the summary of an existing job, and its allocations (a job that runs only
/// through the jobs it launches has none: its children are read instead). Its
/// evaluations are read only while allocations wait to be placed.
pub async fn details(
    nomad: &NomadClient,
    scope: &Scope,
    id: &str,
    job: &JobView,
) -> Result<Details, NomadError> {
    let summary = match nomad.job_summary(scope, id).await {
        Ok(summary) => Some(summary),
        Err(NomadError::NotFound(_)) => None,
        Err(other) => return Err(other),
    };
    let mut details = Details {
        summary,
        ..Details::default()
    };
    if job.launches_children() {
        let prefix = format!("{id}/");
        details.children = nomad.list_jobs(scope, Some(&prefix), None).await?.value;
        // A prefix also matches other jobs whose ID starts with it.
        details.children.retain(|c| c.parent_id == id);
        return Ok(details);
    }
    details.allocations = nomad.job_allocations(scope, id, false, None).await?.value;
    if details.needs_evaluations(job) {
        details.evaluations = nomad.job_evaluations(scope, id).await?;
    }
    Ok(details)
}

/// Reads the job's versions, newest first.
pub async fn versions(
    nomad: &NomadClient,
    scope: &Scope,
    id: &str,
) -> Result<Vec<VersionView>, NomadError> {
    Ok(nomad
        .job_versions(scope, id)
        .await?
        .iter()
        .map(VersionView::parse)
        .collect())
}

/// `GET /v1/job/:id`, with "not found" as `None`.
pub async fn read_job(
    nomad: &NomadClient,
    scope: &Scope,
    id: &str,
) -> Result<Option<Value>, NomadError> {
    match nomad.read_job(scope, id).await {
        Ok(job) => Ok(Some(job)),
        Err(NomadError::NotFound(_)) => Ok(None),
        Err(other) => Err(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_job_is_parsed_once_into_what_decisions_need() {
        let job = json!({
            "ID": "web", "Version": 3, "JobModifyIndex": 40, "ModifyIndex": 44, "Stop": false,
            "CreateIndex": 12, "Status": "running", "Type": "service",
            "Meta": {META_OWNER_NAMESPACE: "team-a", META_OWNER_NAME: "web", META_OWNER_UID: "u"},
            "TaskGroups": [{"Name": "web", "Count": 2, "Update": {"MaxParallel": 1}}]
        });
        let view = JobView::parse(&job);
        assert_eq!(
            view,
            JobView {
                version: 3,
                job_modify_index: 40,
                modify_index: 44,
                stop: false,
                status: "running".into(),
                owner: Some(("team-a".into(), "web".into())),
                expects_deployment: true,
                create_index: 12,
                owner_uid: Some("u".into()),
                group_counts: [("web".to_string(), 2)].into(),
                job_type: "service".into(),
                periodic: None,
                parameterized: false,
            }
        );
        let batch = JobView::parse(&json!({"Type": "batch", "Meta": null, "Stop": true}));
        assert_eq!(
            (batch.owner, batch.expects_deployment, batch.stop),
            (None, false, true)
        );
        let no_update =
            JobView::parse(&json!({"Type": "service", "TaskGroups": [{"Update": null}]}));
        assert!(!no_update.expects_deployment);
        // Nomad decides per group, on the strategy it merged into the group.
        let opted_out = JobView::parse(&json!({
            "Type": "service", "Update": {"MaxParallel": 1},
            "TaskGroups": [{"Name": "web", "Update": {"MaxParallel": 0}}]
        }));
        assert!(!opted_out.expects_deployment);
    }

    /// A plan answer with a diff of `diff_type` for job `web`: group `web` of count 2
    /// with `max_parallel` 1, group `db` of count 1 without an update strategy.
    fn plan_of(diff_type: &str, job_modify_index: u64) -> Planned {
        let field =
            |name: &str, new: &str| json!({"Type": "Added", "Name": name, "Old": "", "New": new});
        Planned::new(
            serde_json::from_value(json!({
                "JobModifyIndex": job_modify_index,
                "Diff": {
                    "Type": diff_type, "ID": "web",
                    "Fields": [field("Type", "service"), field("Priority", "50")],
                    "TaskGroups": [
                        {"Type": "Added", "Name": "web", "Fields": [field("Count", "2")],
                         "Objects": [{"Type": "Added", "Name": "Update",
                                      "Fields": [field("MaxParallel", "1")]}]},
                        {"Type": "Added", "Name": "db", "Fields": [field("Count", "1")]}
                    ]
                }
            }))
            .expect("plan answer"),
        )
    }

    #[test]
    fn a_created_job_is_told_by_its_plan_and_its_register() {
        let sent = json!({
            "ID": "web", "Meta": {META_OWNER_NAMESPACE: "team-a", META_OWNER_NAME: "web"},
            "TaskGroups": [{"Name": "web"}, {"Name": "db"}]
        });
        let view = JobView::created(&plan_of("Added", 0), &sent, 71).expect("created");
        assert_eq!(
            view,
            JobView {
                version: 0,
                job_modify_index: 71,
                modify_index: 71,
                stop: false,
                status: "pending".into(),
                owner: Some(("team-a".into(), "web".into())),
                expects_deployment: true,
                create_index: 71,
                owner_uid: None,
                group_counts: [("web".to_string(), 2), ("db".to_string(), 1)].into(),
                job_type: "service".into(),
                periodic: None,
                parameterized: false,
            }
        );
        // The plan saw a job, or the job was edited: it is read.
        assert_eq!(JobView::created(&plan_of("Added", 12), &sent, 71), None);
        assert_eq!(JobView::created(&plan_of("Edited", 0), &sent, 71), None);
        // Periodic and parameterized jobs are read: their blocks are as Nomad keeps them.
        let periodic = json!({"ID": "web", "Periodic": {"Spec": "* * * * *"}});
        assert_eq!(JobView::created(&plan_of("Added", 0), &periodic, 71), None);
        let dispatched = json!({"ID": "web", "ParameterizedJob": {}});
        assert_eq!(
            JobView::created(&plan_of("Added", 0), &dispatched, 71),
            None
        );
    }

    #[test]
    fn versions_keep_their_register_index_and_stability() {
        let v = VersionView::parse(&json!({"Version": 2, "JobModifyIndex": 9, "Stable": true}));
        assert_eq!(
            v,
            VersionView {
                version: 2,
                job_modify_index: 9,
                stable: true
            }
        );
    }
}
