//! A jobspec's input variables and locals: `variable "name" { type, default,
//! description, validation }` blocks, `variables { name = default }` blocks, `locals {}`,
//! and the values of a var file (`Variables` of the parse request, Nomad 1.6 and later).
//! Every declared variable must end up with a value, used or not.

use std::collections::BTreeMap;

use ::hcl::edit::expr::{Expression, ObjectKey};
use ::hcl::edit::structure::{Attribute, Block, Body, Structure};

use super::diag::{Diag, Lines, Span, Text, suggestion};
use super::eval::{Scope, span_of};
use super::value::{Ty, V, convert};

/// The evaluated inputs of a jobspec.
#[derive(Default)]
pub(crate) struct Inputs {
    pub vars: BTreeMap<String, V>,
    pub locals: BTreeMap<String, V>,
}

struct Assigned {
    value: V,
    from: &'static str,
    at: Option<(Text, Span)>,
}

struct Validation<'b> {
    condition: Option<&'b Expression>,
    message: String,
    def: Span,
}

struct Var<'b> {
    name: String,
    ty: Ty,
    value: Option<Assigned>,
    validations: Vec<Validation<'b>>,
}

/// Whether `name` is an HCL identifier (letters, digits, `_`, `-`; no digit first).
fn valid_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_' || c == '-')
}

/// The type constraint written in a variable's `type` argument.
pub(crate) fn type_expr(e: &Expression) -> Result<Ty, Diag> {
    let invalid = |span: Span, detail: String| Diag::at(span, "Invalid type specification", detail);
    match e {
        Expression::Variable(id) => match id.as_str() {
            "string" => Ok(Ty::Str),
            "number" => Ok(Ty::Num),
            "bool" => Ok(Ty::Bool),
            "any" => Err(invalid(
                span_of(e),
                "The keyword \"any\" cannot be used in this type specification: an exact type is required.".into(),
            )),
            "list" | "map" | "set" => Err(invalid(
                span_of(e),
                format!(
                    "The {} type constructor requires one argument specifying the element type.",
                    id.as_str()
                ),
            )),
            "object" => Err(invalid(
                span_of(e),
                "The object type constructor requires one argument specifying the attribute types as an object.".into(),
            )),
            "tuple" => Err(invalid(
                span_of(e),
                "The tuple type constructor requires one argument specifying the element types as a list.".into(),
            )),
            other => Err(invalid(
                span_of(e),
                format!("The keyword {other:?} is not a valid type specification."),
            )),
        },
        Expression::FuncCall(f) if f.name.namespace.is_empty() => {
            let name = f.name.name.as_str();
            let args: Vec<&Expression> = f.args.iter().collect();
            match (name, args.as_slice()) {
                ("list", [a]) => Ok(Ty::List(Box::new(type_expr(a)?))),
                ("set", [a]) => Ok(Ty::Set(Box::new(type_expr(a)?))),
                ("map", [a]) => Ok(Ty::Map(Box::new(type_expr(a)?))),
                ("object", [Expression::Object(o)]) => {
                    let mut attrs = BTreeMap::new();
                    for (k, v) in o.iter() {
                        let key = match k {
                            ObjectKey::Ident(i) => i.as_str().to_string(),
                            ObjectKey::Expression(Expression::Variable(i)) => i.as_str().to_string(),
                            ObjectKey::Expression(ke) => {
                                return Err(invalid(
                                    span_of(ke),
                                    "Object constructor map keys must be attribute names.".into(),
                                ));
                            }
                        };
                        attrs.insert(key, type_expr(v.expr())?);
                    }
                    Ok(Ty::Object(attrs))
                }
                ("tuple", [Expression::Array(a)]) => Ok(Ty::Tuple(
                    a.iter().map(type_expr).collect::<Result<_, _>>()?,
                )),
                ("list" | "map" | "set", _) => Err(invalid(
                    args.get(1).map_or(span_of(e), |a| span_of(*a)),
                    format!(
                        "The {name} type constructor requires one argument specifying the element type."
                    ),
                )),
                ("object", _) => Err(invalid(
                    span_of(e),
                    "The object type constructor requires one argument specifying the attribute types as an object.".into(),
                )),
                ("tuple", _) => Err(invalid(
                    span_of(e),
                    "The tuple type constructor requires one argument specifying the element types as a list.".into(),
                )),
                _ => Err(invalid(
                    span_of(e),
                    format!("Keyword {name:?} is not a valid type constructor."),
                )),
            }
        }
        _ => Err(invalid(
            span_of(e),
            "A type specification is either a primitive type keyword (bool, number, string) or a complex type constructor call, like list(string).".into(),
        )),
    }
}

