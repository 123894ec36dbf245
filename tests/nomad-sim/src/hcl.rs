//! HCL2 job files to Nomad API JSON (`POST /v1/jobs/parse`), as Nomad's `jobspec2`
//! parser does it: input variables (`variable` and `variables` blocks, `var.x`, also in
//! `"${...}"` templates), `locals`, expressions and a part of the function library,
//! then a block/attribute schema for Nomad's field names, durations in nanoseconds.
//! Every problem is reported like Nomad reports it, with its place in the file
//! (`input.hcl:LINE,COL-ENDCOL: Summary; Detail`), all of them, one per line.
//!
//! The syntax is hcl-edit's, which keeps the position of everything it parses.

mod diag;
mod eval;
mod funcs;
mod value;
mod vars;

use ::hcl::edit::expr::Expression;
use ::hcl::edit::structure::{Attribute, Block, Body, Structure};
use serde_json::{Map, Value, json};

use crate::canonical::Obj;
use diag::{Diag, Lines, Span, Text, render_all, render_first, suggestion};
use eval::{Scope, span_of, start_span, whole};
use value::{Ty, V, convert};

/// How to parse: what the request asked and what the emulated Nomad release does with it.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ParseOptions<'a> {
    /// Var-file text whose values override the defaults (`Variables`, Nomad 1.6+).
    pub variables: Option<&'a str>,
    /// `hclv1: true`: the HCL1 parser. The simulator parses HCL1 files that are also
    /// HCL2 with its HCL2 parser, with no variables (HCL1 has none).
    pub hcl1: bool,
}

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

/// Go's error for a fraction where an integer field wants a whole number.
const NOT_WHOLE: &str = "Unsuitable value: value must be a whole number, between -9223372036854775808 and 9223372036854775807";

/// Blocks that may appear once per body.
const SINGLETONS: &[&str] = &[
    "update",
    "restart",
    "reschedule",
    "migrate",
    "ephemeral_disk",
    "resources",
    "logs",
    "lifecycle",
    "vault",
    "dispatch_payload",
    "periodic",
    "parameterized",
    "scaling",
    "check_restart",
];

/// Block types per body, besides the `Map`/`Raw` attributes that may be blocks.
const JOB_BLOCKS: &[&str] = &[
    "affinity",
    "constraint",
    "group",
    "parameterized",
    "periodic",
    "spread",
    "update",
];
const GROUP_BLOCKS: &[&str] = &[
    "affinity",
    "constraint",
    "ephemeral_disk",
    "migrate",
    "network",
    "reschedule",
    "restart",
    "scaling",
    "service",
    "spread",
    "task",
    "update",
    "volume",
];
const TASK_BLOCKS: &[&str] = &[
    "affinity",
    "artifact",
    "constraint",
    "dispatch_payload",
    "lifecycle",
    "logs",
    "resources",
    "restart",
    "service",
    "spread",
    "template",
    "vault",
    "volume_mount",
];
const CONSTRAINT_ARGS: &[&str] = &[
    "attribute",
    "distinct_hosts",
    "distinct_property",
    "operator",
    "regexp",
    "semver",
    "set_contains",
    "set_contains_all",
    "set_contains_any",
    "value",
    "version",
];

/// The job body's decoder: the scope expressions see and the problems found, those
/// Nomad reports at once and those of task `config` (and scaling `policy`), which it
/// decodes in a second pass and reports only when the first found nothing.
struct Dec<'a> {
    scope: Scope<'a>,
    src: &'a str,
    diags: Vec<Diag>,
    late: Vec<Diag>,
}

/// Where a block's header is (`group "web"`), Nomad's place for duplicate blocks.
fn def_span(b: &Block) -> Span {
    let start = span_of(&b.ident).start;
    let end = b
        .labels
        .last()
        .map_or(span_of(&b.ident).end, |l| span_of(l).end);
    start..end
}

/// A Go duration (`time.ParseDuration`) in nanoseconds, or Go's error.
fn go_duration(orig: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {orig:?}");
    let (neg, mut s) = match orig.as_bytes().first() {
        Some(b'-') => (true, &orig[1..]),
        Some(b'+') => (false, &orig[1..]),
        _ => (false, orig),
    };
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total = 0f64;
    while !s.is_empty() {
        let num_len = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let num = &s[..num_len];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(invalid());
        }
        let n: f64 = num.parse().map_err(|_| invalid())?;
        s = &s[num_len..];
        let unit_len = s
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(s.len());
        let unit = &s[..unit_len];
        s = &s[unit_len..];
        let mult = match unit {
            "" => return Err(format!("time: missing unit in duration {orig:?}")),
            "ns" => 1.0,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            other => return Err(format!("time: unknown unit {other:?} in duration {orig:?}")),
        };
        total += n * mult;
    }
    if total > 9.2e18 {
        return Err(invalid());
    }
    let ns = total.round() as i64;
    Ok(if neg { -ns } else { ns })
}

