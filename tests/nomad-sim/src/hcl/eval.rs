//! Evaluating HCL2 expressions as Nomad's jobspec parser does: `var.*` and `local.*`,
//! string templates, operators, conditionals, `for` expressions and a part of Nomad's
//! function library. A reference to any other name (`attr.kernel.name`, `NOMAD_META_x`)
//! becomes the text `${...}`, for Nomad to interpolate at run time.

use std::collections::BTreeMap;

use ::hcl::edit::expr::{
    BinaryOperator, Expression, FuncCall, ObjectKey, TraversalOperator, UnaryOperator,
};
use ::hcl::edit::template::{Directive, Element, Template};

use super::diag::{Diag, Span, Text};
use super::value::{Ty, V, convert, template_text};

/// Byte range of a parsed node (0..0 for one built by hand).
pub(crate) fn span_of(x: &impl ::hcl::edit::Span) -> Span {
    x.span().unwrap_or(0..0)
}

/// Where an expression "starts" for Nomad's type errors: the literal inside a quoted
/// string, the opening bracket of a list or object, else the whole expression.
pub(crate) fn start_span(src: &str, e: &Expression) -> Span {
    let full = span_of(e);
    match e {
        // `""` starts after its closing quote, as Nomad reports it.
        Expression::String(_) if full.len() == 2 => full.end..full.end,
        Expression::String(_)
            if full.len() > 2 && src.get(full.start..=full.start) == Some("\"") =>
        {
            full.start + 1..full.end - 1
        }
        Expression::Traversal(t) => t
            .operators
            .iter()
            .find(|op| {
                matches!(
                    op.value(),
                    TraversalOperator::AttrSplat(_) | TraversalOperator::FullSplat(_)
                )
            })
            .map_or(full, span_of),
        Expression::Array(_) | Expression::Object(_) | Expression::ForExpr(_) => {
            full.start..full.start + 1
        }
        Expression::UnaryOp(u) => span_of(&u.operator),
        Expression::StringTemplate(t) => template_start(src, t, full),
        Expression::HeredocTemplate(h) => template_start(src, &h.template, full),
        Expression::Conditional(c) => start_span(src, &c.cond_expr),
        Expression::BinaryOp(b) => start_span(src, &b.lhs_expr),
        Expression::FuncCall(f) => call_span(f),
        _ => full,
    }
}

fn template_start(src: &str, t: &Template, full: Span) -> Span {
    let mut it = t.iter();
    match (it.next(), it.next()) {
        (Some(Element::Interpolation(_)), None) | (None, _) => full,
        (Some(Element::Literal(l)), _) => span_of(l),
        (Some(Element::Interpolation(i)), _) => start_span(src, &i.expr),
        (Some(Element::Directive(d)), _) => span_of(d.as_ref()),
    }
}

/// A function call's name and opening parenthesis (Nomad's place for call errors).
fn call_span(f: &FuncCall) -> Span {
    let name = span_of(&f.name.name);
    let start = f
        .name
        .namespace
        .first()
        .map_or(name.start, |n| span_of(n).start);
    let args = span_of(&f.args);
    start..args.start.max(name.end) + 1
}

/// Names and values an expression can see.
pub(crate) struct Scope<'a> {
    /// The text the expression is in (for `${...}` pass-through and positions).
    pub src: &'a str,
    pub text: Text,
    /// `var`: the input variables; `None` where variables may not be used at all.
    pub vars: Option<&'a BTreeMap<String, V>>,
    /// `local`: the locals evaluated so far.
    pub locals: Option<&'a BTreeMap<String, V>>,
    /// Whether unknown names become `${...}` text (the job body) or are errors.
    pub passthrough: bool,
}

impl<'a> Scope<'a> {
    /// The scope of default values and var files: no variables, no functions.
    pub(crate) fn constant(src: &'a str, text: Text) -> Self {
        Self {
            src,
            text,
            vars: None,
            locals: None,
            passthrough: false,
        }
    }

