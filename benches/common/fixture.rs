//! Fixture stores, the raw heed baseline and the child-process roles shared by
//! `benches/store.rs` and the examples (`#[path]`-included, so not every item is used by
//! every target).
//!
//! A fixture of `n` cookies lives in `target/bench-stores/<FORMAT>-<n>/`: `ours/` is the
//! store built through [`CookieStore::batch`], `raw/` an LMDB copy of it (the raw heed
//! baseline cannot open the same environment in the same process). Both hold the same
//! pages, so both sides of every comparison read the same B-tree. Cookie `i` is a pure
//! function of `i` ([`cookie`]), so nothing but the stores has to be kept between runs.
#![allow(dead_code)]

use std::io::BufRead;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cookiestore::layout::{Catalog, Slots};
use cookiestore::{Auth, AuthContext, Cookie, CookieStore, CookieView, StoreOptions};
use heed::types::Bytes;
use heed::{CommitOrAbort, Database, Env, EnvFlags, EnvOpenOptions, RoTxn, RwTxn};
use serde_json::{Value, json};
use uuid::Uuid;

/// Bump when the fixture's contents or layout change: old stores are then rebuilt.
pub const FORMAT: &str = "v1";
/// Cookie value length (Crossbar's default).
pub const VALUE_LEN: usize = 24;
/// Cookies per write transaction when building a fixture.
pub const BUILD_BATCH: u64 = 10_000;
/// 2026-01-01T00:00:00Z (ns): every fixture cookie is created just after this.
pub const BASE_NS: u64 = 1_767_225_600_000_000_000;
const YEAR_S: u64 = 365 * 86_400;
const NS: u64 = 1_000_000_000;
/// Even cookies live 9 years, odd ones 10: nothing is expired today, and at
/// [`HALF_EXPIRED_NS`] exactly the even half is.
pub const MAX_AGE_EVEN: u64 = 9 * YEAR_S;
/// See [`MAX_AGE_EVEN`].
pub const MAX_AGE_ODD: u64 = 10 * YEAR_S;
/// A time at which exactly half of every fixture (the even cookies) is expired.
pub const HALF_EXPIRED_NS: u64 = BASE_NS + 9 * YEAR_S * NS + YEAR_S * NS / 2;
/// Map size for every environment the benches open (virtual only).
pub const MAP_SIZE: u64 = 16 << 30;

const SEED_VALUE: u64 = 0x5eed_c00c_1e00_0001;
const SEED_OID: u64 = 0x5eed_c00c_1e00_0002;
const SEED_ORDER: u64 = 0x5eed_c00c_1e00_0003;
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const NODE: Uuid = uuid::uuid!("2a1c0de5-7e57-4b3a-9c1d-000000000001");

/// SplitMix64: a cheap, good 64-bit mixer.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The value of fixture cookie `i`: 24 base64 characters (144 random bits), like Crossbar's.
pub fn value_into(i: u64, out: &mut [u8; VALUE_LEN]) {
    for w in 0..3 {
        let mut r = mix(SEED_VALUE ^ (i * 4 + w as u64));
        for c in 0..8 {
            out[w * 8 + c] = ALPHABET[(r & 63) as usize];
            r >>= 6;
        }
    }
}

/// [`value_into`] as a `String`.
pub fn value(i: u64) -> String {
    let mut v = [0u8; VALUE_LEN];
    value_into(i, &mut v);
    String::from_utf8(v.to_vec()).expect("base64 is ASCII")
}

/// The oid of fixture cookie `i` (a v4 UUID).
pub fn oid(i: u64) -> Uuid {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&mix(SEED_OID ^ (i * 2)).to_le_bytes());
    bytes[8..].copy_from_slice(&mix(SEED_OID ^ (i * 2 + 1)).to_le_bytes());
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// authextra of fixture cookie `i`: a few keys, as applications put there.
pub fn authextra(i: u64) -> Value {
    json!({"tenant": "acme", "groups": ["staff", "ops"], "level": i % 5, "uid": i})
}

/// The auth stored on fixture cookie `i`.
pub fn auth(i: u64) -> Auth {
    Auth::new(&format!("user{i:07}"), "user", "cookie", "realm1").with_authextra(authextra(i))
}

/// The transport details stored when cookie `i` was authenticated (modest: a real router
/// may store more headers).
pub fn transport_info(i: u64) -> Value {
    let r = mix(i);
    json!({
        "type": "websocket",
        "protocol": "wamp.2.json",
        "peer": format!("tcp4:10.{}.{}.{}:{}", r & 255, (r >> 8) & 255, (r >> 16) & 255,
                        1024 + (r >> 24) % 60_000),
        "http_headers_received": {
            "host": "router.example.com",
            "user-agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        },
    })
}

/// Where cookie `i` is (re)authenticated in the set_auth benches.
pub fn context(i: u64, now: u64) -> AuthContext {
    AuthContext {
        node: Some(NODE),
        worker: Some("worker001".into()),
        transport_info: transport_info(i),
        session: mix(i) >> 11,
        joined_at: now,
        authmethod: Some("wampcra".into()),
    }
}

/// Fixture cookie `i`: authenticated, with authextra and a modest transport info.
pub fn cookie(i: u64) -> Cookie {
    let created = BASE_NS + i * 1_000;
    let a = auth(i);
    let r = mix(i);
    Cookie {
        oid: oid(i),
        created,
        max_age: if i.is_multiple_of(2) {
            MAX_AGE_EVEN
        } else {
            MAX_AGE_ODD
        },
        name: Some("cbtid".into()),
        value: value(i),
        authenticated: created + 2_500_000_000,
        authenticated_on_node: Some(NODE),
        authenticated_on_worker: Some("worker001".into()),
        authenticated_transport_info: transport_info(i),
        authenticated_session: r >> 11,
        authenticated_joined_at: created + 2_400_000_000,
        authenticated_authmethod: Some("wampcra".into()),
        authid: Some(a.authid),
        authrole: a.authrole,
        authmethod: a.authmethod,
        authrealm: a.authrealm,
        authextra: a.authextra,
    }
}

/// Store options of the benches: sync as given, a map large enough for 1M cookies.
pub fn options(sync: bool) -> StoreOptions {
    StoreOptions {
        sync,
        maxsize: MAP_SIZE,
        initial_mapsize: 1 << 30,
        ..StoreOptions::default()
    }
}

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
                .batch("build the bench fixture", |b| {
                    (start..end).try_for_each(|i| b.put(&cookie(i)))
                })
                .expect("write a fixture batch");
            start = end;
        }
        store
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