impl Dec<'_> {
    fn unsupported_arg(&mut self, a: &Attribute, attrs: Attrs, set: &[&str]) {
        let key = a.key.as_str();
        let mut cands: Vec<&str> = attrs
            .iter()
            .filter(|(_, _, k)| !matches!(k, K::Map | K::Raw))
            .map(|(h, _, _)| *h)
            .filter(|h| !set.contains(h))
            .collect();
        cands.sort_unstable();
        let hint = suggestion(key, cands);
        self.diags.push(Diag::at(
            span_of(&a.key),
            "Unsupported argument",
            format!("An argument named {key:?} is not expected here.{hint}"),
        ));
    }

    fn unsupported_block(&mut self, b: &Block, attrs: Attrs, blocks: &[&str]) {
        let kind = b.ident.as_str();
        let mut cands: Vec<&str> = attrs
            .iter()
            .filter(|(_, _, k)| matches!(k, K::Map | K::Raw))
            .map(|(h, _, _)| *h)
            .chain(blocks.iter().copied())
            .collect();
        cands.sort_unstable();
        cands.dedup();
        let hint = suggestion(kind, cands);
        self.diags.push(Diag::at(
            span_of(&b.ident),
            "Unsupported block type",
            format!("Blocks of type {kind:?} are not expected here.{hint}"),
        ));
    }

    /// The block's one label (`label_name` is Nomad's name for it, `""` for ports).
    fn label(&mut self, b: &Block, what: &str, label_name: &str) -> Option<String> {
        match b.labels.as_slice() {
            [one] => Some(one.as_str().to_string()),
            [] => {
                let from = span_of(&b.ident).end;
                let brace = self
                    .src
                    .get(from..)
                    .and_then(|r| r.find('{'))
                    .map_or(from, |i| from + i);
                self.diags.push(Diag::at(
                    brace..brace + 1,
                    format!("Missing {label_name} for {what}"),
                    format!("All {what} blocks must have 1 labels ({label_name})."),
                ));
                None
            }
            [_, extra, ..] => {
                self.diags.push(Diag::at(
                    span_of(extra),
                    format!("Extraneous label for {what}"),
                    format!("Only 1 labels ({label_name}) are expected for {what} blocks."),
                ));
                None
            }
        }
    }

    /// Evaluates an expression; `None` when it failed (reported) or is null. A value
    /// that could not be computed is also "not known" to Nomad's decoder, which says so
    /// in a second diagnostic, except after an unprintable template interpolation.
    fn value(&mut self, e: &Expression, late: bool) -> Option<V> {
        let mut errs = Vec::new();
        let v = self.scope.eval(e, &mut errs);
        let sink = if late {
            &mut self.late
        } else {
            &mut self.diags
        };
        let template_only = !errs.is_empty()
            && errs
                .iter()
                .all(|d| d.summary == "Invalid template interpolation value");
        sink.extend(errs);
        if matches!(v, V::Unknown) {
            if !template_only {
                sink.push(Diag::at(
                    start_span(self.src, e),
                    "Unsuitable value type",
                    "Unsuitable value: value must be known",
                ));
            }
            return None;
        }
        (!matches!(v, V::Null)).then_some(v)
    }

    fn unsuitable(&mut self, e: &Expression, detail: String, late: bool) -> Option<Value> {
        let d = Diag::at(start_span(self.src, e), "Unsuitable value type", detail);
        if late {
            self.late.push(d);
        } else {
            self.diags.push(d);
        }
        None
    }

    /// An attribute's value as the API field of kind `kind`.
    fn typed(&mut self, e: &Expression, kind: K) -> Option<Value> {
        let v = self.value(e, matches!(kind, K::Raw))?;
        let to = |ty: Ty| convert(&v, &ty).map_err(|m| format!("Unsuitable value: {m}"));
        let out = match kind {
            K::Str => to(Ty::Str).map(|c| c.to_json()),
            K::Bool => to(Ty::Bool).map(|c| c.to_json()),
            K::Int => match to(Ty::Num) {
                Ok(V::Num(n)) => whole(n).map(|i| json!(i)).ok_or_else(|| {
                    NOT_WHOLE.to_string()
                }),
                Ok(other) => Ok(other.to_json()),
                Err(m) => Err(m),
            },
            K::Dur => match &v {
                V::Str(s) => go_duration(s)
                    .map(|ns| json!(ns))
                    .map_err(|m| format!("Unsuitable duration value: {m}")),
                V::Num(n) => whole(*n).map(|i| json!(i)).ok_or_else(|| {
                    NOT_WHOLE.to_string()
                }),
                V::Bool(_) => Err(
                    "Unsuitable value: expected a string but found {{{} %!s(cty.primitiveTypeKind=66)}}"
                        .to_string(),
                ),
                other => Err(format!(
                    "Unsuitable value: expected a string but found {}",
                    other.kind()
                )),
            },
            K::StrList => to(Ty::List(Box::new(Ty::Str))).map(|c| c.to_json()),
            K::Map => to(Ty::Map(Box::new(Ty::Str))).map(|c| c.to_json()),
            K::Raw => Ok(v.to_json()),
        };
        match out {
            Ok(_) if v.has_unknown() => self.unsuitable(
                e,
                "Unsuitable value: value must be known".to_string(),
                matches!(kind, K::Raw),
            ),
            Ok(j) => Some(j),
            Err(d) => self.unsuitable(e, d, matches!(kind, K::Raw)),
        }
    }

    /// A `meta`/`env` block (each argument a string) or a `config` block (anything;
    /// nested blocks become lists of objects).
    fn map_block(&mut self, body: &Body, kind: K) -> Value {
        let mut m = Map::new();
        for s in body.iter() {
            match s {
                Structure::Attribute(a) => {
                    let v = if matches!(kind, K::Raw) {
                        self.typed(&a.value, K::Raw)
                    } else {
                        self.typed(&a.value, K::Str)
                    };
                    if let Some(v) = v {
                        m.insert(a.key.as_str().to_string(), v);
                    }
                }
                Structure::Block(b) if matches!(kind, K::Raw) => {
                    let v = self.map_block(&b.body, K::Raw);
                    match m
                        .entry(b.ident.as_str().to_string())
                        .or_insert_with(|| Value::Array(Vec::new()))
                    {
                        Value::Array(arr) => arr.push(v),
                        other => *other = Value::Array(vec![v]),
                    }
                }
                Structure::Block(b) => {
                    self.diags.push(Diag::at(
                        span_of(&b.ident),
                        "Unsuitable value type",
                        "Unsuitable value: string required",
                    ));
                }
            }
        }
        Value::Object(m)
    }

    /// Decodes a body: attributes per `attrs`; blocks of the types in `blocks` go to
    /// `child` (checked for labels unless in `labeled`, and for duplicates).
    fn body(
        &mut self,
        body: &Body,
        attrs: Attrs,
        blocks: &[&str],
        labeled: &[&str],
        out: &mut Obj,
        mut child: impl FnMut(&mut Self, &Block, &mut Obj),
    ) {
        let set: Vec<&str> = body.attributes().map(|a| a.key.as_str()).collect();
        let mut seen: Vec<(&str, Span)> = Vec::new();
        for s in body.iter() {
            match s {
                Structure::Attribute(a) => {
                    let key = a.key.as_str();
                    let Some((_, api, kind)) = attrs.iter().find(|(h, _, _)| *h == key) else {
                        self.unsupported_arg(a, attrs, &set);
                        continue;
                    };
                    if let Some(v) = self.typed(&a.value, *kind) {
                        out.insert((*api).to_string(), v);
                    }
                }
                Structure::Block(b) => {
                    let kind = b.ident.as_str();
                    let as_map = attrs
                        .iter()
                        .find(|(h, _, k)| *h == kind && matches!(k, K::Map | K::Raw));
                    if as_map.is_none() && !blocks.contains(&kind) {
                        self.unsupported_block(b, attrs, blocks);
                        continue;
                    }
                    if !labeled.contains(&kind)
                        && let Some(l) = b.labels.first()
                    {
                        self.diags.push(Diag::at(
                            span_of(l),
                            format!("Extraneous label for {kind}"),
                            format!("No labels are expected for {kind} blocks."),
                        ));
                        continue;
                    }
                    if SINGLETONS.contains(&kind) {
                        if let Some((_, prev)) = seen.iter().find(|(k, _)| *k == kind) {
                            let prev = Lines::new(self.src).range(prev);
                            self.diags.push(Diag::at(
                                def_span(b),
                                format!("Duplicate {kind} block"),
                                format!("Only one {kind} block is allowed. Another was defined at {prev}."),
                            ));
                            continue;
                        }
                        seen.push((kind, def_span(b)));
                    }
                    if let Some((_, api, k)) = as_map {
                        let v = if matches!(k, K::Raw) {
                            let mut late = std::mem::take(&mut self.diags);
                            let v = self.map_block(&b.body, K::Raw);
                            std::mem::swap(&mut late, &mut self.diags);
                            self.late.extend(late);
                            v
                        } else {
                            self.map_block(&b.body, *k)
                        };
                        out.insert((*api).to_string(), v);
                        continue;
                    }
                    child(self, b, out);
                }
            }
        }
    }

    fn simple(&mut self, b: &Block, attrs: Attrs) -> Value {
        let mut o = Map::new();
        self.body(&b.body, attrs, &[], &[], &mut o, |_, _, _| {});
        Value::Object(o)
    }

    fn constraint(&mut self, b: &Block) -> Value {
        let mut o = Map::new();
        let set: Vec<&str> = b.body.attributes().map(|a| a.key.as_str()).collect();
        for s in b.body.iter() {
            let a = match s {
                Structure::Attribute(a) => a,
                Structure::Block(bb) => {
                    self.unsupported_block(bb, &[], &[]);
                    continue;
                }
            };
            let key = a.key.as_str();
            if !CONSTRAINT_ARGS.contains(&key) {
                let hint = suggestion(
                    key,
                    CONSTRAINT_ARGS.iter().copied().filter(|k| !set.contains(k)),
                );
                self.diags.push(Diag::at(
                    span_of(&a.key),
                    "Unsupported argument",
                    format!("An argument named {key:?} is not expected here.{hint}"),
                ));
                continue;
            }
            let kind = if key == "distinct_hosts" {
                K::Bool
            } else {
                K::Str
            };
            let Some(v) = self.typed(&a.value, kind) else {
                continue;
            };
            let text = v.as_str().unwrap_or_default().to_string();
            match key {
                "attribute" => {
                    o.insert("LTarget".into(), v);
                }
                "value" => {
                    o.insert("RTarget".into(), v);
                }
                "operator" => {
                    o.insert("Operand".into(), v);
                }
                "distinct_hosts" if v == json!(true) => {
                    o.insert("Operand".into(), json!("distinct_hosts"));
                }
                "distinct_property" if !text.is_empty() => {
                    o.insert("Operand".into(), json!("distinct_property"));
                    o.insert("LTarget".into(), v);
                }
                "regexp" | "version" | "semver" | "set_contains" if !text.is_empty() => {
                    o.insert("Operand".into(), json!(key));
                    o.insert("RTarget".into(), v);
                }
                // Nomad 1.1 accepts these and does nothing with them.
                _ => {}
            }
        }
        for (k, d) in [("LTarget", ""), ("RTarget", ""), ("Operand", "=")] {
            o.entry(k).or_insert(json!(d));
        }
        Value::Object(o)
    }

    /// `constraint`, `affinity` and `spread`, common to jobs, groups and tasks.
    fn common_child(&mut self, b: &Block, out: &mut Obj) -> bool {
        match b.ident.as_str() {
            "constraint" => {
                let c = self.constraint(b);
                push(out, "Constraints", c);
            }
            "affinity" => {
                let mut v = self.simple(b, AFFINITY);
                if let Value::Object(m) = &mut v {
                    m.entry("Operand").or_insert(json!("="));
                }
                push(out, "Affinities", v)
            }
            "spread" => {
                let mut o = Map::new();
                self.body(
                    &b.body,
                    SPREAD,
                    &["target"],
                    &["target"],
                    &mut o,
                    |d, c, o| {
                        let mut t = Map::new();
                        if let Some(l) = d.label(c, "target", "") {
                            t.insert("Value".into(), json!(l));
                        }
                        d.body(&c.body, SPREAD_TARGET, &[], &[], &mut t, |_, _, _| {});
                        push(o, "SpreadTarget", Value::Object(t));
                    },
                );
                push(out, "Spreads", Value::Object(o))
            }
            _ => return false,
        }
        true
    }

    fn service(&mut self, b: &Block) -> Value {
        let mut o = Map::new();
        self.body(&b.body, SERVICE, &["check"], &[], &mut o, |d, c, o| {
            let mut chk = Map::new();
            d.body(
                &c.body,
                CHECK,
                &["check_restart"],
                &[],
                &mut chk,
                |d, cc, chk| {
                    let v = d.simple(cc, CHECK_RESTART);
                    chk.insert("CheckRestart".into(), v);
                },
            );
            push(o, "Checks", Value::Object(chk));
        });
        Value::Object(o)
    }

    fn network(&mut self, b: &Block) -> Value {
        let mut o = Map::new();
        self.body(&b.body, NETWORK, &["port"], &["port"], &mut o, |d, c, o| {
            let mut p = Map::new();
            if let Some(l) = d.label(c, "port", "") {
                p.insert("Label".into(), json!(l));
            }
            d.body(&c.body, PORT, &[], &[], &mut p, |_, _, _| {});
            let key = if p.get("Value").and_then(Value::as_i64).unwrap_or(0) > 0 {
                "ReservedPorts"
            } else {
                "DynamicPorts"
            };
            p.entry("Value").or_insert(json!(0));
            p.entry("To").or_insert(json!(0));
            p.entry("HostNetwork").or_insert(json!("default"));
            push(o, key, Value::Object(p));
        });
        Value::Object(o)
    }

    fn task(&mut self, b: &Block) -> Value {
        let mut o = Map::new();
        if let Some(name) = self.label(b, "task", "name") {
            o.insert("Name".into(), json!(name));
        }
        let blocks: Vec<&str> = TASK_BLOCKS.to_vec();
        self.body(&b.body, TASK, &blocks, &[], &mut o, |d, c, o| {
            if d.common_child(c, o) {
                return;
            }
            match c.ident.as_str() {
                "resources" => {
                    let mut r = Map::new();
                    d.body(&c.body, RESOURCES, &["network"], &[], &mut r, |d, cc, r| {
                        let n = d.network(cc);
                        push(r, "Networks", n);
                    });
                    o.insert("Resources".into(), Value::Object(r));
                }
                "logs" => {
                    let v = d.simple(c, LOGS);
                    o.insert("LogConfig".into(), v);
                }
                "service" => {
                    let v = d.service(c);
                    push(o, "Services", v);
                }
                "artifact" => {
                    let v = d.simple(c, ARTIFACT);
                    push(o, "Artifacts", v);
                }
                "template" => {
                    let v = d.simple(c, TEMPLATE);
                    push(o, "Templates", v);
                }
                "lifecycle" => {
                    let v = d.simple(c, LIFECYCLE);
                    o.insert("Lifecycle".into(), v);
                }
                "vault" => {
                    let v = d.simple(c, VAULT);
                    o.insert("Vault".into(), v);
                }
                "dispatch_payload" => {
                    let v = d.simple(c, DISPATCH_PAYLOAD);
                    o.insert("DispatchPayload".into(), v);
                }
                "restart" => {
                    let v = d.simple(c, RESTART);
                    o.insert("RestartPolicy".into(), v);
                }
                "volume_mount" => {
                    let v = d.simple(c, VOLUME_MOUNT);
                    push(o, "VolumeMounts", v);
                }
                _ => {}
            }
        });
        Value::Object(o)
    }

    fn group(&mut self, b: &Block) -> Value {
        let mut o = Map::new();
        if let Some(name) = self.label(b, "group", "name") {
            o.insert("Name".into(), json!(name));
        }
        self.body(
            &b.body,
            GROUP,
            GROUP_BLOCKS,
            &["task", "volume"],
            &mut o,
            |d, c, o| {
                if d.common_child(c, o) {
                    return;
                }
                let (key, v) = match c.ident.as_str() {
                    "task" => {
                        let t = d.task(c);
                        push(o, "Tasks", t);
                        return;
                    }
                    "network" => {
                        let n = d.network(c);
                        push(o, "Networks", n);
                        return;
                    }
                    "service" => {
                        let s = d.service(c);
                        push(o, "Services", s);
                        return;
                    }
                    "volume" => {
                        let Some(name) = d.label(c, "volume", "name") else {
                            return;
                        };
                        let mut v = Map::new();
                        v.insert("Name".into(), json!(name));
                        d.body(&c.body, VOLUME, &[], &[], &mut v, |_, _, _| {});
                        let vols = o.entry("Volumes").or_insert_with(|| json!({}));
                        if let Value::Object(m) = vols {
                            m.insert(name, Value::Object(v));
                        }
                        return;
                    }
                    "update" => ("Update", d.simple(c, UPDATE)),
                    "restart" => ("RestartPolicy", d.simple(c, RESTART)),
                    "reschedule" => ("ReschedulePolicy", d.simple(c, RESCHEDULE)),
                    "migrate" => ("Migrate", d.simple(c, MIGRATE)),
                    "ephemeral_disk" => ("EphemeralDisk", d.simple(c, EPHEMERAL_DISK)),
                    "scaling" => ("Scaling", d.simple(c, SCALING)),
                    _ => return,
                };
                o.insert(key.into(), v);
            },
        );
        Value::Object(o)
    }

    fn job(&mut self, b: &Block, id: &str) -> Obj {
        let mut o = Map::new();
        o.insert("ID".into(), json!(id));
        o.insert("Name".into(), json!(id));
        self.body(&b.body, JOB, JOB_BLOCKS, &["group"], &mut o, |d, c, o| {
            if d.common_child(c, o) {
                return;
            }
            match c.ident.as_str() {
                "group" => {
                    let g = d.group(c);
                    push(o, "TaskGroups", g);
                }
                "update" => {
                    let u = d.simple(c, UPDATE);
                    o.insert("Update".into(), u);
                }
                "periodic" => {
                    let mut p = d.simple(c, PERIODIC);
                    if let Value::Object(m) = &mut p {
                        m.entry("SpecType").or_insert(json!("cron"));
                    }
                    o.insert("Periodic".into(), p);
                }
                "parameterized" => {
                    let p = d.simple(c, PARAMETERIZED);
                    o.insert("ParameterizedJob".into(), p);
                }
                _ => {}
            }
        });
        o
    }
}

