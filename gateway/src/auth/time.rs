//! The timestamp formats request signing uses, without a date-time dependency.
//!
//! All times are whole seconds since the Unix epoch, UTC.

use std::time::{SystemTime, UNIX_EPOCH};

const SECS_PER_DAY: i64 = 86_400;
const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// Seconds since the Unix epoch; negative before 1970, saturating far outside any real clock.
pub(crate) fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The (year, month, day) of a day count since 1970-01-01 (Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Both values are bounded by the arithmetic above (1..=31, 1..=12).
    (year, day_or_month(month), day_or_month(day))
}

fn day_or_month(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Seconds since the epoch of a validated calendar date and time of day.
fn to_unix(year: i64, month: u32, day: u32, hour: u32, minute: u32, second: u32) -> Option<i64> {
    let valid = (1..=12).contains(&month)
        && day >= 1
        && day <= days_in_month(year, month)
        && hour < 24
        && minute < 60
        && second < 60;
    if !valid {
        return None;
    }
    let secs_of_day = i64::from(hour * 3600 + minute * 60 + second);
    Some(days_from_civil(year, month, day) * SECS_PER_DAY + secs_of_day)
}

/// Parses a non-empty run of ASCII digits.
fn digits(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses the ISO 8601 basic form SigV4 uses, `YYYYMMDDTHHMMSSZ`.
pub(crate) fn parse_amz_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let year = digits(s.get(0..4)?)?;
    let month = digits(s.get(4..6)?)?;
    let day = digits(s.get(6..8)?)?;
    let hour = digits(s.get(9..11)?)?;
    let minute = digits(s.get(11..13)?)?;
    let second = digits(s.get(13..15)?)?;
    to_unix(i64::from(year), month, day, hour, minute, second)
}

/// Formats seconds since the epoch as `YYYYMMDDTHHMMSSZ`.
pub(crate) fn format_amz_date(secs: i64) -> String {
    let (year, month, day) = civil_from_days(secs.div_euclid(SECS_PER_DAY));
    let tod = secs.rem_euclid(SECS_PER_DAY);
    format!("{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z", tod / 3600, tod / 60 % 60, tod % 60)
}

/// Parses an HTTP date as S3 clients send it in `Date` (`Sun, 22 Nov 2026 01:46:07 GMT`); the
/// weekday is optional and the zone may be `GMT`, `UTC`, `Z` or a numeric `+hhmm` offset.
pub(crate) fn parse_http_date(s: &str) -> Option<i64> {
    let mut fields: Vec<&str> = s.split_ascii_whitespace().collect();
    if fields.first().is_some_and(|w| w.ends_with(',')) {
        fields.remove(0);
    }
    let [day, month, year, clock, zone] = fields.as_slice() else {
        return None;
    };
    let day = digits(day)?;
    let month = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(month))?;
    let month = u32::try_from(month).ok()? + 1;
    let year = digits(year)?;
    let mut hms = clock.split(':');
    let (hour, minute, second) = (digits(hms.next()?)?, digits(hms.next()?)?, digits(hms.next()?)?);
    if hms.next().is_some() || year < 1000 {
        return None;
    }
    let offset_secs = zone_offset_secs(zone)?;
    to_unix(i64::from(year), month, day, hour, minute, second).map(|t| t - offset_secs)
}

/// The offset east of UTC of an HTTP date's zone field.
fn zone_offset_secs(zone: &str) -> Option<i64> {
    if ["GMT", "UTC", "UT", "Z"].iter().any(|z| z.eq_ignore_ascii_case(zone)) {
        return Some(0);
    }
    let (sign, rest) = match zone.as_bytes().first()? {
        b'+' => (1, zone.get(1..)?),
        b'-' => (-1, zone.get(1..)?),
        _ => return None,
    };
    if rest.len() != 4 {
        return None;
    }
    let hours = i64::from(digits(rest.get(0..2)?)?);
    let minutes = i64::from(digits(rest.get(2..4)?)?);
    if hours > 23 || minutes > 59 {
        return None;
    }
    Some(sign * (hours * 3600 + minutes * 60))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn amz_date_round_trips() {
        // 2026-11-22T01:46:07Z, checked with `date -u -d @1795311967`.
        let t = parse_amz_date("20261122T014607Z").expect("valid date");
        assert_eq!(t, 1_795_311_967);
        assert_eq!(format_amz_date(t), "20261122T014607Z");
        assert_eq!(parse_amz_date("19700101T000000Z"), Some(0));
        assert_eq!(format_amz_date(0), "19700101T000000Z");
        assert_eq!(parse_amz_date("20000229T235959Z"), Some(951_868_799));
        assert_eq!(format_amz_date(951_868_799), "20000229T235959Z");
        assert_eq!(format_amz_date(-1), "19691231T235959Z");
    }

    #[test]
    fn amz_date_rejects_malformed() {
        for bad in [
            "",
            "20261122T014607",
            "20261122 014607Z",
            "20261322T014607Z",
            "20260230T014607Z",
            "20261122T244607Z",
            "2026112-T014607Z",
            "+0261122T014607Z",
            "20261122T01460７Z",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn http_date_variants() {
        let t = 1_795_311_967;
        assert_eq!(parse_http_date("Sun, 22 Nov 2026 01:46:07 GMT"), Some(t));
        assert_eq!(parse_http_date("22 Nov 2026 01:46:07 GMT"), Some(t));
        assert_eq!(parse_http_date("Sun, 22 Nov 2026 01:46:07 +0000"), Some(t));
        assert_eq!(parse_http_date("Sun, 22 Nov 2026 02:46:07 +0100"), Some(t));
        assert_eq!(parse_http_date("Sat, 21 Nov 2026 20:46:07 -0500"), Some(t));
        assert_eq!(parse_http_date("Sun, 22 Foo 2026 01:46:07 GMT"), None);
        assert_eq!(parse_http_date("Sun, 22 Nov 2026 01:46 GMT"), None);
        assert_eq!(parse_http_date("Sun, 22 Nov 2026 01:46:07 CET"), None);
        assert_eq!(parse_http_date(""), None);
    }

    #[test]
    fn unix_secs_of_system_time() {
        assert_eq!(unix_secs(UNIX_EPOCH + Duration::from_secs(42)), 42);
        assert_eq!(unix_secs(UNIX_EPOCH - Duration::from_secs(42)), -42);
    }

    #[test]
    fn civil_conversion_agrees_over_four_centuries() {
        // Every day from 1900 to 2300 converts there and back.
        let start = days_from_civil(1900, 1, 1);
        let end = days_from_civil(2300, 1, 1);
        let mut expected = (1900, 1, 1);
        for d in start..end {
            assert_eq!(civil_from_days(d), expected);
            let (y, m, day) = expected;
            expected = if day < days_in_month(y, m) {
                (y, m, day + 1)
            } else if m < 12 {
                (y, m + 1, 1)
            } else {
                (y + 1, 1, 1)
            };
        }
    }
}
