//! The part of Nomad's HCL2 function library the simulator evaluates (string, list,
//! map and number functions). The others Nomad has (file, crypto, date, regex, yaml,
//! network functions) are named, so that calling one says it is not simulated rather
//! than that it does not exist.

use std::collections::BTreeMap;

use super::value::{Ty, V, convert, num_text, template_text};

/// Every function Nomad 1.1's jobspec parser knows.
pub(crate) const NOMAD_FUNCTIONS: &[&str] = &[
    "abs",
    "base64decode",
    "base64encode",
    "bcrypt",
    "can",
    "ceil",
    "chomp",
    "chunklist",
    "cidrhost",
    "cidrnetmask",
    "cidrsubnet",
    "cidrsubnets",
    "coalesce",
    "coalescelist",
    "compact",
    "concat",
    "contains",
    "convert",
    "csvdecode",
    "distinct",
    "element",
    "flatten",
    "floor",
    "format",
    "formatdate",
    "formatlist",
    "indent",
    "index",
    "join",
    "jsondecode",
    "jsonencode",
    "keys",
    "length",
    "log",
    "lookup",
    "lower",
    "max",
    "md5",
    "merge",
    "min",
    "parseint",
    "pow",
    "range",
    "reverse",
    "replace",
    "regex_replace",
    "rsadecrypt",
    "setintersection",
    "setproduct",
    "setunion",
    "sha1",
    "sha256",
    "sha512",
    "signum",
    "slice",
    "sort",
    "split",
    "strrev",
    "substr",
    "timeadd",
    "title",
    "trim",
    "trimprefix",
    "trimspace",
    "trimsuffix",
    "try",
    "upper",
    "urlencode",
    "uuidv4",
    "uuidv5",
    "values",
    "yamldecode",
    "yamlencode",
    "zipmap",
    "abspath",
    "basename",
    "dirname",
    "file",
    "fileexists",
    "fileset",
    "pathexpand",
];

/// Why a call gave no value.
pub(crate) enum CallError {
    /// Nomad has the function; the simulator does not evaluate it.
    Unsupported,
    /// Argument `.0` (parameter `.1`) is unsuitable: `.2` (`string required`).
    Arg(usize, &'static str, String),
    /// The call failed (the text follows `Call to function "f" failed: `).
    Failed(String),
}

/// The names of a function's parameters, as Nomad's messages call them.
fn params(f: &str) -> &'static [&'static str] {
    match f {
        "upper" | "lower" | "title" | "trimspace" | "chomp" | "strrev" | "jsondecode" => &["str"],
        "trimprefix" => &["str", "prefix"],
        "trimsuffix" => &["str", "suffix"],
        "trim" => &["str", "cutset"],
        "substr" => &["str", "offset", "length"],
        "replace" => &["str", "substr", "replace"],
        "split" => &["separator", "str"],
        "join" => &["separator", "lists"],
        "format" => &["format", "args"],
        "length" => &["value"],
        "concat" => &["seqs"],
        "contains" | "index" => &["list", "value"],
        "compact" | "distinct" | "flatten" | "reverse" | "sort" => &["list"],
        "element" => &["list", "index"],
        "slice" => &["list", "start_index", "end_index"],
        "keys" | "values" => &["inputMap"],
        "lookup" => &["inputMap", "key", "default"],
        "merge" => &["maps"],
        "zipmap" => &["keys", "values"],
        "max" | "min" => &["numbers"],
        "pow" => &["num", "power"],
        "parseint" => &["number", "base"],
        "jsonencode" => &["val"],
        "range" => &["params"],
        "coalesce" | "coalescelist" => &["vals"],
        _ => &["num"],
    }
}

/// A call's arguments, for taking them by type.
struct Args<'a> {
    f: &'a str,
    a: &'a [V],
}

impl Args<'_> {
    fn bad<T>(&self, i: usize, m: &str) -> Result<T, CallError> {
        let names = params(self.f);
        let name = names.get(i).or(names.last()).copied().unwrap_or("args");
        Err(CallError::Arg(i, name, m.to_string()))
    }

    fn s(&self, i: usize) -> Result<String, CallError> {
        match self.a.get(i).map(|a| convert(a, &Ty::Str)) {
            Some(Ok(V::Str(x))) => Ok(x),
            Some(Ok(V::Null)) => self.bad(i, "argument must not be null"),
            _ => self.bad(i, "string required"),
        }
    }

    fn n(&self, i: usize) -> Result<f64, CallError> {
        match self.a.get(i).map(|a| convert(a, &Ty::Num)) {
            Some(Ok(V::Num(x))) => Ok(x),
            Some(Err(m)) if m.starts_with("a ") => self.bad(i, &m),
            _ => self.bad(i, "number required"),
        }
    }

    fn list(&self, i: usize) -> Result<Vec<V>, CallError> {
        match self.a.get(i) {
            Some(V::List(l)) => Ok(l.clone()),
            _ => self.bad(i, "list of any single type required"),
        }
    }

    fn map(&self, i: usize) -> Result<BTreeMap<String, V>, CallError> {
        match self.a.get(i) {
            Some(V::Map(m)) => Ok(m.clone()),
            _ => self.bad(i, "map of any single type required"),
        }
    }

    fn strings(&self, i: usize) -> Result<Vec<String>, CallError> {
        let l = self.list(i)?;
        l.iter()
            .map(|x| template_text(x).or_else(|_| self.bad(i, "list of string required")))
            .collect()
    }
}

