//! The revocation feed: every logout, in commit order, for every process that shares the
//! store, and every other change that can alter a cached answer.
//!
//! **Owns:** the kinds of entries and which of them revoke (`kind.rs`: the one home of that
//! rule), the entries a reader gets (`revocation.rs`), the reader that remembers its place
//! (`subscriber.rs`), the thread that hands a process its connections of revoked cookies
//! (`watcher.rs`), and the registry of those connections (`connections.rs`).
//!
//! **May not know:** how a backend stores its feed (LMDB: a table, `lmdb/feed.rs`; Redis: a
//! stream, `redis/feed.rs`). Readers reach it through the seam (`backend.rs`).
//!
//! Each write that logs a cookie out — [`CookieStore::delete`](crate::CookieStore::delete),
//! [`Batch::delete_oid`](crate::Batch::delete_oid),
//! [`CookieStore::logout_authid`](crate::CookieStore::logout_authid) — and each deletion by
//! maintenance ([`CookieStore::clear`](crate::CookieStore::clear),
//! [`repair`](crate::maintenance::repair)) appends a [`Revocation`](crate::Revocation) with
//! the write, under the next sequence number. A process learns of revocations made anywhere
//! by polling ([`Subscriber`](crate::Subscriber), or [`Watcher`](crate::Watcher) on a thread)
//! and then closes its own connections of those cookies (found in its
//! [`Connections`](crate::Connections) registry).
//!
//! On LMDB the feed also carries the changes that are not revocations
//! ([`RevocationKind::revokes`](crate::RevocationKind::revokes) is false; the watcher skips
//! them): an auth change, a record replaced whole, a purge, and a flush (another program's
//! write, found by the next cookiestore commit; a repair). The per-process cache
//! (`lmdb/cache.rs`) reads them to stay exact. On Redis the feed holds revocations only.
//!
//! **Expiry is not a revocation.** An expired cookie is absent for new connections, but live
//! sessions that authenticated with it are not cut: nothing is appended when a cookie
//! expires, and a purge appends one `Purged` entry. Deletions made by other programs (cfxdb,
//! Crossbar.io) are not itemized: the next cookiestore commit appends one `Flush`.
//!
//! Entries older than [`StoreOptions::revocation_retention_secs`](crate::StoreOptions)
//! (default 10 minutes) are trimmed by
//! [`CookieStore::purge_expired`](crate::CookieStore::purge_expired); a reader asking for
//! entries already trimmed gets [`Revocations::missed`](crate::Revocations::missed) = true
//! (it should then treat every session as suspect, e.g. re-check each connection's cookie
//! with [`CookieStore::exists`](crate::CookieStore::exists)).

pub(crate) mod connections;
pub(crate) mod kind;
pub(crate) mod revocation;
pub(crate) mod subscriber;
pub(crate) mod watcher;
