//! Jobspecs in HCL: turning one, with its variables, into the JSON job Nomad's API takes,
//! through the connected Nomad's `POST /v1/jobs/parse`. Used by the controller for
//! `spec.hcl` and by the `convert` and `plan` commands.

pub mod redact;
pub mod variables;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use crate::nomad::{NomadClient, NomadError, ParseRequest};

pub use redact::Redactor;
pub use variables::{Values, VarValue, flag_values, spec_values};

/// The first Nomad release whose parse request takes variable values.
const VARIABLES_SINCE: (u64, u64, u64) = (1, 6, 0);

/// Why a jobspec did not become a job.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The jobspec or its values are wrong; the message says where (Nomad's positions
    /// are `input.hcl:LINE,COL`).
    #[error("{0}")]
    Invalid(String),
    /// Nomad could not be asked.
    #[error(transparent)]
    Nomad(NomadError),
}

/// Whether the connected Nomad takes variable values in its parse request, asked once
/// (`GET /v1/agent/self`) and remembered. When the agent's release cannot be read (a
/// token without `agent:read`), values are written into the jobspec, which every
/// release understands.
#[derive(Debug, Default)]
pub struct ParseSupport {
    takes_variables: OnceCell<bool>,
}

impl ParseSupport {
    async fn takes_variables(&self, nomad: &NomadClient) -> Result<bool, NomadError> {
        self.takes_variables
            .get_or_try_init(|| async {
                match nomad.agent_version().await {
                    Ok(version) => Ok(release_takes_variables(&version)),
                    Err(e) if e.is_transient() => Err(e),
                    Err(_) => Ok(false),
                }
            })
            .await
            .copied()
    }
}

/// True for Nomad releases (`1.6.0`, `1.10.2-ent`) whose parse request takes `Variables`.
pub fn release_takes_variables(version: &str) -> bool {
    crate::nomad::release_at_least(version, VARIABLES_SINCE)
}

/// A jobspec and how to read it.
#[derive(Clone, Copy, Debug)]
pub struct Jobspec<'a> {
    /// The HCL text.
    pub hcl: &'a str,
    /// Parse with Nomad's HCL1 parser.
    pub hcl1: bool,
}

impl Jobspec<'_> {
    /// Digest of the jobspec and its values: what a parsed job is remembered by.
    pub fn digest(&self, values: &Values) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.hcl.as_bytes());
        hasher.update([0u8, u8::from(self.hcl1)]);
        for (name, value) in values {
            hasher.update(name.as_bytes());
            hasher.update([0u8]);
            hasher.update(value.text.as_bytes());
            hasher.update([0u8]);
        }
        let hex: String = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("sha256:{hex}")
    }

    /// The job the jobspec describes with `values` for its variables, parsed by `nomad`.
    pub async fn parse(
        &self,
        nomad: &NomadClient,
        support: &ParseSupport,
        values: &Values,
    ) -> Result<Map<String, Value>, ParseError> {
        if self.hcl.trim().is_empty() {
            return Err(ParseError::Invalid("spec.hcl is empty".into()));
        }
        let invalid = |e: variables::VariableError| ParseError::Invalid(e.0);
        let (text, var_file);
        let mut request = ParseRequest {
            hcl: self.hcl,
            hcl1: self.hcl1,
            variables: None,
            canonicalize: false,
        };
        if !values.is_empty() {
            if self.hcl1 {
                return Err(ParseError::Invalid(
                    "HCL1 jobspecs have no variables: remove spec.variables and spec.variablesFrom, or write the jobspec in HCL2".into(),
                ));
            }
            if support
                .takes_variables(nomad)
                .await
                .map_err(ParseError::Nomad)?
            {
                var_file = variables::var_file(self.hcl, values).map_err(invalid)?;
                request.variables = Some(&var_file);
            } else {
                text = variables::with_values(self.hcl, values).map_err(invalid)?;
                request.hcl = &text;
            }
        }
        match nomad.parse_job(&request).await {
            Ok(Value::Object(job)) => Ok(job),
            Ok(other) => Err(ParseError::Nomad(NomadError::Decode(format!(
                "the parse endpoint answered {} instead of a job",
                type_name(&other)
            )))),
            Err(NomadError::BadRequest(message)) => Err(ParseError::Invalid(format!(
                "Nomad cannot parse spec.hcl: {}",
                parse_message(&message)
            ))),
            Err(e) => Err(ParseError::Nomad(e)),
        }
    }
}

/// Nomad's parse error without the prefixes that say nothing (`Failed to parse job: `
/// from 1.6 on, `<nil>: ` for errors without a position).
fn parse_message(message: &str) -> String {
    let message = message.trim();
    let message = message
        .strip_prefix("Failed to parse job: ")
        .unwrap_or(message);
    message.replace("<nil>: ", "")
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A `--var NAME=VALUE` flag of the `convert` and `plan` commands.
pub fn parse_var(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_string(), value.to_string())),
        _ => Err(format!("{text:?} is not NAME=VALUE")),
    }
}

/// The label of the jobspec's `job "NAME" { ... }` block, read locally (HCL1 files that
/// are not HCL2 give `None`).
pub fn job_name(hcl: &str) -> Option<String> {
    let body = hcl_edit::parser::parse_body(hcl).ok()?;
    body.get_blocks("job")
        .find_map(|block| block.labels.first().map(|l| l.as_str().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_from_1_5_take_variables() {
        for (version, takes) in [
            ("1.1.2", false),
            ("1.4.9", false),
            ("1.5.17", false),
            ("1.6.0", true),
            ("1.10.2-ent", true),
            ("v2.0.0", true),
            ("unknown", false),
        ] {
            assert_eq!(release_takes_variables(version), takes, "{version}");
        }
    }

    #[test]
    fn the_digest_moves_with_text_parser_and_values_only() {
        let spec = Jobspec {
            hcl: "job \"a\" {}",
            hcl1: false,
        };
        let value = |text: &str| VarValue {
            text: text.into(),
            secret: false,
            origin: String::new(),
            required: true,
        };
        let none = Values::new();
        let one: Values = [("x".to_string(), value("1"))].into();
        let two: Values = [("x".to_string(), value("2"))].into();
        assert_eq!(spec.digest(&none), spec.digest(&Values::new()));
        assert_ne!(spec.digest(&none), spec.digest(&one));
        assert_ne!(spec.digest(&one), spec.digest(&two));
        let hcl1 = Jobspec { hcl1: true, ..spec };
        assert_ne!(spec.digest(&none), hcl1.digest(&none));
    }

    #[test]
    fn parse_messages_lose_the_prefixes_that_say_nothing() {
        assert_eq!(
            parse_message("Failed to parse job: input.hcl:3,5-10: Unsupported argument"),
            "input.hcl:3,5-10: Unsupported argument"
        );
        assert_eq!(
            parse_message("<nil>: Unset variable \"a\"\n<nil>: Unset variable \"b\""),
            "Unset variable \"a\"\nUnset variable \"b\""
        );
    }

    #[test]
    fn vars_are_name_equals_value() {
        assert_eq!(
            parse_var("a=b=c").expect("var"),
            ("a".to_string(), "b=c".to_string())
        );
        assert!(parse_var("=x").is_err());
        assert!(parse_var("novalue").is_err());
    }

    #[test]
    fn the_job_name_is_the_job_blocks_label() {
        assert_eq!(
            job_name("variable \"x\" {}\njob \"web\" {\n  group \"g\" {}\n}\n").as_deref(),
            Some("web")
        );
        assert_eq!(job_name("not hcl {"), None);
    }
}
