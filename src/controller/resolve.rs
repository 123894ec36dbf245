//! The spec as the decisions see it: the Nomad job to register, from `spec.job` as given
//! or from `spec.hcl` parsed by Nomad with its variables (read from `spec.variables` and
//! the ConfigMaps and Secrets of `spec.variablesFrom`), plus the warnings about keys
//! Nomad or this API do not know.
//!
//! A jobspec is parsed once per change of its text or values: the parsed job is kept per
//! object under the digest of both ([`ParsedJobs`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;
use kube::runtime::reflector::ObjectRef;
use serde_json::{Map, Value};

use crate::crd::{NomadJob, NomadJobSpec, VariablesSource};
use crate::jobspec::{Jobspec, ParseError, Redactor, Values, VarValue, spec_values};

use super::classify::Spec;
use super::connection::Route;
use super::context::Context;
use super::error::Error;
use super::job_schema::unknown_keys;
use super::render::{InvalidSpec, json_job, render};

/// What the reconcile works from.
pub struct Resolved {
    /// The spec as the decisions see it.
    pub spec: Spec,
    /// Keys Nomad's job schema or this API does not have (empty when `spec.strict` made
    /// them an error).
    pub warnings: Vec<String>,
    /// Hides the values of Secrets in what the reconcile shows.
    pub redactor: Redactor,
    /// Why the job could not be produced right now (Nomad or the API server could not be
    /// asked); `spec` is then [`Spec::Unresolved`].
    pub error: Option<Error>,
}

impl Resolved {
    fn invalid(message: String, warnings: Vec<String>, redactor: Redactor) -> Self {
        Self {
            spec: Spec::Invalid(message),
            warnings,
            redactor,
            error: None,
        }
    }
}

/// Resolves `obj`'s spec, parsing an HCL jobspec through `route`.
pub async fn resolve(obj: &NomadJob, ctx: &Context, route: &Route) -> Resolved {
    let mut warnings = unknown_spec_fields(obj);
    if obj.spec.suspend {
        return Resolved {
            spec: Spec::Suspended,
            warnings,
            redactor: Redactor::default(),
            error: None,
        };
    }
    let json = match json_job(obj) {
        Ok(json) => json,
        Err(e) => return Resolved::invalid(e.to_string(), warnings, Redactor::default()),
    };
    let (job, root, redactor) = match json {
        Some(job) => {
            warnings.extend(unknown_keys(&job).iter().map(ToString::to_string));
            (job, "spec.job", Redactor::default())
        }
        None => {
            let values = match values(obj, ctx).await {
                Ok(values) => values,
                Err(Unavailable::Invalid(message)) => {
                    return Resolved::invalid(message, warnings, Redactor::default());
                }
                Err(Unavailable::Kube(e)) => {
                    return Resolved {
                        spec: Spec::Unresolved,
                        warnings,
                        redactor: Redactor::default(),
                        error: Some(Error::Kube(e)),
                    };
                }
            };
            let redactor = Redactor::of(&values);
            match parsed(obj, ctx, route, &values).await {
                Ok(job) => (job, "spec.hcl (parsed)", redactor),
                Err(ParseError::Invalid(message)) => {
                    return Resolved::invalid(redactor.text(&message), warnings, redactor);
                }
                Err(ParseError::Nomad(e)) => {
                    return Resolved {
                        spec: Spec::Unresolved,
                        warnings,
                        redactor,
                        error: Some(Error::Nomad(e)),
                    };
                }
            }
        }
    };
    if obj.spec.strict && !warnings.is_empty() {
        let message = format!("spec.strict is true and {}", warnings.join("; "));
        return Resolved::invalid(message, Vec::new(), redactor);
    }
    let spec = match render(obj, job, root, &route.defaults) {
        Ok(desired) => Spec::Desired(desired),
        Err(InvalidSpec { field, message }) => {
            Spec::Invalid(redactor.text(&format!("{field}: {message}")))
        }
    };
    Resolved {
        spec,
        warnings,
        redactor,
        error: None,
    }
}

/// The job `obj` asks for as far as it is known without asking anyone (for deletion of
/// an object whose status recorded no job): `spec.job` rendered, or the last parse of
/// `spec.hcl`.
pub fn known_job(
    obj: &NomadJob,
    ctx: &Context,
    defaults: &super::render::Defaults,
) -> Option<super::render::DesiredJob> {
    let (job, root) = match json_job(obj).ok()? {
        Some(job) => (job, "spec.job"),
        None => (
            ctx.parsed
                .latest(&ObjectRef::from_obj(obj))?
                .as_ref()
                .clone(),
            "spec.hcl (parsed)",
        ),
    };
    render(obj, job, root, defaults).ok()
}

