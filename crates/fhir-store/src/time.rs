//! Instants as stored (milliseconds since the epoch, UTC) and as FHIR and HTTP show them.

use time::format_description::well_known::{Rfc2822, Rfc3339};
use time::OffsetDateTime;

/// Milliseconds since the Unix epoch, now.
pub fn now_millis() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

fn datetime(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// FHIR `instant` with millisecond precision: `2026-11-25T16:12:44.123Z`.
pub fn fhir_instant(ms: i64) -> String {
    let dt = datetime(ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        dt.year(),
        dt.month() as u8,
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        dt.millisecond()
    )
}

/// HTTP date (`Last-Modified`): `Wed, 25 Nov 2026 16:12:44 GMT`.
pub fn http_date(ms: i64) -> String {
    let dt = datetime(ms);
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        DAYS[dt.weekday().number_days_from_monday() as usize],
        dt.day(),
        MONTHS[dt.month() as usize - 1],
        dt.year(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

/// Parses an HTTP date (`If-Modified-Since`) to milliseconds.
pub fn parse_http_date(text: &str) -> Option<i64> {
    let text = text.trim().replace("GMT", "+0000");
    OffsetDateTime::parse(&text, &Rfc2822)
        .ok()
        .map(|d| (d.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// Parses a FHIR instant or dateTime with a time zone (`_since`, `_at`) to milliseconds.
/// Dates without a time (`2026-11-25`) and year-months are taken at their start, in UTC.
pub fn parse_fhir_instant(text: &str) -> Option<i64> {
    if let Ok(d) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some((d.unix_timestamp_nanos() / 1_000_000) as i64);
    }
    let full = match text.len() {
        4 => format!("{text}-01-01T00:00:00Z"),
        7 => format!("{text}-01T00:00:00Z"),
        10 => format!("{text}T00:00:00Z"),
        _ => return None,
    };
    OffsetDateTime::parse(&full, &Rfc3339)
        .ok()
        .map(|d| (d.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// The last millisecond of the period a partial date names (`2026-11-25` → the day's
/// end); an instant names itself.
pub fn fhir_period_end(text: &str) -> Option<i64> {
    let start = parse_fhir_instant(text)?;
    let next = match text.len() {
        4 => parse_fhir_instant(&format!("{:04}", text.parse::<i32>().ok()? + 1)),
        7 => {
            let (y, m) = (
                text[..4].parse::<i32>().ok()?,
                text[5..7].parse::<u32>().ok()?,
            );
            let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            parse_fhir_instant(&format!("{y:04}-{m:02}"))
        }
        10 => Some(start + 86_400_000),
        _ => return Some(start),
    }?;
    Some(next - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses() {
        let ms = 1_795_450_364_123;
        assert_eq!(fhir_instant(ms), "2026-11-23T16:12:44.123Z");
        assert_eq!(parse_fhir_instant(&fhir_instant(ms)), Some(ms));
        assert_eq!(http_date(ms), "Mon, 23 Nov 2026 16:12:44 GMT");
        assert_eq!(parse_http_date(&http_date(ms)), Some(ms - 123));
        assert_eq!(parse_fhir_instant("2026-11-22"), Some(1_795_305_600_000));
        assert_eq!(
            parse_fhir_instant("2026-11-22T10:00:00+01:00"),
            Some(1_795_305_600_000 + 9 * 3_600_000)
        );
        assert_eq!(parse_fhir_instant("nonsense"), None);
        assert_eq!(
            fhir_period_end("2026-11-22"),
            Some(1_795_305_600_000 + 86_400_000 - 1)
        );
        assert_eq!(
            fhir_period_end("2026-12"),
            parse_fhir_instant("2027-01-01").map(|t| t - 1)
        );
        assert_eq!(
            fhir_period_end("2026"),
            parse_fhir_instant("2027").map(|t| t - 1)
        );
    }
}