/// Wall-clock now in ns (what the store's SystemClock gives).
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

// ---- the raw heed baseline -------------------------------------------------------------------

/// The same LMDB layout read and written with heed directly: one unnamed
/// `Database<Bytes, Bytes>`, slot-prefixed keys.
pub struct Raw {
    /// The environment.
    pub env: Env,
    /// The unnamed database.
    pub db: Database<'static, Bytes, Bytes>,
    /// The tables' slots.
    pub slots: Slots,
}

/// What a raw purge did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    /// Expiry entries walked.
    pub processed: u64,
    /// Cookies deleted.
    pub deleted: u64,
}

/// Cookies a raw purge deletes per write transaction (as `cookiestore::store::PURGE_BATCH`).
pub const RAW_PURGE_BATCH: usize = 5_000;

impl Raw {
    /// Opens the environment in `dir` and reads the slots from its metadata (slot 0), the
    /// work any reader of the layout has to do once.
    pub fn open(dir: &Path, sync: bool) -> Raw {
        let mut o = EnvOpenOptions::new();
        o.map_size(MAP_SIZE as usize);
        let mut flags = EnvFlags::NO_READ_AHEAD;
        if !sync {
            flags |= EnvFlags::NO_SYNC;
        }
        // Experiment switch (profiling only): a writable memory map, as a store could use.
        if std::env::var("COOKIESTORE_BENCH_RAW_WRITEMAP").is_ok_and(|v| v == "1") {
            flags |= EnvFlags::WRITE_MAP;
        }
        // SAFETY: the same flags the store uses; NO_SYNC only for the sync-off benches,
        // WRITE_MAP only in the profiling experiment above.
        unsafe { o.flags(flags) };
        // SAFETY: each raw directory is opened at most once at a time in this process, and
        // only through LMDB.
        let env = unsafe { o.open(dir) }.expect("open the raw environment");
        let rtxn = env.read_txn().expect("read txn");
        let db = env
            .open_databases_and_commit(rtxn, |opener, rtxn| {
                opener
                    .open_database::<Bytes, Bytes>(rtxn, None)
                    .map(CommitOrAbort::<_, ()>::Commit)
            })
            .expect("open the unnamed database")
            .unwrap_commit()
            .expect("the unnamed database exists");
        let slots = {
            let rtxn = env.read_txn().expect("read txn");
            let mut catalog = Catalog::default();
            let lo: &[u8] = &[0, 0];
            let hi: &[u8] = &[0, 1];
            for item in db
                .range(&rtxn, &(Bound::Included(lo), Bound::Excluded(hi)))
                .expect("range")
            {
                let (k, v) = item.expect("metadata entry");
                catalog.insert_raw(k, v).expect("valid metadata");
            }
            catalog.slots().expect("cookie tables")
        };
        Raw { env, db, slots }
    }

    /// Touches every page of the database through this process's map (a cursor walk of
    /// the whole unnamed database), so the benches measure a warm process, not page faults.
    /// Returns the bytes walked.
    pub fn warm(&self) -> usize {
        let txn = self.env.read_txn().expect("read txn");
        let mut bytes = 0;
        for item in self.db.iter(&txn).expect("iter") {
            let (k, v) = item.expect("entry");
            bytes += k.len() + v.len() + v.first().copied().unwrap_or(0) as usize;
        }
        bytes
    }

    /// Value-index key: 2-byte slot + value.
    #[inline]
    fn value_key(&self, value: &[u8], buf: &mut [u8; 2 + 64]) -> usize {
        buf[..2].copy_from_slice(&self.slots.by_value.to_be_bytes());
        buf[2..2 + value.len()].copy_from_slice(value);
        2 + value.len()
    }

    /// Record key: 2-byte slot + oid.
    #[inline]
    fn record_key(&self, oid: &[u8]) -> [u8; 18] {
        let mut k = [0u8; 18];
        k[..2].copy_from_slice(&self.slots.cookies.to_be_bytes());
        k[2..].copy_from_slice(oid);
        k
    }

    /// Expiry key: 2-byte slot + expires_at (BE) + oid.
    #[inline]
    fn expiry_key(&self, expires_at: u64, oid: &[u8]) -> [u8; 26] {
        let mut k = [0u8; 26];
        k[..2].copy_from_slice(&self.slots.by_expiry.expect("expiry slot").to_be_bytes());
        k[2..10].copy_from_slice(&expires_at.to_be_bytes());
        k[10..].copy_from_slice(oid);
        k
    }

