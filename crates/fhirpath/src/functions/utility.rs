//! Tree navigation (`children`, `descendants`), utilities (`trace`, `now`, `today`,
//! `timeOfDay`), `aggregate`, `sort`, and the precision functions (`lowBoundary`,
//! `highBoundary`, `precision`, `comparable`).

use std::cmp::Ordering;

use rust_decimal::{Decimal, RoundingStrategy};

use super::{arg, arg_integer, arg_string, single, Args, Func};
use crate::ast::{Expr, UnaryOp};
use crate::datetime::now_utc;
use crate::error::{EvalError, EvalResult};
use crate::eval::{Env, Evaluator};
use crate::item::{Collection, Item};
use crate::navigation;
use crate::ops;
use crate::quantity::Quantity;

/// Most nodes `descendants()` visits.
const DESCENDANTS_LIMIT: usize = 1_000_000;

fn decimal_boundary(x: Decimal, p: i64, high: bool) -> Option<Decimal> {
    if !(0..=28).contains(&p) {
        return None;
    }
    let p = p as u32;
    if x.is_sign_negative() && !x.is_zero() {
        return decimal_boundary(-x, p as i64, !high).map(|v| -v);
    }
    let s = x.scale();
    let half = Decimal::try_new(5, s + 1).ok()?;
    let mut v = if high {
        x.checked_add(half)?
    } else {
        x.checked_sub(half)?
    };
    if p < v.scale() {
        v = if high {
            v.round_dp_with_strategy(p, RoundingStrategy::MidpointAwayFromZero)
        } else {
            v.trunc_with_scale(p)
        };
    }
    v.rescale(p);
    Some(v)
}

fn boundary<'a>(item: &Item<'a>, p: Option<i64>, high: bool) -> Option<Item<'a>> {
    match item.system()? {
        Item::Integer(i) => {
            decimal_boundary(Decimal::from(i), p.unwrap_or(8), high).map(Item::Decimal)
        }
        Item::Decimal(d) => decimal_boundary(d, p.unwrap_or(8), high).map(Item::Decimal),
        Item::Quantity(q) => decimal_boundary(q.value, p.unwrap_or(8), high)
            .map(|v| Item::Quantity(Quantity::new(v, q.unit.clone()))),
        Item::Date(d) => d.boundary(p.unwrap_or(8), high).map(Item::Date),
        Item::DateTime(d) => d.boundary(p.unwrap_or(17), high).map(Item::DateTime),
        Item::Time(t) => t.boundary(p.unwrap_or(9), high).map(Item::Time),
        _ => None,
    }
}

fn sort_cmp(a: &[Option<Item>], b: &[Option<Item>], desc: &[bool]) -> Ordering {
    for ((x, y), d) in a.iter().zip(b).zip(desc) {
        let o = match (x, y) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(x), Some(y)) => ops::compare(x, y).ok().flatten().unwrap_or(Ordering::Equal),
        };
        let o = if *d { o.reverse() } else { o };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

