//! Quantities: a decimal value with a UCUM unit or a calendar duration keyword, and the
//! small UCUM engine used to compare, add, multiply and convert them.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;

#[derive(Debug, Clone, PartialEq)]
pub struct Quantity {
    pub value: Decimal,
    /// A UCUM code (`mg`, `[lb_av]`, `1`) or a calendar keyword (`week`, `days`).
    pub unit: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CalendarUnit {
    Year,
    Month,
    Week,
    Day,
    Hour,
    Minute,
    Second,
    Millisecond,
}

/// The calendar duration a keyword names (`year`, `years`, … `milliseconds`).
pub fn calendar_unit(word: &str) -> Option<CalendarUnit> {
    Some(
        match word.strip_suffix('s').filter(|w| *w != "m").unwrap_or(word) {
            "year" => CalendarUnit::Year,
            "month" => CalendarUnit::Month,
            "week" => CalendarUnit::Week,
            "day" => CalendarUnit::Day,
            "hour" => CalendarUnit::Hour,
            "minute" => CalendarUnit::Minute,
            "second" => CalendarUnit::Second,
            "millisecond" => CalendarUnit::Millisecond,
            _ => return None,
        },
    )
}

impl Quantity {
    pub fn new(value: Decimal, unit: impl Into<String>) -> Quantity {
        Quantity {
            value,
            unit: unit.into(),
        }
    }

    pub fn is_calendar(&self) -> bool {
        calendar_unit(&self.unit).is_some()
    }

    /// The unit usable in date/time arithmetic: calendar keywords and the UCUM units of
    /// fixed length (`wk`, `d`, `h`, `min`, `s`, `ms`); not `mo` or `a`.
    pub fn calendar_unit_for_arithmetic(&self) -> Option<CalendarUnit> {
        calendar_unit(&self.unit).or(match self.unit.as_str() {
            "wk" => Some(CalendarUnit::Week),
            "d" => Some(CalendarUnit::Day),
            "h" => Some(CalendarUnit::Hour),
            "min" => Some(CalendarUnit::Minute),
            "s" => Some(CalendarUnit::Second),
            "ms" => Some(CalendarUnit::Millisecond),
            _ => None,
        })
    }

    /// The value in canonical units with the dimension vector.
    fn canonical(&self) -> Option<(Decimal, Dims)> {
        let (factor, dims) = unit_canonical(&self.unit)?;
        Some((self.value.checked_mul(factor)?, dims))
    }

    /// The value in canonical units, for hashing: quantities that compare equal have
    /// equal keys (calendar words are read as their UCUM units).
    pub(crate) fn canonical_key(&self) -> Option<(Decimal, Dims)> {
        self.canonical().or_else(|| {
            let (factor, dims) = unit_canonical(unit_key(&self.unit))?;
            Some((self.value.checked_mul(factor)?, dims))
        })
    }

    /// Both values in one unit (the left one's where possible), or `None` when the
    /// units are not comparable.
    fn common(&self, other: &Quantity) -> Option<(Decimal, Decimal)> {
        if self.unit == other.unit || unit_key(&self.unit) == unit_key(&other.unit) {
            return Some((self.value, other.value));
        }
        let (a, da) = self.canonical()?;
        let (b, db) = other.canonical()?;
        (da == db).then_some((a, b))
    }

    pub fn comparable(&self, other: &Quantity) -> bool {
        self.common(other).is_some()
    }

    pub fn compare(&self, other: &Quantity) -> Option<Ordering> {
        let (a, b) = self.common(other)?;
        Some(a.cmp(&b))
    }

    /// Equivalence: equal after rounding both to the precision of the less precise.
    pub fn equivalent(&self, other: &Quantity) -> Option<bool> {
        let (a, b) = self.common(other)?;
        let scale = a.scale().min(b.scale());
        Some(a.round_dp(scale) == b.round_dp(scale))
    }