    /// The two gets of a lookup: value index → oid, then the record (raw bytes).
    #[inline]
    pub fn get_record<'t>(&self, txn: &'t RoTxn, value: &[u8]) -> Option<(&'t [u8], &'t [u8])> {
        let mut buf = [0u8; 66];
        let len = self.value_key(value, &mut buf);
        let oid = self.db.get(txn, &buf[..len]).expect("get value index")?;
        if oid.len() != 16 {
            return None;
        }
        let rec = self
            .db
            .get(txn, &self.record_key(oid))
            .expect("get record")?;
        Some((oid, rec))
    }

    /// The two gets plus the verified view (value checked against the record).
    #[inline]
    pub fn get_view<'t>(&self, txn: &'t RoTxn, value: &[u8]) -> Option<CookieView<'t>> {
        let (_, rec) = self.get_record(txn, value)?;
        let view = CookieView::new(rec).ok()?;
        (view.value().as_bytes() == value).then_some(view)
    }

    /// The baseline of `get_auth`: one read txn, both gets, the verified record, the expiry
    /// check against `now` and the auth fields read (borrowed: nothing is allocated).
    /// Returns a checksum so nothing can be optimised away.
    #[inline]
    pub fn lookup(&self, value: &str, now: u64) -> usize {
        let txn = self.env.read_txn().expect("read txn");
        match self.get_view(&txn, value.as_bytes()) {
            Some(view) if !view.is_expired(now) => read_auth_fields(&view),
            _ => 0,
        }
    }

    /// As [`Raw::lookup`] but without FlatBuffers verification (unchecked field access).
    #[inline]
    pub fn lookup_noverify(&self, value: &str, now: u64) -> usize {
        let txn = self.env.read_txn().expect("read txn");
        let Some((_, rec)) = self.get_record(&txn, value.as_bytes()) else {
            return 0;
        };
        // SAFETY: the fixture's records were all written (and verified) by cookiestore, and
        // nothing else writes to the raw copy during the read benches.
        unsafe { unchecked_auth_fields(rec, value.as_bytes(), now) }
    }

    /// As [`Raw::lookup`] but materialising the owned [`Auth`] (authextra CBOR → JSON),
    /// exactly what `get_auth` returns: isolates the cost of the owned answer.
    #[inline]
    pub fn lookup_owned(&self, value: &str, now: u64) -> Option<Auth> {
        let txn = self.env.read_txn().expect("read txn");
        match self.get_view(&txn, value.as_bytes()) {
            Some(view) if !view.is_expired(now) => view.auth().expect("valid auth"),
            _ => None,
        }
    }

    /// The nothing-expired check of a purge: the store-state get and the first expiry key.
    pub fn purge_quiet_check(&self, now: u64) -> bool {
        let txn = self.env.read_txn().expect("read txn");
        let state = self.slots.state.expect("state slot");
        let mut sk = [0u8; 10];
        sk[..2].copy_from_slice(&state.to_be_bytes());
        sk[2..].copy_from_slice(b"last_txn");
        let mark = self.db.get(&txn, &sk).expect("get state");
        std::hint::black_box(mark);
        let lo = self.expiry_key(0, &[0; 16]);
        let hi = self.expiry_key(u64::MAX, &[0xff; 16]);
        let first = self
            .db
            .range(&txn, &(Bound::Included(&lo[..]), Bound::Included(&hi[..])))
            .expect("range")
            .next()
            .map(|item| item.expect("expiry entry").0);
        first.is_none_or(|k| u64::from_be_bytes(k[2..10].try_into().expect("8")) > now)
    }

    /// Writes cookie `c` (record, value index, expiry index) in `txn`.
    pub fn put_cookie(&self, txn: &mut RwTxn, c: &Cookie) {
        let bytes = c.encode().expect("encode");
        self.put_encoded(
            txn,
            c.value.as_bytes(),
            c.oid.as_bytes(),
            c.expires_at(),
            &bytes,
        );
    }

    /// The three puts of a new cookie.
    #[inline]
    pub fn put_encoded(
        &self,
        txn: &mut RwTxn,
        value: &[u8],
        oid: &[u8],
        expires_at: u64,
        record: &[u8],
    ) {
        let mut buf = [0u8; 66];
        let len = self.value_key(value, &mut buf);
        self.db
            .put(txn, &self.record_key(oid), record)
            .expect("put record");
        self.db.put(txn, &buf[..len], oid).expect("put value index");
        self.db
            .put(txn, &self.expiry_key(expires_at, oid), &[])
            .expect("put expiry");
    }

    /// The raw equivalent of `create`: a fresh random value and oid (each checked absent
    /// with a get, as the store does), the record encoded with the same codec, three puts.
    /// Returns (value, oid, expires_at) for the clean-up.
    pub fn create(&self, txn: &mut RwTxn, now: u64, max_age: u64) -> ([u8; VALUE_LEN], Uuid, u64) {
        use rand::Rng;
        loop {
            let mut value = [0u8; VALUE_LEN];
            rand::rng().fill_bytes(&mut value);
            for b in &mut value {
                *b = ALPHABET[(*b & 63) as usize];
            }
            let mut buf = [0u8; 66];
            let len = self.value_key(&value, &mut buf);
            if self.db.get(txn, &buf[..len]).expect("get").is_some() {
                continue;
            }
            let oid = Uuid::new_v4();
            if self
                .db
                .get(txn, &self.record_key(oid.as_bytes()))
                .expect("get")
                .is_some()
            {
                continue;
            }
            let cookie = Cookie {
                oid,
                created: now,
                max_age,
                name: Some("cbtid".into()),
                value: String::from_utf8(value.to_vec()).expect("ASCII"),
                ..Cookie::default()
            };
            let bytes = cookie.encode().expect("encode");
            let expires_at = cookie.expires_at();
            self.put_encoded(txn, &value, oid.as_bytes(), expires_at, &bytes);
            return (value, oid, expires_at);
        }
    }

    /// Deletes the three entries of a cookie known by (value, oid, expires_at).
    pub fn delete_known(&self, txn: &mut RwTxn, value: &[u8], oid: &[u8], expires_at: u64) {
        let mut buf = [0u8; 66];
        let len = self.value_key(value, &mut buf);
        self.db.delete(txn, &buf[..len]).expect("delete value");
        self.db
            .delete(txn, &self.record_key(oid))
            .expect("delete record");
        self.db
            .delete(txn, &self.expiry_key(expires_at, oid))
            .expect("delete expiry");
    }

    /// The raw equivalent of `delete` (logout): both gets, the verified record (for its
    /// expiry), three deletes. Returns whether it existed.
    pub fn logout(&self, txn: &mut RwTxn, value: &str) -> bool {
        let found = self
            .get_record(txn, value.as_bytes())
            .and_then(|(oid, rec)| {
                let view = CookieView::new(rec).ok()?;
                Some((<[u8; 16]>::try_from(oid).ok()?, view.expires_at()))
            });
        match found {
            Some((oid, expires_at)) => {
                self.delete_known(txn, value.as_bytes(), &oid, expires_at);
                true
            }
            None => false,
        }
    }

    /// The raw equivalent of `set_auth`: both gets, the verified record, the record rebuilt
    /// with the same codec (materialise, set the auth and `authenticated_*` fields as the
    /// store does, encode) and one put.
    pub fn set_auth(
        &self,
        txn: &mut RwTxn,
        value: &str,
        auth: &Auth,
        context: &AuthContext,
        now: u64,
    ) -> bool {
        let found = self
            .get_record(txn, value.as_bytes())
            .and_then(|(oid, rec)| {
                let view = CookieView::new(rec).ok()?;
                Some((self.record_key(oid), view.to_cookie().ok()?))
            });
        let Some((key, mut cookie)) = found else {
            return false;
        };
        cookie.authid = Some(auth.authid.clone());
        cookie.authrole = auth.authrole.clone();
        cookie.authmethod = auth.authmethod.clone();
        cookie.authrealm = auth.authrealm.clone();
        cookie.authextra = auth.authextra.clone();
        cookie.authenticated = now;
        cookie.authenticated_on_node = context.node;
        cookie.authenticated_on_worker = context.worker.clone();
        cookie.authenticated_transport_info = context.transport_info.clone();
        cookie.authenticated_session = context.session;
        cookie.authenticated_joined_at = context.joined_at;
        cookie.authenticated_authmethod = context.authmethod.clone();
        let bytes = cookie.encode().expect("encode");
        self.db.put(txn, &key, &bytes).expect("put record");
        true
    }

    /// The pure-LMDB floor of `set_auth`: both gets, the verified record, and a put of a
    /// record of the same size (its own bytes): no codec work at all.
    pub fn rewrite_record(&self, txn: &mut RwTxn, value: &str, scratch: &mut Vec<u8>) -> bool {
        let Some(key) = self
            .get_record(txn, value.as_bytes())
            .and_then(|(oid, rec)| {
                CookieView::new(rec).ok()?;
                scratch.clear();
                scratch.extend_from_slice(rec);
                Some(self.record_key(oid))
            })
        else {
            return false;
        };
        self.db.put(txn, &key, scratch).expect("put record");
        true
    }

    /// The raw equivalent of `purge_expired`: walk the expiry index up to `now` in
    /// transactions of [`RAW_PURGE_BATCH`] entries; for each, get the record, and if it is
    /// expired delete its value-index entry, the record and the expiry entry.
    pub fn purge(&self, now: u64) -> Purged {
        self.purge_in_batches(now, RAW_PURGE_BATCH)
    }

    /// [`Raw::purge`] with `batch` expiry entries per write transaction.
    pub fn purge_in_batches(&self, now: u64, batch: usize) -> Purged {
        let mut total = Purged::default();
        let lo = self.expiry_key(0, &[0; 16]);
        let hi = self.expiry_key(now, &[0xff; 16]);
        loop {
            let mut txn = self.env.write_txn().expect("write txn");
            let due: Vec<[u8; 26]> = self
                .db
                .range(&txn, &(Bound::Included(&lo[..]), Bound::Included(&hi[..])))
                .expect("range")
                .take(batch)
                .map(|item| item.expect("expiry entry").0.try_into().expect("26 bytes"))
                .collect();
            for key in &due {
                let oid: [u8; 16] = key[10..].try_into().expect("16");
                let rk = self.record_key(&oid);
                let value = match self.db.get(&txn, &rk).expect("get record") {
                    Some(rec) => match CookieView::new(rec) {
                        Ok(view) if view.is_expired(now) => {
                            let mut v = [0u8; 64];
                            let bytes = view.value().as_bytes();
                            v[..bytes.len()].copy_from_slice(bytes);
                            Some((v, bytes.len()))
                        }
                        _ => None,
                    },
                    None => None,
                };
                if let Some((v, len)) = value {
                    let mut buf = [0u8; 66];
                    let klen = self.value_key(&v[..len], &mut buf);
                    self.db
                        .delete(&mut txn, &buf[..klen])
                        .expect("delete value");
                    self.db.delete(&mut txn, &rk).expect("delete record");
                    total.deleted += 1;
                }
                self.db.delete(&mut txn, &key[..]).expect("delete expiry");
            }
            txn.commit().expect("commit");
            total.processed += due.len() as u64;
            if due.len() < batch {
                return total;
            }
        }
    }
}

