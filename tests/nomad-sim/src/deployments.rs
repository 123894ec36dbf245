//! The deployment watcher: health accounting, progress deadlines, success
//! (marking the version stable), failure with Nomad's descriptions, auto-revert
//! to the newest stable version, promotion, pause and manual fail.

use crate::state::{State, Table, Timer};
use crate::util::now_ns;

/// `structs.DeploymentStatusDescription*` texts.
pub(crate) const DESC_RUNNING: &str = "Deployment is running";
pub(crate) const DESC_NEEDS_PROMOTION: &str = "Deployment is running but requires manual promotion";
pub(crate) const DESC_SUCCESSFUL: &str = "Deployment completed successfully";
pub(crate) const DESC_PAUSED: &str = "Deployment is paused";
pub(crate) const DESC_FAILED_ALLOCS: &str = "Failed due to unhealthy allocations";
pub(crate) const DESC_PROGRESS_DEADLINE: &str = "Failed due to progress deadline";
pub(crate) const DESC_FAILED_BY_USER: &str = "Deployment marked as failed";

/// How long the deployment watcher gathers allocation health changes into one
/// evaluation (`perJobEvalBatchPeriod`, 1 s).
const EVAL_BATCH_NS: u64 = 1_000_000_000;

impl State {
    /// Recounts a deployment after an allocation's health changed, then does what
    /// Nomad's deployment watcher does: a healthy allocation gets an evaluation to move
    /// the rollout on; an unhealthy one in a group with a progress deadline is marked
    /// for rescheduling (`DesiredTransition.Reschedule`) with an evaluation too; without
    /// a progress deadline it fails the deployment (one evaluation, of the failure).
    pub(crate) fn deployment_alloc_health_changed(
        &mut self,
        dep_id: &str,
        alloc_id: &str,
        idx: u64,
    ) {
        let Some(d) = self.deployments.get(dep_id) else {
            return;
        };
        let key = d.key();
        let healthy = self
            .allocs
            .get(alloc_id)
            .and_then(|a| a.health.as_ref())
            .and_then(|h| h.healthy)
            .unwrap_or(false);
        let group = self.allocs.get(alloc_id).map(|a| a.task_group.clone());
        let progress_deadline = group
            .and_then(|g| d.groups.get(&g))
            .map(|g| g.progress_deadline)
            .unwrap_or(0);
        // Whether the deployment is complete is the scheduler's call, on the evaluation
        // the watcher creates for a healthy allocation (which is written first).
        self.deployment_recount(dep_id, idx, false);
        let active = self.deployments.get(dep_id).is_some_and(|d| d.active());
        if healthy {
            // Batched like Nomad's watcher: one evaluation a batch period after the
            // first allocation of the batch turned healthy.
            if let Some(d) = self.deployments.get_mut(dep_id)
                && !d.eval_batch
            {
                d.eval_batch = true;
                let after = self.scaled(EVAL_BATCH_NS);
                self.schedule(
                    after,
                    Timer::WatcherEval {
                        deployment: dep_id.to_string(),
                    },
                );
            }
        } else if progress_deadline > 0 && active {
            let idx = self.bump();
            if let Some(a) = self.allocs.get_mut(alloc_id) {
                a.reschedule_transition = true;
                a.modify_index = idx;
            }
            self.touch(Table::Allocs, idx);
            self.create_watcher_eval(&key, dep_id, Some(idx));
        }
    }

    /// Timer: the watcher's batched evaluation for healthy allocations, unless the
    /// deployment is over by now (its watcher is gone then).
    pub(crate) fn watcher_eval_due(&mut self, dep_id: &str) {
        let Some(d) = self.deployments.get_mut(dep_id) else {
            return;
        };
        d.eval_batch = false;
        if d.active() {
            let key = d.key();
            self.create_watcher_eval(&key, dep_id, None);
        }
    }

