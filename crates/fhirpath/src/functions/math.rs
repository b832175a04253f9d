//! Math: `abs`, `ceiling`, `exp`, `floor`, `ln`, `log`, `power`, `round`, `sqrt`,
//! `truncate`. Exact decimal arithmetic where possible; the transcendental functions go
//! through `f64`.

use std::str::FromStr;

use rust_decimal::{Decimal, RoundingStrategy};

use super::{arg, arg_integer, single, Args, Func};
use crate::error::{EvalError, EvalResult};
use crate::eval::{Env, Evaluator};
use crate::item::{Collection, Item};
use crate::quantity::Quantity;

fn to_f64(d: Decimal) -> f64 {
    d.to_string().parse().unwrap_or(f64::NAN)
}

fn from_f64(f: f64) -> Option<Decimal> {
    if !f.is_finite() {
        return None;
    }
    Decimal::from_str(&format!("{f}"))
        .ok()
        .or_else(|| Decimal::from_scientific(&format!("{f:e}")).ok())
}

fn integer_of(d: Decimal) -> EvalResult<Item<'static>> {
    i64::try_from(d)
        .map(Item::Integer)
        .map_err(|_| EvalError::Overflow)
}

pub(super) fn call<'a>(
    ev: &mut Evaluator<'_, 'a>,
    func: Func,
    input: Collection<'a>,
    args: Args,
    env: &Env<'_, 'a>,
) -> EvalResult<Collection<'a>> {
    let Some(item) = single(&input, func)? else {
        return Ok(Collection::new());
    };
    let value = item.system();
    let number = match &value {
        Some(Item::Integer(i)) => Decimal::from(*i),
        Some(Item::Decimal(d)) => *d,
        Some(Item::Quantity(q)) if func == Func::Abs => {
            return Ok(Collection::one(Item::Quantity(Quantity::new(
                q.value.abs(),
                q.unit.clone(),
            ))));
        }
        _ => return Err(EvalError::Type(format!("{}() needs a number", func.name()))),
    };
    let is_int = matches!(value, Some(Item::Integer(_)));
    let one = |i: Item<'a>| Ok(Collection::one(i));
    let dec = |d: Option<Decimal>| {
        Ok(d.map(|d| Collection::one(Item::Decimal(d)))
            .unwrap_or_default())
    };
    match func {
        Func::Abs => {
            if let Some(Item::Integer(i)) = value {
                return one(Item::Integer(i.checked_abs().ok_or(EvalError::Overflow)?));
            }
            one(Item::Decimal(number.abs()))
        }
        Func::Ceiling => one(integer_of(number.ceil())?),
        Func::Floor => one(integer_of(number.floor())?),
        Func::Truncate => one(integer_of(number.trunc())?),
        Func::Exp => dec(from_f64(to_f64(number).exp())),
        Func::Ln => dec(from_f64(to_f64(number).ln())),
        Func::Sqrt => dec(from_f64(to_f64(number).sqrt())),
        Func::Log => {
            let base = match arg(ev, args, 0, env, func)?.and_then(|b| b.system()) {
                Some(Item::Integer(i)) => i as f64,
                Some(Item::Decimal(d)) => to_f64(d),
                None => return Ok(Collection::new()),
                _ => return Err(EvalError::Type("log() needs a number base".into())),
            };
            dec(from_f64(to_f64(number).ln() / base.ln()))
        }
        Func::Power => {
            let exp = match arg(ev, args, 0, env, func)?.and_then(|b| b.system()) {
                Some(i @ (Item::Integer(_) | Item::Decimal(_))) => i,
                None => return Ok(Collection::new()),
                _ => return Err(EvalError::Type("power() needs a number exponent".into())),
            };
            if let (true, Item::Integer(e)) = (is_int, &exp) {
                if let (Ok(e), Some(Item::Integer(b))) = (u32::try_from(*e), &value) {
                    return one(Item::Integer(b.checked_pow(e).ok_or(EvalError::Overflow)?));
                }
            }
            let e = match exp {
                Item::Integer(i) => i as f64,
                Item::Decimal(d) => to_f64(d),
                _ => f64::NAN,
            };
            dec(from_f64(to_f64(number).powf(e)))
        }
        Func::Round => {
            let p = if args.is_empty() {
                0
            } else {
                arg_integer(ev, args, 0, env, func)?.unwrap_or(0)
            };
            if !(0..=28).contains(&p) {
                return Err(EvalError::InvalidArgument(
                    "round() precision must be 0 to 28".into(),
                ));
            }
            if is_int && p == 0 {
                return one(Item::Integer(
                    i64::try_from(number).map_err(|_| EvalError::Overflow)?,
                ));
            }
            one(Item::Decimal(number.round_dp_with_strategy(
                p as u32,
                RoundingStrategy::MidpointAwayFromZero,
            )))
        }
        _ => Ok(Collection::new()),
    }
}
