//! What the watches last saw of one Nomad cluster, per job: its list stub (with its
//! summary), its deployments and its allocations; and the last full view of the job a
//! reconcile read or wrote.
//!
//! A reconcile observes from here instead of reading Nomad, and the status is made from
//! it: the three watches already carry everything the status shows, so a converge needs
//! only the plan and the register (and a read when the mirror cannot vouch for the job).
//!
//! **When the mirror answers.** Only once every feed has answered once (before, a job
//! missing from the mirror may just not be listed yet), and for the job itself only when
//! it can tell its version and owner: a list stub carries neither, so the mirror holds
//! the view of the job last read or registered ([`Mirror::remember`]) and uses it while
//! the stub's `JobModifyIndex` and `CreateIndex` are the view's (someone else's register
//! moves them; then the job is read). A view newer than the stub is a write of this
//! operator the jobs feed has not listed yet, and it stands.
//!
//! **Deployments a cluster does not list** at once for every namespace (Nomad before
//! 1.2.4) are listed one namespace at a time, by a watch per Nomad namespace that has
//! jobs of `NomadJob`s ([`Mirror::apply_namespace_deployments`]). Until that watch has
//! answered, they are read per reconcile, and kept with what they were read against ([`Mirror::remember_deployments`]): once
//! every one is over, they stand while the job's spec and its allocations in the feed
//! stay as they were ([`Mirror::settled_deployments`]). A new deployment only comes
//! with a new spec or with allocations placed alongside it, which the feeds show.

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

use super::context::NomadJobKey;
use super::observe::{Details, JobView, Observed};
use crate::nomad::{AllocationListStub, ChangeEntry, ChangeFeed, Deployment, JobListStub};

/// The mirror of one cluster (see the module documentation).
#[derive(Debug, Default)]
pub struct Mirror {
    state: RwLock<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Per feed, the index of its last answer; absent before its first.
    indexes: HashMap<ChangeFeed, u64>,
    /// Whether the cluster lists every namespace's deployments at once: Nomad before
    /// 1.2.4 reads `namespace=*` there as a namespace of that name, so the deployments
    /// are not mirrored by the feed of all namespaces. `None` until known.
    deployments_listed: Option<bool>,
    /// Where the cluster does not list them at once: the namespaces whose deployments a
    /// watch of their own lists, each with the index of its last answer. The
    /// deployments of other namespaces are read per job.
    namespace_deployments: HashMap<String, u64>,
    jobs: HashMap<NomadJobKey, Entry>,
}

/// What is known of one job.
#[derive(Debug, Default)]
struct Entry {
    stub: Option<JobListStub>,
    // Boxed: a map node has room for eleven values, and a job has one or two.
    deployments: BTreeMap<String, Box<Deployment>>,
    allocations: BTreeMap<String, Box<AllocationListStub>>,
    view: Option<JobView>,
    /// The deployments last read, where the cluster does not list them.
    read_deployments: Option<ReadDeployments>,
}

impl Entry {
    fn is_empty(&self) -> bool {
        self.stub.is_none()
            && self.deployments.is_empty()
            && self.allocations.is_empty()
            && self.view.is_none()
            && self.read_deployments.is_none()
    }

    /// The job's allocations in the feed, each with the index of its last change.
    fn allocation_marks(&self) -> AllocationMarks {
        AllocationMarks(
            self.allocations
                .iter()
                .map(|(id, a)| (id.clone(), a.modify_index))
                .collect(),
        )
    }
}

/// A job's allocations as the feed listed them: each ID with its `ModifyIndex`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllocationMarks(Vec<(String, u64)>);

/// Deployments read from Nomad, and what they were read against.
#[derive(Debug)]
struct ReadDeployments {
    /// The job's `JobModifyIndex` and `CreateIndex` then.
    job_modify_index: u64,
    create_index: u64,
    /// The job's allocations in the feed just before the read.
    marks: AllocationMarks,
    deployments: Vec<Deployment>,
}

