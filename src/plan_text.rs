//! The text of a pull-request preview: one job's plan (`POST /v1/job/:id/plan` with
//! `Diff: true`) written the way `nomad job plan` writes it, without colours.
//!
//! The layout follows Nomad 1.1.2's `command/job_plan.go`:
//!
//! - a marker per diff type: `+ ` Added, `- ` Deleted, `+/- ` Edited, none for None;
//! - `Job: "id"`, then (for an edited job) its fields and objects at column 0, then
//!   each `Task Group: "name" (1 create, 2 in-place update)`, its fields and objects (for
//!   an edited group) and each `Task: "name" (annotations)` indented by two, and (for an
//!   edited task) its fields and objects indented by two more;
//! - markers are padded to the longest marker among siblings and field values to the
//!   longest field name, so that names and values line up; a field shows its name
//!   within its object, the headers and `Object {` lines above it give the path;
//! - task groups are separated by a blank line; added or deleted tasks and groups show
//!   their header only (Nomad's non-verbose output).
//!
//! Unlike Nomad, which prints the unchanged (`None`) fields the server adds for context,
//! unchanged fields and objects are left out: the preview shows changes only. Task groups
//! and tasks are always listed, unchanged ones without a marker, with the scheduler's
//! intended actions.
//!
//! Then `Scheduler dry-run:` with the placement outcome (and the failures per task group,
//! as `formatAllocMetrics` in `command/monitor.go` writes them) and the next periodic
//! launch, and `Job Warnings:` when Nomad sent any.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::nomad::types::{
    AllocationMetric, DiffType, FieldDiff, JobDiff, JobPlanResponse, ObjectDiff, TaskDiff,
    TaskGroupDiff,
};

/// Text of one job's plan in the style of `nomad job plan` (no ANSI colours).
///
/// The diff (when Nomad sent one), a blank line, `Scheduler dry-run:` and its lines,
/// and, when there are warnings, a blank line, `Job Warnings:` and the warnings. Every
/// line ends with a newline; the text neither starts nor ends with a blank line.
pub fn plan_text(plan: &JobPlanResponse) -> String {
    let mut lines = Vec::new();
    if let Some(diff) = &plan.diff {
        job_lines(&mut lines, diff);
        while lines.last().is_some_and(|l| l.trim().is_empty()) {
            lines.pop();
        }
        lines.push(String::new());
    }
    lines.push("Scheduler dry-run:".to_owned());
    dry_run_lines(&mut lines, plan);
    let warnings = plan.warnings.trim_end();
    if !warnings.is_empty() {
        lines.push(String::new());
        lines.push("Job Warnings:".to_owned());
        lines.push(warnings.to_owned());
    }
    let mut out = String::new();
    for line in lines {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// Whether the plan changes anything: the top-level diff type is other than `None`.
///
/// A plan asked without `Diff` has no diff type; it then counts as a change when the
/// scheduler would place, stop, migrate, update or canary any allocation.
pub fn has_changes(plan: &JobPlanResponse) -> bool {
    match plan.diff_type() {
        Some(kind) => kind != DiffType::None,
        None => plan.annotations.as_ref().is_some_and(|a| {
            a.desired_tg_updates.values().any(|u| {
                [
                    u.place,
                    u.stop,
                    u.migrate,
                    u.in_place_update,
                    u.destructive_update,
                    u.canary,
                ]
                .iter()
                .any(|&n| n > 0)
            })
        }),
    }
}

/// What the scheduler would do with one task group, in words.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupChange {
    /// Task group name.
    pub group: String,
    /// New allocations (`Place`).
    pub create: u64,
    /// Allocations stopped (`Stop`).
    pub destroy: u64,
    /// Allocations updated in place (`InPlaceUpdate`).
    pub in_place: u64,
    /// Allocations replaced (`DestructiveUpdate`).
    pub destructive: u64,
    /// Canaries placed (`Canary`).
    pub canary: u64,
    /// Allocations left alone (`Ignore`).
    pub ignore: u64,
    /// Allocations moved off draining nodes (`Migrate`).
    pub migrate: u64,
    /// Allocations the scheduler could not place (`CoalescedFailures + 1` for a group
    /// in `FailedTGAllocs`, as Nomad prints it), 0 when all could be placed.
    pub failed_placements: u64,
}

/// The scheduler's intended actions per task group, sorted by group name: every group
/// in `Annotations.DesiredTGUpdates` or in `FailedTGAllocs`.
pub fn group_summary(plan: &JobPlanResponse) -> Vec<GroupChange> {
    let mut groups: BTreeMap<&str, GroupChange> = BTreeMap::new();
    if let Some(annotations) = &plan.annotations {
        for (name, u) in &annotations.desired_tg_updates {
            let change = groups.entry(name).or_default();
            change.create = u.place;
            change.destroy = u.stop;
            change.in_place = u.in_place_update;
            change.destructive = u.destructive_update;
            change.canary = u.canary;
            change.ignore = u.ignore;
            change.migrate = u.migrate;
        }
    }
    for (name, metric) in &plan.failed_tg_allocs {
        groups.entry(name).or_default().failed_placements = failed_allocations(metric);
    }
    groups
        .into_iter()
        .map(|(name, change)| GroupChange {
            group: name.to_owned(),
            ..change
        })
        .collect()
}

/// Nomad's warnings about a job (a plan's or a register's `Warnings`) on one line,
/// without go-multierror's headers: `1 warning(s):\n\n* Group "web" has warnings: 1
/// error occurred:\n\t* Update max parallel ...` reads `Group "web" has warnings:
/// Update max parallel ...`. `None` when there are none.
pub fn warnings_text(raw: &str) -> Option<String> {
    let words: Vec<&str> = raw.split_whitespace().collect();
    let mut kept = Vec::with_capacity(words.len());
    let mut i = 0;
    while i < words.len() {
        let word = words[i];
        let header = word.parse::<u64>().is_ok()
            && matches!(
                (words.get(i + 1), words.get(i + 2)),
                (Some(&"warning(s):"), _) | (Some(&"error" | &"errors"), Some(&"occurred:"))
            );
        if header {
            i += if words.get(i + 1) == Some(&"warning(s):") {
                2
            } else {
                3
            };
            continue;
        }
        if word != "*" {
            kept.push(word);
        }
        i += 1;
    }
    let text = kept.join(" ");
    (!text.is_empty()).then_some(text)
}

/// Allocations a placement failure stands for: itself and those folded into it.
pub fn failed_allocations(metric: &AllocationMetric) -> u64 {
    metric.coalesced_failures.saturating_add(1)
}

/// The marker of a diff type, with its trailing space.
fn marker(kind: DiffType) -> &'static str {
    match kind {
        DiffType::Added => "+ ",
        DiffType::Deleted => "- ",
        DiffType::Edited => "+/- ",
        DiffType::None => "",
    }
}

