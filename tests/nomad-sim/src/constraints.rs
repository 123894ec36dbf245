//! Nomad 1.1's constraint language: the operators of its `checkConstraint` (with
//! `regexp`, `version` and `semver` matching), the text a filtered node is reported
//! under, which targets escape the computed node class, and `Constraint.Validate`.

use serde_json::Value;

use crate::canonical::{Obj, s};

/// One constraint of a job, group or task (`structs.Constraint`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Constraint<'a> {
    pub l: &'a str,
    pub op: &'a str,
    pub r: &'a str,
}

impl<'a> Constraint<'a> {
    fn from_obj(c: &'a Obj) -> Self {
        Self {
            l: s(c, "LTarget").unwrap_or_default(),
            op: s(c, "Operand").unwrap_or_default(),
            r: s(c, "RTarget").unwrap_or_default(),
        }
    }

    /// The constraint as Nomad reports it in `ConstraintFiltered` (`Constraint.String`):
    /// `${attr.kernel.name} = windows`, `${attr.x} is_set ` (an empty right side too).
    pub(crate) fn text(&self) -> String {
        format!("{} {} {}", self.l, self.op, self.r)
    }

    /// `distinct_hosts` and `distinct_property` are checked by their own iterators, not
    /// by the constraint checker (which lets them pass).
    pub(crate) fn is_distinct(&self) -> bool {
        matches!(self.op, "distinct_hosts" | "distinct_property")
    }

    /// Whether a side targets a node-unique value, so the computed node class cannot
    /// stand for the node (`constraintTargetEscapes`).
    pub(crate) fn escapes(&self) -> bool {
        [self.l, self.r].iter().any(|t| {
            ["${node.unique.", "${attr.unique.", "${meta.unique."]
                .iter()
                .any(|p| t.starts_with(p))
        })
    }
}

/// The constraints listed under `Constraints` of a job, group or task object.
pub(crate) fn constraints_of(m: &Obj) -> Vec<Constraint<'_>> {
    m.get("Constraints")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .map(Constraint::from_obj)
        .collect()
}

/// `checkConstraint`: whether the node passes `op` with the resolved sides (`None`: the
/// target does not resolve on the node, e.g. an unknown attribute).
pub(crate) fn check(op: &str, l: Option<&str>, r: Option<&str>) -> bool {
    let both = l.zip(r);
    match op {
        "distinct_hosts" | "distinct_property" => true,
        "=" | "==" | "is" => both.is_some_and(|(l, r)| l == r),
        // An unresolved attribute or meta key reads as "" here.
        "!=" | "not" => l.unwrap_or_default() != r.unwrap_or_default(),
        "<" => both.is_some_and(|(l, r)| l < r),
        "<=" => both.is_some_and(|(l, r)| l <= r),
        ">" => both.is_some_and(|(l, r)| l > r),
        ">=" => both.is_some_and(|(l, r)| l >= r),
        "is_set" => l.is_some(),
        "is_not_set" => l.is_none(),
        "version" => both.is_some_and(|(l, r)| version_matches(r, l, false)),
        "semver" => both.is_some_and(|(l, r)| version_matches(r, l, true)),
        "regexp" => both.is_some_and(|(l, r)| regex::is_match(r, l).unwrap_or(false)),
        "set_contains" | "set_contains_all" => both.is_some_and(|(l, r)| {
            let have = set(l);
            set(r).iter().all(|x| have.contains(x))
        }),
        "set_contains_any" => both.is_some_and(|(l, r)| {
            let have = set(l);
            set(r).iter().any(|x| have.contains(x))
        }),
        _ => false,
    }
}

fn set(v: &str) -> Vec<&str> {
    v.split(',').map(str::trim).collect()
}

