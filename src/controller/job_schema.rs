//! Typo checking of a job in Nomad's JSON API form (pure).
//!
//! Nomad decodes a job with Go's `encoding/json`, which silently drops every key its
//! structs do not have: a job with `"Datacenter": ["dc1"]` (instead of `Datacenters`)
//! registers without complaint and without the setting. [`unknown_keys`] walks the job
//! along a table of the keys Nomad knows ([`JOB`] and the tables it leads to) and lists
//! every other key, with the nearest valid key as a suggestion.
//!
//! Keys must match exactly: Go itself would accept `datacenters`, but the operator reads
//! and compares jobs by their exact PascalCase keys, so a key that differs only in case
//! is reported too, with the correctly cased key as its suggestion.

use std::fmt;

use serde_json::{Map, Value};

/// Where an error path starts: the job is `spec.job` of the `NomadJob`.
const ROOT: &str = "spec.job";

/// The lowest similarity (normalized Damerau-Levenshtein, 0 to 1, of the lower-cased
/// keys) at which a valid key is offered as a suggestion. `Cont`/`Count` is 0.8,
/// `CPUs`/`CPU` 0.75, `Memory`/`MemoryMB` 0.75, `Disk`/`DiskMB` 0.67; unrelated keys
/// score well below.
const SUGGESTION_THRESHOLD: f64 = 0.6;

/// One key of a job document that Nomad's job schema does not have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownKey {
    /// Where the object holding the key is, e.g. `spec.job.TaskGroups[0].Tasks[1]`.
    pub path: String,
    /// The key as written.
    pub key: String,
    /// The nearest valid key at that place, when one is reasonably close.
    pub suggestion: Option<String>,
}

impl fmt::Display for UnknownKey {
    /// `spec.job.TaskGroups[0]: unknown key "Cont" (did you mean "Count"?)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: unknown key {:?}", self.path, self.key)?;
        if let Some(suggestion) = &self.suggestion {
            write!(f, " (did you mean {suggestion:?}?)")?;
        }
        Ok(())
    }
}

/// Every unknown key of `job` (Nomad's API form, the value of `spec.job`), depth first
/// in the order the maps iterate (document order when serde_json keeps it, sorted by
/// key otherwise). Values of an unexpected type (a string where an object belongs, for
/// instance) and `null`s are not this check's business and are skipped, and so is
/// what an unknown key holds.
pub fn unknown_keys(job: &Map<String, Value>) -> Vec<UnknownKey> {
    let mut found = Vec::new();
    check_object(job, JOB, ROOT, &mut found);
    found
}

fn check_object(
    object: &Map<String, Value>,
    schema: Schema,
    path: &str,
    found: &mut Vec<UnknownKey>,
) {
    for (key, value) in object {
        match schema.iter().find(|field| field.key == key) {
            Some(field) => check_value(value, field.kind, &format!("{path}.{key}"), found),
            None => found.push(UnknownKey {
                path: path.to_owned(),
                key: key.clone(),
                suggestion: suggestion(schema, key).map(str::to_owned),
            }),
        }
    }
}

fn check_value(value: &Value, kind: Kind, path: &str, found: &mut Vec<UnknownKey>) {
    match (kind, value) {
        (Kind::Object(schema), Value::Object(object)) => check_object(object, schema, path, found),
        (Kind::List(schema), Value::Array(items)) => {
            for (index, item) in items.iter().enumerate() {
                if let Value::Object(object) = item {
                    check_object(object, schema, &format!("{path}[{index}]"), found);
                }
            }
        }
        (Kind::Map(schema), Value::Object(entries)) => {
            for (name, entry) in entries {
                if let Value::Object(object) = entry {
                    check_object(object, schema, &map_entry_path(path, name), found);
                }
            }
        }
        _ => {}
    }
}

/// `Volumes.data` for a name that reads as one, `Volumes["my volume"]` otherwise.
fn map_entry_path(path: &str, name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if plain {
        format!("{path}.{name}")
    } else {
        format!("{path}[{name:?}]")
    }
}

/// The valid key nearest to `key` in `schema`: the same key in another case or with
/// underscores (`max_parallel` → `MaxParallel`), the key of the field whose HCL name it
/// is (`memory` → `MemoryMB`, `group` → `TaskGroups`), else the closest key or HCL name
/// by edit distance, when close enough.
fn suggestion(schema: Schema, key: &str) -> Option<&'static str> {
    let key = normalize(key);
    if let Some(field) = schema.iter().find(|field| normalize(field.key) == key) {
        return Some(field.key);
    }
    if let Some(field) = schema
        .iter()
        .find(|field| field.hcl.is_some_and(|hcl| normalize(hcl) == key))
    {
        return Some(field.key);
    }
    let mut best: Option<(f64, &'static str)> = None;
    for field in schema {
        let names = std::iter::once(field.key).chain(field.hcl);
        for name in names {
            let score = strsim::normalized_damerau_levenshtein(&key, &normalize(name));
            if score >= SUGGESTION_THRESHOLD && best.is_none_or(|(top, _)| score > top) {
                best = Some((score, field.key));
            }
        }
    }
    best.map(|(_, key)| key)
}

