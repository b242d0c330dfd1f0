//! HTTP: the `Cookie` request header and the `Set-Cookie` answer.

pub(crate) mod header;