fn unsupported_arg(a: &Attribute, known: &[&str], set: &[&str]) -> Diag {
    let key = a.key.as_str();
    let hint = suggestion(key, known.iter().copied().filter(|k| !set.contains(k)));
    Diag::at(
        span_of(&a.key),
        "Unsupported argument",
        format!("An argument named {key:?} is not expected here.{hint}"),
    )
}

fn unsupported_block(b: &Block, known: &[&str]) -> Diag {
    let kind = b.ident.as_str();
    let hint = suggestion(kind, known.iter().copied());
    Diag::at(
        span_of(&b.ident),
        "Unsupported block type",
        format!("Blocks of type {kind:?} are not expected here.{hint}"),
    )
}

/// Blocks in a body that takes attributes only (`variables`, `locals`, a var file).
fn no_blocks(body: &Body, diags: &mut Vec<Diag>) {
    for b in body.blocks() {
        diags.push(Diag::at(
            span_of(&b.ident),
            format!("Unexpected {:?} block", b.ident.as_str()),
            "Blocks are not allowed here.",
        ));
    }
}

/// A `variable "name" { ... }` block.
fn variable_block<'b>(b: &'b Block, src: &str, vars: &mut Vec<Var<'b>>, diags: &mut Vec<Diag>) {
    let Some(label) = b.labels.first() else {
        return;
    };
    let name = label.as_str().to_string();
    if vars.iter().any(|v| v.name == name) {
        diags.push(Diag::nowhere(
            "Duplicate variable",
            format!("Duplicate {name} variable definition found."),
        ));
        return;
    }
    const ATTRS: &[&str] = &["default", "description", "type"];
    let set: Vec<&str> = b.body.attributes().map(|a| a.key.as_str()).collect();
    let mut seen: Vec<&str> = Vec::new();
    let (mut ty_attr, mut default, mut description) = (None, None, None);
    for s in b.body.iter() {
        match s {
            Structure::Attribute(a) => match a.key.as_str() {
                "type" => ty_attr = Some(a),
                "default" => default = Some(a),
                "description" => description = Some(a),
                _ => {
                    let known: Vec<&str> = ATTRS
                        .iter()
                        .copied()
                        .filter(|k| !seen.contains(k))
                        .collect();
                    diags.push(unsupported_arg(a, &known, &set));
                }
            },
            Structure::Block(v) if v.ident.as_str() == "validation" => {
                if let Some(l) = v.labels.first() {
                    diags.push(Diag::at(
                        span_of(l),
                        "Extraneous label for validation",
                        "No labels are expected for validation blocks.",
                    ));
                }
            }
            Structure::Block(other) => diags.push(unsupported_block(other, &["validation"])),
        }
        if let Structure::Attribute(a) = s {
            seen.push(a.key.as_str());
        }
    }
    if !valid_identifier(&name) {
        diags.push(Diag::at(
            span_of(label),
            "Invalid variable name",
            "A name must start with a letter or underscore and may contain only letters, digits, underscores, and dashes.",
        ));
    }
    let constant = Scope::constant(src, Text::Job);
    if let Some(d) = description {
        let v = constant.eval(&d.value, diags);
        if !matches!(convert(&v, &Ty::Str), Ok(V::Str(_) | V::Null | V::Unknown)) {
            diags.push(Diag::at(
                span_of(&d.value),
                "Unsuitable value type",
                "Unsuitable value: string required",
            ));
        }
    }
    let mut ty = None;
    if let Some(t) = ty_attr {
        match type_expr(&t.value) {
            Ok(t) => ty = Some(t),
            Err(d) => {
                diags.push(d);
                return;
            }
        }
    }
    let mut value = None;
    if let Some(d) = default {
        let mut errs = Vec::new();
        let mut v = constant.eval(&d.value, &mut errs);
        if !errs.is_empty() {
            diags.extend(errs);
            return;
        }
        if let Some(t) = &ty {
            match convert(&v, t) {
                Ok(c) => v = c,
                Err(m) => {
                    diags.push(Diag::at(
                        span_of(&d.value),
                        "Invalid default value for variable",
                        format!("This default value is not compatible with the variable's type constraint: {m}."),
                    ));
                    v = V::Unknown;
                }
            }
        }
        if ty.is_none() {
            ty = Some(v.implied_type());
        }
        value = Some(Assigned {
            value: v,
            from: "default",
            at: Some((Text::Job, span_of(&d.value))),
        });
    }
    let validations = b
        .body
        .blocks()
        .filter(|v| v.ident.as_str() == "validation")
        .map(|v| validation(v, &name, src, diags))
        .collect();
    vars.push(Var {
        name,
        ty: ty.unwrap_or(Ty::Any),
        value,
        validations,
    });
}