impl Raw {
    /// A proposed purge algorithm, on the same layout (an experiment for issue 6): instead
    /// of deleting each due cookie's three entries where the expiry index happens to list it
    /// (random pages, so every transaction copies-on-write thousands of pages, most of them
    /// again in the next transaction), sort the work per table and delete in key order, in
    /// transactions of `chunk` entries that each cover a contiguous key range, so every leaf
    /// page is rewritten about once for the whole purge:
    ///
    /// 1. read the due oids from the expiry index (a range scan) and sort them;
    /// 2. records, in oid order: delete the expired ones, collecting (value, oid);
    /// 3. value index, in value order: delete entries still pointing at a deleted oid
    ///    (between 2 and 3 a dangling value entry is harmless: a lookup finds no record);
    /// 4. expiry index, in key order (the due range): delete entries of deleted oids.
    ///
    /// Entries of records that are not expired after all (stale expiry entries) are left
    /// alone here; the store would re-index them as it does today.
    pub fn purge_sorted(&self, now: u64, chunk: usize) -> Purged {
        let lo = self.expiry_key(0, &[0; 16]);
        let hi = self.expiry_key(now, &[0xff; 16]);
        let mut oids: Vec<[u8; 16]> = {
            let txn = self.env.read_txn().expect("read txn");
            self.db
                .range(&txn, &(Bound::Included(&lo[..]), Bound::Included(&hi[..])))
                .expect("range")
                .map(|item| item.expect("expiry entry").0[10..].try_into().expect("16"))
                .collect()
        };
        let processed = oids.len() as u64;
        oids.sort_unstable();
        let mut gone: Vec<([u8; VALUE_LEN + 8], [u8; 16])> = Vec::with_capacity(oids.len());
        let mut deleted_oids: Vec<[u8; 16]> = Vec::with_capacity(oids.len());
        for part in oids.chunks(chunk) {
            let mut txn = self.env.write_txn().expect("write txn");
            for oid in part {
                let rk = self.record_key(oid);
                let value = match self.db.get(&txn, &rk).expect("get record") {
                    Some(rec) => match CookieView::new(rec) {
                        Ok(view) if view.is_expired(now) => {
                            let bytes = view.value().as_bytes();
                            let mut v = [0u8; VALUE_LEN + 8];
                            let len = bytes.len().min(VALUE_LEN + 7);
                            v[0] = len as u8;
                            v[1..1 + len].copy_from_slice(&bytes[..len]);
                            Some(v)
                        }
                        _ => None,
                    },
                    None => None,
                };
                if let Some(v) = value {
                    self.db.delete(&mut txn, &rk).expect("delete record");
                    gone.push((v, *oid));
                    deleted_oids.push(*oid);
                }
            }
            txn.commit().expect("commit");
        }
        gone.sort_unstable_by(|a, b| a.0[1..1 + a.0[0] as usize].cmp(&b.0[1..1 + b.0[0] as usize]));
        for part in gone.chunks(chunk) {
            let mut txn = self.env.write_txn().expect("write txn");
            for (v, oid) in part {
                let mut buf = [0u8; 66];
                let klen = self.value_key(&v[1..1 + v[0] as usize], &mut buf);
                if self.db.get(&txn, &buf[..klen]).expect("get value") == Some(&oid[..]) {
                    self.db
                        .delete(&mut txn, &buf[..klen])
                        .expect("delete value");
                }
            }
            txn.commit().expect("commit");
        }
        // deleted_oids is sorted (oids were): binary search while walking the due range.
        let mut start = lo;
        loop {
            let mut txn = self.env.write_txn().expect("write txn");
            let keys: Vec<[u8; 26]> = self
                .db
                .range(
                    &txn,
                    &(Bound::Included(&start[..]), Bound::Included(&hi[..])),
                )
                .expect("range")
                .take(chunk)
                .map(|item| item.expect("expiry entry").0.try_into().expect("26"))
                .collect();
            for key in &keys {
                let oid: [u8; 16] = key[10..].try_into().expect("16");
                if deleted_oids.binary_search(&oid).is_ok() {
                    self.db.delete(&mut txn, &key[..]).expect("delete expiry");
                }
            }
            txn.commit().expect("commit");
            match keys.last() {
                Some(last) if keys.len() == chunk => {
                    start = *last;
                    // Resume just after the last key seen.
                    start[25] = start[25].wrapping_add(1);
                    if start[25] == 0 {
                        // Rare carry: re-walking one key is harmless (already handled).
                        start = *last;
                    }
                }
                _ => break,
            }
        }
        Purged {
            processed,
            deleted: deleted_oids.len() as u64,
        }
    }
}

