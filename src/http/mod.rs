//! HTTP: the request's `Cookie` header and the response's `Set-Cookie`.
//!
//! **Owns:** the `Cookie` header parser (`header.rs`: tolerant, never fails, allocates
//! nothing on the hot path) and the `Set-Cookie` value with its attributes (`set_cookie.rs`).
//!
//! **May not know:** the store, the configuration's parsing, any backend. What a cookie
//! value may be is `record/value.rs`'s rule; this folder applies it.

pub(crate) mod header;
pub(crate) mod set_cookie;
