//! Codecs of the LMDB layout's values (`layout.rs`): an oid, a big-endian `u64`, a cookie
//! record (FlatBuffers).

use std::borrow::Cow;

use heed::{BoxedError, BytesDecode, BytesEncode};
use uuid::Uuid;

use crate::lmdb::keys::fixed;
use crate::record::codec::CookieView;
use crate::record::cookie::Cookie;

/// Codec of an oid stored as a value (the value index): exactly 16 bytes.
pub enum OidCodec {}

impl<'a> BytesEncode<'a> for OidCodec {
    type EItem = Uuid;
    fn bytes_encode(item: &'a Uuid) -> std::result::Result<Cow<'a, [u8]>, BoxedError> {
        Ok(Cow::Borrowed(item.as_bytes()))
    }
}

impl<'a> BytesDecode<'a> for OidCodec {
    type DItem = Uuid;
    fn bytes_decode(bytes: &'a [u8]) -> std::result::Result<Uuid, BoxedError> {
        Uuid::from_slice(bytes).map_err(|_| {
            format!(
                "value index entry holds {} bytes, not a 16-byte oid",
                bytes.len()
            )
            .into()
        })
    }
}

/// Codec of a big-endian `u64` state value.
pub enum U64Codec {}

impl<'a> BytesEncode<'a> for U64Codec {
    type EItem = u64;
    fn bytes_encode(item: &'a u64) -> std::result::Result<Cow<'a, [u8]>, BoxedError> {
        Ok(Cow::Owned(item.to_be_bytes().to_vec()))
    }
}

impl<'a> BytesDecode<'a> for U64Codec {
    type DItem = u64;
    fn bytes_decode(bytes: &'a [u8]) -> std::result::Result<u64, BoxedError> {
        Ok(u64::from_be_bytes(fixed("state", bytes)?))
    }
}

/// heed codec for records: encodes a [`Cookie`], decodes a verified [`CookieView`].
pub(crate) enum CookieCodec {}

impl<'a> BytesEncode<'a> for CookieCodec {
    type EItem = Cookie;
    fn bytes_encode(item: &'a Cookie) -> std::result::Result<Cow<'a, [u8]>, BoxedError> {
        Ok(Cow::Owned(item.encode()?))
    }
}

impl<'a> BytesDecode<'a> for CookieCodec {
    type DItem = CookieView<'a>;
    fn bytes_decode(bytes: &'a [u8]) -> std::result::Result<CookieView<'a>, BoxedError> {
        Ok(CookieView::new(bytes)?)
    }
}
