//! The keys of the LMDB layout (`layout.rs`): one type per kind of key, each its own heed
//! codec, so that store code reads as typed gets and puts. A key begins with its table's slot
//! (big-endian `u16`).

use std::borrow::Cow;

use heed::{BoxedError, BytesDecode, BytesEncode};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::record::mark::{ValueDigest, hex};
use crate::record::value::CookieValue;

const MAX_VALUE_LEN: usize = CookieValue::MAX_LEN;

/// Key of a metadata record: `00 00` + slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetaKey([u8; 4]);

impl MetaKey {
    /// The slot a whole metadata key describes; `None` when it is not `00 00` + slot.
    pub fn parse(key: &[u8]) -> Option<u16> {
        match key {
            [0, 0, hi, lo] => Some(u16::from_be_bytes([*hi, *lo])),
            _ => None,
        }
    }

    /// The key describing `slot`.
    pub fn new(slot: u16) -> Self {
        let [hi, lo] = slot.to_be_bytes();
        MetaKey([0, 0, hi, lo])
    }
}

/// The 2-byte prefix shared by every key of a slot (for prefix scans).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotPrefix([u8; 2]);

impl SlotPrefix {
    /// Prefix of `slot`.
    pub fn new(slot: u16) -> Self {
        SlotPrefix(slot.to_be_bytes())
    }

    /// The prefix's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// The slot of a whole key and the rest of the key after it; `None` for a key shorter than
/// the 2-byte slot prefix.
pub(crate) fn split_slot(key: &[u8]) -> Option<(u16, &[u8])> {
    match key {
        [hi, lo, rest @ ..] => Some((u16::from_be_bytes([*hi, *lo]), rest)),
        _ => None,
    }
}

/// How many bytes of an authid its index key holds.
pub(crate) const AUTHID_KEY_MAX: usize = 400;

/// Keys of the authid index: slot + the authid's length (`u16` BE, saturating) + its first at
/// most [`AUTHID_KEY_MAX`] bytes + the cookie's oid (16 bytes). Longer authids share a key
/// prefix with others of the same length and beginning: lookups verify the record.
pub(crate) struct AuthidKey;

impl AuthidKey {
    /// The key prefix shared by every entry of `authid`.
    pub(crate) fn prefix(slot: u16, authid: &str) -> Vec<u8> {
        let bytes = authid.as_bytes();
        let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
        let kept = &bytes[..bytes.len().min(AUTHID_KEY_MAX)];
        let mut key = Vec::with_capacity(4 + kept.len() + 16);
        key.extend_from_slice(&slot.to_be_bytes());
        key.extend_from_slice(&len.to_be_bytes());
        key.extend_from_slice(kept);
        key
    }

    /// The key of cookie `oid` carrying `authid`.
    pub(crate) fn key(slot: u16, authid: &str, oid: Uuid) -> Vec<u8> {
        let mut key = Self::prefix(slot, authid);
        key.extend_from_slice(oid.as_bytes());
        key
    }

    /// The oid at the end of a whole key; `None` when the key is too short.
    pub(crate) fn parse_oid(key: &[u8]) -> Option<Uuid> {
        if key.len() < 2 + 2 + 16 {
            return None;
        }
        Uuid::from_slice(&key[key.len() - 16..]).ok()
    }

    /// A whole key from its slot and the rest after the slot.
    pub(crate) fn join(slot: u16, rest: &[u8]) -> Vec<u8> {
        let mut key = slot.to_be_bytes().to_vec();
        key.extend_from_slice(rest);
        key
    }
}

/// Entries of the revocation feed. Key: slot + sequence number (`u64` BE). Value: when
/// (`u64` BE ns) + kind (1 byte: 1 logout, 2 logout by authid, 3 maintenance deletion, 4 auth
/// change, 5 record replaced, 6 purge, 7 flush; 4 to 7 are read by caches, older
/// cookiestore versions refuse them as malformed) + oid (16 bytes) + the cookie value's bytes.
pub(crate) struct RevocationEntry;

impl RevocationEntry {
    /// The key of entry `seq`.
    pub(crate) fn key(slot: u16, seq: u64) -> [u8; 10] {
        let mut k = [0u8; 10];
        k[..2].copy_from_slice(&slot.to_be_bytes());
        k[2..].copy_from_slice(&seq.to_be_bytes());
        k
    }