fn fail<T>(m: impl Into<String>) -> Result<T, CallError> {
    Err(CallError::Failed(m.into()))
}

fn arity(args: &[V], min: usize, max: usize) -> Result<(), CallError> {
    if args.len() < min || args.len() > max {
        let want = if min == max {
            format!("{min}")
        } else if max == usize::MAX {
            format!("at least {min}")
        } else {
            format!("{min} to {max}")
        };
        return fail(format!("expects {want} argument(s), got {}", args.len()));
    }
    Ok(())
}

/// Calls the function `name` (one of [`NOMAD_FUNCTIONS`]).
pub(crate) fn call(name: &str, args: &[V]) -> Result<V, CallError> {
    let x = Args { f: name, a: args };
    let str1 = |f: fn(&str) -> String| -> Result<V, CallError> {
        arity(args, 1, 1)?;
        Ok(V::Str(f(&x.s(0)?)))
    };
    let num1 = |f: fn(f64) -> f64| -> Result<V, CallError> {
        arity(args, 1, 1)?;
        Ok(V::Num(f(x.n(0)?)))
    };
    match name {
        "upper" => str1(|x| x.to_uppercase()),
        "lower" => str1(|x| x.to_lowercase()),
        "trimspace" => str1(|x| x.trim().to_string()),
        "chomp" => str1(|x| x.trim_end_matches(['\n', '\r']).to_string()),
        "strrev" => str1(|x| x.chars().rev().collect()),
        "title" => str1(|x| {
            let mut out = String::with_capacity(x.len());
            let mut start = true;
            for c in x.chars() {
                if start && c.is_alphabetic() {
                    out.extend(c.to_uppercase());
                } else {
                    out.push(c);
                }
                start = !c.is_alphanumeric();
            }
            out
        }),
        "trimprefix" => {
            arity(args, 2, 2)?;
            let (x, p) = (x.s(0)?, x.s(1)?);
            Ok(V::Str(x.strip_prefix(p.as_str()).unwrap_or(&x).to_string()))
        }
        "trimsuffix" => {
            arity(args, 2, 2)?;
            let (x, p) = (x.s(0)?, x.s(1)?);
            Ok(V::Str(x.strip_suffix(p.as_str()).unwrap_or(&x).to_string()))
        }
        "trim" => {
            arity(args, 2, 2)?;
            let (x, cut) = (x.s(0)?, x.s(1)?);
            Ok(V::Str(x.trim_matches(|c| cut.contains(c)).to_string()))
        }
        "substr" => {
            arity(args, 3, 3)?;
            let chars: Vec<char> = x.s(0)?.chars().collect();
            let (off, len) = (x.n(1)?, x.n(2)?);
            let len_all = chars.len() as f64;
            let start = if off < 0.0 { len_all + off } else { off }.clamp(0.0, len_all) as usize;
            let end = if len < 0.0 {
                chars.len()
            } else {
                (start as f64 + len).min(len_all) as usize
            };
            Ok(V::Str(chars[start..end.max(start)].iter().collect()))
        }
        "replace" => {
            arity(args, 3, 3)?;
            let (x, from, to) = (x.s(0)?, x.s(1)?, x.s(2)?);
            if from.len() > 1 && from.starts_with('/') && from.ends_with('/') {
                return Err(CallError::Unsupported);
            }
            Ok(V::Str(x.replace(&from, &to)))
        }
        "split" => {
            arity(args, 2, 2)?;
            let (sep, x) = (x.s(0)?, x.s(1)?);
            Ok(V::List(
                x.split(sep.as_str())
                    .map(|p| V::Str(p.to_string()))
                    .collect(),
            ))
        }
        "join" => {
            arity(args, 2, usize::MAX)?;
            let sep = x.s(0)?;
            let mut parts = Vec::new();
            for i in 1..args.len() {
                parts.extend(x.strings(i)?);
            }
            Ok(V::Str(parts.join(&sep)))
        }
        "format" => {
            arity(args, 1, usize::MAX)?;
            format(&x.s(0)?, &args[1..])
        }
        "length" => {
            arity(args, 1, 1)?;
            match &args[0] {
                V::List(l) => Ok(V::Num(l.len() as f64)),
                V::Map(m) => Ok(V::Num(m.len() as f64)),
                _ => fail("collection must be a list, a map or a tuple"),
            }
        }
        "concat" => {
            arity(args, 1, usize::MAX)?;
            let mut out = Vec::new();
            for i in 0..args.len() {
                out.extend(x.list(i)?);
            }
            Ok(V::List(out))
        }
        "contains" => {
            arity(args, 2, 2)?;
            Ok(V::Bool(x.list(0)?.contains(&args[1])))
        }
        "index" => {
            arity(args, 2, 2)?;
            match x.list(0)?.iter().position(|x| *x == args[1]) {
                Some(i) => Ok(V::Num(i as f64)),
                None => fail("item not found"),
            }
        }
        "coalesce" => {
            arity(args, 1, usize::MAX)?;
            match args.iter().find(|a| !matches!(a, V::Null)) {
                Some(v) => Ok(v.clone()),
                None => fail("no non-null arguments"),
            }
        }
        "coalescelist" => {
            arity(args, 1, usize::MAX)?;
            Ok(args
                .iter()
                .find(|a| matches!(a, V::List(l) if !l.is_empty()))
                .cloned()
                .unwrap_or(V::List(Vec::new())))
        }
        "compact" => {
            arity(args, 1, 1)?;
            let l = x.strings(0)?;
            Ok(V::List(
                l.into_iter()
                    .filter(|x| !x.is_empty())
                    .map(V::Str)
                    .collect(),
            ))
        }
        "distinct" => {
            arity(args, 1, 1)?;
            let mut out: Vec<V> = Vec::new();
            for x in x.list(0)? {
                if !out.contains(&x) {
                    out.push(x);
                }
            }
            Ok(V::List(out))
        }
        "element" => {
            arity(args, 2, 2)?;
            let l = x.list(0)?;
            let i = x.n(1)?;
            if l.is_empty() {
                return fail("cannot use element function with an empty list");
            }
            if i < 0.0 {
                return fail("cannot use element function with a negative index");
            }
            Ok(l[(i as usize) % l.len()].clone())
        }
        "flatten" => {
            arity(args, 1, 1)?;
            fn flat(l: &[V], out: &mut Vec<V>) {
                for x in l {
                    match x {
                        V::List(inner) => flat(inner, out),
                        other => out.push(other.clone()),
                    }
                }
            }
            let mut out = Vec::new();
            flat(&x.list(0)?, &mut out);
            Ok(V::List(out))
        }
        "reverse" => {
            arity(args, 1, 1)?;
            let mut l = x.list(0)?;
            l.reverse();
            Ok(V::List(l))
        }
        "slice" => {
            arity(args, 3, 3)?;
            let l = x.list(0)?;
            let (a, b) = (x.n(1)?, x.n(2)?);
            if a < 0.0 || b < a || b as usize > l.len() {
                return fail("index out of range");
            }
            Ok(V::List(l[a as usize..b as usize].to_vec()))
        }
        "sort" => {
            arity(args, 1, 1)?;
            let mut l = x.strings(0)?;
            l.sort();
            Ok(V::List(l.into_iter().map(V::Str).collect()))
        }
        "range" => {
            arity(args, 1, 3)?;
            let (start, end, step) = match args.len() {
                1 => (0.0, x.n(0)?, 1.0),
                2 => {
                    let (a, b) = (x.n(0)?, x.n(1)?);
                    (a, b, if b < a { -1.0 } else { 1.0 })
                }
                _ => (x.n(0)?, x.n(1)?, x.n(2)?),
            };
            if step == 0.0 || (step > 0.0) != (end >= start) && start != end {
                return fail("invalid step");
            }
            let mut out = Vec::new();
            let mut x = start;
            while (step > 0.0 && x < end) || (step < 0.0 && x > end) {
                out.push(V::Num(x));
                x += step;
                if out.len() > 1024 {
                    return fail("more than 1024 values were generated");
                }
            }
            Ok(V::List(out))
        }
        "keys" => {
            arity(args, 1, 1)?;
            Ok(V::List(x.map(0)?.into_keys().map(V::Str).collect()))
        }
        "values" => {
            arity(args, 1, 1)?;
            Ok(V::List(x.map(0)?.into_values().collect()))
        }
        "lookup" => {
            arity(args, 2, 3)?;
            let m = x.map(0)?;
            let k = x.s(1)?;
            match (m.get(&k), args.get(2)) {
                (Some(v), _) => Ok(v.clone()),
                (None, Some(d)) => Ok(d.clone()),
                (None, None) => fail(format!("lookup failed to find {k:?}")),
            }
        }
        "merge" => {
            let mut out = BTreeMap::new();
            for (i, a) in args.iter().enumerate() {
                if matches!(a, V::Null) {
                    continue;
                }
                out.extend(x.map(i)?);
            }
            Ok(V::Map(out))
        }
        "zipmap" => {
            arity(args, 2, 2)?;
            let (k, v) = (x.strings(0)?, x.list(1)?);
            if k.len() != v.len() {
                return fail("number of keys and values must be the same");
            }
            Ok(V::Map(k.into_iter().zip(v).collect()))
        }
        "max" | "min" => {
            arity(args, 1, usize::MAX)?;
            let mut best = x.n(0)?;
            for i in 1..args.len() {
                let x = x.n(i)?;
                if (name == "max" && x > best) || (name == "min" && x < best) {
                    best = x;
                }
            }
            Ok(V::Num(best))
        }
        "abs" => num1(f64::abs),
        "ceil" => num1(f64::ceil),
        "floor" => num1(f64::floor),
        "signum" => num1(|x| if x == 0.0 { 0.0 } else { x.signum() }),
        "pow" => {
            arity(args, 2, 2)?;
            Ok(V::Num(x.n(0)?.powf(x.n(1)?)))
        }
        "parseint" => {
            arity(args, 2, 2)?;
            let (x, base) = (x.s(0)?, x.n(1)?);
            if !(2.0..=62.0).contains(&base) || base.fract() != 0.0 {
                return fail("base must be a whole number between 2 and 62 inclusive");
            }
            match i64::from_str_radix(&x, base as u32) {
                Ok(v) => Ok(V::Num(v as f64)),
                Err(_) => fail(format!(
                    "cannot parse {x:?} as a base {} integer",
                    num_text(base)
                )),
            }
        }
        "jsonencode" => {
            arity(args, 1, 1)?;
            Ok(V::Str(args[0].to_json().to_string()))
        }
        "jsondecode" => {
            arity(args, 1, 1)?;
            match serde_json::from_str::<serde_json::Value>(&x.s(0)?) {
                Ok(j) => Ok(from_json(&j)),
                Err(e) => fail(e.to_string()),
            }
        }
        _ => Err(CallError::Unsupported),
    }
}

