//! [`CookieValue`]: what a cookie value may be, in one place.
//!
//! A value is the random ID a browser sends back. It must fit an LMDB key after the table's
//! 2-byte slot prefix (1 to [`CookieValue::MAX_LEN`] bytes) and travel in a `Cookie` header
//! (RFC 6265 cookie-octets: printable US-ASCII except space, `"`, `,`, `;` and `\`). New values
//! are drawn from the operating system's generator in Crossbar.io's alphabet (standard base64, 6 bits a character).

use std::fmt;

use crate::error::{Error, Result};

/// A valid cookie value: 1 to 509 bytes of RFC 6265 cookie-octets.
///
/// ```
/// use cookiestore::CookieValue;
/// let value = CookieValue::new("Kx2f9+Qz/abc")?;
/// assert_eq!(value.as_str(), "Kx2f9+Qz/abc");
/// assert!(CookieValue::new("has space").is_err());
/// assert!(CookieValue::new("").is_err());
/// # Ok::<(), cookiestore::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CookieValue(String);

/// The standard base64 alphabet, as Crossbar.io uses for values: every character a
/// cookie-octet.
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// How many fresh values `create` draws before giving up (a collision is redrawn, not trusted).
pub(crate) const DRAW_ATTEMPTS: u32 = 16;

impl CookieValue {
    /// Longest value: an LMDB key holds 511 bytes, 2 of which are the slot prefix.
    pub const MAX_LEN: usize = 509;

    /// Checks `value` and wraps it. Errors with [`Error::InvalidValue`] saying what is wrong.
    pub fn new(value: impl Into<String>) -> Result<CookieValue> {
        let value = value.into();
        match check(&value) {
            Ok(()) => Ok(CookieValue(value)),
            Err(problem) => Err(Error::InvalidValue {
                problem: problem.to_string(),
            }),
        }
    }

    /// A fresh random value of `length` characters (1 to [`Self::MAX_LEN`]), drawn from the
    /// operating system's generator at the time of the call.
    ///
    /// A value is a bearer token: whoever holds it is the user. So it is never drawn from a
    /// generator whose state lives in this process (such as `rand::rng()`, a ChaCha state
    /// seeded once per thread): `fork()` copies such a state, and parent and child then hand
    /// out the same values; a VM snapshot or a core dump copies it too. `getrandom` asks the
    /// kernel (`getrandom(2)` on Linux) for every draw, which no copy of the process can
    /// repeat. Each byte gives one character (its low 6 bits: exactly uniform over the
    /// 64-character alphabet). Errors with [`Error::Io`] if the kernel's generator fails.
    pub fn random(length: usize) -> Result<CookieValue> {
        check_length(length)?;
        let mut bytes = vec![0u8; length];
        getrandom::fill(&mut bytes).map_err(|e| {
            Error::Io(std::io::Error::other(format!(
                "the operating system's random generator failed ({e}); no cookie value was \
                 drawn: check the kernel's entropy source (getrandom(2), /dev/urandom)"
            )))
        })?;
        Ok(CookieValue(
            bytes
                .iter()
                .map(|b| ALPHABET[(b & 63) as usize] as char)
                .collect(),
        ))
    }

    /// Whether every byte of `s` is an RFC 6265 cookie-octet: printable US-ASCII except
    /// space, `"`, `,`, `;` and `\\` (true for `""`, as in the RFC's `*cookie-octet`).
    pub fn is_cookie_octets(s: &str) -> bool {
        is_cookie_octets(s.as_bytes())
    }

    /// The value as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value as an owned `String`.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Debug for CookieValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for CookieValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for CookieValue {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for CookieValue {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<CookieValue> for String {
    fn from(value: CookieValue) -> String {
        value.0
    }
}

/// Checks a length for generated values: 1 to [`CookieValue::MAX_LEN`].
pub(crate) fn check_length(length: usize) -> Result<()> {
    if (1..=CookieValue::MAX_LEN).contains(&length) {
        Ok(())
    } else {
        Err(Error::config(
            "length",
            format!(
                "is {length}; it must be between 1 and {}",
                CookieValue::MAX_LEN
            ),
        ))
    }
}

