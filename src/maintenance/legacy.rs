//! Reading Crossbar.io's file-backed cookie store (`cookies.dat`).
//!
//! Crossbar.io's file cookie store appends one JSON object per line each time a cookie is
//! created, changed or deleted:
//!
//! ```text
//! {"cbtid": "VBphpKSNoAUxJQ1er3NlJ65U", "status": "created", "created": "2026-11-22T02:49:50.212Z", "modified": null, "deleted": null, "max_age": 604800, "authid": null, "authrole": null, "authmethod": null, "authrealm": null, "authextra": null}
//! ```
//!
//! * `cbtid`: the cookie value (required).
//! * `status`: `"created"`, `"modified"` or `"deleted"`; absent in the lines that
//!   `purge_on_startup` rewrites.
//! * `created` (required), `modified`, `deleted`: UTC timestamps such as
//!   `2026-11-22T02:49:50.212Z`, or null.
//! * `max_age`: the lifetime in whole seconds (required).
//! * `authid`, `authrole`, `authmethod`, `authrealm`: a string or null.
//! * `authextra`: any JSON value, or null.
//!
//! [`parse_line`] checks one line strictly and says exactly what is wrong with a bad one.
//! [`replay`] reads a whole file: the last line for a `cbtid` wins, and a `deleted` line
//! removes the cookie. (Crossbar.io itself skips `deleted` lines on load, so logged-out
//! cookies come back after a restart; this module does not repeat that.) Bad lines are
//! collected with their line numbers and never stop the replay.
//!
//! Nothing here panics, whatever the input.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, BufRead};

use serde_json::{Map, Value};

use crate::clock::rfc3339::{self, TimeError};
use crate::record::value::CookieValue;

/// Longest cookie value accepted, in bytes: what a store can hold.
const MAX_CBTID_LEN: usize = CookieValue::MAX_LEN;

/// Longest piece of an offending value quoted back in an error message, in characters.
const QUOTE_LIMIT: usize = 64;

const EXPECTED_TIMESTAMP: &str = "a UTC timestamp like 2026-11-22T02:49:50.212Z";
const EXPECTED_OPT_TIMESTAMP: &str = "a UTC timestamp like 2026-11-22T02:49:50.212Z, or null";
const EXPECTED_CBTID: &str = "the cookie value as a string";
const EXPECTED_MAX_AGE: &str = "a whole number of seconds (0 or more)";
const EXPECTED_STATUS: &str = "\"created\", \"modified\" or \"deleted\"";
const EXPECTED_OPT_STRING: &str = "a string or null";

/// One cookie as Crossbar.io's file store records it.
#[derive(Debug, Clone, PartialEq)]
pub struct LegacyCookie {
    /// The cookie value (`cbtid`), made of RFC 6265 cookie-octets, at most
    /// 509 bytes.
    pub value: String,
    /// When the cookie was created, nanoseconds since the Unix epoch (UTC).
    pub created_ns: u64,
    /// Lifetime in seconds, counted from [`created_ns`](Self::created_ns).
    pub max_age: u64,
    /// The authenticated identity, if any.
    pub authid: Option<String>,
    /// The role of the authenticated identity, if any.
    pub authrole: Option<String>,
    /// The authentication method used (e.g. `wampcra`), if any.
    pub authmethod: Option<String>,
    /// The realm the identity authenticated to, if any.
    pub authrealm: Option<String>,
    /// Extra authentication data, any JSON value; `None` when null or absent.
    pub authextra: Option<Value>,
    /// When the cookie was last modified, nanoseconds since the Unix epoch (UTC), if recorded.
    pub modified_ns: Option<u64>,
}

impl LegacyCookie {
    /// When the cookie expires: [`created_ns`](Self::created_ns) plus
    /// [`max_age`](Self::max_age) seconds, in nanoseconds since the Unix epoch, saturating
    /// at `u64::MAX`.
    pub fn expires_ns(&self) -> u64 {
        self.created_ns
            .saturating_add(crate::clock::secs_to_ns(self.max_age))
    }

    /// Whether the cookie has expired at `now_ns` (nanoseconds since the Unix epoch):
    /// true from [`expires_ns`](Self::expires_ns) on.
    pub fn is_expired(&self, now_ns: u64) -> bool {
        now_ns >= self.expires_ns()
    }
}

/// The `status` of a line in `cookies.dat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegacyStatus {
    /// `"created"`: a new cookie.
    Created,
    /// `"modified"`: the cookie changed, e.g. on (re-)authentication.
    Modified,
    /// `"deleted"`: the cookie was removed, e.g. on logout.
    Deleted,
    /// No `status` (or null): a line rewritten by Crossbar.io's `purge_on_startup`.
    Unspecified,
}

/// One parsed line of `cookies.dat`.
#[derive(Debug, Clone, PartialEq)]
pub struct LegacyLine {
    /// What the line records.
    pub status: LegacyStatus,
    /// The cookie as the line states it.
    pub cookie: LegacyCookie,
}

/// Why a line of `cookies.dat` was rejected.
///
/// The [`Display`](fmt::Display) form says what was wrong and what was expected, e.g.
/// `field "created": expected a UTC timestamp like 2026-11-22T02:49:50.212Z, got "yesterday" (…)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegacyLineError {
    /// The line is not valid UTF-8.
    NotUtf8 {
        /// Byte offset in the line (without its line ending) of the first invalid byte.
        valid_up_to: usize,
    },
    /// The line is not valid JSON.
    NotJson {
        /// The JSON parser's description of the problem, with its column.
        detail: String,
    },
    /// The line is JSON, but not an object.
    NotAnObject {
        /// What the line is instead, e.g. `an array`.
        found: &'static str,
    },
    /// A required field is absent.
    MissingField {
        /// The field's name.
        field: &'static str,
        /// What the field should hold.
        expected: &'static str,
    },
    /// A field holds a value of the wrong type or out of range.
    InvalidField {
        /// The field's name.
        field: &'static str,
        /// What the field should hold.
        expected: &'static str,
        /// The value found, as JSON, shortened if long.
        found: String,
    },
    /// `cbtid` is the empty string.
    EmptyCbtid,
    /// `cbtid` is longer than 509 bytes.
    CbtidTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// `cbtid` holds a character that is not an RFC 6265 cookie-octet.
    CbtidBadChar {
        /// The offending character.
        ch: char,
        /// Its byte offset in the value.
        at: usize,
    },
    /// A timestamp field holds a string that is not a valid timestamp.
    BadTimestamp {
        /// The field's name.
        field: &'static str,
        /// What was wrong with the string.
        error: TimeError,
    },
    /// The line is longer than [`MAX_LINE`] bytes: it was not read into memory.
    TooLong {
        /// Its length in bytes (line ending included).
        len: u64,
    },
}

