//! What every command shares: the global options (`--now`, `--maxsize`) and how a command
//! opens the store.
//!
//! A command's PATH is a store directory or a Redis URL: the library's [`Location::parse`]
//! decides (text starting with `scheme://` is a URL, never a directory), here and nowhere
//! else in the tool.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cookiestore::{Clock, CookieStore, Location, ManualClock, StoreOptions};

use crate::Failure;

/// The global options, parsed.
pub struct Ctx {
    /// `--now`, in ns.
    pub now: Option<u64>,
    /// `--maxsize`, in bytes.
    pub maxsize: u64,
}

/// `1073741824`, `1GiB`, `512MiB`, `64 KiB` (also `G`, `M`, `K`, `GB`...: binary units).
fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return None,
    };
    number.checked_mul(1 << shift)
}

impl Ctx {
    /// Parses `--now` (RFC 3339) and `--maxsize` (a size with an optional binary unit).
    pub fn new(now: Option<&str>, maxsize: &str) -> Result<Ctx, Failure> {
        let now = match now {
            Some(text) => Some(
                cookiestore::parse_rfc3339_ns(text)
                    .map_err(|e| Failure::Error(format!("--now: {e}")))?,
            ),
            None => None,
        };
        let maxsize = parse_size(maxsize).ok_or_else(|| {
            Failure::Error(format!(
                "--maxsize {maxsize:?}: expected a number of bytes, optionally with a KiB, MiB or \
                 GiB suffix (128KiB to 128GiB)"
            ))
        })?;
        Ok(Ctx { now, maxsize })
    }

    /// The store options of a command: `--maxsize`, `--now`, and `readonly`.
    pub fn options(&self, readonly: bool) -> StoreOptions {
        let options = StoreOptions::default()
            .readonly(readonly)
            .maxsize(self.maxsize);
        match self.now {
            Some(now) => options.clock(Arc::new(ManualClock::new(now)) as Arc<dyn Clock>),
            None => options,
        }
    }

    /// Opens read-only: one reader slot, nothing written, works in a read-only directory.
    pub fn open_read(&self, path: &Path) -> Result<CookieStore, Failure> {
        Ok(CookieStore::open(location(path)?, self.options(true))?)
    }

    /// Opens an existing store for writing (never creates one: a typo must not make a store).
    pub fn open_existing(&self, path: &Path) -> Result<CookieStore, Failure> {
        // The read-only open gives the precise error for a missing path, a file that is not
        // a store, LMDB format 3...
        drop(self.open_read(path)?);
        self.open_write(path)
    }

    /// The store directory of a command that works on LMDB's files (check, repair); a Redis
    /// URL is refused, naming it with its password masked.
    pub fn lmdb_only(&self, path: &Path, command: &str) -> Result<PathBuf, Failure> {
        match location(path)? {
            Location::Lmdb(path) => Ok(path),
            redis => Err(Failure::Error(format!(
                "{command} applies to LMDB stores only (a store directory); {redis} is a Redis \
                 URL, which has no files to {command}: use `export` and `restore` to move its \
                 cookies"
            ))),
        }
    }

    /// Opens for writing, creating the store if missing.
    pub fn open_write(&self, path: &Path) -> Result<CookieStore, Failure> {
        Ok(CookieStore::open(location(path)?, self.options(false))?)
    }
}

/// What a command's PATH names: a store directory or a Redis URL (the library's rule).
pub fn location(path: &Path) -> Result<Location, Failure> {
    Ok(Location::parse(path)?)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1073741824"), Some(1 << 30));
        assert_eq!(parse_size("1GiB"), Some(1 << 30));
        assert_eq!(parse_size("512MiB"), Some(512 << 20));
        assert_eq!(parse_size("64 KiB"), Some(64 << 10));
        assert_eq!(parse_size("2g"), Some(2 << 30));
        assert_eq!(parse_size("1TiB"), None);
        assert_eq!(parse_size("GiB"), None);
        assert_eq!(parse_size("-1"), None);
        assert_eq!(parse_size("18446744073709551615GiB"), None);
    }
}
