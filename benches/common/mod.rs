//! What `benches/store.rs` and the examples share (`#[path]`-included, so not every item is
//! used by every target):
//!
//! - [`cookies`]: fixture cookie `i`, a pure function of `i`, and the benches' store options;
//! - [`fixture`]: the fixture stores of `n` cookies, built once, and the shuffled keys;
//! - [`raw`]: the raw heed baseline, the same LMDB work on the same layout without the store;
//! - [`children`]: re-executed child processes for multi-process throughput and memory.
//!
//! A fixture of `n` cookies lives in `target/bench-stores/<FORMAT>-<n>/`: `ours/` is the
//! store built through [`cookiestore::CookieStore::batch`], `raw/` an LMDB copy of it (the raw
//! heed baseline cannot open the same environment in the same process). Both hold the same
//! pages, so both sides of every comparison read the same B-tree. Cookie `i` is a pure
//! function of `i` ([`cookie`]), so nothing but the stores has to be kept between runs.
#![allow(dead_code)]

pub mod children;
pub mod cookies;
pub mod fixture;
pub mod raw;

// Each target uses only some of these.
#[allow(unused_imports)]
pub use children::*;
#[allow(unused_imports)]
pub use cookies::*;
#[allow(unused_imports)]
pub use fixture::*;
#[allow(unused_imports)]
pub use raw::*;
