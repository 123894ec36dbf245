//! The scheduler: evaluations, the per-job reconciler (placements, rolling
//! destructive updates bounded by `MaxParallel`, in-place updates, canaries,
//! rescheduling, scale up/down, stops), job status and summary upkeep, and the
//! background timer loop. Work is per job; nothing scans all jobs.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::allocations::Placement;
use crate::canonical::{Obj, groups, o, s, tasks_updated, u};
use crate::placement::SchedCtx;
use crate::state::{Deployment, DeploymentGroup, Eval, GroupSummary, JobKey, State, Table, Timer};
use crate::util::{new_uuid, now_ns};

/// Most timers handled per lock hold before yielding.
const BATCH: usize = 512;

const NOT_NEEDED: &str = "alloc not needed due to job update";
const UPDATING: &str = "alloc is being updated due to job update";
const RESCHEDULED: &str = "alloc was rescheduled because it failed";

/// How a dead allocation is replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Replace {
    /// A failed allocation due for rescheduling: the replacement tracks it.
    Reschedule,
    /// A failed allocation of an older version: a destructive update.
    Update,
    /// A service allocation that completed.
    Plain,
}

impl State {
    /// Creates an evaluation for a job. `pending` evaluations are processed by
    /// the scheduler loop right away.
    pub(crate) fn create_eval(
        &mut self,
        key: &JobKey,
        triggered_by: &str,
        jmi: u64,
        idx: u64,
        pending: bool,
    ) -> String {
        let id = new_uuid();
        self.insert_eval(key, &id, triggered_by, jmi, idx, pending);
        id
    }

    fn insert_eval(
        &mut self,
        key: &JobKey,
        id: &str,
        triggered_by: &str,
        jmi: u64,
        idx: u64,
        pending: bool,
    ) {
        let (priority, kind) = self
            .jobs
            .get(key)
            .map(|j| {
                (
                    crate::canonical::i(&j.spec, "Priority").unwrap_or(50),
                    j.job_type().to_string(),
                )
            })
            .unwrap_or((50, "service".to_string()));
        let now = now_ns();
        let queued: BTreeMap<String, u64> = self
            .jobs
            .get(key)
            .map(|j| {
                groups(&j.spec)
                    .filter_map(|g| s(g, "Name"))
                    .map(|n| (n.to_string(), 0))
                    .collect()
            })
            .unwrap_or_default();
        let queued_now = queued.clone();
        let ev = Eval {
            id: id.to_string(),
            namespace: key.0.clone(),
            priority,
            kind,
            triggered_by: triggered_by.to_string(),
            job_id: key.1.clone(),
            job_modify_index: jmi,
            deployment_id: self
                .latest_deployment(key)
                .filter(|d| d.active())
                .map(|d| d.id.clone())
                .unwrap_or_default(),
            status: if pending { "pending" } else { "complete" }.to_string(),
            status_description: String::new(),
            previous_eval: String::new(),
            blocked_eval: String::new(),
            failed_tg_allocs: serde_json::Value::Null,
            class_eligibility: BTreeMap::new(),
            escaped_computed_class: false,
            queued,
            create_index: idx,
            modify_index: idx,
            snapshot_index: if pending { 0 } else { idx },
            create_time: now,
            modify_time: now,
        };
        self.evals.insert(id.to_string(), ev.into());
        self.evals_by_job
            .entry(key.clone())
            .or_default()
            .push(id.to_string());
        self.touch(Table::Evals, idx);
        if pending {
            self.schedule(Duration::ZERO, Timer::Eval(id.to_string()));
        } else {
            // A complete evaluation's `QueuedAllocations` is the summary's `Queued`.
            if let Some(j) = self.jobs.get_mut(key) {
                j.queued = queued_now;
            }
            self.cancel_blocked_evals(key, idx);
        }
    }

