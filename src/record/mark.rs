//! Import marks: "an import brought this cookie value in", on any backend.
//!
//! An import (of `cookies.dat`, of another store's records, or a restore of an export) marks
//! every cookie it writes until the cookie's own expiry. A later import skips a marked value
//! that is no longer in the store: it was logged out (or deleted) since, and importing it
//! again would log it back in. Logouts themselves write nothing: "logged out since the
//! import" is "marked and absent". A mark is keyed by the SHA-256 of the value
//! ([`digest`]), never the value, so that every valid value (up to 509 bytes) fits a key and
//! no two values share a mark. The layouts are the backends' (`lmdb/keys.rs`,
//! the Redis key words in `config/location/keys.rs`); an export writes marks as `{"imported_sha256": HEX, "expires": NS}`.

/// SHA-256 of a cookie value: what an import mark is keyed by.
pub(crate) type ValueDigest = [u8; 32];

/// The SHA-256 of `value`.
pub(crate) fn digest(value: &str) -> ValueDigest {
    use sha2::Digest;
    sha2::Sha256::digest(value.as_bytes()).into()
}

/// `bytes` as lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

/// A digest from its 64 hex digits (either case); `None` otherwise.
pub(crate) fn parse_hex(text: &str) -> Option<ValueDigest> {
    fn nibble(c: u8) -> Option<u8> {
        (c as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
    }
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

/// What a store holds for a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mark {
    /// No mark.
    Absent,
    /// A mark in the layout of LMDB stores written before marks were hashed (the value
    /// itself in the key): read, and rewritten by the next purge or import.
    Unhashed,
    /// A mark.
    Hashed,
}

impl Mark {
    /// Whether an import brought the value in.
    pub(crate) fn is_marked(self) -> bool {
        self != Mark::Absent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let d = digest("abc");
        assert_eq!(parse_hex(&hex(&d)), Some(d));
        assert_eq!(parse_hex(&hex(&d).to_uppercase()), Some(d));
        assert_eq!(parse_hex("xyz"), None);
        // SHA-256("abc"), lowercase, as marks are named and exported.
        assert_eq!(
            hex(&d),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
