//! Case 2: we write, cfxdb and Crossbar read.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use cookiestore::{
    Auth, AuthContext, AuthUpdate, Cookie, CookieStore, StoreOptions, Tracker, TrackerConfig,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::harness::*;

/// A small deterministic generator (xorshift64*), so that failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn text(&mut self, max: u64) -> String {
        const POOLS: [&str; 6] = [
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
            "äöüßéñçøåŁœ",
            "漢字テストユーザー管理者한국어",
            "😀🍪🚀🔐✅👍🏽",
            "שלוםمرحبا",
            "\"\\'\t\n\r{}[]<>;,\u{0}\u{7}\u{7f}\u{2028}\u{feff}",
        ];
        let n = self.below(max + 1);
        (0..n)
            .map(|_| {
                let pool: Vec<char> = self.pick(&POOLS).chars().collect();
                *self.pick(&pool)
            })
            .collect()
    }
    fn opt_text(&mut self, max: u64) -> Option<String> {
        self.chance(80).then(|| self.text(max))
    }
    fn float(&mut self) -> f64 {
        let uniform = (self.next() >> 11) as f64 / (1u64 << 53) as f64 * 2e6 - 1e6;
        *self.pick(&[
            0.0,
            -0.0,
            1.5,
            1e-300,
            f64::MAX,
            f64::MIN_POSITIVE,
            std::f64::consts::PI,
            uniform,
            uniform,
        ])
    }
    fn json(&mut self, depth: u32) -> Value {
        match self.below(if depth < 3 { 8 } else { 6 }) {
            0 => json!(*self.pick(&[0u64, 1, 23, 24, 255, 256, 65_536, 1 << 53, u64::MAX])),
            1 => json!(*self.pick(&[-1i64, -24, -25, -65_537, i64::MIN, i64::MIN + 1])),
            2 => json!(self.float()),
            3 => json!(self.chance(50)),
            4 => Value::Null,
            5 => json!(self.text(16)),
            6 => Value::Array((0..self.below(4)).map(|_| self.json(depth + 1)).collect()),
            _ => self.map(depth + 1),
        }
    }
    fn map(&mut self, depth: u32) -> Value {
        let n = self.below(5);
        Value::Object((0..n).map(|_| (self.text(10), self.json(depth))).collect())
    }
    fn auth(&mut self, i: usize) -> Auth {
        Auth {
            authid: format!("{}-{i}", self.text(12)),
            authrole: self.opt_text(12),
            authmethod: self
                .chance(80)
                .then(|| self.pick(&["cookie", "ticket", "wampcra"]).to_string()),
            authrealm: self.opt_text(16),
            authextra: if self.chance(75) {
                self.map(0)
            } else {
                json!({})
            },
        }
    }
    fn context(&mut self) -> AuthContext {
        if self.chance(20) {
            return AuthContext::default();
        }
        AuthContext::default().node(self
                .chance(80)
                .then(|| Uuid::from_u128(u128::from(self.next()) << 64 | u128::from(self.next())))).worker(self.opt_text(16)).transport_info(if self.chance(80) {
                json!({"type": "websocket", "peer": "tcp4:127.0.0.1:4711", "http_headers_received": self.map(1), "x": self.json(1)})
            } else {
                Value::Null
            }).session({
                let random = self.next();
                *self.pick(&[0, 1, 1 << 53, u64::MAX, random])
            }).joined_at(self.next() >> 1).authmethod(self.opt_text(10))
    }
}

