//! Dates as ranges of time, in epoch milliseconds (UTC), **half-open**: `start` is the
//! first millisecond of the range (inclusive), `end` the first millisecond after it
//! (exclusive). A value stands for the whole interval its precision implies:
//! `2013` is `[2013-01-01T00:00Z, 2014-01-01T00:00Z)`, `2013-01-14T10:00+01:00` is the
//! minute `[09:00Z, 09:01Z)`, an instant with milliseconds is one millisecond wide.
//!
//! Time zones: a value with an offset is converted to UTC. A value without an offset
//! (dates, and date-times written without one, which FHIR only allows in search) is
//! taken as UTC. Open ends (a Period without `start` or `end`) are [`DateRange::MIN`] and
//! [`DateRange::MAX`].

use time::{Date, Month, PrimitiveDateTime, Time, UtcOffset};

/// The precision a date was written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DatePrecision {
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
    Millisecond,
}

/// A half-open interval `[start, end)` of epoch milliseconds (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateRange {
    /// First millisecond of the interval (inclusive); [`DateRange::MIN`] when open.
    pub start: i64,
    /// First millisecond after the interval (exclusive); [`DateRange::MAX`] when open.
    pub end: i64,
}

impl DateRange {
    /// The value of an open start.
    pub const MIN: i64 = i64::MIN;
    /// The value of an open end.
    pub const MAX: i64 = i64::MAX;

    /// The range a FHIR `date`, `dateTime` or `instant` (or a search date value,
    /// which may also stop at hours or minutes) stands for; `None` if it does not parse.
    pub fn parse(text: &str) -> Option<DateRange> {
        parse_with_precision(text).map(|(r, _)| r)
    }
}

/// Parses a date and tells the precision it was written with.
pub fn parse_with_precision(text: &str) -> Option<(DateRange, DatePrecision)> {
    let text = text.trim();
    let (date_part, time_part) = match text.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (text, None),
    };
    let mut parts = date_part.split('-');
    let year = digits(parts.next()?, 4)? as i32;
    let month = match parts.next() {
        Some(m) => Some(digits(m, 2)?),
        None => None,
    };
    let day = match parts.next() {
        Some(d) => Some(digits(d, 2)?),
        None => None,
    };
    if parts.next().is_some() || (day.is_some() && month.is_none()) {
        return None;
    }
    let first_month = Month::try_from(month.unwrap_or(1) as u8).ok()?;
    let date = Date::from_calendar_date(year, first_month, day.unwrap_or(1) as u8).ok()?;

    let Some(time_part) = time_part else {
        let (start, end_date) = match (month, day) {
            (None, _) => (
                date,
                Date::from_calendar_date(year + 1, Month::January, 1).ok()?,
            ),
            (Some(_), None) => {
                let next = if first_month == Month::December {
                    Date::from_calendar_date(year + 1, Month::January, 1).ok()?
                } else {
                    Date::from_calendar_date(year, first_month.next(), 1).ok()?
                };
                (date, next)
            }
            (Some(_), Some(_)) => (date, date.next_day()?),
        };
        let precision = match (month, day) {
            (None, _) => DatePrecision::Year,
            (Some(_), None) => DatePrecision::Month,
            _ => DatePrecision::Day,
        };
        return Some((
            DateRange {
                start: day_ms(start),
                end: day_ms(end_date),
            },
            precision,
        ));
    };
    day?;
    let (clock, offset) = split_offset(time_part)?;
    let (time, precision, width_ms) = parse_clock(clock)?;
    let local = PrimitiveDateTime::new(date, time);
    let at = match offset {
        Some(off) => local.assume_offset(off),
        None => local.assume_utc(),
    };
    let start = i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()?;
    Some((
        DateRange {
            start,
            end: start.checked_add(width_ms)?,
        },
        precision,
    ))
}

fn day_ms(d: Date) -> i64 {
    d.midnight().assume_utc().unix_timestamp() * 1000
}

