//! The static check run before evaluation when the input's type is known: member names
//! must exist on the types a path can have at that point (choice elements by their
//! FHIRPath name: `value`, not `valueQuantity`). In strict mode it also rejects a path
//! starting with a type that is not the context's, and order-dependent functions
//! (`first()`, `skip()`, `[0]`…) applied directly to `children()`/`descendants()`.

use fhir_model::{Definitions, ElementCursor};

use crate::ast::{Expr, TypeSpec};
use crate::error::{EvalError, EvalResult};
use crate::functions::Func;

/// A type a collection may hold: its name and where its children are defined.
#[derive(Clone, Copy)]
struct Ty<'d> {
    name: &'d str,
    cursor: ElementCursor<'d>,
}

/// `None`: unknown (no checks); `Some(vec![])`: known to be empty.
type Types<'d> = Option<Vec<Ty<'d>>>;

struct Checker<'d> {
    defs: &'d Definitions,
    strict: bool,
    lenient: bool,
    root: Types<'d>,
    depth: usize,
}

pub fn check(
    defs: &Definitions,
    e: &Expr,
    root: Option<&str>,
    strict: bool,
    lenient: bool,
) -> EvalResult<()> {
    let root_ty: Types = root.and_then(|r| defs.root(r)).map(|c| {
        vec![Ty {
            name: &c.type_def.type_name,
            cursor: c,
        }]
    });
    let mut c = Checker {
        defs,
        strict,
        lenient,
        root: root_ty.clone(),
        depth: 0,
    };
    c.expr(e, &root_ty).map(|_| ())
}

fn fhir_type<'d>(defs: &'d Definitions, name: &str) -> Types<'d> {
    let c = defs.root(name)?;
    if matches!(name, "Resource" | "DomainResource") {
        return None;
    }
    Some(vec![Ty {
        name: &c.type_def.type_name,
        cursor: c,
    }])
}

impl<'d> Checker<'d> {
    fn member(&self, input: &Types<'d>, name: &str) -> EvalResult<Types<'d>> {
        let Some(types) = input else { return Ok(None) };
        if types.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let mut out = Vec::new();
        let mut found = false;
        for t in types {
            if let Some(step) = self.defs.child(t.cursor, name) {
                let el = step.element();
                if el.is_choice && el.name != name {
                    if self.lenient {
                        return Ok(None);
                    }
                    return Err(EvalError::Semantic(format!(
                        "'{name}' is a choice element named with its type: use '{}' (with ofType() or as)",
                        el.name
                    )));
                }
                found = true;
                match (step.type_code, self.defs.descend(step)) {
                    (Some("Resource" | "DomainResource"), _) | (_, None) => return Ok(None),
                    (tc, Some(c)) => out.push(Ty {
                        name: tc.unwrap_or(&c.type_def.type_name),
                        cursor: c,
                    }),
                }
                continue;
            }
            // A choice element by its FHIRPath name.
            let owner = t.cursor;
            let mut choice = false;
            for (key, _) in owner.type_def.child_names(owner.index) {
                if key.len() > name.len() && key.starts_with(name) {
                    if let Some(step) = self.defs.child(owner, key) {
                        let el = step.element();
                        if el.is_choice && el.name == name {
                            choice = true;
                            if let (Some(tc), Some(c)) = (step.type_code, self.defs.descend(step)) {
                                out.push(Ty {
                                    name: tc,
                                    cursor: c,
                                });
                            }
                        }
                    }
                }
            }
            found |= choice;
        }
        if !found {
            if self.lenient {
                return Ok(None);
            }
            let names: Vec<&str> = types.iter().map(|t| t.name).collect();
            return Err(EvalError::Semantic(format!(
                "'{name}' is not an element of {}",
                names.join(" or ")
            )));
        }
        Ok(Some(out))
    }

    fn cast(&self, spec: &TypeSpec) -> EvalResult<Types<'d>> {
        let t = crate::types::resolve(self.defs, spec)?;
        Ok(if t.fhir {
            fhir_type(self.defs, t.name)
        } else {
            None
        })
    }

    fn args(&mut self, args: &[Expr], this: &Types<'d>) -> EvalResult<()> {
        for a in args {
            self.expr(a, this)?;
        }
        Ok(())
    }