    /// The sequence number of a whole key; `None` when it is not slot + 8 bytes.
    pub(crate) fn parse_key(key: &[u8]) -> Option<u64> {
        let (_, rest) = split_slot(key)?;
        Some(u64::from_be_bytes(rest.try_into().ok()?))
    }

    /// An entry's value.
    pub(crate) fn value(at_ns: u64, kind: u8, oid: Uuid, cookie_value: &str) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(25 + cookie_value.len());
        bytes.extend_from_slice(&at_ns.to_be_bytes());
        bytes.push(kind);
        bytes.extend_from_slice(oid.as_bytes());
        bytes.extend_from_slice(cookie_value.as_bytes());
        bytes
    }

    /// (at_ns, kind, oid, cookie value bytes) of an entry's value; `None` when too short.
    pub(crate) fn parse_value(bytes: &[u8]) -> Option<(u64, u8, Uuid, &[u8])> {
        let at_ns = u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
        let kind = *bytes.get(8)?;
        let oid = Uuid::from_slice(bytes.get(9..25)?).ok()?;
        Some((at_ns, kind, oid, &bytes[25..]))
    }
}

/// Import marks (`record/mark.rs` says what they are for) on LMDB.
///
/// LMDB keeps them in the store-state table, each under two keys:
/// - slot + `import_hash\0` + SHA-256 of the value → when the mark expires (`u64` BE ns): the
///   imported cookie's own expiry (created + max_age). After it, a re-import drops that
///   cookie as expired anyway, so the mark can go.
/// - slot + `import_due\0` + that expiry (`u64` BE) + the SHA-256 → empty: the marks in
///   expiry order, so that a purge reaches the due ones without reading the others.
///
/// The SHA-256 keeps every key at 48 bytes, whatever the value's length (a value of 509
/// bytes could not be a key with a prefix: LMDB keys hold at most 511 bytes), and makes it
/// practically impossible for two values to share a mark. Expiry `u64::MAX` stands for
/// "never" (a cookie with a huge max_age, or a mark whose expiry is unknown).
///
/// Stores written before marks were hashed hold `imported\0` + the value → the oid given
/// (values of up to 502 bytes): they are still read, and a purge rewrites them as hashed
/// marks.
pub(crate) struct ImportMark;

impl ImportMark {
    const NAME: &'static [u8] = b"import_hash\0";
    const DUE: &'static [u8] = b"import_due\0";
    const LEGACY: &'static [u8] = b"imported\0";
    /// Length of a whole mark key.
    const KEY_LEN: usize = 2 + Self::NAME.len() + 32;
    /// Length of a whole due key.
    const DUE_LEN: usize = 2 + Self::DUE.len() + 8 + 32;

    /// Key prefix shared by every mark in the state table `slot`.
    pub(crate) fn prefix(slot: u16) -> Vec<u8> {
        [&slot.to_be_bytes()[..], Self::NAME].concat()
    }

    /// The key of the mark of `digest`.
    pub(crate) fn key(slot: u16, digest: &ValueDigest) -> Vec<u8> {
        [&slot.to_be_bytes()[..], Self::NAME, digest].concat()
    }

    /// The digest of a whole mark key; `None` when it is not one.
    pub(crate) fn parse_key(key: &[u8]) -> Option<ValueDigest> {
        if key.len() != Self::KEY_LEN {
            return None;
        }
        let (_, rest) = split_slot(key)?;
        rest.strip_prefix(Self::NAME)?.try_into().ok()
    }

    /// A mark's value: its expiry.
    pub(crate) fn value(expires: u64) -> [u8; 8] {
        expires.to_be_bytes()
    }

    /// A mark's expiry; a value that is not 8 bytes reads as "never" (a mark is kept rather
    /// than lost).
    pub(crate) fn parse_value(bytes: &[u8]) -> u64 {
        bytes.try_into().map(u64::from_be_bytes).unwrap_or(u64::MAX)
    }