    fn diag(&self, span: Span, summary: impl Into<String>, detail: impl Into<String>) -> Diag {
        Diag::at(span, summary, detail).in_text(self.text)
    }

    /// Evaluates `e`, reporting problems to `diags` (the value is then `Unknown`).
    pub(crate) fn eval(&self, e: &Expression, diags: &mut Vec<Diag>) -> V {
        self.eval_in(e, &mut Vec::new(), diags)
    }

    fn eval_in(&self, e: &Expression, bound: &mut Vec<(String, V)>, diags: &mut Vec<Diag>) -> V {
        match e {
            Expression::Null(_) => V::Null,
            Expression::Bool(b) => V::Bool(*b.value()),
            Expression::Number(n) => V::Num(n.value().as_f64().unwrap_or_default()),
            Expression::String(s) => V::Str(s.value().clone()),
            Expression::Array(a) => {
                V::List(a.iter().map(|x| self.eval_in(x, bound, diags)).collect())
            }
            Expression::Object(o) => {
                let mut m = BTreeMap::new();
                let mut ok = true;
                for (k, v) in o.iter() {
                    let key = match k {
                        ObjectKey::Ident(i) => i.as_str().to_string(),
                        ObjectKey::Expression(ke) => match self.eval_in(ke, bound, diags) {
                            V::Unknown => {
                                ok = false;
                                continue;
                            }
                            kv => match template_text(&kv) {
                                Ok(s) => s,
                                Err(m) => {
                                    diags.push(self.diag(
                                        span_of(ke),
                                        "Incorrect key type",
                                        format!("Can't use this value as a key: {m}."),
                                    ));
                                    ok = false;
                                    continue;
                                }
                            },
                        },
                    };
                    let val = self.eval_in(v.expr(), bound, diags);
                    m.insert(key, val);
                }
                if ok { V::Map(m) } else { V::Unknown }
            }
            Expression::StringTemplate(t) => self.template(t, true, bound, diags),
            Expression::HeredocTemplate(h) => self.template(&h.template, false, bound, diags),
            Expression::Parenthesis(p) => self.eval_in(p.inner(), bound, diags),
            Expression::Variable(_) | Expression::Traversal(_) => self.traversal(e, bound, diags),
            Expression::FuncCall(f) => self.call(f, span_of(e), bound, diags),
            Expression::Conditional(c) => {
                let cond = self.eval_in(&c.cond_expr, bound, diags);
                match convert(&cond, &Ty::Bool) {
                    Ok(V::Bool(true)) => self.eval_in(&c.true_expr, bound, diags),
                    Ok(V::Bool(false)) => self.eval_in(&c.false_expr, bound, diags),
                    Ok(V::Unknown) => V::Unknown,
                    Ok(_) => {
                        diags.push(self.diag(
                            span_of(&c.cond_expr),
                            "Null condition",
                            "The condition value is null. Conditions must either be true or false.",
                        ));
                        V::Unknown
                    }
                    Err(_) => {
                        diags.push(self.diag(
                            span_of(&c.cond_expr),
                            "Incorrect condition type",
                            "The condition expression must be of type bool.",
                        ));
                        V::Unknown
                    }
                }
            }
            Expression::UnaryOp(u) => {
                let v = self.eval_in(&u.expr, bound, diags);
                let (ty, name) = match u.operator.value() {
                    UnaryOperator::Neg => (Ty::Num, "number"),
                    UnaryOperator::Not => (Ty::Bool, "bool"),
                };
                match convert(&v, &ty) {
                    Ok(V::Num(n)) => V::Num(-n),
                    Ok(V::Bool(b)) => V::Bool(!b),
                    Ok(V::Unknown) => V::Unknown,
                    _ => {
                        diags.push(self.diag(
                            span_of(&u.expr),
                            "Invalid operand",
                            format!("Unsuitable value for unary operand: {name} required."),
                        ));
                        V::Unknown
                    }
                }
            }
            Expression::BinaryOp(b) => {
                let l = self.eval_in(&b.lhs_expr, bound, diags);
                let r = self.eval_in(&b.rhs_expr, bound, diags);
                self.binary(*b.operator.value(), &l, &r, &b.lhs_expr, &b.rhs_expr, diags)
            }
            Expression::ForExpr(f) => self.for_expr(f, span_of(e), bound, diags),
        }
    }

