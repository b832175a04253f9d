//! The tree-walking evaluator.

use std::borrow::Cow;

use fhir_model::Definitions;
use serde_json::Value;

use crate::ast::{BinaryOp, Expr, Literal, UnaryOp};
use crate::context::EvalContext;
use crate::distinct::ItemSet;
use crate::error::{EvalError, EvalResult};
use crate::functions;
use crate::item::{Collection, Item, Node};
use crate::navigation;
use crate::ops;
use crate::types;

/// Deepest expression nesting evaluated (recursion guard).
pub const MAX_EVAL_DEPTH: usize = 256;

pub(crate) struct Evaluator<'c, 'a> {
    pub ctx: &'c EvalContext<'a>,
    pub defs: &'a Definitions,
    /// `%context`: the input.
    pub root: Collection<'a>,
    depth: usize,
    /// Expressions evaluated: the time budget is checked every 256.
    steps: u32,
}

/// The focus of an expression: `$this`, `$index`, `$total`.
#[derive(Clone, Copy)]
pub(crate) struct Env<'e, 'a> {
    pub this: &'e [Item<'a>],
    pub index: Option<i64>,
    pub total: Option<&'e [Item<'a>]>,
}

/// Three-valued Boolean of a collection used as a condition: empty is `None`, one
/// Boolean is its value, any other single item is `true`; several items are an error.
pub(crate) fn to_bool(c: &Collection, what: &str) -> EvalResult<Option<bool>> {
    match c.as_slice() {
        [] => Ok(None),
        [item] => match item.system() {
            Some(Item::Boolean(b)) => Ok(Some(b)),
            _ => Ok(Some(true)),
        },
        items => Err(EvalError::NotSingleton(what.to_string(), items.len())),
    }
}

pub(crate) fn bool_result<'a>(b: Option<bool>) -> Collection<'a> {
    match b {
        Some(b) => Collection::one(Item::Boolean(b)),
        None => Collection::new(),
    }
}

impl<'c, 'a> Evaluator<'c, 'a> {
    pub fn new(ctx: &'c EvalContext<'a>, root: Collection<'a>) -> Self {
        Evaluator {
            ctx,
            defs: ctx.defs,
            root,
            depth: 0,
            steps: 0,
        }
    }

