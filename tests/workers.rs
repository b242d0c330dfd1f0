//! Concurrent workers: eight processes share one store, each doing thousands of operations
//! in random order (create, track, authenticate, look up cookies made by the others,
//! re-authenticate, extend, log out its own or another's cookie, purge, walk a snapshot,
//! and a few operations that must fail). Each process reports what it committed; afterwards
//! the store holds exactly the union of those outcomes, it is consistent, every removal is
//! accounted for, and no operation failed except the ones the test provoked.
//!
//! Size: `COOKIESTORE_STRESS` × 500 operations per process, capped at 5,000 (reached with
//! `COOKIESTORE_STRESS=ci`).

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use common::*;
use cookiestore::{
    Auth, AuthContext, AuthUpdate, Cookie, CookieStore, Error, StoreOptions, Tracker, TrackerConfig,
};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};

const TEST: &str = "concurrent_workers_lose_nothing";
const PROCESSES: usize = 8;
/// max_age of the short-lived cookies: they expire during the run and purges reclaim them.
const SHORT: u64 = 1;
/// max_age of the others (and of cookies made by `track`).
const LONG: u64 = 86_400;

fn ops_per_process() -> u64 {
    (500 * stress()).min(5_000)
}

#[test]
fn concurrent_workers_lose_nothing() {
    if child_role().is_some() {
        return worker_main();
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store"); // created by whichever worker comes first
    let ops = ops_per_process();
    let base_seed: u64 = rand::rng().random();
    eprintln!("workers: {PROCESSES} processes x {ops} operations, seed {base_seed}");

    let mut children = Vec::new();
    for index in 0..PROCESSES {
        let mut cmd = child_command(TEST, "worker");
        cmd.env("WORKER_STORE", &path)
            .env("WORKER_INDEX", index.to_string())
            .env("WORKER_OPS", ops.to_string())
            .env("WORKER_SEED", (base_seed + index as u64).to_string());
        let mut child = cmd.spawn().unwrap();
        let lines = ChildLines::new(&mut child);
        children.push((child, lines));
    }
    let mut reports: Vec<Vec<Value>> = Vec::new();
    for (index, (mut child, lines)) in children.into_iter().enumerate() {
        let events = lines.rest();
        wait_success(&mut child, &format!("worker {index}"));
        reports.push(events);
    }

    // ---- what the workers say they did ----
    let mut model: HashMap<String, Model> = HashMap::new();
    let mut seen: Vec<(String, Option<String>)> = Vec::new();
    let (mut created, mut deleted, mut purged) = (0u64, 0u64, 0u64);
    let mut provoked = HashMap::<String, u64>::new();
    let mut counts = HashMap::<String, u64>::new();
    // Creations first: another worker may log out a cookie before its creator's report
    // is read here. Each worker's own events stay in order.
    for (index, events) in reports.iter().enumerate() {
        let done = events.last().expect("worker reported nothing");
        assert_eq!(done["ev"], "done", "worker {index} did not finish: {done}");
        assert_eq!(done["ops"], ops, "worker {index}");
        for e in events.iter().filter(|e| e["ev"] == "create") {
            let value = e["v"].as_str().unwrap().to_string();
            created += 1;
            let model_entry = Model {
                owner: index,
                oid: e["oid"].as_str().map(str::to_string),
                created: e["created"].as_u64(),
                max_age: e["max_age"].as_u64().unwrap(),
                auth: None,
                auth_history: HashSet::new(),
                deleted_by: Vec::new(),
            };
            assert!(
                model.insert(value.clone(), model_entry).is_none(),
                "value {value} created twice"
            );
        }
    }
    for (index, events) in reports.iter().enumerate() {
        for e in events {
            let ev = e["ev"].as_str().unwrap();
            *counts.entry(ev.to_string()).or_default() += 1;
            let v = || e["v"].as_str().unwrap().to_string();
            match ev {
                "error" | "violation" => panic!("worker {index}: {e}"),
                "auth" => {
                    let m = model.get_mut(&v()).expect("auth of an unknown cookie");
                    assert_eq!(m.owner, index, "only owners authenticate");
                    if e["r"] != "none" {
                        let authid = e["authid"].as_str().unwrap().to_string();
                        m.auth_history.insert(authid.clone());
                        m.auth = Some(authid);
                    }
                }
                "extend" => {
                    let m = model.get_mut(&v()).expect("extend of an unknown cookie");
                    assert_eq!(m.owner, index, "only owners extend");
                    m.max_age = e["max_age"].as_u64().unwrap();
                }
                "del" if e["r"] == true => {
                    deleted += 1;
                    model
                        .get_mut(&v())
                        .expect("deleted an unknown cookie")
                        .deleted_by
                        .push(index);
                }
                "seen" => seen.push((v(), e["authid"].as_str().map(str::to_string))),
                "purge" => purged += e["n"].as_u64().unwrap(),
                "provoked" => *provoked.entry(e["kind"].to_string()).or_default() += 1,
                _ => {}
            }
        }
    }
    eprintln!("workers: events {counts:?}; provoked errors {provoked:?}");
    assert!(created > 0 && deleted > 0 && !seen.is_empty());
    assert!(
        provoked.len() >= 3,
        "too few kinds of provoked errors: {provoked:?}"
    );
    for (value, m) in &model {
        assert!(
            m.deleted_by.len() <= 1,
            "{value} was deleted by {:?}: a delete succeeded twice",
            m.deleted_by
        );
    }
    // Every lookup by another process saw an authentication the owner really wrote.
    for (value, authid) in &seen {
        let m = model
            .get(value)
            .unwrap_or_else(|| panic!("a worker saw {value}, which nobody created"));
        if let Some(authid) = authid {
            assert!(
                m.auth_history.contains(authid),
                "{value} was seen with authid {authid}, which its owner never wrote"
            );
        }
    }

    // ---- what the store holds ----
    // Short-lived cookies not extended have all expired one second after the workers end.
    std::thread::sleep(Duration::from_millis(1_500));
    let store = CookieStore::open(&path, StoreOptions::default()).unwrap();
    assert_clean(&store);
    let final_purge = store.purge_expired().unwrap();
    let stats = assert_clean(&store);
    let records: Vec<Cookie> = store
        .as_lmdb()
        .unwrap()
        .snapshot(|s| s.records()?.collect::<cookiestore::Result<Vec<_>>>())
        .unwrap();
    assert_eq!(
        created,
        records.len() as u64 + deleted + purged + final_purge,
        "every cookie created is in the store, or was deleted or purged exactly once \
         (deleted {deleted}, purged {purged} + {final_purge} at the end)"
    );
    let expected: HashSet<&String> = model
        .iter()
        .filter(|(_, m)| m.deleted_by.is_empty() && m.max_age > SHORT)
        .map(|(v, _)| v)
        .collect();
    let actual: HashSet<&String> = records.iter().map(|c| &c.value).collect();
    let missing: Vec<_> = expected.difference(&actual).collect();
    let extra: Vec<_> = actual.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "store differs from the union of the workers' outcomes: missing {missing:?}, \
         extra {extra:?}"
    );
    for c in &records {
        let m = &model[&c.value];
        assert_eq!(c.authid, m.auth, "authid of {}", c.value);
        assert_eq!(c.max_age, m.max_age, "max_age of {}", c.value);
        assert_eq!(c.name.as_deref(), Some("cbtid"));
        if let Some(oid) = &m.oid {
            assert_eq!(&c.oid.to_string(), oid, "oid of {}", c.value);
        }
        if let Some(created) = m.created {
            assert_eq!(c.created, created, "created of {}", c.value);
        }
        if let Some(authid) = &c.authid {
            assert_eq!(
                c.authrole.as_deref(),
                Some(format!("role-{}", m.owner).as_str())
            );
            assert_eq!(
                c.authextra["authid"],
                json!(authid),
                "authextra of {}",
                c.value
            );
        }
    }
    assert_eq!(stats.live, records.len() as u64);
    eprintln!(
        "workers: {created} created, {deleted} deleted, {purged}+{final_purge} purged, {} left",
        records.len()
    );
}