/// The references (`root.attr` traversals and bare names) in an expression, with
/// their places; names bound by `for` inside it are not references.
fn references(
    e: &Expression,
    bound: &mut Vec<String>,
    out: &mut Vec<(String, Option<String>, Span)>,
) {
    use ::hcl::edit::expr::TraversalOperator as Op;
    use ::hcl::edit::template::{Directive, Element, Template};
    fn template(
        t: &Template,
        bound: &mut Vec<String>,
        out: &mut Vec<(String, Option<String>, Span)>,
    ) {
        for el in t.iter() {
            match el {
                Element::Literal(_) => {}
                Element::Interpolation(i) => references(&i.expr, bound, out),
                Element::Directive(d) => match d.as_ref() {
                    Directive::If(d) => {
                        references(&d.if_expr.cond_expr, bound, out);
                        template(&d.if_expr.template, bound, out);
                        if let Some(e) = &d.else_expr {
                            template(&e.template, bound, out);
                        }
                    }
                    Directive::For(d) => {
                        references(&d.for_expr.collection_expr, bound, out);
                        let n = bound.len();
                        bound.extend(d.for_expr.key_var.iter().map(|k| k.as_str().to_string()));
                        bound.push(d.for_expr.value_var.as_str().to_string());
                        template(&d.for_expr.template, bound, out);
                        bound.truncate(n);
                    }
                },
            }
        }
    }
    match e {
        Expression::Variable(v) => {
            if !bound.iter().any(|b| b == v.as_str()) {
                out.push((v.as_str().to_string(), None, span_of(e)));
            }
        }
        Expression::Traversal(t) => {
            if let Expression::Variable(v) = &t.expr {
                if !bound.iter().any(|b| b == v.as_str()) {
                    let attr = t.operators.first().and_then(|op| match op.value() {
                        Op::GetAttr(a) => Some(a.as_str().to_string()),
                        _ => None,
                    });
                    out.push((v.as_str().to_string(), attr, span_of(e)));
                }
            } else {
                references(&t.expr, bound, out);
            }
            for op in t.operators.iter() {
                if let Op::Index(ix) = op.value() {
                    references(ix, bound, out);
                }
            }
        }
        Expression::Array(a) => a.iter().for_each(|x| references(x, bound, out)),
        Expression::Object(o) => {
            for (k, v) in o.iter() {
                if let ObjectKey::Expression(k) = k {
                    references(k, bound, out);
                }
                references(v.expr(), bound, out);
            }
        }
        Expression::StringTemplate(t) => template(t, bound, out),
        Expression::HeredocTemplate(h) => template(&h.template, bound, out),
        Expression::Parenthesis(p) => references(p.inner(), bound, out),
        Expression::FuncCall(f) => f.args.iter().for_each(|x| references(x, bound, out)),
        Expression::Conditional(c) => {
            references(&c.cond_expr, bound, out);
            references(&c.true_expr, bound, out);
            references(&c.false_expr, bound, out);
        }
        Expression::UnaryOp(u) => references(&u.expr, bound, out),
        Expression::BinaryOp(b) => {
            references(&b.lhs_expr, bound, out);
            references(&b.rhs_expr, bound, out);
        }
        Expression::ForExpr(f) => {
            references(&f.intro.collection_expr, bound, out);
            let n = bound.len();
            bound.extend(f.intro.key_var.iter().map(|k| k.as_str().to_string()));
            bound.push(f.intro.value_var.as_str().to_string());
            if let Some(k) = &f.key_expr {
                references(k, bound, out);
            }
            references(&f.value_expr, bound, out);
            if let Some(c) = &f.cond {
                references(&c.expr, bound, out);
            }
            bound.truncate(n);
        }
        Expression::Null(_)
        | Expression::Bool(_)
        | Expression::Number(_)
        | Expression::String(_) => {}
    }
}

