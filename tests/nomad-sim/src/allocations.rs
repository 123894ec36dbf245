//! Allocation lifecycle on the simulated client: placement, task start/exit,
//! restarts per the group's restart policy, health for deployments, kills, and
//! the control API's client-status override.

use std::sync::Arc;

use serde_json::Value;

use crate::canonical::{Obj, group, i, o, s, tasks, u};
use crate::state::{Alloc, AllocHealth, Behavior, JobKey, State, Table, TaskEvent, TaskSim, Timer};
use crate::util::{format_go_duration, new_uuid, now_ns};

const SEC: u64 = 1_000_000_000;
/// Simulated time from placement to task start (image pull, setup).
const START_DELAY_NS: u64 = SEC;
/// Simulated run time of a command that exits at once (`true`, `false`).
const QUICK_EXIT_NS: u64 = SEC / 10;
/// Simulated run time of an unknown batch command.
const BATCH_RUN_NS: u64 = SEC;
/// Simulated time a task takes to die after a kill.
const KILL_NS: u64 = SEC / 2;

/// What a task does when run, from its driver config: `false` exits 1, `true`
/// exits 0, `sleep N` exits 0 after N seconds, `sh -c "exit N"` exits N; other
/// service commands run forever and other batch commands finish after 1s.
pub(crate) fn behavior_for(task: &Obj, job_type: &str) -> Behavior {
    let cfg = o(task, "Config");
    let command = cfg.and_then(|c| s(c, "command")).unwrap_or_default();
    let base = command.rsplit('/').next().unwrap_or_default();
    let args: Vec<String> = cfg
        .and_then(|c| c.get("args"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|a| match a {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect();
    let batch = matches!(job_type, "batch" | "sysbatch");
    let default = if batch {
        Behavior {
            exit_after_ns: Some(BATCH_RUN_NS),
            exit_code: 0,
        }
    } else {
        Behavior::default()
    };
    match base {
        "false" => Behavior {
            exit_after_ns: Some(QUICK_EXIT_NS),
            exit_code: 1,
        },
        "true" => Behavior {
            exit_after_ns: Some(QUICK_EXIT_NS),
            exit_code: 0,
        },
        "sleep" => match args
            .first()
            .and_then(|a| crate::util::parse_go_duration(a, true))
        {
            Some(ns) => Behavior {
                exit_after_ns: Some(ns),
                exit_code: 0,
            },
            None => default,
        },
        "sh" | "bash" => {
            let script = args.iter().skip_while(|a| *a != "-c").nth(1);
            match script.and_then(|sc| sc.trim().strip_prefix("exit ")) {
                Some(code) => Behavior {
                    exit_after_ns: Some(QUICK_EXIT_NS),
                    exit_code: code.trim().parse().unwrap_or(1),
                },
                None => default,
            }
        }
        _ => default,
    }
}

/// Parameters of a placement.
pub(crate) struct Placement<'a> {
    pub key: &'a JobKey,
    pub group: &'a str,
    pub index: u64,
    pub spec: &'a Arc<Obj>,
    pub version: u64,
    pub job_create_index: u64,
    pub job_modify_index: u64,
    pub eval_id: &'a str,
    pub deployment_id: Option<&'a str>,
    pub canary: bool,
    pub previous: Option<String>,
    /// A reschedule of `previous` (which then counts in the reschedule tracker).
    pub rescheduled: bool,
}

fn update_strategy_ns(job: &Obj, group_name: &str, k: &str) -> u64 {
    group(job, group_name)
        .and_then(|g| o(g, "Update"))
        .and_then(|up| u(up, k))
        .unwrap_or(0)
}

impl State {
    /// Places a new allocation; returns its ID.
    pub(crate) fn place_alloc(&mut self, p: Placement<'_>, idx: u64) -> String {
        let id = new_uuid();
        let now = now_ns();
        let job_type = s(p.spec, "Type").unwrap_or("service").to_string();
        let mut task_map = std::collections::BTreeMap::new();
        let g = group(p.spec, p.group);
        for t in g.into_iter().flat_map(tasks) {
            let name = s(t, "Name").unwrap_or_default().to_string();
            task_map.insert(
                name.clone(),
                TaskSim {
                    state: "pending".into(),
                    failed: false,
                    restarts: 0,
                    last_restart: 0,
                    started_at: 0,
                    finished_at: 0,
                    events: vec![TaskEvent::new("Received", "Task received by client")],
                    behavior: behavior_for(t, &job_type),
                    gn: 1,
                },
            );
        }
        let start = self.scaled(START_DELAY_NS);
        for name in task_map.keys() {
            self.schedule(
                start,
                Timer::TaskStart {
                    alloc: id.clone(),
                    task: name.clone(),
                    gn: 1,
                },
            );
        }
        let mut reschedule_times = Vec::new();
        if let Some(prev) = p.previous.as_ref().and_then(|pid| self.allocs.get(pid))
            && p.rescheduled
        {
            reschedule_times = prev.reschedule_times.clone();
            reschedule_times.push(now);
        }
        let alloc = Alloc {
            id: id.clone(),
            eval_id: p.eval_id.to_string(),
            name: format!("{}.{}[{}]", p.key.1, p.group, p.index),
            index: p.index,
            namespace: p.key.0.clone(),
            job_id: p.key.1.clone(),
            task_group: p.group.to_string(),
            job: p.spec.clone(),
            job_snap: self.job_snap(p.key),
            job_version: p.version,
            job_create_index: p.job_create_index,
            job_modify_index: p.job_modify_index,
            desired_status: "run".into(),
            desired_description: String::new(),
            client_status: "pending".into(),
            client_description: String::new(),
            tasks: task_map,
            deployment_id: p.deployment_id.unwrap_or_default().to_string(),
            health: None,
            canary: p.canary,
            previous_allocation: p.previous.clone().unwrap_or_default(),
            next_allocation: String::new(),
            reschedule_times,
            reschedule_transition: false,
            reschedule_at: None,
            health_gen: 1,
            deploy_epoch: 1,
            create_index: idx,
            modify_index: idx,
            alloc_modify_index: idx,
            create_time: now,
            modify_time: now,
        };
        if let Some(dep) = p.deployment_id {
            let hd = update_strategy_ns(p.spec, p.group, "HealthyDeadline");
            self.schedule(
                self.scaled(START_DELAY_NS + hd),
                Timer::HealthyDeadline {
                    alloc: id.clone(),
                    gn: 1,
                },
            );
            if let Some(d) = self.deployments.get_mut(dep)
                && let Some(dg) = d.groups.get_mut(p.group)
            {
                dg.placed_allocs += 1;
                if p.canary {
                    dg.placed_canaries.push(id.clone());
                }
                d.modify_index = idx;
                self.touch(Table::Deployments, idx);
            }
        }
        if let Some(prev) = p.previous.as_ref().and_then(|pid| self.allocs.get_mut(pid)) {
            prev.next_allocation = id.clone();
            prev.modify_index = idx;
        }
        // A placed allocation is no longer queued (Nomad's summary upkeep).
        if let Some(q) = self
            .jobs
            .get_mut(p.key)
            .and_then(|j| j.queued.get_mut(p.group))
        {
            *q = q.saturating_sub(1);
        }
        self.allocs.insert(id.clone(), alloc.into());
        self.allocs_by_job
            .entry(p.key.clone())
            .or_default()
            .push(id.clone());
        self.touch(Table::Allocs, idx);
        id
    }

    /// Moves an allocation to a new job version without replacing it.
    pub(crate) fn inplace_update(
        &mut self,
        alloc_id: &str,
        spec: &Arc<Obj>,
        (version, jmi): (u64, u64),
        eval_id: &str,
        deployment_id: Option<&str>,
        idx: u64,
    ) {
        let scale_hd;
        let schedule_healthy;
        let snap = match self.allocs.get(alloc_id) {
            Some(a) => self.job_snap(&a.key()),
            None => return,
        };
        {
            let Some(a) = self.allocs.get_mut(alloc_id) else {
                return;
            };
            a.job = spec.clone();
            a.job_snap = snap;
            a.eval_id = eval_id.to_string();
            a.job_version = version;
            a.job_modify_index = jmi;
            a.modify_index = idx;
            a.alloc_modify_index = idx;
            a.modify_time = now_ns();
            if deployment_id.is_none() {
                self.touch(Table::Allocs, idx);
                return;
            }
            a.deployment_id = deployment_id.unwrap_or_default().to_string();
            a.health = None;
            a.health_gen += 1;
            a.deploy_epoch += 1;
            scale_hd = update_strategy_ns(spec, &a.task_group, "HealthyDeadline");
            schedule_healthy = a.tasks.values().all(|t| t.state == "running").then(|| {
                (
                    update_strategy_ns(spec, &a.task_group, "MinHealthyTime"),
                    a.health_gen,
                )
            });
        }
        let group_name = self
            .allocs
            .get(alloc_id)
            .map(|a| (a.task_group.clone(), a.deploy_epoch));
        if let Some((gname, epoch)) = group_name {
            self.schedule(
                self.scaled(scale_hd),
                Timer::HealthyDeadline {
                    alloc: alloc_id.to_string(),
                    gn: epoch,
                },
            );
            if let Some((mht, gn)) = schedule_healthy {
                self.schedule(
                    self.scaled(mht),
                    Timer::Healthy {
                        alloc: alloc_id.to_string(),
                        gn,
                    },
                );
            }
            if let Some(dep) = deployment_id
                && let Some(d) = self.deployments.get_mut(dep)
                && let Some(dg) = d.groups.get_mut(&gname)
            {
                dg.placed_allocs += 1;
                d.modify_index = idx;
                self.touch(Table::Deployments, idx);
            }
        }
        self.touch(Table::Allocs, idx);
    }

    /// Asks the client to stop an allocation (desired status `stop`).
    pub(crate) fn stop_alloc(&mut self, alloc_id: &str, description: &str, idx: u64) {
        let kill = self.scaled(KILL_NS);
        let Some(a) = self.allocs.get_mut(alloc_id) else {
            return;
        };
        if a.desired_status == "stop" {
            return;
        }
        a.desired_status = "stop".into();
        a.desired_description = description.to_string();
        a.modify_index = idx;
        a.alloc_modify_index = idx;
        a.modify_time = now_ns();
        a.health_gen += 1;
        let mut any_live = false;
        let kill_timeouts: std::collections::BTreeMap<String, u64> =
            tasks(group(&a.job, &a.task_group).unwrap_or(&Obj::new()))
                .filter_map(|t| {
                    Some((
                        s(t, "Name")?.to_string(),
                        u(t, "KillTimeout").unwrap_or(5 * SEC),
                    ))
                })
                .collect();
        for (name, t) in a.tasks.iter_mut() {
            if t.state != "dead" {
                any_live = true;
                t.gn += 1;
                let timeout = kill_timeouts.get(name).copied().unwrap_or(5 * SEC);
                let shown = format_go_duration(timeout);
                let mut ev = TaskEvent::new(
                    "Killing",
                    &format!("Sent interrupt. Waiting {shown} before force killing"),
                )
                .detail("kill_timeout", &shown);
                ev.kill_timeout = i64::try_from(timeout).unwrap_or(0);
                t.events.push(ev);
            }
        }
        let gn = a.health_gen;
        if !any_live && !a.client_terminal() {
            a.client_status = "complete".into();
        }
        if any_live && !a.client_terminal() {
            self.schedule(
                kill,
                Timer::KillDone {
                    alloc: alloc_id.to_string(),
                    gn,
                },
            );
        }
        self.touch(Table::Allocs, idx);
    }

    fn derive_client_status(a: &Alloc) -> String {
        let (mut pending, mut running, mut dead, mut failed) = (false, false, false, false);
        for t in a.tasks.values() {
            match t.state.as_str() {
                "running" => running = true,
                "pending" => pending = true,
                _ if t.failed => failed = true,
                _ => dead = true,
            }
        }
        if failed {
            "failed"
        } else if running {
            "running"
        } else if pending {
            "pending"
        } else if dead {
            "complete"
        } else {
            "pending"
        }
        .to_string()
    }

    /// Handles a due timer. Returns the job to refresh (status/summary), if any.
    pub(crate) fn run_timer(&mut self, timer: Timer) {
        match timer {
            Timer::Eval(id) => self.process_eval(&id),
            Timer::TaskStart { alloc, task, gn } => self.task_start(&alloc, &task, gn),
            Timer::TaskExit { alloc, task, gn } => self.task_exit(&alloc, &task, gn),
            Timer::Healthy { alloc, gn } => self.alloc_healthy(&alloc, gn),
            Timer::HealthyDeadline { alloc, gn } => self.alloc_healthy_deadline(&alloc, gn),
            Timer::KillDone { alloc, gn } => self.kill_done(&alloc, gn),
            Timer::Reschedule { alloc } => {
                let Some(a) = self.allocs.get(&alloc) else {
                    return;
                };
                let key = a.key();
                let now = now_ns();
                if let Some(at) = a.reschedule_at
                    && at > now
                {
                    // Fired a little early (wall clock vs monotonic timers): check again.
                    let wait =
                        std::time::Duration::from_nanos(u64::try_from(at - now).unwrap_or(0))
                            + std::time::Duration::from_millis(1);
                    self.schedule(wait, Timer::Reschedule { alloc });
                    return;
                }
                self.run_watcher_eval(&key, "alloc-failure");
            }
            Timer::ProgressDeadline { deployment } => self.progress_deadline(&deployment),
            Timer::WatcherEval { deployment } => self.watcher_eval_due(&deployment),
        }
    }

    fn task_start(&mut self, alloc_id: &str, task: &str, gn: u64) {
        let Some(a) = self.allocs.get(alloc_id) else {
            return;
        };
        let Some(t) = a.tasks.get(task) else {
            return;
        };
        if t.gn != gn || t.state != "pending" || a.desired_status != "run" {
            return;
        }
        let idx = self.bump();
        let now = now_ns();
        let (exit_after, health_sched, key) = {
            let Some(a) = self.allocs.get_mut(alloc_id) else {
                return;
            };
            let mht = update_strategy_ns(&a.job, &a.task_group, "MinHealthyTime");
            let Some(t) = a.tasks.get_mut(task) else {
                return;
            };
            if !t.events.iter().any(|e| e.kind == "Task Setup") {
                t.events
                    .push(TaskEvent::new("Task Setup", "").message("Building Task Directory"));
            }
            t.events
                .push(TaskEvent::new("Started", "Task started by client"));
            t.state = "running".into();
            t.started_at = now;
            t.finished_at = 0;
            let exit_after = t.behavior.exit_after_ns.map(|ns| (ns, t.gn));
            a.client_status = Self::derive_client_status(a);
            a.modify_index = idx;
            a.modify_time = now;
            let all_running = a.tasks.values().all(|t| t.state == "running");
            let health_sched = (all_running && !a.deployment_id.is_empty() && a.health.is_none())
                .then_some((mht, a.health_gen));
            (exit_after, health_sched, a.key())
        };
        if let Some((ns, tgen)) = exit_after {
            self.schedule(
                self.scaled(ns),
                Timer::TaskExit {
                    alloc: alloc_id.to_string(),
                    task: task.to_string(),
                    gn: tgen,
                },
            );
        }
        if let Some((mht, hgen)) = health_sched {
            self.schedule(
                self.scaled(mht),
                Timer::Healthy {
                    alloc: alloc_id.to_string(),
                    gn: hgen,
                },
            );
        }
        self.touch(Table::Allocs, idx);
        self.refresh_job(&key, idx);
    }

    fn task_exit(&mut self, alloc_id: &str, task: &str, gn: u64) {
        let Some(a) = self.allocs.get(alloc_id) else {
            return;
        };
        let Some(t) = a.tasks.get(task) else {
            return;
        };
        if t.gn != gn || t.state != "running" {
            return;
        }
        let job_type = s(&a.job, "Type").unwrap_or("service").to_string();
        // The task's own policy (canonical jobs copy the group's into every task).
        let g = group(&a.job, &a.task_group);
        let policy = g
            .and_then(|g| tasks(g).find(|t| s(t, "Name") == Some(task)))
            .and_then(|t| o(t, "RestartPolicy"))
            .or_else(|| g.and_then(|g| o(g, "RestartPolicy")))
            .cloned()
            .unwrap_or_default();
        let idx = self.bump();
        let now = now_ns();
        let attempts = u(&policy, "Attempts").unwrap_or(0);
        let delay = u(&policy, "Delay").unwrap_or(15 * SEC);
        let interval = u(&policy, "Interval").unwrap_or(0);
        let mode = s(&policy, "Mode").unwrap_or("fail").to_string();
        let mut restart_after = None;
        let mut task_failed = false;
        let (key, became_terminal) = {
            let Some(a) = self.allocs.get_mut(alloc_id) else {
                return;
            };
            let was_terminal = a.client_terminal();
            a.health_gen += 1;
            let Some(t) = a.tasks.get_mut(task) else {
                return;
            };
            let code = t.behavior.exit_code;
            let mut ev = TaskEvent::new("Terminated", &format!("Exit Code: {code}"))
                .detail("exit_code", code)
                .detail("signal", 0)
                .detail("oom_killed", false);
            ev.exit_code = code;
            t.events.push(ev);
            t.gn += 1;
            if job_type == "batch" && code == 0 {
                t.state = "dead".into();
                t.finished_at = now;
            } else if mode == "delay" || t.restarts < attempts {
                t.restarts += 1;
                t.last_restart = now;
                t.state = "pending".into();
                let mut ev = TaskEvent::new(
                    "Restarting",
                    &format!("Task restarting in {}", format_go_duration(delay)),
                )
                .detail("restart_reason", "Restart within policy")
                .detail("start_delay", delay);
                ev.restart_reason = "Restart within policy".into();
                ev.start_delay = i64::try_from(delay).unwrap_or(0);
                t.events.push(ev);
                restart_after = Some(t.gn);
            } else {
                let reason = if attempts == 0 {
                    "Policy allows no restarts".to_string()
                } else {
                    format!(
                        "Exceeded allowed attempts {attempts} in interval {} and mode is \"fail\"",
                        format_go_duration(interval)
                    )
                };
                let mut ev = TaskEvent::new("Not Restarting", &reason)
                    .detail("fails_task", true)
                    .detail("restart_reason", &reason);
                ev.fails_task = true;
                ev.restart_reason = reason.clone();
                t.events.push(ev);
                t.state = "dead".into();
                t.failed = true;
                t.finished_at = now;
                task_failed = true;
            }
            if task_failed {
                for (name, other) in a.tasks.iter_mut() {
                    if name != task && other.state != "dead" {
                        other.gn += 1;
                        other.events.push(TaskEvent::new(
                            "Sibling Task Failed",
                            "Task's sibling failed",
                        ));
                        other.state = "dead".into();
                        other.finished_at = now;
                    }
                }
            }
            a.client_status = Self::derive_client_status(a);
            a.modify_index = idx;
            a.modify_time = now;
            (a.key(), !was_terminal && a.client_terminal())
        };
        if let Some(tgen) = restart_after {
            self.schedule(
                self.scaled(delay),
                Timer::TaskStart {
                    alloc: alloc_id.to_string(),
                    task: task.to_string(),
                    gn: tgen,
                },
            );
        }
        self.touch(Table::Allocs, idx);
        if task_failed {
            self.mark_unhealthy(alloc_id, idx, "Unhealthy because of failed task");
        }
        if became_terminal {
            self.alloc_became_terminal(alloc_id, idx);
        }
        self.refresh_job(&key, idx);
    }

    fn kill_done(&mut self, alloc_id: &str, gn: u64) {
        let Some(a) = self.allocs.get(alloc_id) else {
            return;
        };
        if a.health_gen != gn {
            return;
        }
        let idx = self.bump();
        let now = now_ns();
        let key = {
            let Some(a) = self.allocs.get_mut(alloc_id) else {
                return;
            };
            for t in a.tasks.values_mut() {
                if t.state != "dead" {
                    t.gn += 1;
                    if t.state == "running" {
                        // raw_exec's kill signal is SIGINT: the process exits 128 + 2.
                        let mut ev = TaskEvent::new("Terminated", "Exit Code: 130, Signal: 2")
                            .detail("exit_code", 130)
                            .detail("signal", 2)
                            .detail("oom_killed", false);
                        ev.exit_code = 130;
                        ev.signal = 2;
                        t.events.push(ev);
                    }
                    t.events
                        .push(TaskEvent::new("Killed", "Task successfully killed"));
                    t.state = "dead".into();
                    t.finished_at = now;
                }
            }
            if !a.client_terminal() {
                a.client_status = "complete".into();
            }
            a.modify_index = idx;
            a.modify_time = now;
            a.key()
        };
        self.touch(Table::Allocs, idx);
        self.refresh_job(&key, idx);
    }

    fn alloc_healthy(&mut self, alloc_id: &str, gn: u64) {
        let Some(a) = self.allocs.get(alloc_id) else {
            return;
        };
        if a.health_gen != gn
            || a.health.is_some()
            || a.deployment_id.is_empty()
            || a.desired_status != "run"
            || !a.tasks.values().all(|t| t.state == "running")
        {
            return;
        }
        let dep = a.deployment_id.clone();
        let idx = self.bump();
        if let Some(a) = self.allocs.get_mut(alloc_id) {
            a.health = Some(AllocHealth {
                healthy: Some(true),
                timestamp: now_ns(),
                canary: a.canary,
                modify_index: idx,
            });
            a.modify_index = idx;
        }
        self.touch(Table::Allocs, idx);
        self.deployment_alloc_health_changed(&dep, alloc_id, idx);
    }

    fn alloc_healthy_deadline(&mut self, alloc_id: &str, epoch: u64) {
        let Some(a) = self.allocs.get(alloc_id) else {
            return;
        };
        if a.deploy_epoch != epoch || a.health.is_some() || a.deployment_id.is_empty() {
            return;
        }
        let mht = update_strategy_ns(&a.job, &a.task_group, "MinHealthyTime");
        let idx = self.bump();
        let msg = format!(
            "Task not running for min_healthy_time of {} by deadline",
            format_go_duration(mht)
        );
        self.mark_unhealthy(alloc_id, idx, &msg);
    }

    /// Marks an allocation unhealthy for its deployment (once).
    pub(crate) fn mark_unhealthy(&mut self, alloc_id: &str, idx: u64, why: &str) {
        let Some(a) = self.allocs.get_mut(alloc_id) else {
            return;
        };
        if a.health.is_some() || a.deployment_id.is_empty() {
            return;
        }
        a.health = Some(AllocHealth {
            healthy: Some(false),
            timestamp: now_ns(),
            canary: a.canary,
            modify_index: idx,
        });
        for t in a.tasks.values_mut() {
            t.events
                .push(TaskEvent::new("Alloc Unhealthy", "").message(why));
        }
        a.modify_index = idx;
        let dep = a.deployment_id.clone();
        self.touch(Table::Allocs, idx);
        self.deployment_alloc_health_changed(&dep, alloc_id, idx);
    }

    /// A failed/complete/lost allocation: decide rescheduling and let the
    /// reconciler replace it where Nomad would.
    pub(crate) fn alloc_became_terminal(&mut self, alloc_id: &str, idx: u64) {
        let Some(a) = self.allocs.get(alloc_id) else {
            return;
        };
        let key = a.key();
        if a.client_status == "failed" && a.desired_status == "run" {
            let delay = self.reschedule_delay(a);
            if let Some(delay_ns) = delay {
                let at = now_ns() + self.scaled_ns(delay_ns);
                if let Some(a) = self.allocs.get_mut(alloc_id) {
                    a.reschedule_at = Some(at);
                }
                self.schedule(
                    self.scaled(delay_ns),
                    Timer::Reschedule {
                        alloc: alloc_id.to_string(),
                    },
                );
            }
            self.refresh_job(&key, idx);
            return;
        }
        self.run_watcher_eval(&key, "alloc-failure");
    }

    /// Delay before a failed allocation is rescheduled, `None` when it is not.
    fn reschedule_delay(&self, a: &Alloc) -> Option<u64> {
        let g = group(&a.job, &a.task_group)?;
        let policy = o(g, "ReschedulePolicy")?;
        if let Some(d) = self.deployments.get(&a.deployment_id)
            && d.active()
            && d.groups
                .get(&a.task_group)
                .is_some_and(|dg| dg.progress_deadline == 0)
        {
            return None;
        }
        let unlimited = crate::canonical::b(policy, "Unlimited");
        let attempts = i(policy, "Attempts").unwrap_or(0);
        let interval = i(policy, "Interval").unwrap_or(0);
        let now = now_ns();
        let recent = a
            .reschedule_times
            .iter()
            .filter(|t| interval == 0 || now - **t < self.scaled_ns(interval.max(0) as u64))
            .count() as i64;
        if !unlimited && recent >= attempts {
            return None;
        }
        let base = u(policy, "Delay").unwrap_or(30 * SEC);
        let max = u(policy, "MaxDelay").unwrap_or(0);
        let n = a.reschedule_times.len() as u32;
        let delay = match s(policy, "DelayFunction").unwrap_or("constant") {
            "exponential" => base.saturating_mul(2u64.saturating_pow(n)),
            "fibonacci" => {
                let (mut x, mut y) = (base, base);
                for _ in 0..n {
                    let z = x.saturating_add(y);
                    x = y;
                    y = z;
                }
                x
            }
            _ => base,
        };
        Some(if max > 0 { delay.min(max) } else { delay })
    }

    /// Control API: force an allocation's client status and its tasks' states.
    pub(crate) fn set_client_status(
        &mut self,
        alloc_id: &str,
        status: &str,
    ) -> Result<(), crate::SimError> {
        if !self.allocs.contains_key(alloc_id) {
            return Err(crate::SimError::AllocNotFound(alloc_id.to_string()));
        }
        if !matches!(
            status,
            "lost" | "failed" | "running" | "complete" | "pending"
        ) {
            return Err(crate::SimError::InvalidClientStatus(status.to_string()));
        }
        let idx = self.bump();
        let now = now_ns();
        let mut health_sched = None;
        let (key, became_terminal) = {
            let Some(a) = self.allocs.get_mut(alloc_id) else {
                return Err(crate::SimError::AllocNotFound(alloc_id.to_string()));
            };
            let was_terminal = a.client_terminal();
            a.health_gen += 1;
            for t in a.tasks.values_mut() {
                t.gn += 1;
                match status {
                    "failed" => {
                        if t.state != "dead" {
                            let mut ev =
                                TaskEvent::new("Terminated", "Exit Code: 1").detail("exit_code", 1);
                            ev.exit_code = 1;
                            t.events.push(ev);
                        }
                        t.state = "dead".into();
                        t.failed = true;
                        t.finished_at = now;
                    }
                    "complete" => {
                        if t.state != "dead" {
                            t.events.push(
                                TaskEvent::new("Terminated", "Exit Code: 0").detail("exit_code", 0),
                            );
                        }
                        t.state = "dead".into();
                        t.failed = false;
                        t.finished_at = now;
                    }
                    "running" => {
                        t.events
                            .push(TaskEvent::new("Started", "Task started by client"));
                        t.state = "running".into();
                        t.failed = false;
                        t.started_at = now;
                        t.finished_at = 0;
                        t.behavior.exit_after_ns = None;
                    }
                    "pending" => {
                        t.state = "pending".into();
                    }
                    _ => {}
                }
            }
            a.client_status = status.to_string();
            if status == "lost" {
                a.desired_status = "stop".into();
                a.desired_description = "alloc is lost since its node is down".into();
            }
            if status == "running" {
                a.reschedule_at = None;
                if a.health.is_none() && !a.deployment_id.is_empty() {
                    health_sched = Some((
                        update_strategy_ns(&a.job, &a.task_group, "MinHealthyTime"),
                        a.health_gen,
                    ));
                }
            }
            a.modify_index = idx;
            a.modify_time = now;
            (a.key(), !was_terminal && a.client_terminal())
        };
        self.touch(Table::Allocs, idx);
        if let Some((mht, gn)) = health_sched {
            self.schedule(
                self.scaled(mht),
                Timer::Healthy {
                    alloc: alloc_id.to_string(),
                    gn,
                },
            );
        }
        if status == "failed" || status == "lost" {
            self.mark_unhealthy(alloc_id, idx, "Unhealthy because of failed task");
        }
        if became_terminal {
            self.alloc_became_terminal(alloc_id, idx);
        }
        self.refresh_job(&key, idx);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn task(cmd: &str, args: Value) -> Obj {
        let Value::Object(m) =
            json!({"Name": "t", "Driver": "raw_exec", "Config": {"command": cmd, "args": args}})
        else {
            panic!()
        };
        m
    }

    #[test]
    fn behaviors() {
        assert_eq!(
            behavior_for(&task("/bin/false", json!(null)), "service").exit_code,
            1
        );
        assert_eq!(
            behavior_for(&task("/bin/sleep", json!(["1000"])), "service").exit_after_ns,
            Some(1000 * SEC)
        );
        assert_eq!(
            behavior_for(&task("/usr/bin/python", json!(null)), "service").exit_after_ns,
            None
        );
        assert_eq!(
            behavior_for(&task("/usr/bin/python", json!(null)), "batch").exit_after_ns,
            Some(SEC)
        );
        assert_eq!(
            behavior_for(&task("/bin/sh", json!(["-c", "exit 3"])), "batch").exit_code,
            3
        );
    }
}
