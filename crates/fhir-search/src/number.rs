//! Decimal numbers with the range their written precision implies.
//!
//! Numbers stay exact ([`Decimal`], from the text as written, never through `f64`). The
//! implicit range is half a unit of the last written digit either side, half-open
//! `[low, high)`: `100` → `[99.5, 100.5)`, `100.00` → `[99.995, 100.005)`,
//! `1e2` → `[50, 150)`, `1.0e2` → `[95, 105)`. (The R4 text gives `[95, 105)` for `1e2`,
//! contradicting its own "one significant figure"; we follow the rule, not the example.)

use std::str::FromStr;

pub use fhirpath::Decimal;

/// A number as written, with its exact value and implicit range `[low, high)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberRange {
    /// The text as written (`1.50`, `1e2`).
    pub text: String,
    /// The exact value.
    pub value: Decimal,
    /// Lower bound of the implicit range (inclusive).
    pub low: Decimal,
    /// Upper bound of the implicit range (exclusive).
    pub high: Decimal,
}

impl NumberRange {
    /// Parses a FHIR decimal (`-?digits(.digits)?([eE][+-]?digits)?`, a leading `+`
    /// accepted); `None` if malformed or out of the 28-digit decimal range.
    pub fn parse(text: &str) -> Option<NumberRange> {
        let t = text.trim();
        let body = t.strip_prefix(['+', '-']).unwrap_or(t);
        let (mantissa, exponent) = match body.find(['e', 'E']) {
            Some(i) => {
                let e = &body[i + 1..];
                let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                (&body[..i], e.parse::<i32>().ok()?)
            }
            None => (body, 0),
        };
        let (int, frac) = match mantissa.split_once('.') {
            Some((i, f)) => (i, f),
            None => (mantissa, ""),
        };
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if int.is_empty() || !all_digits(int) || !all_digits(frac) || mantissa.ends_with('.') {
            return None;
        }
        // The last written digit is worth 10^(exponent - fraction digits).
        let last_digit_exp = exponent.checked_sub(i32::try_from(frac.len()).ok()?)?;
        let value = parse_decimal(t)?;
        let half = pow10(last_digit_exp.checked_sub(1)?)?.checked_mul(Decimal::from(5))?;
        Some(NumberRange {
            text: t.to_string(),
            low: value.checked_sub(half)?,
            high: value.checked_add(half)?,
            value,
        })
    }

    /// The exact value as a floating-point number (for callers that index ranges as
    /// `f64`; lossy by nature).
    pub fn value_f64(&self) -> f64 {
        decimal_f64(&self.value)
    }
}

/// A decimal as `f64`, through its text (for range columns only).
pub fn decimal_f64(d: &Decimal) -> f64 {
    d.to_string().parse().unwrap_or(f64::NAN)
}

fn parse_decimal(t: &str) -> Option<Decimal> {
    let t = t.strip_prefix('+').unwrap_or(t);
    if t.contains(['e', 'E']) {
        Decimal::from_scientific(t).ok()
    } else {
        Decimal::from_str(t).ok()
    }
}

/// 10^e as an exact decimal (`None` beyond the decimal's range).
fn pow10(e: i32) -> Option<Decimal> {
    if e < 0 {
        let scale = u32::try_from(-e).ok()?;
        (scale <= 28).then(|| Decimal::new(1, scale))
    } else {
        let mut d = Decimal::ONE;
        for _ in 0..e {
            d = d.checked_mul(Decimal::TEN)?;
        }
        Some(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(t: &str) -> (String, String, String) {
        let r = NumberRange::parse(t).unwrap();
        (r.value.to_string(), r.low.to_string(), r.high.to_string())
    }

    #[test]
    fn implicit_ranges() {
        assert_eq!(range("100"), ("100".into(), "99.5".into(), "100.5".into()));
        assert_eq!(
            range("100.00"),
            ("100.00".into(), "99.995".into(), "100.005".into())
        );
        assert_eq!(range("1e2"), ("100".into(), "50".into(), "150".into()));
        assert_eq!(range("1.0e2"), ("100".into(), "95".into(), "105".into()));
        assert_eq!(
            range("-0.5"),
            ("-0.5".into(), "-0.55".into(), "-0.45".into())
        );
        assert_eq!(range("+3"), ("3".into(), "2.5".into(), "3.5".into()));
        assert_eq!(range("2.5E-3").0, "0.0025");
        assert_eq!(NumberRange::parse("1.50").unwrap().text, "1.50");
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "", "abc", "1.", ".5", "1e", "1e+", "--1", "1,5", "1e99", "0x10", "NaN",
        ] {
            assert_eq!(NumberRange::parse(bad), None, "{bad}");
        }
    }
}