/// The longest line read from `cookies.dat` or an export (1 MiB, line ending included):
/// longer ones are reported and skipped without being held in memory.
pub const MAX_LINE: usize = 1 << 20;

/// Reads one line (up to and including `\n`, or to the end of the input) into `buf`, which is
/// cleared first and receives at most `max` bytes of it; the rest of a longer line is read
/// and dropped. Returns the line's whole length, or `None` at the end of the input.
pub(crate) fn read_line_bounded<R: BufRead + ?Sized>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<Option<u64>> {
    buf.clear();
    let mut total = 0u64;
    loop {
        let available = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            break;
        }
        let (take, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        let room = max.saturating_sub(buf.len()).min(take);
        buf.extend_from_slice(&available[..room]);
        total += take as u64;
        reader.consume(take);
        if done {
            break;
        }
    }
    Ok((total > 0).then_some(total))
}

impl fmt::Display for LegacyLineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LegacyLineError::NotUtf8 { valid_up_to } => write!(
                f,
                "line is not valid UTF-8: invalid byte sequence at byte {valid_up_to}"
            ),
            LegacyLineError::NotJson { detail } => write!(
                f,
                "line is not valid JSON ({detail}); expected one JSON object per line"
            ),
            LegacyLineError::NotAnObject { found } => write!(
                f,
                "line is {found}, expected a JSON object with \"cbtid\", \"created\" and \"max_age\""
            ),
            LegacyLineError::MissingField { field, expected } => {
                write!(f, "field {field:?}: missing, expected {expected}")
            }
            LegacyLineError::InvalidField {
                field,
                expected,
                found,
            } => write!(f, "field {field:?}: expected {expected}, got {found}"),
            LegacyLineError::EmptyCbtid => {
                write!(
                    f,
                    "field \"cbtid\": expected a non-empty cookie value, got \"\""
                )
            }
            LegacyLineError::CbtidTooLong { len } => write!(
                f,
                "field \"cbtid\": the cookie value is {len} bytes long, at most {MAX_CBTID_LEN} are allowed"
            ),
            LegacyLineError::CbtidBadChar { ch, at } => write!(
                f,
                "field \"cbtid\": character {ch:?} at byte {at} is not allowed in a cookie value \
                 (RFC 6265 cookie-octets: printable ASCII except space, '\"', ',', ';' and '\\')"
            ),
            LegacyLineError::TooLong { len } => write!(
                f,
                "line is {len} bytes long, longer than the {MAX_LINE} bytes a cookie line may \
                 have"
            ),
            LegacyLineError::BadTimestamp { field, error } => write!(
                f,
                "field {field:?}: expected {EXPECTED_TIMESTAMP}, got {:?} ({})",
                error.input(),
                error.reason()
            ),
        }
    }
}

impl std::error::Error for LegacyLineError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LegacyLineError::BadTimestamp { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// Parses one line of `cookies.dat` (without its line ending; surrounding whitespace is
/// allowed).
///
/// Fields other than those of Crossbar.io's `cookies.dat` lines are ignored.
///
/// ```
/// # use cookiestore::maintenance::{parse_line, LegacyStatus};
/// let line = parse_line(r#"{"cbtid": "VBphpKSNoAUxJQ1er3NlJ65U", "status": "created",
///     "created": "2026-11-22T02:49:50.212Z", "max_age": 604800, "authid": null}"#).unwrap();
/// assert_eq!(line.status, LegacyStatus::Created);
/// assert_eq!(line.cookie.value, "VBphpKSNoAUxJQ1er3NlJ65U");
/// assert_eq!(line.cookie.created_ns, 1_795_315_790_212_000_000);
/// ```
///
/// # Errors
///
/// A [`LegacyLineError`] if the line is not a JSON object; if `cbtid` is missing, not a
/// string, empty, longer than 509 bytes or not made of RFC 6265
/// cookie-octets; if `status` is present and not one of the three known strings (or null);
/// if `created` is missing or not a valid timestamp, or `modified`/`deleted` is neither null
/// nor a valid timestamp; if `max_age` is missing or not a non-negative integer; or if
/// `authid`, `authrole`, `authmethod` or `authrealm` is neither a string nor null.
pub fn parse_line(line: &str) -> Result<LegacyLine, LegacyLineError> {
    let mut map = match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(map)) => map,
        Ok(other) => {
            return Err(LegacyLineError::NotAnObject {
                found: kind_of(&other),
            });
        }
        Err(e) => {
            return Err(LegacyLineError::NotJson {
                detail: e.to_string(),
            });
        }
    };

    let value = take_cbtid(&mut map)?;
    let status = take_status(&mut map)?;
    let created_ns = match map.remove("created") {
        None => {
            return Err(LegacyLineError::MissingField {
                field: "created",
                expected: EXPECTED_TIMESTAMP,
            });
        }
        Some(v) => timestamp("created", v, EXPECTED_TIMESTAMP)?,
    };
    let max_age = take_max_age(&mut map)?;
    let modified_ns = take_opt_timestamp(&mut map, "modified")?;
    // Checked for consistency only: the status says whether the line deletes the cookie.
    take_opt_timestamp(&mut map, "deleted")?;
    let authid = take_opt_string(&mut map, "authid")?;
    let authrole = take_opt_string(&mut map, "authrole")?;
    let authmethod = take_opt_string(&mut map, "authmethod")?;
    let authrealm = take_opt_string(&mut map, "authrealm")?;
    let authextra = match map.remove("authextra") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v),
    };
    // An integer beyond 64 bits would be read, stored and returned as a float: refuse it.
    if authextra.is_some()
        && let Some((path, literal)) = crate::record::bigint::big_integer(line)
        && path.starts_with("authextra")
    {
        let float = literal.parse::<f64>().unwrap_or_default();
        return Err(LegacyLineError::InvalidField {
            field: "authextra",
            expected: "integers that fit in 64 bits (store larger ones as strings)",
            found: format!("{literal} at {path}, which would come back as the float {float}"),
        });
    }

    Ok(LegacyLine {
        status,
        cookie: LegacyCookie {
            value,
            created_ns,
            max_age,
            authid,
            authrole,
            authmethod,
            authrealm,
            authextra,
            modified_ns,
        },
    })
}

