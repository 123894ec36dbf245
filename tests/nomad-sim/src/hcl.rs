//! HCL job files to Nomad API JSON (`POST /v1/jobs/parse`), using hcl-rs for
//! the syntax and a block/attribute schema for Nomad's field names, with
//! durations converted to nanoseconds. Unknown blocks or arguments, variables
//! and functions are rejected with a message naming the problem.

use hcl::{Block, BlockLabel, Body, Expression, ObjectKey, Structure, TemplateExpr};
use serde_json::{Map, Value, json};

use crate::canonical::Obj;

/// Kind of an attribute value.
#[derive(Clone, Copy)]
enum K {
    Str,
    Int,
    Bool,
    Dur,
    StrList,
    Map,
    Raw,
}

type Attrs = &'static [(&'static str, &'static str, K)];

const JOB: Attrs = &[
    ("region", "Region", K::Str),
    ("namespace", "Namespace", K::Str),
    ("type", "Type", K::Str),
    ("priority", "Priority", K::Int),
    ("datacenters", "Datacenters", K::StrList),
    ("all_at_once", "AllAtOnce", K::Bool),
    ("vault_token", "VaultToken", K::Str),
    ("consul_token", "ConsulToken", K::Str),
    ("meta", "Meta", K::Map),
    ("name", "Name", K::Str),
    ("id", "ID", K::Str),
];
const GROUP: Attrs = &[
    ("count", "Count", K::Int),
    ("meta", "Meta", K::Map),
    ("shutdown_delay", "ShutdownDelay", K::Dur),
    (
        "stop_after_client_disconnect",
        "StopAfterClientDisconnect",
        K::Dur,
    ),
];
const TASK: Attrs = &[
    ("driver", "Driver", K::Str),
    ("user", "User", K::Str),
    ("config", "Config", K::Raw),
    ("env", "Env", K::Map),
    ("meta", "Meta", K::Map),
    ("kill_timeout", "KillTimeout", K::Dur),
    ("kill_signal", "KillSignal", K::Str),
    ("leader", "Leader", K::Bool),
    ("shutdown_delay", "ShutdownDelay", K::Dur),
    ("kind", "Kind", K::Str),
];
const UPDATE: Attrs = &[
    ("max_parallel", "MaxParallel", K::Int),
    ("health_check", "HealthCheck", K::Str),
    ("min_healthy_time", "MinHealthyTime", K::Dur),
    ("healthy_deadline", "HealthyDeadline", K::Dur),
    ("progress_deadline", "ProgressDeadline", K::Dur),
    ("auto_revert", "AutoRevert", K::Bool),
    ("auto_promote", "AutoPromote", K::Bool),
    ("canary", "Canary", K::Int),
    ("stagger", "Stagger", K::Dur),
];
const RESTART: Attrs = &[
    ("attempts", "Attempts", K::Int),
    ("interval", "Interval", K::Dur),
    ("delay", "Delay", K::Dur),
    ("mode", "Mode", K::Str),
];
const RESCHEDULE: Attrs = &[
    ("attempts", "Attempts", K::Int),
    ("interval", "Interval", K::Dur),
    ("delay", "Delay", K::Dur),
    ("delay_function", "DelayFunction", K::Str),
    ("max_delay", "MaxDelay", K::Dur),
    ("unlimited", "Unlimited", K::Bool),
];
const MIGRATE: Attrs = &[
    ("max_parallel", "MaxParallel", K::Int),
    ("health_check", "HealthCheck", K::Str),
    ("min_healthy_time", "MinHealthyTime", K::Dur),
    ("healthy_deadline", "HealthyDeadline", K::Dur),
];
const EPHEMERAL_DISK: Attrs = &[
    ("sticky", "Sticky", K::Bool),
    ("size", "SizeMB", K::Int),
    ("migrate", "Migrate", K::Bool),
];
const RESOURCES: Attrs = &[
    ("cpu", "CPU", K::Int),
    ("cores", "Cores", K::Int),
    ("memory", "MemoryMB", K::Int),
    ("memory_max", "MemoryMaxMB", K::Int),
    ("disk", "DiskMB", K::Int),
    ("iops", "IOPS", K::Int),
];
const LOGS: Attrs = &[
    ("max_files", "MaxFiles", K::Int),
    ("max_file_size", "MaxFileSizeMB", K::Int),
];
const AFFINITY: Attrs = &[
    ("attribute", "LTarget", K::Str),
    ("value", "RTarget", K::Str),
    ("operator", "Operand", K::Str),
    ("weight", "Weight", K::Int),
];
const SPREAD: Attrs = &[
    ("attribute", "Attribute", K::Str),
    ("weight", "Weight", K::Int),
];
const SPREAD_TARGET: Attrs = &[("value", "Value", K::Str), ("percent", "Percent", K::Int)];
const PERIODIC: Attrs = &[
    ("cron", "Spec", K::Str),
    ("prohibit_overlap", "ProhibitOverlap", K::Bool),
    ("time_zone", "TimeZone", K::Str),
    ("enabled", "Enabled", K::Bool),
];
const PARAMETERIZED: Attrs = &[
    ("payload", "Payload", K::Str),
    ("meta_required", "MetaRequired", K::StrList),
    ("meta_optional", "MetaOptional", K::StrList),
];
const SERVICE: Attrs = &[
    ("name", "Name", K::Str),
    ("port", "PortLabel", K::Str),
    ("tags", "Tags", K::StrList),
    ("canary_tags", "CanaryTags", K::StrList),
    ("address_mode", "AddressMode", K::Str),
    ("task", "TaskName", K::Str),
    ("enable_tag_override", "EnableTagOverride", K::Bool),
    ("meta", "Meta", K::Map),
];
const CHECK: Attrs = &[
    ("name", "Name", K::Str),
    ("type", "Type", K::Str),
    ("path", "Path", K::Str),
    ("protocol", "Protocol", K::Str),
    ("port", "PortLabel", K::Str),
    ("command", "Command", K::Str),
    ("args", "Args", K::StrList),
    ("interval", "Interval", K::Dur),
    ("timeout", "Timeout", K::Dur),
    ("initial_status", "InitialStatus", K::Str),
    ("method", "Method", K::Str),
    ("address_mode", "AddressMode", K::Str),
    ("task", "TaskName", K::Str),
];
const CHECK_RESTART: Attrs = &[
    ("limit", "Limit", K::Int),
    ("grace", "Grace", K::Dur),
    ("ignore_warnings", "IgnoreWarnings", K::Bool),
];
const NETWORK: Attrs = &[("mode", "Mode", K::Str), ("mbits", "MBits", K::Int)];
const PORT: Attrs = &[
    ("static", "Value", K::Int),
    ("to", "To", K::Int),
    ("host_network", "HostNetwork", K::Str),
];
const ARTIFACT: Attrs = &[
    ("source", "GetterSource", K::Str),
    ("destination", "RelativeDest", K::Str),
    ("mode", "GetterMode", K::Str),
    ("options", "GetterOptions", K::Map),
    ("headers", "GetterHeaders", K::Map),
];
const TEMPLATE: Attrs = &[
    ("data", "EmbeddedTmpl", K::Str),
    ("source", "SourcePath", K::Str),
    ("destination", "DestPath", K::Str),
    ("change_mode", "ChangeMode", K::Str),
    ("change_signal", "ChangeSignal", K::Str),
    ("splay", "Splay", K::Dur),
    ("perms", "Perms", K::Str),
    ("left_delimiter", "LeftDelim", K::Str),
    ("right_delimiter", "RightDelim", K::Str),
    ("env", "Envvars", K::Bool),
];
const LIFECYCLE: Attrs = &[("hook", "Hook", K::Str), ("sidecar", "Sidecar", K::Bool)];
const VAULT: Attrs = &[
    ("policies", "Policies", K::StrList),
    ("env", "Env", K::Bool),
    ("change_mode", "ChangeMode", K::Str),
    ("change_signal", "ChangeSignal", K::Str),
    ("namespace", "Namespace", K::Str),
];
const DISPATCH_PAYLOAD: Attrs = &[("file", "File", K::Str)];
const SCALING: Attrs = &[
    ("min", "Min", K::Int),
    ("max", "Max", K::Int),
    ("enabled", "Enabled", K::Bool),
    ("policy", "Policy", K::Raw),
];
const VOLUME: Attrs = &[
    ("type", "Type", K::Str),
    ("source", "Source", K::Str),
    ("read_only", "ReadOnly", K::Bool),
];
const VOLUME_MOUNT: Attrs = &[
    ("volume", "Volume", K::Str),
    ("destination", "Destination", K::Str),
    ("read_only", "ReadOnly", K::Bool),
];

