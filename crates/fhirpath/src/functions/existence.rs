//! Existence: `empty`, `exists`, `all`, `allTrue`…, `subsetOf`, `count`, `distinct`, `not`.

use super::{Args, Func};
use crate::distinct::ItemSet;
use crate::error::{EvalError, EvalResult};
use crate::eval::{bool_result, to_bool, Env, Evaluator};
use crate::item::{Collection, Item};

fn booleans(input: &Collection, func: Func) -> EvalResult<Vec<bool>> {
    input
        .iter()
        .map(|i| match i.system() {
            Some(Item::Boolean(b)) => Ok(b),
            _ => Err(EvalError::Type(format!(
                "{}() needs Boolean items",
                func.name()
            ))),
        })
        .collect()
}

pub(super) fn call<'a>(
    ev: &mut Evaluator<'_, 'a>,
    func: Func,
    input: Collection<'a>,
    args: Args,
    env: &Env<'_, 'a>,
) -> EvalResult<Collection<'a>> {
    let b = |v: bool| Ok(Collection::one(Item::Boolean(v)));
    match func {
        Func::Empty => b(input.is_empty()),
        Func::Exists => match args.first() {
            None => b(!input.is_empty()),
            Some(crit) => {
                for (i, item) in input.iter().enumerate() {
                    let env = Env {
                        this: std::slice::from_ref(item),
                        index: Some(i as i64),
                        total: None,
                    };
                    if to_bool(&ev.eval(crit, &env)?, "exists() criteria")? == Some(true) {
                        return b(true);
                    }
                }
                b(false)
            }
        },
        Func::All => {
            for (i, item) in input.iter().enumerate() {
                let env = Env {
                    this: std::slice::from_ref(item),
                    index: Some(i as i64),
                    total: None,
                };
                if to_bool(&ev.eval(&args[0], &env)?, "all() criteria")? != Some(true) {
                    return b(false);
                }
            }
            b(true)
        }
        Func::AllTrue => b(booleans(&input, func)?.iter().all(|x| *x)),
        Func::AnyTrue => b(booleans(&input, func)?.iter().any(|x| *x)),
        Func::AllFalse => b(booleans(&input, func)?.iter().all(|x| !*x)),
        Func::AnyFalse => b(booleans(&input, func)?.iter().any(|x| !*x)),
        Func::SubsetOf | Func::SupersetOf => {
            let other = ev.eval(&args[0], env)?;
            let (small, big) = if func == Func::SubsetOf {
                (&input, &other)
            } else {
                (&other, &input)
            };
            let big = ItemSet::of(big.iter().cloned());
            b(small.iter().all(|x| big.contains(x)))
        }
        Func::Count => Ok(Collection::one(Item::Integer(input.len() as i64))),
        Func::Distinct => Ok(Collection(ItemSet::of(input).into_vec())),
        Func::IsDistinct => {
            let n = input.len();
            b(ItemSet::of(input).len() == n)
        }
        Func::Not => Ok(bool_result(to_bool(&input, "not()")?.map(|v| !v))),
        _ => Ok(Collection::new()),
    }
}