fn take_cbtid(map: &mut Map<String, Value>) -> Result<String, LegacyLineError> {
    let value = match map.remove("cbtid") {
        Some(Value::String(s)) => s,
        None => {
            return Err(LegacyLineError::MissingField {
                field: "cbtid",
                expected: EXPECTED_CBTID,
            });
        }
        Some(other) => {
            return Err(LegacyLineError::InvalidField {
                field: "cbtid",
                expected: EXPECTED_CBTID,
                found: describe(&other),
            });
        }
    };
    if value.is_empty() {
        return Err(LegacyLineError::EmptyCbtid);
    }
    if let Some((at, ch)) = value.char_indices().find(|&(_, c)| !is_cookie_octet(c)) {
        return Err(LegacyLineError::CbtidBadChar { ch, at });
    }
    if value.len() > MAX_CBTID_LEN {
        return Err(LegacyLineError::CbtidTooLong { len: value.len() });
    }
    Ok(value)
}

fn is_cookie_octet(c: char) -> bool {
    c.is_ascii() && crate::record::value::is_cookie_octet(c as u8)
}

fn take_status(map: &mut Map<String, Value>) -> Result<LegacyStatus, LegacyLineError> {
    match map.remove("status") {
        None | Some(Value::Null) => Ok(LegacyStatus::Unspecified),
        Some(Value::String(s)) => match s.as_str() {
            "created" => Ok(LegacyStatus::Created),
            "modified" => Ok(LegacyStatus::Modified),
            "deleted" => Ok(LegacyStatus::Deleted),
            _ => Err(LegacyLineError::InvalidField {
                field: "status",
                expected: EXPECTED_STATUS,
                found: describe(&Value::String(s)),
            }),
        },
        Some(other) => Err(LegacyLineError::InvalidField {
            field: "status",
            expected: EXPECTED_STATUS,
            found: describe(&other),
        }),
    }
}

fn take_max_age(map: &mut Map<String, Value>) -> Result<u64, LegacyLineError> {
    match map.remove("max_age") {
        None => Err(LegacyLineError::MissingField {
            field: "max_age",
            expected: EXPECTED_MAX_AGE,
        }),
        Some(v) => v.as_u64().ok_or_else(|| LegacyLineError::InvalidField {
            field: "max_age",
            expected: EXPECTED_MAX_AGE,
            found: describe(&v),
        }),
    }
}

fn take_opt_timestamp(
    map: &mut Map<String, Value>,
    field: &'static str,
) -> Result<Option<u64>, LegacyLineError> {
    match map.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => timestamp(field, v, EXPECTED_OPT_TIMESTAMP).map(Some),
    }
}

fn timestamp(
    field: &'static str,
    v: Value,
    expected: &'static str,
) -> Result<u64, LegacyLineError> {
    match v {
        Value::String(s) => rfc3339::parse_rfc3339_ns(&s)
            .map_err(|error| LegacyLineError::BadTimestamp { field, error }),
        other => Err(LegacyLineError::InvalidField {
            field,
            expected,
            found: describe(&other),
        }),
    }
}

fn take_opt_string(
    map: &mut Map<String, Value>,
    field: &'static str,
) -> Result<Option<String>, LegacyLineError> {
    match map.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(LegacyLineError::InvalidField {
            field,
            expected: EXPECTED_OPT_STRING,
            found: describe(&other),
        }),
    }
}

/// The kind of a JSON value, with an article, for messages.
fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A JSON value for an error message: scalars as JSON text (shortened if long), arrays and
/// objects by kind only.
fn describe(v: &Value) -> String {
    match v {
        Value::Array(_) | Value::Object(_) => kind_of(v).to_owned(),
        Value::String(s) => match s.char_indices().nth(QUOTE_LIMIT) {
            Some((cut, _)) => format!("{:?}…", s.get(..cut).unwrap_or_default()),
            None => format!("{s:?}"),
        },
        scalar => scalar.to_string(),
    }
}

/// The outcome of replaying a `cookies.dat` file with [`replay`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Replay {
    /// The cookies left at the end, each as its last line states it, in the order they were
    /// first seen (a cookie deleted and then recorded again counts as seen anew).
    pub cookies: Vec<LegacyCookie>,
    /// The lines that were rejected: 1-based line number and why. They were skipped.
    pub bad_lines: Vec<(u64, LegacyLineError)>,
    /// How many lines were read, blank and bad ones included.
    pub lines: u64,
    /// How many cookies a `deleted` line removed (a `deleted` line for a cookie not present
    /// at that point is not counted).
    pub deleted: u64,
    /// How many lines were empty or held only whitespace; they are ignored.
    pub blank_lines: u64,
}

/// Replays a `cookies.dat` file: every line in order, the last line for a `cbtid` wins, and a
/// `deleted` line removes the cookie.
///
/// Lines end in `\n` or `\r\n`; the last one may lack its line ending. Lines that are empty
/// or only whitespace are counted in [`Replay::blank_lines`] and otherwise ignored. Lines
/// that are not valid UTF-8 or that [`parse_line`] rejects are recorded in
/// [`Replay::bad_lines`] and skipped; they never stop the replay. Lines longer than
/// [`MAX_LINE`] are bad lines too ([`LegacyLineError::TooLong`]), skipped without being held
/// in memory.
///
/// ```
/// # use cookiestore::maintenance::replay;
/// let file = concat!(
///     r#"{"cbtid": "a1", "status": "created", "created": "2026-11-22T02:49:50.212Z", "max_age": 60}"#, "\n",
///     r#"{"cbtid": "b2", "status": "created", "created": "2026-11-22T02:49:50.213Z", "max_age": 60}"#, "\n",
///     r#"{"cbtid": "a1", "status": "deleted", "created": "2026-11-22T02:49:50.212Z", "max_age": 60}"#, "\n",
///     "not json\n",
/// );
/// let r = replay(file.as_bytes()).unwrap();
/// assert_eq!(r.cookies.len(), 1);
/// assert_eq!(r.cookies[0].value, "b2");
/// assert_eq!((r.lines, r.deleted, r.bad_lines.len()), (4, 1, 1));
/// assert_eq!(r.bad_lines[0].0, 4);
/// ```
///
/// # Errors
///
/// Only the errors of reading from `reader`.
pub fn replay<R: BufRead>(mut reader: R) -> io::Result<Replay> {
    let mut out = Replay::default();
    // Cookies in first-seen order; a deleted one leaves a `None` behind.
    let mut slots: Vec<Option<LegacyCookie>> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut buf = Vec::new();
    while let Some(len) = read_line_bounded(&mut reader, &mut buf, MAX_LINE)? {
        out.lines += 1;
        let number = out.lines;
        let Some(parsed) = parse_read_line(&buf, len) else {
            out.blank_lines += 1;
            continue;
        };
        match parsed {
            Err(e) => out.bad_lines.push((number, e)),
            Ok(LegacyLine {
                status: LegacyStatus::Deleted,
                cookie,
            }) => {
                if let Some(i) = index.remove(&cookie.value) {
                    if let Some(slot) = slots.get_mut(i) {
                        *slot = None;
                    }
                    out.deleted += 1;
                }
            }
            Ok(LegacyLine { cookie, .. }) => match index.get(&cookie.value) {
                Some(&i) => {
                    if let Some(slot) = slots.get_mut(i) {
                        *slot = Some(cookie);
                    }
                }
                None => {
                    index.insert(cookie.value.clone(), slots.len());
                    slots.push(Some(cookie));
                }
            },
        }
    }
    out.cookies = slots.into_iter().flatten().collect();
    Ok(out)
}