fn push(out: &mut Obj, key: &str, v: Value) {
    match out.get_mut(key) {
        Some(Value::Array(a)) => a.push(v),
        _ => {
            out.insert(key.to_string(), Value::Array(vec![v]));
        }
    }
}

/// A syntax error from hcl-edit, placed like Nomad places its own: a zero-width range
/// at the end of the file, else the character the parser stopped at.
fn syntax_error(src: &str, e: &::hcl::edit::parser::Error) -> Diag {
    let loc = e.location();
    let mut at = loc.offset().min(src.len());
    // At the end of the input hcl-edit reports the last byte and the column after it.
    if Lines::new(src).pos(at) != (loc.line(), loc.column()) {
        at = src.len();
    }
    let width = src
        .get(at..)
        .and_then(|r| r.chars().next())
        .map_or(0, char::len_utf8);
    let span = at..at + width;
    let msg = e.message();
    if msg.contains("redefined attribute")
        && let Some(d) = redefined(src, at)
    {
        return d;
    }
    if msg.starts_with("invalid block body") && at == src.len() {
        return Diag::at(
            span,
            "Argument or block definition required",
            "An argument or block definition is required here.",
        );
    }
    let mut chars = msg.chars();
    let first: String = chars
        .next()
        .map(|c| c.to_uppercase().collect())
        .unwrap_or_default();
    Diag::at(
        span,
        "Invalid HCL syntax",
        format!("{first}{}.", chars.as_str()),
    )
}