fn digits(s: &str, len: usize) -> Option<u32> {
    (s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// Splits `hh:mm:ss.fff±hh:mm` / `…Z` into the clock and the offset.
fn split_offset(t: &str) -> Option<(&str, Option<UtcOffset>)> {
    if let Some(clock) = t.strip_suffix('Z').or_else(|| t.strip_suffix('z')) {
        return Some((clock, Some(UtcOffset::UTC)));
    }
    match t.char_indices().rev().find(|&(_, c)| c == '+' || c == '-') {
        Some((i, sign)) => {
            let (clock, off) = (&t[..i], &t[i + 1..]);
            let (h, m) = off.split_once(':')?;
            let (h, m) = (digits(h, 2)? as i8, digits(m, 2)? as i8);
            if h > 14 || m > 59 {
                return None;
            }
            let (h, m) = if sign == '-' { (-h, -m) } else { (h, m) };
            Some((clock, Some(UtcOffset::from_hms(h, m, 0).ok()?)))
        }
        None => Some((t, None)),
    }
}

/// `hh`, `hh:mm`, `hh:mm:ss` or `hh:mm:ss.f…` (fraction truncated to milliseconds).
fn parse_clock(clock: &str) -> Option<(Time, DatePrecision, i64)> {
    let (hms, fraction) = match clock.split_once('.') {
        Some((a, f)) => (a, Some(f)),
        None => (clock, None),
    };
    let mut it = hms.split(':');
    let h = digits(it.next()?, 2)? as u8;
    let m = match it.next() {
        Some(m) => Some(digits(m, 2)? as u8),
        None => None,
    };
    let s = match it.next() {
        Some(s) => Some(digits(s, 2)? as u8),
        None => None,
    };
    if it.next().is_some() {
        return None;
    }
    let (millis, precision, width) = match (m, s, fraction) {
        (None, None, None) => (0, DatePrecision::Hour, 3_600_000),
        (Some(_), None, None) => (0, DatePrecision::Minute, 60_000),
        (Some(_), Some(_), None) => (0, DatePrecision::Second, 1_000),
        (Some(_), Some(_), Some(f)) if !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) => {
            let ms_digits: String = f.chars().chain("00".chars()).take(3).collect();
            let ms: u16 = ms_digits.parse().ok()?;
            let width = match f.len() {
                1 => 100,
                2 => 10,
                _ => 1,
            };
            (ms, DatePrecision::Millisecond, width)
        }
        _ => return None,
    };
    // 24:00 and leap seconds are not valid FHIR times.
    let time = Time::from_hms_milli(h, m.unwrap_or(0), s.unwrap_or(0), millis).ok()?;
    Some((time, precision, width))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;
    // 2013-01-01T00:00:00Z
    const Y2013: i64 = 1_356_998_400_000;

    #[test]
    fn ranges_by_precision() {
        let y = DateRange::parse("2013").unwrap();
        assert_eq!((y.start, y.end), (Y2013, Y2013 + 365 * DAY));
        let m = DateRange::parse("2013-02").unwrap();
        assert_eq!((m.start, m.end), (Y2013 + 31 * DAY, Y2013 + 59 * DAY));
        let dec = DateRange::parse("2012-12").unwrap();
        assert_eq!(dec.end, Y2013);
        let d = DateRange::parse("2013-01-02").unwrap();
        assert_eq!((d.start, d.end), (Y2013 + DAY, Y2013 + 2 * DAY));
        let min = DateRange::parse("2013-01-01T10:00+01:00").unwrap();
        assert_eq!(
            (min.start, min.end),
            (Y2013 + 9 * 3_600_000, Y2013 + 9 * 3_600_000 + 60_000)
        );
        let s = DateRange::parse("2013-01-01T00:00:05Z").unwrap();
        assert_eq!((s.start, s.end), (Y2013 + 5000, Y2013 + 6000));
        let ms = DateRange::parse("2013-01-01T00:00:05.123456-00:30").unwrap();
        assert_eq!(
            (ms.start, ms.end),
            (Y2013 + 1_800_000 + 5123, Y2013 + 1_800_000 + 5124)
        );
        let tenth = DateRange::parse("2013-01-01T00:00:05.1Z").unwrap();
        assert_eq!((tenth.start, tenth.end), (Y2013 + 5100, Y2013 + 5200));
        let hour = DateRange::parse("2013-01-01T10").unwrap();
        assert_eq!(hour.end - hour.start, 3_600_000);
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "notadate",
            "13",
            "2013-13",
            "2013-02-30",
            "2013-1-01",
            "2013-01-01T",
            "2013-01-01T25:00",
            "2013-01-01T10:00+15:00",
            "2013-01-01T10:00:00.Z",
            "2013--01",
            "2013-01-01T10:00:00+0100",
            "２０１３",
        ] {
            assert_eq!(DateRange::parse(bad), None, "{bad}");
        }
    }
}