    pub fn eval(&mut self, e: &Expr, env: &Env<'_, 'a>) -> EvalResult<Collection<'a>> {
        self.steps = self.steps.wrapping_add(1);
        if self.steps.is_multiple_of(256) && fhir_model::budget::expired() {
            return Err(EvalError::OutOfTime);
        }
        self.depth += 1;
        if self.depth > MAX_EVAL_DEPTH {
            self.depth -= 1;
            return Err(EvalError::TooDeep(MAX_EVAL_DEPTH));
        }
        let r = self.eval_inner(e, env);
        self.depth -= 1;
        r
    }

    fn eval_inner(&mut self, e: &Expr, env: &Env<'_, 'a>) -> EvalResult<Collection<'a>> {
        match e {
            Expr::Literal(l) => Ok(literal(l)),
            Expr::This => Ok(Collection(env.this.to_vec())),
            Expr::IndexVar => Ok(env
                .index
                .map(|i| Collection::one(Item::Integer(i)))
                .unwrap_or_default()),
            Expr::Total => Ok(env
                .total
                .map(|t| Collection(t.to_vec()))
                .unwrap_or_default()),
            Expr::Env(name) => self.env_var(name),
            Expr::Ident(name) => {
                let mut out = Vec::new();
                let type_like = name.starts_with(|c: char| c.is_ascii_uppercase())
                    && self.defs.type_def(name).is_some();
                for item in env.this {
                    if type_like {
                        if let Item::Node(n) = item {
                            if n.type_name.is_some_and(|t| self.is_a(t, name)) {
                                out.push(item.clone());
                            }
                        }
                        continue;
                    }
                    self.member(item, name, &mut out)?;
                }
                Ok(Collection(out))
            }
            Expr::Member(target, name) => {
                let input = self.eval(target, env)?;
                let mut out = Vec::new();
                for item in input.iter() {
                    self.member(item, name, &mut out)?;
                }
                Ok(Collection(out))
            }
            Expr::Index(target, index) => {
                let input = self.eval(target, env)?;
                let idx = self.eval(index, env)?;
                let i = match idx.as_slice() {
                    [] => return Ok(Collection::new()),
                    [item] => match item.system() {
                        Some(Item::Integer(i)) => i,
                        _ => return Err(EvalError::Type("an index must be an Integer".into())),
                    },
                    items => return Err(EvalError::NotSingleton("index".into(), items.len())),
                };
                Ok(usize::try_from(i)
                    .ok()
                    .and_then(|i| input.0.into_iter().nth(i))
                    .map(Collection::one)
                    .unwrap_or_default())
            }
            Expr::Call {
                target,
                func,
                args,
                type_arg,
                pos: _,
            } => {
                let input = match target {
                    Some(t) => self.eval(t, env)?,
                    None => Collection(env.this.to_vec()),
                };
                functions::call(
                    self,
                    *func,
                    input,
                    args,
                    type_arg.as_ref(),
                    env,
                    target.is_some(),
                )
            }
            Expr::Unary(op, operand) => {
                let v = self.eval(operand, env)?;
                match v.as_slice() {
                    [] => Ok(v),
                    [item] => {
                        let r = match (op, item.system()) {
                            (
                                UnaryOp::Plus,
                                Some(i @ (Item::Integer(_) | Item::Decimal(_) | Item::Quantity(_))),
                            ) => i,
                            (UnaryOp::Minus, Some(Item::Integer(i))) => {
                                Item::Integer(i.checked_neg().ok_or(EvalError::Overflow)?)
                            }
                            (UnaryOp::Minus, Some(Item::Decimal(d))) => Item::Decimal(-d),
                            (UnaryOp::Minus, Some(Item::Quantity(mut q))) => {
                                q.value = -q.value;
                                Item::Quantity(q)
                            }
                            _ => {
                                return Err(EvalError::Type(
                                    "unary sign needs a number or a quantity".into(),
                                ))
                            }
                        };
                        Ok(Collection::one(r))
                    }
                    items => Err(EvalError::NotSingleton(
                        "unary operator".into(),
                        items.len(),
                    )),
                }
            }
            Expr::Binary(op, l, r) => self.binary(*op, l, r, env),
            Expr::Is(operand, spec) => {
                let v = self.eval(operand, env)?;
                let t = types::resolve(self.defs, spec)?;
                match v.as_slice() {
                    [] if self.ctx.empty_tests_false => Ok(Collection::one(Item::Boolean(false))),
                    [] => Ok(v),
                    [item] => Ok(Collection::one(Item::Boolean(types::item_is(
                        self.defs, item, &t, false,
                    )))),
                    items => Err(EvalError::NotSingleton("is".into(), items.len())),
                }
            }
            Expr::As(operand, spec) => {
                let v = self.eval(operand, env)?;
                let t = types::resolve(self.defs, spec)?;
                Ok(v.into_iter()
                    .filter(|i| types::item_is(self.defs, i, &t, true))
                    .collect())
            }
        }
    }

    /// Whether type `t` is `name` or derives from it. Concrete resource types have no
    /// descendants, which spares the walk up the hierarchy in long unions
    /// (`AllergyIntolerance.code | Condition.code | Observation.code…`).
    fn is_a(&self, t: &str, name: &str) -> bool {
        t == name || (!self.defs.is_resource_type(name) && self.defs.is_subtype(t, name))
    }

    /// Navigates from one item to its children called `name`.
    pub fn member(&self, item: &Item<'a>, name: &str, out: &mut Vec<Item<'a>>) -> EvalResult<()> {
        match item {
            Item::Node(n) => navigation::child(self.defs, n, name, self.ctx.lenient_choice, out),
            Item::Type {
                namespace,
                name: tn,
            } => {
                match name {
                    "namespace" => out.push(Item::String(Cow::Borrowed(namespace))),
                    "name" => out.push(Item::String(tn.clone())),
                    _ => {}
                }
                Ok(())
            }
            Item::Quantity(q) => {
                match name {
                    "value" => out.push(Item::Decimal(q.value)),
                    "unit" | "code" => out.push(Item::String(Cow::Owned(q.unit.clone()))),
                    _ => {}
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn env_var(&self, name: &str) -> EvalResult<Collection<'a>> {
        if let Some(v) = self.ctx.variables.get(name) {
            return Ok(v.clone());
        }
        let s = |v: String| Ok(Collection::one(Item::String(Cow::Owned(v))));
        match name {
            "context" => Ok(self.root.clone()),
            "resource" => Ok(self.resource()),
            "rootResource" => Ok(match self.ctx.root_resource {
                Some(r) => Collection::from_json(self.defs, r),
                None => self.resource(),
            }),
            "ucum" => s("http://unitsofmeasure.org".into()),
            "sct" => s("http://snomed.info/sct".into()),
            "loinc" => s("http://loinc.org".into()),
            _ => {
                if let Some(vs) = name.strip_prefix("vs-") {
                    return s(format!("http://hl7.org/fhir/ValueSet/{vs}"));
                }
                if let Some(ext) = name.strip_prefix("ext-") {
                    return s(format!("http://hl7.org/fhir/StructureDefinition/{ext}"));
                }
                Err(EvalError::UnknownVariable(name.to_string()))
            }
        }
    }

    pub fn resource(&self) -> Collection<'a> {
        match self.ctx.resource {
            Some(r) => Collection::from_json(self.defs, r),
            None => self.root.clone(),
        }
    }

    pub fn root_resource_value(&self) -> Option<&'a Value> {
        self.ctx
            .root_resource
            .or(self.ctx.resource)
            .or_else(|| match self.root.first() {
                Some(Item::Node(Node { value: Some(v), .. })) => Some(*v),
                _ => None,
            })
    }

    fn binary(
        &mut self,
        op: BinaryOp,
        l: &Expr,
        r: &Expr,
        env: &Env<'_, 'a>,
    ) -> EvalResult<Collection<'a>> {
        use BinaryOp::*;
        let left = self.eval(l, env)?;
        match op {
            And | Or | Implies => {
                let a = to_bool(&left, "boolean operator")?;
                match (op, a) {
                    (And, Some(false)) => return Ok(bool_result(Some(false))),
                    (Or, Some(true)) => return Ok(bool_result(Some(true))),
                    (Implies, Some(false)) => return Ok(bool_result(Some(true))),
                    _ => {}
                }
                let b = to_bool(&self.eval(r, env)?, "boolean operator")?;
                let v = match op {
                    And => match (a, b) {
                        (_, Some(false)) => Some(false),
                        (Some(true), Some(true)) => Some(true),
                        _ => None,
                    },
                    Or => match (a, b) {
                        (_, Some(true)) => Some(true),
                        (Some(false), Some(false)) => Some(false),
                        _ => None,
                    },
                    _ => match (a, b) {
                        (Some(true), b) => b,
                        (None, Some(true)) => Some(true),
                        _ => None,
                    },
                };
                return Ok(bool_result(v));
            }
            _ => {}
        }
        let right = self.eval(r, env)?;
        match op {
            Xor => {
                let a = to_bool(&left, "xor")?;
                let b = to_bool(&right, "xor")?;
                Ok(bool_result(match (a, b) {
                    (Some(a), Some(b)) => Some(a != b),
                    _ => None,
                }))
            }
            Union => Ok(Collection(
                ItemSet::of(left.into_iter().chain(right)).into_vec(),
            )),
            Eq | Ne => {
                if left.is_empty() || right.is_empty() {
                    return Ok(Collection::new());
                }
                let mut result = Some(left.len() == right.len());
                if left.len() == right.len() {
                    for (a, b) in left.iter().zip(right.iter()) {
                        match ops::equals(a, b) {
                            Some(true) => {}
                            Some(false) => {
                                result = Some(false);
                                break;
                            }
                            None => result = None,
                        }
                    }
                }
                Ok(bool_result(if op == Ne {
                    result.map(|b| !b)
                } else {
                    result
                }))
            }
            Equiv | NotEquiv => {
                // Equivalence pairs items in any order (quadratic); the time budget
                // bounds it for very large collections.
                let mut compared = 0u32;
                let eq = left.len() == right.len() && {
                    let mut used = vec![false; right.len()];
                    left.iter().all(|a| {
                        compared = compared.wrapping_add(right.len() as u32);
                        if compared > 1 << 16 {
                            compared = 0;
                            if fhir_model::budget::expired() {
                                return false;
                            }
                        }
                        let found = right
                            .iter()
                            .enumerate()
                            .find(|(j, b)| !used[*j] && ops::equivalent(a, b))
                            .map(|(j, _)| j);
                        match found {
                            Some(j) => {
                                used[j] = true;
                                true
                            }
                            None => false,
                        }
                    })
                };
                if fhir_model::budget::expired() {
                    return Err(EvalError::OutOfTime);
                }
                Ok(bool_result(Some(if op == Equiv { eq } else { !eq })))
            }
            Lt | Gt | Le | Ge => {
                let (a, b) = match (left.as_slice(), right.as_slice()) {
                    ([], _) | (_, []) => return Ok(Collection::new()),
                    ([a], [b]) => (a, b),
                    _ => {
                        return Err(EvalError::NotSingleton(
                            "comparison".into(),
                            left.len().max(right.len()),
                        ))
                    }
                };
                let ord = ops::compare(a, b)?;
                Ok(bool_result(ord.map(|o| match op {
                    Lt => o.is_lt(),
                    Gt => o.is_gt(),
                    Le => o.is_le(),
                    _ => o.is_ge(),
                })))
            }
            In | Contains => {
                let (needle, haystack) = if op == In {
                    (left, right)
                } else {
                    (right, left)
                };
                match needle.as_slice() {
                    [] => Ok(Collection::new()),
                    [x] => Ok(bool_result(Some(
                        haystack.iter().any(|h| ops::equals(x, h) == Some(true)),
                    ))),
                    items => Err(EvalError::NotSingleton(
                        "membership operator".into(),
                        items.len(),
                    )),
                }
            }
            Concat => {
                let text = |c: &Collection<'a>| -> EvalResult<String> {
                    match c.as_slice() {
                        [] => Ok(String::new()),
                        [i] => i
                            .as_str()
                            .map(str::to_string)
                            .ok_or_else(|| EvalError::Type("'&' needs strings".into())),
                        items => Err(EvalError::NotSingleton("&".into(), items.len())),
                    }
                };
                Ok(Collection::one(Item::String(Cow::Owned(
                    text(&left)? + &text(&right)?,
                ))))
            }
            Add | Sub | Mul | Div | IntDiv | Mod => {
                let (a, b) = match (left.as_slice(), right.as_slice()) {
                    ([], _) | (_, []) => return Ok(Collection::new()),
                    ([a], [b]) => (a, b),
                    _ => {
                        return Err(EvalError::NotSingleton(
                            "arithmetic operator".into(),
                            left.len().max(right.len()),
                        ))
                    }
                };
                Ok(ops::arithmetic(op, a, b)?
                    .map(Collection::one)
                    .unwrap_or_default())
            }
            And | Or | Implies => Ok(Collection::new()),
        }
    }
}

fn literal<'a>(l: &Literal) -> Collection<'a> {
    let item = match l {
        Literal::Empty => return Collection::new(),
        Literal::Boolean(b) => Item::Boolean(*b),
        Literal::String(s) => Item::String(Cow::Owned(s.clone())),
        Literal::Integer(i) => Item::Integer(*i),
        Literal::Decimal(d) => Item::Decimal(*d),
        Literal::Date(d) => Item::Date(*d),
        Literal::DateTime(d) => Item::DateTime(*d),
        Literal::Time(t) => Item::Time(*t),
        Literal::Quantity(q) => Item::Quantity(q.clone()),
    };
    Collection::one(item)
}