/// `Attribute redefined` for the argument at byte `at`, naming where it was first set:
/// found by parsing again with the second name replaced by an unused one.
fn redefined(src: &str, at: usize) -> Option<Diag> {
    let rest = src.get(at..)?;
    let len = rest
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-'))
        .unwrap_or(rest.len());
    let key = rest.get(..len).filter(|k| !k.is_empty())?;
    let letters = ('a'..='z').chain('A'..='Z').map(String::from);
    let numbered = (0..200).map(|i| format!("_{i:0>w$}", w = len.saturating_sub(1)));
    let body = letters
        .chain(numbered)
        .filter(|c| c.len() == len && c != key)
        .find_map(|c| {
            let mut text = src.to_string();
            text.replace_range(at..at + len, &c);
            ::hcl::edit::parser::parse_body(&text).ok()
        })?;
    fn first(body: &Body, at: usize, key: &str) -> Option<Span> {
        let attrs: Vec<&Attribute> = body.attributes().collect();
        if attrs.iter().any(|a| span_of(&a.key).start == at) {
            return attrs
                .iter()
                .find(|a| a.key.as_str() == key)
                .map(|a| span_of(&a.key));
        }
        body.blocks().find_map(|b| first(&b.body, at, key))
    }
    let prev = first(&body, at, key)?;
    Some(Diag::at(
        at..at + len,
        "Attribute redefined",
        format!(
            "The argument {key:?} was already set at {}. Each argument may be set only once.",
            Lines::new(src).range(&prev)
        ),
    ))
}

