//! Normalization of one side's recorded answers, so that what legitimately differs
//! between two Nomads (random IDs, Raft indexes, clocks, node names, ports) compares
//! equal while everything else (null vs value, zero vs non-zero, shapes) still differs.
//!
//! - IDs (UUID shaped, anywhere in a string) become `<eval#1>`, `<alloc#2>`, ... by kind
//!   and first appearance in the conversation, so the same ID keeps its name across steps.
//! - Indexes: `0` stays `0`. A `JobModifyIndex` / `JobSpecModifyIndex` value becomes a
//!   placeholder `<jmi#N>` by first appearance, and so does every other index field or
//!   `X-Nomad-Index` header equal to one of them (the check-and-set relations: a plan's
//!   index is the job's, a register's eval is created at the job's index ...). Other
//!   indexes become `<index>`, and so does a header index of 0 (a table's index on a
//!   shared agent depends on other tests): order is checked by the script where it
//!   matters (blocking queries). An evaluation's `SnapshotIndex` is always `<index>`:
//!   the scenarios write to one agent at the same time.
//! - Times: Unix-nanosecond integers and RFC 3339 strings become `<time>`; Go's zero time
//!   `0001-01-01T00:00:00Z`, `0` and `null` stay as they are.
//! - Node names, `host:port` addresses and hashes become `<node>`, `<addr>`, `<hash>`;
//!   a computed node class (`v1:8585101830949839798`, a key of `ClassEligibility`)
//!   becomes `<class>`.
//! - The evaluations a plan would create (`CreatedEvals`) define no placeholder: their
//!   `JobModifyIndex` is one past the job's, which the script records as a fact.
//! - Lists whose order is by random ID on a real server (allocations, evaluations,
//!   deployments) are sorted by creation index first, then named.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::client::{Body, Exchange};

/// Keys whose values are Raft indexes.
const INDEX_KEYS: &[&str] = &[
    "AllocModifyIndex",
    "CreateIndex",
    "DeploymentModifyIndex",
    "EvalCreateIndex",
    "Index",
    "JobCreateIndex",
    "JobModifyIndex",
    "JobSpecModifyIndex",
    "ModifyIndex",
    "NodeModifyIndex",
    "SnapshotIndex",
    "VolumeEvalIndex",
];

/// Keys that define `<jmi#N>` placeholders.
const ANCHOR_KEYS: &[&str] = &["JobModifyIndex", "JobSpecModifyIndex"];

/// Whether `s` is an ID: 8-4-4-4-12 lower-case hex digits (Nomad's IDs are random hex,
/// not always RFC 4122 version 4).
pub fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Replaces every ID inside `s` by `f(id)`.
fn replace_uuids(s: &str, mut f: impl FnMut(&str) -> String) -> String {
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s.len() - i >= 36 && s.is_char_boundary(i) && s.is_char_boundary(i + 36) {
            let cand = &s[i..i + 36];
            if is_uuid(cand) {
                out.push_str(&f(cand));
                i += 36;
                continue;
            }
        }
        let ch = s[i..].chars().next().unwrap_or(' ');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// Replaces every ID inside `s` by `with`.
pub fn mask_uuids(s: &str, with: &str) -> String {
    replace_uuids(s, |_| with.to_string())
}

/// A computed node class: `v1:` and a decimal hash.
fn is_node_class(s: &str) -> bool {
    s.strip_prefix("v1:")
        .is_some_and(|h| !h.is_empty() && h.bytes().all(|c| c.is_ascii_digit()))
}

fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[..4].iter().all(u8::is_ascii_digit)
        && (s.ends_with('Z') || s[19..].contains('+') || s[19..].contains('-'))
}

fn is_addr(s: &str) -> bool {
    let Some((host, port)) = s.rsplit_once(':') else {
        return false;
    };
    !port.is_empty()
        && port.bytes().all(|c| c.is_ascii_digit())
        && host.split('.').count() == 4
        && host
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()))
}