/// `Constraint.Validate`: the problems of one constraint, in Nomad's words. (The
/// compile errors of `regexp`, `version` and `semver` targets are not reproduced: such
/// a constraint filters the node instead.)
pub(crate) fn validate(c: &Obj) -> Vec<String> {
    let c = Constraint::from_obj(c);
    let mut errs = Vec::new();
    if c.op.is_empty() {
        errs.push("Missing constraint operand".to_string());
    }
    let mut need_l = true;
    match c.op {
        "distinct_hosts" => need_l = false,
        "set_contains" | "set_contains_all" | "set_contains_any" if c.r.is_empty() => {
            errs.push("Set contains constraint requires an RTarget".into());
        }
        "set_contains" | "set_contains_all" | "set_contains_any" | "regexp" | "version"
        | "semver" => {}
        "distinct_property" if !c.r.is_empty() => match c.r.parse::<u64>() {
            Ok(0) => errs.push(
                "Distinct Property must have an allowed count of 1 or greater: 0 < 1".into(),
            ),
            Ok(_) => {}
            Err(_) => errs.push(format!(
                "Failed to convert RTarget {:?} to uint64: strconv.ParseUint: parsing {:?}: invalid syntax",
                c.r, c.r
            )),
        },
        "distinct_property" => {}
        "is_set" | "is_not_set" if !c.r.is_empty() => {
            errs.push(format!("Operator {:?} does not support an RTarget", c.op));
        }
        "is_set" | "is_not_set" => {}
        "=" | "==" | "is" | "!=" | "not" | "<" | "<=" | ">" | ">=" if c.r.is_empty() => {
            errs.push(format!("Operator {:?} requires an RTarget", c.op));
        }
        "=" | "==" | "is" | "!=" | "not" | "<" | "<=" | ">" | ">=" => {}
        other => errs.push(format!("Unknown constraint type {other:?}")),
    }
    if need_l && c.l.is_empty() {
        errs.push("No LTarget provided but is required by constraint".into());
    }
    errs
}

/// A version as hashicorp/go-version reads it: numeric segments, a prerelease, and
/// how many segments were written.
#[derive(Debug, PartialEq, Eq)]
struct Version {
    segments: Vec<u64>,
    specified: usize,
    pre: String,
}

impl Version {
    fn parse(text: &str) -> Option<Version> {
        let text = text.trim();
        let text = text.strip_prefix('v').unwrap_or(text);
        let text = text.split_once('+').map_or(text, |(v, _)| v);
        let end = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        let (nums, rest) = text.split_at(end);
        let pre = rest.strip_prefix('-').unwrap_or(rest);
        if nums.is_empty() || nums.ends_with('.') || (!rest.is_empty() && pre.is_empty()) {
            return None;
        }
        let mut segments = nums
            .split('.')
            .map(|p| p.parse::<u64>().ok())
            .collect::<Option<Vec<u64>>>()?;
        let specified = segments.len();
        while segments.len() < 3 {
            segments.push(0);
        }
        Some(Version {
            segments,
            specified,
            pre: pre.to_string(),
        })
    }

    fn cmp(&self, other: &Version) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        let n = self.segments.len().max(other.segments.len());
        let seg = |v: &Version, i: usize| v.segments.get(i).copied().unwrap_or(0);
        for i in 0..n {
            match seg(self, i).cmp(&seg(other, i)) {
                Ordering::Equal => {}
                o => return o,
            }
        }
        match (self.pre.is_empty(), other.pre.is_empty()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => {
                let (a, b): (Vec<&str>, Vec<&str>) = (
                    self.pre.split('.').collect(),
                    other.pre.split('.').collect(),
                );
                for (x, y) in a.iter().zip(&b) {
                    let o = match (x.parse::<u64>(), y.parse::<u64>()) {
                        (Ok(x), Ok(y)) => x.cmp(&y),
                        (Ok(_), Err(_)) => Ordering::Less,
                        (Err(_), Ok(_)) => Ordering::Greater,
                        (Err(_), Err(_)) => x.cmp(y),
                    };
                    if o != Ordering::Equal {
                        return o;
                    }
                }
                a.len().cmp(&b.len())
            }
        }
    }
}

