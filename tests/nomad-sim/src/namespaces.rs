//! Namespaces (`/v1/namespace/:name`, `/v1/namespaces`) with Nomad 1.1's answers: a
//! job can only be registered or planned in a namespace that exists.

use serde_json::{Value, json};

use crate::jobs::ApiError;
use crate::state::{Namespace, State, Table};
use crate::util::multierror;

/// Whether `name` matches Nomad's `^[a-zA-Z0-9-]{1,128}$`.
fn valid_name(name: &str) -> bool {
    (1..=128).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// A stable digest of a namespace, base64 like Nomad's `Hash` (a BLAKE2b-256 there; any
/// digest of the same fields serves a client that only compares hashes).
fn hash(name: &str, description: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bytes = Vec::with_capacity(32);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for round in 0..4u8 {
        for b in name.bytes().chain([0, round]).chain(description.bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        bytes.extend_from_slice(&h.to_be_bytes());
    }
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

impl State {
    /// `structs.Namespace` JSON.
    pub(crate) fn namespace_json(&self, name: &str, ns: &Namespace) -> Value {
        json!({
            "Name": name, "Description": ns.description, "Quota": "",
            "Hash": hash(name, &ns.description),
            "CreateIndex": ns.create_index, "ModifyIndex": ns.modify_index
        })
    }

    /// Creates or updates a namespace; returns the write index.
    pub(crate) fn upsert_namespace(
        &mut self,
        name: &str,
        description: &str,
    ) -> Result<u64, ApiError> {
        if !valid_name(name) {
            return Err(ApiError::Server(format!(
                "Invalid namespace {name:?}: {}",
                multierror(&[format!(
                    "invalid name {name:?}. Must match regex ^[a-zA-Z0-9-]{{1,128}}$"
                )])
            )));
        }
        let idx = self.bump();
        let entry = self
            .namespaces
            .entry(name.to_string())
            .or_insert(Namespace {
                description: String::new(),
                create_index: idx,
                modify_index: idx,
            });
        entry.description = description.to_string();
        entry.modify_index = idx;
        self.touch(Table::Namespaces, idx);
        Ok(idx)
    }

    /// Deletes a namespace without live jobs (a missing one is no error).
    pub(crate) fn delete_namespace(&mut self, name: &str) -> Result<u64, ApiError> {
        if name == "default" {
            return Err(ApiError::Server("can not delete default namespace".into()));
        }
        let live = self
            .jobs
            .iter()
            .any(|((ns, _), j)| ns == name && j.status != "dead");
        if live {
            return Err(ApiError::Server(multierror(&[format!(
                "namespace {name:?} has non-terminal jobs in regions: [global]"
            )])));
        }
        let idx = self.bump();
        if self.namespaces.remove(name).is_some() {
            self.touch(Table::Namespaces, idx);
        }
        Ok(idx)
    }

    /// The error of a job write into a namespace that does not exist.
    pub(crate) fn check_namespace(&self, namespace: &str, job_id: &str) -> Result<(), ApiError> {
        if self.namespaces.contains_key(namespace) {
            Ok(())
        } else {
            Err(ApiError::Server(format!(
                "job {job_id:?} is in nonexistent namespace {namespace:?}"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_hashes() {
        assert!(valid_name("team-a1"));
        assert!(!valid_name("bad_name!"));
        assert!(!valid_name(""));
        let h = hash("a", "b");
        assert_eq!(h.len(), 44);
        assert!(h.ends_with('='));
        assert_eq!(h, hash("a", "b"));
        assert_ne!(h, hash("a", "c"));
    }
}
