//! What a router worker tracks: [`TrackerConfig`], Crossbar.io's `cookie` section without its
//! `store`. It parses Crossbar's attribute keys (`secure`, `http_strict`, `same_site`) and an
//! `attributes` object of ours.

use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::http::set_cookie::{CookieAttributes, SameSite, validate_attributes};

/// Default cookie name.
pub const DEFAULT_NAME: &str = "cbtid";
/// Default cookie value length in characters (144 bits of randomness).
pub const DEFAULT_LENGTH: usize = 24;
/// Default max_age: one day, as Crossbar.io's documentation says.
pub const DEFAULT_MAX_AGE: u64 = 86_400;
/// Longest allowed max_age: ten years (of 365 days).
pub const MAX_MAX_AGE: u64 = 10 * 365 * 86_400;

/// What a router worker tracks: Crossbar.io's `cookie` configuration without its `store`.
///
/// It deserializes from the keys Crossbar.io reads (`name`, `length`, `max_age`, `secure`,
/// `http_strict`, `same_site`) and from an `attributes` object of ours (`http_only`, `secure`,
/// `same_site`, `path`, `domain`); a key given both ways is an error.
///
/// ```
/// use cookiestore::TrackerConfig;
/// let config: TrackerConfig = serde_json::from_str(
///     r#"{"name": "cbtid", "length": 24, "max_age": 604800, "http_strict": true}"#,
/// ).unwrap();
/// config.validate().unwrap();
/// assert_eq!(config.max_age, 604_800);
/// assert!(config.attributes.http_only);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawTracker")]
#[non_exhaustive]
pub struct TrackerConfig {
    /// Cookie name: matches `^[a-z][a-z0-9_]+$`. Default `cbtid`.
    pub name: String,
    /// Length of generated values in characters, 6 to 64. Default 24.
    pub length: usize,
    /// Cookie lifetime in seconds, 1 to 315360000 (10 years). Default 86400 (1 day).
    pub max_age: u64,
    /// Opt-in attributes for the `Set-Cookie` header (HttpOnly, Secure, SameSite, Path,
    /// Domain). Default none, as Crossbar.io sends.
    pub attributes: CookieAttributes,
}

/// The JSON form of [`TrackerConfig`], before Crossbar's attribute keys are folded in.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawTracker {
    name: String,
    length: usize,
    max_age: u64,
    secure: Option<bool>,
    http_strict: Option<bool>,
    same_site: Option<SameSite>,
    attributes: Option<Value>,
}

impl Default for RawTracker {
    fn default() -> Self {
        let d = TrackerConfig::default();
        RawTracker {
            name: d.name,
            length: d.length,
            max_age: d.max_age,
            secure: None,
            http_strict: None,
            same_site: None,
            attributes: None,
        }
    }
}

impl TryFrom<RawTracker> for TrackerConfig {
    type Error = String;

    fn try_from(raw: RawTracker) -> std::result::Result<Self, String> {
        let given = raw.attributes_given();
        let mut attributes = match &raw.attributes {
            None => CookieAttributes::default(),
            Some(v) => CookieAttributes::deserialize(v).map_err(|e| format!("attributes: {e}"))?,
        };
        for (flat, ours, set) in [
            ("secure", "secure", raw.secure.is_some()),
            ("http_strict", "http_only", raw.http_strict.is_some()),
            ("same_site", "same_site", raw.same_site.is_some()),
        ] {
            if set && given.contains(&ours) {
                return Err(format!(
                    "`{flat}` and `attributes.{ours}` are both given; keep one of them"
                ));
            }
        }
        if let Some(secure) = raw.secure {
            attributes.secure = secure;
        }
        if let Some(http_strict) = raw.http_strict {
            attributes.http_only = http_strict;
        }
        if raw.same_site.is_some() {
            attributes.same_site = raw.same_site;
        }
        Ok(TrackerConfig {
            name: raw.name,
            length: raw.length,
            max_age: raw.max_age,
            attributes,
        })
    }
}

impl RawTracker {
    fn attributes_given(&self) -> Vec<&'static str> {
        let Some(Value::Object(map)) = &self.attributes else {
            return Vec::new();
        };
        ["secure", "http_only", "same_site"]
            .into_iter()
            .filter(|k| map.contains_key(*k))
            .collect()
    }
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            name: DEFAULT_NAME.to_string(),
            length: DEFAULT_LENGTH,
            max_age: DEFAULT_MAX_AGE,
            attributes: CookieAttributes::default(),
        }
    }
}

impl TrackerConfig {
    /// Sets [`name`](Self::name).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets [`length`](Self::length).
    pub fn length(mut self, length: usize) -> Self {
        self.length = length;
        self
    }

    /// Sets [`max_age`](Self::max_age) (seconds).
    pub fn max_age(mut self, seconds: u64) -> Self {
        self.max_age = seconds;
        self
    }

    /// Sets [`attributes`](Self::attributes).
    pub fn attributes(mut self, attributes: CookieAttributes) -> Self {
        self.attributes = attributes;
        self
    }

    /// Checks every field; the error names the field and its allowed range.
    pub fn validate(&self) -> Result<()> {
        let bytes = self.name.as_bytes();
        let name_ok = bytes.len() >= 2
            && bytes[0].is_ascii_lowercase()
            && bytes[1..]
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_');
        if !name_ok {
            return Err(Error::config(
                "name",
                format!(
                    "is {:?}; it must match ^[a-z][a-z0-9_]+$ (for example \"cbtid\")",
                    self.name
                ),
            ));
        }
        if !(6..=64).contains(&self.length) {
            return Err(Error::config(
                "length",
                format!("is {}; it must be between 6 and 64", self.length),
            ));
        }
        if !(1..=MAX_MAX_AGE).contains(&self.max_age) {
            return Err(Error::config(
                "max_age",
                format!(
                    "is {} seconds; it must be between 1 second and 315360000 (10 years)",
                    self.max_age
                ),
            ));
        }
        validate_attributes(&self.attributes)
            .map_err(|problem| Error::config("attributes", problem))
    }
}