/// Reads the auth fields from a verified view; returns a checksum.
#[inline]
pub fn read_auth_fields(view: &CookieView<'_>) -> usize {
    use std::hint::black_box;
    let authid = black_box(view.authid());
    let role = black_box(view.authrole());
    let method = black_box(view.authmethod());
    let realm = black_box(view.authrealm());
    let extra = black_box(view.authextra_cbor());
    authid.map_or(0, str::len)
        + role.map_or(0, str::len)
        + method.map_or(0, str::len)
        + realm.map_or(0, str::len)
        + extra.len()
}

/// The auth fields read from an unverified record with FlatBuffers' unchecked accessors.
///
/// # Safety
/// `rec` must be a valid `Cookie` FlatBuffers buffer.
#[inline]
unsafe fn unchecked_auth_fields(rec: &[u8], value: &[u8], now: u64) -> usize {
    use flatbuffers::{ForwardsUOffset, Table, Vector};
    use std::hint::black_box;
    // Field vtable offsets of cfxdb's Cookie table (schema/cookiestore.fbs, 4 + 2 × index).
    const VT_CREATED: u16 = 6;
    const VT_MAX_AGE: u16 = 8;
    const VT_VALUE: u16 = 12;
    const VT_AUTHID: u16 = 28;
    const VT_AUTHROLE: u16 = 30;
    const VT_AUTHMETHOD: u16 = 32;
    const VT_AUTHREALM: u16 = 34;
    const VT_AUTHEXTRA: u16 = 36;
    let root = u32::from_le_bytes(rec[..4].try_into().expect("4")) as usize;
    // SAFETY (all below): the caller guarantees `rec` is a valid Cookie buffer.
    unsafe {
        let t = Table::new(rec, root);
        if t.get::<ForwardsUOffset<&str>>(VT_VALUE, None)
            .map(str::as_bytes)
            != Some(value)
        {
            return 0;
        }
        let created = t.get::<u64>(VT_CREATED, Some(0)).unwrap_or(0);
        let max_age = t.get::<u64>(VT_MAX_AGE, Some(0)).unwrap_or(0);
        if now >= created.saturating_add(max_age.saturating_mul(NS)) {
            return 0;
        }
        let s = |vt| black_box(t.get::<ForwardsUOffset<&str>>(vt, None)).map_or(0, str::len);
        s(VT_AUTHID)
            + s(VT_AUTHROLE)
            + s(VT_AUTHMETHOD)
            + s(VT_AUTHREALM)
            + black_box(t.get::<ForwardsUOffset<Vector<u8>>>(VT_AUTHEXTRA, None))
                .map_or(0, |v| v.len())
    }
}

// ---- child processes -----------------------------------------------------------------------

/// Set in a re-executed child: its role.
pub const CHILD_ENV: &str = "COOKIESTORE_BENCH_CHILD";
const KIND_ENV: &str = "COOKIESTORE_BENCH_KIND";
const DIR_ENV: &str = "COOKIESTORE_BENCH_DIR";
const N_ENV: &str = "COOKIESTORE_BENCH_N";
const DURATION_ENV: &str = "COOKIESTORE_BENCH_DURATION_MS";
const START_ENV: &str = "COOKIESTORE_BENCH_START_NS";
const LOOKUPS_ENV: &str = "COOKIESTORE_BENCH_LOOKUPS";

/// Which implementation a child drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `CookieStore::get_auth`.
    Ours,
    /// [`Raw::lookup`].
    Raw,
}

impl Kind {
    /// Its name in reports and in the child's environment.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Ours => "ours",
            Kind::Raw => "raw_heed",
        }
    }

    fn parse(s: &str) -> Kind {
        match s {
            "ours" => Kind::Ours,
            "raw_heed" => Kind::Raw,
            other => panic!("unknown kind {other:?}"),
        }
    }
}

/// Runs the child role named in [`CHILD_ENV`], if any; returns whether this process was a
/// child (and should exit).
pub fn child_main() -> bool {
    let Ok(role) = std::env::var(CHILD_ENV) else {
        return false;
    };
    let var = |name| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
    let kind = Kind::parse(&var(KIND_ENV));
    let dir = PathBuf::from(var(DIR_ENV));
    let n: u64 = var(N_ENV).parse().expect("n");
    match role.as_str() {
        "throughput" => {
            let duration = Duration::from_millis(var(DURATION_ENV).parse().expect("ms"));
            let start_ns: u64 = var(START_ENV).parse().expect("start");
            let (count, elapsed) = child_throughput(kind, &dir, n, start_ns, duration);
            println!("lookups={count} elapsed_ns={}", elapsed.as_nanos());
        }
        "memory" => {
            let lookups: u64 = var(LOOKUPS_ENV).parse().expect("lookups");
            for (stage, m) in child_memory(kind, &dir, n, lookups) {
                println!(
                    "stage={stage} anon_kib={} rss_kib={} private_clean_kib={} \
                     private_dirty_kib={} pss_kib={}",
                    m.anonymous_kib, m.rss_kib, m.private_clean_kib, m.private_dirty_kib, m.pss_kib
                );
            }
        }
        other => panic!("unknown child role {other:?}"),
    }
    true
}