    /// Key prefix shared by every due entry in `slot`.
    pub(crate) fn due_prefix(slot: u16) -> Vec<u8> {
        [&slot.to_be_bytes()[..], Self::DUE].concat()
    }

    /// The due entry of the mark of `digest` expiring at `expires`.
    pub(crate) fn due_key(slot: u16, expires: u64, digest: &ValueDigest) -> Vec<u8> {
        [
            &slot.to_be_bytes()[..],
            Self::DUE,
            &expires.to_be_bytes(),
            digest,
        ]
        .concat()
    }

    /// (expiry, digest) of a whole due key; `None` when it is not one.
    pub(crate) fn parse_due_key(key: &[u8]) -> Option<(u64, ValueDigest)> {
        if key.len() != Self::DUE_LEN {
            return None;
        }
        let (_, rest) = split_slot(key)?;
        let rest = rest.strip_prefix(Self::DUE)?;
        let expires = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
        Some((expires, rest.get(8..)?.try_into().ok()?))
    }

    /// Key prefix shared by every unhashed mark in `slot`.
    pub(crate) fn legacy_prefix(slot: u16) -> Vec<u8> {
        [&slot.to_be_bytes()[..], Self::LEGACY].concat()
    }

    /// The unhashed mark's key of `value`; `None` when it would exceed LMDB's 511 bytes
    /// (no such mark was ever written).
    pub(crate) fn legacy_key(slot: u16, value: &str) -> Option<Vec<u8>> {
        let key = [&slot.to_be_bytes()[..], Self::LEGACY, value.as_bytes()].concat();
        (key.len() <= 511).then_some(key)
    }

    /// The value of a whole unhashed mark key; `None` when it is not one.
    pub(crate) fn parse_legacy_key(key: &[u8]) -> Option<&str> {
        let (_, rest) = split_slot(key)?;
        std::str::from_utf8(rest.strip_prefix(Self::LEGACY)?).ok()
    }
}

/// Key of a record in the Cookies table: slot + oid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordKey([u8; 18]);

impl RecordKey {
    /// The oid of a whole Cookies key, `None` when the key is not slot + 16 bytes.
    pub fn parse_oid(key: &[u8]) -> Option<Uuid> {
        let (_, rest) = split_slot(key)?;
        Uuid::from_slice(rest).ok()
    }

    /// The whole key's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The key of `oid` in `slot`.
    pub fn new(slot: u16, oid: Uuid) -> Self {
        let mut k = [0u8; 18];
        k[..2].copy_from_slice(&slot.to_be_bytes());
        k[2..].copy_from_slice(oid.as_bytes());
        RecordKey(k)
    }
}

/// Key of a value-index entry: slot + the cookie value's bytes (at most 509).
#[derive(Clone, Copy)]
pub struct ValueKey {
    buf: [u8; 2 + MAX_VALUE_LEN],
    len: usize,
}

impl std::fmt::Debug for ValueKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ValueKey")
            .field(&hex(self.as_bytes()))
            .finish()
    }
}

impl ValueKey {
    /// The index key of `value` in `slot`; values longer than 509 bytes are rejected.
    pub fn new(slot: u16, value: &str) -> Result<Self> {
        let v = value.as_bytes();
        if v.len() > MAX_VALUE_LEN {
            return Err(Error::InvalidValue {
                problem: format!(
                    "the value is {} bytes; LMDB keys allow at most {MAX_VALUE_LEN} bytes \
                     after the slot prefix: use a shorter value",
                    v.len()
                ),
            });
        }
        if v.is_empty() {
            return Err(Error::InvalidValue {
                problem: "the value is empty; the value index needs a non-empty value".into(),
            });
        }
        let mut buf = [0u8; 2 + MAX_VALUE_LEN];
        buf[..2].copy_from_slice(&slot.to_be_bytes());
        buf[2..2 + v.len()].copy_from_slice(v);
        Ok(ValueKey {
            buf,
            len: 2 + v.len(),
        })
    }

