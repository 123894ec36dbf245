//! Field-by-field comparison of two normalized conversations, and the filter through
//! the exceptions list.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::Value;

use super::client::{Body, Exchange};

/// One differing field.
#[derive(Clone, Debug)]
pub struct Difference {
    /// `service/12`: scenario and step number.
    pub step: String,
    /// The request, as the script names it.
    pub label: String,
    /// `status`, `header x-nomad-index`, `$.Diff.Fields[0].Name`, `$` (whole body).
    pub path: String,
    pub real: String,
    pub sim: String,
}

impl Difference {
    /// What the exceptions' patterns match: `LABEL PATH`.
    pub fn key(&self) -> String {
        format!("{} {}", self.label, self.path)
    }
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "step {} {}: {}: real={} sim={}",
            self.step, self.label, self.path, self.real, self.sim
        )
    }
}

const ABSENT: &str = "<absent>";

fn render(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 300 {
        let cut: String = s.chars().take(300).collect();
        format!("{cut}...")
    } else {
        s
    }
}

fn render_body(b: &Body) -> String {
    match b {
        Body::Empty => "<empty>".into(),
        Body::Json(v) => format!("json {}", render(v)),
        Body::Text(t) => format!("text {t:?}"),
    }
}

struct Ctx<'a> {
    step: String,
    label: &'a str,
    out: &'a mut Vec<Difference>,
}

impl Ctx<'_> {
    fn push(&mut self, path: &str, real: String, sim: String) {
        self.out.push(Difference {
            step: self.step.clone(),
            label: self.label.to_string(),
            path: path.to_string(),
            real,
            sim,
        });
    }
}

fn json_diff(ctx: &mut Ctx<'_>, path: &str, real: Option<&Value>, sim: Option<&Value>) {
    match (real, sim) {
        (Some(Value::Object(r)), Some(Value::Object(s))) => {
            let keys: BTreeSet<&String> = r.keys().chain(s.keys()).collect();
            for k in keys {
                json_diff(ctx, &format!("{path}.{k}"), r.get(k), s.get(k));
            }
        }
        (Some(Value::Array(r)), Some(Value::Array(s))) if r.len() == s.len() => {
            for (i, (x, y)) in r.iter().zip(s).enumerate() {
                json_diff(ctx, &format!("{path}[{i}]"), Some(x), Some(y));
            }
        }
        (Some(r), Some(s)) if r == s => {}
        (r, s) => {
            let show = |v: Option<&Value>| v.map(render).unwrap_or_else(|| ABSENT.into());
            ctx.push(path, show(r), show(s));
        }
    }
}

/// Compares two conversations of one scenario step by step.
pub fn compare(scenario: &str, real: &[Exchange], sim: &[Exchange]) -> Vec<Difference> {
    let mut out = Vec::new();
    for i in 0..real.len().max(sim.len()) {
        let (r, s) = (real.get(i), sim.get(i));
        let label = r.or(s).map(|e| e.label.as_str()).unwrap_or_default();
        let mut ctx = Ctx {
            step: format!("{scenario}/{}", i + 1),
            label,
            out: &mut out,
        };
        let (Some(r), Some(s)) = (r, s) else {
            let show = |e: Option<&Exchange>| {
                e.map(|e| format!("{} {}", e.status, render_body(&e.body)))
                    .unwrap_or_else(|| ABSENT.into())
            };
            ctx.push("step", show(r), show(s));
            continue;
        };
        if r.label != s.label {
            // The script went different ways: nothing after this compares.
            ctx.push("label", r.label.clone(), s.label.clone());
            break;
        }
        if r.status != s.status {
            ctx.push("status", r.status.to_string(), s.status.to_string());
        }
        let names: BTreeSet<&String> = r.headers.keys().chain(s.headers.keys()).collect();
        for h in names {
            let (rv, sv) = (r.headers.get(h), s.headers.get(h));
            if rv != sv {
                let show = |v: Option<&String>| v.cloned().unwrap_or_else(|| ABSENT.into());
                ctx.push(&format!("header {h}"), show(rv), show(sv));
            }
        }
        match (&r.body, &s.body) {
            (Body::Json(a), Body::Json(b)) => json_diff(&mut ctx, "$", Some(a), Some(b)),
            (a, b) if a == b => {}
            (a, b) => ctx.push("$", render_body(a), render_body(b)),
        }
    }
    out
}
