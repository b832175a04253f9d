//! Subsetting and combining: `single`, `first`, `last`, `tail`, `skip`, `take`,
//! `intersect`, `exclude`, `union`, `combine`.

use super::{arg_integer, single, Args, Func};
use crate::distinct::ItemSet;
use crate::error::EvalResult;
use crate::eval::{Env, Evaluator};
use crate::item::Collection;

pub(super) fn call<'a>(
    ev: &mut Evaluator<'_, 'a>,
    func: Func,
    input: Collection<'a>,
    args: Args,
    env: &Env<'_, 'a>,
) -> EvalResult<Collection<'a>> {
    let mut v = input.0;
    match func {
        Func::Single => Ok(single(&Collection(v.clone()), func)?
            .cloned()
            .map(Collection::one)
            .unwrap_or_default()),
        Func::First => {
            v.truncate(1);
            Ok(Collection(v))
        }
        Func::Last => Ok(v.pop().map(Collection::one).unwrap_or_default()),
        Func::Tail => {
            if !v.is_empty() {
                v.remove(0);
            }
            Ok(Collection(v))
        }
        Func::Skip => {
            let n = arg_integer(ev, args, 0, env, func)?.unwrap_or(0);
            let n = usize::try_from(n.max(0)).unwrap_or(usize::MAX).min(v.len());
            Ok(Collection(v.split_off(n)))
        }
        Func::Take => {
            let n = arg_integer(ev, args, 0, env, func)?.unwrap_or(0);
            let n = usize::try_from(n.max(0)).unwrap_or(usize::MAX);
            v.truncate(n);
            Ok(Collection(v))
        }
        Func::Intersect => {
            let other = ItemSet::of(ev.eval(&args[0], env)?);
            Ok(Collection(
                ItemSet::of(v.into_iter().filter(|i| other.contains(i))).into_vec(),
            ))
        }
        Func::Exclude => {
            let other = ItemSet::of(ev.eval(&args[0], env)?);
            Ok(v.into_iter().filter(|i| !other.contains(i)).collect())
        }
        Func::Union => {
            let other = ev.eval(&args[0], env)?;
            Ok(Collection(
                ItemSet::of(v.into_iter().chain(other)).into_vec(),
            ))
        }
        Func::Combine => {
            let other = ev.eval(&args[0], env)?;
            v.extend(other);
            Ok(Collection(v))
        }
        _ => Ok(Collection::new()),
    }
}