/// The fields a `NomadJob` spec has, from its schema.
fn spec_fields() -> &'static [String] {
    static FIELDS: OnceLock<Vec<String>> = OnceLock::new();
    FIELDS.get_or_init(|| {
        let schema = schemars::schema_for!(NomadJobSpec);
        schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default()
    })
}

/// kubectl's record of the manifest it last applied, before the API server pruned it.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The fields of `obj`'s spec this API does not have: those it was given (an object
/// decoded from elsewhere), and those of the manifest kubectl last applied, which the
/// API server pruned (`kubectl apply --validate=false`; plain `kubectl apply`, Helm and
/// Argo CD refuse them before they reach the cluster).
pub fn unknown_fields(obj: &NomadJob) -> Vec<String> {
    let mut keys: Vec<String> = obj.spec.unknown_fields.keys().cloned().collect();
    let applied = obj
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(LAST_APPLIED))
        .and_then(|text| serde_json::from_str::<Value>(text).ok());
    if let Some(Value::Object(spec)) = applied.as_ref().and_then(|m| m.get("spec")) {
        keys.extend(
            spec.keys()
                .filter(|k| !spec_fields().iter().any(|f| f == *k))
                .cloned(),
        );
    }
    keys.sort();
    keys.dedup();
    keys
}

/// Warnings for the fields of `obj`'s spec this API does not have, with the nearest one.
pub fn unknown_spec_fields(obj: &NomadJob) -> Vec<String> {
    unknown_fields(obj)
        .iter()
        .map(|key| {
            let nearest = nearest_spec_field(key)
                .map(|f| format!(" (did you mean {f:?}?)"))
                .unwrap_or_default();
            format!("spec: unknown field {key:?}{nearest}; it is ignored")
        })
        .collect()
}

/// An unknown field of `obj`'s spec that looks like `deletionPolicy`: deleting the
/// object would then apply a policy the user did not mean.
pub fn mistyped_deletion_policy(obj: &NomadJob) -> Option<String> {
    unknown_fields(obj)
        .into_iter()
        .find(|key| nearest_spec_field(key) == Some("deletionPolicy"))
}

/// The spec field nearest to `key`, when it is close.
fn nearest_spec_field(key: &str) -> Option<&'static str> {
    spec_fields()
        .iter()
        .map(|f| {
            (
                strsim::jaro_winkler(&key.to_lowercase(), &f.to_lowercase()),
                f,
            )
        })
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, f)| f.as_str())
}

/// The object's parsed jobspec: from the cache when its text and values have not
/// changed, else from Nomad.
async fn parsed(
    obj: &NomadJob,
    ctx: &Context,
    route: &Route,
    values: &Values,
) -> Result<Map<String, Value>, ParseError> {
    let jobspec = Jobspec {
        hcl: obj.spec.hcl.as_deref().unwrap_or_default(),
        hcl1: obj.spec.hcl1,
    };
    let key = ObjectRef::from_obj(obj);
    let digest = jobspec.digest(values);
    if let Some(job) = ctx.parsed.get(&key, &digest) {
        return Ok(job.as_ref().clone());
    }
    let job = jobspec
        .parse(&route.nomad, &route.parse_support, values)
        .await?;
    ctx.parsed.insert(key, digest, Arc::new(job.clone()));
    Ok(job)
}

/// Why the values could not be read.
enum Unavailable {
    /// Something the user must fix (a missing ConfigMap, a key that is not text).
    Invalid(String),
    /// The API server could not be asked.
    Kube(kube::Error),
}

