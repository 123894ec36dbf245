//! HCL values and type constraints, with the conversions Nomad's HCL2 decoder makes and
//! the words it uses when one is impossible (`list of string required`, `element 0:
//! string required`, `a number is required`).

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// An evaluated HCL value. Tuples and lists are both `List`, objects and maps both
/// `Map`; `Unknown` is the value of an expression that failed (its error is reported
/// where it failed).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum V {
    Null,
    Unknown,
    Bool(bool),
    Num(f64),
    Str(String),
    List(Vec<V>),
    Map(BTreeMap<String, V>),
}

/// A variable's type constraint.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Ty {
    /// No constraint (a variable without type and default).
    Any,
    Str,
    Num,
    Bool,
    List(Box<Ty>),
    Set(Box<Ty>),
    Map(Box<Ty>),
    Object(BTreeMap<String, Ty>),
    Tuple(Vec<Ty>),
}

/// Text of a number as HCL prints it in strings: `3`, `1.5`.
pub(crate) fn num_text(n: f64) -> String {
    if n.is_infinite() {
        return if n > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if n.fract() == 0.0 && n.abs() < 1e21 {
        format!("{n:.0}")
    } else {
        format!("{n}")
    }
}

impl V {
    /// The kind's name in messages: `string`, `number`, `bool`, `tuple`, `object`.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            V::Null => "null",
            V::Unknown => "dynamic",
            V::Bool(_) => "bool",
            V::Num(_) => "number",
            V::Str(_) => "string",
            V::List(_) => "tuple",
            V::Map(_) => "object",
        }
    }

    /// Whether the value or anything in it failed to evaluate.
    pub(crate) fn has_unknown(&self) -> bool {
        match self {
            V::Unknown => true,
            V::List(l) => l.iter().any(V::has_unknown),
            V::Map(m) => m.values().any(V::has_unknown),
            _ => false,
        }
    }

    /// The type of a value, as the type of a variable declared by its default.
    pub(crate) fn implied_type(&self) -> Ty {
        match self {
            V::Null | V::Unknown => Ty::Any,
            V::Bool(_) => Ty::Bool,
            V::Num(_) => Ty::Num,
            V::Str(_) => Ty::Str,
            V::List(l) => Ty::Tuple(l.iter().map(V::implied_type).collect()),
            V::Map(m) => Ty::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), v.implied_type()))
                    .collect(),
            ),
        }
    }

    /// JSON for the API job: whole numbers as integers, null object members left out.
    pub(crate) fn to_json(&self) -> Value {
        match self {
            V::Null | V::Unknown => Value::Null,
            V::Bool(b) => json!(b),
            V::Num(n) => num_json(*n),
            V::Str(s) => json!(s),
            V::List(l) => Value::Array(l.iter().map(V::to_json).collect()),
            V::Map(m) => Value::Object(
                m.iter()
                    .filter(|(_, v)| !matches!(v, V::Null))
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

/// A number as JSON: an integer when it is whole and fits, else a float.
pub(crate) fn num_json(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9.007_199_254_740_992e15 {
        // Exact: whole and within f64's integer range.
        json!(n as i64)
    } else {
        json!(n)
    }
}

impl Ty {
    /// `string`, `list of string`, `map of number`, `object`, `tuple`.
    pub(crate) fn friendly(&self) -> String {
        match self {
            Ty::Any => "any type".into(),
            Ty::Str => "string".into(),
            Ty::Num => "number".into(),
            Ty::Bool => "bool".into(),
            Ty::List(e) => format!("list of {}", e.friendly()),
            Ty::Set(e) => format!("set of {}", e.friendly()),
            Ty::Map(e) => format!("map of {}", e.friendly()),
            Ty::Object(_) => "object".into(),
            Ty::Tuple(_) => "tuple".into(),
        }
    }
}

/// Why `v` can never be converted to `ty` (no conversion between their types), in
/// cty's words; `None` when a conversion exists (it may still fail on the value).
fn mismatch(v: &V, ty: &Ty) -> Option<String> {
    let required = || Some(format!("{} required", ty.friendly()));
    match (ty, v) {
        (Ty::Any, _) | (_, V::Null | V::Unknown) => None,
        (Ty::Str, V::Str(_) | V::Num(_) | V::Bool(_)) => None,
        (Ty::Num, V::Num(_) | V::Str(_)) => None,
        (Ty::Bool, V::Bool(_) | V::Str(_)) => None,
        (Ty::List(e) | Ty::Set(e), V::List(items)) => items
            .iter()
            .enumerate()
            .find_map(|(i, x)| mismatch(x, e).map(|m| format!("element {i}: {m}"))),
        (Ty::Map(e), V::Map(items)) => items
            .iter()
            .find_map(|(k, x)| mismatch(x, e).map(|m| format!("element {k:?}: {m}"))),
        (Ty::Object(attrs), V::Map(items)) => attrs.iter().find_map(|(k, t)| match items.get(k) {
            None => Some(format!("attribute {k:?} is required")),
            Some(x) => mismatch(x, t).map(|m| format!("attribute {k:?}: {m}")),
        }),
        (Ty::Tuple(tys), V::List(items)) if tys.len() == items.len() => tys
            .iter()
            .zip(items)
            .enumerate()
            .find_map(|(i, (t, x))| mismatch(x, t).map(|m| format!("element {i}: {m}"))),
        _ => required(),
    }
}

/// Converts `v` to `ty` like cty's `convert.Convert`; the error is cty's message.
pub(crate) fn convert(v: &V, ty: &Ty) -> Result<V, String> {
    if let Some(m) = mismatch(v, ty) {
        return Err(m);
    }
    convert_value(v, ty)
}

fn convert_value(v: &V, ty: &Ty) -> Result<V, String> {
    Ok(match (ty, v) {
        (Ty::Any, _) | (_, V::Null | V::Unknown) => v.clone(),
        (Ty::Str, V::Num(n)) => V::Str(num_text(*n)),
        (Ty::Str, V::Bool(b)) => V::Str(b.to_string()),
        (Ty::Num, V::Str(s)) => V::Num(parse_number(s).ok_or("a number is required")?),
        (Ty::Bool, V::Str(s)) => V::Bool(match s.as_str() {
            "true" | "1" => true,
            "false" | "0" => false,
            _ => return Err("a bool is required".into()),
        }),
        (Ty::List(e), V::List(items)) => V::List(
            items
                .iter()
                .map(|x| convert_value(x, e))
                .collect::<Result<_, _>>()?,
        ),
        (Ty::Set(e), V::List(items)) => {
            let mut out: Vec<V> = Vec::new();
            for x in items {
                let x = convert_value(x, e)?;
                if !out.contains(&x) {
                    out.push(x);
                }
            }
            V::List(out)
        }
        (Ty::Map(e), V::Map(items)) => V::Map(
            items
                .iter()
                .map(|(k, x)| Ok((k.clone(), convert_value(x, e)?)))
                .collect::<Result<_, String>>()?,
        ),
        (Ty::Object(attrs), V::Map(items)) => V::Map(
            attrs
                .iter()
                .map(|(k, t)| {
                    let x = items.get(k).unwrap_or(&V::Null);
                    Ok((k.clone(), convert_value(x, t)?))
                })
                .collect::<Result<_, String>>()?,
        ),
        (Ty::Tuple(tys), V::List(items)) => V::List(
            tys.iter()
                .zip(items)
                .map(|(t, x)| convert_value(x, t))
                .collect::<Result<_, _>>()?,
        ),
        _ => v.clone(),
    })
}

/// A decimal number as HCL reads one from a string (`"12"`, `"-1.5e3"`).
pub(crate) fn parse_number(s: &str) -> Option<f64> {
    let ok = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'))
        && s.chars().any(|c| c.is_ascii_digit());
    if !ok {
        return None;
    }
    s.parse::<f64>().ok().filter(|n| n.is_finite())
}

/// `v` as a string for a template: numbers and bools print, others are errors.
pub(crate) fn template_text(v: &V) -> Result<String, String> {
    match v {
        V::Str(s) => Ok(s.clone()),
        V::Num(n) => Ok(num_text(*n)),
        V::Bool(b) => Ok(b.to_string()),
        _ => Err("string required".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> V {
        V::Str(x.into())
    }

    #[test]
    fn conversions_and_their_messages() {
        let list_str = Ty::List(Box::new(Ty::Str));
        assert_eq!(convert(&s("3"), &Ty::Num), Ok(V::Num(3.0)));
        assert_eq!(
            convert(&s("abc"), &Ty::Num),
            Err("a number is required".into())
        );
        assert_eq!(
            convert(&V::Bool(true), &Ty::Num),
            Err("number required".into())
        );
        assert_eq!(convert(&V::Num(5.0), &Ty::Str), Ok(s("5")));
        assert_eq!(convert(&s("1"), &Ty::Bool), Ok(V::Bool(true)));
        assert_eq!(
            convert(&s("yes"), &Ty::Bool),
            Err("a bool is required".into())
        );
        assert_eq!(
            convert(&s("a"), &list_str),
            Err("list of string required".into())
        );
        assert_eq!(
            convert(&V::List(vec![V::List(vec![])]), &list_str),
            Err("element 0: string required".into())
        );
        let m = V::Map([("a".to_string(), V::List(vec![]))].into());
        assert_eq!(
            convert(&m, &Ty::Map(Box::new(Ty::Str))),
            Err("element \"a\": string required".into())
        );
        let m = V::Map([("a".to_string(), s("x"))].into());
        // A conversion that exists but fails on the value names no element.
        assert_eq!(
            convert(&m, &Ty::Map(Box::new(Ty::Num))),
            Err("a number is required".into())
        );
        let obj = Ty::Object([("a".into(), Ty::Str), ("b".into(), Ty::Num)].into());
        assert_eq!(convert(&m, &obj), Err("attribute \"b\" is required".into()));
        assert_eq!(
            convert(&V::List(vec![s("x"), s("y")]), &Ty::Tuple(vec![Ty::Str])),
            Err("tuple required".into())
        );
        assert_eq!(convert(&V::Null, &Ty::Num), Ok(V::Null));
    }

    #[test]
    fn numbers_print_like_hcl() {
        assert_eq!(num_text(3.0), "3");
        assert_eq!(num_text(1.5), "1.5");
        assert_eq!(num_text(10_000_000.0), "10000000");
        assert_eq!(num_json(2.0), json!(2));
        assert_eq!(num_json(2.5), json!(2.5));
    }
}