    /// A pending evaluation by the deployment watcher (no job modify index), at `idx`
    /// or a new index.
    pub(crate) fn create_watcher_eval(
        &mut self,
        key: &crate::state::JobKey,
        dep_id: &str,
        idx: Option<u64>,
    ) {
        let idx = idx.unwrap_or_else(|| self.bump());
        let id = self.create_eval(key, "deployment-watcher", 0, idx, true);
        if let Some(e) = self.evals.get_mut(&id) {
            e.deployment_id = dep_id.to_string();
        }
        self.refresh_job(key, idx);
    }

    /// Recomputes counts and decides success / failure / promotion.
    pub(crate) fn deployment_check(&mut self, dep_id: &str, idx: u64) {
        self.deployment_recount(dep_id, idx, true);
    }

    /// Recomputes counts and decides failure / promotion, and success when
    /// `decide_success`: like Nomad's reconciler, only when every allocation the
    /// deployment placed that still runs is healthy (none was placed just now) and there
    /// are enough healthy ones.
    fn deployment_recount(&mut self, dep_id: &str, idx: u64, decide_success: bool) {
        let Some(d) = self.deployments.get(dep_id) else {
            return;
        };
        if !d.active() {
            return;
        }
        let key = d.key();
        let now = now_ns();
        let mut counts: std::collections::BTreeMap<String, (u64, u64, u64)> = Default::default();
        let mut all_live_healthy = true;
        for a in self
            .job_alloc_ids(&key)
            .iter()
            .filter_map(|id| self.allocs.get(id))
            .filter(|a| a.deployment_id == dep_id)
        {
            let e = counts.entry(a.task_group.clone()).or_default();
            let health = a.health.as_ref().and_then(|h| h.healthy);
            match health {
                Some(true) => e.1 += 1,
                Some(false) => e.2 += 1,
                None => {}
            }
            e.0 += 1;
            if !a.terminal() && health != Some(true) {
                all_live_healthy = false;
            }
        }
        let scale = self.time_scale;
        let mut deadline_timers = Vec::new();
        let mut changed = false;
        let Some(d) = self.deployments.get_mut(dep_id) else {
            return;
        };
        for (name, g) in d.groups.iter_mut() {
            let (placed, healthy, unhealthy) = counts.get(name).copied().unwrap_or_default();
            if healthy > g.healthy_allocs && g.progress_deadline > 0 {
                g.require_progress_by = now
                    + i64::try_from(crate::util::scaled(g.progress_deadline, scale).as_nanos())
                        .unwrap_or(i64::MAX);
                deadline_timers.push(g.progress_deadline);
            }
            if (placed, healthy, unhealthy)
                != (g.placed_allocs, g.healthy_allocs, g.unhealthy_allocs)
            {
                changed = true;
            }
            g.placed_allocs = g.placed_allocs.max(placed);
            g.healthy_allocs = healthy;
            g.unhealthy_allocs = unhealthy;
        }
        let fail_unhealthy = d
            .groups
            .values()
            .any(|g| g.unhealthy_allocs > 0 && g.progress_deadline == 0);
        let canary_groups: Vec<&crate::state::DeploymentGroup> = d
            .groups
            .values()
            .filter(|g| g.desired_canaries > 0 && !g.promoted)
            .collect();
        let canaries_ready = !canary_groups.is_empty()
            && canary_groups.iter().all(|g| {
                g.placed_canaries.len() as u64 >= g.desired_canaries
                    && g.healthy_allocs >= g.desired_canaries
            });
        let auto_promote = canaries_ready && canary_groups.iter().all(|g| g.auto_promote);
        if auto_promote {
            for g in d.groups.values_mut() {
                if g.desired_canaries > 0 {
                    g.promoted = true;
                }
            }
            d.status_description = DESC_RUNNING.into();
            changed = true;
        } else if canaries_ready
            && d.status == "running"
            && d.status_description != DESC_NEEDS_PROMOTION
        {
            d.status_description = DESC_NEEDS_PROMOTION.into();
            changed = true;
        }
        let success = decide_success
            && all_live_healthy
            && d.groups.values().all(|g| {
                g.healthy_allocs >= g.desired_total && (g.desired_canaries == 0 || g.promoted)
            });
        if changed {
            d.modify_index = idx;
        }
        let version = d.job_version;
        let id = d.id.clone();
        if changed {
            self.touch(Table::Deployments, idx);
        }
        for pd in deadline_timers {
            self.schedule(
                self.scaled(pd),
                Timer::ProgressDeadline {
                    deployment: id.clone(),
                },
            );
        }
        if fail_unhealthy {
            self.fail_deployment(dep_id, DESC_FAILED_ALLOCS, idx);
        } else if success
            // A stopped job's deployment is cancelled by the evaluation of the stop (at
            // once on a real agent): it never succeeds, which would make its version the
            // job again (marking a version stable writes it back as the job).
            && !self.jobs.get(&key).is_some_and(|j| j.stopped())
            && let Some(d) = self.deployments.get_mut(dep_id)
            && d.status == "running"
        {
            d.status = "successful".into();
            d.status_description = DESC_SUCCESSFUL.into();
            d.modify_index = idx;
            self.touch(Table::Deployments, idx);
            self.set_stable(&key, version, true, idx);
        }
    }

