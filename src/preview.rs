//! `nomad-operator plan -f FILE|DIR`: the pull-request preview. Each NomadJob in the
//! manifests is rendered as the operator would render it and planned against the Nomad
//! at NOMAD_ADDR, without a Kubernetes cluster; the result reads like `nomad job plan`.
//!
//! Exit codes as `nomad job plan`: 0 no change, 1 changes, 255 an error (including a
//! job that belongs to another object, which the operator would refuse to touch).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::controller::job_schema::unknown_keys;
use crate::controller::observe::{self, JobView};
use crate::controller::ownership::{Claim, ownership};
use crate::controller::render::{Defaults, json_job, render};
use crate::controller::resolve::unknown_spec_fields;
use crate::controller::send::job_to_send;
use crate::crd::{GROUP, NomadJob};
use crate::jobspec::{Jobspec, ParseError, ParseSupport, flag_values, spec_values};
use crate::nomad::{NomadClient, NomadConfig, Scope};
use crate::plan_text::{GroupChange, group_summary, has_changes, plan_text};

/// Settings of `nomad-operator plan`.
#[derive(clap::Args, Clone, Debug)]
pub struct PlanArgs {
    /// A manifest file (YAML or JSON, several documents allowed) or a directory of them
    /// (`.yaml`, `.yml`, `.json`, searched recursively); repeat for several.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,

    /// Kubernetes namespace of manifests that name none (as `kubectl apply` would use).
    #[arg(long = "namespace", default_value = "default")]
    pub object_namespace: String,

    /// A value for the jobspec variables of `spec.variablesFrom` (ConfigMaps and Secrets
    /// cannot be read without the cluster), NAME=VALUE; repeat for several.
    #[arg(long = "var", value_parser = crate::jobspec::parse_var)]
    pub vars: Vec<(String, String)>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,

    /// How to reach Nomad.
    #[command(flatten)]
    pub nomad: NomadConfig,
}

/// How `plan` prints.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Output {
    /// Text in the style of `nomad job plan`.
    #[default]
    Text,
    /// One JSON document for machines.
    Json,
}

/// What the plan of one object found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    /// Nomad runs the spec already.
    Unchanged,
    /// Registering the spec would change the job.
    Changes,
    /// The job belongs to another object or was not registered by the operator.
    Conflict,
    /// The manifest or the plan failed.
    Error,
}

/// The preview of one object.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Preview {
    /// `namespace/name` of the object.
    pub object: String,
    /// The manifest file it came from.
    pub file: String,
    /// The Nomad job ID, when the spec could be rendered.
    #[serde(rename = "jobID", skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// The Nomad namespace, when the spec could be rendered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nomad_namespace: Option<String>,
    /// What the plan found.
    pub outcome: Outcome,
    /// The plan's top-level diff type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff_type: Option<String>,
    /// What the scheduler would do per task group.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupChange>,
    /// Unknown keys of the spec (warnings).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The plan as `nomad job plan` would print it, or what went wrong.
    pub text: String,
}

/// The exit code for a set of previews: 255 if any failed or conflicts, else 1 if any
/// changes, else 0.
pub fn exit_code(previews: &[Preview]) -> u8 {
    if previews
        .iter()
        .any(|p| matches!(p.outcome, Outcome::Error | Outcome::Conflict))
    {
        255
    } else if previews.iter().any(|p| p.outcome == Outcome::Changes) {
        1
    } else {
        0
    }
}

/// Plans every NomadJob in the manifests; the errors of one object are in its preview.
/// Fails as a whole only when a file cannot be read or Nomad's client cannot be set up.
pub async fn plan(args: &PlanArgs) -> Result<Vec<Preview>, String> {
    let nomad = NomadClient::new(&args.nomad).map_err(|e| format!("Nomad client: {e}"))?;
    let support = ParseSupport::default();
    let defaults = Defaults {
        namespace: args.nomad.namespace.clone(),
        region: args.nomad.region.clone(),
    };
    let mut previews = Vec::new();
    for file in manifest_files(&args.files)? {
        let text = std::fs::read_to_string(&file)
            .map_err(|e| format!("reading {}: {e}", file.display()))?;
        let documents: Vec<Value> = serde_saphyr::from_multiple(&text)
            .map_err(|e| format!("{}: not YAML or JSON: {e}", file.display()))?;
        for document in documents.into_iter().flat_map(items) {
            if !is_nomad_job(&document) {
                continue;
            }
            let ctx = Planner {
                nomad: &nomad,
                support: &support,
                defaults: &defaults,
                vars: &args.vars,
            };
            previews.push(ctx.preview(document, &file, &args.object_namespace).await);
        }
    }
    Ok(previews)
}

