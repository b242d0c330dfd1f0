//! What a redis-rs error means for a store call: whether the connection can still be used,
//! whether Redis could not be reached (which opens the breaker, `breaker.rs`), whether a reused
//! connection was merely stale, and the crate's error for it.

use std::time::Duration;

use redis::{ErrorKind, RedisError};

use crate::config::location::RedisLocation;
use crate::error::Error;

/// Why a key under the store's prefix holds another type, for the errors that find one.
pub(super) const OTHER_PROGRAM: &str = "another program wrote it (cookiestore alone may write \
    the keys under its prefix: give other data other keys, or the store a prefix of its own)";

/// Whether the error means the connection can no longer be used.
pub(super) fn is_transport(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_unrecoverable_error()
        || matches!(e.kind(), ErrorKind::Parse)
}

/// Whether Redis could not be reached or did not answer in time (not an answer).
pub(super) fn is_unreachable(e: &RedisError) -> bool {
    is_transport(e) || e.is_connection_refusal()
}

/// A reused connection found closed before any answer: safe to retry on a new one.
pub(super) fn is_stale(e: &RedisError) -> bool {
    !e.is_timeout() && e.is_connection_dropped()
}

/// Redis refused a write because it is a replica (`READONLY`): the command did not run.
pub(super) fn is_readonly(e: &RedisError) -> bool {
    e.code() == Some("READONLY")
}

/// What to do about a TLS failure whose text (rustls's, through redis-rs and the socket) is
/// `text`, if it is one.
fn tls_advice(text: &str) -> Option<&'static str> {
    if text.contains("invalid peer certificate") && text.contains("not valid for name") {
        Some(
            "the server's TLS certificate does not name the host in the URL: write the host \
             as the certificate names it (a name it lists, or its IP address)",
        )
    } else if text.contains("invalid peer certificate") {
        Some(
            "the server's TLS certificate was not trusted: give the CA that signed it as \
             tls_ca_file (or ?tls_ca_file= in the URL), or install that CA in the system's \
             trust store",
        )
    } else if text.contains("CertificateRequired") || text.contains("HandshakeFailure") {
        Some(
            "the server refused the TLS handshake; if it asks for a client certificate \
             (tls-auth-clients yes), give tls_cert_file and tls_key_file",
        )
    } else if text.contains("received fatal alert") || text.contains("peer sent no certificates") {
        Some("the TLS handshake failed")
    } else {
        None
    }
}

/// Whether `e` is a failed TLS handshake (a certificate not trusted or not naming the host,
/// a refused client certificate).
pub(super) fn is_tls_failure(e: &RedisError) -> bool {
    tls_advice(&e.to_string()).is_some()
}

/// Whether Redis refused the credentials (a wrong password, or an unknown or disabled user).
pub(super) fn is_auth_failure(e: &RedisError) -> bool {
    matches!(e.kind(), ErrorKind::AuthenticationFailed)
        || matches!(e.code(), Some("WRONGPASS" | "NOAUTH"))
}

pub(crate) fn unavailable_or_redis(
    location: &RedisLocation,
    timeout: Duration,
    e: RedisError,
) -> Error {
    let text = location.sanitize(&e.to_string());
    if is_auth_failure(&e) {
        return Error::RedisCredentials {
            location: location.masked().to_string(),
            user: location.user().unwrap_or("default").to_string(),
            problem: text,
        };
    }
    let text = match tls_advice(&text) {
        Some(advice) => format!("{advice} ({text})"),
        None if is_readonly(&e) => format!(
            "the server is a replica, which refuses writes: point the store at the master \
             (or at a name or address that follows it), or at the sentinels with \
             redis+sentinel:// ({text})"
        ),
        None => text,
    };
    let location = location.masked();
    let busy = [
        "LOADING",
        "MASTERDOWN",
        "READONLY",
        "TRYAGAIN",
        "CLUSTERDOWN",
        "BUSY",
    ]
    .iter()
    .any(|code| e.code() == Some(code));
    if e.is_timeout() {
        Error::Unavailable {
            location: location.to_string(),
            problem: format!("no answer within the timeout of {timeout:?} ({text})"),
        }
    } else if is_transport(&e) || e.is_connection_refusal() || busy {
        Error::Unavailable {
            location: location.to_string(),
            problem: text,
        }
    } else {
        Error::Redis {
            location: location.to_string(),
            problem: text,
        }
    }
}
