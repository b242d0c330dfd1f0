//! # cookiestore
//!
//! A persistent, expiring cookie store for Crossbar.io routers, on LMDB (via heed).
//!
//! Crossbar.io tracks each browser connection with a cookie (`cbtid`) and, once the client
//! has authenticated, stores its authid, authrole, authmethod, authrealm and authextra on the
//! cookie, so a later connection is authenticated by the cookie alone. This crate keeps those
//! cookies in an LMDB database that is **byte-compatible with cfxdb's cookie store** (a
//! Crossbar database opens here, and ours opens in Crossbar), **expires** them by `max_age`
//! (expired = absent; [`CookieStore::purge_expired`] reclaims the space), and is shared
//! safely by every worker process of a host (LMDB: many readers, one writer, crash-safe).
//!
//! - [`Tracker`]: what a router worker calls on every connection (`track`, `authenticate`,
//!   `logout`).
//! - [`CookieStore`]: the store itself (create, get, set auth, delete, purge, iterate, stats).
//! - [`CookieStore::logout_authid`], the revocation feed ([`Subscriber`], [`Watcher`]) and
//!   the [`Connections`] registry: a logout anywhere reaches every connection of the host.
//! - [`Cookie`]: the record, with every field of cfxdb's FlatBuffers `Cookie` table.
//! - [`CookieSection`]: a Crossbar.io node config's `cookie` section, parsed as it is.
//! - [`maintenance`]: check and repair, export and restore, and migration off Crossbar's
//!   append-only `cookies.dat`.
//!
//! ```
//! use cookiestore::{Auth, StoreOptions, Tracker, TrackerConfig};
//! # let dir = tempfile::tempdir().unwrap();
//! let tracker = Tracker::open(dir.path(), StoreOptions::default(), TrackerConfig::default())?;
//! let tracked = tracker.track(Some(b"cbtid=unknown-value"))?;
//! assert!(tracked.is_new);
//! tracker.authenticate(&tracked.value, &Auth::new("joe", "frontend", "cookie", "realm1"), &Default::default())?;
//! # Ok::<(), cookiestore::Error>(())
//! ```
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod backend;
mod borrowed;
mod cache;
mod clock;
mod config;
mod error;
mod feed;
mod fork;
mod health;
mod http;
mod lmdb;
pub mod maintenance;
mod record;
#[cfg(feature = "redis")]
mod redis;
mod stats;
mod store;
mod tracker;

pub use borrowed::{AuthRef, LookupRef};
pub use cache::CacheStats;
pub use clock::rfc3339::{TimeError, format_rfc3339_ns, parse_rfc3339_ns};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::lmdb_options::{Durability, LmdbOptions};
pub use config::location::{IntoLocation, Location, RedisLocation};
pub use config::options::StoreOptions;
pub use config::redis_options::RedisOptions;
pub use config::section::{CookieSection, StoreSection};
pub use config::tracker::TrackerConfig;
pub use error::{Error, LmdbError, Result};
pub use feed::connections::Connections;
pub use feed::kind::RevocationKind;
pub use feed::revocation::{Revocation, Revocations};
pub use feed::subscriber::Subscriber;
pub use feed::watcher::{WatchEvent, Watcher};
pub use health::Health;
pub use http::header::{CookieValues, cookie_values, parse_cookie_header};
pub use http::set_cookie::{CookieAttributes, SameSite};
pub use lmdb::LmdbStore;
pub use lmdb::batch::Batch;
pub use lmdb::layout::TableMeta;
pub use lmdb::snapshot::Snapshot;
pub use record::codec::CookieView;
pub use record::cookie::{Auth, AuthContext, AuthUpdate, Cookie, Lookup};
pub use record::value::CookieValue;
pub use stats::{LmdbStats, RedisStats, Stats};
pub use store::CookieStore;
pub use tracker::{Tracked, TrackedRef, Tracker};

/// The README's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The Rust examples of docs/api.md, compiled and run as doctests (tests/docs.rs checks that
/// every file of docs/ with Rust blocks is included here).
#[cfg(doctest)]
#[doc = include_str!("../docs/api.md")]
pub struct ApiDocDoctests;

/// Entry points for the fuzz targets (`fuzz/`); not part of the stable API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    /// Compares the lookup path's field reader with the fully verified decode on `bytes`:
    /// panics when they disagree.
    pub fn reader_agrees(bytes: &[u8]) {
        crate::record::reader::agrees_with_decode(bytes);
    }

    /// Compares a restore's two readings of an export line on `text` (the quick path with
    /// the reference `Cookie` path, and the JSON-to-CBOR transcoder with `cbor_field`):
    /// panics when they disagree.
    pub fn restore_line_agrees(text: &str) {
        crate::maintenance::record_line::agrees_with_reference(text);
    }
}
