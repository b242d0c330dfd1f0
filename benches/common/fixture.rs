//! The fixture stores of `n` cookies (built once into `target/bench-stores/`), copies of
//! them, and their values in a shuffled order.

use std::path::{Path, PathBuf};
use std::time::Instant;

use cookiestore::CookieStore;

use super::*;

/// `target/` of this package.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// "100k", "1M", ...
pub fn label(n: u64) -> String {
    if n >= 1_000_000 && n.is_multiple_of(1_000_000) {
        format!("{}M", n / 1_000_000)
    } else if n >= 1_000 && n.is_multiple_of(1_000) {
        format!("{}k", n / 1_000)
    } else {
        n.to_string()
    }
}

/// A fixture store pair of `n` cookies.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// Cookies in it.
    pub n: u64,
    /// `target/bench-stores/<FORMAT>-<n>`.
    pub dir: PathBuf,
}

impl Fixture {
    /// Where the fixture of `n` cookies lives (it may not exist yet).
    pub fn at(n: u64) -> Fixture {
        Fixture {
            n,
            dir: target_dir()
                .join("bench-stores")
                .join(format!("{FORMAT}-{n}")),
        }
    }

    /// The store built by cookiestore.
    pub fn ours(&self) -> PathBuf {
        self.dir.join("ours")
    }

    /// Its LMDB copy for the raw baseline.
    pub fn raw(&self) -> PathBuf {
        self.dir.join("raw")
    }

    /// A scratch directory next to the fixture.
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.dir.join("scratch").join(name)
    }

    fn marker(&self) -> PathBuf {
        self.dir.join("ready")
    }

    fn marker_text(&self) -> String {
        format!("format={FORMAT}\nn={}\n", self.n)
    }

    /// The fixture of `n` cookies, built now unless a valid one is present.
    pub fn ensure(n: u64) -> Fixture {
        let fx = Fixture::at(n);
        if fx.is_valid() {
            return fx;
        }
        fx.build();
        assert!(
            fx.is_valid(),
            "fixture {} is not valid after building it",
            fx.dir.display()
        );
        fx
    }

    fn is_valid(&self) -> bool {
        if std::fs::read_to_string(self.marker()).ok() != Some(self.marker_text())
            || !self.raw().join("data.mdb").exists()
        {
            return false;
        }
        let Ok(store) = CookieStore::open(self.ours(), options(false)) else {
            return false;
        };
        [0, self.n / 2, self.n - 1]
            .iter()
            .all(|&i| matches!(store.get_auth(&value(i)), Ok(Some(a)) if a == auth(i)))
    }

    fn build(&self) {
        let started = Instant::now();
        eprintln!(
            "building the {}-cookie fixture in {} ...",
            self.n,
            self.dir.display()
        );
        let _ = std::fs::remove_dir_all(&self.dir);
        std::fs::create_dir_all(&self.dir).expect("create the fixture directory");
        let store = CookieStore::open(self.ours(), options(false)).expect("open the fixture");
        let mut start = 0;
        while start < self.n {
            let end = (start + BUILD_BATCH).min(self.n);
            store
                .as_lmdb()
                .unwrap()
                .batch("build the bench fixture", |b| {
                    (start..end).try_for_each(|i| b.put(&cookie(i)))
                })
                .expect("write a fixture batch");
            start = end;
        }
        store
            .as_lmdb()
            .unwrap()
            .copy_to(&self.raw(), false)
            .expect("copy the fixture for the raw baseline");
        drop(store);
        std::fs::write(self.marker(), self.marker_text()).expect("write the fixture marker");
        eprintln!("  built in {:.1} s", started.elapsed().as_secs_f64());
    }
}

/// Touches every page of `store`'s database through this process's map (`stats` walks
/// every record and both indexes), so the benches measure a warm process, not page faults.
pub fn warm_store(store: &CookieStore) -> u64 {
    store.stats().expect("stats").records
}

/// Copies the environment in `src` (a closed or quiescent store directory) to a fresh `dst`.
pub fn copy_store(src: &Path, dst: &Path) {
    let _ = std::fs::remove_dir_all(dst);
    std::fs::create_dir_all(dst).expect("create a scratch store directory");
    std::fs::copy(src.join("data.mdb"), dst.join("data.mdb")).expect("copy data.mdb");
}

/// The fixture's values in a random order (a seeded permutation), laid out in that order so
/// the benches walk the list sequentially while the store is hit at random.
pub struct Keys {
    values: Vec<u8>,
    index: Vec<u32>,
    pos: usize,
}

impl Keys {
    /// All `n` values of a fixture, shuffled.
    pub fn shuffled(n: u64) -> Keys {
        let mut index: Vec<u32> = (0..n as u32).collect();
        for k in (1..index.len()).rev() {
            let j = (mix(SEED_ORDER ^ k as u64) % (k as u64 + 1)) as usize;
            index.swap(k, j);
        }
        let mut values = vec![0u8; index.len() * VALUE_LEN];
        for (chunk, &i) in values.chunks_exact_mut(VALUE_LEN).zip(&index) {
            value_into(i as u64, chunk.try_into().expect("24 bytes"));
        }
        Keys {
            values,
            index,
            pos: 0,
        }
    }

    /// The first `w` of the shuffled values: a working set that a cache holds whole.
    pub fn working_set(n: u64, w: usize) -> Keys {
        let mut keys = Keys::shuffled(n);
        let w = w.min(keys.index.len());
        keys.index.truncate(w);
        keys.values.truncate(w * VALUE_LEN);
        keys
    }

    /// Starts the walk at `pos` (modulo the length).
    pub fn starting_at(mut self, pos: usize) -> Keys {
        self.pos = pos % self.index.len();
        self
    }

    /// The next (fixture index, value).
    #[inline]
    pub fn next_entry(&mut self) -> (u64, &str) {
        let k = self.pos;
        self.pos += 1;
        if self.pos == self.index.len() {
            self.pos = 0;
        }
        let v = &self.values[k * VALUE_LEN..(k + 1) * VALUE_LEN];
        // SAFETY: every byte comes from the base64 alphabet (ASCII).
        (self.index[k] as u64, unsafe {
            std::str::from_utf8_unchecked(v)
        })
    }

    /// The next value.
    #[inline]
    pub fn next_value(&mut self) -> &str {
        self.next_entry().1
    }
}
