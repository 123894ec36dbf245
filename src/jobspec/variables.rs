//! Feeding values to an HCL2 jobspec's `variable` blocks (pure).
//!
//! Nomad 1.6 and later take variable values in the parse request (`Variables`, in the
//! var-file format that [`var_file`] writes). Older Nomad, such as 1.1.2, takes none:
//! there [`with_values`] writes each value into the jobspec as its variable's default,
//! keeping every other line where it was, so that Nomad's error positions still point at
//! the user's text.

use std::collections::BTreeMap;
use std::ops::Range;

use hcl_edit::Span;
use hcl_edit::structure::{Body, Structure};

/// A variable's value and where it came from.
#[derive(Clone, PartialEq, Eq)]
pub struct VarValue {
    /// The value as given: text for string variables, JSON for lists, maps and objects,
    /// a number or `true`/`false` for those types.
    pub text: String,
    /// Whether it came from a Secret (never shown by the operator).
    pub secret: bool,
    /// Where it was set, for messages: `spec.variables.image`,
    /// `spec.variablesFrom[1] (Secret "db", key "password")`.
    pub origin: String,
    /// Whether the jobspec must declare it (true for `spec.variables`; keys of a shared
    /// ConfigMap that the jobspec does not use are left out instead).
    pub required: bool,
}

impl std::fmt::Debug for VarValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = if self.secret {
            "[redacted]"
        } else {
            &self.text
        };
        f.debug_struct("VarValue")
            .field("text", &text)
            .field("origin", &self.origin)
            .finish()
    }
}

/// Variable values by name.
pub type Values = BTreeMap<String, VarValue>;

/// The values of `spec.variables`, each of which the jobspec must declare.
pub fn spec_values(variables: &BTreeMap<String, String>) -> Values {
    variables
        .iter()
        .map(|(name, text)| {
            let value = VarValue {
                text: text.clone(),
                secret: false,
                origin: format!("spec.variables.{name}"),
                required: true,
            };
            (name.clone(), value)
        })
        .collect()
}

/// The values of `--var NAME=VALUE` flags (a later flag wins).
pub fn flag_values(vars: &[(String, String)], required: bool) -> Values {
    vars.iter()
        .map(|(name, text)| {
            let value = VarValue {
                text: text.clone(),
                secret: false,
                origin: format!("--var {name}"),
                required,
            };
            (name.clone(), value)
        })
        .collect()
}

/// The type a variable declares, as far as encoding its value needs to know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VarType {
    /// `string`, `any`, or no type: the value is text.
    String,
    /// `number`.
    Number,
    /// `bool`.
    Bool,
    /// `list(...)`, `set(...)`, `tuple(...)`, `map(...)`, `object(...)`: the value is JSON.
    Collection,
}

/// One variable a jobspec declares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Declared {
    /// Its name.
    pub name: String,
    /// Its type.
    pub kind: VarType,
    /// What to replace to give it a value: the whole `variable` block, or the attribute's
    /// expression inside a `variables` block.
    span: Range<usize>,
    /// Whether it is a `variable "name" { ... }` block (else a `variables` attribute).
    block: bool,
}

/// Why values cannot be fed to a jobspec: the message names the variable and the field
/// the value came from.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct VariableError(pub String);

/// A syntax error in the jobspec, with Nomad's position format (`input.hcl:LINE,COL`).
pub fn syntax_error(error: &hcl_edit::parser::Error) -> String {
    let location = error.location();
    format!(
        "input.hcl:{},{}: Invalid syntax; {}",
        location.line(),
        location.column(),
        error.message()
    )
}

/// The variables `src` declares, in order. A syntax error is returned in Nomad's format.
pub fn declared(src: &str) -> Result<Vec<Declared>, String> {
    let body = hcl_edit::parser::parse_body(src).map_err(|e| syntax_error(&e))?;
    Ok(declared_in(&body, src))
}

fn declared_in(body: &Body, src: &str) -> Vec<Declared> {
    let mut out = Vec::new();
    for structure in body.iter() {
        let Structure::Block(block) = structure else {
            continue;
        };
        match (block.ident.as_str(), block.labels.as_slice()) {
            ("variable", [label]) => {
                let Some(span) = block.span() else { continue };
                let kind = block
                    .body
                    .get_attribute("type")
                    .and_then(|a| a.value.span())
                    .and_then(|s| src.get(s))
                    .map_or(VarType::String, type_of);
                out.push(Declared {
                    name: label.as_str().to_string(),
                    kind,
                    span,
                    block: true,
                });
            }
            ("variables", []) => {
                for attribute in block.body.attributes() {
                    let Some(span) = attribute.value.span() else {
                        continue;
                    };
                    let kind = src.get(span.clone()).map_or(VarType::String, kind_of_value);
                    out.push(Declared {
                        name: attribute.key.as_str().to_string(),
                        kind,
                        span,
                        block: false,
                    });
                }
            }
            _ => {}
        }
    }
    out
}