/// One item of a feed, decoded in full.
#[derive(Debug)]
pub enum Item {
    /// A job list stub, with its summary.
    Job(Box<JobListStub>),
    /// A deployment.
    Deployment(Box<Deployment>),
    /// An allocation list stub.
    Allocation(Box<AllocationListStub>),
}

impl Item {
    /// Decodes one item of `feed` from its JSON text.
    pub fn decode(feed: ChangeFeed, text: &str) -> Result<Self, serde_json::Error> {
        Ok(match feed {
            ChangeFeed::Jobs => Self::Job(serde_json::from_str(text)?),
            ChangeFeed::Deployments => Self::Deployment(serde_json::from_str(text)?),
            ChangeFeed::Allocations => Self::Allocation(serde_json::from_str(text)?),
        })
    }
}

/// The identity of a feed item: (its job, its own ID).
pub type ItemKey = (NomadJobKey, String);

/// The identity of a feed entry.
pub fn item_key(entry: &ChangeEntry) -> ItemKey {
    (
        (entry.namespace.clone(), entry.job().to_string()),
        entry.id.clone(),
    )
}

impl Mirror {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes in one answer of `feed` at `index`: `changed` items (new or modified) are
    /// stored (an allocation with only the task events the status shows), and
    /// `removed` ones (the previous answer listed them, this one does not) are dropped.
    pub fn apply(
        &self,
        feed: ChangeFeed,
        index: u64,
        changed: Vec<(ItemKey, Item)>,
        removed: &[ItemKey],
    ) {
        let mut state = self.write();
        state.store(feed, changed, removed);
        state.indexes.insert(feed, index);
    }

    /// Takes in one answer at `index` of the deployments of Nomad namespace `namespace`
    /// alone, as [`Mirror::apply`] does for a feed of every namespace; from then on the
    /// mirror vouches for the deployments of that namespace's jobs.
    pub fn apply_namespace_deployments(
        &self,
        namespace: &str,
        index: u64,
        changed: Vec<(ItemKey, Item)>,
        removed: &[ItemKey],
    ) {
        let mut state = self.write();
        state.store(ChangeFeed::Deployments, changed, removed);
        state
            .namespace_deployments
            .insert(namespace.to_string(), index);
    }

    /// Stops vouching for the deployments of `namespace` until its watch answers again
    /// (it failed, or stopped with the namespace's last job).
    pub fn mark_namespace_stale(&self, namespace: &str) {
        self.write().namespace_deployments.remove(namespace);
    }

    /// Records whether the deployments feed lists every namespace (see `State`).
    pub fn set_deployments_listed(&self, listed: bool) {
        self.write().deployments_listed = Some(listed);
    }

    /// Whether every feed the cluster has answered, so that the mirror vouches for jobs
    /// (until a watch fails).
    pub fn synced(&self) -> bool {
        self.read().synced().is_some()
    }

    /// Whether the deployments [`Mirror::observe`] gives of a job in Nomad namespace
    /// `namespace` are the mirrored ones; when not, they are empty and must be read.
    pub fn lists_deployments_of(&self, namespace: &str) -> bool {
        self.read().lists_deployments_of(namespace)
    }

    /// The index of the allocations feed's last answer: every allocation change up to
    /// it is mirrored. `None` before its first answer or while it is stale.
    pub fn allocations_index(&self) -> Option<u64> {
        self.read().indexes.get(&ChangeFeed::Allocations).copied()
    }

    /// Stops vouching for what `feed` said until its next answer: its watch failed, and
    /// changes may go unseen meanwhile (observes read Nomad instead). What it said is
    /// kept: the next answer decodes only the items that changed since.
    pub fn mark_stale(&self, feed: ChangeFeed) {
        self.write().indexes.remove(&feed);
    }

    /// Remembers `view` as the job `key` as last read or registered (`None`: the job
    /// does not exist, or its view must be read again).
    pub fn remember(&self, key: &NomadJobKey, view: Option<JobView>) {
        let mut state = self.write();
        match view {
            Some(view) => state.jobs.entry(key.clone()).or_default().view = Some(view),
            None => {
                if let Some(entry) = state.jobs.get_mut(key) {
                    entry.view = None;
                    entry.read_deployments = None;
                    if entry.is_empty() {
                        state.jobs.remove(key);
                    }
                }
            }
        }
    }