const FILE: &str = "input.hcl";

fn unsupported_block(kind: &str) -> String {
    format!("{FILE}: Unsupported block type; Blocks of type {kind:?} are not expected here.")
}

fn unsupported_arg(name: &str) -> String {
    format!("{FILE}: Unsupported argument; An argument named {name:?} is not expected here.")
}

fn label(b: &Block, what: &str) -> Result<String, String> {
    match b.labels.first() {
        Some(BlockLabel::String(s)) => Ok(s.clone()),
        Some(BlockLabel::Identifier(i)) => Ok(i.to_string()),
        None => Err(format!(
            "{FILE}: Missing name for {what}; All {what} blocks must have 1 labels (name)."
        )),
    }
}

fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some('"') => out.push('"'),
                Some('\\') => out.push('\\'),
                Some(o) => {
                    out.push('\\');
                    out.push(o);
                }
                None => out.push('\\'),
            },
            '$' if chars.peek() == Some(&'$') => {
                chars.next();
                out.push('$');
            }
            '%' if chars.peek() == Some(&'%') => {
                chars.next();
                out.push('%');
            }
            o => out.push(o),
        }
    }
    out
}

fn heredoc_text(h: &hcl::expr::Heredoc) -> String {
    match h.strip {
        hcl::expr::HeredocStripMode::None => h.template.clone(),
        hcl::expr::HeredocStripMode::Indent => {
            let indent = h
                .template
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| l.len() - l.trim_start().len())
                .min()
                .unwrap_or(0);
            h.template
                .lines()
                .map(|l| {
                    if l.len() >= indent {
                        &l[indent..]
                    } else {
                        l.trim_start()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n")
                + if h.template.ends_with('\n') { "\n" } else { "" }
        }
    }
}

/// Converts a literal HCL expression to JSON; `${...}` templates stay as text
/// (Nomad interpolates them at run time).
fn expr_json(e: &Expression, name: &str) -> Result<Value, String> {
    Ok(match e {
        Expression::Null => Value::Null,
        Expression::Bool(b) => json!(b),
        Expression::Number(n) => {
            if let Some(i) = n.as_i64() {
                json!(i)
            } else {
                json!(n.as_f64())
            }
        }
        Expression::String(s) => json!(s),
        Expression::TemplateExpr(t) => match t.as_ref() {
            TemplateExpr::QuotedString(s) => json!(unescape(s)),
            TemplateExpr::Heredoc(h) => json!(heredoc_text(h)),
        },
        Expression::Array(a) => Value::Array(
            a.iter()
                .map(|x| expr_json(x, name))
                .collect::<Result<_, _>>()?,
        ),
        Expression::Object(o) => {
            let mut m = Map::new();
            for (k, v) in o {
                let key = match k {
                    ObjectKey::Identifier(i) => i.to_string(),
                    ObjectKey::Expression(ke) => match expr_json(ke, name)? {
                        Value::String(s) => s,
                        other => other.to_string(),
                    },
                    _ => return Err(format!("{FILE}: Unsupported object key in {name:?}")),
                };
                m.insert(key, expr_json(v, name)?);
            }
            Value::Object(m)
        }
        Expression::Parenthesis(inner) => expr_json(inner, name)?,
        _ => {
            return Err(format!(
                "{FILE}: Unsupported expression in {name:?}; nomad-sim accepts literal values only (no variables, functions or operators)."
            ));
        }
    })
}

fn convert_value(v: Value, kind: K, name: &str) -> Result<Value, String> {
    let bad = |want: &str| {
        format!(
            "{FILE}: Incorrect attribute value type; Inappropriate value for attribute {name:?}: {want} required."
        )
    };
    match kind {
        K::Str => match v {
            Value::String(_) => Ok(v),
            Value::Number(n) => Ok(json!(n.to_string())),
            Value::Bool(b) => Ok(json!(b.to_string())),
            _ => Err(bad("string")),
        },
        K::Int => match &v {
            Value::Number(n) if n.as_i64().is_some() => Ok(v),
            Value::String(s) => s
                .parse::<i64>()
                .map(|i| json!(i))
                .map_err(|_| bad("number")),
            _ => Err(bad("number")),
        },
        K::Bool => match &v {
            Value::Bool(_) => Ok(v),
            Value::String(s) if s == "true" || s == "false" => Ok(json!(s == "true")),
            _ => Err(bad("bool")),
        },
        K::Dur => match &v {
            Value::String(s) => crate::util::parse_go_duration(s, false)
                .map(|ns| json!(ns))
                .ok_or_else(|| {
                    format!("{FILE}: Unsupported duration; {name:?}: time: invalid duration {s:?}")
                }),
            Value::Number(n) if n.as_u64().is_some() => Ok(v),
            _ => Err(bad("duration string")),
        },
        K::StrList => match v {
            Value::Array(a) => a
                .into_iter()
                .map(|x| convert_value(x, K::Str, name))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            _ => Err(bad("list of string")),
        },
        K::Map => match v {
            Value::Object(m) => {
                let mut out = Map::new();
                for (k, x) in m {
                    out.insert(k, convert_value(x, K::Str, name)?);
                }
                Ok(Value::Object(out))
            }
            _ => Err(bad("map of string")),
        },
        K::Raw => Ok(v),
    }
}

/// A block body as plain JSON (config, meta, env as blocks).
fn raw_body(body: &Body) -> Result<Value, String> {
    let mut m = Map::new();
    for s in body.iter() {
        match s {
            Structure::Attribute(a) => {
                m.insert(a.key.to_string(), expr_json(&a.expr, a.key.as_str())?);
            }
            Structure::Block(b) => {
                let v = raw_body(&b.body)?;
                let k = b.identifier.to_string();
                match m.get_mut(&k) {
                    Some(Value::Array(arr)) => arr.push(v),
                    _ => {
                        m.insert(k, Value::Array(vec![v]));
                    }
                }
            }
        }
    }
    Ok(Value::Object(m))
}

/// Converts a block's attributes per `attrs`; blocks are passed to `child`,
/// which returns false for unknown block types.
fn convert(
    body: &Body,
    attrs: Attrs,
    out: &mut Obj,
    mut child: impl FnMut(&Block, &mut Obj) -> Result<bool, String>,
) -> Result<(), String> {
    for s in body.iter() {
        match s {
            Structure::Attribute(a) => {
                let key = a.key.as_str();
                let Some((_, api, kind)) = attrs.iter().find(|(h, _, _)| *h == key) else {
                    return Err(unsupported_arg(key));
                };
                let v = expr_json(&a.expr, key)?;
                out.insert((*api).to_string(), convert_value(v, *kind, key)?);
            }
            Structure::Block(b) => {
                let kind = b.identifier.as_str();
                if let Some((_, api, K::Map | K::Raw)) = attrs.iter().find(|(h, _, _)| *h == kind) {
                    let v = raw_body(&b.body)?;
                    let kind_k = attrs
                        .iter()
                        .find(|(h, _, _)| *h == kind)
                        .map(|(_, _, k)| *k)
                        .unwrap_or(K::Raw);
                    out.insert((*api).to_string(), convert_value(v, kind_k, kind)?);
                    continue;
                }
                if !child(b, out)? {
                    return Err(unsupported_block(kind));
                }
            }
        }
    }
    Ok(())
}

fn simple(b: &Block, attrs: Attrs) -> Result<Value, String> {
    let mut o = Map::new();
    convert(&b.body, attrs, &mut o, |_, _| Ok(false))?;
    Ok(Value::Object(o))
}

fn push(out: &mut Obj, key: &str, v: Value) {
    match out.get_mut(key) {
        Some(Value::Array(a)) => a.push(v),
        _ => {
            out.insert(key.to_string(), Value::Array(vec![v]));
        }
    }
}

fn constraint(b: &Block) -> Result<Value, String> {
    let mut o = Map::new();
    for s in b.body.iter() {
        let Structure::Attribute(a) = s else {
            if let Structure::Block(bb) = s {
                return Err(unsupported_block(bb.identifier.as_str()));
            }
            continue;
        };
        let key = a.key.as_str();
        let v = expr_json(&a.expr, key)?;
        match key {
            "attribute" => {
                o.insert("LTarget".into(), convert_value(v, K::Str, key)?);
            }
            "value" => {
                o.insert("RTarget".into(), convert_value(v, K::Str, key)?);
            }
            "operator" => {
                o.insert("Operand".into(), convert_value(v, K::Str, key)?);
            }
            "distinct_hosts" => {
                o.insert("Operand".into(), json!("distinct_hosts"));
                o.insert(
                    "RTarget".into(),
                    json!(v.as_bool().unwrap_or(true).to_string()),
                );
            }
            "distinct_property" => {
                o.insert("Operand".into(), json!("distinct_property"));
                o.insert("LTarget".into(), convert_value(v, K::Str, key)?);
            }
            "regexp" | "version" | "semver" | "set_contains" | "set_contains_any"
            | "set_contains_all" => {
                o.insert("Operand".into(), json!(key));
                o.insert("RTarget".into(), convert_value(v, K::Str, key)?);
            }
            _ => return Err(unsupported_arg(key)),
        }
    }
    for (k, d) in [("LTarget", ""), ("RTarget", ""), ("Operand", "=")] {
        o.entry(k).or_insert(json!(d));
    }
    Ok(Value::Object(o))
}

fn common_child(b: &Block, out: &mut Obj) -> Result<bool, String> {
    match b.identifier.as_str() {
        "constraint" => push(out, "Constraints", constraint(b)?),
        "affinity" => {
            let mut v = simple(b, AFFINITY)?;
            if let Value::Object(m) = &mut v {
                m.entry("Operand").or_insert(json!("="));
            }
            push(out, "Affinities", v)
        }
        "spread" => {
            let mut o = Map::new();
            convert(&b.body, SPREAD, &mut o, |c, o| {
                if c.identifier.as_str() != "target" {
                    return Ok(false);
                }
                let mut t = Map::new();
                t.insert("Value".into(), json!(label(c, "target")?));
                convert(&c.body, SPREAD_TARGET, &mut t, |_, _| Ok(false))?;
                push(o, "SpreadTarget", Value::Object(t));
                Ok(true)
            })?;
            push(out, "Spreads", Value::Object(o))
        }
        _ => return Ok(false),
    }
    Ok(true)
}

fn service(b: &Block) -> Result<Value, String> {
    let mut o = Map::new();
    convert(&b.body, SERVICE, &mut o, |c, o| {
        if c.identifier.as_str() != "check" {
            return Ok(false);
        }
        let mut chk = Map::new();
        convert(&c.body, CHECK, &mut chk, |cc, chk| {
            if cc.identifier.as_str() != "check_restart" {
                return Ok(false);
            }
            chk.insert("CheckRestart".into(), simple(cc, CHECK_RESTART)?);
            Ok(true)
        })?;
        push(o, "Checks", Value::Object(chk));
        Ok(true)
    })?;
    Ok(Value::Object(o))
}

fn network(b: &Block) -> Result<Value, String> {
    let mut o = Map::new();
    convert(&b.body, NETWORK, &mut o, |c, o| {
        if c.identifier.as_str() != "port" {
            return Ok(false);
        }
        let mut p = Map::new();
        p.insert("Label".into(), json!(label(c, "port")?));
        convert(&c.body, PORT, &mut p, |_, _| Ok(false))?;
        let key = if p.contains_key("Value") {
            "ReservedPorts"
        } else {
            "DynamicPorts"
        };
        p.entry("Value").or_insert(json!(0));
        p.entry("To").or_insert(json!(0));
        p.entry("HostNetwork").or_insert(json!("default"));
        push(o, key, Value::Object(p));
        Ok(true)
    })?;
    Ok(Value::Object(o))
}

fn task(b: &Block) -> Result<Value, String> {
    let mut o = Map::new();
    o.insert("Name".into(), json!(label(b, "task")?));
    convert(&b.body, TASK, &mut o, |c, o| {
        if common_child(c, o)? {
            return Ok(true);
        }
        match c.identifier.as_str() {
            "resources" => {
                let mut r = Map::new();
                convert(&c.body, RESOURCES, &mut r, |cc, r| {
                    if cc.identifier.as_str() != "network" {
                        return Ok(false);
                    }
                    push(r, "Networks", network(cc)?);
                    Ok(true)
                })?;
                o.insert("Resources".into(), Value::Object(r));
            }
            "logs" => {
                o.insert("LogConfig".into(), simple(c, LOGS)?);
            }
            "service" => push(o, "Services", service(c)?),
            "artifact" => push(o, "Artifacts", simple(c, ARTIFACT)?),
            "template" => push(o, "Templates", simple(c, TEMPLATE)?),
            "lifecycle" => {
                o.insert("Lifecycle".into(), simple(c, LIFECYCLE)?);
            }
            "vault" => {
                o.insert("Vault".into(), simple(c, VAULT)?);
            }
            "dispatch_payload" => {
                o.insert("DispatchPayload".into(), simple(c, DISPATCH_PAYLOAD)?);
            }
            "restart" => {
                o.insert("RestartPolicy".into(), simple(c, RESTART)?);
            }
            "volume_mount" => push(o, "VolumeMounts", simple(c, VOLUME_MOUNT)?),
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(Value::Object(o))
}

fn group(b: &Block) -> Result<Value, String> {
    let mut o = Map::new();
    o.insert("Name".into(), json!(label(b, "group")?));
    convert(&b.body, GROUP, &mut o, |c, o| {
        if common_child(c, o)? {
            return Ok(true);
        }
        match c.identifier.as_str() {
            "task" => push(o, "Tasks", task(c)?),
            "update" => {
                o.insert("Update".into(), simple(c, UPDATE)?);
            }
            "restart" => {
                o.insert("RestartPolicy".into(), simple(c, RESTART)?);
            }
            "reschedule" => {
                o.insert("ReschedulePolicy".into(), simple(c, RESCHEDULE)?);
            }
            "migrate" => {
                o.insert("Migrate".into(), simple(c, MIGRATE)?);
            }
            "ephemeral_disk" => {
                o.insert("EphemeralDisk".into(), simple(c, EPHEMERAL_DISK)?);
            }
            "network" => push(o, "Networks", network(c)?),
            "service" => push(o, "Services", service(c)?),
            "scaling" => {
                o.insert("Scaling".into(), simple(c, SCALING)?);
            }
            "volume" => {
                let name = label(c, "volume")?;
                let mut v = Map::new();
                v.insert("Name".into(), json!(name));
                convert(&c.body, VOLUME, &mut v, |_, _| Ok(false))?;
                let vols = o.entry("Volumes").or_insert_with(|| json!({}));
                if let Value::Object(m) = vols {
                    m.insert(name, Value::Object(v));
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(Value::Object(o))
}

/// Parses an HCL job file into the API JSON job (not canonicalised).
pub(crate) fn parse_job(src: &str) -> Result<Obj, String> {
    let body = hcl::parse(src).map_err(|e| format!("{FILE}: {e}"))?;
    let mut job: Option<Obj> = None;
    for s in body.iter() {
        match s {
            Structure::Block(b) if b.identifier.as_str() == "job" => {
                if job.is_some() {
                    return Err(format!(
                        "{FILE}: Duplicate job block; Only one job block is allowed."
                    ));
                }
                let id = label(b, "job")?;
                let mut o = Map::new();
                o.insert("ID".into(), json!(id));
                o.insert("Name".into(), json!(id));
                convert(&b.body, JOB, &mut o, |c, o| {
                    if common_child(c, o)? {
                        return Ok(true);
                    }
                    match c.identifier.as_str() {
                        "group" => push(o, "TaskGroups", group(c)?),
                        "update" => {
                            o.insert("Update".into(), simple(c, UPDATE)?);
                        }
                        "periodic" => {
                            let mut p = simple(c, PERIODIC)?;
                            if let Value::Object(m) = &mut p {
                                m.entry("SpecType").or_insert(json!("cron"));
                            }
                            o.insert("Periodic".into(), p);
                        }
                        "parameterized" => {
                            o.insert("ParameterizedJob".into(), simple(c, PARAMETERIZED)?);
                        }
                        _ => return Ok(false),
                    }
                    Ok(true)
                })?;
                job = Some(o);
            }
            Structure::Block(b) if matches!(b.identifier.as_str(), "variable" | "locals") => {
                return Err(format!(
                    "{FILE}: Unsupported block type; {:?} blocks (HCL2 variables) are not supported by nomad-sim.",
                    b.identifier.as_str()
                ));
            }
            Structure::Block(b) => return Err(unsupported_block(b.identifier.as_str())),
            Structure::Attribute(a) => return Err(unsupported_arg(a.key.as_str())),
        }
    }
    job.ok_or_else(|| format!("{FILE}: Missing job block; A job block is required."))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
job "x" {
  datacenters = ["dc1"]
  type = "service"
  group "g" {
    count = 2
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/sleep"
        args = ["1000"]
      }
      env { FOO = "bar" }
      meta { owner = "me" }
      resources {
        cpu = 100
        memory = 64
      }
    }
    update {
      max_parallel = 1
      min_healthy_time = "1s"
      healthy_deadline = "30s"
      progress_deadline = "1m"
      auto_revert = true
    }
    constraint {
      attribute = "${attr.kernel.name}"
      value = "linux"
    }
  }
}
"#;

    #[test]
    fn parses_sample() {
        let j = parse_job(SAMPLE).expect("parse");
        assert_eq!(j["ID"], "x");
        let g = &j["TaskGroups"][0];
        assert_eq!(g["Count"], 2);
        assert_eq!(g["Update"]["MinHealthyTime"], 1_000_000_000u64);
        assert_eq!(g["Update"]["ProgressDeadline"], 60_000_000_000u64);
        assert_eq!(g["Update"]["AutoRevert"], true);
        assert_eq!(g["Constraints"][0]["LTarget"], "${attr.kernel.name}");
        assert_eq!(g["Constraints"][0]["Operand"], "=");
        let t = &g["Tasks"][0];
        assert_eq!(t["Config"]["command"], "/bin/sleep");
        assert_eq!(t["Config"]["args"][0], "1000");
        assert_eq!(t["Env"]["FOO"], "bar");
        assert_eq!(t["Resources"]["MemoryMB"], 64);
    }

    #[test]
    fn rejects_unknown_block_and_syntax() {
        let e = parse_job("job \"x\" {\n  bogus {\n  }\n}\n").expect_err("bad");
        assert!(
            e.contains("Blocks of type \"bogus\" are not expected here"),
            "{e}"
        );
        let e = parse_job("job \"x\" {\n  foo = 1\n}\n").expect_err("bad");
        assert!(e.contains("An argument named \"foo\""), "{e}");
        assert!(parse_job("job \"x\" {").is_err());
        let e = parse_job("job \"x\" {\n  datacenters = var.dcs\n}\n").expect_err("bad");
        assert!(e.contains("literal values only"), "{e}");
    }
}