    /// Marks a job version (un)stable like Nomad 1.1's `updateJobStabilityImpl`: nothing
    /// when the flag is already so; otherwise a copy of that version with the flag is
    /// written back with its own version and job modify index, into the versions table
    /// (status recomputed, modify index `idx`) and into the jobs table, where it becomes
    /// the job even when it is not the current version. Returns false when the version
    /// does not exist.
    pub(crate) fn set_stable(
        &mut self,
        key: &crate::state::JobKey,
        version: u64,
        stable: bool,
        idx: u64,
    ) -> bool {
        let Some(j) = self.jobs.get(key) else {
            return false;
        };
        let Some(v) = j.versions.iter().find(|v| v.version == version) else {
            return false;
        };
        if v.stable == stable {
            return true;
        }
        let (spec, jmi, submit) = (v.spec.clone(), v.job_modify_index, v.submit_time);
        self.upsert_job(key, spec, stable, submit, Some((version, jmi)), idx);
        true
    }

    /// Timer: fail the deployment if no progress was made in time.
    pub(crate) fn progress_deadline(&mut self, dep_id: &str) {
        let Some(d) = self.deployments.get(dep_id) else {
            return;
        };
        if d.status != "running" {
            return;
        }
        let now = now_ns();
        let earliest = d
            .groups
            .values()
            .filter(|g| {
                g.progress_deadline > 0
                    && g.require_progress_by > 0
                    && !(g.healthy_allocs >= g.desired_total
                        && (g.desired_canaries == 0 || g.promoted))
            })
            .map(|g| g.require_progress_by)
            .min();
        match earliest {
            Some(by) if now >= by => {
                let key = d.key();
                let idx = self.bump();
                self.fail_deployment(dep_id, DESC_PROGRESS_DEADLINE, idx);
                self.refresh_job(&key, idx);
            }
            Some(by) => {
                // Fired a little early (wall clock vs monotonic timers): check again.
                let wait = std::time::Duration::from_nanos(u64::try_from(by - now).unwrap_or(0))
                    + std::time::Duration::from_millis(1);
                self.schedule(
                    wait,
                    Timer::ProgressDeadline {
                        deployment: dep_id.to_string(),
                    },
                );
            }
            None => {}
        }
    }