    fn expr(&mut self, e: &Expr, this: &Types<'d>) -> EvalResult<Types<'d>> {
        self.depth += 1;
        if self.depth > crate::eval::MAX_EVAL_DEPTH {
            return Err(EvalError::TooDeep(crate::eval::MAX_EVAL_DEPTH));
        }
        let r = self.expr_inner(e, this);
        self.depth -= 1;
        r
    }

    fn expr_inner(&mut self, e: &Expr, this: &Types<'d>) -> EvalResult<Types<'d>> {
        Ok(match e {
            Expr::Literal(_) | Expr::IndexVar | Expr::Total => None,
            Expr::This => this.clone(),
            Expr::Env(name) => match name.as_str() {
                "context" | "resource" => self.root.clone(),
                _ => None,
            },
            Expr::Ident(name) => {
                if name.starts_with(|c: char| c.is_ascii_uppercase())
                    && self.defs.type_def(name).is_some()
                {
                    return Ok(match this {
                        None => fhir_type(self.defs, name),
                        Some(types) => {
                            let kept: Vec<Ty> = types
                                .iter()
                                .copied()
                                .filter(|t| self.defs.is_subtype(t.name, name))
                                .collect();
                            if kept.is_empty() && !types.is_empty() && self.strict {
                                return Err(EvalError::Semantic(format!(
                                    "the context is {}, not {name}",
                                    types
                                        .iter()
                                        .map(|t| t.name)
                                        .collect::<Vec<_>>()
                                        .join(" or ")
                                )));
                            }
                            Some(kept)
                        }
                    });
                }
                self.member(this, name)?
            }
            Expr::Member(target, name) => {
                let t = self.expr(target, this)?;
                self.member(&t, name)?
            }
            Expr::Index(target, idx) => {
                self.expr(idx, this)?;
                if self.strict && is_unordered(target) {
                    return Err(EvalError::Semantic(
                        "indexing an unordered collection".into(),
                    ));
                }
                self.expr(target, this)?
            }
            Expr::Unary(_, operand) => {
                self.expr(operand, this)?;
                None
            }
            Expr::Binary(_, l, r) => {
                self.expr(l, this)?;
                self.expr(r, this)?;
                None
            }
            Expr::Is(operand, spec) => {
                self.expr(operand, this)?;
                crate::types::resolve(self.defs, spec)?;
                None
            }
            Expr::As(operand, spec) => {
                self.expr(operand, this)?;
                self.cast(spec)?
            }
            Expr::Call {
                target,
                func,
                args,
                type_arg,
                ..
            } => {
                let input = match target {
                    Some(t) => self.expr(t, this)?,
                    None => this.clone(),
                };
                if self.strict && func.is_ordered() && target.as_deref().is_some_and(is_unordered) {
                    return Err(EvalError::Semantic(format!(
                        "{}() applied to an unordered collection",
                        func.name()
                    )));
                }
                match func {
                    Func::Where
                    | Func::Exists
                    | Func::All
                    | Func::Repeat
                    | Func::Aggregate
                    | Func::Sort => {
                        self.args(args, &input)?;
                        match func {
                            Func::Where => input,
                            Func::Sort => input,
                            _ => None,
                        }
                    }
                    Func::Select => {
                        let mut out = None;
                        for a in args {
                            out = self.expr(a, &input)?;
                        }
                        out
                    }
                    Func::Iif => {
                        let env = if target.is_some() {
                            input
                        } else {
                            this.clone()
                        };
                        self.args(args, &env)?;
                        None
                    }
                    Func::Trace => {
                        if let Some(first) = args.first() {
                            self.expr(first, this)?;
                        }
                        if let Some(proj) = args.get(1) {
                            self.expr(proj, &input)?;
                        }
                        input
                    }
                    Func::OfType | Func::As => match type_arg {
                        Some(spec) => self.cast(spec)?,
                        None => None,
                    },
                    Func::Is => {
                        if let Some(spec) = type_arg {
                            crate::types::resolve(self.defs, spec)?;
                        }
                        None
                    }
                    Func::First
                    | Func::Last
                    | Func::Tail
                    | Func::Skip
                    | Func::Take
                    | Func::Single
                    | Func::Distinct
                    | Func::Intersect
                    | Func::Exclude => {
                        self.args(args, this)?;
                        input
                    }
                    Func::Extension => {
                        self.args(args, this)?;
                        fhir_type(self.defs, "Extension")
                    }
                    _ => {
                        self.args(args, this)?;
                        None
                    }
                }
            }
        })
    }
}

fn is_unordered(e: &Expr) -> bool {
    matches!(
        e,
        Expr::Call {
            func: Func::Children | Func::Descendants,
            ..
        }
    )
}
