//! Task-group counts that belong to someone else (pure): nomad-autoscaler and
//! `nomad job scale` change a group's `Count` in Nomad (a new version of the job), and a
//! plan of the spec would scale the group back.
//!
//! For the groups whose count is someone else's ([`scaled_groups`]: a `Scaling` block in
//! the spec, or every group with `spec.preserveCounts`), [`keep_live_counts`] sends the
//! live count instead of the spec's, except when the spec's count changed since the
//! operator's last register of the group ([`spec_counts`], recorded then): that change is
//! the user's intent and is applied once.
//!
//! Jobs are Nomad's API form (`TaskGroups[].Name`, `TaskGroups[].Count`,
//! `TaskGroups[].Scaling`). Odd JSON is skipped, never a panic: a job without a
//! `TaskGroups` array, a group that is not an object or has no string `Name`, and a
//! `Count` that is neither missing, null, nor a non-negative integer.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

/// The count Nomad gives a group without `Count`.
const DEFAULT_COUNT: u64 = 1;

/// The object groups of `job` that have a string `Name`, in order.
fn named_groups(job: &Value) -> impl Iterator<Item = (&str, &Map<String, Value>)> {
    job.get("TaskGroups")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .filter_map(|group| Some((group.get("Name")?.as_str()?, group)))
}

/// A group's count: `Count`, or 1 when missing or null; `None` when `Count` is not a
/// non-negative integer.
fn count_of(group: &Map<String, Value>) -> Option<u64> {
    match group.get("Count") {
        None | Some(Value::Null) => Some(DEFAULT_COUNT),
        Some(count) => count.as_u64(),
    }
}

/// Whether a group has a `Scaling` block (present and not null).
fn has_scaling(group: &Map<String, Value>) -> bool {
    group
        .get("Scaling")
        .is_some_and(|scaling| !scaling.is_null())
}

/// The count of each task group of a job (`TaskGroups[].Name` -> `Count`; a group
/// without `Count` counts 1 as Nomad defaults it). Groups without a string `Name`, or
/// whose `Count` is not a non-negative integer, are left out; of two groups with one
/// name, the first counts.
pub fn group_counts(job: &Value) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for (name, group) in named_groups(job) {
        if let Some(count) = count_of(group) {
            counts.entry(name.to_owned()).or_insert(count);
        }
    }
    counts
}

/// The groups whose count belongs to someone else: those with a non-null `Scaling`
/// block in the spec's job, or all groups when `preserve_all` (`spec.preserveCounts`).
pub fn scaled_groups(spec_job: &Value, preserve_all: bool) -> BTreeSet<String> {
    named_groups(spec_job)
        .filter(|(_, group)| preserve_all || has_scaling(group))
        .map(|(name, _)| name.to_owned())
        .collect()
}

/// The spec counts of the scaled groups, to record as `applied` after a register.
pub fn spec_counts(spec_job: &Value, preserve_all: bool) -> BTreeMap<String, u64> {
    let scaled = scaled_groups(spec_job, preserve_all);
    group_counts(spec_job)
        .into_iter()
        .filter(|(name, _)| scaled.contains(name))
        .collect()
}

/// The decision for one group whose count belongs to someone else.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CountChoice {
    /// Keep the live count (someone else's); the spec's count is unchanged since the
    /// last register.
    Live {
        /// The task group's name.
        group: String,
        /// The count in Nomad, which is sent.
        live: u64,
    },
    /// The spec's count changed since the last register (or the group is new in
    /// Nomad): the user's intent, applied once.
    Spec {
        /// The task group's name.
        group: String,
        /// The spec's count, which is sent.
        spec: u64,
        /// The count in Nomad, `None` when Nomad does not have the group.
        live: Option<u64>,
    },
}

impl CountChoice {
    /// The task group's name.
    pub fn group(&self) -> &str {
        match self {
            Self::Live { group, .. } | Self::Spec { group, .. } => group,
        }
    }

    /// The count sent to Nomad.
    pub fn count(&self) -> u64 {
        match self {
            Self::Live { live, .. } => *live,
            Self::Spec { spec, .. } => *spec,
        }
    }

