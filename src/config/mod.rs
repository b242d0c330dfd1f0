//! Configuration: how a store is opened and what a router tracks.
//!
//! **Owns:** the store's options (`options.rs`: [`StoreOptions`](crate::StoreOptions) with
//! its common part and one part per backend, the one list of option keys), the tracker's
//! (`tracker.rs`), Crossbar.io's `cookie` section that holds both (`section.rs`), and what a
//! location is (`location.rs`: the one rule that tells a directory from a URL, and masks
//! passwords).
//!
//! **May not know:** the store, any backend's code, the feed. Backends read their own part
//! of the options.

pub(crate) mod location;
pub(crate) mod options;
pub(crate) mod section;
pub(crate) mod tracker;
