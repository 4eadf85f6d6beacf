//! RFC 3339 timestamps to and from microseconds since the Unix epoch, without a calendar library: audit
//! logs carry millions of them and the format is fixed.

/// Durations in the microseconds every event time is counted in.
pub const SECOND_MICROS: i64 = 1_000_000;
pub const MINUTE_MICROS: i64 = 60 * SECOND_MICROS;
pub const HOUR_MICROS: i64 = 60 * MINUTE_MICROS;
pub const DAY_MICROS: i64 = 24 * HOUR_MICROS;

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`. Returns `None` for anything else.
pub fn parse_rfc3339_micros(text: &str) -> Option<i64> {
    parse_date_time(text, false).map(|(micros, _)| micros)
}

/// How a timestamp was written, when it was not strict RFC 3339: each tolerance is counted by
/// the caller, so that a feed that drifted from the standard shows up in the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimeForm {
    /// `2024-03-12T14:14:00.021Z`, `+02:00`.
    Rfc3339,
    /// What SIEM and data-lake exports write: a space for the `T`, no zone (read as UTC), ` UTC`,
    /// `+0200` or `+02`.
    Lenient,
    /// Seconds, milliseconds, microseconds or nanoseconds since the epoch, as a number or a string of
    /// digits (told apart by magnitude).
    Epoch,
}

/// Parses every form audit logs and their exports write a time in: RFC 3339, the lenient forms of
/// [`TimeForm::Lenient`], and epoch numbers written as text.
pub fn parse_timestamp(text: &str) -> Option<(i64, TimeForm)> {
    let text = text.trim();
    if let Some(micros) = parse_rfc3339_micros(text) {
        return Some((micros, TimeForm::Rfc3339));
    }
    if let Some((micros, _)) = parse_date_time(text, true) {
        return Some((micros, TimeForm::Lenient));
    }
    let numeric = !text.is_empty()
        && text
            .bytes()
            .all(|byte| byte.is_ascii_digit() || byte == b'.')
        && text.bytes().filter(|byte| *byte == b'.').count() <= 1;
    if numeric {
        return text
            .parse::<f64>()
            .ok()
            .and_then(epoch_micros)
            .map(|micros| (micros, TimeForm::Epoch));
    }
    None
}

/// An epoch number to microseconds: seconds below 10^11 (until the year 5138), then milliseconds,
/// microseconds and nanoseconds by magnitude. `None` for negative, infinite or absurd values.
pub fn epoch_micros(value: f64) -> Option<i64> {
    if !value.is_finite() || value < 0.0 {
        return None;
    }
    let micros = if value < 1e11 {
        value * 1e6
    } else if value < 1e14 {
        value * 1e3
    } else if value < 1e17 {
        value
    } else if value < 1e20 {
        value / 1e3
    } else {
        return None;
    };
    // In range by the checks above: below 1e17, well inside i64.
    #[allow(clippy::cast_possible_truncation)]
    Some(micros.round() as i64)
}

/// The calendar parser behind both: strict RFC 3339, or (`lenient`) the export forms too.
fn parse_date_time(text: &str, lenient: bool) -> Option<(i64, TimeForm)> {
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let slice = bytes.get(range)?;
        let mut value = 0i64;
        for byte in slice {
            if !byte.is_ascii_digit() {
                return None;
            }
            value = value * 10 + i64::from(byte - b'0');
        }
        Some(value)
    };
    let year = digits(0..4)?;
    let month = digits(5..7)?;
    let day = digits(8..10)?;
    let hour = digits(11..13)?;
    let minute = digits(14..16)?;
    let second = digits(17..19)?;
    if bytes.get(4) != Some(&b'-')
        || bytes.get(7) != Some(&b'-')
        || !matches!(bytes.get(10), Some(b'T' | b't' | b' '))
        || bytes.get(13) != Some(&b':')
        || bytes.get(16) != Some(&b':')
    {
        return None;
    }
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut index = 19;
    let mut micros = 0i64;
    if matches!(bytes.get(index), Some(b'.') | Some(b',')) {
        index += 1;
        let mut scale = 100_000i64;
        while let Some(byte) = bytes.get(index).filter(|byte| byte.is_ascii_digit()) {
            micros += i64::from(byte - b'0') * scale;
            scale /= 10;
            index += 1;
        }
    }
    let rest = bytes.get(index..).unwrap_or_default();
    let offset_seconds = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => offset(*sign, [*h1, *h2], [*m1, *m2])?,
        [] | b" UTC" | b" Z" | b"UTC" if lenient => 0,
        [sign @ (b'+' | b'-'), h1, h2, m1, m2] if lenient => offset(*sign, [*h1, *h2], [*m1, *m2])?,
        [sign @ (b'+' | b'-'), h1, h2] if lenient => offset(*sign, [*h1, *h2], [b'0', b'0'])?,
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    Some((seconds * 1_000_000 + micros, TimeForm::Rfc3339))
}

fn offset(sign: u8, hours: [u8; 2], minutes: [u8; 2]) -> Option<i64> {
    let two = |pair: [u8; 2]| -> Option<i64> {
        pair.iter().try_fold(0i64, |value, byte| {
            byte.is_ascii_digit()
                .then(|| value * 10 + i64::from(byte - b'0'))
        })
    };
    let offset = two(hours)? * 3600 + two(minutes)? * 60;
    Some(if sign == b'+' { offset } else { -offset })
}

/// Formats as `YYYY-MM-DDTHH:MM:SS.mmmZ`, GuardDuty's timestamp form.
pub fn format_rfc3339_millis(micros: i64) -> String {
    let seconds = micros.div_euclid(1_000_000);
    let millis = micros.rem_euclid(1_000_000) / 1000;
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        of_day / 3600,
        (of_day % 3600) / 60,
        of_day % 60
    )
}

// Howard Hinnant's days_from_civil / civil_from_days (public domain), proleptic Gregorian calendar.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_forms_audit_logs_use() {
        assert_eq!(parse_rfc3339_micros("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_micros("2020-04-21T17:57:05.541358Z"),
            Some(1_587_491_825_541_358)
        );
        assert_eq!(
            parse_rfc3339_micros("2018-10-25T14:09:12Z"),
            Some(1_540_476_552_000_000)
        );
        assert_eq!(
            parse_rfc3339_micros("2018-10-25T16:09:12+02:00"),
            parse_rfc3339_micros("2018-10-25T14:09:12Z")
        );
    }

    #[test]
    fn refuses_what_is_not_a_timestamp() {
        for text in [
            "",
            "2018-10-25",
            "2018-13-01T00:00:00Z",
            "2018-10-25T14:09:12",
            "yesterday",
            "2018-10-25T14:09:12Zjunk",
        ] {
            assert_eq!(parse_rfc3339_micros(text), None, "{text}");
        }
    }

    #[test]
    fn parses_the_forms_exports_write() {
        let strict = parse_rfc3339_micros("2024-03-12T14:14:00.021Z");
        for text in [
            "2024-03-12 14:14:00.021",
            "2024-03-12T14:14:00.021",
            "2024-03-12 14:14:00.021 UTC",
            "2024-03-12T16:14:00.021+0200",
            "2024-03-12T16:14:00.021+02",
            "2024-03-12 14:14:00.021000000",
        ] {
            assert_eq!(
                parse_timestamp(text),
                strict.map(|micros| (micros, TimeForm::Lenient)),
                "{text}"
            );
        }
        assert_eq!(
            parse_timestamp("2024-03-12T14:14:00.021Z"),
            strict.map(|micros| (micros, TimeForm::Rfc3339))
        );
        for text in [
            "1710252840.021",
            "1710252840021",
            "1710252840021000",
            "1710252840021000000",
        ] {
            assert_eq!(
                parse_timestamp(text),
                strict.map(|micros| (micros, TimeForm::Epoch)),
                "{text}"
            );
        }
        for text in [
            "",
            "yesterday",
            "2024-03-12",
            "-5",
            "1.2.3",
            "2024-03-12T14:14:00+2",
        ] {
            assert_eq!(parse_timestamp(text), None, "{text}");
        }
    }

    proptest! {
        #[test]
        fn lenient_parsing_never_panics(text in ".{0,40}") {
            let _ = parse_timestamp(&text);
        }

        #[test]
        fn format_then_parse_round_trips(millis in -2_000_000_000_000i64..8_000_000_000_000i64) {
            let micros = millis * 1000;
            prop_assert_eq!(parse_rfc3339_micros(&format_rfc3339_millis(micros)), Some(micros));
        }

        #[test]
        fn never_panics(text in ".{0,40}") {
            let _ = parse_rfc3339_micros(&text);
        }
    }
}