    /// The whole key's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Key of an expiry-index entry: slot + expires_at (ns, BE) + oid. Sorted by expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExpiryKey([u8; 26]);

impl ExpiryKey {
    /// The entry for `oid` expiring at `expires_at` in `slot`.
    pub fn new(slot: u16, expires_at: u64, oid: Uuid) -> Self {
        let mut k = [0u8; 26];
        k[..2].copy_from_slice(&slot.to_be_bytes());
        k[2..10].copy_from_slice(&expires_at.to_be_bytes());
        k[10..].copy_from_slice(oid.as_bytes());
        ExpiryKey(k)
    }

    /// The first possible key at `expires_at` (for range bounds).
    pub fn lowest(slot: u16, expires_at: u64) -> Self {
        Self::new(slot, expires_at, Uuid::nil())
    }

    /// When the entry expires (ns).
    pub fn expires_at(&self) -> u64 {
        u64::from_be_bytes(self.0[2..10].try_into().expect("8 bytes"))
    }

    /// The cookie it refers to.
    pub fn oid(&self) -> Uuid {
        Uuid::from_slice(&self.0[10..]).expect("16 bytes")
    }

    /// (expires_at, oid) of an expiry-index key given without its slot prefix; `None` when
    /// it is not 8 + 16 bytes.
    pub fn parse_rest(rest: &[u8]) -> Option<(u64, Uuid)> {
        let at: [u8; 8] = rest.get(..8)?.try_into().ok()?;
        let oid = Uuid::from_slice(rest.get(8..)?).ok()?;
        Some((u64::from_be_bytes(at), oid))
    }
}

/// Key of a store-state entry: slot + name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateKey {
    buf: [u8; 2 + 14],
    len: usize,
}

impl StateKey {
    /// The id of the last write transaction made by cookiestore.
    pub const LAST_TXN: &'static [u8] = b"last_txn";

    /// The highest revocation sequence number trimmed from the feed.
    pub const TRIMMED_SEQ: &'static [u8] = b"trimmed_seq";

    /// The feature level a program must know to write the store (`tables::FEATURE_LEVEL`).
    pub const FEATURE_LEVEL: &'static [u8] = b"feature_level";

    /// The key of state `name` (at most 14 bytes) in `slot`.
    pub fn new(slot: u16, name: &'static [u8]) -> Self {
        let mut buf = [0u8; 16];
        buf[..2].copy_from_slice(&slot.to_be_bytes());
        buf[2..2 + name.len()].copy_from_slice(name);
        StateKey {
            buf,
            len: 2 + name.len(),
        }
    }
}

macro_rules! borrowed_key_codec {
    ($ty:ty, $bytes:expr) => {
        impl<'a> BytesEncode<'a> for $ty {
            type EItem = $ty;
            fn bytes_encode(item: &'a $ty) -> std::result::Result<Cow<'a, [u8]>, BoxedError> {
                let f: fn(&$ty) -> &[u8] = $bytes;
                Ok(Cow::Borrowed(f(item)))
            }
        }
    };
}

borrowed_key_codec!(MetaKey, |k| &k.0);
borrowed_key_codec!(SlotPrefix, |k| &k.0);
borrowed_key_codec!(RecordKey, |k| &k.0);
borrowed_key_codec!(ValueKey, |k| k.as_bytes());
borrowed_key_codec!(ExpiryKey, |k| &k.0);
borrowed_key_codec!(StateKey, |k| &k.buf[..k.len]);

pub(crate) fn fixed<const N: usize>(
    what: &str,
    bytes: &[u8],
) -> std::result::Result<[u8; N], BoxedError> {
    bytes.try_into().map_err(|_| {
        format!(
            "{what} key is {} bytes, expected {N}: {}",
            bytes.len(),
            hex(bytes)
        )
        .into()
    })
}

impl<'a> BytesDecode<'a> for RecordKey {
    type DItem = RecordKey;
    fn bytes_decode(bytes: &'a [u8]) -> std::result::Result<RecordKey, BoxedError> {
        fixed("Cookies", bytes).map(RecordKey)
    }
}

impl<'a> BytesDecode<'a> for ExpiryKey {
    type DItem = ExpiryKey;
    fn bytes_decode(bytes: &'a [u8]) -> std::result::Result<ExpiryKey, BoxedError> {
        fixed("expiry index", bytes).map(ExpiryKey)
    }
}
