//! Configuration of the store ([`StoreOptions`]) and of the tracker ([`TrackerConfig`]).
//!
//! Both mirror Crossbar.io's cookie configuration (`cookie` and its `store` dictionary) and
//! deserialize from the same JSON, so a router's existing config carries over. Every value is
//! checked by `validate`, and a bad one is reported with the field's name and allowed range.

use std::sync::Arc;

use serde::Deserialize;

use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::header::{CookieAttributes, validate_attributes};

/// Smallest allowed `maxsize`: 128 KiB.
pub const MIN_MAXSIZE: u64 = 128 * 1024;
/// Largest allowed `maxsize`: 128 GiB.
pub const MAX_MAXSIZE: u64 = 128 * 1024 * 1024 * 1024;
/// Default `maxsize`: 1 GiB, as Crossbar.io's database store.
pub const DEFAULT_MAXSIZE: u64 = 1024 * 1024 * 1024;
/// Default size the map starts at (it doubles on demand up to `maxsize`): 64 MiB.
pub const DEFAULT_INITIAL_MAPSIZE: u64 = 64 * 1024 * 1024;

/// How to open a [`CookieStore`](crate::CookieStore): Crossbar.io's database store options.
///
/// ```
/// use cookiestore::StoreOptions;
/// let options = StoreOptions { readonly: true, ..StoreOptions::default() };
/// assert!(options.validate().is_ok());
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreOptions {
    /// Largest size the memory map (and so the database) may grow to, in bytes:
    /// 128 KiB to 128 GiB, default 1 GiB.
    pub maxsize: u64,
    /// Size the map starts at when the database is smaller; it doubles on demand up to
    /// `maxsize`. Default 64 MiB (or `maxsize`, when smaller).
    pub initial_mapsize: u64,
    /// Open for reading only: every write returns [`Error::ReadOnly`]. Default false.
    pub readonly: bool,
    /// Flush to disk at every commit (crash-safe). With false a system crash may lose the
    /// last commits, never consistency. Default true.
    pub sync: bool,
    /// Purge expired cookies when the store is opened. Default false. (Crossbar's database
    /// store wipes every cookie here; that is [`CookieStore::clear`](crate::CookieStore::clear).)
    pub purge_on_startup: bool,
    /// Permission bits for the store's files when they are created. Default `0o600`.
    pub file_mode: u32,
    /// Where "now" comes from when deciding expiry. Default: the system clock.
    #[serde(skip)]
    pub clock: Arc<dyn Clock>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            maxsize: DEFAULT_MAXSIZE,
            initial_mapsize: DEFAULT_INITIAL_MAPSIZE,
            readonly: false,
            sync: true,
            purge_on_startup: false,
            file_mode: 0o600,
            clock: Arc::new(SystemClock),
        }
    }
}

impl StoreOptions {
    /// Checks every field; the error names the field and its allowed range.
    pub fn validate(&self) -> Result<()> {
        if !(MIN_MAXSIZE..=MAX_MAXSIZE).contains(&self.maxsize) {
            return Err(Error::config(
                "maxsize",
                format!(
                    "is {} bytes; it must be between 131072 (128 KiB) and 137438953472 (128 GiB)",
                    self.maxsize
                ),
            ));
        }
        if self.initial_mapsize == 0 {
            return Err(Error::config(
                "initial_mapsize",
                "is 0; it must be at least 1 byte (it is rounded up to whole pages)",
            ));
        }
        if self.file_mode & !0o777 != 0 || self.file_mode & 0o600 != 0o600 {
            return Err(Error::config(
                "file_mode",
                format!(
                    "is {:o}; it must be permission bits within 0o777 that include owner \
                     read and write (0o600)",
                    self.file_mode
                ),
            ));
        }
        Ok(())
    }
}

/// Default cookie name.
pub const DEFAULT_NAME: &str = "cbtid";
/// Default cookie value length in characters (144 bits of randomness).
pub const DEFAULT_LENGTH: usize = 24;
/// Default max_age: one day, as Crossbar.io's documentation says.
pub const DEFAULT_MAX_AGE: u64 = 86_400;
/// Longest allowed max_age: ten years (of 365 days).
pub const MAX_MAX_AGE: u64 = 10 * 365 * 86_400;

/// What a router worker tracks: Crossbar.io's `cookie` configuration.
///
/// ```
/// use cookiestore::TrackerConfig;
/// let config: TrackerConfig =
///     serde_json::from_str(r#"{"name": "cbtid", "length": 24, "max_age": 604800}"#).unwrap();
/// config.validate().unwrap();
/// assert_eq!(config.max_age, 604_800);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrackerConfig {
    /// Cookie name: matches `^[a-z][a-z0-9_]+$`. Default `cbtid`.
    pub name: String,
    /// Length of generated values in characters, 6 to 64. Default 24.
    pub length: usize,
    /// Cookie lifetime in seconds, 1 to 315360000 (10 years). Default 86400 (1 day).
    pub max_age: u64,
    /// Opt-in attributes for the `Set-Cookie` header (HttpOnly, Secure, SameSite, Path,
    /// Domain). Default none, as Crossbar.io sends.
    #[serde(skip)]
    pub attributes: CookieAttributes,
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
        validate_attributes(&self.attributes).map_err(|problem| Error::InvalidConfig {
            field: "attributes",
            problem,
        })
    }
}