/// The objects of a document: itself, or the items of a `List`.
fn items(document: Value) -> Vec<Value> {
    match document {
        Value::Object(mut fields) if fields.get("kind").and_then(Value::as_str) == Some("List") => {
            match fields.remove("items") {
                Some(Value::Array(items)) => items,
                _ => Vec::new(),
            }
        }
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

fn is_nomad_job(document: &Value) -> bool {
    document.get("kind").and_then(Value::as_str) == Some("NomadJob")
        && document
            .get("apiVersion")
            .and_then(Value::as_str)
            .is_some_and(|v| v.starts_with(&format!("{GROUP}/")))
}

/// The manifest files of `paths`, directories searched recursively, in name order.
fn manifest_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for path in paths {
        collect(path, &mut files, true)?;
    }
    Ok(files)
}

fn collect(path: &Path, files: &mut Vec<PathBuf>, named: bool) -> Result<(), String> {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for entry in entries {
            collect(&entry, files, false)?;
        }
        Ok(())
    } else if named
        || path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
    {
        files.push(path.to_path_buf());
        Ok(())
    } else {
        Ok(())
    }
}

struct Planner<'a> {
    nomad: &'a NomadClient,
    support: &'a ParseSupport,
    defaults: &'a Defaults,
    vars: &'a [(String, String)],
}

impl Planner<'_> {
    async fn preview(&self, document: Value, file: &Path, namespace: &str) -> Preview {
        let name = document["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let namespace = document["metadata"]["namespace"]
            .as_str()
            .unwrap_or(namespace)
            .to_string();
        let mut preview = Preview {
            object: format!("{namespace}/{name}"),
            file: file.display().to_string(),
            job_id: None,
            nomad_namespace: None,
            outcome: Outcome::Error,
            diff_type: None,
            groups: Vec::new(),
            warnings: Vec::new(),
            text: String::new(),
        };
        let mut obj: NomadJob = match serde_json::from_value(document) {
            Ok(obj) => obj,
            Err(e) => {
                preview.text = format!("not a valid NomadJob: {e}");
                return preview;
            }
        };
        obj.metadata.namespace = Some(namespace);
        if let Err(message) = self.run(&mut obj, &mut preview).await {
            preview.outcome = Outcome::Error;
            preview.text = message;
        }
        preview
    }

    async fn run(&self, obj: &mut NomadJob, preview: &mut Preview) -> Result<(), String> {
        let mut warnings = unknown_spec_fields(obj);
        let (job, root) = match json_job(obj).map_err(|e| e.to_string())? {
            Some(job) => {
                warnings.extend(unknown_keys(&job).iter().map(ToString::to_string));
                (job, "spec.job")
            }
            None => (self.parse(obj).await?, "spec.hcl (parsed)"),
        };
        if obj.spec.strict && !warnings.is_empty() {
            return Err(format!("spec.strict is true and {}", warnings.join("; ")));
        }
        preview.warnings = warnings;
        let first = render(obj, job, root, self.defaults).map_err(|e| e.to_string())?;
        let scope = Scope {
            namespace: Some(first.namespace.clone()),
            region: first.region.clone(),
        };
        preview.job_id = Some(first.id.clone());
        preview.nomad_namespace = Some(first.namespace.clone());
        let existing = observe::read_job(self.nomad, &scope, &first.id)
            .await
            .map_err(|e| format!("reading Nomad job {:?}: {e}", first.id))?;
        let view = existing.as_ref().map(JobView::parse);
        let (namespace, name) = (
            obj.metadata.namespace.clone().unwrap_or_default(),
            obj.metadata.name.clone().unwrap_or_default(),
        );
        // Without the cluster there is no status to prove ownership of a job that lost its
        // owner keys; `spec.adopt` is honoured as the operator would.
        let claim = Claim {
            recorded_create_index: None,
            adopt: obj.spec.adopt,
        };
        if let Some(message) =
            ownership(view.as_ref(), &namespace, &name, claim).conflict_message(&first.id)
        {
            preview.outcome = Outcome::Conflict;
            preview.text = format!("Conflict: {message}\n");
            return Ok(());
        }
        // What the operator would send: owner keys and counts as the live job calls for
        // (the counts recorded at its last register are in the object's status, which a
        // preview does not have: a scaled group's live count is kept).
        let sent = job_to_send(
            &first,
            view.as_ref(),
            &BTreeMap::new(),
            obj.spec.preserve_counts,
            (&namespace, &name),
        );
        let plan = self
            .nomad
            .plan_job(&scope, &first.id, &sent.job, true)
            .await
            .map_err(|e| format!("planning Nomad job {:?}: {e}", first.id))?;
        preview.diff_type = plan.diff_type().map(|t| format!("{t:?}"));
        preview.groups = group_summary(&plan);
        preview.outcome = if has_changes(&plan) {
            Outcome::Changes
        } else {
            Outcome::Unchanged
        };
        preview.text = plan_text(&plan);
        Ok(())
    }

    /// The job of `spec.hcl`, with `spec.variables` and the `--var` values (which stand
    /// in for `spec.variablesFrom`).
    async fn parse(&self, obj: &NomadJob) -> Result<serde_json::Map<String, Value>, String> {
        if !obj.spec.variables_from.is_empty() && self.vars.is_empty() {
            return Err(
                "spec.variablesFrom names ConfigMaps or Secrets, which cannot be read without the cluster; pass their values with --var NAME=VALUE".into(),
            );
        }
        // `spec.variables` win over the flags, as over `variablesFrom`.
        let mut values = flag_values(self.vars, false);
        values.extend(spec_values(&obj.spec.variables));
        let jobspec = Jobspec {
            hcl: obj.spec.hcl.as_deref().unwrap_or_default(),
            hcl1: obj.spec.hcl1,
        };
        jobspec
            .parse(self.nomad, self.support, &values)
            .await
            .map_err(|e| match e {
                ParseError::Invalid(m) => m,
                ParseError::Nomad(e) => format!("Nomad: {e}"),
            })
    }
}

