//! Operators on items: equality, equivalence, ordering and arithmetic.

use std::borrow::Cow;
use std::cmp::Ordering;

use rust_decimal::Decimal;
use serde_json::Value;

use crate::ast::BinaryOp;
use crate::datetime::DateTime;
use crate::error::{EvalError, EvalResult};
use crate::item::Item;
use crate::quantity::Quantity;

fn type_label(i: &Item) -> &'static str {
    match i {
        Item::Node(_) => "an element",
        Item::Boolean(_) => "a Boolean",
        Item::Integer(_) => "an Integer",
        Item::Decimal(_) => "a Decimal",
        Item::String(_) => "a String",
        Item::Date(_) => "a Date",
        Item::DateTime(_) => "a DateTime",
        Item::Time(_) => "a Time",
        Item::Quantity(_) => "a Quantity",
        Item::Type { .. } => "a type",
    }
}

fn ord_to_eq(o: Option<Ordering>) -> Option<bool> {
    o.map(|o| o == Ordering::Equal)
}

/// `=` on two items: `None` when the answer is unknown (different date precisions).
pub fn equals(a: &Item, b: &Item) -> Option<bool> {
    let (x, y) = match (a.system(), b.system()) {
        (Some(x), Some(y)) => (x, y),
        (None, None) => return Some(node_json_eq(a, b)),
        _ => return Some(false),
    };
    match (&x, &y) {
        (Item::Boolean(p), Item::Boolean(q)) => Some(p == q),
        (Item::Integer(p), Item::Integer(q)) => Some(p == q),
        (Item::String(p), Item::String(q)) => Some(p == q),
        (Item::Date(p), Item::Date(q)) => ord_to_eq(p.compare(q)),
        (Item::Time(p), Item::Time(q)) => ord_to_eq(p.compare(q)),
        (Item::Quantity(p), Item::Quantity(q)) => ord_to_eq(p.compare(q)),
        (
            Item::Type {
                namespace: n1,
                name: m1,
            },
            Item::Type {
                namespace: n2,
                name: m2,
            },
        ) => Some(n1 == n2 && m1 == m2),
        _ => {
            if let (Some(p), Some(q)) = (as_decimal(&x), as_decimal(&y)) {
                return Some(p == q);
            }
            if let (Some(p), Some(q)) = (as_datetime(&x), as_datetime(&y)) {
                return ord_to_eq(p.compare(&q));
            }
            Some(false)
        }
    }
}

fn node_json_eq(a: &Item, b: &Item) -> bool {
    match (a, b) {
        (Item::Node(p), Item::Node(q)) => {
            p.value == q.value && (p.value.is_some() || p.ext == q.ext)
        }
        _ => false,
    }
}

fn as_decimal(i: &Item) -> Option<Decimal> {
    match i {
        Item::Integer(n) => Some(Decimal::from(*n)),
        Item::Decimal(d) => Some(*d),
        _ => None,
    }
}

fn as_datetime(i: &Item) -> Option<DateTime> {
    match i {
        Item::Date(d) => Some(DateTime::from_date(*d)),
        Item::DateTime(d) => Some(*d),
        _ => None,
    }
}

fn normalize_ws(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// `~` on two items.
pub fn equivalent(a: &Item, b: &Item) -> bool {
    let (x, y) = match (a.system(), b.system()) {
        (Some(x), Some(y)) => (x, y),
        (None, None) => return node_json_equiv(a, b),
        _ => return false,
    };
    match (&x, &y) {
        (Item::String(p), Item::String(q)) => normalize_ws(p) == normalize_ws(q),
        (Item::Quantity(p), Item::Quantity(q)) => p.equivalent(q).unwrap_or(false),
        _ => {
            if let (Some(p), Some(q)) = (as_decimal(&x), as_decimal(&y)) {
                let scale = p.scale().min(q.scale());
                return p.round_dp(scale) == q.round_dp(scale);
            }
            if let (Some(p), Some(q)) = (as_datetime(&x), as_datetime(&y)) {
                return p.compare(&q) == Some(Ordering::Equal);
            }
            equals(&x, &y).unwrap_or(false)
        }
    }
}

fn node_json_equiv(a: &Item, b: &Item) -> bool {
    fn eq(x: &Value, y: &Value) -> bool {
        match (x, y) {
            (Value::Object(p), Value::Object(q)) => {
                let pk: Vec<_> = p.iter().filter(|(k, _)| *k != "id").collect();
                let qk: Vec<_> = q.iter().filter(|(k, _)| *k != "id").collect();
                pk.len() == qk.len()
                    && pk
                        .iter()
                        .all(|(k, v)| q.get(k.as_str()).is_some_and(|w| eq(v, w)))
            }
            (Value::Array(p), Value::Array(q)) => {
                p.len() == q.len() && p.iter().all(|v| q.iter().any(|w| eq(v, w)))
            }
            (Value::String(p), Value::String(q)) => normalize_ws(p) == normalize_ws(q),
            _ => x == y,
        }
    }
    match (a, b) {
        (Item::Node(p), Item::Node(q)) => match (p.value, q.value) {
            (Some(x), Some(y)) => eq(x, y),
            _ => false,
        },
        _ => false,
    }
}

/// Ordering for `<`, `>`, `<=`, `>=`: an error for values that cannot be compared,
/// `None` when the order is unknown (precision, incompatible units).
pub fn compare(a: &Item, b: &Item) -> EvalResult<Option<Ordering>> {
    let (x, y) = match (a.system(), b.system()) {
        (Some(x), Some(y)) => (x, y),
        _ => return Err(EvalError::Type("cannot compare complex elements".into())),
    };
    let r = match (&x, &y) {
        (Item::String(p), Item::String(q)) => Some(p.cmp(q)),
        (Item::Time(p), Item::Time(q)) => p.compare(q),
        (Item::Quantity(p), Item::Quantity(q)) => p.compare(q),
        _ => {
            if let (Some(p), Some(q)) = (as_decimal(&x), as_decimal(&y)) {
                Some(p.cmp(&q))
            } else if let (Some(p), Some(q)) = (as_datetime(&x), as_datetime(&y)) {
                p.compare(&q)
            } else {
                return Err(EvalError::Type(format!(
                    "cannot compare {} with {}",
                    type_label(&x),
                    type_label(&y)
                )));
            }
        }
    };
    Ok(r)
}

fn int_result(r: Option<i64>) -> EvalResult<Option<Item<'static>>> {
    r.map(|v| Some(Item::Integer(v))).ok_or(EvalError::Overflow)
}