enum Looker {
    Ours(CookieStore),
    Raw(Raw),
}

impl Looker {
    fn open(kind: Kind, fixture_dir: &Path) -> Looker {
        match kind {
            Kind::Ours => Looker::Ours(
                CookieStore::open(fixture_dir.join("ours"), options(false)).expect("open store"),
            ),
            Kind::Raw => Looker::Raw(Raw::open(&fixture_dir.join("raw"), false)),
        }
    }

    /// Faults the whole map in (see [`Raw::warm`]).
    fn warm(&self) {
        match self {
            Looker::Ours(store) => {
                warm_store(store);
            }
            Looker::Raw(raw) => {
                raw.warm();
            }
        }
    }

    /// One lookup; returns whether the cookie was found.
    #[inline]
    fn lookup(&self, value: &str, now: u64) -> bool {
        match self {
            Looker::Ours(store) => store.get_auth(value).expect("get_auth").is_some(),
            Looker::Raw(raw) => raw.lookup(value, now) != 0,
        }
    }
}

fn child_throughput(
    kind: Kind,
    fixture_dir: &Path,
    n: u64,
    start_ns: u64,
    duration: Duration,
) -> (u64, Duration) {
    let looker = Looker::open(kind, fixture_dir);
    // Each process walks its own random order.
    let mut keys = Keys::shuffled(n).starting_at(std::process::id() as usize * 7919);
    looker.warm();
    let now = now_ns();
    // Warm up (page tables of the map, caches) with lookups until the common start.
    while now_ns() < start_ns {
        for _ in 0..256 {
            looker.lookup(keys.next_value(), now);
        }
    }
    let started = Instant::now();
    let mut count = 0u64;
    loop {
        for _ in 0..256 {
            assert!(
                looker.lookup(keys.next_value(), now),
                "fixture cookie missing"
            );
        }
        count += 256;
        if started.elapsed() >= duration {
            return (count, started.elapsed());
        }
    }
}

/// Memory figures of this process from /proc/self/smaps_rollup (KiB).
#[derive(Debug, Default, Clone, Copy)]
pub struct Mem {
    /// `Anonymous:` — private, non-file-backed memory (heap, stacks, anonymous maps).
    pub anonymous_kib: u64,
    /// `Rss:`.
    pub rss_kib: u64,
    /// `Private_Clean:` (includes file pages mapped only by this process, e.g. the LMDB map).
    pub private_clean_kib: u64,
    /// `Private_Dirty:`.
    pub private_dirty_kib: u64,
    /// `Pss:`.
    pub pss_kib: u64,
}

/// Reads /proc/self/smaps_rollup.
pub fn mem_now() -> Mem {
    let file = std::fs::File::open("/proc/self/smaps_rollup").expect("smaps_rollup");
    let mut m = Mem::default();
    for line in std::io::BufReader::new(file).lines() {
        let line = line.expect("line");
        let mut parts = line.split_whitespace();
        let (Some(key), Some(num)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Ok(kib) = num.parse::<u64>() else {
            continue;
        };
        match key {
            "Anonymous:" => m.anonymous_kib = kib,
            "Rss:" => m.rss_kib = kib,
            "Private_Clean:" => m.private_clean_kib = kib,
            "Private_Dirty:" => m.private_dirty_kib = kib,
            "Pss:" => m.pss_kib = kib,
            _ => {}
        }
    }
    m
}

fn child_memory(kind: Kind, fixture_dir: &Path, n: u64, lookups: u64) -> Vec<(&'static str, Mem)> {
    let mut stages = vec![("start", mem_now())];
    let looker = Looker::open(kind, fixture_dir);
    stages.push(("opened", mem_now()));
    let now = now_ns();
    // Values are generated on the fly so the harness itself holds no per-cookie memory.
    let mut v = [0u8; VALUE_LEN];
    for k in 0..lookups {
        value_into(mix(SEED_ORDER ^ k) % n, &mut v);
        let value = std::str::from_utf8(&v).expect("ASCII");
        assert!(looker.lookup(value, now), "fixture cookie missing");
    }
    stages.push(("after_lookups", mem_now()));
    drop(looker);
    stages
}

fn child_command(role: &str, kind: Kind, fx: &Fixture) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("current exe"));
    cmd.env(CHILD_ENV, role)
        .env(KIND_ENV, kind.name())
        .env(DIR_ENV, &fx.dir)
        .env(N_ENV, fx.n.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    cmd
}

fn field(line: &str, name: &str) -> u64 {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {name} in {line:?}"))
        .parse()
        .expect("a number")
}

/// Aggregate lookup throughput of `procs` processes running at once.
#[derive(Debug, Clone, Copy)]
pub struct Throughput {
    /// Processes.
    pub procs: usize,
    /// Lookups done by all of them.
    pub lookups: u64,
    /// Lookups per second, summed over processes.
    pub per_sec: f64,
}

/// Runs `procs` child processes that each look up random fixture cookies for `duration`,
/// all starting at the same instant; sums their rates.
pub fn run_throughput(kind: Kind, fx: &Fixture, procs: usize, duration: Duration) -> Throughput {
    // Children open the store, shuffle the keys and warm up before the common start.
    let start_ns = now_ns() + 2_000_000_000 + fx.n * 3_000;
    let children: Vec<_> = (0..procs)
        .map(|_| {
            child_command("throughput", kind, fx)
                .env(DURATION_ENV, duration.as_millis().to_string())
                .env(START_ENV, start_ns.to_string())
                .spawn()
                .expect("spawn a child")
        })
        .collect();
    let mut lookups = 0;
    let mut per_sec = 0.0;
    for child in children {
        let out = child.wait_with_output().expect("child output");
        assert!(out.status.success(), "a throughput child failed");
        let line = String::from_utf8(out.stdout).expect("utf8");
        let count = field(&line, "lookups");
        let ns = field(&line, "elapsed_ns");
        lookups += count;
        per_sec += count as f64 / (ns as f64 / 1e9);
    }
    Throughput {
        procs,
        lookups,
        per_sec,
    }
}