/// Whether `value` can be a key of the value index: 1 to 509 bytes (any UTF-8, as cfxdb
/// allows). Lookups of anything else find nothing.
pub(crate) fn fits_index(value: &str) -> bool {
    (1..=CookieValue::MAX_LEN).contains(&value.len())
}

/// Why a text is not a cookie value (see [`check`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ValueProblem {
    /// The value is empty.
    Empty,
    /// The value is this many bytes, more than [`CookieValue::MAX_LEN`].
    TooLong(usize),
    /// The value holds `ch`, not a cookie-octet, at byte `at`.
    BadChar {
        /// The character.
        ch: char,
        /// Its byte offset.
        at: usize,
    },
}

impl fmt::Display for ValueProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ValueProblem::Empty => {
                f.write_str("the value is empty; a cookie value has 1 to 509 bytes")
            }
            ValueProblem::TooLong(len) => write!(
                f,
                "the value is {len} bytes; LMDB keys allow at most {} bytes after the slot \
                 prefix: use a shorter value",
                CookieValue::MAX_LEN
            ),
            ValueProblem::BadChar { ch, at } => write!(
                f,
                "the value has {ch:?} at byte {at}, which a Cookie header cannot carry; values \
                 are made of RFC 6265 cookie-octets (printable ASCII without space, '\"', ',', \
                 ';', '\\')"
            ),
        }
    }
}

/// The one rule of what a cookie value may be, for every path that takes one (the store's
/// writes, the `Cookie` header parser, `cookies.dat` and restore files): 1 to
/// [`CookieValue::MAX_LEN`] bytes, each an RFC 6265 cookie-octet. The first problem found,
/// in that order (empty, too long, a character).
pub(crate) fn check(value: &str) -> std::result::Result<(), ValueProblem> {
    if value.is_empty() {
        return Err(ValueProblem::Empty);
    }
    if value.len() > CookieValue::MAX_LEN {
        return Err(ValueProblem::TooLong(value.len()));
    }
    match value.char_indices().find(|&(_, c)| !is_octet_char(c)) {
        Some((at, ch)) => Err(ValueProblem::BadChar { ch, at }),
        None => Ok(()),
    }
}

/// [`check`] for raw bytes (a header's): whether they are a valid cookie value.
pub(crate) fn is_valid_bytes(value: &[u8]) -> bool {
    (1..=CookieValue::MAX_LEN).contains(&value.len()) && is_cookie_octets(value)
}

/// Whether every byte of `s` is a cookie-octet (the empty string is, as in RFC 6265's
/// `*cookie-octet`).
pub(crate) fn is_cookie_octets(s: &[u8]) -> bool {
    s.iter().copied().all(is_cookie_octet)
}

/// RFC 6265 cookie-octet: `%x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E`.
pub(crate) const fn is_cookie_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E)
}

fn is_octet_char(c: char) -> bool {
    c.is_ascii() && is_cookie_octet(c as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert!(CookieValue::new("a").is_ok());
        assert!(CookieValue::new("!#$%&'()*+-./09:<=>?@AZ[]^_`az{|}~").is_ok());
        assert!(CookieValue::new("a".repeat(509)).is_ok());
        for bad in ["", " ", "a b", "a;b", "a,b", "a\"b", "a\\b", "é", "a\u{7f}"] {
            assert!(CookieValue::new(bad).is_err(), "{bad:?}");
        }
        let long = CookieValue::new("a".repeat(510)).unwrap_err().to_string();
        assert!(long.contains("510 bytes"), "{long}");
        assert_eq!(check("a b"), Err(ValueProblem::BadChar { ch: ' ', at: 1 }));
        assert!(is_valid_bytes(b"abc") && !is_valid_bytes(b"") && !is_valid_bytes(&[b'a'; 510]));
    }

    #[test]
    fn random_values_use_the_alphabet() {
        for len in [1, 6, 24, 64, 509] {
            let v = CookieValue::random(len).unwrap();
            assert_eq!(v.len(), len);
            assert!(v.bytes().all(|b| ALPHABET.contains(&b)));
            assert!(CookieValue::new(v.as_str()).is_ok());
        }
        assert!(CookieValue::random(0).is_err());
        assert!(CookieValue::random(510).is_err());
    }
}