    /// The blocked evaluation Nomad creates for what evaluation `previous` (of job
    /// modify index `jmi`, scheduled from `snapshot`) could not place: `ctx`'s failures,
    /// and the node class it found (in)eligible. Not stored.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn blocked_eval(
        &self,
        key: &JobKey,
        spec: &Obj,
        ctx: &SchedCtx,
        previous: &str,
        jmi: u64,
        snapshot: u64,
        idx: u64,
    ) -> Eval {
        let now = now_ns();
        let escaped = crate::placement::escapes(spec);
        Eval {
            id: new_uuid(),
            namespace: key.0.clone(),
            priority: crate::canonical::i(spec, "Priority").unwrap_or(50),
            kind: s(spec, "Type").unwrap_or("service").to_string(),
            triggered_by: "queued-allocs".into(),
            job_id: key.1.clone(),
            job_modify_index: jmi,
            deployment_id: String::new(),
            status: "blocked".into(),
            status_description: "created to place remaining allocations".into(),
            previous_eval: previous.to_string(),
            blocked_eval: String::new(),
            failed_tg_allocs: ctx.failed_json(),
            class_eligibility: ctx.class_eligibility(self, spec),
            escaped_computed_class: escaped,
            queued: BTreeMap::new(),
            create_index: idx,
            modify_index: idx,
            snapshot_index: snapshot,
            create_time: now,
            modify_time: now,
        }
    }

    /// Cancels the job's blocked evaluations other than `keep`, each with `why(its ID)`.
    fn cancel_blocked(
        &mut self,
        key: &JobKey,
        keep: &str,
        why: impl Fn(&str) -> String,
        idx: u64,
    ) -> bool {
        let ids: Vec<String> = self
            .evals_by_job
            .get(key)
            .into_iter()
            .flatten()
            .filter(|id| id.as_str() != keep)
            .filter(|id| self.evals.get(*id).is_some_and(|e| e.status == "blocked"))
            .cloned()
            .collect();
        for id in &ids {
            if let Some(e) = self.evals.get_mut(id) {
                e.status = "canceled".into();
                e.status_description = why(id);
                e.modify_index = idx;
            }
        }
        if !ids.is_empty() {
            self.touch(Table::Evals, idx);
        }
        !ids.is_empty()
    }

    /// An evaluation of the job completed with everything placed: Nomad's state store
    /// cancels the job's blocked evaluations in the same write, each described as
    /// `evaluation "<its own ID>" successful`.
    fn cancel_blocked_evals(&mut self, key: &JobKey, idx: u64) {
        self.cancel_blocked(key, "", |id| format!("evaluation {id:?} successful"), idx);
    }

    /// Runs a pending evaluation: reconcile its job, mark it complete.
    pub(crate) fn process_eval(&mut self, id: &str) {
        let Some(ev) = self.evals.get(id) else {
            return;
        };
        if ev.status != "pending" {
            return;
        }
        let key = (ev.namespace.clone(), ev.job_id.clone());
        let jmi = ev.job_modify_index;
        let snapshot = self.index;
        // A blocked evaluation is written before the plan: its index is set aside
        // when the job has something the node may not take.
        let blocked_idx = self.may_fail_placement(&key).then(|| self.bump());
        let idx = self.bump();
        let before = (self.table(Table::Allocs), self.table(Table::Deployments));
        self.sched = SchedCtx::default();
        self.reconcile(&key, idx, id);
        let ctx = std::mem::take(&mut self.sched);
        // An evaluation that planned something is marked complete in a write of its
        // own, after the plan's.
        let planned = (self.table(Table::Allocs), self.table(Table::Deployments)) != before;
        if planned {
            self.refresh_job(&key, idx);
        }
        let mut blocked = String::new();
        let mut dup_cancelled = false;
        if !ctx.failed.is_empty() {
            let bidx = blocked_idx.unwrap_or(idx);
            let spec = self.jobs.get(&key).map(|j| j.spec.clone());
            if let Some(spec) = spec {
                let b = self.blocked_eval(&key, &spec, &ctx, id, jmi, snapshot, bidx);
                blocked = b.id.clone();
                self.evals.insert(b.id.clone(), b.into());
                self.evals_by_job
                    .entry(key.clone())
                    .or_default()
                    .push(blocked.clone());
                self.touch(Table::Evals, bidx);
            }
            // One blocked evaluation per job: the blocked-evals tracker keeps the
            // newest and its reaper cancels the others.
            let dup_idx = self.index + 1;
            let job_id = key.1.clone();
            dup_cancelled = self.cancel_blocked(
                &key,
                &blocked,
                |_| format!("existing blocked evaluation exists for job {job_id:?}"),
                dup_idx,
            );
            if dup_cancelled {
                self.bump();
            }
        }
        let done = if planned || dup_cancelled {
            self.bump()
        } else {
            idx
        };
        if ctx.failed.is_empty() {
            self.cancel_blocked_evals(&key, done);
        }
        let queued: BTreeMap<String, u64> = ctx
            .failed
            .iter()
            .map(|(g, m)| (g.clone(), m.failures()))
            .collect();
        if let Some(j) = self.jobs.get_mut(&key) {
            j.constraint_cached |= ctx.constraint_reported;
        }
        // The scheduler links the evaluation to the job's latest deployment.
        let ci = self.jobs.get(&key).map(|j| j.create_index);
        let dep = self
            .latest_deployment(&key)
            .filter(|d| Some(d.job_create_index) == ci)
            .map(|d| d.id.clone());
        if let Some(ev) = self.evals.get_mut(id) {
            if let Some(dep) = dep {
                ev.deployment_id = dep;
            }
            ev.status = "complete".into();
            ev.modify_index = done;
            ev.snapshot_index = snapshot;
            ev.modify_time = now_ns();
            ev.blocked_eval = blocked;
            ev.failed_tg_allocs = ctx.failed_json();
            for (g, n) in ev.queued.iter_mut() {
                *n = queued.get(g).copied().unwrap_or(0);
            }
            let queued = ev.queued.clone();
            if let Some(j) = self.jobs.get_mut(&key) {
                j.queued = queued;
            }
        }
        self.touch(Table::Evals, done);
        self.refresh_job(&key, done);
    }

    /// Reconciles a job on behalf of the deployment watcher / failure handling,
    /// recording an evaluation when it changed anything.
    pub(crate) fn run_watcher_eval(&mut self, key: &JobKey, triggered_by: &str) {
        let idx = self.bump();
        let eval_id = new_uuid();
        self.sched = SchedCtx::default();
        let changes = self.reconcile(key, idx, &eval_id);
        self.sched = SchedCtx::default();
        if changes > 0 {
            let jmi = self.jobs.get(key).map(|j| j.job_modify_index).unwrap_or(0);
            self.insert_eval(key, &eval_id, triggered_by, jmi, idx, false);
        }
        self.refresh_job(key, idx);
    }

    /// Updates a job's summary and status (and its parent's children counts).
    pub(crate) fn refresh_job(&mut self, key: &JobKey, idx: u64) {
        self.update_summary(key, idx);
        self.update_status(key, idx);
        let parent = self
            .jobs
            .get(key)
            .and_then(|j| s(&j.spec, "ParentID"))
            .filter(|p| !p.is_empty())
            .map(|p| (key.0.clone(), p.to_string()));
        if let Some(pk) = parent {
            self.update_summary(&pk, idx);
        }
    }

    /// Whether the job has an evaluation that is not terminal (pending or blocked).
    fn has_live_eval(&self, key: &JobKey) -> bool {
        self.evals_by_job
            .get(key)
            .into_iter()
            .flatten()
            .filter_map(|id| self.evals.get(id))
            .any(|e| matches!(e.status.as_str(), "pending" | "blocked"))
    }

    /// A job's status as Nomad's `getJobStatus` computes it from its allocations (those
    /// of this incarnation, `create_index`) and evaluations, for the job `spec`.
    pub(crate) fn derive_status(
        &self,
        key: &JobKey,
        spec: &Obj,
        create_index: u64,
    ) -> &'static str {
        let stopped = crate::canonical::b(spec, "Stop");
        let periodic = spec.get("Periodic").is_some_and(|p| {
            p.get("Enabled")
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false)
        });
        let parameterized = spec
            .get("ParameterizedJob")
            .is_some_and(serde_json::Value::is_object);
        if (periodic || parameterized) && !crate::canonical::b(spec, "Dispatched") {
            return if stopped { "dead" } else { "running" };
        }
        let allocs: Vec<_> = self
            .job_alloc_ids(key)
            .iter()
            .filter_map(|id| self.allocs.get(id))
            .filter(|a| a.job_create_index == create_index)
            .collect();
        if allocs.iter().any(|a| !a.terminal()) {
            "running"
        } else if self.has_live_eval(key)
            || allocs.iter().any(|a| {
                a.reschedule_at.is_some()
                    && a.next_allocation.is_empty()
                    && a.desired_status == "run"
            })
        {
            "pending"
        } else if stopped
            || !allocs.is_empty()
            || self.evals_by_job.get(key).is_some_and(|v| !v.is_empty())
        {
            "dead"
        } else {
            "pending"
        }
    }

    /// Updates the status in the jobs table (not the stored version: Nomad writes a
    /// version's status only when the version itself is written).
    fn update_status(&mut self, key: &JobKey, idx: u64) {
        let Some(j) = self.jobs.get(key) else {
            return;
        };
        let status = self.derive_status(key, &j.spec, j.create_index);
        if let Some(j) = self.jobs.get_mut(key)
            && j.status != status
        {
            j.status = status.to_string();
            j.modify_index = idx;
            // Nomad's `setJobStatus` writes a copy of the job.
            j.aliased = false;
            self.touch(Table::Jobs, idx);
        }
    }

    fn update_summary(&mut self, key: &JobKey, idx: u64) {
        let Some(j) = self.jobs.get(key) else {
            return;
        };
        let ci = j.create_index;
        let mut sum: BTreeMap<String, GroupSummary> = BTreeMap::new();
        for g in groups(&j.spec) {
            sum.insert(
                s(g, "Name").unwrap_or_default().to_string(),
                GroupSummary::default(),
            );
        }
        if !j.is_parent() {
            for a in self
                .job_alloc_ids(key)
                .iter()
                .filter_map(|id| self.allocs.get(id))
                .filter(|a| a.job_create_index == ci)
            {
                let Some(gs) = sum.get_mut(&a.task_group) else {
                    continue;
                };
                match a.client_status.as_str() {
                    "pending" => gs.starting += 1,
                    "running" => gs.running += 1,
                    "complete" => gs.complete += 1,
                    "failed" => gs.failed += 1,
                    "lost" => gs.lost += 1,
                    _ => {}
                }
            }
            // What the last evaluation could not place, less what was placed since.
            for (name, gs) in sum.iter_mut() {
                gs.queued = j.queued.get(name).copied().unwrap_or(0);
            }
        }
        let mut children = crate::state::Children::default();
        if j.is_parent() {
            let prefix = format!("{}/", key.1);
            let start = (key.0.clone(), prefix.clone());
            for ((ns, id), c) in self.jobs.range(start..) {
                if ns != &key.0 || !id.starts_with(&prefix) {
                    break;
                }
                match c.status.as_str() {
                    "running" => children.running += 1,
                    "dead" => children.dead += 1,
                    _ => children.pending += 1,
                }
            }
        }
        if let Some(j) = self.jobs.get_mut(key)
            && (j.summary != sum || j.children != children)
        {
            j.summary = sum;
            j.children = children;
            j.summary_modify_index = idx;
            self.touch(Table::Summary, idx);
        }
    }

    fn cancel_deployment(&mut self, id: &str, description: &str, idx: u64) {
        if let Some(d) = self.deployments.get_mut(id)
            && d.active()
        {
            d.status = "cancelled".into();
            d.status_description = description.to_string();
            d.modify_index = idx;
            self.touch(Table::Deployments, idx);
        }
    }

    /// Brings a job's allocations in line with its current version. Returns the
    /// number of changes made (placements, stops, updates).
    pub(crate) fn reconcile(&mut self, key: &JobKey, idx: u64, eval_id: &str) -> usize {
        let mut changes = 0;
        let ids: Vec<String> = self.job_alloc_ids(key).to_vec();
        let dep_ids: Vec<String> = self
            .deployments_by_job
            .get(key)
            .cloned()
            .unwrap_or_default();
        let Some(job) = self.jobs.get(key) else {
            for id in &ids {
                if self
                    .allocs
                    .get(id)
                    .is_some_and(|a| a.desired_status == "run")
                {
                    self.stop_alloc(id, NOT_NEEDED, idx);
                    changes += 1;
                }
            }
            for d in &dep_ids {
                self.cancel_deployment(d, "Cancelled because job is stopped", idx);
            }
            return changes;
        };
        let spec = job.spec.clone();
        let version = job.version;
        let ci = job.create_index;
        let jmi = job.job_modify_index;
        let stopped = job.stopped() || job.is_parent();
        let job_type = job.job_type().to_string();
        let group_names: BTreeSet<String> = groups(&spec)
            .filter_map(|g| s(g, "Name"))
            .map(str::to_string)
            .collect();
        for id in &ids {
            let Some(a) = self.allocs.get(id) else {
                continue;
            };
            if a.desired_status == "run"
                && (stopped || a.job_create_index != ci || !group_names.contains(&a.task_group))
            {
                self.stop_alloc(id, NOT_NEEDED, idx);
                changes += 1;
            }
        }
        if stopped {
            for d in &dep_ids {
                self.cancel_deployment(d, "Cancelled because job is stopped", idx);
            }
            return changes;
        }
        for d in &dep_ids {
            let older = self
                .deployments
                .get(d)
                .is_some_and(|dd| dd.job_version != version || dd.job_create_index != ci);
            if older {
                self.cancel_deployment(d, "Cancelled due to newer version of job", idx);
            }
        }
        let mut dep: Option<String> = dep_ids
            .iter()
            .filter_map(|d| self.deployments.get(d))
            .filter(|d| d.job_version == version && d.job_create_index == ci)
            .max_by_key(|d| d.create_index)
            .map(|d| d.id.clone());
        if dep.is_none() && job_type == "service" {
            dep = self.maybe_create_deployment(key, &spec, idx);
        }
        let gspecs: Vec<Obj> = groups(&spec).cloned().collect();
        for g in &gspecs {
            changes += self.reconcile_group(
                key,
                g,
                &spec,
                (version, ci, jmi),
                &job_type,
                idx,
                eval_id,
                dep.as_deref(),
            );
        }
        if let Some(d) = dep {
            self.unplaced_no_progress(key, &d);
            self.deployment_check(&d, idx);
        }
        changes
    }

    /// A deployment's group that has placed nothing because its placements failed has
    /// no progress deadline yet (`RequireProgressBy: null`): Nomad sets it when the
    /// first allocation is placed.
    fn unplaced_no_progress(&mut self, key: &JobKey, dep_id: &str) {
        let failed: Vec<String> = self.sched.failed.keys().cloned().collect();
        for g in failed {
            let placed = self
                .job_alloc_ids(key)
                .iter()
                .filter_map(|id| self.allocs.get(id))
                .any(|a| a.deployment_id == dep_id && a.task_group == g);
            if !placed
                && let Some(dg) = self
                    .deployments
                    .get_mut(dep_id)
                    .and_then(|d| d.groups.get_mut(&g))
            {
                dg.require_progress_by = 0;
            }
        }
    }

    fn live_group_allocs(&self, key: &JobKey, ci: u64, group: &str) -> Vec<&crate::state::Alloc> {
        self.job_alloc_ids(key)
            .iter()
            .filter_map(|id| self.allocs.get(id).map(|a| &**a))
            .filter(|a| {
                a.job_create_index == ci
                    && a.task_group == group
                    && a.desired_status == "run"
                    && !a.client_terminal()
            })
            .collect()
    }

    fn maybe_create_deployment(
        &mut self,
        key: &JobKey,
        spec: &Arc<Obj>,
        idx: u64,
    ) -> Option<String> {
        let j = self.jobs.get(key)?;
        let (version, ci, jmi, modify) = (
            j.version,
            j.create_index,
            j.job_modify_index,
            j.modify_index,
        );
        let all: Vec<&crate::state::Alloc> = self
            .job_alloc_ids(key)
            .iter()
            .filter_map(|id| self.allocs.get(id).map(|a| &**a))
            .filter(|a| a.job_create_index == ci)
            .collect();
        let had_running = all.iter().any(|a| a.job_version == version);
        let mut updating = false;
        let mut dgroups = BTreeMap::new();
        let now = now_ns();
        for g in groups(spec) {
            let name = s(g, "Name").unwrap_or_default();
            let count = u(g, "Count").unwrap_or(0);
            let Some(up) = o(g, "Update") else {
                continue;
            };
            let mp = u(up, "MaxParallel").unwrap_or(0);
            if mp == 0 || count == 0 {
                continue;
            }
            let live = self.live_group_allocs(key, ci, name);
            let old: Vec<_> = live
                .iter()
                .filter(|a| a.job_version != version || a.job_modify_index != jmi)
                .collect();
            let destructive = old.iter().any(|a| tasks_updated(&a.job, spec, name));
            if !old.is_empty() {
                updating = true;
            }
            let pd = u(up, "ProgressDeadline").unwrap_or(0);
            let canary = u(up, "Canary").unwrap_or(0);
            dgroups.insert(
                name.to_string(),
                DeploymentGroup {
                    auto_revert: crate::canonical::b(up, "AutoRevert"),
                    auto_promote: crate::canonical::b(up, "AutoPromote"),
                    promoted: false,
                    desired_canaries: if destructive { canary } else { 0 },
                    desired_total: count,
                    placed_canaries: Vec::new(),
                    placed_allocs: 0,
                    healthy_allocs: 0,
                    unhealthy_allocs: 0,
                    progress_deadline: pd,
                    require_progress_by: if pd > 0 { now + self.scaled_ns(pd) } else { 0 },
                },
            );
        }
        if dgroups.is_empty() || (had_running && !updating) {
            return None;
        }
        let needs_promotion = dgroups.values().any(|g| g.desired_canaries > 0);
        let min_pd = dgroups
            .values()
            .filter(|g| g.progress_deadline > 0)
            .map(|g| g.progress_deadline)
            .min();
        let id = new_uuid();
        let d = Deployment {
            id: id.clone(),
            namespace: key.0.clone(),
            job_id: key.1.clone(),
            job_version: version,
            job_modify_index: modify,
            job_spec_modify_index: jmi,
            job_create_index: ci,
            status: "running".into(),
            status_description: if needs_promotion
                && dgroups
                    .values()
                    .all(|g| g.desired_canaries == 0 || g.auto_promote)
            {
                "Deployment is running pending automatic promotion"
            } else {
                "Deployment is running"
            }
            .into(),
            groups: dgroups,
            create_index: idx,
            modify_index: idx,
            eval_batch: false,
        };
        self.deployments.insert(id.clone(), d.into());
        self.deployments_by_job
            .entry(key.clone())
            .or_default()
            .push(id.clone());
        self.touch(Table::Deployments, idx);
        if let Some(pd) = min_pd {
            self.schedule(
                self.scaled(pd),
                Timer::ProgressDeadline {
                    deployment: id.clone(),
                },
            );
        }
        Some(id)
    }

    #[allow(clippy::too_many_arguments)]
    fn reconcile_group(
        &mut self,
        key: &JobKey,
        g: &Obj,
        spec: &Arc<Obj>,
        (version, ci, jmi): (u64, u64, u64),
        job_type: &str,
        idx: u64,
        eval_id: &str,
        dep_id: Option<&str>,
    ) -> usize {
        let name = s(g, "Name").unwrap_or_default().to_string();
        let count = u(g, "Count").unwrap_or(0);
        let batch = matches!(job_type, "batch" | "sysbatch");
        let now = now_ns();
        let dep: Option<Deployment> = dep_id
            .and_then(|d| self.deployments.get(d))
            .map(|d| Deployment::clone(d));
        let dep_active = dep.as_ref().is_some_and(|d| d.status == "running");
        let dgroup: Option<DeploymentGroup> =
            dep.as_ref().and_then(|d| d.groups.get(&name)).cloned();
        let in_canary_phase = dep_active
            && dgroup
                .as_ref()
                .is_some_and(|dg| dg.desired_canaries > 0 && !dg.promoted);
        let mut changes = 0;

        // Classify the group's allocations.
        struct Occ {
            index: u64,
            id: String,
            current: bool,
            live: bool,
            create_index: u64,
        }
        let mut occupants: Vec<Occ> = Vec::new();
        // Dead allocations replaced now: (name index, ID, how).
        let mut replace_now: Vec<(u64, String, Replace)> = Vec::new();
        let mut canaries: Vec<String> = Vec::new();
        for id in self.job_alloc_ids(key) {
            let Some(a) = self.allocs.get(id) else {
                continue;
            };
            if a.job_create_index != ci
                || a.task_group != name
                || a.desired_status != "run"
                || !a.next_allocation.is_empty()
            {
                continue;
            }
            let current = a.job_version == version && a.job_modify_index == jmi;
            // Nomad ignores a batch job's finished allocations of older versions.
            if batch && !current && a.client_terminal() {
                continue;
            }
            if a.canary && dep_active && Some(a.deployment_id.as_str()) == dep_id && in_canary_phase
            {
                canaries.push(a.id.clone());
                continue;
            }
            let occ = Occ {
                index: a.index,
                id: a.id.clone(),
                current,
                live: !a.client_terminal(),
                create_index: a.create_index,
            };
            match a.client_status.as_str() {
                "complete" if !batch => replace_now.push((a.index, a.id.clone(), Replace::Plain)),
                "failed" if a.reschedule_at.is_some_and(|t| t <= now) => {
                    replace_now.push((a.index, a.id.clone(), Replace::Reschedule))
                }
                // A failed allocation of an older version that is not rescheduled is
                // replaced like any other by the update to the new version.
                "failed" if !current => replace_now.push((a.index, a.id.clone(), Replace::Update)),
                "lost" => {}
                _ => occupants.push(occ),
            }
        }
        // One allocation per name index: prefer the current version, then the newest.
        occupants.sort_by_key(|o| (o.index, !o.current, Reverse(o.create_index)));
        let mut kept: Vec<Occ> = Vec::new();
        for occ in occupants {
            let dup = kept.last().is_some_and(|k| k.index == occ.index);
            if dup || occ.index >= count {
                if occ.live {
                    let why = if dup && kept.last().is_some_and(|k| k.current) && !occ.current {
                        UPDATING
                    } else {
                        NOT_NEEDED
                    };
                    self.stop_alloc(&occ.id, why, idx);
                    changes += 1;
                } else if let Some(a) = self.allocs.get_mut(&occ.id) {
                    a.desired_status = "stop".into();
                    a.desired_description = NOT_NEEDED.into();
                    a.modify_index = idx;
                    self.touch(Table::Allocs, idx);
                }
                continue;
            }
            kept.push(occ);
        }
        // Old-version live allocations: in place or destructive.
        let mut destructive: Vec<(u64, String)> = Vec::new();
        for occ in kept.iter().filter(|o| !o.current && o.live) {
            let Some(a) = self.allocs.get(&occ.id) else {
                continue;
            };
            // Nomad tries an update in place on the node first: what no longer fits
            // there is a destructive update.
            if tasks_updated(&a.job, spec, &name) || !self.fits_in_place(key, spec, &name, &occ.id)
            {
                destructive.push((occ.index, occ.id.clone()));
            } else {
                let dep_for_alloc = if dep_active { dep_id } else { None };
                self.inplace_update(&occ.id, spec, (version, jmi), eval_id, dep_for_alloc, idx);
                changes += 1;
            }
        }
        let placement_dep = if dep_active { dep_id } else { None };
        let place = |st: &mut State,
                     index: u64,
                     canary: bool,
                     previous: Option<String>,
                     rescheduled: bool| {
            st.place_alloc(
                Placement {
                    key,
                    group: &name,
                    index,
                    spec,
                    version,
                    job_create_index: ci,
                    job_modify_index: jmi,
                    eval_id,
                    deployment_id: placement_dep,
                    canary,
                    previous,
                    rescheduled,
                },
                idx,
            );
        };
        // Canaries before any destructive update.
        let mut limit: u64 = u64::MAX;
        let strategy_mp = o(g, "Update")
            .and_then(|up| u(up, "MaxParallel"))
            .unwrap_or(0);
        if in_canary_phase && !destructive.is_empty() {
            let want = dgroup.as_ref().map(|d| d.desired_canaries).unwrap_or(0);
            let have = dgroup
                .as_ref()
                .map(|d| d.placed_canaries.len() as u64)
                .unwrap_or(0);
            for (index, _) in destructive.iter().take(want.saturating_sub(have) as usize) {
                if self.try_place(key, spec, &name, None) {
                    place(self, *index, true, None, false);
                    changes += 1;
                }
            }
            limit = 0;
        } else if strategy_mp > 0 && !batch {
            limit = match &dep {
                Some(d) if d.status == "failed" || d.status == "paused" => 0,
                Some(d) if d.status == "running" => {
                    let mut in_flight = 0u64;
                    let mut unhealthy = false;
                    for a in self
                        .job_alloc_ids(key)
                        .iter()
                        .filter_map(|id| self.allocs.get(id))
                        .filter(|a| {
                            a.deployment_id == d.id
                                && a.task_group == name
                                && a.desired_status == "run"
                        })
                    {
                        match a.health.as_ref().and_then(|h| h.healthy) {
                            Some(true) => {}
                            Some(false) => unhealthy = true,
                            None => in_flight += 1,
                        }
                    }
                    if unhealthy {
                        0
                    } else {
                        strategy_mp.saturating_sub(in_flight)
                    }
                }
                _ => strategy_mp,
            };
        }
        for (index, id) in destructive
            .iter()
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
        {
            // A replacement that cannot be placed leaves the old allocation running.
            if self.try_place(key, spec, &name, Some(id)) {
                self.stop_alloc(id, UPDATING, idx);
                place(self, *index, false, Some(id.clone()), false);
                changes += 1;
            }
        }
        // Replacements for failed (rescheduled), completed service and lost allocations.
        let mut occupied: BTreeSet<u64> = kept.iter().map(|o| o.index).collect();
        let blocked = dep
            .as_ref()
            .is_some_and(|d| d.status == "failed" || d.status == "paused");
        for (index, id, how) in &replace_now {
            if *index >= count
                || occupied.contains(index)
                || (*how == Replace::Update && blocked)
                || !self.try_place(key, spec, &name, Some(id))
            {
                continue;
            }
            let why = match how {
                Replace::Reschedule => Some(RESCHEDULED),
                Replace::Update => Some(UPDATING),
                Replace::Plain => None,
            };
            if let Some(why) = why
                && let Some(a) = self.allocs.get_mut(id)
            {
                a.desired_status = "stop".into();
                a.desired_description = why.into();
                a.modify_index = idx;
            }
            place(
                self,
                *index,
                false,
                Some(id.clone()),
                *how == Replace::Reschedule,
            );
            occupied.insert(*index);
            changes += 1;
        }
        // Missing names (new job, scale up, lost allocations).
        if !blocked {
            for index in 0..count {
                if !occupied.contains(&index) && self.try_place(key, spec, &name, None) {
                    place(self, index, false, None, false);
                    changes += 1;
                }
            }
        }
        let _ = canaries;
        changes
    }

    /// Computes what a plan of `new_spec` would do per group (`DesiredTGUpdates`)
    /// given the job's current allocations, and how many destructive and other
    /// placements it would attempt per group. In-place checks run in `ctx`. Does not
    /// change state.
    #[allow(clippy::type_complexity)]
    pub(crate) fn plan_updates(
        &self,
        key: &JobKey,
        new_spec: &Obj,
        spec_changed: bool,
        ctx: &mut SchedCtx,
    ) -> (
        BTreeMap<String, crate::plan_diff::DesiredUpdates>,
        Vec<(String, (u64, u64))>,
    ) {
        use crate::plan_diff::DesiredUpdates;
        let mut out = BTreeMap::new();
        let mut attempts = Vec::new();
        let job = self.jobs.get(key);
        let ci = job.map(|j| j.create_index).unwrap_or(0);
        let version = job.map(|j| j.version).unwrap_or(0);
        let jmi = job.map(|j| j.job_modify_index).unwrap_or(0);
        let stop = crate::canonical::b(new_spec, "Stop");
        let mut names: BTreeSet<String> = groups(new_spec)
            .filter_map(|g| s(g, "Name"))
            .map(str::to_string)
            .collect();
        if let Some(j) = job {
            names.extend(
                groups(&j.spec)
                    .filter_map(|g| s(g, "Name"))
                    .map(str::to_string),
            );
        }
        for name in names {
            let mut du = DesiredUpdates::default();
            let live: Vec<_> = if job.is_some() {
                self.live_group_allocs(key, ci, &name)
            } else {
                Vec::new()
            };
            let g = crate::canonical::group(new_spec, &name);
            match g {
                None => du.stop = live.len() as u64,
                Some(_) if stop => du.stop = live.len() as u64,
                Some(g) => {
                    let count = u(g, "Count").unwrap_or(0);
                    let mut by_index: Vec<_> = live.clone();
                    // A batch allocation that completed keeps its slot while the job is
                    // unchanged: ignored, never placed again.
                    let batch = matches!(s(new_spec, "Type"), Some("batch" | "sysbatch"));
                    if batch && !spec_changed && job.is_some() {
                        by_index.extend(
                            self.job_alloc_ids(key)
                                .iter()
                                .filter_map(|id| self.allocs.get(id).map(|a| &**a))
                                .filter(|a| {
                                    a.job_create_index == ci
                                        && a.task_group == name
                                        && a.desired_status == "run"
                                        && a.client_status == "complete"
                                        && a.job_version == version
                                }),
                        );
                    }
                    by_index.sort_by_key(|a| a.index);
                    let (keep, extra): (Vec<_>, Vec<_>) =
                        by_index.into_iter().partition(|a| a.index < count);
                    du.stop += extra.len() as u64;
                    let mut destructive = 0u64;
                    for a in &keep {
                        let same =
                            !spec_changed && a.job_version == version && a.job_modify_index == jmi;
                        if same {
                            du.ignore += 1;
                        } else if tasks_updated(&a.job, new_spec, &name)
                            || !ctx.fits_in_place(self, key, new_spec, &name, &a.id)
                        {
                            destructive += 1;
                        } else {
                            du.in_place_update += 1;
                        }
                    }
                    let up = o(g, "Update");
                    let mp = up.and_then(|u_| u(u_, "MaxParallel")).unwrap_or(0);
                    let canary = up.and_then(|u_| u(u_, "Canary")).unwrap_or(0);
                    if destructive > 0 && canary > 0 {
                        du.canary = canary;
                        du.ignore += destructive;
                    } else if destructive > 0 && mp > 0 {
                        du.destructive_update = destructive.min(mp);
                        du.ignore += destructive - du.destructive_update;
                    } else {
                        du.destructive_update = destructive;
                    }
                    du.place = count.saturating_sub(keep.len() as u64);
                    attempts.push((name.clone(), (du.destructive_update, du.place + du.canary)));
                }
            }
            out.insert(name, du);
        }
        (out, attempts)
    }
}

/// The background scheduler loop: runs due timers in deadline order. Exits when
/// the simulator is dropped.
pub(crate) async fn run(inner: Weak<crate::Inner>) {
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let wake = strong.wake.clone();
        let next: Option<Instant> = {
            let mut st = strong.lock_state();
            let now = Instant::now();
            let mut n = 0;
            while n < BATCH {
                match st.timers.peek() {
                    Some(Reverse((at, _, _))) if *at <= now => {}
                    _ => break,
                }
                if let Some(Reverse((_, _, timer))) = st.timers.pop() {
                    st.run_timer(timer);
                }
                n += 1;
            }
            if n >= BATCH {
                Some(now)
            } else {
                st.timers.peek().map(|Reverse((at, _, _))| *at)
            }
        };
        drop(strong);
        let cap = Instant::now() + Duration::from_secs(1);
        match next {
            Some(at) if at <= Instant::now() => tokio::task::yield_now().await,
            Some(at) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(at.min(cap).into()) => {}
                    _ = wake.notified() => {}
                }
            }
            None => {
                tokio::select! {
                    _ = tokio::time::sleep_until(cap.into()) => {}
                    _ = wake.notified() => {}
                }
            }
        }
    }
}
