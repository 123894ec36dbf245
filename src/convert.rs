//! `nomad-operator convert JOB.hcl`: a NomadJob manifest from a Nomad jobspec, so that an
//! estate of HCL files becomes manifests in one loop.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{Value, json};

use crate::crd::GROUP;
use crate::jobspec::{self, Jobspec, ParseError, ParseSupport, flag_values};
use crate::nomad::{NomadClient, NomadConfig};

/// Settings of `nomad-operator convert`.
#[derive(clap::Args, Clone, Debug)]
pub struct ConvertArgs {
    /// The jobspec file.
    pub file: PathBuf,

    /// Print the job in Nomad's JSON API form (`spec.job`), parsed by the Nomad at
    /// NOMAD_ADDR, instead of the jobspec itself (`spec.hcl`).
    #[arg(long)]
    pub json: bool,

    /// The file is HCL1 (as `nomad job run -hcl1`).
    #[arg(long)]
    pub hcl1: bool,

    /// A variable value for the jobspec, NAME=VALUE; repeat for several. Kept in
    /// `spec.variables` (or applied by the parse with `--json`).
    #[arg(long = "var", value_parser = crate::jobspec::parse_var)]
    pub vars: Vec<(String, String)>,

    /// `metadata.name` of the manifest. Default: the job's name, made a valid
    /// Kubernetes name (the job ID is then kept in `spec.jobID` when they differ).
    #[arg(long)]
    pub name: Option<String>,

    /// `metadata.namespace` of the manifest (left out by default).
    #[arg(long = "namespace")]
    pub object_namespace: Option<String>,

    /// How to reach Nomad (for `--json`).
    #[command(flatten)]
    pub nomad: NomadConfig,
}

/// Why a conversion failed.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// The file cannot be read.
    #[error("reading {0}: {1}")]
    Read(String, std::io::Error),
    /// The jobspec is wrong, or Nomad could not parse it.
    #[error("{0}")]
    Jobspec(String),
}

/// A Kubernetes object name (DNS-1123 subdomain) made from a Nomad job name.
pub fn object_name(job: &str) -> String {
    let mut name: String = job
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    name.truncate(253);
    let name = name.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    if name.is_empty() {
        "job".to_string()
    } else {
        name.to_string()
    }
}

/// The manifest for `hcl` as YAML text.
pub async fn convert(args: &ConvertArgs) -> Result<String, ConvertError> {
    let path = args.file.display().to_string();
    let hcl = std::fs::read_to_string(&args.file).map_err(|e| ConvertError::Read(path, e))?;
    let job_name = jobspec::job_name(&hcl);
    let spec = if args.json {
        let nomad = NomadClient::new(&args.nomad)
            .map_err(|e| ConvertError::Jobspec(format!("Nomad client: {e}")))?;
        let values = flag_values(&args.vars, true);
        let jobspec = Jobspec {
            hcl: &hcl,
            hcl1: args.hcl1,
        };
        let job = jobspec
            .parse(&nomad, &ParseSupport::default(), &values)
            .await
            .map_err(|e| match e {
                ParseError::Invalid(m) => ConvertError::Jobspec(m),
                ParseError::Nomad(e) => ConvertError::Jobspec(format!("Nomad: {e}")),
            })?;
        json!({ "job": without_server_fields(job) })
    } else {
        let mut spec = json!({ "hcl": hcl });
        if args.hcl1 {
            spec["hcl1"] = json!(true);
        }
        if !args.vars.is_empty() {
            let vars: BTreeMap<&str, &str> = args
                .vars
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            spec["variables"] = json!(vars);
        }
        spec
    };
    let job_id = match (&job_name, &spec["job"]["ID"]) {
        (_, Value::String(id)) => Some(id.clone()),
        (Some(name), _) => Some(name.clone()),
        (None, _) => None,
    };
    let name = match (&args.name, &job_id) {
        (Some(name), _) => name.clone(),
        (None, Some(id)) => object_name(id),
        (None, None) => {
            return Err(ConvertError::Jobspec(format!(
                "{}: no job \"NAME\" block found; pass --name",
                args.file.display()
            )));
        }
    };
    let mut spec = spec;
    if let Some(id) = job_id.filter(|id| *id != name) {
        spec["jobID"] = json!(id);
    }
    let mut metadata = json!({ "name": name });
    if let Some(namespace) = &args.object_namespace {
        metadata["namespace"] = json!(namespace);
    }
    let manifest = json!({
        "apiVersion": format!("{GROUP}/v1alpha1"),
        "kind": "NomadJob",
        "metadata": metadata,
        "spec": spec,
    });
    serde_saphyr::to_string(&manifest).map_err(|e| ConvertError::Jobspec(e.to_string()))
}

/// The parsed job without what the operator fills in itself (`ID`, `Name` when it
/// equals the ID) or Nomad leaves empty, so that the manifest stays short.
fn without_server_fields(mut job: serde_json::Map<String, Value>) -> Value {
    job.retain(|_, v| !v.is_null());
    Value::Object(job)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_are_valid_kubernetes_names() {
        assert_eq!(object_name("web"), "web");
        assert_eq!(object_name("Web_API v2"), "web-api-v2");
        assert_eq!(object_name("__"), "job");
        assert_eq!(object_name("batch.nightly"), "batch.nightly");
    }

    #[tokio::test]
    async fn an_hcl_file_becomes_a_manifest_with_its_jobspec() {
        let dir = std::env::temp_dir().join(format!("convert-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("api.nomad.hcl");
        let hcl = "variable \"n\" {\n  default = 1\n}\njob \"Api_Server\" {\n  group \"g\" {\n    count = var.n\n  }\n}\n";
        std::fs::write(&file, hcl).expect("write");
        let args = ConvertArgs {
            file,
            json: false,
            hcl1: false,
            vars: vec![("n".into(), "2".into())],
            name: None,
            object_namespace: Some("team-a".into()),
            nomad: NomadConfig::new("http://127.0.0.1:9"),
        };
        let yaml = convert(&args).await.expect("convert");
        let manifest: Value = serde_saphyr::from_str(&yaml).expect("yaml");
        assert_eq!(manifest["kind"], "NomadJob");
        assert_eq!(manifest["metadata"]["name"], "api-server");
        assert_eq!(manifest["metadata"]["namespace"], "team-a");
        assert_eq!(manifest["spec"]["jobID"], "Api_Server");
        assert_eq!(manifest["spec"]["hcl"], hcl);
        assert_eq!(manifest["spec"]["variables"]["n"], "2");
        let _ = std::fs::remove_dir_all(dir);
    }
}