/// The previews as text: per object a header, its warnings and its plan.
pub fn render_text(previews: &[Preview]) -> String {
    let mut out = String::new();
    for p in previews {
        let job = p
            .job_id
            .as_ref()
            .map(|id| {
                format!(
                    " -> Nomad job {id:?} in namespace {:?}",
                    p.nomad_namespace.as_deref().unwrap_or_default()
                )
            })
            .unwrap_or_default();
        let outcome = match p.outcome {
            Outcome::Unchanged => "no change",
            Outcome::Changes => "changes",
            Outcome::Conflict => "conflict",
            Outcome::Error => "error",
        };
        out.push_str(&format!(
            "== NomadJob {} ({}){job}: {outcome}\n",
            p.object, p.file
        ));
        for warning in &p.warnings {
            out.push_str(&format!("Warning: {warning}\n"));
        }
        out.push_str(&p.text);
        if !p.text.ends_with('\n') {
            out.push('\n');
        }
        out.push('\n');
    }
    if previews.is_empty() {
        out.push_str("no NomadJob found in the manifests\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preview(outcome: Outcome) -> Preview {
        Preview {
            object: "ns/a".into(),
            file: "f.yaml".into(),
            job_id: None,
            nomad_namespace: None,
            outcome,
            diff_type: None,
            groups: Vec::new(),
            warnings: Vec::new(),
            text: String::new(),
        }
    }

    #[test]
    fn exit_codes_follow_nomad_job_plan() {
        assert_eq!(exit_code(&[]), 0);
        assert_eq!(exit_code(&[preview(Outcome::Unchanged)]), 0);
        assert_eq!(
            exit_code(&[preview(Outcome::Unchanged), preview(Outcome::Changes)]),
            1
        );
        assert_eq!(
            exit_code(&[preview(Outcome::Changes), preview(Outcome::Conflict)]),
            255
        );
        assert_eq!(exit_code(&[preview(Outcome::Error)]), 255);
    }

    #[test]
    fn only_nomad_jobs_are_planned_also_from_lists() {
        let list = serde_json::json!({"kind": "List", "items": [
            {"apiVersion": "nomadoperator.dev/v1alpha1", "kind": "NomadJob"},
            {"apiVersion": "v1", "kind": "ConfigMap"}
        ]});
        let objects: Vec<Value> = items(list).into_iter().filter(is_nomad_job).collect();
        assert_eq!(objects.len(), 1);
        assert!(!is_nomad_job(
            &serde_json::json!({"apiVersion": "other/v1", "kind": "NomadJob"})
        ));
    }

    #[test]
    fn directories_are_searched_for_manifests_in_name_order() {
        let dir = std::env::temp_dir().join(format!("plan-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).expect("dir");
        for name in ["b.yaml", "a.json", "notes.txt", "sub/c.yml"] {
            std::fs::write(dir.join(name), "").expect("write");
        }
        let files = manifest_files(std::slice::from_ref(&dir)).expect("files");
        let names: Vec<String> = files
            .iter()
            .map(|f| f.strip_prefix(&dir).expect("in dir").display().to_string())
            .collect();
        assert_eq!(names, ["a.json", "b.yaml", "sub/c.yml"]);
        let _ = std::fs::remove_dir_all(dir);
    }
}