/// `n` spaces.
fn pad(n: usize) -> String {
    " ".repeat(n)
}

/// Width of a name as displayed.
fn width(name: &str) -> usize {
    name.chars().count()
}

/// A string quoted and escaped like Go's `%q`, as Nomad prints names and values.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{b}' => out.push_str("\\v"),
            '\u{c}' => out.push_str("\\f"),
            c if c.is_control() => {
                let code = u32::from(c);
                if code < 0x80 {
                    out.push_str(&format!("\\x{code:02x}"));
                } else {
                    out.push_str(&format!("\\u{code:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// ` (a, b)` for annotations, empty without any.
fn annotations(notes: &[String]) -> String {
    if notes.is_empty() {
        String::new()
    } else {
        format!(" ({})", notes.join(", "))
    }
}

/// The fields shown: the changed ones.
fn shown_fields(fields: &[FieldDiff]) -> impl Iterator<Item = &FieldDiff> {
    fields.iter().filter(|f| f.r#type != DiffType::None)
}

/// The objects shown: the changed ones.
fn shown_objects(objects: &[ObjectDiff]) -> impl Iterator<Item = &ObjectDiff> {
    objects.iter().filter(|o| o.r#type != DiffType::None)
}

/// The longest shown field name and the longest marker among shown fields and objects.
fn longest(fields: &[FieldDiff], objects: &[ObjectDiff]) -> (usize, usize) {
    let field = shown_fields(fields)
        .map(|f| width(&f.name))
        .max()
        .unwrap_or(0);
    let marker_len = shown_fields(fields)
        .map(|f| marker(f.r#type).len())
        .chain(shown_objects(objects).map(|o| marker(o.r#type).len()))
        .max()
        .unwrap_or(0);
    (field, marker_len)
}

/// Lines of a job diff; each task group is followed by a blank line.
fn job_lines(lines: &mut Vec<String>, job: &JobDiff) {
    lines.push(format!("{}Job: {}", marker(job.r#type), quote(&job.id)));
    let (longest_field, mut longest_marker) = longest(&job.fields, &job.objects);
    for group in &job.task_groups {
        longest_marker = longest_marker.max(marker(group.r#type).len());
    }
    if job.r#type == DiffType::Edited {
        fields_and_objects(
            lines,
            &job.fields,
            &job.objects,
            0,
            longest_field,
            longest_marker,
        );
    }
    for group in &job.task_groups {
        let prefix = longest_marker.saturating_sub(marker(group.r#type).len());
        group_lines(lines, group, prefix);
        lines.push(String::new());
    }
}

/// Lines of a task group diff, `prefix` spaces between its marker and its name.
fn group_lines(lines: &mut Vec<String>, group: &TaskGroupDiff, prefix: usize) {
    let mut header = format!(
        "{}{}Task Group: {}",
        marker(group.r#type),
        pad(prefix),
        quote(&group.name)
    );
    if !group.updates.is_empty() {
        let updates: Vec<String> = group
            .updates
            .iter()
            .map(|(kind, count)| format!("{count} {kind}"))
            .collect();
        header.push_str(&format!(" ({})", updates.join(", ")));
    }
    lines.push(header);

    let (longest_field, mut longest_marker) = longest(&group.fields, &group.objects);
    for task in &group.tasks {
        longest_marker = longest_marker.max(marker(task.r#type).len());
    }
    let start = prefix + 2;
    if group.r#type == DiffType::Edited {
        fields_and_objects(
            lines,
            &group.fields,
            &group.objects,
            start,
            longest_field,
            longest_marker,
        );
    }
    for task in &group.tasks {
        let task_prefix = longest_marker.saturating_sub(marker(task.r#type).len());
        task_lines(lines, task, start, task_prefix);
    }
}

/// Lines of a task diff, indented by `start`, `prefix` spaces between its marker and its
/// name. Only an edited task shows its fields and objects.
fn task_lines(lines: &mut Vec<String>, task: &TaskDiff, start: usize, prefix: usize) {
    lines.push(format!(
        "{}{}{}Task: {}{}",
        pad(start),
        marker(task.r#type),
        pad(prefix),
        quote(&task.name),
        annotations(&task.annotations)
    ));
    if task.r#type == DiffType::Edited {
        let (longest_field, longest_marker) = longest(&task.fields, &task.objects);
        fields_and_objects(
            lines,
            &task.fields,
            &task.objects,
            start + 2,
            longest_field,
            longest_marker,
        );
    }
}

/// Lines of the changed fields, then the changed objects, indented by `start`, their
/// names aligned after a marker padded to `longest_marker` and their values aligned
/// after names padded to `longest_field`.
fn fields_and_objects(
    lines: &mut Vec<String>,
    fields: &[FieldDiff],
    objects: &[ObjectDiff],
    start: usize,
    longest_field: usize,
    longest_marker: usize,
) {
    for field in shown_fields(fields) {
        let mark = marker(field.r#type);
        let value = match field.r#type {
            DiffType::Deleted => quote(&field.old),
            DiffType::Edited => format!("{} => {}", quote(&field.old), quote(&field.new)),
            DiffType::Added | DiffType::None => quote(&field.new),
        };
        lines.push(format!(
            "{}{}{}{}: {}{}{}",
            pad(start),
            mark,
            pad(longest_marker.saturating_sub(mark.len())),
            field.name,
            pad(longest_field.saturating_sub(width(&field.name))),
            value,
            annotations(&field.annotations)
        ));
    }
    for object in shown_objects(objects) {
        let prefix = longest_marker.saturating_sub(marker(object.r#type).len());
        object_lines(lines, object, start, prefix);
    }
}

/// Lines of an object diff: `Name {`, its changed fields and objects, and `}` under the
/// name.
fn object_lines(lines: &mut Vec<String>, object: &ObjectDiff, start: usize, prefix: usize) {
    let mark = marker(object.r#type);
    lines.push(format!(
        "{}{}{}{} {{",
        pad(start),
        mark,
        pad(prefix),
        object.name
    ));
    let (longest_field, longest_marker) = longest(&object.fields, &object.objects);
    fields_and_objects(
        lines,
        &object.fields,
        &object.objects,
        start + prefix + 2,
        longest_field,
        longest_marker,
    );
    lines.push(format!("{}}}", pad(start + mark.len() + prefix)));
}

/// Lines of the scheduler's dry run.
fn dry_run_lines(lines: &mut Vec<String>, plan: &JobPlanResponse) {
    if plan.failed_tg_allocs.is_empty() {
        lines.push("- All tasks successfully allocated.".to_owned());
    } else {
        lines.push("- WARNING: Failed to place all allocations.".to_owned());
        for (i, (group, metric)) in plan.failed_tg_allocs.iter().enumerate() {
            if i > 0 {
                lines.push(String::new());
            }
            let failed = failed_allocations(metric);
            let noun = if failed == 1 {
                "allocation"
            } else {
                "allocations"
            };
            lines.push(format!(
                "  Task Group {} (failed to place {failed} {noun}):",
                quote(group)
            ));
            metric_lines(lines, metric, "    ");
        }
    }
    let next = plan.next_periodic_launch.as_str();
    if !next.is_empty() && !next.starts_with("0001-01-01") {
        lines.push(format!(
            "- If submitted now, next periodic launch would be at {next}."
        ));
    }
}

/// Why allocations could not be placed, one `* ...` line per reason.
fn metric_lines(lines: &mut Vec<String>, metric: &AllocationMetric, indent: &str) {
    lines.extend(
        placement_reasons(metric)
            .into_iter()
            .map(|reason| format!("{indent}* {reason}")),
    );
}

/// Why allocations could not be placed, one phrase per reason, in the words of
/// `nomad job plan` (`Dimension "memory" exhausted on 1 nodes`).
pub fn placement_reasons(metric: &AllocationMetric) -> Vec<String> {
    let mut reasons = Vec::new();
    if metric.nodes_evaluated == 0 {
        reasons.push("No nodes were eligible for evaluation".to_owned());
    }
    for (datacenter, available) in &metric.nodes_available {
        if *available == 0 {
            reasons.push(format!(
                "No nodes are available in datacenter {}",
                quote(datacenter)
            ));
        }
    }
    for (class, n) in &metric.class_filtered {
        reasons.push(format!(
            "Class {}: {n} nodes excluded by filter",
            quote(class)
        ));
    }
    for (constraint, n) in &metric.constraint_filtered {
        reasons.push(format!(
            "Constraint {}: {n} nodes excluded by filter",
            quote(constraint)
        ));
    }
    if metric.nodes_exhausted > 0 {
        reasons.push(format!(
            "Resources exhausted on {} nodes",
            metric.nodes_exhausted
        ));
    }
    for (class, n) in &metric.class_exhausted {
        reasons.push(format!("Class {} exhausted on {n} nodes", quote(class)));
    }
    for (dimension, n) in &metric.dimension_exhausted {
        reasons.push(format!(
            "Dimension {} exhausted on {n} nodes",
            quote(dimension)
        ));
    }
    for quota in &metric.quota_exhausted {
        reasons.push(format!("Quota limit hit {}", quote(quota)));
    }
    reasons
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nomad::types::{DesiredUpdates, PlanAnnotations};

    fn decode(text: &str) -> JobPlanResponse {
        serde_json::from_str(text).expect("plan fixture")
    }

    fn edited() -> JobPlanResponse {
        decode(include_str!("../tests/fixtures/nomad/job-plan-edited.json"))
    }

    fn unchanged() -> JobPlanResponse {
        decode(include_str!(
            "../tests/fixtures/nomad/job-plan-unchanged.json"
        ))
    }

    fn new() -> JobPlanResponse {
        decode(include_str!("../tests/fixtures/nomad/job-plan-new.json"))
    }

    fn unplaceable() -> JobPlanResponse {
        decode(include_str!(
            "../tests/fixtures/nomad/job-plan-unplaceable.json"
        ))
    }

    fn periodic() -> JobPlanResponse {
        decode(include_str!(
            "../tests/fixtures/nomad/job-plan-periodic.json"
        ))
    }

    fn field(kind: DiffType, name: &str, old: &str, new: &str) -> FieldDiff {
        FieldDiff {
            r#type: kind,
            name: name.to_owned(),
            old: old.to_owned(),
            new: new.to_owned(),
            annotations: Vec::new(),
        }
    }

    fn object(kind: DiffType, name: &str, fields: Vec<FieldDiff>) -> ObjectDiff {
        ObjectDiff {
            r#type: kind,
            name: name.to_owned(),
            fields,
            objects: Vec::new(),
        }
    }

    /// Whether a line of the diff starts with a diff marker.
    #[test]
    fn warnings_read_as_one_line_without_multierror_headers() {
        let raw = "1 warning(s):\n\n* Group \"web\" has warnings: 1 error occurred:\n\t* Update max parallel count is greater than task group count (3 > 1). A destructive change would result in the simultaneous replacement of all allocations.\n\n";
        assert_eq!(
            warnings_text(raw).as_deref(),
            Some(
                "Group \"web\" has warnings: Update max parallel count is greater than task group count (3 > 1). A destructive change would result in the simultaneous replacement of all allocations."
            )
        );
        assert_eq!(warnings_text(" \n"), None);
        assert_eq!(
            warnings_text("2 errors occurred: * a * b").as_deref(),
            Some("a b")
        );
    }

    fn is_diff_line(line: &str) -> bool {
        let line = line.trim_start();
        ["+ ", "- ", "+/- ", "~ "]
            .iter()
            .any(|m| line.starts_with(m))
    }

    #[test]
    fn an_edited_command_argument() {
        let plan = edited();
        assert_eq!(
            plan_text(&plan),
            concat!(
                "+/- Job: \"web\"\n",
                "+/- Task Group: \"web\" (1 create/destroy update)\n",
                "  +/- Task: \"server\" (forces create/destroy update)\n",
                "    +/- Config {\n",
                "      +/- args[0]: \"3600\" => \"3601\"\n",
                "        }\n",
                "\n",
                "Scheduler dry-run:\n",
                "- All tasks successfully allocated.\n",
            )
        );
        assert!(has_changes(&plan));
        assert_eq!(
            group_summary(&plan),
            [GroupChange {
                group: "web".to_owned(),
                destructive: 1,
                ..GroupChange::default()
            }]
        );
    }

    #[test]
    fn the_unchanged_context_field_is_left_out() {
        let text = plan_text(&edited());
        assert!(!text.contains("command"), "{text}");
        assert!(!text.contains("/bin/sleep"), "{text}");
    }

    #[test]
    fn an_unchanged_job() {
        let plan = unchanged();
        let text = plan_text(&plan);
        assert_eq!(
            text,
            concat!(
                "Job: \"web\"\n",
                "Task Group: \"web\" (1 ignore)\n",
                "  Task: \"server\"\n",
                "\n",
                "Scheduler dry-run:\n",
                "- All tasks successfully allocated.\n",
            )
        );
        let diff = text.split("Scheduler dry-run:").next().unwrap_or_default();
        assert!(!diff.lines().any(is_diff_line), "{text}");
        assert!(!has_changes(&plan));
        assert_eq!(
            group_summary(&plan),
            [GroupChange {
                group: "web".to_owned(),
                ignore: 1,
                ..GroupChange::default()
            }]
        );
    }

    #[test]
    fn a_new_job_shows_its_headers_only() {
        let plan = new();
        assert_eq!(
            plan_text(&plan),
            concat!(
                "+ Job: \"web\"\n",
                "+ Task Group: \"web\" (1 create)\n",
                "  + Task: \"server\" (forces create)\n",
                "\n",
                "Scheduler dry-run:\n",
                "- All tasks successfully allocated.\n",
            )
        );
        assert!(has_changes(&plan));
        assert_eq!(
            group_summary(&plan),
            [GroupChange {
                group: "web".to_owned(),
                create: 1,
                ..GroupChange::default()
            }]
        );
    }

    #[test]
    fn an_unplaceable_job() {
        let plan = unplaceable();
        assert_eq!(
            plan_text(&plan),
            concat!(
                "Scheduler dry-run:\n",
                "- WARNING: Failed to place all allocations.\n",
                "  Task Group \"huge\" (failed to place 1 allocation):\n",
                "    * Resources exhausted on 1 nodes\n",
                "    * Dimension \"memory\" exhausted on 1 nodes\n",
            )
        );
        // Planned without a diff: the scheduler's placement counts as a change.
        assert!(has_changes(&plan));
        assert_eq!(
            group_summary(&plan),
            [GroupChange {
                group: "huge".to_owned(),
                create: 1,
                failed_placements: 1,
                ..GroupChange::default()
            }]
        );
    }

    #[test]
    fn a_periodic_job_shows_its_next_launch() {
        let plan = periodic();
        assert_eq!(
            plan_text(&plan),
            concat!(
                "Job: \"nightly\"\n",
                "Task Group: \"nightly\" (1 create)\n",
                "  Task: \"once\"\n",
                "\n",
                "Scheduler dry-run:\n",
                "- All tasks successfully allocated.\n",
                "- If submitted now, next periodic launch would be at 2026-12-02T03:00:00Z.\n",
            )
        );
        assert!(!has_changes(&plan));
        assert_eq!(group_summary(&plan)[0].create, 1);
    }

    #[test]
    fn the_zero_time_is_no_periodic_launch() {
        let plan = JobPlanResponse {
            next_periodic_launch: "0001-01-01T00:00:00Z".to_owned(),
            ..JobPlanResponse::default()
        };
        assert_eq!(
            plan_text(&plan),
            "Scheduler dry-run:\n- All tasks successfully allocated.\n"
        );
        assert!(!has_changes(&plan));
        assert!(group_summary(&plan).is_empty());
    }

    /// An edited job with added, deleted, edited and unchanged fields and objects, an
    /// edited and an unchanged group, an added, a deleted and an edited task.
    fn hand_built() -> JobPlanResponse {
        let mut count = field(DiffType::Edited, "Count", "1", "3");
        count.annotations = vec!["forces create".to_owned()];
        let mut update = object(
            DiffType::Edited,
            "Update",
            vec![field(DiffType::Edited, "MaxParallel", "1", "2")],
        );
        update.objects = vec![object(
            DiffType::Added,
            "Canary",
            vec![field(DiffType::Added, "Count", "", "1")],
        )];
        let edited_group = TaskGroupDiff {
            r#type: DiffType::Edited,
            name: "web".to_owned(),
            fields: vec![count, field(DiffType::None, "Name", "web", "web")],
            objects: vec![
                update,
                object(
                    DiffType::None,
                    "EphemeralDisk",
                    vec![field(DiffType::None, "SizeMB", "300", "300")],
                ),
            ],
            tasks: vec![
                TaskDiff {
                    r#type: DiffType::Added,
                    name: "sidecar".to_owned(),
                    fields: vec![field(DiffType::Added, "Driver", "", "docker")],
                    annotations: vec!["forces create".to_owned()],
                    ..TaskDiff::default()
                },
                TaskDiff {
                    r#type: DiffType::Deleted,
                    name: "old".to_owned(),
                    annotations: vec!["forces destroy".to_owned()],
                    ..TaskDiff::default()
                },
                TaskDiff {
                    r#type: DiffType::Edited,
                    name: "server".to_owned(),
                    fields: vec![
                        field(DiffType::Added, "Leader", "", "true"),
                        field(DiffType::Deleted, "User", "nobody", ""),
                    ],
                    objects: vec![object(
                        DiffType::Deleted,
                        "Env",
                        vec![field(DiffType::Deleted, "MODE", "a \"b\"\n", "")],
                    )],
                    annotations: vec!["forces in-place update".to_owned()],
                },
            ],
            updates: BTreeMap::from([
                ("in-place update".to_owned(), 2),
                ("create".to_owned(), 1),
                ("destroy".to_owned(), 1),
            ]),
        };
        let unchanged_group = TaskGroupDiff {
            r#type: DiffType::None,
            name: "api".to_owned(),
            tasks: vec![TaskDiff {
                name: "api".to_owned(),
                ..TaskDiff::default()
            }],
            updates: BTreeMap::from([("ignore".to_owned(), 2)]),
            ..TaskGroupDiff::default()
        };
        JobPlanResponse {
            job_modify_index: 12,
            diff: Some(JobDiff {
                r#type: DiffType::Edited,
                id: "web".to_owned(),
                fields: vec![
                    field(DiffType::Edited, "Priority", "50", "70"),
                    field(DiffType::Added, "Namespace", "", "prod"),
                    field(DiffType::Deleted, "Region", "eu", ""),
                    field(DiffType::None, "Type", "service", "service"),
                ],
                objects: vec![
                    object(
                        DiffType::Added,
                        "Constraint",
                        vec![
                            field(DiffType::Added, "LTarget", "", "${attr.kernel.name}"),
                            field(DiffType::Added, "Operand", "", "="),
                            field(DiffType::Added, "RTarget", "", "linux"),
                        ],
                    ),
                    object(
                        DiffType::Deleted,
                        "Datacenters",
                        vec![field(DiffType::Deleted, "Datacenters", "dc2", "")],
                    ),
                    object(
                        DiffType::None,
                        "Meta",
                        vec![field(DiffType::None, "team", "a", "a")],
                    ),
                ],
                task_groups: vec![unchanged_group, edited_group],
            }),
            annotations: Some(PlanAnnotations {
                desired_tg_updates: BTreeMap::from([
                    (
                        "web".to_owned(),
                        DesiredUpdates {
                            place: 1,
                            stop: 1,
                            in_place_update: 2,
                            ..DesiredUpdates::default()
                        },
                    ),
                    (
                        "api".to_owned(),
                        DesiredUpdates {
                            ignore: 2,
                            ..DesiredUpdates::default()
                        },
                    ),
                ]),
            }),
            warnings: "1 warning(s):\n\n* Group \"web\" has no update strategy\n".to_owned(),
            ..JobPlanResponse::default()
        }
    }

    #[test]
    fn added_deleted_and_edited_fields_and_objects() {
        let plan = hand_built();
        assert_eq!(
            plan_text(&plan),
            concat!(
                "+/- Job: \"web\"\n",
                "+/- Priority:  \"50\" => \"70\"\n",
                "+   Namespace: \"prod\"\n",
                "-   Region:    \"eu\"\n",
                "+   Constraint {\n",
                "    + LTarget: \"${attr.kernel.name}\"\n",
                "    + Operand: \"=\"\n",
                "    + RTarget: \"linux\"\n",
                "    }\n",
                "-   Datacenters {\n",
                "    - Datacenters: \"dc2\"\n",
                "    }\n",
                "    Task Group: \"api\" (2 ignore)\n",
                "      Task: \"api\"\n",
                "\n",
                "+/- Task Group: \"web\" (1 create, 1 destroy, 2 in-place update)\n",
                "  +/- Count: \"1\" => \"3\" (forces create)\n",
                "  +/- Update {\n",
                "    +/- MaxParallel: \"1\" => \"2\"\n",
                "    +   Canary {\n",
                "        + Count: \"1\"\n",
                "        }\n",
                "      }\n",
                "  +   Task: \"sidecar\" (forces create)\n",
                "  -   Task: \"old\" (forces destroy)\n",
                "  +/- Task: \"server\" (forces in-place update)\n",
                "    + Leader: \"true\"\n",
                "    - User:   \"nobody\"\n",
                "    - Env {\n",
                "      - MODE: \"a \\\"b\\\"\\n\"\n",
                "      }\n",
                "\n",
                "Scheduler dry-run:\n",
                "- All tasks successfully allocated.\n",
                "\n",
                "Job Warnings:\n",
                "1 warning(s):\n",
                "\n",
                "* Group \"web\" has no update strategy\n",
            )
        );
        assert!(has_changes(&plan));
        assert_eq!(
            group_summary(&plan),
            [
                GroupChange {
                    group: "api".to_owned(),
                    ignore: 2,
                    ..GroupChange::default()
                },
                GroupChange {
                    group: "web".to_owned(),
                    create: 1,
                    destroy: 1,
                    in_place: 2,
                    ..GroupChange::default()
                },
            ]
        );
    }

    #[test]
    fn a_deleted_job() {
        let plan = JobPlanResponse {
            diff: Some(JobDiff {
                r#type: DiffType::Deleted,
                id: "web".to_owned(),
                fields: vec![field(DiffType::Deleted, "Name", "web", "")],
                task_groups: vec![TaskGroupDiff {
                    r#type: DiffType::Deleted,
                    name: "web".to_owned(),
                    fields: vec![field(DiffType::Deleted, "Count", "1", "")],
                    tasks: vec![TaskDiff {
                        r#type: DiffType::Deleted,
                        name: "server".to_owned(),
                        ..TaskDiff::default()
                    }],
                    updates: BTreeMap::from([("destroy".to_owned(), 1)]),
                    ..TaskGroupDiff::default()
                }],
                ..JobDiff::default()
            }),
            ..JobPlanResponse::default()
        };
        assert_eq!(
            plan_text(&plan),
            concat!(
                "- Job: \"web\"\n",
                "- Task Group: \"web\" (1 destroy)\n",
                "  - Task: \"server\"\n",
                "\n",
                "Scheduler dry-run:\n",
                "- All tasks successfully allocated.\n",
            )
        );
        assert!(has_changes(&plan));
    }

    #[test]
    fn placement_failures_of_several_groups() {
        let plan = JobPlanResponse {
            failed_tg_allocs: BTreeMap::from([
                (
                    "b".to_owned(),
                    AllocationMetric {
                        nodes_evaluated: 0,
                        nodes_available: BTreeMap::from([
                            ("dc1".to_owned(), 3),
                            ("dc9".to_owned(), 0),
                        ]),
                        coalesced_failures: 2,
                        quota_exhausted: vec!["memory exhausted (2048 > 1024)".to_owned()],
                        ..AllocationMetric::default()
                    },
                ),
                (
                    "a".to_owned(),
                    AllocationMetric {
                        nodes_evaluated: 4,
                        nodes_filtered: 3,
                        class_filtered: BTreeMap::from([("gpu".to_owned(), 1)]),
                        constraint_filtered: BTreeMap::from([(
                            "${attr.kernel.name} = windows".to_owned(),
                            2,
                        )]),
                        nodes_exhausted: 1,
                        class_exhausted: BTreeMap::from([("small".to_owned(), 1)]),
                        dimension_exhausted: BTreeMap::from([("cpu".to_owned(), 1)]),
                        ..AllocationMetric::default()
                    },
                ),
            ]),
            annotations: Some(PlanAnnotations {
                desired_tg_updates: BTreeMap::from([(
                    "a".to_owned(),
                    DesiredUpdates {
                        place: 1,
                        canary: 1,
                        migrate: 1,
                        ..DesiredUpdates::default()
                    },
                )]),
            }),
            ..JobPlanResponse::default()
        };
        assert_eq!(
            plan_text(&plan),
            concat!(
                "Scheduler dry-run:\n",
                "- WARNING: Failed to place all allocations.\n",
                "  Task Group \"a\" (failed to place 1 allocation):\n",
                "    * Class \"gpu\": 1 nodes excluded by filter\n",
                "    * Constraint \"${attr.kernel.name} = windows\": 2 nodes excluded by filter\n",
                "    * Resources exhausted on 1 nodes\n",
                "    * Class \"small\" exhausted on 1 nodes\n",
                "    * Dimension \"cpu\" exhausted on 1 nodes\n",
                "\n",
                "  Task Group \"b\" (failed to place 3 allocations):\n",
                "    * No nodes were eligible for evaluation\n",
                "    * No nodes are available in datacenter \"dc9\"\n",
                "    * Quota limit hit \"memory exhausted (2048 > 1024)\"\n",
            )
        );
        assert_eq!(
            group_summary(&plan),
            [
                GroupChange {
                    group: "a".to_owned(),
                    create: 1,
                    canary: 1,
                    migrate: 1,
                    failed_placements: 1,
                    ..GroupChange::default()
                },
                GroupChange {
                    group: "b".to_owned(),
                    failed_placements: 3,
                    ..GroupChange::default()
                },
            ]
        );
    }

    #[test]
    fn a_task_group_without_updates_has_no_parentheses() {
        let plan = JobPlanResponse {
            diff: Some(JobDiff {
                id: "web".to_owned(),
                task_groups: vec![TaskGroupDiff {
                    name: "web".to_owned(),
                    ..TaskGroupDiff::default()
                }],
                ..JobDiff::default()
            }),
            ..JobPlanResponse::default()
        };
        assert!(
            plan_text(&plan).starts_with("Job: \"web\"\nTask Group: \"web\"\n\nScheduler"),
            "{}",
            plan_text(&plan)
        );
    }

    #[test]
    fn quoting_follows_go() {
        assert_eq!(quote("plain"), "\"plain\"");
        assert_eq!(quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(quote("t\tn\nr\r"), "\"t\\tn\\nr\\r\"");
        assert_eq!(quote("\u{1}\u{7f}\u{85}"), "\"\\x01\\x7f\\u0085\"");
        assert_eq!(quote("héllo ✓"), "\"héllo ✓\"");
    }

    #[test]
    fn group_change_serializes_in_camel_case() {
        let value = serde_json::to_value(GroupChange {
            group: "web".to_owned(),
            in_place: 2,
            failed_placements: 1,
            ..GroupChange::default()
        })
        .expect("json");
        assert_eq!(
            value,
            serde_json::json!({
                "group": "web",
                "create": 0,
                "destroy": 0,
                "inPlace": 2,
                "destructive": 0,
                "canary": 0,
                "ignore": 0,
                "migrate": 0,
                "failedPlacements": 1,
            })
        );
    }
}
