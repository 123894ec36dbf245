//! List answers without JSON trees: every job, allocation, deployment and evaluation
//! of the state is held in a [`Cached`], which keeps the compact JSON text of the
//! entry's list form once it has been asked for, and forgets it whenever the entry
//! is reached mutably. A list answer then joins the entries' texts
//! ([`json_array`]) instead of building and encoding a tree per entry: the tree is
//! built once per change of an entry, not once per answer.
//!
//! The text is `serde_json::to_vec` of the very tree the entry's `*_json` function
//! builds, so a list answer is byte for byte what encoding the array of trees gives
//! (serde_json writes an array as `[`, the elements' compact texts separated by `,`,
//! and `]`). `?pretty` answers are still encoded from trees.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::OnceLock;

use axum::body::Bytes;
use serde_json::Value;

/// An entry of the state and, once asked for, the compact JSON text of its list form.
///
/// Reading goes through [`Deref`]; any mutable access ([`DerefMut`]: a field set, a
/// `&mut self` method, `get_mut` then a write) drops the text, so a text is never
/// older than its entry. Each entry type has one list form: every call of
/// [`Cached::json`] for one type must pass the same `encode`.
pub(crate) struct Cached<T> {
    value: T,
    json: OnceLock<Bytes>,
}

impl<T> Cached<T> {
    /// Wraps `value` (no text yet).
    pub(crate) fn new(value: T) -> Self {
        Self {
            value,
            json: OnceLock::new(),
        }
    }

    /// The compact JSON text of `encode(entry)`: encoded on the first call after a
    /// change, then shared (a clone of [`Bytes`] is a reference count).
    pub(crate) fn json(&self, encode: impl FnOnce(&T) -> Value) -> Bytes {
        self.json
            .get_or_init(|| {
                Bytes::from(serde_json::to_vec(&encode(&self.value)).unwrap_or_default())
            })
            .clone()
    }
}

impl<T> Deref for Cached<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> DerefMut for Cached<T> {
    fn deref_mut(&mut self) -> &mut T {
        // Whoever holds `&mut T` may change anything the text shows.
        self.json.take();
        &mut self.value
    }
}

impl<T> From<T> for Cached<T> {
    fn from(value: T) -> Self {
        Self::new(value)
    }
}

impl<T: Clone> Clone for Cached<T> {
    fn clone(&self) -> Self {
        // The text stays true of an identical entry.
        Self {
            value: self.value.clone(),
            json: self.json.clone(),
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Cached<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.value.fmt(f)
    }
}

/// A list answer: each entry's [`Cached::json`] text, or (for `?pretty`, which
/// serde_json's pretty printer indents) each entry's tree.
pub(crate) enum List {
    /// Compact texts, to be joined by [`json_array`].
    Texts(Vec<Bytes>),
    /// Trees, to be encoded as an array.
    Trees(Vec<Value>),
}

impl List {
    /// The answer for `items`: their texts (`text`), or their trees (`tree`) when
    /// `pretty`.
    pub(crate) fn of<I>(
        items: impl Iterator<Item = I>,
        pretty: bool,
        text: impl Fn(I) -> Bytes,
        tree: impl Fn(I) -> Value,
    ) -> Self {
        if pretty {
            Self::Trees(items.map(tree).collect())
        } else {
            Self::Texts(items.map(text).collect())
        }
    }
}

/// The JSON array of compact texts `items`: what `serde_json::to_vec` gives for the
/// array of the values they encode.
pub(crate) fn json_array(items: &[Bytes]) -> Vec<u8> {
    let len = items.iter().map(Bytes::len).sum::<usize>() + items.len() + 2;
    let mut out = Vec::with_capacity(len);
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(item);
    }
    out.push(b']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_text_is_made_once_and_dropped_by_any_mutable_access() {
        let mut entry = Cached::new(vec![1u64]);
        let calls = std::cell::Cell::new(0);
        let encode = |v: &Vec<u64>| {
            calls.set(calls.get() + 1);
            json!(v)
        };
        assert_eq!(&entry.json(encode)[..], b"[1]");
        assert_eq!(&entry.json(encode)[..], b"[1]");
        assert_eq!(calls.get(), 1);
        // Reading does not drop it.
        assert_eq!(entry.len(), 1);
        assert_eq!(&entry.json(encode)[..], b"[1]");
        assert_eq!(calls.get(), 1);
        entry.push(2);
        assert_eq!(&entry.json(encode)[..], b"[1,2]");
        assert_eq!(calls.get(), 2);
        let clone = entry.clone();
        assert_eq!(&clone.json(encode)[..], b"[1,2]");
        assert_eq!(calls.get(), 2);
    }

    #[test]
    fn joined_texts_are_the_encoded_array() {
        let values = [
            json!({"b": 1, "a": [1, 2, {"x": null}], "s": "q\"\u{1}é"}),
            json!({}),
            json!([]),
            json!(1.5),
            json!(u64::MAX),
            json!(i64::MIN),
        ];
        for n in 0..=values.len() {
            let texts: Vec<Bytes> = values[..n]
                .iter()
                .map(|v| Cached::new(v.clone()).json(Value::clone))
                .collect();
            let want = serde_json::to_vec(&Value::Array(values[..n].to_vec())).expect("encode");
            assert_eq!(json_array(&texts), want, "{n} items");
        }
    }
}
