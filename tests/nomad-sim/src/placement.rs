//! Whether an allocation can be placed on the simulated node, decided like Nomad 1.1's
//! scheduler: the job's datacenters, then job constraints, then group and task
//! constraints (each cached per evaluation by computed node class, as Nomad's
//! eligibility tracking does), `distinct_hosts`, `distinct_property`, and the group's
//! CPU, memory and disk against the node's totals. A failure is reported as Nomad's
//! `AllocationMetric`, coalesced per group (`CoalescedFailures`).
//!
//! Resources are not accounted cumulatively: an allocation fits when its group alone
//! fits the node, however many others run (the simulator runs 10,000 jobs on one node).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::canonical::{Obj, group, o, s, tasks, u};
use crate::constraints::{Constraint, check, constraints_of};
use crate::state::{JobKey, State};

/// The simulated client node's capacity. The defaults are a dev agent on a large
/// machine; a task group asking more than the node has in total cannot be placed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeConfig {
    /// CPU of the node in MHz (`cpu.totalcompute`), default 40000.
    pub cpu_mhz: u64,
    /// Memory of the node in MB, default 65536.
    pub memory_mb: u64,
    /// Disk of the node in MB (for ephemeral disks), default 204800.
    pub disk_mb: u64,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            cpu_mhz: 40_000,
            memory_mb: 65_536,
            disk_mb: 204_800,
        }
    }
}

/// The simulated client node every allocation runs on.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub id: String,
    pub name: String,
    pub datacenter: String,
    /// The computed node class (`v1:<hash>`), the key of `ClassEligibility`.
    pub class: String,
    pub capacity: NodeConfig,
    pub attributes: BTreeMap<String, String>,
    pub meta: BTreeMap<String, String>,
}

