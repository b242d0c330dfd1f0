//! [`Connections`]: which connections of this process carry which cookie.
//!
//! The same bookkeeping as Crossbar.io's `addProto` / `dropProto` / `getProtos`, per process
//! and generic over the caller's connection handle. The registry never consults the store:
//! the connections of a cookie that was just logged out are still listed, which is exactly
//! what a [`Watcher`](crate::Watcher) needs to cut them.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

/// A thread-safe registry of cookie value → the connections (handles of type `H`) using it.
/// Share it with an `Arc`.
///
/// ```
/// use cookiestore::Connections;
/// let registry = Connections::new();
/// registry.register("cookie-a", 1u32);
/// registry.register("cookie-a", 2u32);
/// registry.unregister("cookie-a", &1);
/// assert_eq!(registry.connections("cookie-a"), vec![2]);
/// ```
#[derive(Debug)]
pub struct Connections<H> {
    inner: Mutex<HashMap<String, Vec<H>>>,
}

impl<H> Default for Connections<H> {
    fn default() -> Self {
        Connections {
            inner: Mutex::new(HashMap::new()),
        }
    }
}

impl<H: Clone + Eq + Hash + Send> Connections<H> {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that connection `handle` uses the cookie `value` (once; registering it
    /// again changes nothing).
    pub fn register(&self, value: &str, handle: H) {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let handles = map.entry(value.to_string()).or_default();
        if !handles.contains(&handle) {
            handles.push(handle);
        }
    }

    /// Forgets that `handle` uses `value`; returns whether it was registered.
    pub fn unregister(&self, value: &str, handle: &H) -> bool {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Some(handles) = map.get_mut(value) else {
            return false;
        };
        let before = handles.len();
        handles.retain(|h| h != handle);
        let removed = handles.len() != before;
        if handles.is_empty() {
            map.remove(value);
        }
        removed
    }

    /// The connections using `value`, in registration order (empty when there are none).
    pub fn connections(&self, value: &str) -> Vec<H> {
        let map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        map.get(value).cloned().unwrap_or_default()
    }

    /// How many cookies have at least one connection.
    pub fn cookies(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}