/// A `validation { condition, error_message }` block of variable `name`.
fn validation<'b>(v: &'b Block, name: &str, src: &str, diags: &mut Vec<Diag>) -> Validation<'b> {
    let mut out = Validation {
        condition: None,
        message: String::new(),
        def: span_of(&v.ident),
    };
    const ARGS: &[&str] = &["condition", "error_message"];
    let set: Vec<&str> = v.body.attributes().map(|a| a.key.as_str()).collect();
    for s in v.body.iter() {
        match s {
            Structure::Attribute(a) if ARGS.contains(&a.key.as_str()) => {}
            Structure::Attribute(a) => diags.push(unsupported_arg(a, ARGS, &set)),
            Structure::Block(b) => diags.push(unsupported_block(b, &[])),
        }
    }
    // Nomad places a missing argument at the block's opening brace, zero wide.
    let from = span_of(&v.ident).end;
    let brace = src
        .get(from..)
        .and_then(|r| r.find('{'))
        .map_or(from, |i| from + i);
    for required in ARGS {
        if !set.contains(required) {
            diags.push(Diag::at(
                brace..brace,
                "Missing required argument",
                format!("The argument {required:?} is required, but no definition was found."),
            ));
        }
    }
    if let Some(a) = v.body.get_attribute("condition") {
        out.condition = Some(&a.value);
        let mut refs = Vec::new();
        references(&a.value, &mut Vec::new(), &mut refs);
        let mut good = 0;
        for (root, attr, at) in refs {
            if root == "var" && attr.as_deref() == Some(name) {
                good += 1;
            } else {
                diags.push(Diag::at(
                    at,
                    "Invalid reference in variable validation",
                    format!("The condition for variable {name:?} can only refer to the variable itself, using var.{name}."),
                ));
            }
        }
        if good == 0 {
            diags.push(Diag::at(
                span_of(&a.value),
                "Invalid variable validation condition",
                format!("The condition for variable {name:?} must refer to var.{name} in order to test incoming values."),
            ));
        }
    }
    if let Some(a) = v.body.get_attribute("error_message") {
        match Scope::constant(src, Text::Job).eval(&a.value, diags) {
            V::Str(m) => {
                let first_ok = m
                    .chars()
                    .next()
                    .is_some_and(|c| !c.is_alphabetic() || c.is_uppercase());
                if m.is_empty() {
                    diags.push(Diag::at(
                        span_of(&a.value),
                        "Invalid validation error message",
                        "An empty string is not a valid nor useful error message.",
                    ));
                } else if !first_ok || !m.ends_with(['.', '?', '!']) {
                    diags.push(Diag::at(
                        span_of(&a.value),
                        "Invalid validation error message",
                        "Validation error message must be at least one full sentence starting with an uppercase letter ( if the alphabet permits it ) and ending with a period or question mark.",
                    ));
                }
                out.message = m;
            }
            V::Unknown => {}
            _ => diags.push(Diag::at(
                span_of(&a.value),
                "Unsuitable value type",
                "Unsuitable value: string required",
            )),
        }
    }
    out
}

