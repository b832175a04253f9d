//! Conversion: `iif`, `toX()` and `convertsToX()`.

use std::borrow::Cow;
use std::str::FromStr;

use rust_decimal::Decimal;

use super::{arg_string, single, Args, Func};
use crate::datetime::{Date, DateTime, Time};
use crate::error::{EvalError, EvalResult};
use crate::eval::{to_bool, Env, Evaluator};
use crate::item::{Collection, Item};
use crate::quantity::{calendar_unit, Quantity};

fn is_integer_text(s: &str) -> bool {
    let d = s.strip_prefix(['+', '-']).unwrap_or(s);
    !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())
}

fn is_decimal_text(s: &str) -> bool {
    let d = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (int, frac) = match d.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (d, None),
    };
    !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
}

pub(crate) fn to_boolean(item: &Item) -> Option<bool> {
    match item.system()? {
        Item::Boolean(b) => Some(b),
        Item::Integer(1) => Some(true),
        Item::Integer(0) => Some(false),
        Item::Decimal(d) if d == Decimal::ONE => Some(true),
        Item::Decimal(d) if d.is_zero() => Some(false),
        Item::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "t" | "yes" | "y" | "1" | "1.0" => Some(true),
            "false" | "f" | "no" | "n" | "0" | "0.0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn to_integer(item: &Item) -> Option<i64> {
    match item.system()? {
        Item::Integer(i) => Some(i),
        Item::Boolean(b) => Some(b as i64),
        Item::String(s) if is_integer_text(&s) => s.parse().ok(),
        _ => None,
    }
}

fn to_decimal(item: &Item) -> Option<Decimal> {
    match item.system()? {
        Item::Integer(i) => Some(Decimal::from(i)),
        Item::Decimal(d) => Some(d),
        Item::Boolean(b) => Some(if b { Decimal::ONE } else { Decimal::ZERO }),
        Item::String(s) if is_decimal_text(&s) => Decimal::from_str(&s).ok(),
        _ => None,
    }
}

pub(crate) fn to_string_value(item: &Item) -> Option<String> {
    Some(match item.system()? {
        Item::String(s) => s.into_owned(),
        Item::Integer(i) => i.to_string(),
        Item::Decimal(d) => d.to_string(),
        Item::Boolean(b) => b.to_string(),
        Item::Date(d) => d.to_string(),
        Item::DateTime(d) => d.to_string(),
        Item::Time(t) => t.to_string(),
        Item::Quantity(q) => q.to_string(),
        _ => return None,
    })
}

fn to_date(item: &Item) -> Option<Date> {
    match item.system()? {
        Item::Date(d) => Some(d),
        Item::DateTime(d) => Some(d.date),
        Item::String(s) => Date::parse(&s).or_else(|| DateTime::parse(&s).map(|d| d.date)),
        _ => None,
    }
}

fn to_datetime(item: &Item) -> Option<DateTime> {
    match item.system()? {
        Item::Date(d) => Some(DateTime::from_date(d)),
        Item::DateTime(d) => Some(d),
        Item::String(s) => DateTime::parse(&s),
        _ => None,
    }
}

fn to_time(item: &Item) -> Option<Time> {
    match item.system()? {
        Item::Time(t) => Some(t),
        Item::String(s) => Time::parse(s.strip_prefix('T').unwrap_or(&s)),
        _ => None,
    }
}

/// `'1.5 \'mg\''`, `'4 days'`, `'10'`.
pub(crate) fn parse_quantity(s: &str) -> Option<Quantity> {
    let s = s.trim();
    let (num, rest) = match s.find(|c: char| c.is_whitespace() || c == '\'') {
        Some(i) => (&s[..i], s[i..].trim_start()),
        None => (s, ""),
    };
    if !is_decimal_text(num) {
        return None;
    }
    let value = Decimal::from_str(num).ok()?;
    if rest.is_empty() {
        return Some(Quantity::new(value, "1"));
    }
    if let Some(u) = rest.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
        if u.is_empty() || u.contains('\'') {
            return None;
        }
        return Some(Quantity::new(value, u));
    }
    calendar_unit(rest).map(|_| Quantity::new(value, rest))
}

fn to_quantity(item: &Item) -> Option<Quantity> {
    match item.system()? {
        Item::Quantity(q) => Some(q),
        Item::Integer(i) => Some(Quantity::new(Decimal::from(i), "1")),
        Item::Decimal(d) => Some(Quantity::new(d, "1")),
        Item::Boolean(b) => Some(Quantity::new(
            if b { Decimal::ONE } else { Decimal::ZERO },
            "1",
        )),
        Item::String(s) => parse_quantity(&s),
        _ => None,
    }
}

pub(super) fn call<'a>(
    ev: &mut Evaluator<'_, 'a>,
    func: Func,
    input: Collection<'a>,
    args: Args,
    env: &Env<'_, 'a>,
    has_target: bool,
) -> EvalResult<Collection<'a>> {
    if func == Func::Iif {
        let inner;
        let env = if has_target {
            if input.len() > 1 {
                return Err(EvalError::NotSingleton("iif()".into(), input.len()));
            }
            inner = input;
            Env {
                this: &inner,
                index: None,
                total: None,
            }
        } else {
            *env
        };
        let crit = ev.eval(&args[0], &env)?;
        if ev.ctx.strict && !crit.is_empty() && crit.as_bool().is_none() {
            return Err(EvalError::Type("iif() criterion must be a Boolean".into()));
        }
        return match to_bool(&crit, "iif() criterion")? {
            Some(true) => ev.eval(&args[1], &env),
            _ => match args.get(2) {
                Some(e) => ev.eval(e, &env),
                None => Ok(Collection::new()),
            },
        };
    }
    let Some(item) = single(&input, func)? else {
        return Ok(Collection::new());
    };
    let b = |v: bool| Ok(Collection::one(Item::Boolean(v)));
    let opt = |v: Option<Item<'a>>| Ok(v.map(Collection::one).unwrap_or_default());
    match func {
        Func::ToBoolean => opt(to_boolean(item).map(Item::Boolean)),
        Func::ConvertsToBoolean => b(to_boolean(item).is_some()),
        Func::ToInteger => opt(to_integer(item).map(Item::Integer)),
        Func::ConvertsToInteger => b(to_integer(item).is_some()),
        Func::ToDecimal => opt(to_decimal(item).map(Item::Decimal)),
        Func::ConvertsToDecimal => b(to_decimal(item).is_some()),
        Func::ToString => opt(to_string_value(item).map(|s| Item::String(Cow::Owned(s)))),
        Func::ConvertsToString => b(to_string_value(item).is_some()),
        Func::ToDate => opt(to_date(item).map(Item::Date)),
        Func::ConvertsToDate => b(to_date(item).is_some()),
        Func::ToDateTime => opt(to_datetime(item).map(Item::DateTime)),
        Func::ConvertsToDateTime => b(to_datetime(item).is_some()),
        Func::ToTime => opt(to_time(item).map(Item::Time)),
        Func::ConvertsToTime => b(to_time(item).is_some()),
        Func::ToQuantity | Func::ConvertsToQuantity => {
            let unit = arg_string(ev, args, 0, env, func)?;
            let q = to_quantity(item);
            let q = match (q, unit) {
                (Some(q), Some(u)) => q.convert_to(&u),
                (q, None) => q,
                (None, Some(_)) => None,
            };
            if func == Func::ToQuantity {
                opt(q.map(Item::Quantity))
            } else {
                b(q.is_some())
            }
        }
        _ => Ok(Collection::new()),
    }
}