impl Node {
    /// A `dc1` node with `capacity`, running Nomad `version`, with the attributes a
    /// Linux dev agent fingerprints (`kernel.name = linux`, the usual drivers).
    pub(crate) fn new(capacity: NodeConfig, version: &str) -> Self {
        let id = crate::util::new_uuid();
        let name = format!("sim-node-{}", &id[..8]);
        let attributes: BTreeMap<String, String> = [
            ("cpu.arch", "amd64".to_string()),
            ("cpu.frequency", "2500".into()),
            ("cpu.modelname", "Simulated CPU".into()),
            ("cpu.numcores", (capacity.cpu_mhz / 2500).max(1).to_string()),
            ("cpu.totalcompute", capacity.cpu_mhz.to_string()),
            ("driver.docker", "1".into()),
            ("driver.exec", "1".into()),
            ("driver.raw_exec", "1".into()),
            ("kernel.name", "linux".into()),
            ("kernel.version", "5.15.0".into()),
            (
                "memory.totalbytes",
                (capacity.memory_mb * 1024 * 1024).to_string(),
            ),
            ("nomad.advertise.address", "127.0.0.1:4646".into()),
            ("nomad.version", version.to_string()),
            ("os.name", "ubuntu".into()),
            ("os.version", "22.04".into()),
            ("unique.hostname", name.clone()),
            ("unique.network.ip-address", "127.0.0.1".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let meta = [
            (
                "connect.gateway_image",
                "envoyproxy/envoy:v${NOMAD_envoy_version}",
            ),
            ("connect.log_level", "info"),
            ("connect.proxy_concurrency", "1"),
            (
                "connect.sidecar_image",
                "envoyproxy/envoy:v${NOMAD_envoy_version}",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        // Like Nomad's class hash: the same for nodes that schedule alike.
        let class = format!(
            "v1:{}",
            fnv1a(&format!(
                "dc1/{}/{}/{}",
                capacity.cpu_mhz, capacity.memory_mb, capacity.disk_mb
            ))
        );
        Self {
            id,
            name,
            datacenter: "dc1".into(),
            class,
            capacity,
            attributes,
            meta,
        }
    }

    /// `resolveTarget`: a literal, or `${node.*}`, `${attr.*}`, `${meta.*}` of this node.
    fn resolve<'a>(&'a self, target: &'a str) -> Option<&'a str> {
        let Some(inner) = target.strip_prefix("${") else {
            return Some(target);
        };
        let inner = inner.strip_suffix('}').unwrap_or(inner);
        match inner {
            "node.unique.id" => Some(&self.id),
            "node.datacenter" => Some(&self.datacenter),
            "node.unique.name" => Some(&self.name),
            "node.class" => Some(""),
            _ => {
                if let Some(a) = inner.strip_prefix("attr.") {
                    self.attributes.get(a).map(String::as_str)
                } else if let Some(m) = inner.strip_prefix("meta.") {
                    self.meta.get(m).map(String::as_str)
                } else {
                    None
                }
            }
        }
    }
}

fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Resources one task asked for that did not fit (`AllocationMetric.ResourcesExhausted`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Exhausted {
    cpu: u64,
    memory_mb: u64,
}

/// Why a task group could not be placed (`structs.AllocMetric`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Metric {
    nodes_evaluated: u64,
    nodes_filtered: u64,
    nodes_available: BTreeMap<String, u64>,
    constraint_filtered: BTreeMap<String, u64>,
    nodes_exhausted: u64,
    dimension_exhausted: BTreeMap<String, u64>,
    resources_exhausted: BTreeMap<String, Exhausted>,
    coalesced_failures: u64,
}

/// The time the simulated scheduler reports for a placement attempt (ns).
const ALLOCATION_TIME_NS: u64 = 40_000;

impl Metric {
    fn filter(mut self, reason: String) -> Self {
        self.nodes_filtered += 1;
        *self.constraint_filtered.entry(reason).or_default() += 1;
        self
    }

    fn exhaust_node(mut self, dimension: &str) -> Self {
        self.nodes_exhausted += 1;
        *self
            .dimension_exhausted
            .entry(dimension.to_string())
            .or_default() += 1;
        self
    }

    /// `AllocMetric.ExhaustResources`: adds what each task asked in the exhausted
    /// dimensions (once per failed allocation, so coalesced failures add up).
    fn exhaust_resources(&mut self, g: &Obj) {
        if self.dimension_exhausted.is_empty() {
            return;
        }
        let (cpu, mem) = (
            self.dimension_exhausted.contains_key("cpu"),
            self.dimension_exhausted.contains_key("memory"),
        );
        for t in tasks(g) {
            let res = o(t, "Resources");
            let e = self
                .resources_exhausted
                .entry(s(t, "Name").unwrap_or_default().to_string())
                .or_default();
            if mem {
                e.memory_mb += res.and_then(|r| u(r, "MemoryMB")).unwrap_or(0);
            }
            if cpu {
                e.cpu += res.and_then(|r| u(r, "CPU")).unwrap_or(0);
            }
        }
    }

    /// How many allocations failed alike.
    pub(crate) fn failures(&self) -> u64 {
        self.coalesced_failures + 1
    }

    /// `AllocationMetric` JSON, as plans and evaluations carry it.
    pub(crate) fn to_json(&self) -> Value {
        fn map_or_null(m: &BTreeMap<String, u64>) -> Value {
            if m.is_empty() { Value::Null } else { json!(m) }
        }
        let exhausted = if self.resources_exhausted.is_empty() {
            Value::Null
        } else {
            self.resources_exhausted
                .iter()
                .map(|(t, e)| {
                    (
                        t.clone(),
                        json!({"CPU": e.cpu, "Cores": 0, "Devices": null, "DiskMB": 0,
                               "IOPS": 0, "MemoryMB": e.memory_mb, "MemoryMaxMB": 0,
                               "Networks": null}),
                    )
                })
                .collect::<serde_json::Map<String, Value>>()
                .into()
        };
        json!({
            "NodesEvaluated": self.nodes_evaluated, "NodesFiltered": self.nodes_filtered,
            "NodesAvailable": self.nodes_available, "ClassFiltered": null,
            "ConstraintFiltered": map_or_null(&self.constraint_filtered),
            "NodesExhausted": self.nodes_exhausted, "ClassExhausted": null,
            "DimensionExhausted": map_or_null(&self.dimension_exhausted),
            "QuotaExhausted": null, "ResourcesExhausted": exhausted, "ScoreMetaData": null,
            "Scores": null, "AllocationTime": ALLOCATION_TIME_NS,
            "CoalescedFailures": self.coalesced_failures
        })
    }
}

/// The scheduler's view during one evaluation (or plan) of one job: failed placements
/// per group and what it learnt about the node's class.
#[derive(Debug, Default)]
pub(crate) struct SchedCtx {
    /// Nomad's `failedTGAllocs`: the first failure of each group, others coalesced.
    pub failed: BTreeMap<String, Metric>,
    /// Whether the job's constraints hold on the node's class (`None`: not checked).
    job_eligible: Option<bool>,
    /// The same for each group's and its tasks' constraints.
    group_eligible: BTreeMap<String, bool>,
    /// A constraint was reported by its text. Nomad caches that text inside the job's
    /// `Constraint` (`Constraint.String`), so the stored job no longer equals the same
    /// spec sent again: its next identical register is a new version.
    pub constraint_reported: bool,
    /// A plan's placements per group (they are not in the state).
    proposed: Option<BTreeMap<String, u64>>,
}

impl SchedCtx {
    /// The context of a plan: its placements are counted here, not in the state.
    pub(crate) fn for_plan() -> Self {
        Self {
            proposed: Some(BTreeMap::new()),
            ..Self::default()
        }
    }

    /// One placement attempt of group `name` of `job` (Nomad's `computePlacements`):
    /// a group that failed already fails alike (coalesced) without a new selection.
    /// `replacing` is an allocation this one replaces (not counted as on the node).
    pub(crate) fn place(
        &mut self,
        st: &State,
        key: &JobKey,
        job: &Obj,
        name: &str,
        replacing: Option<&str>,
    ) -> bool {
        let Some(g) = group(job, name) else {
            return false;
        };
        if let Some(m) = self.failed.get_mut(name) {
            m.coalesced_failures += 1;
            m.exhaust_resources(g);
            return false;
        }
        match self.select(st, key, job, g, replacing) {
            Ok(()) => {
                if let Some(p) = &mut self.proposed {
                    *p.entry(name.to_string()).or_default() += 1;
                }
                true
            }
            Err(mut m) => {
                m.exhaust_resources(g);
                self.failed.insert(name.to_string(), *m);
                false
            }
        }
    }

    /// Whether allocation `alloc` can move to `job`'s group `name` in place (the
    /// in-place check of `genericAllocUpdateFn`): its node must be in the job's
    /// datacenters and still feasible. What the check learns about the class stays.
    pub(crate) fn fits_in_place(
        &mut self,
        st: &State,
        key: &JobKey,
        job: &Obj,
        name: &str,
        alloc: &str,
    ) -> bool {
        let Some(g) = group(job, name) else {
            return false;
        };
        datacenters(job).contains(&st.node.datacenter.as_str())
            && self.select(st, key, job, g, Some(alloc)).is_ok()
    }

    /// Nomad's `stack.Select` over the one node.
    fn select(
        &mut self,
        st: &State,
        key: &JobKey,
        job: &Obj,
        g: &Obj,
        replacing: Option<&str>,
    ) -> Result<(), Box<Metric>> {
        let node = &st.node;
        let name = s(g, "Name").unwrap_or_default();
        let mut m = Metric::default();
        let dcs = datacenters(job);
        for dc in &dcs {
            m.nodes_available
                .insert(dc.to_string(), u64::from(*dc == node.datacenter));
        }
        if !dcs.contains(&node.datacenter.as_str()) {
            return Err(Box::new(m));
        }
        m.nodes_evaluated = 1;
        let job_cons = constraints_of(job);
        let group_cons = group_constraints(g);
        if let Err(reason) = self.class_check(st, &job_cons, None) {
            return Err(Box::new(m.filter(reason)));
        }
        if let Err(reason) = self.class_check(st, &group_cons, Some(name)) {
            return Err(Box::new(m.filter(reason)));
        }
        let job_distinct = job_cons.iter().any(|c| c.op == "distinct_hosts");
        let group_distinct = constraints_of(g).iter().any(|c| c.op == "distinct_hosts");
        if (job_distinct || group_distinct)
            && self.on_node(st, key, name, replacing, !job_distinct, true) > 0
        {
            return Err(Box::new(m.filter("distinct_hosts".into())));
        }
        let mut props: Vec<(Constraint<'_>, bool)> = job_cons
            .iter()
            .filter(|c| c.op == "distinct_property")
            .map(|c| (*c, false))
            .collect();
        props.extend(
            constraints_of(g)
                .into_iter()
                .filter(|c| c.op == "distinct_property")
                .map(|c| (c, true)),
        );
        for (c, grouped) in props {
            let Some(value) = node.resolve(c.l) else {
                return Err(Box::new(m.filter(format!("missing property {:?}", c.l))));
            };
            let limit = c.r.parse::<u64>().unwrap_or(1);
            let used = self.on_node(st, key, name, replacing, grouped, false);
            if used >= limit {
                return Err(Box::new(m.filter(format!(
                    "distinct_property: {}={value} used by {used} allocs",
                    c.l
                ))));
            }
        }
        let sum = |k: &str| {
            tasks(g)
                .map(|t| o(t, "Resources").and_then(|r| u(r, k)).unwrap_or(0))
                .sum::<u64>()
        };
        let disk = o(g, "EphemeralDisk")
            .and_then(|d| u(d, "SizeMB"))
            .unwrap_or(0);
        let cap = &node.capacity;
        if sum("CPU") > cap.cpu_mhz {
            return Err(Box::new(m.exhaust_node("cpu")));
        }
        if sum("MemoryMB") > cap.memory_mb {
            return Err(Box::new(m.exhaust_node("memory")));
        }
        if disk > cap.disk_mb {
            return Err(Box::new(m.exhaust_node("disk")));
        }
        Ok(())
    }

    /// The constraints of the job (`group` None) or of a group and its tasks, against
    /// the node: at most once per evaluation unless a constraint escapes the class;
    /// the reason a failing one is reported under.
    fn class_check(
        &mut self,
        st: &State,
        cons: &[Constraint<'_>],
        group: Option<&str>,
    ) -> Result<(), String> {
        let escaped = cons.iter().any(Constraint::escapes);
        let known = match group {
            None => self.job_eligible,
            Some(g) => self.group_eligible.get(g).copied(),
        };
        match known {
            Some(false) if !escaped => return Err("computed class ineligible".into()),
            Some(true) if !escaped => return Ok(()),
            _ => {}
        }
        let failing = cons
            .iter()
            .filter(|c| !c.is_distinct())
            .find(|c| !check(c.op, st.node.resolve(c.l), st.node.resolve(c.r)));
        if !escaped {
            let ok = failing.is_none();
            match group {
                None => self.job_eligible = Some(ok),
                Some(g) => {
                    self.group_eligible.insert(g.to_string(), ok);
                }
            }
        }
        match failing {
            Some(c) => {
                self.constraint_reported = true;
                Err(c.text())
            }
            None => Ok(()),
        }
    }

    /// Allocations of the job on the node that are not terminal (and of `group` when
    /// `same_group`), `replacing` left out, plus the plan's. `distinct_hosts` compares
    /// job IDs only, so `any_namespace` counts same-named jobs of every namespace.
    fn on_node(
        &self,
        st: &State,
        key: &JobKey,
        group: &str,
        replacing: Option<&str>,
        same_group: bool,
        any_namespace: bool,
    ) -> u64 {
        let keys: Vec<JobKey> = if any_namespace {
            st.namespaces
                .keys()
                .map(|ns| (ns.clone(), key.1.clone()))
                .collect()
        } else {
            vec![key.clone()]
        };
        let live = keys
            .iter()
            .flat_map(|k| st.job_alloc_ids(k))
            .filter_map(|id| st.allocs.get(id))
            .filter(|a| {
                !a.terminal()
                    && Some(a.id.as_str()) != replacing
                    && (!same_group || a.task_group == group)
            })
            .count() as u64;
        let planned = self.proposed.as_ref().map_or(0, |p| {
            p.iter()
                .filter(|(g, _)| !same_group || g.as_str() == group)
                .map(|(_, n)| n)
                .sum()
        });
        live + planned
    }

    /// `ClassEligibility` of the blocked evaluation (`EvalEligibility.GetClasses`):
    /// eligible when the job and any group checked passed; empty when nothing was
    /// checked or a constraint of the job escapes the class.
    pub(crate) fn class_eligibility(&self, st: &State, job: &Obj) -> BTreeMap<String, bool> {
        let mut out = BTreeMap::new();
        if escapes(job) {
            return out;
        }
        let groups: Vec<bool> = self.group_eligible.values().copied().collect();
        let eligible = match self.job_eligible {
            Some(false) => Some(false),
            job => {
                if groups.iter().any(|e| *e) {
                    Some(true)
                } else if !groups.is_empty() {
                    Some(false)
                } else {
                    job
                }
            }
        };
        if let Some(e) = eligible {
            out.insert(st.node.class.clone(), e);
        }
        out
    }

    /// `FailedTGAllocs` JSON, or `null` when everything was placed.
    pub(crate) fn failed_json(&self) -> Value {
        if self.failed.is_empty() {
            return Value::Null;
        }
        self.failed
            .iter()
            .map(|(g, m)| (g.clone(), m.to_json()))
            .collect::<serde_json::Map<String, Value>>()
            .into()
    }
}

/// Whether any constraint of the job, its groups or tasks escapes the computed class
/// (`EscapedComputedClass`).
pub(crate) fn escapes(job: &Obj) -> bool {
    constraints_of(job).iter().any(Constraint::escapes)
        || crate::canonical::groups(job)
            .any(|g| group_constraints(g).iter().any(Constraint::escapes))
}

/// A group's constraints followed by those of its tasks (`taskGroupConstraints`).
fn group_constraints(g: &Obj) -> Vec<Constraint<'_>> {
    let mut out = constraints_of(g);
    for t in tasks(g) {
        out.extend(constraints_of(t));
    }
    out
}

fn datacenters(job: &Obj) -> Vec<&str> {
    job.get("Datacenters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

impl State {
    /// A placement attempt in this evaluation's context (see [`SchedCtx::place`]).
    pub(crate) fn try_place(
        &mut self,
        key: &JobKey,
        job: &Obj,
        name: &str,
        replacing: Option<&str>,
    ) -> bool {
        let mut ctx = std::mem::take(&mut self.sched);
        let ok = ctx.place(self, key, job, name, replacing);
        self.sched = ctx;
        ok
    }

    /// An in-place check in this evaluation's context (see [`SchedCtx::fits_in_place`]).
    pub(crate) fn fits_in_place(
        &mut self,
        key: &JobKey,
        job: &Obj,
        name: &str,
        alloc: &str,
    ) -> bool {
        let mut ctx = std::mem::take(&mut self.sched);
        let ok = ctx.fits_in_place(self, key, job, name, alloc);
        self.sched = ctx;
        ok
    }

    /// Whether an evaluation of the job may fail to place something: a group with a
    /// count that the node cannot take now, or whose fit depends on what runs there.
    pub(crate) fn may_fail_placement(&self, key: &JobKey) -> bool {
        let Some(j) = self.jobs.get(key) else {
            return false;
        };
        if j.stopped() || j.is_parent() {
            return false;
        }
        let distinct = |m: &Obj| constraints_of(m).iter().any(Constraint::is_distinct);
        crate::canonical::groups(&j.spec).any(|g| {
            u(g, "Count").unwrap_or(0) > 0
                && (distinct(&j.spec)
                    || distinct(g)
                    || SchedCtx::default()
                        .select(self, key, &j.spec, g, None)
                        .is_err())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_resolve_on_the_node() {
        let n = Node::new(NodeConfig::default(), "1.1.2");
        assert_eq!(n.resolve("${attr.kernel.name}"), Some("linux"));
        assert_eq!(n.resolve("${node.datacenter}"), Some("dc1"));
        assert_eq!(n.resolve("${node.unique.name}"), Some(n.name.as_str()));
        assert_eq!(n.resolve("${node.class}"), Some(""));
        assert_eq!(n.resolve("${meta.connect.log_level}"), Some("info"));
        assert_eq!(n.resolve("${attr.nope}"), None);
        assert_eq!(n.resolve("${nope}"), None);
        assert_eq!(n.resolve("windows"), Some("windows"));
        assert!(n.class.starts_with("v1:"));
    }

    #[test]
    fn metric_json() {
        let mut m = Metric::default().exhaust_node("memory");
        m.nodes_evaluated = 1;
        m.nodes_available.insert("dc1".into(), 1);
        let g = serde_json::json!({"Tasks": [
            {"Name": "t", "Resources": {"CPU": 100, "MemoryMB": 30}},
            {"Name": "u", "Resources": {"CPU": 50, "MemoryMB": 20}}
        ]});
        let g = g.as_object().expect("group");
        m.exhaust_resources(g);
        m.coalesced_failures += 1;
        m.exhaust_resources(g);
        let v = m.to_json();
        assert_eq!(v["DimensionExhausted"], serde_json::json!({"memory": 1}));
        assert_eq!(v["ResourcesExhausted"]["t"]["MemoryMB"], 60);
        assert_eq!(v["ResourcesExhausted"]["t"]["CPU"], 0);
        assert_eq!(v["ResourcesExhausted"]["u"]["MemoryMB"], 40);
        assert_eq!(v["CoalescedFailures"], 1);
        assert_eq!(v["ConstraintFiltered"], Value::Null);
        assert_eq!(m.failures(), 2);
    }
}