    /// The allocations of job `key` the feed lists now, to be passed to
    /// [`Mirror::remember_deployments`] with deployments read after this call; `None`
    /// while the allocations feed cannot vouch for them.
    pub fn allocation_marks(&self, key: &NomadJobKey) -> Option<AllocationMarks> {
        let state = self.read();
        state.indexes.get(&ChangeFeed::Allocations)?;
        Some(
            state
                .jobs
                .get(key)
                .map(Entry::allocation_marks)
                .unwrap_or_default(),
        )
    }

    /// Keeps `deployments` of `job` (`key`), read after the feed listed its allocations
    /// as `marks`.
    pub fn remember_deployments(
        &self,
        key: &NomadJobKey,
        job: &JobView,
        marks: AllocationMarks,
        deployments: &[Deployment],
    ) {
        self.write()
            .jobs
            .entry(key.clone())
            .or_default()
            .read_deployments = Some(ReadDeployments {
            job_modify_index: job.job_modify_index,
            create_index: job.create_index,
            marks,
            deployments: deployments.to_vec(),
        });
    }

    /// The deployments of `job` (`key`) last read, when they cannot have changed since:
    /// every one is over (none is active), the newest rolls out the job's version (or
    /// the job expects none), and the job's spec and its allocations in the feed are
    /// those they were read against. `None`: read them.
    pub fn settled_deployments(&self, key: &NomadJobKey, job: &JobView) -> Option<Vec<Deployment>> {
        let state = self.read();
        state.indexes.get(&ChangeFeed::Allocations)?;
        let entry = state.jobs.get(key)?;
        let read = entry.read_deployments.as_ref()?;
        let rolled_out = read
            .deployments
            .iter()
            .any(|d| d.job_version == job.version && d.job_create_index == job.create_index);
        let settled = read.job_modify_index == job.job_modify_index
            && read.create_index == job.create_index
            && read.deployments.iter().all(|d| !d.is_active())
            && (rolled_out || !job.expects_deployment)
            && read.marks == entry.allocation_marks();
        settled.then(|| read.deployments.clone())
    }

    /// The job `key` and its deployments as the watches last saw them, `None` when the
    /// mirror cannot vouch for them (then Nomad is read).
    pub fn observe(&self, key: &NomadJobKey) -> Option<Observed> {
        let state = self.read();
        let jobs_index = state.synced()?;
        let Some(entry) = state.jobs.get(key) else {
            // Listed by every feed, known to none: there is no such job.
            return Some(Observed::default());
        };
        let job = match (&entry.stub, &entry.view) {
            (None, None) => None,
            // Listed, but never read: its version and owner are not in the stub.
            (Some(_), None) => return None,
            // A register of ours the jobs feed has not listed yet.
            (None, Some(view)) if view.job_modify_index > jobs_index => Some(view.clone()),
            // The jobs feed has listed past the view and no longer has the job.
            (None, Some(_)) => None,
            (Some(stub), Some(view)) => Some(vouched(stub, view)?),
        };
        let deployments = match &job {
            Some(job) if state.lists_deployments_of(&key.0) => entry
                .deployments
                .values()
                .filter(|d| d.job_create_index == job.create_index)
                .map(|d| Deployment::clone(d))
                .collect(),
            _ => Vec::new(),
        };
        Some(Observed {
            job,
            deployments,
            ..Observed::default()
        })
    }

    /// The summary, allocations and (for a job that launches others) children of `job`
    /// (`key`) as the watches last saw them; `None` before every feed answered. The
    /// evaluations are not mirrored: the caller reads them when the summary says
    /// allocations are queued.
    pub fn details(&self, key: &NomadJobKey, job: &JobView) -> Option<Details> {
        let state = self.read();
        state.synced()?;
        let entry = state.jobs.get(key);
        let summary = entry
            .and_then(|e| e.stub.as_ref())
            .filter(|s| s.create_index == job.create_index)
            .and_then(|s| s.job_summary.clone());
        let mut details = Details {
            summary,
            ..Details::default()
        };
        if job.launches_children() {
            details.children = state
                .jobs
                .iter()
                .filter(|((namespace, _), _)| *namespace == key.0)
                .filter_map(|(_, e)| e.stub.as_ref())
                .filter(|s| s.parent_id == key.1)
                .cloned()
                .collect();
            return Some(details);
        }
        details.allocations = entry
            .map(|e| {
                e.allocations
                    .values()
                    .filter(|a| a.create_index >= job.create_index)
                    .map(|a| AllocationListStub::clone(a))
                    .collect()
            })
            .unwrap_or_default();
        Some(details)
    }
}