struct Model {
    owner: usize,
    oid: Option<String>,
    created: Option<u64>,
    max_age: u64,
    /// The last authid the owner stored (Written or Unchanged).
    auth: Option<String>,
    auth_history: HashSet<String>,
    deleted_by: Vec<usize>,
}

// ---- the worker process ----

struct Mine {
    value: String,
    authid: Option<String>,
    max_age: u64,
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} not set"))
}

fn auth_for(index: usize, authid: &str) -> Auth {
    Auth::new(authid, &format!("role-{index}"), "cookie", "realm1")
        .with_authextra(json!({ "authid": authid, "worker": index, "tags": ["a", "b"] }))
}

fn worker_main() {
    let path = env("WORKER_STORE");
    let index: usize = env("WORKER_INDEX").parse().unwrap();
    let ops: u64 = env("WORKER_OPS").parse().unwrap();
    let seed: u64 = env("WORKER_SEED").parse().unwrap();
    let mut w = Worker {
        index,
        store: CookieStore::open(Path::new(&path), StoreOptions::default()).unwrap(),
        rng: StdRng::seed_from_u64(seed),
        mine: Vec::new(),
        ever_mine: HashSet::new(),
        others: Vec::new(),
        counter: 0,
    };
    let tracker = Tracker::new(w.store.clone(), TrackerConfig::default()).unwrap();
    for op in 0..ops {
        if op % 50 == 0 {
            w.refresh_others();
        }
        let roll = w.rng.random_range(0..100);
        let result = match roll {
            0..18 => w.create(),
            18..24 => w.track(&tracker),
            24..42 => w.authenticate(),
            42..52 => w.lookup_own(),
            52..64 => w.lookup_other(),
            64..72 => w.extend(),
            72..80 => w.logout_own(),
            80..83 => w.logout_other(),
            83..87 => w.purge(),
            87..91 => w.get_own(),
            91..94 => w.walk(),
            _ => w.provoke(),
        };
        if let Err((what, e)) = result {
            report(&json!({"ev": "error", "op": what, "msg": e.to_string()}));
        }
    }
    report(&json!({"ev": "done", "ops": ops}));
}