/// The kind of ID held by `key` (inside `parent`).
fn id_kind(key: Option<&str>, parent: Option<&Map<String, Value>>) -> &'static str {
    match key {
        Some(
            "EvalID" | "PreviousEval" | "NextEval" | "BlockedEval" | "FollowupEvalID"
            | "CreatedEvals",
        ) => "eval",
        Some("DeploymentID") => "deploy",
        Some("NodeID" | "PrevNodeID") => "node",
        Some(
            "PreviousAllocation" | "NextAllocation" | "PrevAllocID" | "PlacedCanaries" | "AllocID",
        ) => "alloc",
        Some("ID") => match parent {
            Some(p) if p.contains_key("TriggeredBy") => "eval",
            Some(p) if p.contains_key("ClientStatus") => "alloc",
            Some(p) if p.contains_key("JobSpecModifyIndex") => "deploy",
            Some(p) if p.contains_key("Drivers") => "node",
            _ => "id",
        },
        _ => "id",
    }
}

/// Sort key of a list element listed by random ID on a real server.
fn creation_key(v: &Value) -> (u64, String, String) {
    (
        v.get("CreateIndex").and_then(Value::as_u64).unwrap_or(0),
        v.get("Name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        v.get("JobVersion")
            .map(Value::to_string)
            .unwrap_or_default(),
    )
}

fn listed_by_random_id(a: &[Value]) -> bool {
    !a.is_empty()
        && a.iter().all(|x| {
            x.get("CreateIndex").is_some_and(Value::is_u64)
                && x.get("ID").and_then(Value::as_str).is_some_and(is_uuid)
        })
}

fn sort_lists(v: &mut Value) {
    match v {
        Value::Array(a) => {
            for x in a.iter_mut() {
                sort_lists(x);
            }
            if listed_by_random_id(a) {
                a.sort_by_key(creation_key);
            }
        }
        Value::Object(m) => {
            for x in m.values_mut() {
                sort_lists(x);
            }
        }
        _ => {}
    }
}

/// One side's normalizer: names persist across the steps of a conversation.
#[derive(Default)]
pub struct Normalizer {
    names: HashMap<String, String>,
    counters: HashMap<&'static str, usize>,
    anchors: HashMap<u64, String>,
}

impl Normalizer {
    fn name(&mut self, id: &str, kind: &'static str) -> String {
        if let Some(n) = self.names.get(id) {
            return n.clone();
        }
        let c = self.counters.entry(kind).or_insert(0);
        *c += 1;
        let n = format!("<{kind}#{c}>");
        self.names.insert(id.to_string(), n.clone());
        n
    }

    fn anchor(&mut self, v: u64) {
        if v != 0 && !self.anchors.contains_key(&v) {
            let n = format!("<jmi#{}>", self.anchors.len() + 1);
            self.anchors.insert(v, n);
        }
    }

    fn index(&self, v: u64) -> Value {
        if v == 0 {
            return Value::from(0);
        }
        Value::String(
            self.anchors
                .get(&v)
                .cloned()
                .unwrap_or_else(|| "<index>".into()),
        )
    }

    fn collect_anchors(&mut self, v: &Value) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    if k == "CreatedEvals" {
                        continue;
                    }
                    if ANCHOR_KEYS.contains(&k.as_str())
                        && let Some(n) = x.as_u64()
                    {
                        self.anchor(n);
                    }
                    self.collect_anchors(x);
                }
            }
            Value::Array(a) => a.iter().for_each(|x| self.collect_anchors(x)),
            _ => {}
        }
    }

    fn string(&mut self, s: &str, key: Option<&str>, parent: Option<&Map<String, Value>>) -> Value {
        match key {
            Some("NodeName") if !s.is_empty() => return Value::String("<node>".into()),
            Some("Hash") if !s.is_empty() => return Value::String("<hash>".into()),
            _ => {}
        }
        if is_rfc3339(s) && !s.starts_with("0001-") {
            return Value::String("<time>".into());
        }
        if is_addr(s) {
            return Value::String("<addr>".into());
        }
        if is_uuid(s) {
            let kind = id_kind(key, parent);
            return Value::String(self.name(s, kind));
        }
        Value::String(replace_uuids(s, |id| self.name(id, "id")))
    }

    fn value(
        &mut self,
        v: &Value,
        key: Option<&str>,
        parent: Option<&Map<String, Value>>,
    ) -> Value {
        match v {
            Value::Object(m) => {
                let mut out = Map::new();
                for (k, x) in m {
                    let name = if is_node_class(k) { "<class>" } else { k };
                    out.insert(name.to_string(), self.value(x, Some(k), Some(m)));
                }
                Value::Object(out)
            }
            // Elements of a list keep the list's key (`PlacedCanaries`: alloc IDs).
            Value::Array(a) => Value::Array(a.iter().map(|x| self.value(x, key, parent)).collect()),
            Value::Number(n) => {
                // The index of the state an evaluation was scheduled from: on an agent
                // the other scenarios write to at the same time, any later index.
                if key == Some("SnapshotIndex") && n.as_u64().is_some_and(|u| u != 0) {
                    return Value::String("<index>".into());
                }
                if let Some(k) = key
                    && INDEX_KEYS.contains(&k)
                    && let Some(u) = n.as_u64()
                {
                    return self.index(u);
                }
                if n.as_u64().is_some_and(|u| u >= 100_000_000_000_000_000)
                    || n.as_i64().is_some_and(|i| i >= 100_000_000_000_000_000)
                {
                    return Value::String("<time>".into());
                }
                v.clone()
            }
            Value::String(s) => self.string(s, key, parent),
            _ => v.clone(),
        }
    }

    fn text(&mut self, s: &str) -> String {
        let s = replace_uuids(s, |id| self.name(id, "id"));
        // Job modify indexes in check-and-set errors: `... modify index: 44`.
        let mut out = String::new();
        let mut rest = s.as_str();
        while let Some(pos) = rest.find("index") {
            let (head, tail) = rest.split_at(pos + "index".len());
            out.push_str(head);
            let sep_len = tail.len() - tail.trim_start_matches([':', ' ']).len();
            let (sep, after) = tail.split_at(sep_len);
            let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
            out.push_str(sep);
            match digits
                .parse::<u64>()
                .ok()
                .and_then(|n| self.anchors.get(&n))
            {
                Some(a) if !sep.is_empty() => out.push_str(a),
                _ => out.push_str(&digits),
            }
            rest = &after[digits.len()..];
        }
        out.push_str(rest);
        out
    }

    /// The normalized copy of one exchange.
    pub fn exchange(&mut self, ex: &Exchange) -> Exchange {
        let mut body = ex.body.clone();
        if let Body::Json(v) = &mut body {
            sort_lists(v);
            self.collect_anchors(v);
        }
        let body = match &body {
            Body::Json(v) => Body::Json(self.value(v, None, None)),
            Body::Text(t) => Body::Text(self.text(t)),
            Body::Empty => Body::Empty,
        };
        let headers = ex
            .headers
            .iter()
            .map(|(k, v)| {
                let v = match k.as_str() {
                    // A table's index, 0 included, depends on what else the agent
                    // has done (other tests on a shared agent): only its relation to
                    // a job modify index is compared.
                    "x-nomad-index" => match v.parse::<u64>() {
                        Ok(n) => self
                            .anchors
                            .get(&n)
                            .cloned()
                            .unwrap_or_else(|| "<index>".into()),
                        Err(_) => v.clone(),
                    },
                    _ => v.clone(),
                };
                (k.clone(), v)
            })
            .collect();
        Exchange {
            label: ex.label.clone(),
            status: ex.status,
            headers,
            body,
        }
    }
}
