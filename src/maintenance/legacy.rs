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
#[path = "legacy_tests.rs"]
mod tests;
