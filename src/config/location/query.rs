//! A Redis URL's query: the options cookiestore reads from it (the one list), those the
//! `redis` crate reads from a Unix socket's URL, and the refusal, with what to write
//! instead, of any other (an option nobody reads would look applied and not be).

use std::time::Duration;

use super::check_key_prefix;
use crate::error::{Error, Result};

/// The query parameters the `redis` crate reads from a Unix socket's URL (it reads none
/// but `protocol`, which cookiestore sets itself, from a TCP URL's).
const UNIX_PARAMS: [&str; 3] = ["db", "user", "pass"];

/// The store options a URL does not carry, with the name a node config gives them.
const CONFIG_ONLY: [(&str, &str); 7] = [
    ("key_prefix", "key_prefix (in a URL: `prefix`)"),
    ("revocation_stream_max", "revocation_stream_max"),
    ("connect_lazily", "connect_lazily"),
    ("min_replicas_acked", "min_replicas_acked"),
    ("replica_ack_timeout_ms", "replica_ack_timeout_ms"),
    ("redis_cache_bytes", "redis_cache_bytes"),
    ("cache_bytes", "redis_cache_bytes"),
];

/// Why the query option `key` is refused (it is none that cookiestore or the `redis` crate
/// reads from this URL), and what to write instead: an option left unread would look
/// applied and not be.
fn unknown_option(key: &str, unix: bool) -> String {
    let key_shown: String = key
        .chars()
        .take(40)
        .collect::<String>()
        .escape_debug()
        .to_string();
    let advice = match key {
        "db" => "give the database as the URL's path (redis://host:6379/2)".to_string(),
        "user" | "pass" | "password" if unix => {
            "give the user as `?user=` and the password as `?pass=` (or password_file)".into()
        }
        "user" | "pass" | "password" => "give the user and password before the host \
             (redis://user:password@host), or the password as `?password_file=`"
            .into(),
        "protocol" => "cookiestore chooses the protocol of each connection itself".into(),
        "tls_server_name" => "cookiestore checks the certificate against the URL's host: \
             write the host as the certificate names it (a name that /etc/hosts or DNS \
             resolves)"
            .into(),
        _ => match CONFIG_ONLY.iter().find(|(name, _)| *name == key) {
            Some((_, config)) => {
                return format!(
                    "the query option `{key_shown}` is not read from a URL: give it as the \
                     store option {config} (a node config's `store` key, or StoreOptions)"
                );
            }
            None => {
                let mut known: Vec<&str> = OUR_PARAMS.to_vec();
                if unix {
                    known.extend(UNIX_PARAMS);
                }
                format!("the URL's options are {}", known.join(", "))
            }
        },
    };
    format!("the query option `{key_shown}` is not one cookiestore reads; {advice}")
}

/// The query parameters whose value is a password.
pub(super) const SECRET_PARAMS: [&str; 2] = ["pass", "password"];

/// The query options cookiestore reads (the others are the `redis` crate's); the last eight
/// are [`RedisOptions`](crate::RedisOptions)' of the same names, percent-decoded (the
/// `sentinel_` ones are for `redis+sentinel://` and `rediss+sentinel://` only:
/// `redis/client.rs` refuses them on other URLs).
pub(super) const OUR_PARAMS: [&str; 11] = [
    "prefix",
    "timeout_ms",
    "allow_eviction",
    "tls_ca_file",
    "tls_cert_file",
    "tls_key_file",
    "password_file",
    "password_env",
    "sentinel_password_file",
    "sentinel_password_env",
    "sentinel_user",
];

/// What a URL's query holds (see [`parse`]).
pub(super) struct Query<'a> {
    pub(super) prefix: Option<String>,
    pub(super) timeout: Option<Duration>,
    pub(super) allow_eviction: Option<bool>,
    /// `tls_ca_file` ... `sentinel_user` (the last eight of [`OUR_PARAMS`]), decoded.
    pub(super) files: Vec<(String, String)>,
    /// The pairs left for the `redis` crate (a Unix socket's `db`, `user`, `pass`).
    pub(super) rest: Vec<&'a str>,
    /// The values of the password parameters, as written.
    pub(super) secrets: Vec<String>,
}

/// Reads `query` (the URL's text after `?`, if any) of a URL shown as `masked` in errors;
/// `unix` for a Unix socket's URL.
pub(super) fn parse<'a>(query: Option<&'a str>, unix: bool, masked: &str) -> Result<Query<'a>> {
    let bad = |problem: String| Error::config("url", format!("{masked}: {problem}"));
    let mut prefix = None;
    let mut timeout = None;
    let mut allow_eviction = None;
    let mut files = Vec::new();
    let mut rest = Vec::new();
    let mut secrets = Vec::new();
    for pair in query.into_iter().flat_map(|q| q.split('&')) {
        if pair.is_empty() {
            continue;
        }
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if OUR_PARAMS.contains(&key)
            && query
                .into_iter()
                .flat_map(|q| q.split('&'))
                .filter(|p| p.split_once('=').map_or(*p, |(k, _)| k) == key)
                .count()
                > 1
        {
            return Err(bad(format!("`{key}` is given twice; give it once")));
        }
        match key {
            "prefix" => {
                let decoded = percent_decode(value)
                    .ok_or_else(|| bad(format!("`prefix` {value:?} has a bad %-escape")))?;
                check_key_prefix(&decoded).map_err(|problem| {
                    Error::config("prefix", format!("{problem} (in the URL {masked})"))
                })?;
                prefix = Some(decoded);
            }
            "timeout_ms" => {
                let ms: u64 = value.parse().ok().filter(|ms| *ms > 0).ok_or_else(|| {
                    Error::config(
                        "timeout_ms",
                        format!("is {value:?} in the URL; give milliseconds, at least 1"),
                    )
                })?;
                timeout = Some(Duration::from_millis(ms));
            }
            "allow_eviction" => {
                allow_eviction = Some(match value {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => {
                        return Err(Error::config(
                            "allow_eviction",
                            format!("is {value:?} in the URL; give true or false"),
                        ));
                    }
                });
            }
            _ if OUR_PARAMS[3..].contains(&key) => {
                let decoded = percent_decode(value)
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| {
                        bad(format!("`{key}` {value:?} is empty or has a bad %-escape"))
                    })?;
                files.push((key.to_string(), decoded));
            }
            _ => {
                if SECRET_PARAMS.contains(&key) {
                    secrets.push(value.to_string());
                }
                if !(unix && UNIX_PARAMS.contains(&key)) {
                    return Err(bad(unknown_option(key, unix)));
                }
                rest.push(pair);
            }
        }
    }
    Ok(Query {
        prefix,
        timeout,
        allow_eviction,
        files,
        rest,
        secrets,
    })
}

/// `%XX` escapes decoded; `None` for a bad escape or bytes that are not UTF-8.
pub(super) fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let byte = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())?;
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}