/// Whether `version` satisfies every comma-separated part of `constraint` (`>= 1.2, <
/// 2.0`, `~> 1.2`). For `version` (go-version) a prerelease only matches a constraint
/// with a prerelease of the same segments; `semver` compares prereleases plainly.
fn version_matches(constraint: &str, version: &str, semver: bool) -> bool {
    use std::cmp::Ordering::{Equal, Greater, Less};
    let Some(v) = Version::parse(version) else {
        return false;
    };
    constraint.split(',').all(|part| {
        let part = part.trim();
        let op_len = part
            .find(|c: char| !matches!(c, '<' | '>' | '=' | '!' | '~'))
            .unwrap_or(part.len());
        let (op, rest) = part.split_at(op_len);
        let Some(c) = Version::parse(rest) else {
            return false;
        };
        let pre_ok = semver
            || match (v.pre.is_empty(), c.pre.is_empty()) {
                (false, false) => v.segments == c.segments,
                (false, true) => false,
                _ => true,
            };
        let o = v.cmp(&c);
        match op {
            "" | "=" => o == Equal,
            "!=" => o != Equal,
            ">" => pre_ok && o == Greater,
            "<" => pre_ok && o == Less,
            ">=" => pre_ok && o != Less,
            "<=" => pre_ok && o != Greater,
            "~>" => {
                pre_ok
                    && (c.pre.is_empty() || !v.pre.is_empty())
                    && o != Less
                    && c.segments[..c.specified.saturating_sub(1)]
                        == v.segments[..c.specified.saturating_sub(1)]
            }
            _ => false,
        }
    })
}

/// A small backtracking matcher for the regular expressions constraints use (RE2 syntax:
/// literals, `.`, `^`, `$`, classes with ranges and `\d \w \s`, groups, `|`, `* + ?
/// {n,m}`, a leading `(?i)`). `None` for syntax it does not know.
mod regex {
    enum Node {
        Char(char),
        Any,
        Class(Vec<(char, char)>, bool),
        Start,
        End,
        Group(Vec<Vec<Node>>),
        Repeat(Box<Node>, usize, Option<usize>),
    }

    struct Parser {
        chars: Vec<char>,
        pos: usize,
    }

    fn perl(c: char) -> Option<(Vec<(char, char)>, bool)> {
        let digit = vec![('0', '9')];
        let word = vec![('0', '9'), ('A', 'Z'), ('a', 'z'), ('_', '_')];
        let space = vec![('\t', '\n'), ('\x0c', '\r'), (' ', ' ')];
        Some(match c {
            'd' => (digit, false),
            'D' => (digit, true),
            'w' => (word, false),
            'W' => (word, true),
            's' => (space, false),
            'S' => (space, true),
            _ => return None,
        })
    }

    fn escaped(c: char) -> Option<char> {
        match c {
            'n' => Some('\n'),
            't' => Some('\t'),
            'r' => Some('\r'),
            'f' => Some('\x0c'),
            c if c.is_ascii_punctuation() => Some(c),
            _ => None,
        }
    }

    impl Parser {
        fn peek(&self) -> Option<char> {
            self.chars.get(self.pos).copied()
        }

        fn alt(&mut self) -> Option<Vec<Vec<Node>>> {
            let mut alts = vec![self.seq()?];
            while self.peek() == Some('|') {
                self.pos += 1;
                alts.push(self.seq()?);
            }
            Some(alts)
        }

        fn seq(&mut self) -> Option<Vec<Node>> {
            let mut out = Vec::new();
            while let Some(c) = self.peek() {
                if c == '|' || c == ')' {
                    break;
                }
                let atom = self.atom()?;
                out.push(self.quantified(atom)?);
            }
            Some(out)
        }

