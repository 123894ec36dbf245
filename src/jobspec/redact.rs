//! Keeping the values of Secrets out of everything the operator shows (pure).

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::variables::Values;

/// What a redacted value is replaced with.
pub const REDACTED: &str = "[redacted]";

/// Replaces the values of Secrets in text the operator shows: status, Events, logs and
/// errors.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Redactor {
    /// Longest first, so that a value containing another is replaced whole.
    secrets: Vec<String>,
}

impl Redactor {
    /// A redactor for the secret values among `values`.
    pub fn of(values: &Values) -> Self {
        let mut secrets: Vec<String> = values
            .values()
            .filter(|v| v.secret && !v.text.is_empty())
            .flat_map(|v| {
                // The value as written, and as it appears inside JSON or HCL strings.
                let quoted = serde_json::to_string(&v.text).unwrap_or_default();
                let escaped = quoted
                    .get(1..quoted.len().saturating_sub(1))
                    .unwrap_or_default()
                    .to_string();
                [v.text.clone(), escaped]
            })
            .filter(|s| !s.is_empty())
            .collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Self { secrets }
    }

    /// True when there is nothing to redact.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// `text` with every secret value replaced.
    pub fn text(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), REDACTED);
            }
        }
        out
    }

    /// `value` with every string in it redacted (a value that does not survive the round
    /// trip is returned unchanged, which only happens to types that do not serialize).
    pub fn value<T: Serialize + DeserializeOwned + Clone>(&self, value: &T) -> T {
        if self.is_empty() {
            return value.clone();
        }
        let Ok(mut json) = serde_json::to_value(value) else {
            return value.clone();
        };
        self.json(&mut json);
        serde_json::from_value(json).unwrap_or_else(|_| value.clone())
    }

    fn json(&self, value: &mut Value) {
        match value {
            Value::String(s) => {
                let redacted = self.text(s);
                if redacted != *s {
                    *s = redacted;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.json(v)),
            Value::Object(fields) => fields.values_mut().for_each(|v| self.json(v)),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobspec::variables::VarValue;

    fn values() -> Values {
        let v = |text: &str, secret| VarValue {
            text: text.into(),
            secret,
            origin: String::new(),
            required: false,
        };
        [
            ("password".to_string(), v("s3cr\"et", true)),
            ("longer".to_string(), v("s3cr\"et-and-more", true)),
            ("image".to_string(), v("nginx", false)),
            ("empty".to_string(), v("", true)),
        ]
        .into()
    }

    #[test]
    fn replaces_secret_values_only_longest_first_also_when_escaped() {
        let r = Redactor::of(&values());
        assert_eq!(
            r.text("a s3cr\"et-and-more b s3cr\"et c nginx"),
            "a [redacted] b [redacted] c nginx"
        );
        assert_eq!(r.text(r#"{"p":"s3cr\"et"}"#), r#"{"p":"[redacted]"}"#);
    }

    #[test]
    fn redacts_every_string_of_a_structure() {
        let r = Redactor::of(&values());
        let out: Vec<String> = r.value(&vec!["x s3cr\"et".to_string(), "y".to_string()]);
        assert_eq!(out, ["x [redacted]", "y"]);
        assert!(Redactor::of(&Values::new()).is_empty());
    }
}