/// Checks a variable's value against its `validation` blocks.
fn validate(var: &Var<'_>, lines: &Lines<'_>, src: &str, diags: &mut Vec<Diag>) {
    let Some(assigned) = &var.value else {
        return;
    };
    let vars: BTreeMap<String, V> = [(var.name.clone(), assigned.value.clone())].into();
    let scope = Scope {
        src,
        text: Text::Job,
        vars: Some(&vars),
        locals: None,
        passthrough: false,
    };
    for rule in &var.validations {
        let Some(cond) = rule.condition else {
            continue;
        };
        let mut errs = Vec::new();
        let result = scope.eval(cond, &mut errs);
        let failed = !errs.is_empty();
        diags.extend(errs);
        if failed {
            continue;
        }
        match convert(&result, &Ty::Bool) {
            Ok(V::Bool(true)) | Ok(V::Unknown) => {}
            Ok(V::Bool(false)) => {
                let mut d = Diag::nowhere(
                    format!("Invalid value for {} variable", assigned.from),
                    format!(
                        "{}\n\nThis was checked by the validation rule at {}.",
                        rule.message,
                        lines.range(&rule.def)
                    ),
                );
                d.at = assigned.at.clone().or(Some((Text::Job, rule.def.clone())));
                diags.push(d);
            }
            Ok(_) => diags.push(Diag::at(
                span_of(cond),
                "Invalid variable validation result",
                "Validation condition expression must return either true or false, not null.",
            )),
            Err(m) => diags.push(Diag::at(
                span_of(cond),
                "Invalid variable validation result",
                format!("Invalid validation condition result value: {m}."),
            )),
        }
    }
}