        fn number(&mut self) -> Option<usize> {
            let start = self.pos;
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.pos += 1;
            }
            self.chars[start..self.pos]
                .iter()
                .collect::<String>()
                .parse()
                .ok()
        }

        fn quantified(&mut self, atom: Node) -> Option<Node> {
            let (min, max) = match self.peek() {
                Some('*') => (0, None),
                Some('+') => (1, None),
                Some('?') => (0, Some(1)),
                Some('{') => {
                    let save = self.pos;
                    self.pos += 1;
                    let Some(min) = self.number() else {
                        self.pos = save;
                        return Some(atom);
                    };
                    let max = if self.peek() == Some(',') {
                        self.pos += 1;
                        if self.peek() == Some('}') {
                            None
                        } else {
                            Some(self.number()?)
                        }
                    } else {
                        Some(min)
                    };
                    if self.peek() != Some('}') {
                        self.pos = save;
                        return Some(atom);
                    }
                    (min, max)
                }
                _ => return Some(atom),
            };
            self.pos += 1;
            if matches!(atom, Node::Start | Node::End) {
                return None;
            }
            // A lazy quantifier matches the same texts.
            if self.peek() == Some('?') {
                self.pos += 1;
            }
            Some(Node::Repeat(Box::new(atom), min, max))
        }

        fn atom(&mut self) -> Option<Node> {
            let c = self.peek()?;
            self.pos += 1;
            Some(match c {
                '.' => Node::Any,
                '^' => Node::Start,
                '$' => Node::End,
                '(' => {
                    if self.chars.get(self.pos..self.pos + 2) == Some(&['?', ':']) {
                        self.pos += 2;
                    } else if self.peek() == Some('?') {
                        return None;
                    }
                    let alts = self.alt()?;
                    if self.peek() != Some(')') {
                        return None;
                    }
                    self.pos += 1;
                    Node::Group(alts)
                }
                '[' => self.class()?,
                '\\' => {
                    let e = self.peek()?;
                    self.pos += 1;
                    match perl(e) {
                        Some((ranges, neg)) => Node::Class(ranges, neg),
                        None => Node::Char(escaped(e)?),
                    }
                }
                '*' | '+' | '?' | ')' => return None,
                c => Node::Char(c),
            })
        }

