//! Recovery target times as people paste them: RFC 3339 (`2026-12-03T06:09:39Z`), or
//! PostgreSQL's own `timestamptz` text as `select now()` prints it
//! (`2026-12-03 06:09:39.724081+00`, `+05:30`, `Z`).

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a time with a zone: give RFC 3339 (2026-11-27T06:45:00Z) or PostgreSQL's \
     text as `select now()` prints it (2026-11-27 06:45:00.123456+00)"
)]
pub struct TimestampError(String);

/// Parses a target time. A zone is required: PostgreSQL would read a bare time in its
/// own `TimeZone`, which the gateway cannot know. A `+` sent unencoded in a URL query
/// arrives as a space, so a space before the offset is read as `+`.
pub fn parse(text: &str) -> Result<OffsetDateTime, TimestampError> {
    let bad = || TimestampError(text.chars().take(80).collect());
    let t = text.trim();
    if let Ok(at) = OffsetDateTime::parse(t, &Rfc3339) {
        return Ok(at);
    }
    // `2026-12-03 06:09:39.724081+00`: date, one space, time, zone.
    let (date, rest) = t.split_once([' ', 'T']).ok_or_else(bad)?;
    let rest = rest.trim_start();
    let zone_at = rest
        .char_indices()
        .skip(1)
        .find(|&(_, c)| matches!(c, '+' | '-' | ' ' | 'Z' | 'z'))
        .map(|(i, _)| i)
        .ok_or_else(bad)?;
    let (clock, zone) = rest.split_at(zone_at);
    let zone = match zone.trim_start() {
        "Z" | "z" => "Z".to_owned(),
        z if zone.starts_with(' ') => offset(&format!("+{z}")).ok_or_else(bad)?,
        z => offset(z).ok_or_else(bad)?,
    };
    let clock = if clock.len() == 5 {
        format!("{clock}:00")
    } else {
        clock.to_owned()
    };
    OffsetDateTime::parse(&format!("{date}T{clock}{zone}"), &Rfc3339).map_err(|_| bad())
}

/// `+05`, `+05:30` or `-0330` as RFC 3339's `+05:00`, `+05:30`, `-03:30`.
fn offset(z: &str) -> Option<String> {
    let (sign, digits) = z.split_at_checked(1)?;
    if !matches!(sign, "+" | "-") {
        return None;
    }
    let digits: String = digits.chars().filter(|c| *c != ':').collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match digits.len() {
        2 => Some(format!("{sign}{digits}:00")),
        4 => Some(format!("{sign}{}:{}", &digits[..2], &digits[2..])),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> String {
        parse(text)
            .unwrap()
            .to_offset(time::UtcOffset::UTC)
            .format(&Rfc3339)
            .unwrap()
    }

    #[test]
    fn reads_rfc_3339_and_what_postgresql_prints() {
        let at = "2026-12-03T06:09:39.724081Z";
        assert_eq!(utc("2026-12-03T06:09:39.724081Z"), at);
        assert_eq!(utc("2026-12-03 06:09:39.724081+00"), at);
        assert_eq!(
            utc("2026-12-03 06:09:39.724081 00"),
            at,
            "+ decoded as space"
        );
        assert_eq!(utc("2026-12-03 06:09:39.724081Z"), at);
        assert_eq!(utc(" 2026-12-03 11:39:39.724081+05:30 "), at);
        assert_eq!(utc("2026-12-03 02:39:39.724081-0330"), at);
        assert_eq!(utc("2026-12-03 06:09+00"), "2026-12-03T06:09:00Z");
        assert_eq!(utc("2026-12-03 06:09:39-03"), "2026-12-03T09:09:39Z");
    }

    #[test]
    fn refuses_times_without_a_zone_and_garbage() {
        for bad in [
            "",
            "2026-12-03 06:09:39",
            "2026-12-03",
            "now",
            "2026-12-03 06:09:39+5",
            "2026-12-03 06:09:39+05:30:00",
            "2026-13-03 06:09:39+00",
            "2026-12-03 06:09:39+ab",
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains("not a time with a zone"), "{bad}: {e}");
        }
    }
}