/// The variable values of `obj`: its ConfigMaps and Secrets in order, then
/// `spec.variables` (which win). Records which sources the object reads, so that a
/// change of one reconciles it.
async fn values(obj: &NomadJob, ctx: &Context) -> Result<Values, Unavailable> {
    let namespace = obj.metadata.namespace.clone().unwrap_or_default();
    let sources = &obj.spec.variables_from;
    let keys: Vec<SourceKey> = sources
        .iter()
        .filter_map(|s| SourceKey::of(s, &namespace))
        .collect();
    ctx.sources.record(ObjectRef::from_obj(obj), keys);
    if !sources.is_empty() && !ctx.variables_from {
        return Err(Unavailable::Invalid(
            "spec.variablesFrom: this operator does not read ConfigMaps and Secrets; enable it with the chart value variablesFrom.enabled (the --variables-from flag), or use spec.variables".into(),
        ));
    }
    let mut values = Values::new();
    for (i, source) in sources.iter().enumerate() {
        let at = format!("spec.variablesFrom[{i}]");
        let prefix = source.prefix.clone().unwrap_or_default();
        let entries = read_source(ctx, &namespace, source, &at).await?;
        for (key, (text, secret, origin)) in entries {
            values.insert(
                format!("{prefix}{key}"),
                VarValue {
                    text,
                    secret,
                    origin,
                    required: false,
                },
            );
        }
    }
    values.extend(spec_values(&obj.spec.variables));
    Ok(values)
}

/// A source's entries: key → (value, from a Secret, origin for messages).
type Entries = BTreeMap<String, (String, bool, String)>;

async fn read_source(
    ctx: &Context,
    namespace: &str,
    source: &VariablesSource,
    at: &str,
) -> Result<Entries, Unavailable> {
    match (&source.config_map_ref, &source.secret_ref) {
        (Some(r), None) => {
            let api: Api<ConfigMap> = Api::namespaced(ctx.kube.clone(), namespace);
            match api.get_opt(&r.name).await.map_err(Unavailable::Kube)? {
                Some(cm) => Ok(cm
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| {
                        let origin = format!("{at} (ConfigMap {:?}, key {k:?})", r.name);
                        (k, (v, false, origin))
                    })
                    .collect()),
                None if r.optional => Ok(Entries::new()),
                None => Err(missing(at, "ConfigMap", &r.name, namespace)),
            }
        }
        (None, Some(r)) => {
            let api: Api<Secret> = Api::namespaced(ctx.kube.clone(), namespace);
            match api.get_opt(&r.name).await.map_err(Unavailable::Kube)? {
                Some(secret) => {
                    let mut entries = Entries::new();
                    for (k, v) in secret.data.unwrap_or_default() {
                        let origin = format!("{at} (Secret {:?}, key {k:?})", r.name);
                        let text = String::from_utf8(v.0).map_err(|_| {
                            Unavailable::Invalid(format!(
                                "{origin}: the value is not UTF-8 text, so it cannot be a variable"
                            ))
                        })?;
                        entries.insert(k, (text, true, origin));
                    }
                    Ok(entries)
                }
                None if r.optional => Ok(Entries::new()),
                None => Err(missing(at, "Secret", &r.name, namespace)),
            }
        }
        _ => Err(Unavailable::Invalid(format!(
            "{at}: set exactly one of configMapRef and secretRef"
        ))),
    }
}

fn missing(at: &str, kind: &str, name: &str, namespace: &str) -> Unavailable {
    Unavailable::Invalid(format!(
        "{at}: {kind} {name:?} does not exist in namespace {namespace:?}; create it (the job is planned as soon as it exists) or mark the reference optional"
    ))
}

/// A ConfigMap or Secret: (kind, namespace, name).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SourceKey {
    /// `ConfigMap` or `Secret`.
    pub kind: &'static str,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl SourceKey {
    fn of(source: &VariablesSource, namespace: &str) -> Option<Self> {
        let (kind, r) = match (&source.config_map_ref, &source.secret_ref) {
            (Some(r), None) => ("ConfigMap", r),
            (None, Some(r)) => ("Secret", r),
            _ => return None,
        };
        Some(Self {
            kind,
            namespace: namespace.to_string(),
            name: r.name.clone(),
        })
    }
}

/// Which objects read which ConfigMaps and Secrets, for turning their changes into
/// reconciles.
#[derive(Default)]
pub struct SourceIndex {
    readers: Mutex<HashMap<SourceKey, HashSet<ObjectRef<NomadJob>>>>,
    read_by: Mutex<HashMap<ObjectRef<NomadJob>, Vec<SourceKey>>>,
}