    fn binary(
        &self,
        op: BinaryOperator,
        l: &V,
        r: &V,
        le: &Expression,
        re: &Expression,
        diags: &mut Vec<Diag>,
    ) -> V {
        use BinaryOperator as B;
        if matches!(l, V::Unknown) || matches!(r, V::Unknown) {
            return V::Unknown;
        }
        match op {
            B::Eq => return V::Bool(l == r),
            B::NotEq => return V::Bool(l != r),
            _ => {}
        }
        let (ty, name) = match op {
            B::And | B::Or => (Ty::Bool, "bool"),
            _ => (Ty::Num, "number"),
        };
        let operand = |v: &V, e: &Expression, diags: &mut Vec<Diag>| match convert(v, &ty) {
            Ok(x @ (V::Num(_) | V::Bool(_))) => Some(x),
            _ => {
                diags.push(self.diag(
                    span_of(e),
                    "Invalid operand",
                    format!(
                        "Unsuitable value for {} operand: {name} required.",
                        side(e, le)
                    ),
                ));
                None
            }
        };
        fn side(e: &Expression, le: &Expression) -> &'static str {
            if std::ptr::eq(e, le) { "left" } else { "right" }
        }
        let (Some(a), Some(b)) = (operand(l, le, diags), operand(r, re, diags)) else {
            return V::Unknown;
        };
        match (a, b) {
            (V::Bool(a), V::Bool(b)) => V::Bool(if op == B::And { a && b } else { a || b }),
            (V::Num(a), V::Num(b)) => match op {
                B::Plus => V::Num(a + b),
                B::Minus => V::Num(a - b),
                B::Mul => V::Num(a * b),
                B::Mod if b == 0.0 => {
                    diags.push(self.diag(
                        span_of(re),
                        "Error in function call",
                        "Call to function \"modulo\" failed: can't compute modulo of zero.",
                    ));
                    V::Unknown
                }
                B::Div => V::Num(a / b),
                B::Mod => V::Num(a % b),
                B::Less => V::Bool(a < b),
                B::LessEq => V::Bool(a <= b),
                B::Greater => V::Bool(a > b),
                B::GreaterEq => V::Bool(a >= b),
                _ => V::Unknown,
            },
            _ => V::Unknown,
        }
    }

    /// A string or heredoc template; `"${x}"` alone yields `x` itself, unconverted.
    fn template(
        &self,
        t: &Template,
        quoted: bool,
        bound: &mut Vec<(String, V)>,
        diags: &mut Vec<Diag>,
    ) -> V {
        let mut it = t.iter();
        if quoted && let (Some(Element::Interpolation(i)), None) = (it.next(), it.next()) {
            return self.eval_in(&i.expr, bound, diags);
        }
        let mut out = String::new();
        let mut strip_next = false;
        if self.render(t, &mut out, &mut strip_next, bound, diags) {
            V::Str(out)
        } else {
            V::Unknown
        }
    }

    /// Appends `t` to `out`; false when a part failed.
    fn render(
        &self,
        t: &Template,
        out: &mut String,
        strip_next: &mut bool,
        bound: &mut Vec<(String, V)>,
        diags: &mut Vec<Diag>,
    ) -> bool {
        let mut ok = true;
        for el in t.iter() {
            match el {
                Element::Literal(l) => {
                    let s = l.value();
                    out.push_str(if std::mem::take(strip_next) {
                        s.trim_start()
                    } else {
                        s
                    });
                }
                Element::Interpolation(i) => {
                    if i.strip.strip_start() {
                        trim_end(out);
                    }
                    let v = self.eval_in(&i.expr, bound, diags);
                    match v {
                        V::Unknown => ok = false,
                        V::Null => {
                            diags.push(self.diag(
                                span_of(&i.expr),
                                "Invalid template interpolation value",
                                "The expression result is null. Cannot include a null value in a string template.",
                            ));
                            ok = false;
                        }
                        v => {
                            match template_text(&v) {
                                Ok(s) => out.push_str(&s),
                                Err(m) => {
                                    diags.push(self.diag(
                                    span_of(&i.expr),
                                    "Invalid template interpolation value",
                                    format!("Cannot include the given value in a string template: {m}."),
                                ));
                                    ok = false;
                                }
                            }
                        }
                    }
                    *strip_next = i.strip.strip_end();
                }
                Element::Directive(d) => match d.as_ref() {
                    Directive::If(d) => {
                        if d.if_expr.strip.strip_start() {
                            trim_end(out);
                        }
                        let cond = self.eval_in(&d.if_expr.cond_expr, bound, diags);
                        match convert(&cond, &Ty::Bool) {
                            Ok(V::Bool(true)) => {
                                *strip_next = d.if_expr.strip.strip_end();
                                ok &=
                                    self.render(&d.if_expr.template, out, strip_next, bound, diags);
                                let end =
                                    d.else_expr.as_ref().map_or(d.endif_expr.strip, |e| e.strip);
                                if end.strip_start() {
                                    trim_end(out);
                                }
                            }
                            Ok(V::Bool(false)) => {
                                if let Some(e) = &d.else_expr {
                                    *strip_next = e.strip.strip_end();
                                    ok &= self.render(&e.template, out, strip_next, bound, diags);
                                    if d.endif_expr.strip.strip_start() {
                                        trim_end(out);
                                    }
                                }
                            }
                            Ok(V::Unknown) => ok = false,
                            _ => {
                                diags.push(self.diag(
                                    span_of(&d.if_expr.cond_expr),
                                    "Invalid 'if' condition",
                                    "The 'if' condition must be a bool value.",
                                ));
                                ok = false;
                            }
                        }
                        *strip_next = d.endif_expr.strip.strip_end();
                    }
                    Directive::For(d) => {
                        if d.for_expr.strip.strip_start() {
                            trim_end(out);
                        }
                        let coll = self.eval_in(&d.for_expr.collection_expr, bound, diags);
                        let Some(items) =
                            self.items(&coll, span_of(&d.for_expr.collection_expr), diags)
                        else {
                            ok = false;
                            continue;
                        };
                        for (k, v) in items {
                            let n = bound.len();
                            if let Some(kv) = &d.for_expr.key_var {
                                bound.push((kv.as_str().to_string(), k));
                            }
                            bound.push((d.for_expr.value_var.as_str().to_string(), v));
                            *strip_next = d.for_expr.strip.strip_end();
                            ok &= self.render(&d.for_expr.template, out, strip_next, bound, diags);
                            if d.endfor_expr.strip.strip_start() {
                                trim_end(out);
                            }
                            bound.truncate(n);
                        }
                        *strip_next = d.endfor_expr.strip.strip_end();
                    }
                },
            }
        }
        ok
    }

    /// The key/value pairs a `for` iterates over.
    fn items(&self, coll: &V, span: Span, diags: &mut Vec<Diag>) -> Option<Vec<(V, V)>> {
        match coll {
            V::List(l) => Some(
                l.iter()
                    .enumerate()
                    .map(|(i, v)| (V::Num(i as f64), v.clone()))
                    .collect(),
            ),
            V::Map(m) => Some(
                m.iter()
                    .map(|(k, v)| (V::Str(k.clone()), v.clone()))
                    .collect(),
            ),
            V::Unknown => None,
            other => {
                diags.push(self.diag(
                    span,
                    "Iteration over non-iterable value",
                    format!(
                        "A value of type {} cannot be used as the collection in a 'for' expression.",
                        other.kind()
                    ),
                ));
                None
            }
        }
    }

    fn for_expr(
        &self,
        f: &::hcl::edit::expr::ForExpr,
        full: Span,
        bound: &mut Vec<(String, V)>,
        diags: &mut Vec<Diag>,
    ) -> V {
        let coll = self.eval_in(&f.intro.collection_expr, bound, diags);
        let Some(items) = self.items(&coll, span_of(&f.intro.collection_expr), diags) else {
            return V::Unknown;
        };
        let mut list = Vec::new();
        let mut map: BTreeMap<String, V> = BTreeMap::new();
        for (k, v) in items {
            let n = bound.len();
            if let Some(kv) = &f.intro.key_var {
                bound.push((kv.as_str().to_string(), k));
            }
            bound.push((f.intro.value_var.as_str().to_string(), v));
            let keep = match &f.cond {
                None => true,
                Some(c) => match self.eval_in(&c.expr, bound, diags) {
                    V::Bool(b) => b,
                    V::Unknown => {
                        bound.truncate(n);
                        return V::Unknown;
                    }
                    _ => {
                        diags.push(self.diag(
                            span_of(&c.expr),
                            "Invalid 'for' condition",
                            "The 'if' clause value must be a bool.",
                        ));
                        bound.truncate(n);
                        return V::Unknown;
                    }
                },
            };
            if keep {
                let val = self.eval_in(&f.value_expr, bound, diags);
                match &f.key_expr {
                    None => list.push(val),
                    Some(ke) => {
                        let key = self.eval_in(ke, bound, diags);
                        let Ok(key) = template_text(&key) else {
                            diags.push(self.diag(
                                span_of(ke),
                                "Invalid object key",
                                "Key expression in 'for' expression must be a string.",
                            ));
                            bound.truncate(n);
                            return V::Unknown;
                        };
                        if f.grouping {
                            match map.entry(key).or_insert_with(|| V::List(Vec::new())) {
                                V::List(g) => g.push(val),
                                other => *other = V::List(vec![val]),
                            }
                        } else if map.insert(key.clone(), val).is_some() {
                            diags.push(self.diag(
                                full.clone(),
                                "Duplicate object key",
                                format!("Two different items produced the key {key:?} in this 'for' expression. If duplicates are expected, use the ellipsis (...) after the value expression to enable grouping by key."),
                            ));
                            bound.truncate(n);
                            return V::Unknown;
                        }
                    }
                }
            }
            bound.truncate(n);
        }
        if f.key_expr.is_some() {
            V::Map(map)
        } else {
            V::List(list)
        }
    }

    /// `var.x`, `local.y[0]`, a `for` variable, or an unknown name passed through.
    fn traversal(&self, e: &Expression, bound: &mut Vec<(String, V)>, diags: &mut Vec<Diag>) -> V {
        let (root, ops): (&Expression, &[_]) = match e {
            Expression::Traversal(t) => (&t.expr, t.operators.as_slice()),
            other => (other, &[]),
        };
        let Expression::Variable(name) = root else {
            let v = self.eval_in(root, bound, diags);
            return self.apply(v, ops, bound, diags);
        };
        let name_str = name.as_str();
        if let Some((_, v)) = bound.iter().rev().find(|(n, _)| n == name_str) {
            let v = v.clone();
            return self.apply(v, ops, bound, diags);
        }
        let known = match name_str {
            "var" => self.vars,
            "local" => self.locals,
            _ => None,
        };
        if let Some(m) = known {
            return self.apply(V::Map(m.clone()), ops, bound, diags);
        }
        if self.vars.is_none() && !self.passthrough {
            diags.push(self.diag(
                span_of(root),
                "Variables not allowed",
                "Variables may not be used here.",
            ));
            return V::Unknown;
        }
        if !self.passthrough {
            diags.push(self.diag(
                span_of(root),
                "Unknown variable",
                format!("There is no variable named {name_str:?}."),
            ));
            return V::Unknown;
        }
        // Nomad hands names it does not know back as `${...}` text: the static part of
        // the traversal (attributes and literal indexes).
        let stat = ops
            .iter()
            .take_while(|op| match op.value() {
                TraversalOperator::GetAttr(_) | TraversalOperator::LegacyIndex(_) => true,
                TraversalOperator::Index(ix) => {
                    matches!(ix, Expression::Number(_) | Expression::String(_))
                }
                _ => false,
            })
            .count();
        let end = ops[..stat]
            .last()
            .map_or(span_of(root).end, |op| span_of(op).end);
        let text = self.passthrough_text(span_of(root).start..end);
        self.apply(V::Str(text), &ops[stat..], bound, diags)
    }

    /// `${name}` for an unknown traversal, keeping the spaces of an enclosing `${ ... }`.
    fn passthrough_text(&self, span: Span) -> String {
        let body = self.src.as_bytes();
        let (start, end) = (span.start, span.end.min(body.len()));
        let mut v = self.src.get(start..end).unwrap_or_default().to_string();
        let mut bracketed = false;
        let mut i = start;
        while i >= 2 {
            i -= 1;
            if body[i] == b'{' && body[i - 1] == b'$' {
                bracketed = true;
                v = format!("{}{v}", self.src.get(i - 1..start).unwrap_or("${"));
                break;
            } else if body[i] != b' ' {
                break;
            }
        }
        if !bracketed {
            return format!("${{{v}}}");
        }
        let mut j = end + 1;
        while j < body.len() {
            if body[j] == b'}' {
                v.push_str(self.src.get(end..j).unwrap_or("}"));
            } else if body[j] != b' ' {
                v.push('}');
                break;
            }
            j += 1;
        }
        v
    }

    fn apply(
        &self,
        mut v: V,
        ops: &[::hcl::edit::Decorated<TraversalOperator>],
        bound: &mut Vec<(String, V)>,
        diags: &mut Vec<Diag>,
    ) -> V {
        for (i, op) in ops.iter().enumerate() {
            let at = span_of(op);
            v = match (op.value(), v) {
                (_, V::Unknown) => return V::Unknown,
                (TraversalOperator::GetAttr(name), V::Map(m)) => match m.get(name.as_str()) {
                    Some(x) => x.clone(),
                    None => {
                        diags.push(self.diag(
                            at,
                            "Unsupported attribute",
                            format!(
                                "This object does not have an attribute named {:?}.",
                                name.as_str()
                            ),
                        ));
                        return V::Unknown;
                    }
                },
                (TraversalOperator::GetAttr(_), V::Null) => {
                    diags.push(self.diag(
                        at,
                        "Attempt to get attribute from null value",
                        "This value is null, so it does not have any attributes.",
                    ));
                    return V::Unknown;
                }
                (TraversalOperator::GetAttr(_), _) => {
                    diags.push(self.diag(
                        at,
                        "Unsupported attribute",
                        "This value does not have any attributes.",
                    ));
                    return V::Unknown;
                }
                (TraversalOperator::Index(ix), coll) => {
                    let key = self.eval_in(ix, bound, diags);
                    if matches!(key, V::Unknown) {
                        return V::Unknown;
                    }
                    match index(&coll, &key) {
                        Ok(x) => x,
                        Err(why) => {
                            diags.push(self.diag(
                                at,
                                "Invalid index",
                                format!("The given key does not identify an element in this collection value{why}."),
                            ));
                            return V::Unknown;
                        }
                    }
                }
                (TraversalOperator::LegacyIndex(n), coll) => {
                    match index(&coll, &V::Num(*n.value() as f64)) {
                        Ok(x) => x,
                        Err(why) => {
                            diags.push(self.diag(
                                at,
                                "Invalid index",
                                format!("The given key does not identify an element in this collection value{why}."),
                            ));
                            return V::Unknown;
                        }
                    }
                }
                (TraversalOperator::AttrSplat(_) | TraversalOperator::FullSplat(_), coll) => {
                    // The rest of the traversal applies to every element.
                    let rest = &ops[i + 1..];
                    let items = match coll {
                        V::List(l) => l,
                        V::Null => Vec::new(),
                        other => vec![other],
                    };
                    return V::List(
                        items
                            .into_iter()
                            .map(|x| self.apply(x, rest, bound, diags))
                            .collect(),
                    );
                }
            };
        }
        v
    }

    fn call(
        &self,
        f: &FuncCall,
        full: Span,
        bound: &mut Vec<(String, V)>,
        diags: &mut Vec<Diag>,
    ) -> V {
        if self.vars.is_none() && !self.passthrough {
            diags.push(self.diag(
                full,
                "Function calls not allowed",
                "Functions may not be called here.",
            ));
            return V::Unknown;
        }
        let name = f.name.name.as_str();
        let at = call_span(f);
        if !f.name.namespace.is_empty() || !super::funcs::NOMAD_FUNCTIONS.contains(&name) {
            diags.push(self.diag(
                span_of(&f.name.name),
                "Call to unknown function",
                format!("There is no function named {name:?}."),
            ));
            return V::Unknown;
        }
        let mut args: Vec<V> = f
            .args
            .iter()
            .map(|a| self.eval_in(a, bound, diags))
            .collect();
        if f.args.expand_final() {
            match args.pop() {
                Some(V::List(l)) => args.extend(l),
                Some(V::Unknown) => return V::Unknown,
                Some(_) | None => {
                    diags.push(self.diag(
                        at,
                        "Invalid expanding argument value",
                        "The expanding argument (indicated by ...) must be of a tuple, list, or set type.",
                    ));
                    return V::Unknown;
                }
            }
        }
        if args.iter().any(|a| matches!(a, V::Unknown)) {
            return V::Unknown;
        }
        match super::funcs::call(name, &args) {
            Ok(v) => v,
            Err(super::funcs::CallError::Unsupported) => {
                diags.push(self.diag(
                    span_of(&f.name.name),
                    "Call to unknown function",
                    format!("nomad-sim does not implement the function {name:?} (Nomad has it)."),
                ));
                V::Unknown
            }
            Err(super::funcs::CallError::Arg(i, param, m)) => {
                let at = f.args.iter().nth(i).map_or(at, span_of);
                diags.push(self.diag(
                    at,
                    "Invalid function argument",
                    format!("Invalid value for {param:?} parameter: {m}."),
                ));
                V::Unknown
            }
            Err(super::funcs::CallError::Failed(m)) => {
                diags.push(self.diag(
                    at,
                    "Error in function call",
                    format!("Call to function {name:?} failed: {m}."),
                ));
                V::Unknown
            }
        }
    }
}

