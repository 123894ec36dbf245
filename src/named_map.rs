//! [`NamedMap`]: a small map from names to values, for the status fields keyed by
//! task group or task.
//!
//! Those maps hold one to a few entries, and the operator caches a status per object.
//! A `BTreeMap` allocates a node for eleven entries however few it holds (about a
//! kilobyte for these values); a sorted `Vec` holds just what is there. The small maps
//! of the Nomad items the watches mirror (task states, deployment groups, summaries)
//! use it too: thousands of jobs each hold one or two entries. It reads,
//! writes and documents itself exactly like a `BTreeMap<String, T>`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Index;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A map from names to `T`, sorted by name, each name at most once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedMap<T>(Vec<(String, T)>);

impl<T> Default for NamedMap<T> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<T> NamedMap<T> {
    /// The value under `name`.
    pub fn get(&self, name: &str) -> Option<&T> {
        self.position(name).ok().map(|i| &self.0[i].1)
    }

    /// Sets the value under `name`, returning the one it replaced.
    pub fn insert(&mut self, name: String, value: T) -> Option<T> {
        match self.position(&name) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            Err(i) => {
                self.0.insert(i, (name, value));
                None
            }
        }
    }

    /// The entries, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &T)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    /// The values, by name.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.0.iter().map(|(_, v)| v)
    }

    /// The values, by name, to change in place.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.0.iter_mut().map(|(_, v)| v)
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn position(&self, name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(name))
    }
}

impl<T> FromIterator<(String, T)> for NamedMap<T> {
    /// Later entries win over earlier ones with the same name, as in a `BTreeMap`.
    fn from_iter<I: IntoIterator<Item = (String, T)>>(entries: I) -> Self {
        let mut map = Self::default();
        for (name, value) in entries {
            map.insert(name, value);
        }
        map.0.shrink_to_fit();
        map
    }
}

impl<T> Index<&str> for NamedMap<T> {
    type Output = T;

    /// The value under `name`; panics when there is none, like a `BTreeMap`.
    fn index(&self, name: &str) -> &T {
        match self.get(name) {
            Some(value) => value,
            None => panic!("no entry named {name:?}"),
        }
    }
}

impl<T: Serialize> Serialize for NamedMap<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for NamedMap<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<String, T>::deserialize(deserializer)?;
        let mut entries: Vec<(String, T)> = map.into_iter().collect();
        entries.shrink_to_fit();
        Ok(Self(entries))
    }
}

impl<T: JsonSchema> JsonSchema for NamedMap<T> {
    fn schema_name() -> Cow<'static, str> {
        BTreeMap::<String, T>::schema_name()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        BTreeMap::<String, T>::json_schema(generator)
    }

    fn inline_schema() -> bool {
        BTreeMap::<String, T>::inline_schema()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn keeps_names_sorted_and_unique_like_a_btree_map() {
        let map: NamedMap<u32> = [("web".into(), 1), ("api".into(), 2), ("web".into(), 3)]
            .into_iter()
            .collect();
        assert_eq!(map["web"], 3, "the later entry wins");
        assert_eq!(map.get("api"), Some(&2));
        assert_eq!(map.get("db"), None);
        let entries: Vec<(&String, &u32)> = map.iter().collect();
        assert_eq!(entries.len(), 2);
        assert_eq!(
            (entries[0].0.as_str(), entries[1].0.as_str()),
            ("api", "web")
        );
    }

    #[test]
    fn serializes_and_documents_itself_as_a_map() {
        let map: NamedMap<u32> = serde_json::from_value(json!({"b": 2, "a": 1})).expect("map");
        assert_eq!(
            serde_json::to_value(&map).expect("json"),
            json!({"a": 1, "b": 2})
        );
        let expected = BTreeMap::from([("a".to_string(), 1u32), ("b".to_string(), 2)]);
        assert_eq!(
            serde_json::to_value(&map).expect("json"),
            serde_json::to_value(&expected).expect("json")
        );
        assert_eq!(
            schemars::schema_for!(NamedMap<u32>).as_value()["additionalProperties"],
            schemars::schema_for!(BTreeMap<String, u32>).as_value()["additionalProperties"]
        );
        assert!(NamedMap::<u32>::default().is_empty());
    }
}