impl State {
    /// Stores `changed` items of `feed` and drops `removed` ones (see [`Mirror::apply`]).
    fn store(&mut self, feed: ChangeFeed, changed: Vec<(ItemKey, Item)>, removed: &[ItemKey]) {
        for ((job, id), item) in changed {
            let entry = self.jobs.entry(job).or_default();
            match item {
                Item::Job(stub) => entry.stub = Some(*stub),
                Item::Deployment(d) => {
                    entry.deployments.insert(id, d);
                }
                Item::Allocation(mut a) => {
                    for task in a.task_states.values_mut() {
                        super::outcome::keep_telling_events(task);
                    }
                    entry.allocations.insert(id, a);
                }
            }
        }
        for (job, id) in removed {
            if let Some(entry) = self.jobs.get_mut(job) {
                remove_item(entry, feed, id);
                if entry.is_empty() {
                    self.jobs.remove(job);
                }
            }
        }
    }

    /// Whether a feed lists the deployments of `namespace` (see `State`).
    fn lists_deployments_of(&self, namespace: &str) -> bool {
        self.deployments_listed == Some(true) || self.namespace_deployments.contains_key(namespace)
    }

    /// The jobs feed's index once every feed the cluster has answered.
    fn synced(&self) -> Option<u64> {
        let deployments = match self.deployments_listed {
            None => return None,
            Some(listed) => listed.then_some(ChangeFeed::Deployments),
        };
        let mut all = vec![ChangeFeed::Jobs, ChangeFeed::Allocations];
        all.extend(deployments);
        if all.iter().all(|f| self.indexes.contains_key(f)) {
            self.indexes.get(&ChangeFeed::Jobs).copied()
        } else {
            None
        }
    }
}

/// The job as `view` knows it, with the state `stub` lists, when the stub is of the
/// same job at the same spec, or older than a register of ours; `None` when someone
/// else changed it since (then it is read).
fn vouched(stub: &JobListStub, view: &JobView) -> Option<JobView> {
    if stub.job_modify_index == view.job_modify_index && stub.create_index == view.create_index {
        let mut job = view.clone();
        job.status.clone_from(&stub.status);
        job.stop = stub.stop;
        job.modify_index = job.modify_index.max(stub.modify_index);
        return Some(job);
    }
    // A register of ours the jobs feed has not listed yet: the stub is older than it.
    (view.job_modify_index > stub.modify_index).then(|| view.clone())
}