    /// Fails a deployment with `reason`, auto-reverting like Nomad's watcher when
    /// a group has `AutoRevert` (or when `force_revert`).
    pub(crate) fn fail_deployment(&mut self, dep_id: &str, reason: &str, idx: u64) {
        let Some(d) = self.deployments.get(dep_id) else {
            return;
        };
        if !d.active() {
            return;
        }
        let key = d.key();
        let auto_revert = d.groups.values().any(|g| g.auto_revert);
        let mut description = reason.to_string();
        let mut rollback = None;
        if auto_revert && let Some(j) = self.jobs.get(&key) {
            let stable = j.versions.iter().rev().find(|v| v.stable);
            match stable {
                Some(v) if *v.spec == *j.spec => {
                    description = format!(
                        "{reason} - not rolling back to stable job version {} as current job has same specification",
                        v.version
                    );
                }
                Some(v) => {
                    description = format!("{reason} - rolling back to job version {}", v.version);
                    rollback = Some(v.spec.clone());
                }
                None => {
                    description = format!("{reason} - no stable job version to auto revert to");
                }
            }
        }
        if let Some(d) = self.deployments.get_mut(dep_id) {
            d.status = "failed".into();
            d.status_description = description;
            d.modify_index = idx;
        }
        self.touch(Table::Deployments, idx);
        if let Some(spec) = rollback {
            // The newest stable version, written again as it is (`Stable` included) in
            // the same write as the failure.
            self.upsert_job(&key, spec, true, now_ns(), None, idx);
        }
        // The failure's evaluation, in that same write.
        self.create_watcher_eval(&key, dep_id, Some(idx));
    }

    /// `POST /v1/deployment/promote/:id`.
    pub(crate) fn promote_deployment(
        &mut self,
        dep_id: &str,
        all: bool,
        groups: &[String],
    ) -> Result<u64, String> {
        let Some(d) = self.deployments.get(dep_id) else {
            return Err(format!("deployment {dep_id:?} not found"));
        };
        if !d.active() {
            return Err(format!(
                "can't promote terminal deployment: status {:?}",
                d.status
            ));
        }
        if !d.groups.values().any(|g| g.desired_canaries > 0) {
            return Err("deployment has no canaries to promote".into());
        }
        for (name, g) in &d.groups {
            if (all || groups.contains(name))
                && g.desired_canaries > 0
                && g.healthy_allocs < g.desired_canaries
            {
                return Err(format!(
                    "Task group {name:?} has {}/{} healthy allocations",
                    g.healthy_allocs, g.desired_canaries
                ));
            }
        }
        let key = d.key();
        let idx = self.bump();
        if let Some(d) = self.deployments.get_mut(dep_id) {
            for (name, g) in d.groups.iter_mut() {
                if all || groups.contains(name) {
                    g.promoted = true;
                }
            }
            d.status_description = DESC_RUNNING.into();
            d.modify_index = idx;
        }
        self.touch(Table::Deployments, idx);
        self.deployment_check(dep_id, idx);
        self.create_watcher_eval(&key, dep_id, None);
        Ok(idx)
    }

    /// `POST /v1/deployment/pause/:id`.
    pub(crate) fn pause_deployment(&mut self, dep_id: &str, pause: bool) -> Result<u64, String> {
        let Some(d) = self.deployments.get(dep_id) else {
            return Err(format!("deployment {dep_id:?} not found"));
        };
        if !d.active() {
            return Err(format!(
                "can't pause terminal deployment: status {:?}",
                d.status
            ));
        }
        let key = d.key();
        let idx = self.bump();
        if let Some(d) = self.deployments.get_mut(dep_id) {
            d.status = if pause { "paused" } else { "running" }.into();
            d.status_description = if pause { DESC_PAUSED } else { DESC_RUNNING }.into();
            d.modify_index = idx;
        }
        self.touch(Table::Deployments, idx);
        if !pause {
            self.create_watcher_eval(&key, dep_id, None);
        }
        Ok(idx)
    }

    /// `POST /v1/deployment/fail/:id`.
    pub(crate) fn fail_deployment_by_user(&mut self, dep_id: &str) -> Result<u64, String> {
        let Some(d) = self.deployments.get(dep_id) else {
            return Err(format!("deployment {dep_id:?} not found"));
        };
        if !d.active() {
            return Err(format!(
                "can't fail terminal deployment: status {:?}",
                d.status
            ));
        }
        let key = d.key();
        let idx = self.bump();
        self.fail_deployment(dep_id, DESC_FAILED_BY_USER, idx);
        self.refresh_job(&key, idx);
        Ok(idx)
    }
}