/// Arithmetic (`+ - * / div mod`) on two single items; `None` for an empty result
/// (division by zero, incompatible units).
pub fn arithmetic<'a>(op: BinaryOp, a: &Item<'a>, b: &Item<'a>) -> EvalResult<Option<Item<'a>>> {
    let x = a
        .system()
        .ok_or_else(|| EvalError::Type("arithmetic on a complex element".into()))?;
    let y = b
        .system()
        .ok_or_else(|| EvalError::Type("arithmetic on a complex element".into()))?;
    let mismatch = || {
        EvalError::Type(format!(
            "cannot apply {op:?} to {} and {}",
            type_label(&x),
            type_label(&y)
        ))
    };
    match (&x, &y) {
        (Item::Integer(p), Item::Integer(q)) => {
            let (p, q) = (*p, *q);
            return match op {
                BinaryOp::Add => int_result(p.checked_add(q)),
                BinaryOp::Sub => int_result(p.checked_sub(q)),
                BinaryOp::Mul => int_result(p.checked_mul(q)),
                BinaryOp::IntDiv => {
                    if q == 0 {
                        Ok(None)
                    } else {
                        int_result(p.checked_div(q))
                    }
                }
                BinaryOp::Mod => {
                    if q == 0 {
                        Ok(None)
                    } else {
                        int_result(p.checked_rem(q))
                    }
                }
                BinaryOp::Div => {
                    if q == 0 {
                        Ok(None)
                    } else {
                        Ok(Decimal::from(p)
                            .checked_div(Decimal::from(q))
                            .map(Item::Decimal))
                    }
                }
                _ => Err(mismatch()),
            };
        }
        (Item::String(p), Item::String(q)) if op == BinaryOp::Add => {
            return Ok(Some(Item::String(Cow::Owned(format!("{p}{q}")))));
        }
        (Item::Date(d), Item::Quantity(q)) if matches!(op, BinaryOp::Add | BinaryOp::Sub) => {
            return Ok(Some(Item::Date(
                d.add(q, if op == BinaryOp::Add { 1 } else { -1 })?,
            )));
        }
        (Item::DateTime(d), Item::Quantity(q)) if matches!(op, BinaryOp::Add | BinaryOp::Sub) => {
            return Ok(Some(Item::DateTime(
                d.add(q, if op == BinaryOp::Add { 1 } else { -1 })?,
            )));
        }
        (Item::Time(t), Item::Quantity(q)) if matches!(op, BinaryOp::Add | BinaryOp::Sub) => {
            return Ok(Some(Item::Time(
                t.add(q, if op == BinaryOp::Add { 1 } else { -1 })?,
            )));
        }
        (Item::Quantity(p), Item::Quantity(q)) => {
            return Ok(match op {
                BinaryOp::Add => p.add(q, false),
                BinaryOp::Sub => p.add(q, true),
                BinaryOp::Mul => p.mul(q, false),
                BinaryOp::Div => p.mul(q, true),
                _ => return Err(mismatch()),
            }
            .map(Item::Quantity));
        }
        (Item::Quantity(p), n) if as_decimal(n).is_some() => {
            let n = as_decimal(n).unwrap_or_default();
            return Ok(match op {
                BinaryOp::Mul => p.value.checked_mul(n),
                BinaryOp::Div if !n.is_zero() => p.value.checked_div(n),
                BinaryOp::Div => None,
                _ => return Err(mismatch()),
            }
            .map(|v| Item::Quantity(Quantity::new(v, p.unit.clone()))));
        }
        (n, Item::Quantity(q)) if as_decimal(n).is_some() && op == BinaryOp::Mul => {
            let n = as_decimal(n).unwrap_or_default();
            return Ok(q
                .value
                .checked_mul(n)
                .map(|v| Item::Quantity(Quantity::new(v, q.unit.clone()))));
        }
        _ => {}
    }
    let (Some(p), Some(q)) = (as_decimal(&x), as_decimal(&y)) else {
        return Err(mismatch());
    };
    let r = match op {
        BinaryOp::Add => p.checked_add(q),
        BinaryOp::Sub => p.checked_sub(q),
        BinaryOp::Mul => p.checked_mul(q),
        BinaryOp::Div => {
            if q.is_zero() {
                return Ok(None);
            }
            p.checked_div(q)
        }
        BinaryOp::IntDiv => {
            if q.is_zero() {
                return Ok(None);
            }
            let t = p
                .checked_div(q)
                .map(|v| v.trunc())
                .ok_or(EvalError::Overflow)?;
            return Ok(Some(
                i64::try_from(t)
                    .map(Item::Integer)
                    .unwrap_or(Item::Decimal(t)),
            ));
        }
        BinaryOp::Mod => {
            if q.is_zero() {
                return Ok(None);
            }
            p.checked_rem(q)
        }
        _ => return Err(mismatch()),
    };
    r.map(|v| Some(Item::Decimal(v))).ok_or(EvalError::Overflow)
}
