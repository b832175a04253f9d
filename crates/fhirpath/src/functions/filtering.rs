//! Filtering and projection: `where`, `select`, `repeat`, `ofType`, and the type
//! functions `is()`, `as()`, `type()`.

use super::{single, Args, Func};
use crate::ast::TypeSpec;
use crate::error::{EvalError, EvalResult};
use crate::eval::{to_bool, Env, Evaluator};
use crate::item::{Collection, Item};
use crate::ops;
use crate::types;

/// Most items `repeat()` may produce before giving up (cycles are already cut).
const REPEAT_LIMIT: usize = 10_000;

fn same_item(a: &Item, b: &Item) -> bool {
    match (a, b) {
        (Item::Node(x), Item::Node(y)) => match (x.value, y.value) {
            (Some(p), Some(q)) => std::ptr::eq(p, q),
            _ => false,
        },
        (Item::Node(_), _) | (_, Item::Node(_)) => false,
        _ => ops::equals(a, b) == Some(true),
    }
}

pub(super) fn call<'a>(
    ev: &mut Evaluator<'_, 'a>,
    func: Func,
    input: Collection<'a>,
    args: Args,
    type_arg: Option<&TypeSpec>,
    _env: &Env<'_, 'a>,
) -> EvalResult<Collection<'a>> {
    match func {
        Func::Where => {
            let mut out = Vec::new();
            for (i, item) in input.iter().enumerate() {
                let env = Env {
                    this: std::slice::from_ref(item),
                    index: Some(i as i64),
                    total: None,
                };
                if to_bool(&ev.eval(&args[0], &env)?, "where() criteria")? == Some(true) {
                    out.push(item.clone());
                }
            }
            Ok(Collection(out))
        }
        Func::Select => {
            let mut out = Vec::new();
            for (i, item) in input.iter().enumerate() {
                let env = Env {
                    this: std::slice::from_ref(item),
                    index: Some(i as i64),
                    total: None,
                };
                out.extend(ev.eval(&args[0], &env)?);
            }
            Ok(Collection(out))
        }
        Func::Repeat => {
            let mut out: Vec<Item<'a>> = Vec::new();
            let mut queue = input.0;
            while !queue.is_empty() {
                let mut next = Vec::new();
                for item in &queue {
                    let env = Env {
                        this: std::slice::from_ref(item),
                        index: None,
                        total: None,
                    };
                    for x in ev.eval(&args[0], &env)? {
                        if !out.iter().any(|o| same_item(o, &x)) {
                            out.push(x.clone());
                            next.push(x);
                        }
                    }
                    if out.len() > REPEAT_LIMIT {
                        return Err(EvalError::TooDeep(REPEAT_LIMIT));
                    }
                }
                queue = next;
            }
            Ok(Collection(out))
        }
        Func::OfType | Func::Is | Func::As => {
            let spec =
                type_arg.ok_or_else(|| EvalError::InvalidArgument("type expected".into()))?;
            let t = types::resolve(ev.defs, spec)?;
            match func {
                Func::OfType => Ok(input
                    .into_iter()
                    .filter(|i| types::item_is(ev.defs, i, &t, true))
                    .collect()),
                Func::Is => Ok(match single(&input, func)? {
                    None if ev.ctx.empty_tests_false => Collection::one(Item::Boolean(false)),
                    None => Collection::new(),
                    Some(i) => {
                        Collection::one(Item::Boolean(types::item_is(ev.defs, i, &t, false)))
                    }
                }),
                _ => Ok(match single(&input, func)? {
                    Some(i) if types::item_is(ev.defs, i, &t, true) => Collection::one(i.clone()),
                    _ => Collection::new(),
                }),
            }
        }
        Func::Type => Ok(input.iter().map(types::type_of).collect()),
        _ => Ok(Collection::new()),
    }
}