fn trim_end(s: &mut String) {
    let n = s.trim_end().len();
    s.truncate(n);
}

/// `coll[key]`; the error is what follows Nomad's "does not identify an element".
fn index(coll: &V, key: &V) -> Result<V, String> {
    match coll {
        V::List(l) => {
            let n = match convert(key, &Ty::Num) {
                Ok(V::Num(n)) => n,
                Ok(_) => return Err(String::new()),
                Err(m) => return Err(format!(": {m}")),
            };
            if n.fract() != 0.0 || n < 0.0 {
                return Err(String::new());
            }
            l.get(n as usize).cloned().ok_or_default()
        }
        V::Map(m) => {
            let k = template_text(key).map_err(|m| format!(": {m}"))?;
            m.get(&k).cloned().ok_or_default()
        }
        _ => Err(String::new()),
    }
}

trait OkOrDefault<T> {
    fn ok_or_default(self) -> Result<T, String>;
}

impl<T> OkOrDefault<T> for Option<T> {
    fn ok_or_default(self) -> Result<T, String> {
        self.ok_or_else(String::new)
    }
}

/// Whether the text of a number is a whole number (for `count = 1.0`).
pub(crate) fn whole(n: f64) -> Option<i64> {
    (n.fract() == 0.0 && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&n))
        .then_some(n as i64)
}