/// HCL1 errors for a top level that is not just `job` (HCL1 has no variables).
fn hcl1_top_level(body: &Body) -> Option<String> {
    let bad: Vec<&str> = body
        .iter()
        .filter_map(|s| match s {
            Structure::Block(b) if b.ident.as_str() == "job" => None,
            Structure::Block(b) => Some(b.ident.as_str()),
            Structure::Attribute(a) => Some(a.key.as_str()),
        })
        .collect();
    if bad.is_empty() {
        return None;
    }
    let list: String = bad
        .iter()
        .map(|k| format!("\t* invalid key: {k}\n"))
        .collect();
    Some(match bad.len() {
        1 => format!("1 error occurred:\n{list}\n"),
        n => format!("{n} errors occurred:\n{list}\n"),
    })
}

/// The top level: `variable`, `variables`, `locals` and `job` blocks, nothing else.
fn check_top_level(body: &Body, src: &str) -> Vec<Diag> {
    const TOP: &[(&str, bool)] = &[
        ("variables", false),
        ("variable", true),
        ("locals", false),
        ("job", true),
    ];
    let mut d = Dec {
        scope: Scope::constant(src, Text::Job),
        src,
        diags: Vec::new(),
        late: Vec::new(),
    };
    for s in body.iter() {
        match s {
            Structure::Attribute(a) => d.diags.push(Diag::at(
                span_of(&a.key),
                "Unsupported argument",
                format!(
                    "An argument named {:?} is not expected here.",
                    a.key.as_str()
                ),
            )),
            Structure::Block(b) => {
                let kind = b.ident.as_str();
                match TOP.iter().find(|(k, _)| *k == kind) {
                    None => {
                        let hint = suggestion(kind, TOP.iter().map(|(k, _)| *k));
                        d.diags.push(Diag::at(
                            span_of(&b.ident),
                            "Unsupported block type",
                            format!("Blocks of type {kind:?} are not expected here.{hint}"),
                        ));
                    }
                    Some((_, true)) => {
                        // Reports a missing or extra label; the name is read later.
                        d.label(b, kind, "name");
                    }
                    Some((_, false)) => {
                        if let Some(l) = b.labels.first() {
                            d.diags.push(Diag::at(
                                span_of(l),
                                format!("Extraneous label for {kind}"),
                                format!("No labels are expected for {kind} blocks."),
                            ));
                        }
                    }
                }
            }
        }
    }
    d.diags
}

/// A decoded `POST /v1/jobs/parse` request body, answered as the emulated `release`
/// does: the job (not canonicalised) and whether to canonicalise it, or the text of the
/// 400 answer. The body decodes like Go's `api.JobsParseRequest`: keys match fields
/// case-insensitively, `null` leaves a field unset, a value of the wrong type is Go's
/// error. `Variables` exists from Nomad 1.6.0 on and `hclv1` until
/// 1.9.0; in other releases such a key is an unknown field, ignored.
pub(crate) fn parse_request(
    release: &crate::agent::Release,
    args: &Value,
) -> Result<(Obj, bool), String> {
    let features = release.parse_features();
    let mut fields: Vec<(&str, bool)> = vec![("JobHCL", false), ("Canonicalize", true)];
    if features.hcl1 {
        fields.push(("hclv1", true));
    }
    if features.variables {
        fields.push(("Variables", false));
    }
    let mut set: Vec<(&str, &Value)> = Vec::new();
    if let Value::Object(m) = args {
        for (key, v) in m {
            let Some((field, is_bool)) = fields
                .iter()
                .find(|(f, _)| f.eq_ignore_ascii_case(key))
                .copied()
            else {
                continue;
            };
            let ok = match v {
                Value::Null => continue,
                Value::Bool(_) => is_bool,
                Value::String(_) => !is_bool,
                _ => false,
            };
            if !ok {
                return Err(format!(
                    "json: cannot unmarshal {} into Go struct field JobsParseRequest.{field} of type {}",
                    crate::gojson::kind(v, false),
                    if is_bool { "bool" } else { "string" }
                ));
            }
            set.retain(|(f, _)| *f != field);
            set.push((field, v));
        }
    }
    let get = |f: &str| set.iter().find(|(k, _)| *k == f).map(|(_, v)| *v);
    let src = get("JobHCL").and_then(Value::as_str).unwrap_or_default();
    if src.is_empty() {
        return Err("Job spec is empty".into());
    }
    let hcl1 = get("hclv1").and_then(Value::as_bool).unwrap_or(false);
    let canonicalize = get("Canonicalize")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let opts = ParseOptions {
        variables: get("Variables").and_then(Value::as_str),
        hcl1,
    };
    match parse_job(src, &opts) {
        Ok(job) => Ok((job, canonicalize)),
        // From 1.6 Nomad says so before its HCL2 parser's messages.
        Err(e) if features.variables && !hcl1 => Err(format!("Failed to parse job: {e}")),
        Err(e) => Err(e),
    }
}