/// Decodes the inputs of a jobspec whose top level has been checked already. Problems
/// (and warnings) go to `diags`; the caller stops at the first error.
pub(crate) fn decode_inputs(
    body: &Body,
    src: &str,
    var_file: Option<(&Body, &str)>,
    diags: &mut Vec<Diag>,
) -> Inputs {
    let lines = Lines::new(src);
    let constant = Scope::constant(src, Text::Job);
    let mut vars: Vec<Var<'_>> = Vec::new();
    for b in body.blocks() {
        match b.ident.as_str() {
            "variable" => variable_block(b, src, &mut vars, diags),
            "variables" => {
                no_blocks(&b.body, diags);
                for a in b.body.attributes() {
                    let name = a.key.as_str().to_string();
                    if vars.iter().any(|v| v.name == name) {
                        diags.push(Diag::at(
                            span_of(&a.key),
                            "Duplicate variable",
                            format!("Duplicate {name} variable definition found."),
                        ));
                        continue;
                    }
                    let mut errs = Vec::new();
                    let v = constant.eval(&a.value, &mut errs);
                    if !errs.is_empty() {
                        diags.extend(errs);
                        continue;
                    }
                    vars.push(Var {
                        name,
                        ty: v.implied_type(),
                        value: Some(Assigned {
                            value: v,
                            from: "default",
                            at: Some((Text::Job, span_of(&a.value))),
                        }),
                        validations: Vec::new(),
                    });
                }
            }
            _ => {}
        }
    }

    // A name set again in a later `locals` block replaces the earlier one: Nomad 1.1
    // checks for duplicates among the locals evaluated so far, which is none yet.
    let mut locals: Vec<&Attribute> = Vec::new();
    for b in body.blocks().filter(|b| b.ident.as_str() == "locals") {
        no_blocks(&b.body, diags);
        locals.extend(b.body.attributes());
    }

    if let Some((file, file_src)) = var_file {
        var_file_values(file, file_src, &mut vars, diags);
    }

    for var in &vars {
        if var.value.is_none() {
            diags.push(Diag::nowhere(
                format!("Unset variable {:?}", var.name),
                "A used variable must be set or have a default value; see https://www.nomadproject.io/docs/job-specification/hcl2/variables for details.",
            ));
        } else {
            validate(var, &lines, src, diags);
        }
    }
    if diags.iter().any(|d| !d.warning) {
        return Inputs::default();
    }

    let mut inputs = Inputs {
        vars: vars
            .into_iter()
            .filter_map(|v| v.value.map(|a| (v.name, a.value)))
            .collect(),
        locals: BTreeMap::new(),
    };
    // Locals may use each other in any order: evaluate until no more succeed.
    let mut pending = locals;
    loop {
        let mut failed = Vec::new();
        let mut first_errors = None;
        let before = pending.len();
        for a in pending {
            let mut errs = Vec::new();
            let scope = Scope {
                src,
                text: Text::Job,
                vars: Some(&inputs.vars),
                locals: Some(&inputs.locals),
                passthrough: true,
            };
            let v = scope.eval(&a.value, &mut errs);
            if errs.is_empty() {
                inputs.locals.insert(a.key.as_str().to_string(), v);
            } else {
                first_errors.get_or_insert(errs);
                failed.push(a);
            }
        }
        if failed.is_empty() {
            break;
        }
        if failed.len() == before {
            diags.extend(first_errors.unwrap_or_default());
            break;
        }
        pending = failed;
    }
    inputs
}

/// The values of a var file: `name = value` lines for declared variables.
fn var_file_values(file: &Body, src: &str, vars: &mut [Var<'_>], diags: &mut Vec<Diag>) {
    let declared: Vec<&Block> = file
        .blocks()
        .filter(|b| b.ident.as_str() == "variable")
        .collect();
    if !declared.is_empty() {
        for b in declared {
            let name = b.labels.first().map(|l| l.as_str()).unwrap_or_default();
            diags.push(
                Diag::at(
                    span_of(&b.ident),
                    "Variable declaration in a .var file",
                    format!("Variables are declared in the job file; a var file only sets them, as `{name} = <value>`."),
                )
                .in_text(Text::Vars),
            );
        }
        return;
    }
    let mut errs = Vec::new();
    no_blocks(file, &mut errs);
    diags.extend(errs.into_iter().map(|d| d.in_text(Text::Vars)));
    let constant = Scope::constant(src, Text::Vars);
    for a in file.attributes() {
        let name = a.key.as_str();
        let Some(var) = vars.iter_mut().find(|v| v.name == name) else {
            // Nomad's parse endpoint is not strict: an unknown name only warns.
            let mut d = Diag::nowhere(
                "Undefined variable",
                format!(
                    "A {name:?} variable was set but was not found in known variables. To declare variable {name:?}, place this block in your job files"
                ),
            );
            d.warning = true;
            diags.push(d);
            continue;
        };
        let mut v = constant.eval(&a.value, diags);
        if var.ty != Ty::Any {
            match convert(&v, &var.ty) {
                Ok(c) => v = c,
                Err(m) => {
                    diags.push(
                        Diag::at(
                            span_of(&a.value),
                            "Invalid value for variable",
                            format!("The value for {name} is not compatible with the variable's type constraint: {m}."),
                        )
                        .in_text(Text::Vars),
                    );
                    v = V::Unknown;
                }
            }
        }
        var.value = Some(Assigned {
            value: v,
            from: "varfile",
            at: Some((Text::Vars, span_of(&a.value))),
        });
    }
}
