//! Timestamps as `u64` nanoseconds since the Unix epoch (UTC), and their RFC 3339 text form.
//!
//! Every timestamp in this crate is a `u64` count of nanoseconds since
//! `1970-01-01T00:00:00Z`, which covers the years 1970 to 2554. This module converts between
//! that count and text:
//!
//! * [`format_rfc3339_ns`] always writes UTC with nine fractional digits, e.g.
//!   `2026-11-22T02:49:50.212000000Z`.
//! * [`parse_rfc3339_ns`] reads RFC 3339 with 0 to 9 fractional digits and either `Z` or a
//!   numeric offset (converted to UTC), which includes the millisecond form Crossbar.io writes,
//!   e.g. `2026-11-22T02:49:50.212Z`.
//! * [`now_ns`] reads the system clock.
//!
//! The calendar work is done by the `time` crate.

use crate::clock::NS_PER_SEC;
use std::fmt;

use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

/// Longest piece of a rejected input that is quoted back in an error message, in characters.
const QUOTE_LIMIT: usize = 64;

/// The form [`parse_rfc3339_ns`] expects, as told in error messages.
const EXPECTED_FORM: &str = "expected an RFC 3339 timestamp like 2026-11-22T02:49:50.212Z \
     (0 to 9 fractional digits, `Z` or a numeric offset like +01:00, \
     between 1970-01-01T00:00:00Z and 2554-07-21T23:34:33.709551615Z)";

/// A timestamp string that [`parse_rfc3339_ns`] could not accept.
///
/// Its [`Display`](fmt::Display) form quotes the input (shortened if long), says what was
/// wrong with it and which form is expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeError {
    input: String,
    reason: String,
}

impl TimeError {
    fn new(input: &str, reason: impl Into<String>) -> Self {
        TimeError {
            input: quote_limited(input),
            reason: reason.into(),
        }
    }

    /// The rejected input, shortened to at most 64 characters (an ellipsis marks a cut).
    pub fn input(&self) -> &str {
        &self.input
    }

    /// What was wrong with the input, without the input itself, e.g.
    /// `not RFC 3339: the 'month' component could not be parsed`.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for TimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid timestamp {:?}: {}; {}",
            self.input, self.reason, EXPECTED_FORM
        )
    }
}

impl std::error::Error for TimeError {}

/// Shortens `s` to at most [`QUOTE_LIMIT`] characters, on a character boundary.
fn quote_limited(s: &str) -> String {
    match s.char_indices().nth(QUOTE_LIMIT) {
        Some((cut, _)) => format!("{}…", s.get(..cut).unwrap_or_default()),
        None => s.to_owned(),
    }
}

/// Formats nanoseconds since the Unix epoch as RFC 3339 in UTC with nine fractional digits.
///
/// ```
/// # use cookiestore::format_rfc3339_ns;
/// assert_eq!(format_rfc3339_ns(1_795_315_790_212_000_000), "2026-11-22T02:49:50.212000000Z");
/// assert_eq!(format_rfc3339_ns(0), "1970-01-01T00:00:00.000000000Z");
/// ```
///
/// Every `u64` has a text form (the largest is `2554-07-21T23:34:33.709551615Z`), and
/// [`parse_rfc3339_ns`] reads it back to the same value.
pub fn format_rfc3339_ns(ns: u64) -> String {
    // Both parts fit: ns / 1e9 < 2^35 and ns % 1e9 < 2^30. The largest u64 is in the year
    // 2554, well inside the range of `OffsetDateTime`, so the additions never saturate.
    let secs = i64::try_from(ns / NS_PER_SEC).unwrap_or(i64::MAX);
    let nanos = i64::try_from(ns % NS_PER_SEC).unwrap_or(0);
    let t = OffsetDateTime::UNIX_EPOCH
        .saturating_add(Duration::seconds(secs))
        .saturating_add(Duration::nanoseconds(nanos));
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond()
    )
}