/// Parses an HCL job file into the API JSON job (not canonicalised). The error is the
/// text of Nomad's 400 answer.
pub(crate) fn parse_job(src: &str, opts: &ParseOptions<'_>) -> Result<Obj, String> {
    let vars_src = opts.variables.filter(|v| !v.is_empty() && !opts.hcl1);
    let job_lines = Lines::new(src);
    let vars_lines = Lines::new(vars_src.unwrap_or_default());
    let render = |d: &[Diag]| render_all(d, &job_lines, &vars_lines);
    if src.trim_start_matches(' ').starts_with('{') {
        return Err(format!(
            "{}: nomad-sim does not parse jobspecs in HCL's JSON syntax",
            diag::FILE
        ));
    }
    let parsed = ::hcl::edit::parser::parse_body(src);
    let var_file = match vars_src {
        None => None,
        Some(v) => match ::hcl::edit::parser::parse_body(v) {
            Ok(b) => Some(b),
            Err(e) => {
                let d = syntax_error(v, &e).in_text(Text::Vars);
                return Err(format!(
                    "unable to parse var content: {}",
                    render_first(&[d], &job_lines, &vars_lines)
                ));
            }
        },
    };
    let body = parsed.map_err(|e| render(&[syntax_error(src, &e)]))?;
    if opts.hcl1
        && let Some(e) = hcl1_top_level(&body)
    {
        return Err(e);
    }
    let top = check_top_level(&body, src);
    if !top.is_empty() {
        return Err(render(&top));
    }
    let mut diags = Vec::new();
    let inputs = if opts.hcl1 {
        vars::Inputs::default()
    } else {
        let inputs = vars::decode_inputs(
            &body,
            src,
            var_file.as_ref().map(|b| (b, vars_src.unwrap_or_default())),
            &mut diags,
        );
        if diags.iter().any(|d| !d.warning) {
            return Err(render(&diags));
        }
        inputs
    };
    let mut d = Dec {
        scope: Scope {
            src,
            text: Text::Job,
            vars: (!opts.hcl1).then_some(&inputs.vars),
            locals: (!opts.hcl1).then_some(&inputs.locals),
            passthrough: true,
        },
        src,
        diags: Vec::new(),
        late: Vec::new(),
    };
    let mut job: Option<(Obj, Span)> = None;
    for b in body.blocks().filter(|b| b.ident.as_str() == "job") {
        if let Some((_, first)) = &job {
            let first = job_lines.range(first);
            d.diags.push(Diag::at(
                def_span(b),
                "Duplicate job block",
                format!(
                    "Only one block of type \"job\" is allowed. Previous definition was at {first}."
                ),
            ));
            continue;
        }
        let id = b
            .labels
            .first()
            .map(|l| l.as_str().to_string())
            .unwrap_or_default();
        let o = d.job(b, &id);
        job = Some((o, def_span(b)));
    }
    if job.is_none() {
        d.diags.push(Diag::nowhere(
            "Missing job block",
            "A job block is required",
        ));
    }
    if !d.diags.is_empty() {
        return Err(render(&d.diags));
    }
    if !d.late.is_empty() {
        return Err(render_first(&d.late, &job_lines, &vars_lines));
    }
    Ok(job.map(|(o, _)| o).unwrap_or_default())
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

    fn parse(src: &str) -> Result<Obj, String> {
        parse_job(src, &ParseOptions::default())
    }

    fn with_vars(src: &str, vars: &str) -> Result<Obj, String> {
        parse_job(
            src,
            &ParseOptions {
                variables: Some(vars),
                hcl1: false,
            },
        )
    }

    /// A job with one task; `prelude` comes first, `count` and the task's config `image`
    /// are expressions. `count` is on line (prelude lines + 4), `image` 4 lines later.
    fn job(prelude: &str, count: &str, image: &str) -> String {
        format!(
            "{prelude}job \"web\" {{\n  datacenters = [\"dc1\"]\n  group \"g\" {{\n    count = {count}\n    task \"t\" {{\n      driver = \"docker\"\n      config {{\n        image = {image}\n      }}\n    }}\n  }}\n}}\n"
        )
    }

    fn group(j: &Obj) -> &Value {
        &j["TaskGroups"][0]
    }

    fn image(j: &Obj) -> &Value {
        &j["TaskGroups"][0]["Tasks"][0]["Config"]["image"]
    }

    const UNSET: &str = "A used variable must be set or have a default value; see https://www.nomadproject.io/docs/job-specification/hcl2/variables for details.";

    #[test]
    fn parses_sample() {
        let j = parse(SAMPLE).expect("parse");
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
    fn variable_defaults_are_used() {
        let src = job(
            "variable \"image\" {\n  type = string\n  default = \"nginx\"\n  description = \"the image\"\n}\nvariables {\n  n = 3\n}\n",
            "var.n",
            "var.image",
        );
        let j = parse(&src).expect("parse");
        assert_eq!(group(&j)["Count"], 3);
        assert_eq!(image(&j), "nginx");
        // A string that is a number converts to the field's type, as in Nomad.
        let src = job("variable \"n\" {\n  default = \"2\"\n}\n", "var.n", "\"x\"");
        assert_eq!(group(&parse(&src).expect("parse"))["Count"], 2);
        // Lists and maps, indexed.
        let src = job(
            "variable \"tags\" {\n  type = list(string)\n  default = [\"a\", \"b\"]\n}\nvariable \"m\" {\n  type = map(string)\n  default = { k = \"v\" }\n}\n",
            "1",
            "\"${var.tags[1]}-${var.m.k}-${var.m[\"k\"]}\"",
        );
        assert_eq!(image(&parse(&src).expect("parse")), "b-v-v");
    }

    #[test]
    fn templates_interpolate_variables_and_pass_runtime_names_through() {
        let src = job(
            "variable \"image\" { default = \"nginx\" }\nvariable \"tag\" {\n  default = 1.5\n}\n",
            "\"${2}\"",
            "\"${var.image}:${var.tag} ${attr.kernel.name} ${ NOMAD_META_x } $${var.image}\"",
        );
        let j = parse(&src).expect("parse");
        assert_eq!(
            image(&j),
            "nginx:1.5 ${attr.kernel.name} ${ NOMAD_META_x } ${var.image}"
        );
        // `"${x}"` alone is x itself: a number for `count`.
        assert_eq!(group(&j)["Count"], 2);
        let src = job(
            "variable \"a\" { default = \"v\" }\n",
            "1",
            "<<-EOT\n    x ${var.a}\n      y\n    EOT",
        );
        assert_eq!(image(&parse(&src).expect("parse")), "x v\n  y\n");
        // Bare names Nomad does not know become `${...}` too.
        let src = job("", "1", "attr.unique.hostname");
        assert_eq!(
            image(&parse(&src).expect("parse")),
            "${attr.unique.hostname}"
        );
    }

    #[test]
    fn an_unset_variable_is_an_error_used_or_not() {
        let src = job(
            "variable \"image\" {\n  type = string\n}\n",
            "1",
            "var.image",
        );
        assert_eq!(
            parse(&src).expect_err("unset"),
            format!("<nil>: Unset variable \"image\"; {UNSET}")
        );
        let src = job("variable \"a\" {}\nvariable \"b\" {}\n", "1", "\"x\"");
        assert_eq!(
            parse(&src).expect_err("unset"),
            format!("<nil>: Unset variable \"a\"; {UNSET}\n<nil>: Unset variable \"b\"; {UNSET}")
        );
    }

    #[test]
    fn errors_name_line_and_column() {
        let e = parse("job \"x\" {\n  group \"g\" {\n    bogus = 1\n  }\n}\n").expect_err("bad");
        assert_eq!(
            e,
            "input.hcl:3,5-10: Unsupported argument; An argument named \"bogus\" is not expected here."
        );
        let e = parse("job \"x\" {\n  bogus {\n  }\n}\n").expect_err("bad");
        assert_eq!(
            e,
            "input.hcl:2,3-8: Unsupported block type; Blocks of type \"bogus\" are not expected here."
        );
        // Every problem is reported, and near misses get a suggestion.
        let e = parse(
            "job \"x\" {\n  regon = \"a\"\n  group \"g\" {\n    cont = 1\n    tsk \"t\" {}\n  }\n}\n",
        )
        .expect_err("bad");
        assert_eq!(
            e,
            "input.hcl:2,3-8: Unsupported argument; An argument named \"regon\" is not expected here. Did you mean \"region\"?\n\
             input.hcl:4,5-9: Unsupported argument; An argument named \"cont\" is not expected here. Did you mean \"count\"?\n\
             input.hcl:5,5-8: Unsupported block type; Blocks of type \"tsk\" are not expected here. Did you mean \"task\"?"
        );
        // Columns count characters.
        let e = parse("job \"x\" {\n  meta { a = \"ééé\" }\n  ééé = 1\n}\n").expect_err("bad");
        assert!(
            e.starts_with("input.hcl:3,3-6: Unsupported argument"),
            "{e}"
        );
        let e = parse("job {\n}\n").expect_err("no label");
        assert_eq!(
            e,
            "input.hcl:1,5-6: Missing name for job; All job blocks must have 1 labels (name)."
        );
        let e = parse("job \"x\" {\n  datacenters = [\"a\"]\n  datacenters = [\"b\"]\n}\n")
            .expect_err("twice");
        assert_eq!(
            e,
            "input.hcl:3,3-14: Attribute redefined; The argument \"datacenters\" was already set at input.hcl:2,3-14. Each argument may be set only once."
        );
        let e =
            parse("job \"x\" {\n  group \"g\" {\n    count = \"abc\"\n  }\n}\n").expect_err("type");
        assert_eq!(
            e,
            "input.hcl:3,14-17: Unsuitable value type; Unsuitable value: a number is required"
        );
        let e = parse("job \"x\" {\n  datacenters = var.dcs\n}\n").expect_err("undeclared");
        assert_eq!(
            e,
            "input.hcl:2,20-24: Unsupported attribute; This object does not have an attribute named \"dcs\".\n\
             input.hcl:2,17-24: Unsuitable value type; Unsuitable value: value must be known"
        );
        assert_eq!(
            parse("   ").expect_err("empty"),
            "<nil>: Missing job block; A job block is required"
        );
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        assert_eq!(
            parse("job \"x\" {").expect_err("open"),
            "input.hcl:1,10-10: Argument or block definition required; An argument or block definition is required here."
        );
        let e = parse("job \"x\" {\n  datacenters = [\"dc1\"\n}\n").expect_err("comma");
        assert!(e.starts_with("input.hcl:3,1-2: "), "{e}");
        let e = parse("job \"x\" {\n  datacenters = \n}\n").expect_err("value");
        assert!(e.starts_with("input.hcl:2,17-3,1: "), "{e}");
    }

    #[test]
    fn a_default_of_the_wrong_type_is_an_error() {
        let src = job(
            "variable \"n\" {\n  type = number\n  default = \"abc\"\n}\n",
            "var.n",
            "\"x\"",
        );
        assert_eq!(
            parse(&src).expect_err("type"),
            "input.hcl:3,13-18: Invalid default value for variable; This default value is not compatible with the variable's type constraint: a number is required."
        );
        let src = job(
            "variable \"l\" {\n  type = list(string)\n  default = \"a\"\n}\n",
            "1",
            "\"x\"",
        );
        let e = parse(&src).expect_err("type");
        assert!(
            e.ends_with("type constraint: list of string required."),
            "{e}"
        );
        let src = job(
            "variable \"l\" {\n  type = list(string)\n  default = [[\"a\"]]\n}\n",
            "1",
            "\"x\"",
        );
        let e = parse(&src).expect_err("type");
        assert!(
            e.ends_with("type constraint: element 0: string required."),
            "{e}"
        );
        // Nomad 1.1 wants exact types: `any` is refused.
        let src = job("variable \"a\" {\n  type = any\n}\n", "1", "\"x\"");
        assert_eq!(
            parse(&src).expect_err("any"),
            "input.hcl:2,10-13: Invalid type specification; The keyword \"any\" cannot be used in this type specification: an exact type is required."
        );
        // Defaults are constants.
        let src = job(
            "variable \"a\" { default = \"x\" }\nvariable \"b\" { default = var.a }\n",
            "1",
            "\"x\"",
        );
        assert_eq!(
            parse(&src).expect_err("var in default"),
            "input.hcl:2,26-29: Variables not allowed; Variables may not be used here."
        );
        // A value of the wrong type for a field, through a variable.
        let src = job("variable \"n\" { default = 1.5 }\n", "var.n", "\"x\"");
        assert_eq!(
            parse(&src).expect_err("float count"),
            "input.hcl:5,13-18: Unsuitable value type; Unsuitable value: value must be a whole number, between -9223372036854775808 and 9223372036854775807"
        );
    }

    #[test]
    fn locals_see_variables_and_each_other() {
        let src = job(
            "variable \"image\" { default = \"nginx\" }\nlocals {\n  full = \"${local.repo}/${var.image}:latest\"\n  repo = \"docker.io\"\n  n = 2\n}\n",
            "local.n",
            "local.full",
        );
        let j = parse(&src).expect("parse");
        assert_eq!(group(&j)["Count"], 2);
        assert_eq!(image(&j), "docker.io/nginx:latest");
        let src = job("locals {\n  a = var.nope\n}\n", "1", "\"x\"");
        assert_eq!(
            parse(&src).expect_err("bad local"),
            "input.hcl:2,10-15: Unsupported attribute; This object does not have an attribute named \"nope\"."
        );
    }

    #[test]
    fn validations_check_the_value() {
        let rule = "variable \"a\" {\n  default = \"x\"\n  validation {\n    condition = var.a != \"x\"\n    error_message = \"Must not be x.\"\n  }\n}\n";
        assert_eq!(
            parse(&job(rule, "1", "\"x\"")).expect_err("invalid"),
            "input.hcl:2,13-16: Invalid value for default variable; Must not be x.\n\nThis was checked by the validation rule at input.hcl:3,3-13."
        );
        assert!(with_vars(&job(rule, "1", "var.a"), "a = \"y\"").is_ok());
        let e = with_vars(&job(rule, "1", "\"x\""), "a = \"x\"").expect_err("invalid");
        assert!(
            e.starts_with("input.hcl:1,5-8: Invalid value for varfile variable; Must not be x."),
            "{e}"
        );
    }

    #[test]
    fn expressions_and_functions() {
        let src = job(
            "variable \"n\" { default = 2 }\nvariable \"names\" { default = [\"a\", \"b\"] }\n",
            "var.n > 1 ? var.n * 2 + 1 : 1",
            "join(\",\", [for x in var.names : upper(x)])",
        );
        let j = parse(&src).expect("parse");
        assert_eq!(group(&j)["Count"], 5);
        assert_eq!(image(&j), "A,B");
        let e = parse(&job("", "1", "nosuch(1)")).expect_err("unknown function");
        assert!(
            e.starts_with(
                "input.hcl:8,17-23: Call to unknown function; There is no function named \"nosuch\"."
            ),
            "{e}"
        );
    }

    #[test]
    fn var_file_values_override_defaults() {
        let src = job(
            "variable \"image\" {\n  type = string\n}\nvariable \"n\" {\n  type = number\n  default = 1\n}\n",
            "var.n",
            "var.image",
        );
        let j = with_vars(&src, "image = \"redis\"\nn = \"3\"\n").expect("parse");
        assert_eq!(image(&j), "redis");
        assert_eq!(group(&j)["Count"], 3);
        // A name the jobspec does not declare only warns: shown next to an error.
        assert!(with_vars(&src, "image = \"redis\"\nzz = 1\n").is_ok());
        assert_eq!(
            with_vars(&src, "zz = 1\n").expect_err("unset"),
            format!(
                "<nil>: Undefined variable; A \"zz\" variable was set but was not found in known variables. To declare variable \"zz\", place this block in your job files\n<nil>: Unset variable \"image\"; {UNSET}"
            )
        );
        assert_eq!(
            with_vars(&src, "image = \"redis\"\nn = \"x\"\n").expect_err("type"),
            "input.hcl:2,5-8: Invalid value for variable; The value for n is not compatible with the variable's type constraint: a number is required."
        );
        let e = with_vars(&src, "image = \n").expect_err("syntax");
        assert!(
            e.starts_with("unable to parse var content: input.hcl:1,9-2,1: "),
            "{e}"
        );
    }

    #[test]
    fn variables_apply_only_in_releases_that_take_them() {
        let src = job("variable \"image\" {}\n", "1", "var.image");
        let body = json!({"JobHCL": src, "Variables": "image = \"redis\"\n"});
        let release = |v: &str| crate::agent::Release::parse(v).expect("release");
        // 1.1.2 (and 1.5) have no `Variables` field: it is ignored.
        for old in ["1.1.2", "1.5.17"] {
            assert_eq!(
                parse_request(&release(old), &body).expect_err(old),
                format!("<nil>: Unset variable \"image\"; {UNSET}")
            );
        }
        let (j, canonicalize) = parse_request(&release("1.6.0"), &body).expect("1.6");
        assert_eq!(image(&j), "redis");
        assert!(!canonicalize);
        // From 1.6 the errors say so first.
        let body = json!({"JobHCL": src});
        assert_eq!(
            parse_request(&release("1.6.0"), &body).expect_err("unset"),
            format!("Failed to parse job: <nil>: Unset variable \"image\"; {UNSET}")
        );
        // Keys match case-insensitively; wrong types are Go's errors.
        let body = json!({"jobhcl": "job \"x\" {}", "HCLv1": true});
        assert!(parse_request(&release("1.1.2"), &body).is_ok());
        let body = json!({"JobHCL": 5});
        assert_eq!(
            parse_request(&release("1.1.2"), &body).expect_err("type"),
            "json: cannot unmarshal number into Go struct field JobsParseRequest.JobHCL of type string"
        );
        let body = json!({"JobHCL": "job \"x\" {}", "Variables": 5});
        assert!(parse_request(&release("1.1.2"), &body).is_ok());
        let e = parse_request(&release("1.6.0"), &body).expect_err("type");
        assert!(
            e.ends_with("JobsParseRequest.Variables of type string"),
            "{e}"
        );
    }

    #[test]
    fn hcl1_files_have_no_variables() {
        let opts = ParseOptions {
            variables: Some("a = 1"),
            hcl1: true,
        };
        assert_eq!(
            parse_job("variable \"a\" {}\njob \"x\" {}\n", &opts).expect_err("hcl1"),
            "1 error occurred:\n\t* invalid key: variable\n\n"
        );
        let j = parse_job(&job("", "1", "\"${var.a}\""), &opts).expect("hcl1");
        assert_eq!(image(&j), "${var.a}");
    }

    #[test]
    fn constraints_like_nomad_1_1() {
        let j = parse(
            "job \"x\" {\n  constraint {\n    distinct_hosts = true\n  }\n  constraint {\n    attribute = \"a\"\n    set_contains_any = \"b\"\n  }\n}\n",
        )
        .expect("parse");
        assert_eq!(
            j["Constraints"],
            json!([
                {"LTarget": "", "RTarget": "", "Operand": "distinct_hosts"},
                {"LTarget": "a", "RTarget": "", "Operand": "="}
            ])
        );
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration("1.5h"), Ok(5_400_000_000_000));
        assert_eq!(go_duration("-5s"), Ok(-5_000_000_000));
        assert_eq!(go_duration(".5s"), Ok(500_000_000));
        assert_eq!(
            go_duration("5"),
            Err("time: missing unit in duration \"5\"".into())
        );
        assert_eq!(
            go_duration("1h-5m"),
            Err("time: unknown unit \"h-\" in duration \"1h-5m\"".into())
        );
        assert_eq!(go_duration(""), Err("time: invalid duration \"\"".into()));
    }
}