fn from_json(v: &serde_json::Value) -> V {
    use serde_json::Value as J;
    match v {
        J::Null => V::Null,
        J::Bool(b) => V::Bool(*b),
        J::Number(x) => V::Num(x.as_f64().unwrap_or_default()),
        J::String(x) => V::Str(x.clone()),
        J::Array(a) => V::List(a.iter().map(from_json).collect()),
        J::Object(o) => V::Map(o.iter().map(|(k, x)| (k.clone(), from_json(x))).collect()),
    }
}

/// `format` with the verbs `%s`, `%d`, `%v`, `%q` and `%%`.
fn format(spec: &str, args: &[V]) -> Result<V, CallError> {
    let mut out = String::new();
    let mut next = 0;
    let mut chars = spec.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let verb = chars.next();
        if verb == Some('%') {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(next) else {
            return fail("not enough arguments for format string");
        };
        next += 1;
        match verb {
            Some('s') | Some('v') => out.push_str(&match arg {
                V::List(_) | V::Map(_) => arg.to_json().to_string(),
                other => template_text(other).or_else(fail)?,
            }),
            Some('d') => match convert(arg, &Ty::Num) {
                Ok(V::Num(x)) if x.fract() == 0.0 => out.push_str(&num_text(x)),
                _ => return fail("a whole number is required for %d"),
            },
            Some('q') => out.push_str(&format!("{:?}", template_text(arg).or_else(fail)?)),
            _ => return Err(CallError::Unsupported),
        }
    }
    if next < args.len() {
        return fail("too many arguments; no verbs left to use them");
    }
    Ok(V::Str(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(name: &str, args: &[V]) -> V {
        match call(name, args) {
            Ok(v) => v,
            Err(CallError::Unsupported) => panic!("{name} unsupported"),
            Err(CallError::Failed(m)) | Err(CallError::Arg(_, _, m)) => {
                panic!("{name} failed: {m}")
            }
        }
    }

    #[test]
    fn a_few_functions() {
        let st = |x: &str| V::Str(x.into());
        assert_eq!(ok("upper", &[st("ab")]), st("AB"));
        assert_eq!(
            ok("join", &[st(","), V::List(vec![st("a"), V::Num(1.0)])]),
            st("a,1")
        );
        assert_eq!(
            ok("format", &[st("%s-%d%%"), st("x"), V::Num(3.0)]),
            st("x-3%")
        );
        assert_eq!(ok("length", &[V::List(vec![V::Null])]), V::Num(1.0));
        assert!(matches!(
            call("length", &[st("abc")]),
            Err(CallError::Failed(_))
        ));
        assert!(matches!(
            call("file", &[st("x")]),
            Err(CallError::Unsupported)
        ));
    }
}
