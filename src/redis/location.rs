//! Redis locations: which URLs name a Redis store, and the options in their query.

use std::time::Duration;

use crate::error::{Error, Result};

/// The URL schemes served by the Redis backend.
pub(crate) const SCHEMES: [&str; 4] = ["redis", "rediss", "redis+unix", "unix"];

/// A parsed Redis location.
#[derive(Debug, Clone)]
pub(crate) struct Location {
    /// The URL given to the `redis` crate (our query options removed).
    pub(crate) url: String,
    /// The URL without its password, for messages and [`crate::CookieStore::path`].
    pub(crate) display: String,
    /// `?prefix=...`, when given.
    pub(crate) prefix: Option<String>,
    /// `?timeout_ms=...`, when given.
    pub(crate) timeout: Option<Duration>,
    /// `?allow_eviction=true|false`, when given.
    pub(crate) allow_eviction: Option<bool>,
}

/// The scheme of `text` when it is a URL (`scheme://...`).
pub(crate) fn scheme_of(text: &str) -> Option<&str> {
    let (scheme, _) = text.split_once("://")?;
    let ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    ok.then_some(scheme)
}

/// Whether `text` names a Redis store.
pub(crate) fn is_redis(text: &str) -> bool {
    scheme_of(text).is_some_and(|s| SCHEMES.contains(&s.to_ascii_lowercase().as_str()))
}

/// Splits off the query options cookiestore reads (`prefix`, `timeout_ms`,
/// `allow_eviction`); other query
/// parameters (`db`, `pass`, `protocol`, ...) stay for the `redis` crate.
pub(crate) fn parse(text: &str) -> Result<Location> {
    let (base, query) = match text.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (text, None),
    };
    let mut prefix = None;
    let mut timeout = None;
    let mut allow_eviction = None;
    let mut rest = Vec::new();
    for pair in query.into_iter().flat_map(|q| q.split('&')) {
        if pair.is_empty() {
            continue;
        }
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "prefix" => prefix = Some(percent_decode(value)?),
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
            _ => rest.push(pair),
        }
    }
    let url = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    Ok(Location {
        display: redact(&url),
        url,
        prefix,
        timeout,
        allow_eviction,
    })
}

/// The URL with any password replaced by `***`.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some(("pass" | "password", _)) => {
                        format!("{}=***", p.split('=').next().unwrap_or(""))
                    }
                    _ => p.to_string(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}

fn percent_decode(text: &str) -> Result<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            let Some(byte) = hex else {
                return Err(Error::config("prefix", format!("{text:?}: a bad %-escape")));
            };
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| Error::config("prefix", format!("{text:?}: not UTF-8")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_options_are_ours_the_rest_is_the_crates() {
        let l = parse("redis://:secret@127.0.0.1:6379/2?prefix=cb1%3A&timeout_ms=500").unwrap();
        assert_eq!(l.url, "redis://:secret@127.0.0.1:6379/2");
        assert_eq!(l.display, "redis://:***@127.0.0.1:6379/2");
        assert_eq!(l.prefix.as_deref(), Some("cb1:"));
        assert_eq!(l.timeout, Some(Duration::from_millis(500)));
        let l = parse("redis+unix:///run/redis.sock?db=1&pass=x&prefix=a:").unwrap();
        assert_eq!(l.url, "redis+unix:///run/redis.sock?db=1&pass=x");
        assert_eq!(l.display, "redis+unix:///run/redis.sock?db=1&pass=***");
        assert!(is_redis("REDIS://h"));
        assert!(!is_redis("http://h"));
        assert!(!is_redis("/var/cookies"));
        assert!(parse("redis://h?timeout_ms=0").is_err());
        let l = parse("redis://h/0?allow_eviction=true&db=1").unwrap();
        assert_eq!(l.allow_eviction, Some(true));
        assert_eq!(l.url, "redis://h/0?db=1");
        assert_eq!(parse("redis://h").unwrap().allow_eviction, None);
        assert!(parse("redis://h?allow_eviction=yes").is_err());
    }
}
