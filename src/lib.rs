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
//! - [`Cookie`]: the record, with every field of cfxdb's FlatBuffers `Cookie` table.
//! - [`legacy`]: Crossbar's append-only `cookies.dat`, for migrating off it.
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

mod batch;
pub mod check;
pub mod clock;
pub mod config;
pub mod cookie;
pub mod error;
mod generated;
pub mod header;
pub mod layout;
pub mod legacy;
pub mod migrate;
mod open;
mod reader;
mod snapshot;
pub mod store;
mod tables;
pub mod timefmt;
pub mod tracker;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{StoreOptions, TrackerConfig};
pub use cookie::{Auth, AuthContext, Cookie, CookieView};
pub use error::{Error, Result};
pub use header::{CookieAttributes, SameSite};
pub use store::{AuthUpdate, Batch, CookieStore, Lookup, Snapshot, Stats};
pub use tracker::{Tracked, Tracker};
