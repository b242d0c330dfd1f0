//! Crossbar.io's `cookie` section ([`CookieSection`]) and its `store` ([`StoreSection`]),
//! parsed as a node config holds them, every value checked and a misspelt key named.

use std::path::Path;
use std::sync::LazyLock;

use serde::Deserialize;
use serde_json::Value;

use crate::config::fields::field_names;
use crate::config::location::Location;
use crate::config::options::StoreOptions;
use crate::config::tracker::TrackerConfig;
use crate::error::{Error, Result};

/// A transport's `cookie` section from a Crossbar.io node config: the tracker and its store.
///
/// ```
/// use cookiestore::CookieSection;
/// let section = CookieSection::from_json(r#"{
///     "name": "cbtid", "length": 24, "max_age": 604800, "secure": true,
///     "store": {"type": "database", "path": "cookies", "maxsize": 10485760}
/// }"#)?;
/// assert!(section.tracker.attributes.secure);
/// let store = section.store.unwrap();
/// assert_eq!(store.options.lmdb.maxsize, 10_485_760);
/// assert_eq!(store.location_in("/srv/node/.crossbar").to_string(), "/srv/node/.crossbar/cookies");
/// # Ok::<(), cookiestore::Error>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CookieSection {
    /// Name, length, max_age and `Set-Cookie` attributes.
    pub tracker: TrackerConfig,
    /// The store, when the section has one (Crossbar's default without one is its memory
    /// store, which is not served here).
    pub store: Option<StoreSection>,
}

/// A cookie section's `store`: where the store is and how to open it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StoreSection {
    /// The `type` given: `database` (Crossbar.io's LMDB store, which cookiestore reads and
    /// writes in the same format) or `cookiestore`.
    pub kind: String,
    /// Where the store is: its directory as given in `path` (a relative path is relative to
    /// the node directory: see [`Self::location_in`]), or the Redis URL given in `url`
    /// (`redis://...`, `redis+unix://...`). Both go through [`Location::parse`]: a Redis URL
    /// given as `path` names the Redis store too, and a `url` that is not a Redis URL is an
    /// error.
    pub location: Location,
    /// `maxsize`, `readonly`, `sync`, `purge_on_startup`, and ours: `initial_mapsize`,
    /// `file_mode`. Crossbar's database store wipes every cookie on `purge_on_startup`;
    /// cookiestore purges the expired ones.
    pub options: StoreOptions,
}

/// Store types served: Crossbar.io's LMDB store (same format) and ours.
const STORE_TYPES: [&str; 2] = ["database", "cookiestore"];

impl CookieSection {
    /// Parses a `cookie` section (a JSON object), checking every value.
    pub fn from_json(json: &str) -> Result<CookieSection> {
        let value: Value =
            serde_json::from_str(json).map_err(|e| Error::config("cookie", e.to_string()))?;
        Self::from_value(&value)
    }

    /// Parses a `cookie` section given as a JSON value, checking every value.
    pub fn from_value(value: &Value) -> Result<CookieSection> {
        let Value::Object(map) = value else {
            return Err(Error::config(
                "cookie",
                format!("is {value}; it must be a JSON object such as {{\"name\": \"cbtid\"}}"),
            ));
        };
        let mut rest = map.clone();
        let store = rest
            .remove("store")
            .map(|s| StoreSection::from_value(&s))
            .transpose()?;
        let tracker = TrackerConfig::deserialize(Value::Object(rest))
            .map_err(|e| Error::config("cookie", e.to_string()))?;
        tracker.validate()?;
        Ok(CookieSection { tracker, store })
    }
}

impl CookieSection {
    /// Every key a `cookie` section accepts (Crossbar's `name`, `length`, `max_age`,
    /// `secure`, `http_strict`, `same_site`; ours, `attributes`; and `store`): the fields
    /// [`Self::from_value`] parses, read from its parser, so that tools (the Python launcher)
    /// need no list of their own. The store's keys are [`StoreSection::keys`].
    pub fn keys() -> &'static [&'static str] {
        static KEYS: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
            let mut keys = field_names::<TrackerConfig>().to_vec();
            keys.push("store");
            keys
        });
        &KEYS
    }
}