    /// `other` expressed in this quantity's unit.
    pub fn convert_to(&self, unit: &str) -> Option<Quantity> {
        if unit == self.unit || unit_key(unit) == unit_key(&self.unit) {
            return Some(Quantity::new(self.value, unit));
        }
        let (v, d) = self.canonical()?;
        let (f, d2) = unit_canonical(unit)?;
        if d != d2 || f.is_zero() {
            return None;
        }
        Some(Quantity::new(
            v.checked_div(f)?.normalize_to_scale(self.value.scale()),
            unit,
        ))
    }

    pub fn add(&self, other: &Quantity, negate: bool) -> Option<Quantity> {
        let o = other.convert_to(&self.unit)?;
        let v = if negate {
            self.value.checked_sub(o.value)?
        } else {
            self.value.checked_add(o.value)?
        };
        Some(Quantity::new(v, self.unit.clone()))
    }

    pub fn mul(&self, other: &Quantity, divide: bool) -> Option<Quantity> {
        let (a, da) = self.canonical()?;
        let (b, db) = other.canonical()?;
        let (v, dims) = if divide {
            if b.is_zero() {
                return None;
            }
            (a.checked_div(b)?, da.combine(&db, -1))
        } else {
            (a.checked_mul(b)?, da.combine(&db, 1))
        };
        Some(Quantity::new(v, dims.unit_string()))
    }
}

trait NormalizeScale {
    fn normalize_to_scale(self, min_scale: u32) -> Decimal;
}

impl NormalizeScale for Decimal {
    /// Drops trailing zeros but keeps at least `min_scale` decimals.
    fn normalize_to_scale(self, min_scale: u32) -> Decimal {
        let mut n = self.normalize();
        if n.scale() < min_scale {
            n.rescale(min_scale);
        }
        n
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_calendar() {
            write!(f, "{} {}", self.value, self.unit)
        } else {
            write!(f, "{} '{}'", self.value, self.unit)
        }
    }
}

/// Calendar keywords compare like their UCUM counterparts, except year and month.
fn unit_key(unit: &str) -> &str {
    match calendar_unit(unit) {
        Some(CalendarUnit::Year) => "year",
        Some(CalendarUnit::Month) => "month",
        Some(CalendarUnit::Week) => "wk",
        Some(CalendarUnit::Day) => "d",
        Some(CalendarUnit::Hour) => "h",
        Some(CalendarUnit::Minute) => "min",
        Some(CalendarUnit::Second) => "s",
        Some(CalendarUnit::Millisecond) => "ms",
        None => unit,
    }
}

// ---------------------------------------------------------------------------------------
// UCUM subset.

/// Exponents of the base units: m, g, s, rad, K, C, cd, mol, calendar month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Dims([i8; 9]);

const BASE_NAMES: [&str; 9] = ["m", "g", "s", "rad", "K", "C", "cd", "mol", "month"];

impl Dims {
    fn base(i: usize) -> Dims {
        let mut d = Dims::default();
        d.0[i] = 1;
        d
    }

    fn combine(&self, other: &Dims, sign: i8) -> Dims {
        let mut d = *self;
        for i in 0..9 {
            d.0[i] = d.0[i].saturating_add(other.0[i].saturating_mul(sign));
        }
        d
    }

    fn pow(&self, e: i8) -> Dims {
        let mut d = *self;
        for x in d.0.iter_mut() {
            *x = x.saturating_mul(e);
        }
        d
    }