/// Lower case without `_` and `-`, so that `Max_Parallel`, `max-parallel` and
/// `MaxParallel` compare equal.
fn normalize(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// The fields of one Nomad struct, in the order its Go source declares them.
pub type Schema = &'static [Field];

/// One key of a Nomad struct in JSON.
#[derive(Clone, Copy, Debug)]
pub struct Field {
    /// The JSON key: the Go field name (none of these structs renames a field with a
    /// `json:"..."` tag; fields tagged `json:"-"` are left out).
    pub key: &'static str,
    /// The name of the field in an HCL jobspec, where it is not just `key` in
    /// snake_case (`memory` for `MemoryMB`): a typo suggestion for people who convert
    /// HCL by hand.
    pub hcl: Option<&'static str>,
    /// What the value holds.
    pub kind: Kind,
}

/// What the value of a [`Field`] holds, as far as key checking is concerned.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// A string, number, bool, duration or list of those: nothing to check inside.
    Plain,
    /// A Go map with free keys and no struct values (`Meta`, `Env`, a task's driver
    /// `Config`, ...): keys inside are the user's and never reported.
    FreeForm,
    /// One struct.
    Object(&'static Schema),
    /// A list of structs, each checked (`[i]` in the path).
    List(&'static Schema),
    /// A Go map from free names to structs (`Volumes`): the names are the user's, each
    /// value is checked.
    Map(&'static Schema),
}

impl Field {
    const fn new(key: &'static str, kind: Kind) -> Self {
        Self {
            key,
            hcl: None,
            kind,
        }
    }

    /// Its HCL name, where that is not `key` in snake_case.
    const fn hcl(self, hcl: &'static str) -> Self {
        Self {
            hcl: Some(hcl),
            ..self
        }
    }
}

const fn plain(key: &'static str) -> Field {
    Field::new(key, Kind::Plain)
}

const fn free(key: &'static str) -> Field {
    Field::new(key, Kind::FreeForm)
}

const fn object(key: &'static str, schema: &'static Schema) -> Field {
    Field::new(key, Kind::Object(schema))
}

const fn list(key: &'static str, schema: &'static Schema) -> Field {
    Field::new(key, Kind::List(schema))
}

const fn map(key: &'static str, schema: &'static Schema) -> Field {
    Field::new(key, Kind::Map(schema))
}

// The tables below follow the structs of Nomad v1.1.2's `api` package (`api/jobs.go`,
// `tasks.go`, `resources.go`, `services.go`, `constraint.go`, `scaling.go`, `csi.go`,
// `consul.go`), one table per struct, named after it. Every struct reachable from `Job`
// has its table; only Go maps without struct values are free-form. 1.1.2 has no
// `ChangeScript`, `WaitConfig` or task `Identity` yet (later releases do): those keys
// are reported as unknown, as 1.1.2 would drop them.

/// `api.Job`: what the user writes, then what the servers set (Nomad returns those and
/// accepts them back, so `nomad job inspect` output passes).
pub static JOB: Schema = &[
    plain("Region"),
    plain("Namespace"),
    plain("ID"),
    plain("Name"),
    plain("Type"),
    plain("Priority"),
    plain("AllAtOnce"),
    plain("Datacenters"),
    list("Constraints", &CONSTRAINT).hcl("constraint"),
    list("Affinities", &AFFINITY).hcl("affinity"),
    list("TaskGroups", &TASK_GROUP).hcl("group"),
    object("Update", &UPDATE_STRATEGY),
    object("Multiregion", &MULTIREGION),
    list("Spreads", &SPREAD).hcl("spread"),
    object("Periodic", &PERIODIC_CONFIG),
    object("ParameterizedJob", &PARAMETERIZED_JOB_CONFIG).hcl("parameterized"),
    object("Reschedule", &RESCHEDULE_POLICY),
    object("Migrate", &MIGRATE_STRATEGY),
    free("Meta"),
    plain("ConsulToken"),
    plain("VaultToken"),
    // Set by the servers.
    plain("Stop"),
    plain("ParentID"),
    plain("Dispatched"),
    plain("Payload"),
    plain("ConsulNamespace"),
    plain("VaultNamespace"),
    plain("NomadTokenID"),
    plain("Status"),
    plain("StatusDescription"),
    plain("Stable"),
    plain("Version"),
    plain("SubmitTime"),
    plain("CreateIndex"),
    plain("ModifyIndex"),
    plain("JobModifyIndex"),
];

/// `api.UpdateStrategy` (job and group `Update`).
pub static UPDATE_STRATEGY: Schema = &[
    plain("Stagger"),
    plain("MaxParallel"),
    plain("HealthCheck"),
    plain("MinHealthyTime"),
    plain("HealthyDeadline"),
    plain("ProgressDeadline"),
    plain("Canary"),
    plain("AutoRevert"),
    plain("AutoPromote"),
];

/// `api.Multiregion`.
pub static MULTIREGION: Schema = &[
    object("Strategy", &MULTIREGION_STRATEGY),
    list("Regions", &MULTIREGION_REGION).hcl("region"),
];

/// `api.MultiregionStrategy`.
pub static MULTIREGION_STRATEGY: Schema = &[plain("MaxParallel"), plain("OnFailure")];

/// `api.MultiregionRegion`.
pub static MULTIREGION_REGION: Schema = &[
    plain("Name"),
    plain("Count"),
    plain("Datacenters"),
    free("Meta"),
];

/// `api.PeriodicConfig`.
pub static PERIODIC_CONFIG: Schema = &[
    plain("Enabled"),
    plain("Spec").hcl("cron"),
    plain("SpecType"),
    plain("ProhibitOverlap"),
    plain("TimeZone"),
];

/// `api.ParameterizedJobConfig`.
pub static PARAMETERIZED_JOB_CONFIG: Schema = &[
    plain("Payload"),
    plain("MetaRequired"),
    plain("MetaOptional"),
];

/// `api.Constraint`.
pub static CONSTRAINT: Schema = &[
    plain("LTarget").hcl("attribute"),
    plain("RTarget").hcl("value"),
    plain("Operand").hcl("operator"),
];

/// `api.Affinity`.
pub static AFFINITY: Schema = &[
    plain("LTarget").hcl("attribute"),
    plain("RTarget").hcl("value"),
    plain("Operand").hcl("operator"),
    plain("Weight"),
];

/// `api.Spread`.
pub static SPREAD: Schema = &[
    plain("Attribute"),
    plain("Weight"),
    list("SpreadTarget", &SPREAD_TARGET).hcl("target"),
];

/// `api.SpreadTarget`.
pub static SPREAD_TARGET: Schema = &[plain("Value"), plain("Percent")];

/// `api.RestartPolicy` (group and task `RestartPolicy`).
pub static RESTART_POLICY: Schema = &[
    plain("Interval"),
    plain("Attempts"),
    plain("Delay"),
    plain("Mode"),
];

/// `api.ReschedulePolicy` (job `Reschedule`, group `ReschedulePolicy`).
pub static RESCHEDULE_POLICY: Schema = &[
    plain("Attempts"),
    plain("Interval"),
    plain("Delay"),
    plain("DelayFunction"),
    plain("MaxDelay"),
    plain("Unlimited"),
];

/// `api.MigrateStrategy` (job and group `Migrate`).
pub static MIGRATE_STRATEGY: Schema = &[
    plain("MaxParallel"),
    plain("HealthCheck"),
    plain("MinHealthyTime"),
    plain("HealthyDeadline"),
];

/// `api.EphemeralDisk`.
pub static EPHEMERAL_DISK: Schema = &[
    plain("Sticky"),
    plain("Migrate"),
    plain("SizeMB").hcl("size"),
];

/// `api.VolumeRequest` (the values of a group's `Volumes` map).
pub static VOLUME_REQUEST: Schema = &[
    plain("Name"),
    plain("Type"),
    plain("Source"),
    plain("ReadOnly"),
    plain("AccessMode"),
    plain("AttachmentMode"),
    object("MountOptions", &CSI_MOUNT_OPTIONS),
    plain("PerAlloc"),
];

/// `api.CSIMountOptions`.
pub static CSI_MOUNT_OPTIONS: Schema = &[plain("FSType"), plain("MountFlags")];

/// `api.VolumeMount`.
pub static VOLUME_MOUNT: Schema = &[
    plain("Volume"),
    plain("Destination"),
    plain("ReadOnly"),
    plain("PropagationMode"),
];

/// `api.Consul` (a group's Consul namespace).
pub static CONSUL: Schema = &[plain("Namespace")];

/// `api.TaskGroup`.
pub static TASK_GROUP: Schema = &[
    plain("Name"),
    plain("Count"),
    list("Constraints", &CONSTRAINT).hcl("constraint"),
    list("Affinities", &AFFINITY).hcl("affinity"),
    list("Tasks", &TASK).hcl("task"),
    list("Spreads", &SPREAD).hcl("spread"),
    map("Volumes", &VOLUME_REQUEST).hcl("volume"),
    object("RestartPolicy", &RESTART_POLICY).hcl("restart"),
    object("ReschedulePolicy", &RESCHEDULE_POLICY).hcl("reschedule"),
    object("EphemeralDisk", &EPHEMERAL_DISK),
    object("Update", &UPDATE_STRATEGY),
    object("Migrate", &MIGRATE_STRATEGY),
    list("Networks", &NETWORK_RESOURCE).hcl("network"),
    free("Meta"),
    list("Services", &SERVICE).hcl("service"),
    plain("ShutdownDelay"),
    plain("StopAfterClientDisconnect"),
    object("Scaling", &SCALING_POLICY),
    object("Consul", &CONSUL),
];

/// `api.Task`.
pub static TASK: Schema = &[
    plain("Name"),
    plain("Driver"),
    plain("User"),
    object("Lifecycle", &TASK_LIFECYCLE),
    free("Config"),
    list("Constraints", &CONSTRAINT).hcl("constraint"),
    list("Affinities", &AFFINITY).hcl("affinity"),
    free("Env"),
    list("Services", &SERVICE).hcl("service"),
    object("Resources", &RESOURCES),
    object("RestartPolicy", &RESTART_POLICY).hcl("restart"),
    free("Meta"),
    plain("KillTimeout"),
    object("LogConfig", &LOG_CONFIG).hcl("logs"),
    list("Artifacts", &TASK_ARTIFACT).hcl("artifact"),
    object("Vault", &VAULT),
    list("Templates", &TEMPLATE).hcl("template"),
    object("DispatchPayload", &DISPATCH_PAYLOAD_CONFIG),
    list("VolumeMounts", &VOLUME_MOUNT).hcl("volume_mount"),
    object("CSIPluginConfig", &TASK_CSI_PLUGIN_CONFIG).hcl("csi_plugin"),
    plain("Leader"),
    plain("ShutdownDelay"),
    plain("KillSignal"),
    plain("Kind"),
    list("ScalingPolicies", &SCALING_POLICY).hcl("scaling"),
];

/// `api.TaskLifecycle`.
pub static TASK_LIFECYCLE: Schema = &[plain("Hook"), plain("Sidecar")];

/// `api.LogConfig`.
pub static LOG_CONFIG: Schema = &[
    plain("MaxFiles"),
    plain("MaxFileSizeMB").hcl("max_file_size"),
];

/// `api.TaskArtifact`.
pub static TASK_ARTIFACT: Schema = &[
    plain("GetterSource").hcl("source"),
    free("GetterOptions").hcl("options"),
    free("GetterHeaders").hcl("headers"),
    plain("GetterMode").hcl("mode"),
    plain("RelativeDest").hcl("destination"),
];

/// `api.Template`.
pub static TEMPLATE: Schema = &[
    plain("SourcePath").hcl("source"),
    plain("DestPath").hcl("destination"),
    plain("EmbeddedTmpl").hcl("data"),
    plain("ChangeMode"),
    plain("ChangeSignal"),
    plain("Splay"),
    plain("Perms"),
    plain("LeftDelim").hcl("left_delimiter"),
    plain("RightDelim").hcl("right_delimiter"),
    plain("Envvars").hcl("env"),
    plain("VaultGrace"),
];

/// `api.Vault`.
pub static VAULT: Schema = &[
    plain("Policies"),
    plain("Namespace"),
    plain("Env"),
    plain("ChangeMode"),
    plain("ChangeSignal"),
];

/// `api.DispatchPayloadConfig`.
pub static DISPATCH_PAYLOAD_CONFIG: Schema = &[plain("File")];

/// `api.TaskCSIPluginConfig`.
pub static TASK_CSI_PLUGIN_CONFIG: Schema = &[plain("ID"), plain("Type"), plain("MountDir")];

/// `api.Resources` (a task's, and a sidecar task's).
pub static RESOURCES: Schema = &[
    plain("CPU"),
    plain("Cores"),
    plain("MemoryMB").hcl("memory"),
    plain("MemoryMaxMB").hcl("memory_max"),
    plain("DiskMB").hcl("disk"),
    list("Networks", &NETWORK_RESOURCE).hcl("network"),
    list("Devices", &REQUESTED_DEVICE).hcl("device"),
    plain("IOPS"),
];

/// `api.NetworkResource` (group networks, and the deprecated task ones).
pub static NETWORK_RESOURCE: Schema = &[
    plain("Mode"),
    plain("Device"),
    plain("CIDR"),
    plain("IP"),
    object("DNS", &DNS_CONFIG),
    list("ReservedPorts", &PORT),
    list("DynamicPorts", &PORT).hcl("port"),
    plain("MBits"),
];

/// `api.Port`.
pub static PORT: Schema = &[
    plain("Label"),
    plain("Value").hcl("static"),
    plain("To"),
    plain("HostNetwork"),
];

/// `api.DNSConfig`.
pub static DNS_CONFIG: Schema = &[plain("Servers"), plain("Searches"), plain("Options")];

/// `api.RequestedDevice`.
pub static REQUESTED_DEVICE: Schema = &[
    plain("Name"),
    plain("Count"),
    list("Constraints", &CONSTRAINT).hcl("constraint"),
    list("Affinities", &AFFINITY).hcl("affinity"),
];

/// `api.ScalingPolicy` (group `Scaling`, task `ScalingPolicies`): what the user
/// writes, then what the servers set.
pub static SCALING_POLICY: Schema = &[
    plain("Min"),
    plain("Max"),
    free("Policy"),
    plain("Enabled"),
    plain("Type"),
    // Set by the servers.
    plain("ID"),
    plain("Namespace"),
    free("Target"),
    plain("CreateIndex"),
    plain("ModifyIndex"),
];

/// `api.Service` (group and task `Services`). `Namespace` is not in the `api` struct
/// but in the servers' own (`nomad/structs`), so `GET /v1/job/:id` returns it; it is
/// accepted like the other keys Nomad returns.
pub static SERVICE: Schema = &[
    plain("Id"),
    plain("Name"),
    plain("Tags"),
    plain("CanaryTags"),
    plain("EnableTagOverride"),
    plain("PortLabel").hcl("port"),
    plain("AddressMode"),
    list("Checks", &SERVICE_CHECK).hcl("check"),
    object("CheckRestart", &CHECK_RESTART),
    object("Connect", &CONSUL_CONNECT),
    free("Meta"),
    free("CanaryMeta"),
    plain("TaskName").hcl("task"),
    plain("OnUpdate"),
    plain("Namespace"),
];

/// `api.ServiceCheck`.
pub static SERVICE_CHECK: Schema = &[
    plain("Id"),
    plain("Name"),
    plain("Type"),
    plain("Command"),
    plain("Args"),
    plain("Path"),
    plain("Protocol"),
    plain("PortLabel").hcl("port"),
    plain("Expose"),
    plain("AddressMode"),
    plain("Interval"),
    plain("Timeout"),
    plain("InitialStatus"),
    plain("TLSSkipVerify"),
    free("Header"),
    plain("Method"),
    object("CheckRestart", &CHECK_RESTART),
    plain("GRPCService"),
    plain("GRPCUseTLS"),
    plain("TaskName").hcl("task"),
    plain("SuccessBeforePassing"),
    plain("FailuresBeforeCritical"),
    plain("Body"),
    plain("OnUpdate"),
];

/// `api.CheckRestart`.
pub static CHECK_RESTART: Schema = &[plain("Limit"), plain("Grace"), plain("IgnoreWarnings")];

/// `api.ConsulConnect`.
pub static CONSUL_CONNECT: Schema = &[
    plain("Native"),
    object("Gateway", &CONSUL_GATEWAY),
    object("SidecarService", &CONSUL_SIDECAR_SERVICE),
    object("SidecarTask", &SIDECAR_TASK),
];

/// `api.ConsulSidecarService`.
pub static CONSUL_SIDECAR_SERVICE: Schema = &[
    plain("Tags"),
    plain("Port"),
    object("Proxy", &CONSUL_PROXY),
    plain("DisableDefaultTCPCheck"),
];

/// `api.SidecarTask`.
pub static SIDECAR_TASK: Schema = &[
    plain("Name"),
    plain("Driver"),
    plain("User"),
    free("Config"),
    free("Env"),
    object("Resources", &RESOURCES),
    free("Meta"),
    plain("KillTimeout"),
    object("LogConfig", &LOG_CONFIG).hcl("logs"),
    plain("ShutdownDelay"),
    plain("KillSignal"),
];

/// `api.ConsulProxy`.
pub static CONSUL_PROXY: Schema = &[
    plain("LocalServiceAddress"),
    plain("LocalServicePort"),
    object("ExposeConfig", &CONSUL_EXPOSE_CONFIG).hcl("expose"),
    list("Upstreams", &CONSUL_UPSTREAM),
    free("Config"),
];

/// `api.ConsulUpstream`.
pub static CONSUL_UPSTREAM: Schema = &[
    plain("DestinationName"),
    plain("LocalBindPort"),
    plain("Datacenter"),
    plain("LocalBindAddress"),
    object("MeshGateway", &CONSUL_MESH_GATEWAY),
];

/// `api.ConsulMeshGateway` (an upstream's `MeshGateway`).
pub static CONSUL_MESH_GATEWAY: Schema = &[plain("Mode")];

/// `api.ConsulExposeConfig`.
pub static CONSUL_EXPOSE_CONFIG: Schema = &[list("Path", &CONSUL_EXPOSE_PATH)];

/// `api.ConsulExposePath`.
pub static CONSUL_EXPOSE_PATH: Schema = &[
    plain("Path"),
    plain("Protocol"),
    plain("LocalPathPort"),
    plain("ListenerPort"),
];

/// `api.ConsulGateway`.
pub static CONSUL_GATEWAY: Schema = &[
    object("Proxy", &CONSUL_GATEWAY_PROXY),
    object("Ingress", &CONSUL_INGRESS_CONFIG_ENTRY),
    object("Terminating", &CONSUL_TERMINATING_CONFIG_ENTRY),
    object("Mesh", &CONSUL_MESH_CONFIG_ENTRY),
];

/// `api.ConsulGatewayProxy`.
pub static CONSUL_GATEWAY_PROXY: Schema = &[
    plain("ConnectTimeout"),
    plain("EnvoyGatewayBindTaggedAddresses"),
    map("EnvoyGatewayBindAddresses", &CONSUL_GATEWAY_BIND_ADDRESS),
    plain("EnvoyGatewayNoDefaultBind"),
    plain("EnvoyDNSDiscoveryType"),
    free("Config"),
];

/// `api.ConsulGatewayBindAddress` (the values of `EnvoyGatewayBindAddresses`).
pub static CONSUL_GATEWAY_BIND_ADDRESS: Schema = &[plain("Name"), plain("Address"), plain("Port")];

/// `api.ConsulIngressConfigEntry`.
pub static CONSUL_INGRESS_CONFIG_ENTRY: Schema = &[
    object("TLS", &CONSUL_GATEWAY_TLS_CONFIG),
    list("Listeners", &CONSUL_INGRESS_LISTENER).hcl("listener"),
];

/// `api.ConsulGatewayTLSConfig`.
pub static CONSUL_GATEWAY_TLS_CONFIG: Schema = &[plain("Enabled")];

/// `api.ConsulIngressListener`.
pub static CONSUL_INGRESS_LISTENER: Schema = &[
    plain("Port"),
    plain("Protocol"),
    list("Services", &CONSUL_INGRESS_SERVICE).hcl("service"),
];

/// `api.ConsulIngressService`.
pub static CONSUL_INGRESS_SERVICE: Schema = &[plain("Name"), plain("Hosts")];

/// `api.ConsulTerminatingConfigEntry`.
pub static CONSUL_TERMINATING_CONFIG_ENTRY: Schema =
    &[list("Services", &CONSUL_LINKED_SERVICE).hcl("service")];

/// `api.ConsulLinkedService`.
pub static CONSUL_LINKED_SERVICE: Schema = &[
    plain("Name"),
    plain("CAFile"),
    plain("CertFile"),
    plain("KeyFile"),
    plain("SNI"),
];

/// `api.ConsulMeshConfigEntry`: no fields in 1.1.2 (`"Mesh": {}` makes a mesh
/// gateway), so every key inside is unknown.
pub static CONSUL_MESH_CONFIG_ENTRY: Schema = &[];

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A service job using most of what a job can hold, in correct API form.
    const FULL_JOB: &str = r#"{
      "ID": "web", "Name": "web", "Type": "service", "Priority": 50, "Region": "global",
      "Namespace": "default", "AllAtOnce": false, "Datacenters": ["dc1", "dc2"],
      "Meta": {"team": "web", "Anything_Goes": "yes"},
      "Constraints": [{"LTarget": "${attr.kernel.name}", "RTarget": "linux", "Operand": "="}],
      "Affinities": [{"LTarget": "${node.datacenter}", "RTarget": "dc1", "Operand": "=", "Weight": 50}],
      "Spreads": [{"Attribute": "${node.datacenter}", "Weight": 100,
                   "SpreadTarget": [{"Value": "dc1", "Percent": 70}, {"Value": "dc2", "Percent": 30}]}],
      "Update": {"Stagger": 30000000000, "MaxParallel": 1, "HealthCheck": "checks",
                 "MinHealthyTime": 10000000000, "HealthyDeadline": 300000000000,
                 "ProgressDeadline": 600000000000, "Canary": 1, "AutoRevert": true, "AutoPromote": false},
      "Reschedule": {"Attempts": 0, "Interval": 0, "Delay": 30000000000,
                     "DelayFunction": "exponential", "MaxDelay": 3600000000000, "Unlimited": true},
      "Migrate": {"MaxParallel": 1, "HealthCheck": "checks", "MinHealthyTime": 10000000000,
                  "HealthyDeadline": 300000000000},
      "ConsulToken": null, "VaultToken": null, "Periodic": null, "ParameterizedJob": null,
      "Multiregion": null,
      "TaskGroups": [{
        "Name": "web", "Count": 2,
        "Constraints": [{"LTarget": "${meta.tier}", "RTarget": "front", "Operand": "="}],
        "Affinities": null, "Spreads": null,
        "Networks": [{"Mode": "bridge", "Device": "", "CIDR": "", "IP": "", "MBits": 0,
                      "DNS": {"Servers": ["1.1.1.1"], "Searches": null, "Options": null},
                      "ReservedPorts": [{"Label": "admin", "Value": 9000, "To": 0, "HostNetwork": "default"}],
                      "DynamicPorts": [{"Label": "http", "Value": 0, "To": 8080, "HostNetwork": ""}]}],
        "Services": [{
          "Name": "web", "PortLabel": "http", "Tags": ["v1"], "CanaryTags": ["canary"],
          "EnableTagOverride": false, "AddressMode": "auto", "TaskName": "", "OnUpdate": "require_healthy",
          "Meta": {"version": "1"}, "CanaryMeta": {"canary": "true"},
          "Checks": [{"Name": "alive", "Type": "http", "Path": "/health", "Protocol": "http",
                      "PortLabel": "http", "Interval": 10000000000, "Timeout": 2000000000,
                      "Method": "GET", "Header": {"X-Check": ["1"]}, "InitialStatus": "",
                      "TLSSkipVerify": false, "Expose": false, "SuccessBeforePassing": 0,
                      "FailuresBeforeCritical": 0, "OnUpdate": "",
                      "CheckRestart": {"Limit": 3, "Grace": 30000000000, "IgnoreWarnings": false}}],
          "Connect": {"Native": false,
                      "SidecarService": {"Tags": null, "Port": "", "DisableDefaultTCPCheck": false,
                        "Proxy": {"LocalServiceAddress": "", "LocalServicePort": 0,
                                  "Config": {"protocol": "http", "any": {"nested": true}},
                                  "ExposeConfig": {"Path": [{"Path": "/health", "Protocol": "http",
                                                             "LocalPathPort": 8080, "ListenerPort": "http"}]},
                                  "Upstreams": [{"DestinationName": "db", "LocalBindPort": 5432,
                                                 "Datacenter": "", "LocalBindAddress": "",
                                                 "MeshGateway": {"Mode": "local"}}]}},
                      "SidecarTask": {"Name": "proxy", "Driver": "docker", "Config": {"image": "envoy"},
                                      "Resources": {"CPU": 100, "MemoryMB": 64},
                                      "LogConfig": {"MaxFiles": 2, "MaxFileSizeMB": 2},
                                      "KillTimeout": 5000000000, "ShutdownDelay": null, "KillSignal": ""}}
        }],
        "Volumes": {"data": {"Name": "data", "Type": "host", "Source": "data", "ReadOnly": false,
                             "AccessMode": "", "AttachmentMode": "", "PerAlloc": false,
                             "MountOptions": {"FSType": "ext4", "MountFlags": ["noatime"]}}},
        "RestartPolicy": {"Interval": 1800000000000, "Attempts": 2, "Delay": 15000000000, "Mode": "fail"},
        "ReschedulePolicy": {"Attempts": 0, "Interval": 0, "Delay": 30000000000,
                             "DelayFunction": "exponential", "MaxDelay": 3600000000000, "Unlimited": true},
        "EphemeralDisk": {"Sticky": false, "Migrate": false, "SizeMB": 300},
        "Update": {"MaxParallel": 1, "Canary": 0},
        "Migrate": {"MaxParallel": 1},
        "Meta": {"group": "meta"},
        "ShutdownDelay": 5000000000, "StopAfterClientDisconnect": null,
        "Scaling": {"Min": 1, "Max": 5, "Enabled": true, "Type": "horizontal",
                    "Policy": {"cooldown": "1m", "check": {"cpu": {"source": "prometheus"}}}},
        "Consul": {"Namespace": ""},
        "Tasks": [
          {"Name": "init", "Driver": "exec", "User": "",
           "Lifecycle": {"Hook": "prestart", "Sidecar": false},
           "Config": {"command": "/bin/true", "args": [], "Whatever": {"Nested": 1}},
           "Resources": {"CPU": 50, "MemoryMB": 32}},
          {"Name": "server", "Driver": "docker", "User": "nobody", "Leader": true, "Kind": "",
           "Config": {"image": "nginx:1.21", "ports": ["http"], "Datacenter": "not checked"},
           "Env": {"PORT": "${NOMAD_PORT_http}", "Cont": "not checked"},
           "Meta": {"Drvier": "not checked"},
           "Constraints": null, "Affinities": null, "Services": null,
           "Resources": {"CPU": 500, "Cores": 0, "MemoryMB": 256, "MemoryMaxMB": 512, "DiskMB": 0,
                         "IOPS": 0, "Networks": null,
                         "Devices": [{"Name": "nvidia/gpu", "Count": 1,
                                      "Constraints": [{"LTarget": "${device.attr.memory}",
                                                       "RTarget": "2 GiB", "Operand": ">="}],
                                      "Affinities": [{"LTarget": "${device.model}",
                                                      "RTarget": "GTX", "Operand": "regexp", "Weight": 50}]}]},
           "RestartPolicy": {"Attempts": 3},
           "KillTimeout": 5000000000, "KillSignal": "SIGTERM", "ShutdownDelay": 0,
           "LogConfig": {"MaxFiles": 10, "MaxFileSizeMB": 10},
           "Artifacts": [{"GetterSource": "https://example.com/app.tar.gz",
                          "GetterOptions": {"checksum": "sha256:abc"}, "GetterHeaders": {"X-Token": "t"},
                          "GetterMode": "any", "RelativeDest": "local/"}],
           "Templates": [{"SourcePath": "", "DestPath": "local/app.conf",
                          "EmbeddedTmpl": "port = {{ env \"NOMAD_PORT_http\" }}",
                          "ChangeMode": "signal", "ChangeSignal": "SIGHUP", "Splay": 5000000000,
                          "Perms": "0644", "LeftDelim": "{{", "RightDelim": "}}", "Envvars": false,
                          "VaultGrace": 0}],
           "Vault": {"Policies": ["web"], "Namespace": "", "Env": true,
                     "ChangeMode": "restart", "ChangeSignal": ""},
           "DispatchPayload": null,
           "VolumeMounts": [{"Volume": "data", "Destination": "/data", "ReadOnly": false,
                             "PropagationMode": "private"}],
           "CSIPluginConfig": null,
           "ScalingPolicies": [{"Min": 100, "Max": 1000, "Enabled": true, "Type": "vertical_cpu",
                                "Policy": {"cooldown": "5m"}, "ID": "", "Namespace": "",
                                "Target": {"Task": "server"}, "CreateIndex": 0, "ModifyIndex": 0}]}
        ]
      }],
      "Stop": false, "ParentID": "", "Dispatched": false, "Payload": null,
      "ConsulNamespace": "", "VaultNamespace": "", "NomadTokenID": "", "Status": "running",
      "StatusDescription": "", "Stable": true, "Version": 3, "SubmitTime": 1626000000000000000,
      "CreateIndex": 10, "ModifyIndex": 40, "JobModifyIndex": 40
    }"#;

    fn parse(text: &str) -> Map<String, Value> {
        match serde_json::from_str(text) {
            Ok(Value::Object(job)) => job,
            other => panic!("not a JSON object: {other:?}"),
        }
    }

    /// The full job with `edit` applied to it.
    fn edited(edit: impl FnOnce(&mut Value)) -> Map<String, Value> {
        let mut job = Value::Object(parse(FULL_JOB));
        edit(&mut job);
        match job {
            Value::Object(job) => job,
            other => panic!("not an object: {other:?}"),
        }
    }

    /// Renames `from` to `to` in the object at JSON pointer `at`.
    fn rename(job: &mut Value, at: &str, from: &str, to: &str) {
        let object = job
            .pointer_mut(at)
            .and_then(Value::as_object_mut)
            .unwrap_or_else(|| panic!("no object at {at}"));
        let value = object
            .remove(from)
            .unwrap_or_else(|| panic!("no {from} at {at}"));
        object.insert(to.to_owned(), value);
    }

    fn unknown(path: &str, key: &str, suggestion: Option<&str>) -> UnknownKey {
        UnknownKey {
            path: path.to_owned(),
            key: key.to_owned(),
            suggestion: suggestion.map(str::to_owned),
        }
    }

    /// The report for the full job with one key renamed.
    fn with_renamed(at: &str, from: &str, to: &str) -> Vec<UnknownKey> {
        unknown_keys(&edited(|job| rename(job, at, from, to)))
    }

    #[test]
    fn a_full_correct_job_has_no_unknown_keys() {
        assert_eq!(unknown_keys(&parse(FULL_JOB)), []);
    }

    #[test]
    fn a_typo_is_found_at_each_level_with_its_suggestion() {
        let cases = [
            ("", "Datacenters", "Datacenter", "spec.job", "Datacenters"),
            (
                "/TaskGroups/0",
                "Count",
                "Cont",
                "spec.job.TaskGroups[0]",
                "Count",
            ),
            (
                "/TaskGroups/0/Tasks/0",
                "Driver",
                "Drvier",
                "spec.job.TaskGroups[0].Tasks[0]",
                "Driver",
            ),
            (
                "/TaskGroups/0/Tasks/1",
                "Resources",
                "Resurces",
                "spec.job.TaskGroups[0].Tasks[1]",
                "Resources",
            ),
            (
                "/TaskGroups/0/Tasks/1/Resources",
                "CPU",
                "CPUs",
                "spec.job.TaskGroups[0].Tasks[1].Resources",
                "CPU",
            ),
            (
                "/TaskGroups/0/Services/0/Checks/0",
                "Interval",
                "Intreval",
                "spec.job.TaskGroups[0].Services[0].Checks[0]",
                "Interval",
            ),
            (
                "/TaskGroups/0/Services/0/Checks/0/CheckRestart",
                "Limit",
                "Limt",
                "spec.job.TaskGroups[0].Services[0].Checks[0].CheckRestart",
                "Limit",
            ),
            (
                "/TaskGroups/0/Networks/0/DynamicPorts/0",
                "Label",
                "Lable",
                "spec.job.TaskGroups[0].Networks[0].DynamicPorts[0]",
                "Label",
            ),
            (
                "/TaskGroups/0/Volumes/data",
                "ReadOnly",
                "ReadOnyl",
                "spec.job.TaskGroups[0].Volumes.data",
                "ReadOnly",
            ),
            (
                "/TaskGroups/0/Services/0/Connect/SidecarService/Proxy/Upstreams/0",
                "DestinationName",
                "DestinationNam",
                "spec.job.TaskGroups[0].Services[0].Connect.SidecarService.Proxy.Upstreams[0]",
                "DestinationName",
            ),
            (
                "/TaskGroups/0/Tasks/1/Resources/Devices/0/Constraints/0",
                "Operand",
                "Operator",
                "spec.job.TaskGroups[0].Tasks[1].Resources.Devices[0].Constraints[0]",
                "Operand",
            ),
            (
                "/Spreads/0/SpreadTarget/1",
                "Percent",
                "Percnet",
                "spec.job.Spreads[0].SpreadTarget[1]",
                "Percent",
            ),
        ];
        for (at, from, to, path, suggestion) in cases {
            assert_eq!(
                with_renamed(at, from, to),
                [unknown(path, to, Some(suggestion))],
                "{from} renamed to {to} at {at}"
            );
        }
    }

    #[test]
    fn a_key_in_another_case_is_unknown_and_the_suggestion_is_its_right_case() {
        assert_eq!(
            with_renamed("", "Datacenters", "datacenters"),
            [unknown("spec.job", "datacenters", Some("Datacenters"))]
        );
        assert_eq!(
            with_renamed("/TaskGroups/0/Update", "MaxParallel", "max_parallel"),
            [unknown(
                "spec.job.TaskGroups[0].Update",
                "max_parallel",
                Some("MaxParallel")
            )]
        );
    }

    #[test]
    fn an_hcl_name_suggests_its_json_key() {
        let cases = [
            ("", "TaskGroups", "group", "spec.job"),
            (
                "/TaskGroups/0/Tasks/1/Resources",
                "MemoryMB",
                "memory",
                "spec.job.TaskGroups[0].Tasks[1].Resources",
            ),
            (
                "/TaskGroups/0/Tasks/1",
                "LogConfig",
                "logs",
                "spec.job.TaskGroups[0].Tasks[1]",
            ),
            (
                "/TaskGroups/0/EphemeralDisk",
                "SizeMB",
                "size",
                "spec.job.TaskGroups[0].EphemeralDisk",
            ),
            (
                "/TaskGroups/0/Services/0",
                "PortLabel",
                "port",
                "spec.job.TaskGroups[0].Services[0]",
            ),
            (
                "/TaskGroups/0/Tasks/1/Templates/0",
                "EmbeddedTmpl",
                "data",
                "spec.job.TaskGroups[0].Tasks[1].Templates[0]",
            ),
        ];
        for (at, from, to, path) in cases {
            assert_eq!(
                with_renamed(at, from, to),
                [unknown(path, to, Some(from))],
                "{to}"
            );
        }
    }

    #[test]
    fn keys_inside_free_form_maps_are_never_reported() {
        // FULL_JOB already holds `Datacenter`, `Cont`, `Drvier` and nested objects
        // inside Config, Env and Meta; more of them here, at every free-form place.
        let job = edited(|job| {
            for at in [
                "/Meta",
                "/TaskGroups/0/Meta",
                "/TaskGroups/0/Tasks/1/Config",
                "/TaskGroups/0/Tasks/1/Env",
                "/TaskGroups/0/Tasks/1/Meta",
                "/TaskGroups/0/Scaling/Policy",
                "/TaskGroups/0/Services/0/Meta",
                "/TaskGroups/0/Services/0/Checks/0/Header",
                "/TaskGroups/0/Services/0/Connect/SidecarService/Proxy/Config",
                "/TaskGroups/0/Tasks/1/Artifacts/0/GetterOptions",
            ] {
                let object = job
                    .pointer_mut(at)
                    .and_then(Value::as_object_mut)
                    .unwrap_or_else(|| panic!("no object at {at}"));
                object.insert("Datacenter".into(), Value::from("x"));
                object.insert("Resurces".into(), serde_json::json!({"CPUs": 1}));
            }
        });
        assert_eq!(unknown_keys(&job), []);
    }

    #[test]
    fn a_far_off_key_gets_no_suggestion() {
        for key in ["Xyzzy", "Foo", "HelloWorld", "q"] {
            let job = edited(|job| {
                if let Some(object) = job.as_object_mut() {
                    object.insert(key.into(), Value::Null);
                }
            });
            assert_eq!(
                unknown_keys(&job),
                [unknown("spec.job", key, None)],
                "{key}"
            );
        }
    }

    #[test]
    fn several_unknown_keys_come_depth_first_in_map_order() {
        let job = parse(
            r#"{"Datacenter": ["dc1"],
                "TaskGroups": [{"Name": "a"}, {"Cont": 1, "Tasks": [{"Drvier": "exec"}]}],
                "Xyzzy": 1}"#,
        );
        assert_eq!(
            unknown_keys(&job),
            [
                unknown("spec.job", "Datacenter", Some("Datacenters")),
                unknown("spec.job.TaskGroups[1]", "Cont", Some("Count")),
                unknown("spec.job.TaskGroups[1].Tasks[0]", "Drvier", Some("Driver")),
                unknown("spec.job", "Xyzzy", None),
            ]
        );
    }

    #[test]
    fn nulls_and_values_of_another_type_are_skipped() {
        let job = parse(
            r#"{"TaskGroups": [null, "group", 3, {"Tasks": null, "Update": "fast",
                "Networks": {"Mode": "host"}, "Volumes": {"a": null, "b": "x"},
                "RestartPolicy": [1]}], "Update": null, "Datacenters": {"Bogus": 1}}"#,
        );
        assert_eq!(unknown_keys(&job), []);
    }

    #[test]
    fn map_entries_with_odd_names_are_quoted_in_the_path() {
        let job = parse(r#"{"TaskGroups": [{"Volumes": {"my data": {"Sorce": "x"}}}]}"#);
        assert_eq!(
            unknown_keys(&job),
            [unknown(
                r#"spec.job.TaskGroups[0].Volumes["my data"]"#,
                "Sorce",
                Some("Source")
            )]
        );
    }

    #[test]
    fn the_mesh_gateway_entry_has_no_keys() {
        let job = parse(
            r#"{"TaskGroups": [{"Services": [{"Connect": {"Gateway": {"Mesh": {"Mode": "x"},
                 "Proxy": {"EnvoyGatewayBindAddresses": {"lan": {"Address": "0.0.0.0", "Prot": 1}}},
                 "Ingress": {"TLS": {"Enabled": true}, "Listeners": [{"Port": 1, "Protocol": "tcp",
                   "Services": [{"Name": "a", "Hosts": null}]}]},
                 "Terminating": {"Services": [{"Name": "a", "CAFile": "", "SNI": ""}]}}}}]}]}"#,
        );
        let gateway = "spec.job.TaskGroups[0].Services[0].Connect.Gateway";
        assert_eq!(
            unknown_keys(&job),
            [
                unknown(&format!("{gateway}.Mesh"), "Mode", None),
                unknown(
                    &format!("{gateway}.Proxy.EnvoyGatewayBindAddresses.lan"),
                    "Prot",
                    Some("Port")
                ),
            ]
        );
    }

    #[test]
    fn display_reads_as_one_message() {
        assert_eq!(
            unknown("spec.job.TaskGroups[0]", "Cont", Some("Count")).to_string(),
            r#"spec.job.TaskGroups[0]: unknown key "Cont" (did you mean "Count"?)"#
        );
        assert_eq!(
            unknown("spec.job", "Xyzzy", None).to_string(),
            r#"spec.job: unknown key "Xyzzy""#
        );
    }

    fn fixtures_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nomad")
    }

    /// Every job object in `value`: an object with both `Datacenters` and
    /// `TaskGroups`, with its JSON pointer.
    fn jobs_in<'a>(value: &'a Value, at: String, jobs: &mut Vec<(String, &'a Map<String, Value>)>) {
        match value {
            Value::Object(object) => {
                if object.contains_key("Datacenters") && object.contains_key("TaskGroups") {
                    jobs.push((at, object));
                    return;
                }
                for (key, inner) in object {
                    jobs_in(inner, format!("{at}/{key}"), jobs);
                }
            }
            Value::Array(items) => {
                for (index, inner) in items.iter().enumerate() {
                    jobs_in(inner, format!("{at}/{index}"), jobs);
                }
            }
            _ => {}
        }
    }

    /// The recordings of a real Nomad 1.1.2 agent: every key of every job in them (the
    /// parsed job, reads, versions, the jobs inside allocations) must be in the table.
    #[test]
    fn every_job_recorded_from_nomad_1_1_2_has_only_known_keys() {
        let mut seen = Vec::new();
        let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
            .unwrap_or_else(|error| panic!("fixtures: {error}"))
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
            .collect();
        files.sort();
        for file in files {
            let name = file
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default();
            let text =
                std::fs::read_to_string(&file).unwrap_or_else(|error| panic!("{name}: {error}"));
            let value: Value =
                serde_json::from_str(&text).unwrap_or_else(|error| panic!("{name}: {error}"));
            let mut jobs = Vec::new();
            jobs_in(&value, String::new(), &mut jobs);
            for (at, job) in jobs {
                let found = unknown_keys(job);
                assert!(found.is_empty(), "{name} {at:?}: {found:#?}");
                seen.push(format!("{name}#{at}"));
            }
        }
        for expected in [
            "jobs-parse.json#",
            "job-read.json#",
            "job-read-stopped.json#",
            "job-versions.json#/Versions/0",
            "job-versions.json#/Versions/3",
            "allocation-read.json#/Job",
            "allocation-read-failed.json#/Job",
            "allocation-read-complete.json#/Job",
        ] {
            assert!(
                seen.iter().any(|s| s == expected),
                "{expected} not among {seen:?}"
            );
        }
    }

    /// The tables themselves: no key twice in one struct, and the HCL names are not
    /// just the key again.
    #[test]
    fn every_table_is_well_formed() {
        fn visit(schema: Schema, name: &str, visited: &mut Vec<*const Field>) {
            if visited.contains(&schema.as_ptr()) && !schema.is_empty() {
                return;
            }
            visited.push(schema.as_ptr());
            for (index, field) in schema.iter().enumerate() {
                assert!(
                    schema[..index].iter().all(|other| other.key != field.key),
                    "{name}: {} twice",
                    field.key
                );
                if let Some(hcl) = field.hcl {
                    assert_ne!(normalize(hcl), normalize(field.key), "{name}.{}", field.key);
                }
                match field.kind {
                    Kind::Object(inner) | Kind::List(inner) | Kind::Map(inner) => {
                        visit(inner, &format!("{name}.{}", field.key), visited);
                    }
                    Kind::Plain | Kind::FreeForm => {}
                }
            }
        }
        visit(JOB, "Job", &mut Vec::new());
    }
}