/// The type named by a `type = ...` expression.
fn type_of(expr: &str) -> VarType {
    let expr = expr.trim();
    match expr {
        "number" => VarType::Number,
        "bool" => VarType::Bool,
        "string" | "any" => VarType::String,
        _ if expr.contains('(') => VarType::Collection,
        _ => VarType::String,
    }
}

/// The type of a `variables { name = <default> }` entry, from its default.
fn kind_of_value(expr: &str) -> VarType {
    let expr = expr.trim();
    if expr == "true" || expr == "false" {
        VarType::Bool
    } else if expr.parse::<f64>().is_ok() {
        VarType::Number
    } else if expr.starts_with('[') || expr.starts_with('{') {
        VarType::Collection
    } else {
        VarType::String
    }
}

/// `value` as a one-line HCL expression of type `kind`.
pub fn encode(name: &str, kind: VarType, value: &VarValue) -> Result<String, VariableError> {
    let text = value.text.trim();
    let wrong = |what: &str| {
        // A Secret's value is not repeated in the message.
        let shown = if value.secret {
            String::new()
        } else {
            format!(" {:?}", value.text)
        };
        VariableError(format!(
            "{}: variable {name:?} is {what}, so its value{shown} must be {}",
            value.origin,
            match kind {
                VarType::Number => "a number",
                VarType::Bool => "true or false",
                _ => "JSON (for example [\"a\", \"b\"] or {\"k\": \"v\"})",
            }
        ))
    };
    match kind {
        VarType::String => Ok(quote(&value.text)),
        VarType::Number => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Number(n)) => Ok(n.to_string()),
            _ => Err(wrong("a number")),
        },
        VarType::Bool => match text {
            "true" | "false" => Ok(text.to_string()),
            _ => Err(wrong("a bool")),
        },
        VarType::Collection => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(json) => Ok(json_expr(&json)),
            Err(_) => Err(wrong("a list, map or object")),
        },
    }
}

/// An HCL quoted string of `text`: escapes, and `${` / `%{` kept literal.
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' | '%' if chars.peek() == Some(&'{') => {
                out.push(c);
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON value as a one-line HCL expression.
fn json_expr(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => quote(s),
        serde_json::Value::Array(items) => {
            let items: Vec<String> = items.iter().map(json_expr).collect();
            format!("[{}]", items.join(", "))
        }
        serde_json::Value::Object(fields) => {
            let fields: Vec<String> = fields
                .iter()
                .map(|(k, v)| format!("{} = {}", quote(k), json_expr(v)))
                .collect();
            format!("{{{}}}", fields.join(", "))
        }
        other => other.to_string(),
    }
}

/// The values the jobspec declares, encoded: (name, expression). A value for a variable
/// the jobspec does not declare is an error when it is `required`, and left out
/// otherwise.
fn encoded(
    declared: &[Declared],
    values: &Values,
) -> Result<Vec<(Declared, String)>, VariableError> {
    let mut out = Vec::new();
    for (name, value) in values {
        match declared.iter().find(|d| &d.name == name) {
            Some(d) => out.push((d.clone(), encode(name, d.kind, value)?)),
            None if value.required => {
                return Err(VariableError(format!(
                    "{}: the jobspec declares no variable {name:?} (add a variable \"{name}\" block, or remove the value)",
                    value.origin
                )));
            }
            None => {}
        }
    }
    Ok(out)
}

/// `values` in Nomad's var-file format (`name = <expression>` per line), for the parse
/// request of Nomad 1.6 and later.
pub fn var_file(src: &str, values: &Values) -> Result<String, VariableError> {
    let declared = declared(src).map_err(VariableError)?;
    let mut out = String::new();
    for (d, expr) in encoded(&declared, values)? {
        out.push_str(&format!("{} = {expr}\n", d.name));
    }
    Ok(out)
}