    /// A sentence for an Event, only for a `Spec` choice that changes the live count,
    /// e.g. `count of group "web" set to 3 from the spec (it was 2 in Nomad, scaled by
    /// someone else)`.
    pub fn event_message(&self) -> Option<String> {
        match self {
            Self::Spec {
                group,
                spec,
                live: Some(live),
            } if spec != live => Some(format!(
                "count of group {group:?} set to {spec} from the spec (it was {live} in Nomad, scaled by someone else)"
            )),
            Self::Live { .. } | Self::Spec { .. } => None,
        }
    }
}

/// The choice for one scaled group whose spec count is `spec`.
fn choose(group: &str, spec: u64, live: Option<u64>, applied: Option<u64>) -> CountChoice {
    match live {
        Some(live) if applied.is_none_or(|applied| applied == spec) => CountChoice::Live {
            group: group.to_owned(),
            live,
        },
        _ => CountChoice::Spec {
            group: group.to_owned(),
            spec,
            live,
        },
    }
}

/// Adjusts `job` (the spec's job, about to be planned or registered) so that each scaled
/// group keeps its live count, except where the spec's count differs from `applied` (the
/// spec counts recorded at the operator's last register of these groups): there the
/// spec's count is sent, as the user's intent. `live` is the job as Nomad has it, as
/// [`group_counts`] (None when absent).
///
/// A group with no entry in `applied` (never recorded, e.g. state from an older
/// operator, or a group the operator never registered) keeps the live count when Nomad
/// has the group. A group Nomad does not have gets the spec's count. Groups that are not
/// scaled, and scaled groups whose spec `Count` is not a non-negative integer (Nomad
/// rejects the job), are not touched. `Count` is written only where it changes.
///
/// Returns the choices made (for Events and the status) in group order.
pub fn keep_live_counts(
    job: &mut Value,
    live: Option<&BTreeMap<String, u64>>,
    applied: &BTreeMap<String, u64>,
    preserve_all: bool,
) -> Vec<CountChoice> {
    let Some(groups) = job.get_mut("TaskGroups").and_then(Value::as_array_mut) else {
        return Vec::new();
    };
    let mut choices = Vec::new();
    for group in groups.iter_mut().filter_map(Value::as_object_mut) {
        if !(preserve_all || has_scaling(group)) {
            continue;
        }
        let (Some(name), Some(spec)) = (group.get("Name").and_then(Value::as_str), count_of(group))
        else {
            continue;
        };
        let live_count = live.and_then(|counts| counts.get(name)).copied();
        let choice = choose(name, spec, live_count, applied.get(name).copied());
        if choice.count() != spec {
            group.insert("Count".to_owned(), Value::from(choice.count()));
        }
        choices.push(choice);
    }
    choices
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A job with one group per `(name, count, scaling)`; `None` count omits `Count`.
    fn job(groups: &[(&str, Option<u64>, bool)]) -> Value {
        let groups: Vec<Value> = groups
            .iter()
            .map(|(name, count, scaling)| {
                let mut group = json!({ "Name": name, "Tasks": [] });
                if let Some(count) = count {
                    group["Count"] = json!(count);
                }
                group["Scaling"] = if *scaling {
                    json!({ "Min": 1, "Max": 10, "Enabled": true })
                } else {
                    Value::Null
                };
                group
            })
            .collect();
        json!({ "ID": "app", "TaskGroups": groups })
    }

    fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    fn live(group: &str, live: u64) -> CountChoice {
        CountChoice::Live {
            group: group.to_owned(),
            live,
        }
    }

    fn spec(group: &str, spec: u64, live: Option<u64>) -> CountChoice {
        CountChoice::Spec {
            group: group.to_owned(),
            spec,
            live,
        }
    }

    #[test]
    fn keep_live_counts_table() {
        struct Case {
            name: &'static str,
            spec_job: Value,
            live: Option<BTreeMap<String, u64>>,
            applied: BTreeMap<String, u64>,
            preserve_all: bool,
            sent: BTreeMap<String, u64>,
            choices: Vec<CountChoice>,
        }
        let cases = [
            Case {
                name: "scaled group keeps live count, spec unchanged",
                spec_job: job(&[("web", Some(1), true)]),
                live: Some(counts(&[("web", 2)])),
                applied: counts(&[("web", 1)]),
                preserve_all: false,
                sent: counts(&[("web", 2)]),
                choices: vec![live("web", 2)],
            },
            Case {
                name: "spec change 1 -> 3 is sent once",
                spec_job: job(&[("web", Some(3), true)]),
                live: Some(counts(&[("web", 2)])),
                applied: counts(&[("web", 1)]),
                preserve_all: false,
                sent: counts(&[("web", 3)]),
                choices: vec![spec("web", 3, Some(2))],
            },
            Case {
                name: "group without Scaling untouched",
                spec_job: job(&[("web", Some(1), false)]),
                live: Some(counts(&[("web", 4)])),
                applied: counts(&[("web", 1)]),
                preserve_all: false,
                sent: counts(&[("web", 1)]),
                choices: vec![],
            },
            Case {
                name: "preserve_all covers every group",
                spec_job: job(&[("web", Some(1), false), ("db", Some(1), true)]),
                live: Some(counts(&[("web", 4), ("db", 2)])),
                applied: counts(&[("web", 1), ("db", 1)]),
                preserve_all: true,
                sent: counts(&[("web", 4), ("db", 2)]),
                choices: vec![live("web", 4), live("db", 2)],
            },
            Case {
                name: "job absent in Nomad sends the spec count",
                spec_job: job(&[("web", Some(3), true)]),
                live: None,
                applied: BTreeMap::new(),
                preserve_all: false,
                sent: counts(&[("web", 3)]),
                choices: vec![spec("web", 3, None)],
            },
            Case {
                name: "group new in Nomad sends the spec count",
                spec_job: job(&[("web", Some(1), true), ("api", Some(5), true)]),
                live: Some(counts(&[("web", 2)])),
                applied: counts(&[("web", 1)]),
                preserve_all: false,
                sent: counts(&[("web", 2), ("api", 5)]),
                choices: vec![live("web", 2), spec("api", 5, None)],
            },
            Case {
                name: "group missing from applied keeps live",
                spec_job: job(&[("web", Some(1), true)]),
                live: Some(counts(&[("web", 2)])),
                applied: BTreeMap::new(),
                preserve_all: false,
                sent: counts(&[("web", 2)]),
                choices: vec![live("web", 2)],
            },
            Case {
                name: "Count missing counts 1",
                spec_job: job(&[("web", None, true)]),
                live: Some(counts(&[("web", 2)])),
                applied: counts(&[("web", 1)]),
                preserve_all: false,
                sent: counts(&[("web", 2)]),
                choices: vec![live("web", 2)],
            },
            Case {
                name: "Count missing, spec change from 4 to the default 1",
                spec_job: job(&[("web", None, true)]),
                live: Some(counts(&[("web", 2)])),
                applied: counts(&[("web", 4)]),
                preserve_all: false,
                sent: counts(&[("web", 1)]),
                choices: vec![spec("web", 1, Some(2))],
            },
            Case {
                name: "no TaskGroups",
                spec_job: json!({ "ID": "app" }),
                live: Some(counts(&[("web", 2)])),
                applied: counts(&[("web", 1)]),
                preserve_all: true,
                sent: BTreeMap::new(),
                choices: vec![],
            },
        ];
        for case in cases {
            let mut sent = case.spec_job.clone();
            let choices = keep_live_counts(
                &mut sent,
                case.live.as_ref(),
                &case.applied,
                case.preserve_all,
            );
            assert_eq!(choices, case.choices, "{}", case.name);
            assert_eq!(group_counts(&sent), case.sent, "{}", case.name);
        }
    }

    #[test]
    fn recorded_spec_counts_keep_live_on_the_next_call() {
        let spec_job = job(&[("web", Some(3), true), ("db", Some(1), false)]);
        let live_counts = counts(&[("web", 2), ("db", 1)]);

        let mut first = spec_job.clone();
        let choices = keep_live_counts(
            &mut first,
            Some(&live_counts),
            &counts(&[("web", 1)]),
            false,
        );
        assert_eq!(choices, vec![spec("web", 3, Some(2))]);
        assert_eq!(first, spec_job);

        let applied = spec_counts(&spec_job, false);
        assert_eq!(applied, counts(&[("web", 3)]));

        // The autoscaler moves the group to 5 after the register.
        let live_counts = counts(&[("web", 5), ("db", 1)]);
        let mut second = spec_job.clone();
        let choices = keep_live_counts(&mut second, Some(&live_counts), &applied, false);
        assert_eq!(choices, vec![live("web", 5)]);
        assert_eq!(group_counts(&second), counts(&[("web", 5), ("db", 1)]));
    }

    #[test]
    fn unchanged_json_when_live_equals_spec() {
        let spec_job = job(&[("web", None, true)]);
        let mut sent = spec_job.clone();
        let choices = keep_live_counts(
            &mut sent,
            Some(&counts(&[("web", 1)])),
            &BTreeMap::new(),
            false,
        );
        assert_eq!(choices, vec![live("web", 1)]);
        assert_eq!(sent, spec_job, "no Count written where nothing changes");
    }

    #[test]
    fn odd_json_is_skipped() {
        let odd = json!({
            "TaskGroups": [
                "not an object",
                { "Count": 3, "Scaling": {} },
                { "Name": 7, "Count": 3 },
                { "Name": "neg", "Count": -1, "Scaling": {} },
                { "Name": "str", "Count": "2", "Scaling": {} },
                { "Name": "null", "Count": null, "Scaling": null },
                { "Name": "ok", "Count": 2, "Scaling": { "Max": 3 } },
                { "Name": "ok", "Count": 9 }
            ]
        });
        assert_eq!(group_counts(&odd), counts(&[("null", 1), ("ok", 2)]));
        assert_eq!(
            scaled_groups(&odd, false),
            ["neg", "ok", "str"].map(str::to_owned).into()
        );
        assert_eq!(spec_counts(&odd, false), counts(&[("ok", 2)]));

        let mut sent = odd.clone();
        let live_counts = counts(&[("neg", 4), ("str", 4), ("ok", 4), ("null", 4)]);
        let choices = keep_live_counts(&mut sent, Some(&live_counts), &BTreeMap::new(), false);
        assert_eq!(choices, vec![live("ok", 4)]);
        assert_eq!(sent["TaskGroups"][3], odd["TaskGroups"][3]);
        assert_eq!(sent["TaskGroups"][4], odd["TaskGroups"][4]);
        // The duplicate "ok" is not scaled: untouched.
        assert_eq!(sent["TaskGroups"][7], odd["TaskGroups"][7]);

        for not_a_job in [
            json!(null),
            json!([]),
            json!({ "TaskGroups": {} }),
            json!("x"),
        ] {
            let mut sent = not_a_job.clone();
            assert!(group_counts(&not_a_job).is_empty());
            assert!(scaled_groups(&not_a_job, true).is_empty());
            assert!(keep_live_counts(&mut sent, None, &BTreeMap::new(), true).is_empty());
            assert_eq!(sent, not_a_job);
        }
    }

    #[test]
    fn scaled_groups_and_spec_counts() {
        let spec_job = job(&[("web", Some(3), true), ("db", None, false)]);
        assert_eq!(scaled_groups(&spec_job, false), ["web".to_owned()].into());
        assert_eq!(
            scaled_groups(&spec_job, true),
            ["db", "web"].map(str::to_owned).into()
        );
        assert_eq!(spec_counts(&spec_job, false), counts(&[("web", 3)]));
        assert_eq!(
            spec_counts(&spec_job, true),
            counts(&[("web", 3), ("db", 1)])
        );
    }

    #[test]
    fn event_message() {
        assert_eq!(
            spec("web", 3, Some(2)).event_message().as_deref(),
            Some(
                "count of group \"web\" set to 3 from the spec (it was 2 in Nomad, scaled by someone else)"
            )
        );
        assert_eq!(spec("web", 3, Some(3)).event_message(), None);
        assert_eq!(spec("web", 3, None).event_message(), None);
        assert_eq!(live("web", 2).event_message(), None);
        assert_eq!(live("web", 2).group(), "web");
        assert_eq!(live("web", 2).count(), 2);
        assert_eq!(spec("web", 3, Some(2)).count(), 3);
    }
}