/// Parses a line [`read_line_bounded`] read (`len` is its whole length): `None` for a blank
/// line.
pub(crate) fn parse_read_line(buf: &[u8], len: u64) -> Option<Result<LegacyLine, LegacyLineError>> {
    if len > MAX_LINE as u64 {
        return Some(Err(LegacyLineError::TooLong { len }));
    }
    let mut bytes = buf;
    if let Some(rest) = bytes.strip_suffix(b"\n") {
        bytes = rest;
    }
    if let Some(rest) = bytes.strip_suffix(b"\r") {
        bytes = rest;
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    Some(match std::str::from_utf8(bytes) {
        Ok(text) => parse_line(text),
        Err(e) => Err(LegacyLineError::NotUtf8 {
            valid_up_to: e.valid_up_to(),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::fs::File;
    use std::io::{BufReader, Read};

    const DAT: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/crossbar-cookies.dat"
    );
    const EXPECTED: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/crossbar-cookies.expected.jsonl"
    );

    /// 2026-11-22T02:49:50.212Z
    const T0: u64 = 1_795_315_790_212_000_000;
    const WEEK: u64 = 604_800;

    fn fixture_bytes() -> Vec<u8> {
        std::fs::read(DAT).expect("fixture crossbar-cookies.dat")
    }

    fn good(cbtid: &str, status: &str) -> String {
        json!({
            "cbtid": cbtid, "status": status, "created": "2026-11-22T02:49:50.212Z",
            "modified": null, "deleted": null, "max_age": WEEK,
            "authid": null, "authrole": null, "authmethod": null, "authrealm": null,
            "authextra": null
        })
        .to_string()
    }

    fn values(r: &Replay) -> Vec<&str> {
        r.cookies.iter().map(|c| c.value.as_str()).collect()
    }

    fn bad_numbers(r: &Replay) -> Vec<u64> {
        r.bad_lines.iter().map(|(n, _)| *n).collect()
    }

    fn err(line: &str) -> LegacyLineError {
        parse_line(line).expect_err(line)
    }

    fn opt_str(v: &Value, key: &str) -> Option<String> {
        v.get(key).and_then(Value::as_str).map(str::to_owned)
    }

    #[test]
    fn fixture_replay_matches_expected_state() {
        let r = replay(BufReader::new(File::open(DAT).expect("fixture"))).expect("replay");
        assert_eq!(r.lines, 78);
        assert_eq!(r.blank_lines, 0);
        assert!(r.bad_lines.is_empty(), "{:?}", r.bad_lines);
        assert_eq!(r.deleted, 8);
        assert_eq!(r.cookies.len(), 32);

        let expected_text = std::fs::read_to_string(EXPECTED).expect("fixture");
        let mut expected: Vec<LegacyCookie> = expected_text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let v: Value = serde_json::from_str(l).expect("expected line is JSON");
                let created = v["created"].as_str().expect("created");
                LegacyCookie {
                    value: opt_str(&v, "cbtid").expect("cbtid"),
                    created_ns: rfc3339::parse_rfc3339_ns(created).expect("created parses"),
                    max_age: v["max_age"].as_u64().expect("max_age"),
                    authid: opt_str(&v, "authid"),
                    authrole: opt_str(&v, "authrole"),
                    authmethod: opt_str(&v, "authmethod"),
                    authrealm: opt_str(&v, "authrealm"),
                    authextra: v.get("authextra").filter(|x| !x.is_null()).cloned(),
                    modified_ns: None,
                }
            })
            .collect();
        assert_eq!(expected.len(), 32);
        expected.sort_by(|a, b| a.value.cmp(&b.value));

        let mut got = r.cookies.clone();
        got.sort_by(|a, b| a.value.cmp(&b.value));
        for (g, e) in got.iter().zip(&expected) {
            let g_without_modified = LegacyCookie {
                modified_ns: None,
                ..g.clone()
            };
            assert_eq!(&g_without_modified, e);
        }
        assert_eq!(got.len(), expected.len());

        // Re-authenticated cookies keep their last state, including when it changed.
        let renamed = r
            .cookies
            .iter()
            .find(|c| c.authid.as_deref() == Some("user36-renamed"))
            .expect("user36-renamed");
        assert_eq!(renamed.authrole.as_deref(), Some("admin"));
        assert_eq!(renamed.authextra, Some(json!({"i": 36})));
        assert_eq!(
            renamed.modified_ns,
            Some(rfc3339::parse_rfc3339_ns("2026-11-22T02:49:50.231Z").expect("ts"))
        );
        let never_modified = r
            .cookies
            .iter()
            .find(|c| c.value == "MWaqHDq3eKwiMrKJA9xfrv/S")
            .expect("MWaq…");
        assert_eq!(never_modified.modified_ns, None);
        assert_eq!(never_modified.authid, None);
    }

    #[test]
    fn fixture_deleted_cookies_are_absent() {
        let text = String::from_utf8(fixture_bytes()).expect("utf-8");
        let mut deleted: Vec<String> = text
            .lines()
            .filter_map(|l| parse_line(l).ok())
            .filter(|l| l.status == LegacyStatus::Deleted)
            .map(|l| l.cookie.value)
            .collect();
        deleted.sort();
        deleted.dedup();
        assert_eq!(deleted.len(), 8);

        let r = replay(text.as_bytes()).expect("replay");
        for d in &deleted {
            assert!(!values(&r).contains(&d.as_str()), "{d} should be deleted");
        }
    }

    #[test]
    fn fixture_cookies_keep_first_seen_order() {
        let text = String::from_utf8(fixture_bytes()).expect("utf-8");
        let r = replay(text.as_bytes()).expect("replay");
        let mut first_seen: Vec<String> = Vec::new();
        for l in text.lines() {
            let v = parse_line(l).expect("fixture line").cookie.value;
            if !first_seen.contains(&v) {
                first_seen.push(v);
            }
        }
        let survivors: Vec<&str> = first_seen
            .iter()
            .map(String::as_str)
            .filter(|v| values(&r).contains(v))
            .collect();
        assert_eq!(values(&r), survivors);
    }

    #[test]
    fn fixture_expiry_with_pinned_clock() {
        let r = replay(fixture_bytes().as_slice()).expect("replay");
        let day_after = T0 + 86_400 * 1_000_000_000;
        let much_later = T0 + 8 * 86_400 * 1_000_000_000;
        for c in &r.cookies {
            assert_eq!(c.max_age, WEEK);
            assert_eq!(c.expires_ns(), c.created_ns + WEEK * 1_000_000_000);
            assert!(!c.is_expired(day_after));
            assert!(c.is_expired(much_later));
        }
    }

    #[test]
    fn expiry_boundaries() {
        let mut c = parse_line(&good("abc", "created")).expect("good").cookie;
        let expires = T0 + WEEK * 1_000_000_000;
        assert_eq!(c.expires_ns(), expires);
        assert!(!c.is_expired(expires - 1));
        assert!(c.is_expired(expires));
        c.max_age = 0;
        assert!(c.is_expired(T0));
        c.max_age = u64::MAX;
        assert_eq!(c.expires_ns(), u64::MAX);
        assert!(!c.is_expired(u64::MAX - 1));
        assert!(c.is_expired(u64::MAX));
    }

    #[test]
    fn broken_lines_are_reported_and_good_lines_kept() {
        // (line number, content): the numbers document the test and are checked.
        let numbered: Vec<(u64, Vec<u8>)> = vec![
            (1, good("good1", "created").into_bytes()),
            (2, b"{not json".to_vec()),
            (3, good("good2", "created").into_bytes()),
            (4, br#"{"status": "created", "created": "2026-11-22T02:49:50.212Z", "max_age": 1}"#.to_vec()),
            (5, br#"{"cbtid": "x", "created": "yesterday", "max_age": 1}"#.to_vec()),
            (6, b"\xff\xfe{\"cbtid\": \"x\"}".to_vec()),
            (7, good("good3", "modified").into_bytes()),
            (8, br#"{"cbtid": 42, "created": "2026-11-22T02:49:50.212Z", "max_age": 1}"#.to_vec()),
            (9, br#"{"cbtid": "x", "created": "2026-11-22T02:49:50.212Z", "max_age": "1"}"#.to_vec()),
            (10, br#"{"cbtid": "x", "created": "2026-11-22T02:49:50.212Z", "max_age": 1, "authid": 7}"#.to_vec()),
            (11, b"[1, 2, 3]".to_vec()),
            (12, br#"{"cbtid": "x", "status": "gone", "created": "2026-11-22T02:49:50.212Z", "max_age": 1}"#.to_vec()),
            (13, br#"{"cbtid": "a b", "created": "2026-11-22T02:49:50.212Z", "max_age": 1}"#.to_vec()),
            (14, br#"{"cbtid": "x", "created": "2026-11-22T02:49:50.212Z", "max_age": -1}"#.to_vec()),
            (15, good("good4", "").into_bytes()),
            (16, b"{\"cbtid\": \"caf\xc3\xa9\xc3\"}".to_vec()),
            (17, good("good5", "created").into_bytes()),
        ];
        assert!(numbered.iter().zip(1..).all(|((n, _), i)| *n == i));
        let lines: Vec<Vec<u8>> = numbered.into_iter().map(|(_, l)| l).collect();
        let file = lines.join(&b'\n');
        let r = replay(file.as_slice()).expect("replay");
        assert_eq!(r.lines, 17);
        assert_eq!(values(&r), ["good1", "good2", "good3", "good5"]);
        assert_eq!(
            bad_numbers(&r),
            [2, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15, 16]
        );
        let by_line: HashMap<u64, &LegacyLineError> =
            r.bad_lines.iter().map(|(n, e)| (*n, e)).collect();
        assert!(matches!(by_line[&2], LegacyLineError::NotJson { .. }));
        assert!(matches!(
            by_line[&4],
            LegacyLineError::MissingField { field: "cbtid", .. }
        ));
        assert!(matches!(
            by_line[&5],
            LegacyLineError::BadTimestamp {
                field: "created",
                ..
            }
        ));
        assert_eq!(by_line[&6], &LegacyLineError::NotUtf8 { valid_up_to: 0 });
        assert!(matches!(
            by_line[&8],
            LegacyLineError::InvalidField { field: "cbtid", .. }
        ));
        assert!(matches!(
            by_line[&9],
            LegacyLineError::InvalidField {
                field: "max_age",
                ..
            }
        ));
        assert!(matches!(
            by_line[&10],
            LegacyLineError::InvalidField {
                field: "authid",
                ..
            }
        ));
        assert_eq!(
            by_line[&11],
            &LegacyLineError::NotAnObject { found: "an array" }
        );
        assert!(matches!(
            by_line[&12],
            LegacyLineError::InvalidField {
                field: "status",
                ..
            }
        ));
        assert_eq!(
            by_line[&13],
            &LegacyLineError::CbtidBadChar { ch: ' ', at: 1 }
        );
        assert!(matches!(
            by_line[&14],
            LegacyLineError::InvalidField {
                field: "max_age",
                ..
            }
        ));
        // `"status": ""` is not a known status.
        assert!(matches!(
            by_line[&15],
            LegacyLineError::InvalidField {
                field: "status",
                ..
            }
        ));
        assert_eq!(by_line[&16], &LegacyLineError::NotUtf8 { valid_up_to: 16 });
    }

    #[test]
    fn error_messages_say_what_is_wrong() {
        let e = err(r#"{"cbtid": "x", "created": "yesterday", "max_age": 1}"#);
        let msg = e.to_string();
        assert!(
            msg.starts_with(
                "field \"created\": expected a UTC timestamp like 2026-11-22T02:49:50.212Z, got \"yesterday\" ("
            ),
            "{msg}"
        );
        assert!(std::error::Error::source(&e).is_some());

        let cases: &[(&str, &str)] = &[
            ("", "line is not valid JSON ("),
            ("{\"cbtid\": ", "line is not valid JSON ("),
            ("\"str\"", "line is a string, expected a JSON object"),
            ("null", "line is null, expected a JSON object"),
            (
                r#"{"created": "2026-11-22T02:49:50.212Z", "max_age": 1}"#,
                "field \"cbtid\": missing, expected the cookie value as a string",
            ),
            (
                r#"{"cbtid": null, "created": "2026-11-22T02:49:50.212Z", "max_age": 1}"#,
                "field \"cbtid\": expected the cookie value as a string, got null",
            ),
            (
                r#"{"cbtid": "", "created": "2026-11-22T02:49:50.212Z", "max_age": 1}"#,
                "field \"cbtid\": expected a non-empty cookie value, got \"\"",
            ),
            (
                r#"{"cbtid": "a;b", "created": "2026-11-22T02:49:50.212Z", "max_age": 1}"#,
                "field \"cbtid\": character ';' at byte 1 is not allowed in a cookie value",
            ),
            (
                r#"{"cbtid": "x", "max_age": 1}"#,
                "field \"created\": missing, expected a UTC timestamp like 2026-11-22T02:49:50.212Z",
            ),
            (
                r#"{"cbtid": "x", "created": 1795315790, "max_age": 1}"#,
                "field \"created\": expected a UTC timestamp like 2026-11-22T02:49:50.212Z, got 1795315790",
            ),
            (
                r#"{"cbtid": "x", "created": null, "max_age": 1}"#,
                "field \"created\": expected a UTC timestamp like 2026-11-22T02:49:50.212Z, got null",
            ),
            (
                r#"{"cbtid": "x", "created": "2026-11-22T02:49:50.212Z"}"#,
                "field \"max_age\": missing, expected a whole number of seconds (0 or more)",
            ),
            (
                r#"{"cbtid": "x", "created": "2026-11-22T02:49:50.212Z", "max_age": 1.5}"#,
                "field \"max_age\": expected a whole number of seconds (0 or more), got 1.5",
            ),
            (
                r#"{"cbtid": "x", "created": "2026-11-22T02:49:50.212Z", "max_age": -5}"#,
                "field \"max_age\": expected a whole number of seconds (0 or more), got -5",
            ),
            (
                r#"{"cbtid": "x", "status": "gone", "created": "2026-11-22T02:49:50.212Z", "max_age": 1}"#,
                "field \"status\": expected \"created\", \"modified\" or \"deleted\", got \"gone\"",
            ),
            (
                r#"{"cbtid": "x", "status": 3, "created": "2026-11-22T02:49:50.212Z", "max_age": 1}"#,
                "field \"status\": expected \"created\", \"modified\" or \"deleted\", got 3",
            ),
            (
                r#"{"cbtid": "x", "created": "2026-11-22T02:49:50.212Z", "max_age": 1, "authrole": ["a"]}"#,
                "field \"authrole\": expected a string or null, got an array",
            ),
            (
                r#"{"cbtid": "x", "created": "2026-11-22T02:49:50.212Z", "max_age": 1, "authrealm": true}"#,
                "field \"authrealm\": expected a string or null, got true",
            ),
            (
                r#"{"cbtid": "x", "created": "2026-11-22T02:49:50.212Z", "max_age": 1, "authmethod": {}}"#,
                "field \"authmethod\": expected a string or null, got an object",
            ),
            (
                r#"{"cbtid": "x", "created": "2026-11-22T02:49:50.212Z", "max_age": 1, "modified": "soon"}"#,
                "field \"modified\": expected a UTC timestamp like 2026-11-22T02:49:50.212Z, got \"soon\" (",
            ),
            (
                r#"{"cbtid": "x", "created": "2026-11-22T02:49:50.212Z", "max_age": 1, "deleted": 0}"#,
                "field \"deleted\": expected a UTC timestamp like 2026-11-22T02:49:50.212Z, or null, got 0",
            ),
        ];
        for (line, start) in cases {
            let msg = err(line).to_string();
            assert!(
                msg.starts_with(start),
                "{line}\n  gave: {msg}\n  want: {start}…"
            );
        }
        assert_eq!(
            LegacyLineError::NotUtf8 { valid_up_to: 3 }.to_string(),
            "line is not valid UTF-8: invalid byte sequence at byte 3"
        );
        assert_eq!(
            LegacyLineError::CbtidTooLong { len: 510 }.to_string(),
            "field \"cbtid\": the cookie value is 510 bytes long, at most 509 are allowed"
        );
        // Long values are shortened in messages.
        let long = "z".repeat(10_000);
        let msg = err(&format!(
            r#"{{"cbtid": "x", "created": "2026-11-22T02:49:50.212Z", "max_age": 1, "authid": 1, "status": "{long}"}}"#
        ))
        .to_string();
        assert!(msg.len() < 200, "{msg}");
    }

    #[test]
    fn cbtid_must_be_cookie_octets() {
        let line = |cbtid: &str| {
            json!({"cbtid": cbtid, "created": "2026-11-22T02:49:50.212Z", "max_age": 1}).to_string()
        };
        for ok in [
            "VBphpKSNoAUxJQ1er3NlJ65U",
            "a+b/c=",
            "!#$%&'()*+-./0123456789:<=>?@AZ[]^_`az{|}~",
        ] {
            assert_eq!(parse_line(&line(ok)).expect(ok).cookie.value, ok);
        }
        for (bad, ch, at) in [
            ("a b", ' ', 1),
            ("a\"b", '"', 1),
            ("ab,", ',', 2),
            (";", ';', 0),
            ("a\\b", '\\', 1),
            ("a\tb", '\t', 1),
            ("a\u{7f}", '\u{7f}', 1),
            ("abcé", 'é', 3),
            ("\u{0}", '\u{0}', 0),
        ] {
            assert_eq!(
                err(&line(bad)),
                LegacyLineError::CbtidBadChar { ch, at },
                "{bad:?}"
            );
        }
        let max = "a".repeat(MAX_CBTID_LEN);
        assert_eq!(
            parse_line(&line(&max)).expect("509 bytes").cookie.value,
            max
        );
        let over = "a".repeat(MAX_CBTID_LEN + 1);
        assert_eq!(
            err(&line(&over)),
            LegacyLineError::CbtidTooLong {
                len: MAX_CBTID_LEN + 1
            }
        );
        assert_eq!(err(&line("")), LegacyLineError::EmptyCbtid);
    }

    #[test]
    fn parses_all_fields() {
        let l = parse_line(
            r#"{"cbtid": "VBphpKSNoAUxJQ1er3NlJ65U", "status": "modified", "created": "2026-11-22T02:49:50.212Z", "modified": "2026-11-22T02:49:50.221Z", "deleted": null, "max_age": 604800, "authid": "user0", "authrole": "frontend", "authmethod": "wampcra", "authrealm": "realm1", "authextra": {"i": 0, "tags": ["x"]}, "unknown": [1]}"#,
        )
        .expect("line");
        assert_eq!(
            l,
            LegacyLine {
                status: LegacyStatus::Modified,
                cookie: LegacyCookie {
                    value: "VBphpKSNoAUxJQ1er3NlJ65U".into(),
                    created_ns: T0,
                    max_age: WEEK,
                    authid: Some("user0".into()),
                    authrole: Some("frontend".into()),
                    authmethod: Some("wampcra".into()),
                    authrealm: Some("realm1".into()),
                    authextra: Some(json!({"i": 0, "tags": ["x"]})),
                    modified_ns: Some(T0 + 9_000_000),
                },
            }
        );
        // Statuses; purge_on_startup lines have none.
        let with_status = |s: Value| {
            let mut v = json!({"cbtid": "x", "created": "2026-11-22T02:49:50.212Z", "max_age": 1});
            if let Some(m) = v.as_object_mut() {
                m.insert("status".into(), s);
            }
            parse_line(&v.to_string()).map(|l| l.status)
        };
        assert_eq!(with_status(json!("created")), Ok(LegacyStatus::Created));
        assert_eq!(with_status(json!("deleted")), Ok(LegacyStatus::Deleted));
        assert_eq!(with_status(json!(null)), Ok(LegacyStatus::Unspecified));
        assert!(with_status(json!("Created")).is_err());
        let l =
            parse_line(r#"{"cbtid": "x", "created": "2026-11-22T02:49:50.212Z", "max_age": 0}"#)
                .expect("minimal line");
        assert_eq!(l.status, LegacyStatus::Unspecified);
        assert_eq!(l.cookie.max_age, 0);
        assert_eq!(l.cookie.modified_ns, None);
        // Offsets are converted; authextra may be any JSON.
        let l = parse_line(
            r#" {"cbtid": "x", "created": "2026-11-22T03:49:50.212+01:00", "max_age": 18446744073709551615, "authextra": "s"} "#,
        )
        .expect("line");
        assert_eq!(l.cookie.created_ns, T0);
        assert_eq!(l.cookie.max_age, u64::MAX);
        assert_eq!(l.cookie.authextra, Some(json!("s")));
        // max_age must be a JSON integer in 0..=u64::MAX.
        let max_age = |m: &str| {
            let line = format!(
                r#"{{"cbtid": "x", "created": "2026-11-22T02:49:50.212Z", "max_age": {m}}}"#
            );
            parse_line(&line).map(|l| l.cookie.max_age)
        };
        assert_eq!(max_age("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(max_age("0"), Ok(0));
        for bad in [
            "18446744073709551616",
            "1e3",
            "604800.0",
            "-1",
            "\"60\"",
            "null",
            "true",
            "[60]",
        ] {
            assert!(
                matches!(
                    max_age(bad),
                    Err(LegacyLineError::InvalidField {
                        field: "max_age",
                        ..
                    })
                ),
                "{bad}"
            );
        }
        // Before 1970.
        assert!(matches!(
            err(r#"{"cbtid": "x", "created": "1969-12-31T23:59:59Z", "max_age": 1}"#),
            LegacyLineError::BadTimestamp {
                field: "created",
                ..
            }
        ));
    }

    #[test]
    fn blank_lines_are_ignored() {
        let file = format!(
            "\n{}\n   \n\t\r\n\r\n{}\n\n",
            good("a", "created"),
            good("b", "created")
        );
        let r = replay(file.as_bytes()).expect("replay");
        assert_eq!(values(&r), ["a", "b"]);
        assert_eq!(r.lines, 7);
        assert_eq!(r.blank_lines, 5);
        assert!(r.bad_lines.is_empty());

        let r = replay(&b""[..]).expect("replay");
        assert_eq!(r, Replay::default());
    }

    #[test]
    fn crlf_line_endings() {
        let lf = fixture_bytes();
        let crlf: Vec<u8> = lf
            .iter()
            .flat_map(|&b| {
                if b == b'\n' {
                    vec![b'\r', b'\n']
                } else {
                    vec![b]
                }
            })
            .collect();
        let a = replay(lf.as_slice()).expect("lf");
        let b = replay(crlf.as_slice()).expect("crlf");
        assert_eq!(a, b);
        assert_eq!(b.cookies.len(), 32);
        // A stray \r inside a line is whitespace to JSON; a lone \r line is blank.
        let file = format!("{}\r\n\r\n{}\r", good("a", "created"), good("b", "created"));
        let r = replay(file.as_bytes()).expect("replay");
        assert_eq!(values(&r), ["a", "b"]);
        assert_eq!((r.lines, r.blank_lines), (3, 1));
    }

    #[test]
    fn last_line_without_newline() {
        let mut bytes = fixture_bytes();
        assert_eq!(bytes.pop(), Some(b'\n'));
        let r = replay(bytes.as_slice()).expect("replay");
        assert_eq!(r, replay(fixture_bytes().as_slice()).expect("replay"));
        assert_eq!((r.lines, r.cookies.len(), r.deleted), (78, 32, 8));

        let one = good("only", "created");
        let r = replay(one.as_bytes()).expect("replay");
        assert_eq!(values(&r), ["only"]);
        assert_eq!(r.lines, 1);

        // A truncated last line (e.g. a crash during the append) is a bad line.
        let file = format!("{}\n{{\"cbtid\": \"trunc", good("a", "created"));
        let r = replay(file.as_bytes()).expect("replay");
        assert_eq!(values(&r), ["a"]);
        assert_eq!(bad_numbers(&r), [2]);
    }

    #[test]
    fn replay_semantics() {
        let file = [
            good("a", "created"),
            good("b", "created"),
            good("ghost", "deleted"),
            good("a", "deleted"),
            good("c", ""),
            good("a", "created"),
            good("b", "deleted"),
            good("b", "deleted"),
        ]
        .join("\n")
        .replace(r#","status":"""#, "");
        let r = replay(file.as_bytes()).expect("replay");
        // "a" was deleted and created again: it is seen anew after "c".
        assert_eq!(values(&r), ["c", "a"]);
        assert_eq!(r.deleted, 2);
        assert!(r.bad_lines.is_empty(), "{:?}", r.bad_lines);

        // The last line wins, whatever its status says.
        let file = [
            good("a", "created"),
            good("a", "modified").replace("\"authid\":null", "\"authid\":\"u1\""),
            good("a", "created").replace("\"authid\":null", "\"authid\":\"u2\""),
        ]
        .join("\n");
        let r = replay(file.as_bytes()).expect("replay");
        assert_eq!(r.cookies.len(), 1);
        assert_eq!(r.cookies[0].authid.as_deref(), Some("u2"));
    }

    #[test]
    fn long_lines_and_tiny_buffers() {
        let big_extra = "x".repeat(3 << 20);
        let long = json!({
            "cbtid": "big", "created": "2026-11-22T02:49:50.212Z", "max_age": 1,
            "authextra": {"blob": big_extra}
        })
        .to_string();
        let too_long_cbtid = json!({
            "cbtid": "c".repeat(600), "created": "2026-11-22T02:49:50.212Z", "max_age": 1
        })
        .to_string();
        let deep = format!(
            r#"{{"cbtid": "deep", "created": "2026-11-22T02:49:50.212Z", "max_age": 1, "authextra": {}{}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let long_len = long.len() as u64 + 1;
        let file = [long, too_long_cbtid, deep, good("small", "created")].join("\n");
        let r = replay(BufReader::with_capacity(7, file.as_bytes())).expect("replay");
        // Lines longer than MAX_LINE are bad lines, never read into memory whole.
        assert_eq!(values(&r), ["small"]);
        assert_eq!(bad_numbers(&r), [1, 2, 3]);
        assert_eq!(r.bad_lines[0].1, LegacyLineError::TooLong { len: long_len });
        assert_eq!(r.bad_lines[1].1, LegacyLineError::CbtidTooLong { len: 600 });
        assert!(matches!(r.bad_lines[2].1, LegacyLineError::NotJson { .. }));

        let fixture = replay(BufReader::with_capacity(1, fixture_bytes().as_slice()));
        assert_eq!(fixture.expect("replay").cookies.len(), 32);
    }

    #[test]
    fn io_errors_bubble_up() {
        struct Failing {
            data: Vec<u8>,
            pos: usize,
        }
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let rest = self.data.get(self.pos..).unwrap_or_default();
                if rest.is_empty() {
                    return Err(io::Error::other("disk on fire"));
                }
                let n = rest.len().min(buf.len()).min(5);
                buf[..n].copy_from_slice(&rest[..n]);
                self.pos += n;
                Ok(n)
            }
        }
        let reader = BufReader::new(Failing {
            data: format!("{}\n", good("a", "created")).into_bytes(),
            pos: 0,
        });
        let e = replay(reader).expect_err("I/O error");
        assert_eq!(e.to_string(), "disk on fire");
    }

    fn xorshift(state: &mut u64) -> u64 {
        let mut x = *state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *state = x;
        x
    }

    #[test]
    fn random_bytes_never_panic() {
        let fixture = fixture_bytes();
        let samples: Vec<&[u8]> = fixture.split(|&b| b == b'\n').collect();
        const PIECES: &[&[u8]] = &[
            b"{",
            b"}",
            b"[",
            b"]",
            b"\"",
            b":",
            b",",
            b"\\",
            b"\\u",
            b"\xff",
            b"\xc3",
            b"\r",
            b"\n",
            b" ",
            b"null",
            b"-1",
            b"1e999",
            b"\"cbtid\"",
            b"\"created\"",
            b"\"max_age\"",
            b"\"status\"",
            b"\"deleted\"",
            b"\"authextra\"",
            b"\"2026-11-22T02:49:50.212Z\"",
            b"604800",
            b"\xe2\x80",
            b"\x00",
        ];
        let mut state = 0x1234_5678_9ABC_DEF1;
        for round in 0..3000 {
            let mut file = Vec::new();
            let line_count = xorshift(&mut state) % 8;
            for _ in 0..line_count {
                match xorshift(&mut state) % 4 {
                    // Random bytes.
                    0 => {
                        let len = xorshift(&mut state) % 120;
                        file.extend((0..len).map(|_| xorshift(&mut state) as u8));
                    }
                    // JSON-ish fragments.
                    1 => {
                        for _ in 0..xorshift(&mut state) % 30 {
                            let i = (xorshift(&mut state) as usize) % PIECES.len();
                            file.extend_from_slice(PIECES.get(i).copied().unwrap_or_default());
                        }
                    }
                    // A fixture line with a few bytes changed, cut short or not.
                    _ => {
                        let i = (xorshift(&mut state) as usize) % samples.len();
                        let mut line = samples.get(i).copied().unwrap_or_default().to_vec();
                        for _ in 0..xorshift(&mut state) % 4 {
                            if !line.is_empty() {
                                let at = (xorshift(&mut state) as usize) % line.len();
                                if let Some(b) = line.get_mut(at) {
                                    *b = xorshift(&mut state) as u8;
                                }
                            }
                        }
                        if xorshift(&mut state).is_multiple_of(5) {
                            let keep = (xorshift(&mut state) as usize) % (line.len() + 1);
                            line.truncate(keep);
                        }
                        file.extend_from_slice(&line);
                    }
                }
                file.push(b'\n');
            }
            let r = replay(file.as_slice()).expect("in-memory reads never fail");
            let expected_lines = file.iter().filter(|&&b| b == b'\n').count() as u64;
            assert_eq!(r.lines, expected_lines, "round {round}");
            assert!(r.blank_lines + r.bad_lines.len() as u64 <= r.lines);
            assert!(r.bad_lines.windows(2).all(|w| w[0].0 < w[1].0));
            assert!(
                r.bad_lines
                    .iter()
                    .all(|(n, e)| *n >= 1 && *n <= r.lines && !e.to_string().is_empty())
            );
            for c in &r.cookies {
                assert!(!c.value.is_empty() && c.value.len() <= MAX_CBTID_LEN);
                let _ = (c.expires_ns(), c.is_expired(u64::MAX));
            }
            for line in file.split(|&b| b == b'\n') {
                let _ = parse_line(&String::from_utf8_lossy(line));
            }
        }
    }
}