type Step = Result<(), (&'static str, Error)>;

struct Worker {
    index: usize,
    store: CookieStore,
    rng: StdRng,
    mine: Vec<Mine>,
    ever_mine: HashSet<String>,
    others: Vec<String>,
    counter: u64,
}

impl Worker {
    fn pick_mine(&mut self) -> Option<usize> {
        (!self.mine.is_empty()).then(|| self.rng.random_range(0..self.mine.len()))
    }

    fn pick_other(&mut self) -> Option<String> {
        (!self.others.is_empty())
            .then(|| self.others[self.rng.random_range(0..self.others.len())].clone())
    }

    fn violation(&self, what: String) {
        report(&json!({"ev": "violation", "what": what}));
    }

    fn refresh_others(&mut self) {
        let mine = &self.ever_mine;
        self.others = self
            .store
            .as_lmdb()
            .unwrap()
            .snapshot(|s| {
                Ok(s.records()?
                    .filter_map(|c| c.ok())
                    .map(|c| c.value)
                    .filter(|v| !mine.contains(v))
                    .collect())
            })
            .unwrap_or_default();
    }

    fn create(&mut self) -> Step {
        let max_age = if self.rng.random_bool(0.3) {
            SHORT
        } else {
            LONG
        };
        let c = self
            .store
            .create("cbtid", 24, max_age)
            .map_err(|e| ("create", e))?;
        report(
            &json!({"ev": "create", "v": c.value, "oid": c.oid.to_string(),
            "created": c.created, "max_age": max_age}),
        );
        self.ever_mine.insert(c.value.clone());
        self.mine.push(Mine {
            value: c.value,
            authid: None,
            max_age,
        });
        Ok(())
    }

    fn track(&mut self, tracker: &Tracker) -> Step {
        let header = match self.pick_other() {
            Some(other) if self.rng.random_bool(0.8) => {
                format!("lang=en; cbtid=unknown{}; cbtid={other}", self.counter)
            }
            _ => "lang=en".to_string(),
        };
        self.counter += 1;
        let t = tracker
            .track(Some(header.as_bytes()))
            .map_err(|e| ("track", e))?;
        if t.is_new {
            report(&json!({"ev": "create", "v": t.value, "max_age": LONG}));
            self.ever_mine.insert(t.value.clone());
            self.mine.push(Mine {
                value: t.value,
                authid: None,
                max_age: LONG,
            });
        } else {
            report(&json!({"ev": "seen", "v": t.value,
                "authid": t.auth.map(|a| a.authid)}));
        }
        Ok(())
    }

    fn authenticate(&mut self) -> Step {
        let Some(i) = self.pick_mine() else {
            return Ok(());
        };
        let again = self.mine[i].authid.is_some() && self.rng.random_bool(0.15);
        let authid = if again {
            self.mine[i].authid.clone().unwrap()
        } else {
            self.counter += 1;
            format!("w{}-{}", self.index, self.counter)
        };
        let context = AuthContext::default()
            .worker(Some(format!("worker-{}", self.index)))
            .session(self.counter)
            .transport_info(json!({"peer": "tcp4:127.0.0.1:1234"}));
        let value = self.mine[i].value.clone();
        let r = self
            .store
            .set_auth(&value, &auth_for(self.index, &authid), &context)
            .map_err(|e| ("set_auth", e))?;
        let r_name = match r {
            AuthUpdate::Written => "written",
            AuthUpdate::Unchanged => "unchanged",
            AuthUpdate::NoSuchCookie => "none",
            other => panic!("unexpected {other:?}"),
        };
        report(&json!({"ev": "auth", "v": value, "authid": authid, "r": r_name}));
        match (r, again) {
            (AuthUpdate::NoSuchCookie, _) => {
                self.mine.swap_remove(i);
            }
            (AuthUpdate::Written, false) | (AuthUpdate::Unchanged, true) => {
                self.mine[i].authid = Some(authid);
            }
            (r, again) => self.violation(format!(
                "set_auth {value} (same auth again: {again}) gave {r:?}"
            )),
        }
        Ok(())
    }

    fn lookup_own(&mut self) -> Step {
        let Some(i) = self.pick_mine() else {
            return Ok(());
        };
        let m = &self.mine[i];
        match self.store.lookup(&m.value).map_err(|e| ("lookup", e))? {
            Some(found) => {
                let authid = found.auth.map(|a| a.authid);
                if authid != m.authid {
                    self.violation(format!(
                        "own cookie {} has authid {authid:?}, expected {:?}",
                        m.value, m.authid
                    ));
                }
            }
            // Logged out by another worker, or expired.
            None => {
                self.mine.swap_remove(i);
            }
        }
        Ok(())
    }

    fn lookup_other(&mut self) -> Step {
        let Some(other) = self.pick_other() else {
            return Ok(());
        };
        if let Some(found) = self.store.lookup(&other).map_err(|e| ("lookup", e))? {
            report(&json!({"ev": "seen", "v": other,
                "authid": found.auth.map(|a| a.authid)}));
        }
        Ok(())
    }

    fn extend(&mut self) -> Step {
        let Some(i) = self.pick_mine() else {
            return Ok(());
        };
        let value = self.mine[i].value.clone();
        let max_age = LONG + self.rng.random_range(1..10_000);
        let done = self
            .store
            .as_lmdb()
            .unwrap()
            .batch("extend", |b| match b.get(&value)? {
                Some(mut c) => {
                    c.max_age = max_age;
                    b.put(&c)?;
                    Ok(true)
                }
                None => Ok(false),
            })
            .map_err(|e| ("extend", e))?;
        if done {
            report(&json!({"ev": "extend", "v": value, "max_age": max_age}));
            self.mine[i].max_age = max_age;
        } else {
            self.mine.swap_remove(i);
        }
        Ok(())
    }

    fn logout_own(&mut self) -> Step {
        let Some(i) = self.pick_mine() else {
            return Ok(());
        };
        let m = self.mine.swap_remove(i);
        let r = self.store.delete(&m.value).map_err(|e| ("delete", e))?;
        report(&json!({"ev": "del", "v": m.value, "r": r}));
        Ok(())
    }

    fn logout_other(&mut self) -> Step {
        let Some(other) = self.pick_other() else {
            return Ok(());
        };
        let r = self.store.delete(&other).map_err(|e| ("delete", e))?;
        report(&json!({"ev": "del", "v": other, "r": r}));
        self.others.retain(|v| *v != other);
        Ok(())
    }

    fn purge(&mut self) -> Step {
        let n = self.store.purge_expired().map_err(|e| ("purge", e))?;
        report(&json!({"ev": "purge", "n": n}));
        Ok(())
    }

    fn get_own(&mut self) -> Step {
        let Some(i) = self.pick_mine() else {
            return Ok(());
        };
        let m = &self.mine[i];
        match self.store.get(&m.value).map_err(|e| ("get", e))? {
            Some(c) => {
                if c.value != m.value || c.authid != m.authid || c.max_age != m.max_age {
                    self.violation(format!(
                        "own cookie {} reads back as {c:?}, expected authid {:?} max_age {}",
                        m.value, m.authid, m.max_age
                    ));
                }
            }
            None => {
                self.mine.swap_remove(i);
            }
        }
        Ok(())
    }

    /// Walks one snapshot: every record decodes and is found by its value.
    fn walk(&mut self) -> Step {
        let problems = self
            .store
            .as_lmdb()
            .unwrap()
            .snapshot(|s| {
                let mut problems = Vec::new();
                for c in s.records()? {
                    let c = c?;
                    if !c.is_expired(s.now_ns()) && s.get(&c.value)?.as_ref() != Some(&c) {
                        problems.push(c.value);
                    }
                }
                Ok(problems)
            })
            .map_err(|e| ("snapshot walk", e))?;
        if !problems.is_empty() {
            self.violation(format!("snapshot: not found by value: {problems:?}"));
        }
        Ok(())
    }

    /// Operations that must fail, each with its own error.
    fn provoke(&mut self) -> Step {
        let kind = self.rng.random_range(0..4);
        let (name, outcome) = match kind {
            0 => (
                "bad_length",
                self.store.create("cbtid", 0, LONG).map(|_| ()),
            ),
            1 => (
                "too_long_value",
                self.store.put(&Cookie {
                    oid: uuid::Uuid::new_v4(),
                    value: "v".repeat(600),
                    max_age: LONG,
                    ..Cookie::default()
                }),
            ),
            2 => {
                let Some(i) = self.pick_mine() else {
                    return Ok(());
                };
                let value = self.mine[i].value.clone();
                let mut deep = json!(1);
                for _ in 0..100 {
                    deep = json!([deep]);
                }
                let auth = auth_for(self.index, "deep").with_authextra(json!({ "x": deep }));
                match self.store.set_auth(&value, &auth, &AuthContext::default()) {
                    // The cookie went away meanwhile: nothing to provoke.
                    Ok(AuthUpdate::NoSuchCookie) => {
                        self.mine.swap_remove(i);
                        return Ok(());
                    }
                    other => ("deep_authextra", other.map(|_| ())),
                }
            }
            _ => {
                let Some(other) = self.pick_other() else {
                    return Ok(());
                };
                // Another live cookie's value under a new oid: refused, nothing written.
                let r = self.store.as_lmdb().unwrap().batch("duplicate", |b| {
                    if b.get(&other)?.is_some() {
                        b.put(&Cookie {
                            oid: uuid::Uuid::new_v4(),
                            value: other.clone(),
                            max_age: LONG,
                            ..Cookie::default()
                        })?;
                        return Ok(true);
                    }
                    Ok(false)
                });
                match r {
                    Ok(false) => return Ok(()), // gone meanwhile
                    other => ("duplicate_value", other.map(|_| ())),
                }
            }
        };
        let expected = match (name, &outcome) {
            ("bad_length", Err(Error::InvalidConfig { field, .. })) => *field == "length",
            ("too_long_value", Err(Error::InvalidValue { .. })) => true,
            ("deep_authextra", Err(Error::InvalidValue { problem })) => problem.contains("nested"),
            ("duplicate_value", Err(Error::DuplicateValue { .. })) => true,
            _ => false,
        };
        if !expected {
            self.violation(format!("provoked {name}: got {outcome:?}"));
        }
        report(&json!({"ev": "provoked", "kind": name}));
        Ok(())
    }
}