/// Memory of a fresh process at its stages: start, opened, after `lookups` lookups.
pub fn run_memory(kind: Kind, fx: &Fixture, lookups: u64) -> Vec<(String, Mem)> {
    let out = child_command("memory", kind, fx)
        .env(LOOKUPS_ENV, lookups.to_string())
        .output()
        .expect("run the memory child");
    assert!(out.status.success(), "the memory child failed");
    String::from_utf8(out.stdout)
        .expect("utf8")
        .lines()
        .filter(|l| l.starts_with("stage="))
        .map(|l| {
            let stage = l.split_whitespace().next().unwrap_or("")["stage=".len()..].to_string();
            (
                stage,
                Mem {
                    anonymous_kib: field(l, "anon_kib"),
                    rss_kib: field(l, "rss_kib"),
                    private_clean_kib: field(l, "private_clean_kib"),
                    private_dirty_kib: field(l, "private_dirty_kib"),
                    pss_kib: field(l, "pss_kib"),
                },
            )
        })
        .collect()
}

// ---- experiments: what the lookup path could cost (proposals for issue 6) --------------------

/// A record read the way a lookup needs it: the root and vtable are bounds-checked once, and
/// each field only when it is read (strings are UTF-8-checked then). Safe code only: a
/// corrupt record gives `None` for what is corrupt, never a panic or undefined behaviour.
/// The generic FlatBuffers verifier instead walks every field of the table (and builds an
/// error trace as it goes), including the ones a lookup never reads.
#[derive(Clone, Copy)]
pub struct LazyRecord<'a> {
    buf: &'a [u8],
    table: usize,
    vtable: usize,
    vtable_len: usize,
}

impl<'a> LazyRecord<'a> {
    fn u16_at(buf: &[u8], at: usize) -> Option<u16> {
        Some(u16::from_le_bytes(buf.get(at..at + 2)?.try_into().ok()?))
    }
    fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
        Some(u32::from_le_bytes(buf.get(at..at + 4)?.try_into().ok()?))
    }

    /// Checks the root offset and the vtable.
    pub fn new(buf: &'a [u8]) -> Option<Self> {
        let table = Self::u32_at(buf, 0)? as usize;
        let soff = Self::u32_at(buf, table)? as i32 as i64;
        let vtable = usize::try_from(table as i64 - soff).ok()?;
        let vtable_len = Self::u16_at(buf, vtable)? as usize;
        if vtable_len < 4 || buf.len() < vtable + vtable_len {
            return None;
        }
        Some(LazyRecord {
            buf,
            table,
            vtable,
            vtable_len,
        })
    }

    /// Position of the field at vtable offset `vt`, if present.
    fn field(&self, vt: usize) -> Option<usize> {
        if vt + 2 > self.vtable_len {
            return None;
        }
        match Self::u16_at(self.buf, self.vtable + vt)? {
            0 => None,
            off => Some(self.table + off as usize),
        }
    }

    fn u64(&self, vt: usize) -> u64 {
        self.field(vt)
            .and_then(|at| {
                Some(u64::from_le_bytes(
                    self.buf.get(at..at + 8)?.try_into().ok()?,
                ))
            })
            .unwrap_or(0)
    }

    fn bytes(&self, vt: usize) -> Option<&'a [u8]> {
        let at = self.field(vt)?;
        let start = at + Self::u32_at(self.buf, at)? as usize;
        let len = Self::u32_at(self.buf, start)? as usize;
        self.buf.get(start + 4..start + 4 + len)
    }

    fn str(&self, vt: usize) -> Option<&'a str> {
        std::str::from_utf8(self.bytes(vt)?).ok()
    }

    /// The cookie value.
    pub fn value(&self) -> Option<&'a str> {
        self.str(12)
    }
    /// created + max_age, ns.
    pub fn expires_at(&self) -> u64 {
        cookiestore::cookie::expires_at(self.u64(6), self.u64(8))
    }
    /// authid.
    pub fn authid(&self) -> Option<&'a str> {
        self.str(28)
    }
    /// authrole.
    pub fn authrole(&self) -> Option<&'a str> {
        self.str(30)
    }
    /// authmethod.
    pub fn authmethod(&self) -> Option<&'a str> {
        self.str(32)
    }
    /// authrealm.
    pub fn authrealm(&self) -> Option<&'a str> {
        self.str(34)
    }
    /// authextra's CBOR bytes.
    pub fn authextra_cbor(&self) -> &'a [u8] {
        self.bytes(36).unwrap_or(&[])
    }
}

/// A small CBOR → JSON decoder straight from the slice (no scratch buffer to zero, strings
/// copied once into their `String`). Handles what authextra holds in practice: definite-length
/// maps with text keys, arrays, text, integers, floats, booleans, null, byte strings (as hex,
/// like the store) and tags (dropped). Returns `None` for anything else (indefinite lengths,
/// non-text keys, ...), where the store would fall back to its general decoder.
pub fn fast_cbor_to_json(bytes: &[u8]) -> Option<Value> {
    if bytes.is_empty() {
        return Some(Value::Object(serde_json::Map::new()));
    }
    let mut pos = 0;
    let v = cbor_item(bytes, &mut pos, 0)?;
    (pos == bytes.len()).then_some(v)
}

fn cbor_arg(b: &[u8], pos: &mut usize, info: u8) -> Option<u64> {
    let n = match info {
        0..=23 => return Some(info as u64),
        24 => 1,
        25 => 2,
        26 => 4,
        27 => 8,
        _ => return None,
    };
    let s = b.get(*pos..*pos + n)?;
    *pos += n;
    Some(s.iter().fold(0u64, |acc, &x| (acc << 8) | x as u64))
}