    fn unit_string(&self) -> String {
        let mut parts = Vec::new();
        for (i, &e) in self.0.iter().enumerate() {
            match e {
                0 => {}
                1 => parts.push(BASE_NAMES[i].to_string()),
                _ => parts.push(format!("{}{e}", BASE_NAMES[i])),
            }
        }
        if parts.is_empty() {
            "1".to_string()
        } else {
            parts.join(".")
        }
    }
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap_or(Decimal::ONE)
}

/// Atoms: (code, factor to canonical, dims as (base index, exponent) list, metric).
fn atom(code: &str) -> Option<(Decimal, Dims, bool)> {
    const M: usize = 0;
    const G: usize = 1;
    const S: usize = 2;
    let d = |list: &[(usize, i8)]| {
        let mut x = Dims::default();
        for &(i, e) in list {
            x.0[i] += e;
        }
        x
    };
    let r = match code {
        "m" => (Decimal::ONE, Dims::base(M), true),
        "g" => (Decimal::ONE, Dims::base(G), true),
        "s" => (Decimal::ONE, Dims::base(S), true),
        "rad" => (Decimal::ONE, Dims::base(3), true),
        "K" => (Decimal::ONE, Dims::base(4), true),
        "C" => (Decimal::ONE, Dims::base(5), true),
        "cd" => (Decimal::ONE, Dims::base(6), true),
        "mol" => (Decimal::ONE, Dims::base(7), true),
        "eq" => (Decimal::ONE, Dims::base(7), true),
        "1" => (Decimal::ONE, Dims::default(), false),
        "%" => (dec("0.01"), Dims::default(), false),
        "[ppm]" => (dec("0.000001"), Dims::default(), false),
        "[ppb]" => (dec("0.000000001"), Dims::default(), false),
        "l" | "L" => (dec("0.001"), d(&[(M, 3)]), true),
        "min" => (dec("60"), Dims::base(S), false),
        "h" => (dec("3600"), Dims::base(S), false),
        "d" => (dec("86400"), Dims::base(S), false),
        "wk" => (dec("604800"), Dims::base(S), false),
        "mo" => (dec("2629800"), Dims::base(S), false),
        "a" => (dec("31557600"), Dims::base(S), false),
        "year" => (dec("12"), Dims::base(8), false),
        "month" => (Decimal::ONE, Dims::base(8), false),
        "Hz" => (Decimal::ONE, d(&[(S, -1)]), true),
        "N" => (dec("1000"), d(&[(G, 1), (M, 1), (S, -2)]), true),
        "Pa" => (dec("1000"), d(&[(G, 1), (M, -1), (S, -2)]), true),
        "J" => (dec("1000"), d(&[(G, 1), (M, 2), (S, -2)]), true),
        "W" => (dec("1000"), d(&[(G, 1), (M, 2), (S, -3)]), true),
        "kat" => (Decimal::ONE, d(&[(7, 1), (S, -1)]), true),
        "m[Hg]" => (dec("133322387.415"), d(&[(G, 1), (M, -1), (S, -2)]), true),
        "[lb_av]" => (dec("453.59237"), Dims::base(G), false),
        "[oz_av]" => (dec("28.349523125"), Dims::base(G), false),
        "[in_i]" => (dec("0.0254"), Dims::base(M), false),
        "[ft_i]" => (dec("0.3048"), Dims::base(M), false),
        "[yd_i]" => (dec("0.9144"), Dims::base(M), false),
        "[mi_i]" => (dec("1609.344"), Dims::base(M), false),
        "[gal_us]" => (dec("0.003785411784"), d(&[(M, 3)]), false),
        "[foz_us]" => (dec("0.0000295735295625"), d(&[(M, 3)]), false),
        "t" => (dec("1000000"), Dims::base(G), true),
        "bar" => (dec("100000000"), d(&[(G, 1), (M, -1), (S, -2)]), true),
        "cal" => (dec("4184"), d(&[(G, 1), (M, 2), (S, -2)]), true),
        _ => return None,
    };
    Some(r)
}

fn prefix(p: &str) -> Option<Decimal> {
    let e: i32 = match p {
        "Y" => 24,
        "Z" => 21,
        "E" => 18,
        "P" => 15,
        "T" => 12,
        "G" => 9,
        "M" => 6,
        "k" => 3,
        "h" => 2,
        "da" => 1,
        "d" => -1,
        "c" => -2,
        "m" => -3,
        "u" => -6,
        "n" => -9,
        "p" => -12,
        "f" => -15,
        "a" => -18,
        _ => return None,
    };
    pow10(e)
}

fn pow10(e: i32) -> Option<Decimal> {
    if e >= 0 {
        let mut v = Decimal::ONE;
        for _ in 0..e {
            v = v.checked_mul(Decimal::TEN)?;
        }
        Some(v)
    } else if e >= -28 {
        Some(Decimal::new(1, (-e) as u32))
    } else {
        None
    }
}

/// A unit symbol with its prefix, without exponent.
fn prefixed_atom(sym: &str) -> Option<(Decimal, Dims)> {
    if let Some((f, d, _)) = atom(sym) {
        return Some((f, d));
    }
    for plen in [2, 1] {
        if sym.len() > plen && sym.is_char_boundary(plen) {
            let (p, rest) = sym.split_at(plen);
            if let (Some(pf), Some((f, d, true))) = (prefix(p), atom(rest)) {
                return Some((pf.checked_mul(f)?, d));
            }
        }
    }
    None
}

/// One component: `mg`, `m2`, `s-1`, `10*3`, `{annotation}`, `(…)`.
fn component(c: &str) -> Option<(Decimal, Dims)> {
    // Annotations are ignored: `{beats}` is 1, `mg{total}` is mg.
    let mut sym = String::with_capacity(c.len());
    let mut depth = 0;
    for ch in c.chars() {
        match ch {
            '{' => depth += 1,
            '}' => depth -= 1,
            _ if depth == 0 => sym.push(ch),
            _ => {}
        }
    }
    if depth != 0 {
        return None;
    }
    if sym.is_empty() {
        return Some((Decimal::ONE, Dims::default()));
    }
    if let Some(inner) = sym.strip_prefix('(').and_then(|s| s.strip_suffix(')')) {
        return unit_canonical(inner);
    }
    if let Some(e) = sym.strip_prefix("10*").or_else(|| sym.strip_prefix("10^")) {
        let e: i32 = e.parse().ok()?;
        return Some((pow10(e)?, Dims::default()));
    }
    if sym.bytes().all(|b| b.is_ascii_digit()) {
        return Some((Decimal::from_str(&sym).ok()?, Dims::default()));
    }
    // Trailing exponent (not inside brackets).
    let bytes = sym.as_bytes();
    let mut split = bytes.len();
    while split > 0 && bytes[split - 1].is_ascii_digit() {
        split -= 1;
    }
    if split > 0 && split < bytes.len() && (bytes[split - 1] == b'-' || bytes[split - 1] == b'+') {
        split -= 1;
    }
    let (base, exp) = if split > 0 && split < bytes.len() {
        let e: i8 = sym[split..].parse().ok()?;
        (&sym[..split], e)
    } else {
        (sym.as_str(), 1)
    };
    let (f, d) = prefixed_atom(base)?;
    let mut factor = Decimal::ONE;
    for _ in 0..exp.unsigned_abs() {
        factor = factor.checked_mul(f)?;
    }
    if exp < 0 {
        factor = Decimal::ONE.checked_div(factor)?;
    }
    Some((factor, d.pow(exp)))
}

/// Factor to canonical units and the dimension vector of a UCUM expression.
pub fn unit_canonical(unit: &str) -> Option<(Decimal, Dims)> {
    let unit = unit_key(unit);
    if unit.is_empty() || unit.len() > 64 {
        return None;
    }
    let mut factor = Decimal::ONE;
    let mut dims = Dims::default();
    let mut sign = 1i8;
    let mut start = 0;
    let mut depth = 0;
    let bytes = unit.as_bytes();
    let mut i = 0;
    let mut first = true;
    while i <= bytes.len() {
        let at_end = i == bytes.len();
        let c = if at_end { b'.' } else { bytes[i] };
        match c {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth -= 1,
            b'.' | b'/' if depth == 0 => {
                let comp = &unit[start..i];
                if comp.is_empty() {
                    if !(first && c == b'/') {
                        return None;
                    }
                } else {
                    let (f, d) = component(comp)?;
                    factor = if sign > 0 {
                        factor.checked_mul(f)?
                    } else {
                        factor.checked_div(f)?
                    };
                    dims = dims.combine(&d, sign);
                }
                first = false;
                sign = if c == b'/' { -1 } else { 1 };
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    Some((factor, dims))
}