impl StoreSection {
    /// Every key a `store` object accepts: `type`, `path`, `url` and the
    /// [`StoreOptions`] fields (`maxsize`, ..., `cache_bytes`), read from the parser
    /// [`Self::from_value`] uses, so this list and the parser cannot disagree. Any other key
    /// is refused with its name.
    ///
    /// ```
    /// use cookiestore::StoreSection;
    /// assert!(StoreSection::keys().contains(&"cache_bytes"));
    /// assert!(!StoreSection::keys().contains(&"clock"));
    /// ```
    pub fn keys() -> &'static [&'static str] {
        static KEYS: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
            let mut keys = vec!["type", "path", "url"];
            keys.extend_from_slice(StoreOptions::keys());
            keys
        });
        &KEYS
    }

    /// Parses a cookie section's `store` object, checking every value.
    pub fn from_value(value: &Value) -> Result<StoreSection> {
        let Value::Object(map) = value else {
            return Err(Error::config(
                "store",
                format!("is {value}; it must be a JSON object with a \"type\""),
            ));
        };
        let kind = match map.get("type") {
            Some(Value::String(kind)) => kind.clone(),
            Some(other) => {
                return Err(Error::config(
                    "store.type",
                    format!("is {other}; it must be a string: one of {STORE_TYPES:?}"),
                ));
            }
            None => {
                return Err(Error::config(
                    "store.type",
                    format!("is missing; give one of {STORE_TYPES:?}"),
                ));
            }
        };
        match kind.as_str() {
            "database" | "cookiestore" => {}
            "memory" => {
                return Err(Error::config(
                    "store.type",
                    "is \"memory\", Crossbar.io's per-process store, which cookiestore does not \
                     serve: use {\"type\": \"database\", \"path\": ...} so that every worker \
                     shares one store that survives restarts",
                ));
            }
            "file" => {
                return Err(Error::config(
                    "store.type",
                    "is \"file\", Crossbar.io's cookies.dat, which cookiestore does not serve: \
                     move its cookies into a store with `cookiestore import STORE cookies.dat`, \
                     then use {\"type\": \"database\", \"path\": \"STORE\"}",
                ));
            }
            other => {
                return Err(Error::config(
                    "store.type",
                    format!("is {other:?}; cookiestore serves one of {STORE_TYPES:?}"),
                ));
            }
        }
        let location = match (map.get("path"), map.get("url")) {
            (Some(_), Some(_)) => {
                return Err(Error::config(
                    "store.path",
                    "and `store.url` are both given; give exactly one: `path` (the store's \
                     directory) or `url` (a Redis URL such as redis://127.0.0.1:6379/0)",
                ));
            }
            (None, None) => {
                return Err(Error::config(
                    "store.path",
                    "is missing, and so is `store.url`; give exactly one: `path` (the store's \
                     directory, relative to the node directory, or absolute) or `url` (a Redis \
                     URL such as redis://127.0.0.1:6379/0)",
                ));
            }
            (Some(Value::String(p)), None) if !p.is_empty() => {
                Location::parse(p).map_err(|e| located("store.path", e))?
            }
            (Some(other), None) => {
                return Err(Error::config(
                    "store.path",
                    format!("is {other}; it must be the store's directory, a non-empty string"),
                ));
            }
            (None, Some(url)) => redis_url(url)?,
        };
        let mut rest = map.clone();
        rest.remove("type");
        rest.remove("path");
        rest.remove("url");
        let options = StoreOptions::deserialize(Value::Object(rest.clone())).map_err(|e| {
            // serde names an unknown key, but not the key whose value has the wrong type.
            let bad = rest.iter().find(|(key, value)| {
                let one = serde_json::Map::from_iter([((*key).clone(), (*value).clone())]);
                Self::keys().contains(&key.as_str())
                    && StoreOptions::deserialize(Value::Object(one)).is_err()
            });
            match bad {
                Some((key, _)) => Error::config(format!("store.{key}"), e.to_string()),
                None => Error::config("store", e.to_string()),
            }
        })?;
        options.validate()?;
        Ok(StoreSection {
            kind,
            location,
            options,
        })
    }

    /// The store's location for a node whose directory is `node_dir`: a relative `path` is
    /// relative to it, as in Crossbar.io; a Redis location is returned as it is.
    pub fn location_in(&self, node_dir: impl AsRef<Path>) -> Location {
        match &self.location {
            Location::Lmdb(path) => Location::Lmdb(node_dir.as_ref().join(path)),
            other => other.clone(),
        }
    }
}

/// An error of [`Location::parse`] for the configuration key `field`.
fn located(field: &str, e: Error) -> Error {
    match e {
        Error::InvalidConfig {
            field: option,
            problem,
        } if option == "url" => Error::config(field, problem),
        Error::InvalidConfig {
            field: option,
            problem,
        } => Error::config(field, format!("has a bad `{option}` option: {problem}")),
        Error::UnsupportedLocation { .. } => Error::config(field, e.to_string()),
        other => other,
    }
}

/// Checks a store section's `url`: a string naming a Redis store (`redis://`, `rediss://`,
/// `redis+unix://`, `unix://`), whose query options (`prefix`, `timeout_ms`, ...) parse.
fn redis_url(value: &Value) -> Result<Location> {
    const EXAMPLE: &str = "redis://127.0.0.1:6379/0 or redis+unix:///run/redis.sock";
    let Value::String(url) = value else {
        return Err(Error::config(
            "store.url",
            format!("is {value}; it must be a Redis URL (a string) such as {EXAMPLE}"),
        ));
    };
    match Location::parse(url).map_err(|e| located("store.url", e))? {
        Location::Lmdb(_) => Err(Error::config(
            "store.url",
            format!(
                "is {:?}; it must be a Redis URL such as {EXAMPLE} (a store's directory goes in \
                 `store.path`)",
                Location::mask(url)
            ),
        )),
        #[cfg(feature = "redis")]
        redis => Ok(redis),
        #[cfg(not(feature = "redis"))]
        Location::Redis(_) => Err(Error::config(
            "store.url",
            "names a Redis store, but this build of cookiestore has no Redis backend (cargo \
             feature `redis`)",
        )),
    }
}
