//! The raw heed baseline: the store's LMDB layout read and written with heed directly.

use std::ops::Bound;
use std::path::Path;

use cookiestore::{Auth, AuthContext, Cookie, CookieView};
use heed::types::Bytes;
use heed::{CommitOrAbort, Database, Env, EnvFlags, EnvOpenOptions, RoTxn, RwTxn};
use std::collections::HashMap;
use uuid::Uuid;

use super::*;

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

/// The slots of the cookie tables, read from the metadata (slot 0) by table oid.
#[derive(Debug, Clone, Copy)]
pub struct Slots {
    /// cfxdb's Cookies table.
    pub cookies: u16,
    /// cfxdb's value index.
    pub by_value: u16,
    /// Our expiry index.
    pub by_expiry: Option<u16>,
    /// Our store state.
    pub state: Option<u16>,
}

/// Cookies a raw purge deletes per write transaction (as the library's purge).
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
        // SAFETY: the same flags the store uses; NO_SYNC only for the sync-off benches.
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
            let mut by_oid = HashMap::new();
            let lo: &[u8] = &[0, 0];
            let hi: &[u8] = &[0, 1];
            for item in db
                .range(&rtxn, &(Bound::Included(lo), Bound::Excluded(hi)))
                .expect("range")
            {
                let (_, v) = item.expect("metadata entry");
                let meta = cookiestore::TableMeta::from_cbor(v).expect("valid metadata");
                by_oid.insert(meta.oid, meta.slot);
            }
            Slots {
                cookies: by_oid["62f8c8c9-c50b-4686-bafe-38b221c64a0c"],
                by_value: by_oid["65e1d8c1-fa8b-459d-ae43-cb320d28cc97"],
                by_expiry: by_oid.get("8e8b2d60-622c-4fdd-bf24-f78692a3824c").copied(),
                state: by_oid.get("883063e6-6f4f-4c3e-82f7-63f054071b2e").copied(),
            }
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

    /// The bare minimum of a lookup: one read txn and both gets, no decoding at all (the
    /// record's length is returned). The baseline of the lazy lookups.
    #[inline]
    pub fn lookup_two_get(&self, value: &str) -> usize {
        let txn = self.env.read_txn().expect("read txn");
        match self.get_record(&txn, value.as_bytes()) {
            Some((oid, rec)) => std::hint::black_box(oid).len() + rec.len(),
            None => 0,
        }
    }

    /// Sets the environment's sync flags for the next commit, as the store's durability
    /// policies do: `lazy` enables `flag` (NO_SYNC or NO_META_SYNC), otherwise disables it.
    /// Call it while holding the write transaction.
    pub fn set_commit_flag(&self, flag: EnvFlags, lazy: bool) {
        let mode = if lazy {
            heed::FlagSetMode::Enable
        } else {
            heed::FlagSetMode::Disable
        };
        // SAFETY: called only by the bench's one writing thread, holding the write txn.
        unsafe { self.env.set_flags(flag, mode) }.expect("set flags");
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
    // SAFETY: for every block below: the caller guarantees `rec` is a valid Cookie buffer.
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