fn cbor_item(b: &[u8], pos: &mut usize, depth: usize) -> Option<Value> {
    if depth > 128 {
        return None;
    }
    let head = *b.get(*pos)?;
    *pos += 1;
    let (major, info) = (head >> 5, head & 31);
    if major == 7 {
        return match info {
            20 => Some(Value::Bool(false)),
            21 => Some(Value::Bool(true)),
            22 | 23 => Some(Value::Null),
            25 => {
                let h = cbor_arg(b, pos, 25)? as u16;
                Some(serde_json::Number::from_f64(f16_to_f64(h)).map_or(Value::Null, Value::Number))
            }
            26 => {
                let f = f32::from_bits(cbor_arg(b, pos, 26)? as u32) as f64;
                Some(serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number))
            }
            27 => {
                let f = f64::from_bits(cbor_arg(b, pos, 27)?);
                Some(serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number))
            }
            _ => None,
        };
    }
    let arg = cbor_arg(b, pos, info)?;
    match major {
        0 => Some(Value::from(arg)),
        1 => Some(match i64::try_from(arg) {
            Ok(n) => Value::from(-1 - n),
            Err(_) => Value::from(-1.0 - arg as f64),
        }),
        2 | 3 => {
            let len = usize::try_from(arg).ok()?;
            let s = b.get(*pos..pos.checked_add(len)?)?;
            *pos += len;
            if major == 3 {
                Some(Value::String(std::str::from_utf8(s).ok()?.to_owned()))
            } else {
                Some(Value::String(
                    s.iter().map(|x| format!("{x:02x}")).collect(),
                ))
            }
        }
        4 => {
            let len = usize::try_from(arg).ok()?;
            let mut items = Vec::with_capacity(len.min(b.len()));
            for _ in 0..len {
                items.push(cbor_item(b, pos, depth + 1)?);
            }
            Some(Value::Array(items))
        }
        5 => {
            let mut map = serde_json::Map::new();
            for _ in 0..arg {
                let kh = *b.get(*pos)?;
                if kh >> 5 != 3 {
                    return None;
                }
                let Value::String(k) = cbor_item(b, pos, depth + 1)? else {
                    return None;
                };
                map.insert(k, cbor_item(b, pos, depth + 1)?);
            }
            Some(Value::Object(map))
        }
        6 => cbor_item(b, pos, depth + 1),
        _ => None,
    }
}

fn f16_to_f64(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = ((h >> 10) & 0x1f) as i32;
    let frac = (h & 0x3ff) as f64;
    sign * match exp {
        0 => frac * 2f64.powi(-24),
        31 if frac == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        e => (1.0 + frac / 1024.0) * 2f64.powi(e - 15),
    }
}

impl Raw {
    /// The raw lookup with [`LazyRecord`] instead of the full verifier; returns a checksum.
    #[inline]
    pub fn lookup_lazy(&self, value: &str, now: u64) -> usize {
        let txn = self.env.read_txn().expect("read txn");
        let Some((_, rec)) = self.get_record(&txn, value.as_bytes()) else {
            return 0;
        };
        let Some(r) = LazyRecord::new(rec) else {
            return 0;
        };
        if r.value() != Some(value) || now >= r.expires_at() {
            return 0;
        }
        use std::hint::black_box;
        black_box(r.authid()).map_or(0, str::len)
            + black_box(r.authrole()).map_or(0, str::len)
            + black_box(r.authmethod()).map_or(0, str::len)
            + black_box(r.authrealm()).map_or(0, str::len)
            + black_box(r.authextra_cbor()).len()
    }

    /// What `get_auth` could cost with both proposals: [`LazyRecord`] and
    /// [`fast_cbor_to_json`], returning the same owned [`Auth`].
    #[inline]
    pub fn lookup_projected(&self, value: &str, now: u64) -> Option<Auth> {
        let txn = self.env.read_txn().expect("read txn");
        let (_, rec) = self.get_record(&txn, value.as_bytes())?;
        let r = LazyRecord::new(rec)?;
        if r.value() != Some(value) || now >= r.expires_at() {
            return None;
        }
        Some(Auth {
            authid: r.authid()?.to_owned(),
            authrole: r.authrole().map(str::to_owned),
            authmethod: r.authmethod().map(str::to_owned),
            authrealm: r.authrealm().map(str::to_owned),
            authextra: fast_cbor_to_json(r.authextra_cbor())?,
        })
    }
}

/// A per-process read cache in front of [`Raw::lookup_projected`] that can never serve a
/// stale answer: every entry carries the id of the transaction it was read in, and is used
/// only while that is still LMDB's last committed transaction (`mdb_env_info`, which reads
/// the meta page: no reader slot, no lock). Any commit, by any process, empties it (a
/// journal of changed values would let it keep the rest; see the report). Expiry is checked
/// on every hit. Bounded: at most `capacity` entries (admitted until full).
pub struct CachedRaw<'r> {
    raw: &'r Raw,
    capacity: usize,
    txn_id: std::cell::Cell<usize>,
    map: std::cell::RefCell<std::collections::HashMap<[u8; VALUE_LEN], (u64, Auth)>>,
    /// (hits, misses).
    pub stats: std::cell::Cell<(u64, u64)>,
}

impl<'r> CachedRaw<'r> {
    /// A cache of at most `capacity` answers over `raw`.
    pub fn new(raw: &'r Raw, capacity: usize) -> Self {
        CachedRaw {
            raw,
            capacity,
            txn_id: std::cell::Cell::new(0),
            map: Default::default(),
            stats: Default::default(),
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.map.borrow().len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.map.borrow().is_empty()
    }

    /// `get_auth` through the cache (values of any other length bypass it).
    pub fn get_auth(&self, value: &str, now: u64) -> Option<Auth> {
        let Ok(key) = <[u8; VALUE_LEN]>::try_from(value.as_bytes()) else {
            return self.raw.lookup_projected(value, now);
        };
        let last = self.raw.env.info().last_txn_id;
        let mut map = self.map.borrow_mut();
        if last != self.txn_id.get() {
            map.clear();
            self.txn_id.set(last);
        }
        let (hits, misses) = self.stats.get();
        if let Some((expires_at, auth)) = map.get(&key) {
            self.stats.set((hits + 1, misses));
            return (now < *expires_at).then(|| auth.clone());
        }
        self.stats.set((hits, misses + 1));
        let txn = self.raw.env.read_txn().expect("read txn");
        let (_, rec) = self.raw.get_record(&txn, value.as_bytes())?;
        let r = LazyRecord::new(rec)?;
        if r.value() != Some(value) {
            return None;
        }
        let expires_at = r.expires_at();
        let auth = Auth {
            authid: r.authid()?.to_owned(),
            authrole: r.authrole().map(str::to_owned),
            authmethod: r.authmethod().map(str::to_owned),
            authrealm: r.authrealm().map(str::to_owned),
            authextra: fast_cbor_to_json(r.authextra_cbor())?,
        };
        // Only an answer read at the id checked above may be kept.
        if txn.id() == last && map.len() < self.capacity {
            map.insert(key, (expires_at, auth.clone()));
        }
        (now < expires_at).then_some(auth)
    }
}