fn remove_item(entry: &mut Entry, feed: ChangeFeed, id: &str) {
    match feed {
        ChangeFeed::Jobs => entry.stub = None,
        ChangeFeed::Deployments => {
            entry.deployments.remove(id);
        }
        ChangeFeed::Allocations => {
            entry.allocations.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(job: &str) -> NomadJobKey {
        ("default".to_string(), job.to_string())
    }

    fn stub(job: &str, create: u64, job_modify: u64, modify: u64) -> (ItemKey, Item) {
        let stub = json!({
            "ID": job, "Namespace": "default", "Status": "running", "CreateIndex": create,
            "JobModifyIndex": job_modify, "ModifyIndex": modify,
            "ParentID": job.split_once('/').map_or("", |(parent, _)| parent),
            "JobSummary": {"JobID": job, "Summary": {"web": {"Running": 2}}, "CreateIndex": create, "ModifyIndex": modify}
        });
        let item = Item::decode(ChangeFeed::Jobs, &stub.to_string()).expect("stub");
        ((key(job), job.to_string()), item)
    }

    fn deployment(id: &str, job: &str, version: u64, job_create: u64) -> (ItemKey, Item) {
        let d = json!({"ID": id, "Namespace": "default", "JobID": job, "JobVersion": version,
            "JobCreateIndex": job_create, "Status": "running"});
        let item = Item::decode(ChangeFeed::Deployments, &d.to_string()).expect("deployment");
        ((key(job), id.to_string()), item)
    }

    fn allocation(id: &str, job: &str, create: u64) -> (ItemKey, Item) {
        let a = json!({"ID": id, "Namespace": "default", "JobID": job, "TaskGroup": "web",
            "CreateIndex": create, "ClientStatus": "running"});
        let item = Item::decode(ChangeFeed::Allocations, &a.to_string()).expect("allocation");
        ((key(job), id.to_string()), item)
    }

    fn view(create: u64, job_modify: u64, version: u64) -> JobView {
        JobView {
            version,
            job_modify_index: job_modify,
            modify_index: job_modify,
            create_index: create,
            status: "pending".into(),
            owner: Some(("team".into(), "web".into())),
            ..JobView::default()
        }
    }

    /// A mirror whose three feeds answered once, at `index`, with nothing listed.
    fn synced(index: u64) -> Mirror {
        let mirror = Mirror::default();
        mirror.set_deployments_listed(true);
        for feed in [
            ChangeFeed::Jobs,
            ChangeFeed::Deployments,
            ChangeFeed::Allocations,
        ] {
            mirror.apply(feed, index, Vec::new(), &[]);
        }
        mirror
    }

    #[test]
    fn nothing_is_vouched_for_before_every_feed_answered() {
        let mirror = Mirror::default();
        mirror.set_deployments_listed(true);
        mirror.apply(ChangeFeed::Jobs, 5, Vec::new(), &[]);
        mirror.apply(ChangeFeed::Deployments, 5, Vec::new(), &[]);
        assert_eq!(mirror.observe(&key("web")), None);
        assert_eq!(mirror.details(&key("web"), &view(1, 1, 0)), None);
        mirror.apply(ChangeFeed::Allocations, 5, Vec::new(), &[]);
        assert_eq!(
            mirror.observe(&key("web")),
            Some(Observed::default()),
            "listed by every feed, known to none: no such job"
        );
    }

    #[test]
    fn a_listed_job_never_read_is_read() {
        let mirror = synced(10);
        mirror.apply(ChangeFeed::Jobs, 12, vec![stub("web", 11, 11, 12)], &[]);
        assert_eq!(
            mirror.observe(&key("web")),
            None,
            "a stub has no version or owner"
        );
    }

    #[test]
    fn a_remembered_view_stands_while_the_stub_has_its_indexes() {
        let mirror = synced(10);
        mirror.remember(&key("web"), Some(view(11, 11, 0)));
        mirror.apply(ChangeFeed::Jobs, 14, vec![stub("web", 11, 11, 14)], &[]);
        mirror.apply(
            ChangeFeed::Deployments,
            14,
            vec![
                deployment("d-old", "web", 3, 2),
                deployment("d-new", "web", 0, 11),
            ],
            &[],
        );
        let seen = mirror.observe(&key("web")).expect("vouched");
        let job = seen.job.expect("job");
        assert_eq!(
            (job.version, job.status.as_str(), job.modify_index),
            (0, "running", 14)
        );
        let ids: Vec<&str> = seen.deployments.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(
            ids,
            ["d-new"],
            "deployments of an earlier job of that ID are not its"
        );

        mirror.apply(
            ChangeFeed::Allocations,
            15,
            vec![allocation("a-old", "web", 3), allocation("a1", "web", 12)],
            &[],
        );
        let details = mirror.details(&key("web"), &job).expect("details");
        let allocs: Vec<&str> = details.allocations.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(allocs, ["a1"]);
        assert_eq!(details.summary.expect("summary").summary["web"].running, 2);
    }

    #[test]
    fn someone_elses_register_makes_the_job_read_and_ours_not_yet_listed_stands() {
        let mirror = synced(10);
        mirror.remember(&key("web"), Some(view(11, 11, 0)));
        mirror.apply(ChangeFeed::Jobs, 20, vec![stub("web", 11, 20, 20)], &[]);
        assert_eq!(mirror.observe(&key("web")), None, "moved by someone else");

        mirror.remember(&key("web"), Some(view(11, 25, 2)));
        let job = mirror.observe(&key("web")).and_then(|o| o.job);
        assert_eq!(
            job.map(|j| j.version),
            Some(2),
            "a register of ours the jobs feed has not listed yet"
        );
    }

    #[test]
    fn a_job_the_jobs_feed_no_longer_lists_is_gone_unless_it_is_newer_than_the_list() {
        let mirror = synced(10);
        mirror.remember(&key("web"), Some(view(12, 12, 0)));
        let job = mirror.observe(&key("web")).and_then(|o| o.job);
        assert_eq!(
            job.map(|j| j.create_index),
            Some(12),
            "created after the list"
        );
        mirror.apply(ChangeFeed::Jobs, 12, vec![stub("web", 12, 12, 12)], &[]);
        mirror.apply(
            ChangeFeed::Jobs,
            30,
            Vec::new(),
            &[(key("web"), "web".into())],
        );
        assert_eq!(
            mirror.observe(&key("web")),
            Some(Observed::default()),
            "purged"
        );
    }

    #[test]
    fn a_stale_feed_is_not_vouched_for_until_it_answers_again() {
        let mirror = synced(10);
        mirror.mark_stale(ChangeFeed::Allocations);
        assert_eq!(mirror.observe(&key("web")), None);
        mirror.apply(ChangeFeed::Allocations, 11, Vec::new(), &[]);
        assert!(mirror.observe(&key("web")).is_some());
    }

    #[test]
    fn the_children_of_a_periodic_job_are_its_listed_children() {
        let mirror = synced(10);
        mirror.apply(
            ChangeFeed::Jobs,
            20,
            vec![
                stub("cron", 11, 11, 11),
                stub("cron/periodic-1", 15, 15, 16),
                stub("cronjob", 17, 17, 17),
            ],
            &[],
        );
        let parent = JobView {
            periodic: Some(json!({"Enabled": true})),
            ..view(11, 11, 0)
        };
        let details = mirror.details(&key("cron"), &parent).expect("details");
        let children: Vec<&str> = details.children.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(children, ["cron/periodic-1"]);
    }

    #[test]
    fn without_a_listing_of_every_namespace_deployments_are_read() {
        let mirror = Mirror::default();
        mirror.apply(ChangeFeed::Jobs, 10, vec![stub("web", 11, 11, 11)], &[]);
        mirror.apply(ChangeFeed::Allocations, 10, Vec::new(), &[]);
        assert_eq!(mirror.observe(&key("web")), None, "not known yet");
        mirror.set_deployments_listed(false);
        mirror.remember(&key("web"), Some(view(11, 11, 0)));
        let seen = mirror
            .observe(&key("web"))
            .expect("job and allocations mirrored");
        assert!(seen.job.is_some() && seen.deployments.is_empty());
        assert!(!mirror.lists_deployments_of("default"));
    }

    #[test]
    fn a_watch_of_one_namespace_lists_the_deployments_of_its_jobs() {
        let mirror = Mirror::default();
        mirror.set_deployments_listed(false);
        mirror.apply(ChangeFeed::Jobs, 10, vec![stub("web", 11, 11, 11)], &[]);
        mirror.apply(ChangeFeed::Allocations, 10, Vec::new(), &[]);
        mirror.remember(&key("web"), Some(view(11, 11, 0)));
        mirror.apply_namespace_deployments(
            "default",
            12,
            vec![deployment("d0", "web", 0, 11)],
            &[],
        );
        assert!(mirror.lists_deployments_of("default"));
        assert!(
            !mirror.lists_deployments_of("team-b"),
            "only its own namespace"
        );
        let seen = mirror.observe(&key("web")).expect("mirrored");
        let ids: Vec<&str> = seen.deployments.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["d0"]);

        // Gone from the next answer: gone from the mirror.
        let gone = (key("web"), "d0".to_string());
        mirror.apply_namespace_deployments("default", 13, Vec::new(), &[gone]);
        let seen = mirror.observe(&key("web")).expect("mirrored");
        assert!(seen.deployments.is_empty());

        // The watch failed or stopped: its deployments are read again.
        mirror.mark_namespace_stale("default");
        assert!(!mirror.lists_deployments_of("default"));
    }

    fn allocation_at(id: &str, create: u64, modify: u64) -> (ItemKey, Item) {
        let a = json!({"ID": id, "Namespace": "default", "JobID": "web", "TaskGroup": "web",
            "CreateIndex": create, "ModifyIndex": modify, "ClientStatus": "running"});
        let item = Item::decode(ChangeFeed::Allocations, &a.to_string()).expect("allocation");
        ((key("web"), id.to_string()), item)
    }

    fn read_deployment(status: &str, version: u64) -> Deployment {
        Deployment {
            id: format!("d{version}"),
            job_id: "web".into(),
            job_version: version,
            job_create_index: 11,
            status: status.into(),
            ..Deployment::default()
        }
    }

    #[test]
    fn deployments_read_stand_while_they_are_over_and_nothing_they_depend_on_moved() {
        let mirror = Mirror::default();
        mirror.set_deployments_listed(false);
        let mut job = view(11, 11, 2);
        job.expects_deployment = true;
        assert_eq!(
            mirror.allocation_marks(&key("web")),
            None,
            "no allocations yet"
        );
        mirror.apply(ChangeFeed::Jobs, 20, vec![stub("web", 11, 11, 20)], &[]);
        mirror.apply(
            ChangeFeed::Allocations,
            20,
            vec![allocation_at("a1", 15, 18)],
            &[],
        );
        let marks = mirror.allocation_marks(&key("web")).expect("listed");
        assert_eq!(
            mirror.settled_deployments(&key("web"), &job),
            None,
            "never read"
        );

        // Still running: read again next time.
        let running = [
            read_deployment("successful", 1),
            read_deployment("running", 2),
        ];
        mirror.remember_deployments(&key("web"), &job, marks.clone(), &running);
        assert_eq!(mirror.settled_deployments(&key("web"), &job), None);

        // None rolls out version 2 yet (its deployment is not created): read again.
        let before = [read_deployment("successful", 1)];
        mirror.remember_deployments(&key("web"), &job, marks.clone(), &before);
        assert_eq!(mirror.settled_deployments(&key("web"), &job), None);

        // Over: they stand.
        let over = [
            read_deployment("successful", 1),
            read_deployment("successful", 2),
        ];
        mirror.remember_deployments(&key("web"), &job, marks.clone(), &over);
        assert_eq!(
            mirror.settled_deployments(&key("web"), &job),
            Some(over.to_vec())
        );

        // Another spec of the job: read again.
        assert_eq!(
            mirror.settled_deployments(&key("web"), &view(11, 30, 3)),
            None
        );

        // An allocation changes (a replacement may come with a deployment of its own).
        mirror.apply(
            ChangeFeed::Allocations,
            25,
            vec![allocation_at("a1", 15, 25)],
            &[],
        );
        assert_eq!(mirror.settled_deployments(&key("web"), &job), None);

        // A job expecting no deployment stands with none.
        let mut batch = view(11, 11, 0);
        batch.expects_deployment = false;
        let marks = mirror.allocation_marks(&key("web")).expect("listed");
        mirror.remember_deployments(&key("web"), &batch, marks, &[]);
        assert_eq!(
            mirror.settled_deployments(&key("web"), &batch),
            Some(Vec::new())
        );

        // The allocations feed fails: nothing stands until it answers again.
        mirror.mark_stale(ChangeFeed::Allocations);
        assert_eq!(mirror.settled_deployments(&key("web"), &batch), None);

        // Forgetting the job's view forgets what was read with it.
        mirror.apply(ChangeFeed::Allocations, 30, Vec::new(), &[]);
        mirror.remember(&key("web"), None);
        assert_eq!(mirror.settled_deployments(&key("web"), &batch), None);
    }
}