/// `src` with each value written in as its variable's default, for Nomad releases whose
/// parse request takes no variables. Every line keeps its number: a `variable` block
/// given a value becomes `variable "name" { default = <value> }` followed by as many
/// empty lines as the block had.
pub fn with_values(src: &str, values: &Values) -> Result<String, VariableError> {
    let declared = declared(src).map_err(VariableError)?;
    let mut edits = encoded(&declared, values)?;
    edits.sort_by_key(|(d, _)| d.span.start);
    let mut out = String::with_capacity(src.len());
    let mut at = 0;
    for (d, expr) in edits {
        let Some(original) = src.get(d.span.clone()) else {
            continue;
        };
        out.push_str(src.get(at..d.span.start).unwrap_or_default());
        if d.block {
            out.push_str(&format!(
                "variable {} {{ default = {expr} }}",
                quote(&d.name)
            ));
        } else {
            out.push_str(&expr);
        }
        for _ in 0..original.matches('\n').count() {
            out.push('\n');
        }
        at = d.span.end;
    }
    out.push_str(src.get(at..).unwrap_or_default());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = r#"variable "image" {
  type        = string
  description = "what to run"
}

variable "count" {
  type    = number
  default = 1
}

variable "dcs" {
  type    = list(string)
  default = ["dc1"]
}

variables {
  enabled = true
}

job "web" {
  datacenters = var.dcs
  group "g" {
    count = var.count
  }
}
"#;

    fn value(text: &str) -> VarValue {
        VarValue {
            text: text.into(),
            secret: false,
            origin: "spec.variables.x".into(),
            required: true,
        }
    }

    fn values(pairs: &[(&str, &str)]) -> Values {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), value(v)))
            .collect()
    }

    #[test]
    fn finds_variable_blocks_and_variables_entries_with_their_types() {
        let declared = declared(SPEC).expect("parse");
        let kinds: Vec<(&str, VarType)> =
            declared.iter().map(|d| (d.name.as_str(), d.kind)).collect();
        assert_eq!(
            kinds,
            [
                ("image", VarType::String),
                ("count", VarType::Number),
                ("dcs", VarType::Collection),
                ("enabled", VarType::Bool),
            ]
        );
    }

    #[test]
    fn values_become_defaults_and_every_line_keeps_its_number() {
        let out = with_values(
            SPEC,
            &values(&[
                ("image", "nginx:1.25 \"quoted\" ${not.a.ref}"),
                ("count", "3"),
                ("dcs", r#"["a", "b"]"#),
                ("enabled", "false"),
            ]),
        )
        .expect("values");
        assert_eq!(out.lines().count(), SPEC.lines().count(), "{out}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            r#"variable "image" { default = "nginx:1.25 \"quoted\" $${not.a.ref}" }"#
        );
        assert_eq!(lines[5], r#"variable "count" { default = 3 }"#);
        assert_eq!(lines[10], r#"variable "dcs" { default = ["a", "b"] }"#);
        assert_eq!(lines[16], "  enabled = false");
        let job_line = SPEC
            .lines()
            .position(|l| l.starts_with("job"))
            .expect("job");
        assert_eq!(lines[job_line], "job \"web\" {");
        hcl_edit::parser::parse_body(&out).expect("still HCL");
    }

    #[test]
    fn without_values_the_text_is_unchanged() {
        assert_eq!(with_values(SPEC, &Values::new()).expect("same"), SPEC);
    }

    #[test]
    fn values_of_the_wrong_type_and_undeclared_values_are_errors_naming_their_origin() {
        let err = with_values(SPEC, &values(&[("count", "three")])).expect_err("nan");
        assert!(
            err.0.contains("spec.variables.x") && err.0.contains("a number"),
            "{err}"
        );
        let err = with_values(SPEC, &values(&[("dcs", "dc1")])).expect_err("json");
        assert!(err.0.contains("JSON"), "{err}");
        let err = with_values(SPEC, &values(&[("missing", "x")])).expect_err("undeclared");
        assert!(err.0.contains("declares no variable \"missing\""), "{err}");
        let mut optional = values(&[("unused", "x")]);
        if let Some(v) = optional.get_mut("unused") {
            v.required = false;
        }
        assert_eq!(with_values(SPEC, &optional).expect("ignored"), SPEC);
    }

    #[test]
    fn a_secret_value_is_never_repeated_in_an_error_or_debug_output() {
        let mut secret = value("hunter2-secret");
        secret.secret = true;
        let values: Values = [("count".to_string(), secret.clone())].into();
        let err = with_values(SPEC, &values).expect_err("nan");
        assert!(!err.0.contains("hunter2"), "{err}");
        assert!(!format!("{secret:?}").contains("hunter2"));
    }

    #[test]
    fn var_file_lists_the_declared_values() {
        let out = var_file(SPEC, &values(&[("image", "a\nb"), ("count", "2")])).expect("file");
        assert_eq!(out, "count = 2\nimage = \"a\\nb\"\n");
    }

    #[test]
    fn a_syntax_error_has_nomads_position_format() {
        let err =
            declared("job \"x\" {\n  group \"g\" {\n    count = \n  }\n}\n").expect_err("bad");
        assert!(err.starts_with("input.hcl:3,"), "{err}");
    }
}