impl SourceIndex {
    /// Records that `obj` reads exactly `sources`.
    pub fn record(&self, obj: ObjectRef<NomadJob>, sources: Vec<SourceKey>) {
        let mut read_by = self.read_by.lock().unwrap_or_else(|p| p.into_inner());
        let mut readers = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        for old in read_by.remove(&obj).unwrap_or_default() {
            if let Some(set) = readers.get_mut(&old) {
                set.remove(&obj);
                if set.is_empty() {
                    readers.remove(&old);
                }
            }
        }
        for source in &sources {
            readers
                .entry(source.clone())
                .or_default()
                .insert(obj.clone());
        }
        if !sources.is_empty() {
            read_by.insert(obj, sources);
        }
    }

    /// Forgets `obj`.
    pub fn forget(&self, obj: &ObjectRef<NomadJob>) {
        self.record(obj.clone(), Vec::new());
    }

    /// The objects that read `source`.
    pub fn readers(&self, source: &SourceKey) -> Vec<ObjectRef<NomadJob>> {
        self.readers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(source)
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// A parsed job, shared between the cache and the reconciles.
type SharedJob = Arc<Map<String, Value>>;

/// The parsed jobspec of each object, under the digest of its text and values.
#[derive(Default)]
pub struct ParsedJobs {
    jobs: Mutex<HashMap<ObjectRef<NomadJob>, (String, SharedJob)>>,
}

impl ParsedJobs {
    /// The job parsed for `obj` from the jobspec and values of `digest`.
    pub fn get(&self, obj: &ObjectRef<NomadJob>, digest: &str) -> Option<Arc<Map<String, Value>>> {
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        jobs.get(obj)
            .filter(|(d, _)| d == digest)
            .map(|(_, job)| job.clone())
    }

    /// Remembers `job` as `obj`'s parse of `digest` (replacing an older one).
    pub fn insert(&self, obj: ObjectRef<NomadJob>, digest: String, job: Arc<Map<String, Value>>) {
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(obj, (digest, job));
    }

    /// The job last parsed for `obj`, whatever its digest.
    pub fn latest(&self, obj: &ObjectRef<NomadJob>) -> Option<Arc<Map<String, Value>>> {
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        jobs.get(obj).map(|(_, job)| job.clone())
    }

    /// Forgets `obj`.
    pub fn forget(&self, obj: &ObjectRef<NomadJob>) {
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(obj);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_spec_fields_name_the_nearest_field() {
        let spec: NomadJobSpec = serde_json::from_value(serde_json::json!({
            "hcl": "job \"x\" {}",
            "zzzqqq": 1
        }))
        .expect("spec");
        let mut obj = NomadJob::new("web", spec);
        // What kubectl applied before the API server pruned the unknown field.
        let applied =
            serde_json::json!({"spec": {"hcl": "job \"x\" {}", "deletion_policy": "Orphan"}});
        obj.metadata.annotations = Some([(LAST_APPLIED.to_string(), applied.to_string())].into());
        let warnings = unknown_spec_fields(&obj);
        assert_eq!(
            warnings,
            [
                "spec: unknown field \"deletion_policy\" (did you mean \"deletionPolicy\"?); it is ignored",
                "spec: unknown field \"zzzqqq\"; it is ignored",
            ]
        );
        assert!(spec_fields().iter().any(|f| f == "variablesFrom"));
        assert_eq!(
            mistyped_deletion_policy(&obj).as_deref(),
            Some("deletion_policy")
        );
    }

    #[test]
    fn the_source_index_follows_what_each_object_reads() {
        let index = SourceIndex::default();
        let a = ObjectRef::<NomadJob>::new("a").within("ns");
        let cm = |name: &str| SourceKey {
            kind: "ConfigMap",
            namespace: "ns".into(),
            name: name.into(),
        };
        index.record(a.clone(), vec![cm("one"), cm("two")]);
        assert_eq!(index.readers(&cm("one")), std::slice::from_ref(&a));
        index.record(a.clone(), vec![cm("two")]);
        assert!(index.readers(&cm("one")).is_empty());
        index.forget(&a);
        assert!(index.readers(&cm("two")).is_empty());
    }

    #[test]
    fn parsed_jobs_are_found_only_under_their_digest() {
        let cache = ParsedJobs::default();
        let a = ObjectRef::<NomadJob>::new("a").within("ns");
        cache.insert(a.clone(), "d1".into(), Arc::new(Map::new()));
        assert!(cache.get(&a, "d1").is_some());
        assert!(cache.get(&a, "d2").is_none());
        cache.forget(&a);
        assert!(cache.get(&a, "d1").is_none());
    }
}