        fn class(&mut self) -> Option<Node> {
            let neg = self.peek() == Some('^');
            if neg {
                self.pos += 1;
            }
            let mut ranges = Vec::new();
            let mut first = true;
            loop {
                let c = self.peek()?;
                self.pos += 1;
                if c == ']' && !first {
                    break;
                }
                first = false;
                let lo = match c {
                    '\\' => {
                        let e = self.peek()?;
                        self.pos += 1;
                        match perl(e) {
                            Some((rs, false)) => {
                                ranges.extend(rs);
                                continue;
                            }
                            Some((_, true)) => return None,
                            None => escaped(e)?,
                        }
                    }
                    '[' if self.peek() == Some(':') => {
                        let rest: String = self.chars[self.pos..].iter().collect();
                        let end = rest.find(":]")?;
                        let name = &rest[1..end];
                        self.pos += end + 2;
                        ranges.extend(match name {
                            "alpha" => vec![('A', 'Z'), ('a', 'z')],
                            "digit" => vec![('0', '9')],
                            "alnum" => vec![('0', '9'), ('A', 'Z'), ('a', 'z')],
                            "upper" => vec![('A', 'Z')],
                            "lower" => vec![('a', 'z')],
                            "space" => vec![('\t', '\r'), (' ', ' ')],
                            "xdigit" => vec![('0', '9'), ('A', 'F'), ('a', 'f')],
                            "word" => vec![('0', '9'), ('A', 'Z'), ('a', 'z'), ('_', '_')],
                            _ => return None,
                        });
                        continue;
                    }
                    c => c,
                };
                if self.peek() == Some('-') && self.chars.get(self.pos + 1) != Some(&']') {
                    self.pos += 1;
                    let hi = match self.peek()? {
                        '\\' => {
                            self.pos += 1;
                            escaped(self.peek()?)?
                        }
                        c => c,
                    };
                    self.pos += 1;
                    if hi < lo {
                        return None;
                    }
                    ranges.push((lo, hi));
                } else {
                    ranges.push((lo, lo));
                }
            }
            Some(Node::Class(ranges, neg))
        }
    }

    struct Matcher<'t> {
        text: &'t [char],
        fold: bool,
    }

    impl Matcher<'_> {
        fn eq(&self, a: char, b: char) -> bool {
            a == b || (self.fold && a.to_lowercase().eq(b.to_lowercase()))
        }

        fn single(&self, node: &Node, c: char) -> bool {
            match node {
                Node::Char(x) => self.eq(*x, c),
                Node::Any => c != '\n',
                Node::Class(ranges, neg) => {
                    let lower = c.to_lowercase().next().unwrap_or(c);
                    let upper = c.to_uppercase().next().unwrap_or(c);
                    let hit = ranges.iter().any(|(lo, hi)| {
                        (*lo..=*hi).contains(&c)
                            || (self.fold
                                && ((*lo..=*hi).contains(&lower) || (*lo..=*hi).contains(&upper)))
                    });
                    hit != *neg
                }
                _ => false,
            }
        }

        fn seq(&self, nodes: &[Node], i: usize, k: &mut dyn FnMut(usize) -> bool) -> bool {
            let Some((first, rest)) = nodes.split_first() else {
                return k(i);
            };
            match first {
                Node::Start => i == 0 && self.seq(rest, i, k),
                Node::End => i == self.text.len() && self.seq(rest, i, k),
                Node::Group(alts) => alts
                    .iter()
                    .any(|alt| self.seq(alt, i, &mut |j| self.seq(rest, j, k))),
                Node::Repeat(node, min, max) => self.repeat(node, *min, *max, 0, rest, i, k),
                single => {
                    i < self.text.len()
                        && self.single(single, self.text[i])
                        && self.seq(rest, i + 1, k)
                }
            }
        }

        #[allow(clippy::too_many_arguments)]
        fn repeat(
            &self,
            node: &Node,
            min: usize,
            max: Option<usize>,
            n: usize,
            rest: &[Node],
            i: usize,
            k: &mut dyn FnMut(usize) -> bool,
        ) -> bool {
            if max.is_none_or(|m| n < m)
                && self.seq(std::slice::from_ref(node), i, &mut |j| {
                    j != i && self.repeat(node, min, max, n + 1, rest, j, k)
                })
            {
                return true;
            }
            n >= min && self.seq(rest, i, k)
        }
    }

    /// Whether `pattern` matches anywhere in `text` (Go's `regexp.MatchString`);
    /// `None` when the pattern uses syntax this matcher does not know.
    pub(super) fn is_match(pattern: &str, text: &str) -> Option<bool> {
        let (fold, pattern) = match pattern.strip_prefix("(?i)") {
            Some(p) => (true, p),
            None => (false, pattern),
        };
        let mut p = Parser {
            chars: pattern.chars().collect(),
            pos: 0,
        };
        let alts = p.alt()?;
        if p.pos != p.chars.len() {
            return None;
        }
        let tree = [Node::Group(alts)];
        let text: Vec<char> = text.chars().collect();
        let m = Matcher { text: &text, fold };
        Some((0..=text.len()).any(|start| m.seq(&tree, start, &mut |_| true)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators() {
        let (linux, dc) = (Some("linux"), Some("dc1"));
        assert!(check("=", linux, Some("linux")));
        assert!(!check("=", linux, Some("windows")));
        assert!(!check("=", None, Some("x")));
        assert!(check("!=", dc, Some("dc2")));
        assert!(!check("!=", dc, Some("dc1")));
        // An unknown attribute is never equal to a value, so `!=` passes ...
        assert!(check("!=", None, Some("x")));
        // ... but two unknown ones are equal.
        assert!(!check("!=", None, None));
        assert!(check("is_set", linux, None) && !check("is_not_set", linux, None));
        assert!(check("is_not_set", None, None));
        assert!(check("<", Some("a"), Some("b")) && !check(">=", Some("a"), Some("b")));
        assert!(check("set_contains", Some("a, b,c"), Some("c,a")));
        assert!(!check("set_contains_all", Some("a,b"), Some("a,z")));
        assert!(check("set_contains_any", Some("a,b"), Some("z,b")));
        assert!(check("regexp", linux, Some("^lin")) && !check("regexp", linux, Some("^win")));
        assert!(!check("bogus", linux, linux));
        assert!(check("distinct_hosts", None, None));
    }

    #[test]
    fn versions() {
        assert!(version_matches(">= 5.0, < 6", "5.15.0", false));
        assert!(!version_matches("> 100.0", "5.15.0", false));
        assert!(version_matches("~> 5.1", "5.15.0", false));
        assert!(!version_matches("~> 5.1.0", "5.15.0", false));
        // A prerelease satisfies no plain go-version constraint; semver compares it.
        assert!(!version_matches(">= 5.0", "6.18.44-fc-v1045", false));
        assert!(version_matches(">= 5.0.0", "6.18.44-fc-v1045", true));
        assert!(!version_matches(">= 5.0", "nonsense", false));
    }

    #[test]
    fn regexps() {
        let m = |p: &str, t: &str| regex::is_match(p, t);
        assert_eq!(m("^win", "windows"), Some(true));
        assert_eq!(m("^win", "linux"), Some(false));
        assert_eq!(m("in", "linux"), Some(true));
        assert_eq!(m("^(linux|darwin)$", "darwin"), Some(true));
        assert_eq!(m("^(linux|darwin)$", "darwinx"), Some(false));
        assert_eq!(m(r"^\d+\.\d+(\.\d+)?$", "5.15.0"), Some(true));
        assert_eq!(m("^[a-z]{3,5}$", "linux"), Some(true));
        assert_eq!(m("^[a-z]{3,4}$", "linux"), Some(false));
        assert_eq!(m("^[^0-9]+$", "linux"), Some(true));
        assert_eq!(m("(?i)^LINUX$", "linux"), Some(true));
        assert_eq!(m("a*b", "caab"), Some(true));
        assert_eq!(m("(a*)*b", "aaac"), Some(false));
        assert_eq!(m("(", "x"), None);
        assert_eq!(m("*", "x"), None);
    }

    #[test]
    fn validation() {
        let v = |c: Value| validate(c.as_object().expect("object"));
        let c = |op: &str, l: &str, r: &str| serde_json::json!({"LTarget": l, "Operand": op, "RTarget": r});
        assert!(v(c("=", "${attr.kernel.name}", "linux")).is_empty());
        assert_eq!(
            v(c("bogus", "${attr.kernel.name}", "x")),
            ["Unknown constraint type \"bogus\""]
        );
        assert_eq!(
            v(c("", "${attr.kernel.name}", "x")),
            ["Missing constraint operand", "Unknown constraint type \"\""]
        );
        assert_eq!(
            v(c("=", "${attr.kernel.name}", "")),
            ["Operator \"=\" requires an RTarget"]
        );
        assert_eq!(
            v(c("=", "", "x")),
            ["No LTarget provided but is required by constraint"]
        );
        assert!(v(c("distinct_hosts", "", "")).is_empty());
        assert_eq!(
            v(c("distinct_property", "${node.datacenter}", "zero")),
            [
                "Failed to convert RTarget \"zero\" to uint64: strconv.ParseUint: parsing \"zero\": invalid syntax"
            ]
        );
    }
}