#[test]
fn case2_we_write_cfxdb_and_crossbar_read() {
    let Some(py) = python(Venv::Main) else { return };
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let mut rng = Rng(0x5EED_0002);
    let store = CookieStore::open(&db, StoreOptions::default()).unwrap();
    let tracker =
        Tracker::new(store.clone(), TrackerConfig::default().max_age(7 * 86_400)).unwrap();

    // Create: through the tracker (defaults) and the store (6 to 64 characters, other names).
    let mut values: Vec<String> = (0..20)
        .map(|_| {
            let t = tracker.track(None).unwrap();
            assert!(t.is_new);
            t.value
        })
        .collect();
    for i in 0..40 {
        let length = [6, 64, 7, 24, 33][i % 5];
        let name = ["cbtid", "my_cookie", "x"][i % 3];
        let max_age = [60, 86_400, 315_360_000][i % 3];
        values.push(store.create(name, length, max_age).unwrap().value);
    }
    // Whole records through put (restore path): every field, random content.
    for i in 0..20 {
        let auth = rng.auth(i);
        let ctx = rng.context();
        let c = Cookie {
            oid: Uuid::new_v4(),
            created: now_ns() - rng.below(DAY_NS),
            max_age: *rng.pick(&[3600, 86_400, u64::MAX]),
            name: rng.opt_text(8),
            value: format!("put{i}x{}", rng.below(1 << 40)),
            authenticated: now_ns(),
            authenticated_on_node: ctx.node,
            authenticated_on_worker: ctx.worker,
            authenticated_transport_info: ctx.transport_info,
            authenticated_session: ctx.session,
            authenticated_joined_at: ctx.joined_at,
            authenticated_authmethod: ctx.authmethod,
            authid: Some(auth.authid),
            authrole: auth.authrole,
            authmethod: auth.authmethod,
            authrealm: auth.authrealm,
            authextra: auth.authextra,
        };
        store.put(&c).unwrap();
        values.push(c.value);
    }

    // Authenticate two thirds, then re-authenticate every third of those.
    let authed: Vec<String> = values[..60]
        .iter()
        .step_by(3)
        .chain(values[..60].iter().skip(1).step_by(3))
        .cloned()
        .collect();
    for (i, v) in authed.iter().enumerate() {
        let (auth, ctx) = (rng.auth(i), rng.context());
        assert_eq!(
            tracker.authenticate(v, &auth, &ctx).unwrap(),
            AuthUpdate::Written
        );
    }
    for (i, v) in authed.iter().step_by(3).enumerate() {
        let auth = Auth::new(&format!("renamed-{i}-Ω"), "admin", "wampcra", "realm1")
            .with_authextra(
                json!({"renamed": true, "i": i, "nested": {"list": [1, -2, 3.25, null, "🍪"]}}),
            );
        assert_eq!(
            store.set_auth(v, &auth, &AuthContext::default()).unwrap(),
            AuthUpdate::Written
        );
        assert_eq!(
            store.set_auth(v, &auth, &AuthContext::default()).unwrap(),
            AuthUpdate::Unchanged
        );
    }

    // Log out ten: five authenticated, five not, and two put ones.
    let unauthed: Vec<&String> = values[..60]
        .iter()
        .filter(|v| !authed.contains(v))
        .collect();
    let mut logged_out: Vec<String> = authed.iter().take(5).cloned().collect();
    logged_out.extend(unauthed.iter().take(5).map(|v| v.to_string()));
    logged_out.extend(values[60..62].iter().cloned());
    for v in &logged_out {
        assert!(tracker.logout(v).unwrap(), "logout {v}");
        assert!(!tracker.exists(v).unwrap());
    }
    let mine = ours(&store);
    assert_eq!(mine.len(), 80 - logged_out.len());
    drop(tracker);
    drop(store);

    // cfxdb reads every field back; its value index check passes both ways. Meanwhile
    // Crossbar's own database store answers exists and getAuth for every value.
    let mut ask = values.clone();
    ask.push("no-such-cookie-value".into());
    let reading = py.start_cfxdb_read(&db);
    let answers = py.crossbar_getauth(&db, &ask);
    let (theirs, counts) = cfxdb_read_result(reading);
    assert_same(&theirs, &mine, "cfxdb's reading vs what we wrote");
    assert_eq!(counts["cookies"].as_u64(), Some(mine.len() as u64));
    let their_values: BTreeSet<&str> = theirs
        .values()
        .map(|r| r["value"].as_str().unwrap())
        .collect();
    for v in &logged_out {
        assert!(
            !their_values.contains(v.as_str()),
            "logged-out {v} still in cfxdb's view"
        );
    }

    let by_value: BTreeMap<&str, &Value> = mine
        .values()
        .map(|r| (r["value"].as_str().unwrap(), r))
        .collect();
    for v in &ask {
        let (exists, auth) = &answers[v];
        match by_value.get(v.as_str()) {
            Some(rec) => {
                assert!(*exists, "Crossbar: {v} should exist");
                assert_eq!(*auth, auth_tuple(rec), "Crossbar getAuth({v})");
            }
            None => {
                assert!(!*exists, "Crossbar: {v} should be gone");
                assert_eq!(*auth, unknown_tuple(), "Crossbar getAuth({v})");
            }
        }
    }
    let crossbar_authenticated = answers.values().filter(|(_, a)| !a[0].is_null()).count();
    assert_eq!(
        crossbar_authenticated,
        by_value
            .values()
            .filter(|r| r.get("authid").is_some())
            .count()
    );
    assert!(crossbar_authenticated >= 40, "{crossbar_authenticated}");

    // Crossbar opened the store writable: nothing changed, and our indexes are still right.
    assert_check_clean(&db, false, "after Crossbar's getAuth");
    let again = open_ro(&db);
    assert_same(&ours(&again), &mine, "after Crossbar's getAuth");
    eprintln!("case 2: {:.1?}", t0.elapsed());
}
