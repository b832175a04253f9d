//! Partial dates, date-times and times: parsing, comparison by precision, time zones,
//! calendar arithmetic, boundaries.

use std::cmp::Ordering;
use std::fmt;

use crate::error::EvalError;
use crate::quantity::{CalendarUnit, Quantity};

/// A date with year, month or day precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Date {
    pub year: i32,
    pub month: Option<u8>,
    pub day: Option<u8>,
}

/// A time of day with hour to millisecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Time {
    pub hour: u8,
    pub minute: Option<u8>,
    pub second: Option<u8>,
    pub millis: Option<u16>,
}

/// A date-time with year to millisecond precision and an optional offset (minutes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime {
    pub date: Date,
    pub time: Option<Time>,
    pub tz: Option<i16>,
}

fn num(s: &str, len: usize) -> Option<u32> {
    if s.len() == len && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

pub fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ => {
            if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 {
                29
            } else {
                28
            }
        }
    }
}

/// Days since 1970-01-01 (proleptic Gregorian).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

pub fn civil_from_days(z: i64) -> (i64, u8, u8) {
    let z = z + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

impl Date {
    /// `YYYY`, `YYYY-MM` or `YYYY-MM-DD`.
    pub fn parse(s: &str) -> Option<Date> {
        let mut parts = s.split('-');
        let year = num(parts.next()?, 4)? as i32;
        let month = match parts.next() {
            Some(m) => Some(num(m, 2)? as u8),
            None => None,
        };
        let day = match parts.next() {
            Some(d) => Some(num(d, 2)? as u8),
            None => None,
        };
        if parts.next().is_some() {
            return None;
        }
        if let Some(m) = month {
            if !(1..=12).contains(&m) {
                return None;
            }
            if let Some(d) = day {
                if d < 1 || d > days_in_month(year, m) {
                    return None;
                }
            }
        }
        Some(Date { year, month, day })
    }

    /// Number of digits of precision: 4, 6 or 8.
    pub fn precision_digits(&self) -> i64 {
        if self.day.is_some() {
            8
        } else if self.month.is_some() {
            6
        } else {
            4
        }
    }
}

impl Time {
    /// `hh`, `hh:mm`, `hh:mm:ss` or `hh:mm:ss.fff…`.
    pub fn parse(s: &str) -> Option<Time> {
        let (main, frac) = match s.split_once('.') {
            Some((m, f)) => (m, Some(f)),
            None => (s, None),
        };
        let mut parts = main.split(':');
        let hour = num(parts.next()?, 2)? as u8;
        let minute = match parts.next() {
            Some(m) => Some(num(m, 2)? as u8),
            None => None,
        };
        let second = match parts.next() {
            Some(x) => Some(num(x, 2)? as u8),
            None => None,
        };
        if parts.next().is_some() || hour > 23 || minute.is_some_and(|m| m > 59) {
            return None;
        }
        if second.is_some_and(|x| x > 59) {
            return None;
        }
        let millis = match frac {
            Some(f) => {
                if second.is_none() || f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                let mut ms = 0u16;
                for (i, b) in f.bytes().take(3).enumerate() {
                    ms += (b - b'0') as u16 * [100, 10, 1][i];
                }
                Some(ms)
            }
            None => None,
        };
        Some(Time {
            hour,
            minute,
            second,
            millis,
        })
    }

    pub fn precision_digits(&self) -> i64 {
        if self.millis.is_some() {
            9
        } else if self.second.is_some() {
            6
        } else if self.minute.is_some() {
            4
        } else {
            2
        }
    }

    pub(crate) fn fields(&self) -> [Option<i64>; 3] {
        let sec = self
            .second
            .map(|s| s as i64 * 1000 + self.millis.unwrap_or(0) as i64);
        [Some(self.hour as i64), self.minute.map(i64::from), sec]
    }

    pub fn compare(&self, other: &Time) -> Option<Ordering> {
        compare_fields(&self.fields(), &other.fields())
    }

    fn total_ms(&self) -> i64 {
        ((self.hour as i64 * 60 + self.minute.unwrap_or(0) as i64) * 60
            + self.second.unwrap_or(0) as i64)
            * 1000
            + self.millis.unwrap_or(0) as i64
    }

    fn with_total_ms(&self, ms: i64) -> Time {
        let ms = ms.rem_euclid(86_400_000);
        Time {
            hour: (ms / 3_600_000) as u8,
            minute: self.minute.map(|_| (ms / 60_000 % 60) as u8),
            second: self.second.map(|_| (ms / 1000 % 60) as u8),
            millis: self.millis.map(|_| (ms % 1000) as u16),
        }
    }

    pub fn add(&self, q: &Quantity, sign: i64) -> Result<Time, EvalError> {
        let (unit, n) = duration_of(q, sign)?;
        let ms = match unit {
            CalendarUnit::Hour => n.checked_mul(3_600_000).ok_or(EvalError::Overflow)?,
            CalendarUnit::Minute => n.checked_mul(60_000).ok_or(EvalError::Overflow)?,
            CalendarUnit::Second => n.checked_mul(1000).ok_or(EvalError::Overflow)?,
            CalendarUnit::Millisecond => n,
            _ => {
                return Err(EvalError::Type(format!(
                    "cannot add '{}' to a time",
                    q.unit
                )))
            }
        };
        Ok(self.with_total_ms(self.total_ms() + ms.rem_euclid(86_400_000)))
    }

    /// The earliest (`high == false`) or latest time with the given precision digits.
    pub fn boundary(&self, digits: i64, high: bool) -> Option<Time> {
        let (minute, second, millis) = match digits {
            2 => (None, None, None),
            4 => (
                Some(self.minute.unwrap_or(if high { 59 } else { 0 })),
                None,
                None,
            ),
            6 => (
                Some(self.minute.unwrap_or(if high { 59 } else { 0 })),
                Some(self.second.unwrap_or(if high { 59 } else { 0 })),
                None,
            ),
            9 => (
                Some(self.minute.unwrap_or(if high { 59 } else { 0 })),
                Some(self.second.unwrap_or(if high { 59 } else { 0 })),
                Some(self.millis.unwrap_or(if high { 999 } else { 0 })),
            ),
            _ => return None,
        };
        Some(Time {
            hour: self.hour,
            minute,
            second,
            millis,
        })
    }
}

/// Compares field by field; a field present on one side only makes the result unknown.
fn compare_fields(a: &[Option<i64>], b: &[Option<i64>]) -> Option<Ordering> {
    for (x, y) in a.iter().zip(b) {
        match (x, y) {
            (Some(x), Some(y)) => {
                if x != y {
                    return Some(x.cmp(y));
                }
            }
            (None, None) => return Some(Ordering::Equal),
            _ => return None,
        }
    }
    Some(Ordering::Equal)
}

fn duration_of(q: &Quantity, sign: i64) -> Result<(CalendarUnit, i64), EvalError> {
    let unit = q
        .calendar_unit_for_arithmetic()
        .ok_or_else(|| EvalError::Type(format!("'{}' is not a calendar duration", q.unit)))?;
    let n = q.value.trunc();
    let n: i64 = i64::try_from(n).map_err(|_| EvalError::Overflow)?;
    Ok((unit, n.checked_mul(sign).ok_or(EvalError::Overflow)?))
}

impl DateTime {
    /// `YYYY(-MM(-DD)?)?(T(hh(:mm(:ss(.fff)?)?)?)?(Z|±hh:mm)?)?`; a trailing `T` is allowed.
    pub fn parse(s: &str) -> Option<DateTime> {
        let (d, rest) = match s.split_once('T') {
            Some((d, r)) => (d, Some(r)),
            None => (s, None),
        };
        let date = Date::parse(d)?;
        let Some(rest) = rest.filter(|r| !r.is_empty()) else {
            return Some(DateTime {
                date,
                time: None,
                tz: None,
            });
        };
        date.day?;
        let (t, tz) = if let Some(t) = rest.strip_suffix('Z') {
            (t, Some(0))
        } else if rest.len() > 6 && matches!(&rest.as_bytes()[rest.len() - 6], b'+' | b'-') {
            let (t, z) = rest.split_at_checked(rest.len() - 6)?;
            let sign = if z.starts_with('-') { -1 } else { 1 };
            let hh = num(z.get(1..3)?, 2)? as i16;
            if z.get(3..4)? != ":" {
                return None;
            }
            let mm = num(z.get(4..6)?, 2)? as i16;
            if hh > 14 || mm > 59 {
                return None;
            }
            (t, Some(sign * (hh * 60 + mm)))
        } else {
            (rest, None)
        };
        let time = Time::parse(t)?;
        Some(DateTime {
            date,
            time: Some(time),
            tz,
        })
    }

    pub fn from_date(date: Date) -> DateTime {
        DateTime {
            date,
            time: None,
            tz: None,
        }
    }

    pub fn precision_digits(&self) -> i64 {
        match &self.time {
            None => self.date.precision_digits(),
            Some(t) => match t.precision_digits() {
                2 => 10,
                4 => 12,
                6 => 14,
                _ => 17,
            },
        }
    }

    fn fields(&self) -> [Option<i64>; 6] {
        let t = self.time.map(|t| t.fields()).unwrap_or([None, None, None]);
        [
            Some(self.date.year as i64),
            self.date.month.map(i64::from),
            self.date.day.map(i64::from),
            t[0],
            t[1],
            t[2],
        ]
    }

    /// Milliseconds since the epoch of the filled-in value, as written (offset ignored).
    fn local_ms(&self) -> i64 {
        let days = days_from_civil(
            self.date.year as i64,
            self.date.month.unwrap_or(1) as i64,
            self.date.day.unwrap_or(1) as i64,
        );
        days * 86_400_000 + self.time.map(|t| t.total_ms()).unwrap_or(0)
    }

    /// Rebuilds a value with the same precision from milliseconds since the epoch.
    fn with_local_ms(&self, ms: i64) -> DateTime {
        let days = ms.div_euclid(86_400_000);
        let rem = ms.rem_euclid(86_400_000);
        let (y, m, d) = civil_from_days(days);
        DateTime {
            date: Date {
                year: y as i32,
                month: self.date.month.map(|_| m),
                day: self.date.day.map(|_| d),
            },
            time: self.time.map(|t| t.with_total_ms(rem)),
            tz: self.tz,
        }
    }

    /// The same instant expressed in UTC (only for values with an hour and an offset).
    fn to_utc(self) -> DateTime {
        match (self.tz, self.time) {
            (Some(tz), Some(_)) if tz != 0 => {
                let mut dt = self.with_local_ms(self.local_ms() - tz as i64 * 60_000);
                dt.tz = Some(0);
                dt
            }
            _ => self,
        }
    }

    /// What decides equality: whether an offset is known, and the fields (in UTC when
    /// it is). Values that compare equal have equal results.
    pub(crate) fn equality_fields(&self) -> (bool, [Option<i64>; 6]) {
        (self.tz.is_some(), self.to_utc().fields())
    }

    /// Ordering, or `None` when precision or time-zone knowledge leaves it undecided.
    pub fn compare(&self, other: &DateTime) -> Option<Ordering> {
        match (self.tz.is_some(), other.tz.is_some()) {
            (true, true) => {
                let (a, b) = (self.to_utc(), other.to_utc());
                compare_fields(&a.fields(), &b.fields())
            }
            (false, false) => compare_fields(&self.fields(), &other.fields()),
            _ => {
                // One side has an offset and the other not: only a difference in the date
                // decides; anything finer is unknown.
                let (a, b) = (self.fields(), other.fields());
                for i in 0..6 {
                    match (a[i], b[i]) {
                        (Some(x), Some(y)) if x == y => continue,
                        (Some(x), Some(y)) if i < 3 => return Some(x.cmp(&y)),
                        _ => return None,
                    }
                }
                None
            }
        }
    }

    pub fn add(&self, q: &Quantity, sign: i64) -> Result<DateTime, EvalError> {
        let (unit, n) = duration_of(q, sign)?;
        let mut full = *self;
        let year = full.date.year as i64;
        let month = full.date.month.unwrap_or(1) as i64;
        let day = full.date.day.unwrap_or(1);
        let shift_months = |months: i64| -> Result<DateTime, EvalError> {
            let total = (year * 12 + (month - 1))
                .checked_add(months)
                .ok_or(EvalError::Overflow)?;
            let y = total.div_euclid(12);
            let m = (total.rem_euclid(12) + 1) as u8;
            if !(1..=9999).contains(&y) {
                return Err(EvalError::Overflow);
            }
            let d = day.min(days_in_month(y as i32, m));
            let mut r = *self;
            r.date.year = y as i32;
            r.date.month = self.date.month.map(|_| m);
            r.date.day = self.date.day.map(|_| d);
            Ok(r)
        };
        let ms = match unit {
            CalendarUnit::Year => {
                return shift_months(n.checked_mul(12).ok_or(EvalError::Overflow)?)
            }
            CalendarUnit::Month => return shift_months(n),
            CalendarUnit::Week => n.checked_mul(7 * 86_400_000),
            CalendarUnit::Day => n.checked_mul(86_400_000),
            CalendarUnit::Hour => n.checked_mul(3_600_000),
            CalendarUnit::Minute => n.checked_mul(60_000),
            CalendarUnit::Second => n.checked_mul(1000),
            CalendarUnit::Millisecond => Some(n),
        }
        .ok_or(EvalError::Overflow)?;
        let total = self.local_ms().checked_add(ms).ok_or(EvalError::Overflow)?;
        full = self.with_local_ms(total);
        if !(1..=9999).contains(&full.date.year) {
            return Err(EvalError::Overflow);
        }
        Ok(full)
    }

    /// The earliest or latest value with `digits` precision (4, 6, 8, 10, 12, 14, 17).
    pub fn boundary(&self, digits: i64, high: bool) -> Option<DateTime> {
        let lim = |v: Option<u8>, lo: u8, hi: u8| Some(v.unwrap_or(if high { hi } else { lo }));
        let mut date = Date {
            year: self.date.year,
            month: None,
            day: None,
        };
        if digits >= 6 {
            date.month = lim(self.date.month, 1, 12);
        }
        if digits >= 8 {
            let m = date.month.unwrap_or(1);
            date.day = lim(self.date.day, 1, days_in_month(date.year, m));
        }
        if !matches!(digits, 4 | 6 | 8 | 10 | 12 | 14 | 17) {
            return None;
        }
        if digits <= 8 {
            return Some(DateTime {
                date,
                time: None,
                tz: None,
            });
        }
        // An hour without minutes is read as hh:00 (`T08` is not a FHIR time).
        let base = self.time.map(|mut t| {
            if t.minute.is_none() {
                t.minute = Some(0);
            }
            t
        });
        let t = base.unwrap_or(Time {
            hour: if high { 23 } else { 0 },
            minute: None,
            second: None,
            millis: None,
        });
        let time = t.boundary(
            match digits {
                10 => 2,
                12 => 4,
                14 => 6,
                _ => 9,
            },
            high,
        )?;
        let tz = self.tz.or(Some(if high { -12 * 60 } else { 14 * 60 }));
        Some(DateTime {
            date,
            time: Some(time),
            tz,
        })
    }
}

impl Date {
    pub fn compare(&self, other: &Date) -> Option<Ordering> {
        DateTime::from_date(*self).compare(&DateTime::from_date(*other))
    }

    pub fn add(&self, q: &Quantity, sign: i64) -> Result<Date, EvalError> {
        Ok(DateTime::from_date(*self).add(q, sign)?.date)
    }

    pub fn boundary(&self, digits: i64, high: bool) -> Option<Date> {
        if !matches!(digits, 4 | 6 | 8) {
            return None;
        }
        DateTime::from_date(*self)
            .boundary(digits, high)
            .map(|d| d.date)
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}", self.year)?;
        if let Some(m) = self.month {
            write!(f, "-{m:02}")?;
            if let Some(d) = self.day {
                write!(f, "-{d:02}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}", self.hour)?;
        if let Some(m) = self.minute {
            write!(f, ":{m:02}")?;
            if let Some(s) = self.second {
                write!(f, ":{s:02}")?;
                if let Some(ms) = self.millis {
                    write!(f, ".{ms:03}")?;
                }
            }
        }
        Ok(())
    }
}

impl fmt::Display for DateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.date)?;
        if let Some(t) = &self.time {
            write!(f, "T{t}")?;
            match self.tz {
                Some(0) => f.write_str("Z")?,
                Some(tz) => {
                    let sign = if tz < 0 { '-' } else { '+' };
                    let a = tz.unsigned_abs();
                    write!(f, "{sign}{:02}:{:02}", a / 60, a % 60)?;
                }
                None => {}
            }
        }
        Ok(())
    }
}

/// The current date-time in UTC with millisecond precision.
pub fn now_utc() -> DateTime {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let proto = DateTime {
        date: Date {
            year: 1970,
            month: Some(1),
            day: Some(1),
        },
        time: Some(Time {
            hour: 0,
            minute: Some(0),
            second: Some(0),
            millis: Some(0),
        }),
        tz: Some(0),
    };
    proto.with_local_ms(ms)
}