pub(super) fn call<'a>(
    ev: &mut Evaluator<'_, 'a>,
    func: Func,
    input: Collection<'a>,
    args: Args,
    env: &Env<'_, 'a>,
) -> EvalResult<Collection<'a>> {
    match func {
        Func::Children => {
            let mut out = Vec::new();
            for item in input.iter() {
                if let Item::Node(n) = item {
                    navigation::children(ev.defs, n, &mut out);
                }
            }
            Ok(Collection(out))
        }
        Func::Descendants => {
            let mut out = Vec::new();
            let mut frontier = input.0;
            while !frontier.is_empty() {
                let mut next = Vec::new();
                for item in &frontier {
                    if let Item::Node(n) = item {
                        navigation::children(ev.defs, n, &mut next);
                    }
                }
                out.extend(next.iter().cloned());
                if out.len() > DESCENDANTS_LIMIT {
                    return Err(EvalError::TooDeep(DESCENDANTS_LIMIT));
                }
                frontier = next;
            }
            Ok(Collection(out))
        }
        Func::Trace => {
            let name = arg_string(ev, args, 0, env, func)?.unwrap_or_default();
            if let Some(tracer) = ev.ctx.tracer {
                if let Some(proj) = args.get(1) {
                    let mut values = Vec::new();
                    for item in input.iter() {
                        let env = Env {
                            this: std::slice::from_ref(item),
                            index: None,
                            total: None,
                        };
                        values.extend(ev.eval(proj, &env)?);
                    }
                    tracer.trace(&name, &values);
                } else {
                    tracer.trace(&name, &input);
                }
            }
            Ok(input)
        }
        Func::Now | Func::Today | Func::TimeOfDay => {
            let now = ev.ctx.now.unwrap_or_else(now_utc);
            Ok(Collection::one(match func {
                Func::Now => Item::DateTime(now),
                Func::Today => Item::Date(now.date),
                _ => match now.time {
                    Some(t) => Item::Time(t),
                    None => return Ok(Collection::new()),
                },
            }))
        }
        Func::Aggregate => {
            let mut total = match args.get(1) {
                Some(init) => ev.eval(init, env)?,
                None => Collection::new(),
            };
            for (i, item) in input.iter().enumerate() {
                let env = Env {
                    this: std::slice::from_ref(item),
                    index: Some(i as i64),
                    total: Some(&total),
                };
                total = ev.eval(&args[0], &env)?;
            }
            Ok(total)
        }
        Func::Sort => {
            let mut keyed = Vec::with_capacity(input.len());
            let desc: Vec<bool> = if args.is_empty() {
                vec![false]
            } else {
                args.iter()
                    .map(|a| matches!(a, Expr::Unary(UnaryOp::Minus, _)))
                    .collect()
            };
            for (i, item) in input.iter().enumerate() {
                let mut keys = Vec::with_capacity(desc.len());
                if args.is_empty() {
                    keys.push(Some(item.clone()));
                }
                for a in args {
                    let e = match a {
                        Expr::Unary(UnaryOp::Minus, inner) => &**inner,
                        other => other,
                    };
                    let env = Env {
                        this: std::slice::from_ref(item),
                        index: Some(i as i64),
                        total: None,
                    };
                    let v = ev.eval(e, &env)?;
                    keys.push(single(&v, func)?.cloned());
                }
                keyed.push((keys, item.clone()));
            }
            keyed.sort_by(|a, b| sort_cmp(&a.0, &b.0, &desc));
            Ok(keyed.into_iter().map(|(_, i)| i).collect())
        }
        Func::LowBoundary | Func::HighBoundary => {
            let Some(item) = single(&input, func)? else {
                return Ok(Collection::new());
            };
            let p = if args.is_empty() {
                None
            } else {
                arg_integer(ev, args, 0, env, func)?
            };
            if !args.is_empty() && p.is_none() {
                return Ok(Collection::new());
            }
            Ok(boundary(item, p, func == Func::HighBoundary)
                .map(Collection::one)
                .unwrap_or_default())
        }
        Func::Precision => {
            let Some(item) = single(&input, func)? else {
                return Ok(Collection::new());
            };
            let p = match item.system() {
                Some(Item::Decimal(d)) => d.scale() as i64,
                Some(Item::Integer(_)) => 0,
                Some(Item::Date(d)) => d.precision_digits(),
                Some(Item::DateTime(d)) => d.precision_digits(),
                Some(Item::Time(t)) => t.precision_digits(),
                _ => return Ok(Collection::new()),
            };
            Ok(Collection::one(Item::Integer(p)))
        }
        Func::Comparable => {
            let Some(item) = single(&input, func)? else {
                return Ok(Collection::new());
            };
            let other = arg(ev, args, 0, env, func)?;
            match (item.system(), other.and_then(|o| o.system())) {
                (Some(Item::Quantity(a)), Some(Item::Quantity(b))) => {
                    Ok(Collection::one(Item::Boolean(a.comparable(&b))))
                }
                (_, None) => Ok(Collection::new()),
                _ => Err(EvalError::Type("comparable() needs quantities".into())),
            }
        }
        _ => Ok(Collection::new()),
    }
}
