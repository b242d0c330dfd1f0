//! Configuration: how a store is opened and what a router tracks.
//!
//! **Owns:** the store's options ([`StoreOptions`](crate::StoreOptions): the common part in
//! `options.rs`, one part per backend in `lmdb_options.rs` and `redis_options.rs`; their
//! fields are the one list of option keys, read by `fields.rs`), the tracker's
//! (`tracker.rs`), Crossbar.io's `cookie` section that holds both (`section.rs`), and what a
//! location is (`location/`: the one rule that tells a directory from a URL, and masks
//! passwords).
//!
//! **May not know:** the store, any backend's code, the feed. Backends read their own part
//! of the options.

pub(crate) mod fields;
pub(crate) mod lmdb_options;
pub(crate) mod location;
pub(crate) mod options;
pub(crate) mod redis_options;
pub(crate) mod section;
pub(crate) mod tracker;