/// Parses an RFC 3339 timestamp into nanoseconds since the Unix epoch (UTC).
///
/// Accepted: `YYYY-MM-DDTHH:MM:SS`, optionally `.` and 1 to 9 fractional digits, then `Z` or
/// a numeric offset `±HH:MM`, which is converted to UTC. This includes Crossbar.io's
/// millisecond form `2026-11-22T02:49:50.212Z`. As RFC 3339 allows, `t`/`z` may be lower
/// case and a space may stand for the `T`. A leap second (`23:59:60` at the end of a
/// month, `Z`) is read as the last nanosecond of that minute.
///
/// ```
/// # use cookiestore::parse_rfc3339_ns;
/// assert_eq!(parse_rfc3339_ns("2026-11-22T02:49:50.212Z"), Ok(1_795_315_790_212_000_000));
/// assert_eq!(parse_rfc3339_ns("2026-11-22T03:49:50.212+01:00"), Ok(1_795_315_790_212_000_000));
/// assert!(parse_rfc3339_ns("yesterday").is_err());
/// ```
///
/// # Errors
///
/// A [`TimeError`] if the text is not such a timestamp (including impossible dates such as
/// February 30, more than 9 fractional digits, or anything around the timestamp), or if the
/// instant is before 1970-01-01T00:00:00Z or after 2554-07-21T23:34:33.709551615Z, the
/// largest `u64` nanosecond count.
pub fn parse_rfc3339_ns(s: &str) -> Result<u64, TimeError> {
    if s.is_empty() {
        return Err(TimeError::new(s, "the string is empty"));
    }
    if let Some(dot) = s.find('.') {
        // `.` is ASCII, so `dot + 1` is a character boundary.
        let digits = s
            .get(dot + 1..)
            .unwrap_or_default()
            .bytes()
            .take_while(u8::is_ascii_digit)
            .count();
        if digits > 9 {
            return Err(TimeError::new(
                s,
                format!("{digits} fractional digits, at most 9 (nanoseconds) are supported"),
            ));
        }
    }
    let t = OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|e| TimeError::new(s, format!("not RFC 3339: {e}")))?;
    let ns = t.unix_timestamp_nanos();
    if ns < 0 {
        return Err(TimeError::new(
            s,
            "the instant is before 1970-01-01T00:00:00Z",
        ));
    }
    u64::try_from(ns).map_err(|_| {
        TimeError::new(
            s,
            "the instant is after 2554-07-21T23:34:33.709551615Z, \
             the largest u64 count of nanoseconds",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-22T02:49:50.212Z, the creation time of the first cookie in the Crossbar fixture.
    const CROSSBAR_NS: u64 = 1_795_315_790_212_000_000;

    fn xorshift(state: &mut u64) -> u64 {
        let mut x = *state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *state = x;
        x
    }

    #[test]
    fn formats_with_nine_fractional_digits() {
        assert_eq!(format_rfc3339_ns(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(format_rfc3339_ns(1), "1970-01-01T00:00:00.000000001Z");
        assert_eq!(
            format_rfc3339_ns(CROSSBAR_NS),
            "2026-11-22T02:49:50.212000000Z"
        );
        assert_eq!(
            format_rfc3339_ns(951_782_400_123_456_789),
            "2000-02-29T00:00:00.123456789Z"
        );
        assert_eq!(
            format_rfc3339_ns(u64::MAX),
            "2554-07-21T23:34:33.709551615Z"
        );
    }

    #[test]
    fn round_trips() {
        let mut fixed = vec![
            0,
            1,
            999_999_999,
            1_000_000_000,
            CROSSBAR_NS,
            951_782_400_000_000_000,
            u64::MAX - 1,
            u64::MAX,
        ];
        let mut state = 0x9E37_79B9_7F4A_7C15;
        fixed.extend((0..2000).map(|_| xorshift(&mut state)));
        for ns in fixed {
            let text = format_rfc3339_ns(ns);
            assert_eq!(parse_rfc3339_ns(&text), Ok(ns), "{text}");
        }
    }

    #[test]
    fn parses_crossbar_millisecond_form() {
        assert_eq!(
            parse_rfc3339_ns("2026-11-22T02:49:50.212Z"),
            Ok(CROSSBAR_NS)
        );
        assert_eq!(
            parse_rfc3339_ns("2026-11-22T02:49:50.213Z"),
            Ok(CROSSBAR_NS + 1_000_000)
        );
    }

    #[test]
    fn parses_any_fraction_length_up_to_nine() {
        let base = CROSSBAR_NS - 212_000_000;
        assert_eq!(parse_rfc3339_ns("2026-11-22T02:49:50Z"), Ok(base));
        assert_eq!(
            parse_rfc3339_ns("2026-11-22T02:49:50.2Z"),
            Ok(base + 200_000_000)
        );
        assert_eq!(
            parse_rfc3339_ns("2026-11-22T02:49:50.21Z"),
            Ok(base + 210_000_000)
        );
        assert_eq!(
            parse_rfc3339_ns("2026-11-22T02:49:50.212345Z"),
            Ok(base + 212_345_000)
        );
        assert_eq!(
            parse_rfc3339_ns("2026-11-22T02:49:50.212345678Z"),
            Ok(base + 212_345_678)
        );
        let err = parse_rfc3339_ns("2026-11-22T02:49:50.2123456789Z").unwrap_err();
        assert!(err.reason().contains("10 fractional digits"), "{err}");
    }

    #[test]
    fn converts_offsets_to_utc() {
        for s in [
            "2026-11-22T03:49:50.212+01:00",
            "2026-11-21T21:19:50.212-05:30",
            "2026-11-22T02:49:50.212+00:00",
            "2026-11-22T02:49:50.212-00:00",
            "2026-11-23T02:48:50.212+23:59",
            "2026-11-22t02:49:50.212z",
            "2026-11-22 02:49:50.212Z",
        ] {
            assert_eq!(parse_rfc3339_ns(s), Ok(CROSSBAR_NS), "{s}");
        }
        // Offsets move the instant across the epoch boundary.
        assert_eq!(parse_rfc3339_ns("1970-01-01T01:00:00+01:00"), Ok(0));
        assert_eq!(parse_rfc3339_ns("1969-12-31T23:00:00-01:00"), Ok(0));
    }

    #[test]
    fn rejects_garbage() {
        for s in [
            "",
            " ",
            "yesterday",
            "2026-11-22",
            "02:49:50Z",
            "2026-11-22T02:49:50",
            "2026-11-22T02:49:50.Z",
            "2026-11-22T02:49:50.212",
            "2026-11-22T02:49:50.212Z ",
            " 2026-11-22T02:49:50.212Z",
            "2026-11-22T02:49:50.212Zjunk",
            "2026-11-22T02:49:50+0100",
            "2026-11-22T02:49:50+24:00",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-11-22T24:00:00Z",
            "2026-11-22T02:60:00Z",
            "2026-11-22T23:59:60Z",
            "+2026-11-22T02:49:50Z",
            "2026-11-22T02:49:50.２Z",
            "2026–11–22T02:49:50Z",
            "1795315790212",
            "null",
            "\u{0}",
        ] {
            let err = parse_rfc3339_ns(s).expect_err(s);
            let msg = err.to_string();
            assert!(msg.contains("expected an RFC 3339 timestamp"), "{msg}");
            assert!(!err.reason().is_empty());
        }
    }

    #[test]
    fn error_message_names_input_and_problem() {
        let err = parse_rfc3339_ns("yesterday").unwrap_err();
        assert_eq!(err.input(), "yesterday");
        assert_eq!(
            err.to_string(),
            format!(
                "invalid timestamp \"yesterday\": {}; {EXPECTED_FORM}",
                err.reason()
            )
        );
        let long = "é".repeat(1000);
        let err = parse_rfc3339_ns(&long).unwrap_err();
        assert_eq!(err.input().chars().count(), QUOTE_LIMIT + 1);
        assert!(err.input().ends_with('…'));
    }

    #[test]
    fn rejects_before_1970() {
        for s in [
            "1969-12-31T23:59:59.999999999Z",
            "1969-12-31T23:59:59Z",
            "1970-01-01T00:59:59.999999999+01:00",
            "0000-01-01T00:00:00Z",
            "1900-01-01T00:00:00Z",
        ] {
            let err = parse_rfc3339_ns(s).expect_err(s);
            assert!(err.reason().contains("before 1970"), "{err}");
        }
    }

    #[test]
    fn boundaries() {
        assert_eq!(parse_rfc3339_ns("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_rfc3339_ns("1970-01-01T00:00:00.000000001Z"), Ok(1));
        assert_eq!(
            parse_rfc3339_ns("2554-07-21T23:34:33.709551615Z"),
            Ok(u64::MAX)
        );
        assert_eq!(
            parse_rfc3339_ns("2554-07-22T00:34:33.709551615+01:00"),
            Ok(u64::MAX)
        );
        for s in [
            "2554-07-21T23:34:33.709551616Z",
            "2554-07-21T23:34:34Z",
            "2554-07-21T23:34:33.709551615-00:01",
            "9999-12-31T23:59:59.999999999Z",
            "9999-12-31T23:59:59.999999999-23:59",
        ] {
            let err = parse_rfc3339_ns(s).expect_err(s);
            assert!(err.reason().contains("after 2554"), "{err}");
        }
        assert!(parse_rfc3339_ns("10000-01-01T00:00:00Z").is_err());
        // A leap second at the end of a month is the last nanosecond of its minute.
        assert_eq!(
            parse_rfc3339_ns("2016-12-31T23:59:60Z"),
            parse_rfc3339_ns("2016-12-31T23:59:59.999999999Z")
        );
    }

    #[test]
    fn random_strings_never_panic() {
        const ALPHABET: &[u8] = b"0123456789-:.TtZz+ \x00\xff";
        let mut state = 0x2545_F491_4F6C_DD1D;
        for _ in 0..20_000 {
            let len = (xorshift(&mut state) % 40) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    let r = xorshift(&mut state);
                    if r.is_multiple_of(4) {
                        (r >> 8) as u8
                    } else {
                        let i = (r >> 8) as usize % ALPHABET.len();
                        ALPHABET.get(i).copied().unwrap_or(b'0')
                    }
                })
                .collect();
            let s = String::from_utf8_lossy(&bytes);
            if let Ok(ns) = parse_rfc3339_ns(&s) {
                assert_eq!(parse_rfc3339_ns(&format_rfc3339_ns(ns)), Ok(ns));
            }
        }
    }

    #[test]
    fn now_is_after_2020() {
        let now = crate::clock::system_now_ns();
        assert!(now > 1_577_836_800_000_000_000, "{now}");
    }
}
