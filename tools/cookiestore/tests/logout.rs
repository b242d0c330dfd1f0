//! `cookiestore logout` and `cookiestore revocations`, run as real processes on real stores.

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use cookiestore::{Auth, AuthContext, CookieStore, StoreOptions};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_cookiestore");

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .output()
        .expect("run cookiestore");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn login(store: &CookieStore, authid: &str) -> String {
    let c = store.create("cbtid", 24, 86_400).unwrap();
    let auth = Auth::new(authid, "user", "ticket", "realm1");
    store
        .set_auth(&c.value, &auth, &AuthContext::default())
        .unwrap();
    c.value
}

#[test]
fn logout_by_authid_and_value_then_the_feed_lists_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let (alice, bob) = {
        let store = CookieStore::open(dir.path(), StoreOptions::default()).unwrap();
        let alice: Vec<String> = (0..3).map(|_| login(&store, "alice")).collect();
        (alice, login(&store, "bob"))
    };

    let (code, out, err) = run(&["logout", path, "--authid", "alice"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("logged out 3 cookies"), "{out}");
    let (code, _, err) = run(&["logout", path, "--authid", "alice"]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("cookiestore: no cookie with authid"),
        "{err}"
    );
    let (code, out, err) = run(&["logout", path, "--value", &bob]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("logged out 1 cookie "), "{out}");
    let (code, _, _) = run(&["logout", path, "--value", &bob]);
    assert_eq!(code, 1);
    let (code, _, _) = run(&["logout", path]);
    assert_eq!(code, 2, "neither --authid nor --value is a usage error");

    let (code, out, err) = run(&["revocations", path]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    // After the four logins' auth entries (listed with --all).
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["seq"], i as u64 + 5);
    }
    let alice_seen: Vec<&str> = lines[..3]
        .iter()
        .map(|l| l["value"].as_str().unwrap())
        .collect();
    let mut sorted = alice.clone();
    sorted.sort();
    let mut seen_sorted: Vec<String> = alice_seen.iter().map(|s| s.to_string()).collect();
    seen_sorted.sort();
    assert_eq!(seen_sorted, sorted);
    assert!(lines[..3].iter().all(|l| l["kind"] == "authid"));
    assert_eq!(lines[3]["kind"], "logout");
    assert_eq!(lines[3]["value"], bob.as_str());

    let (code, out, _) = run(&["revocations", path, "--since", "7"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 1);
    assert!(out.contains(&bob));

    let (code, out, _) = run(&["revocations", path, "--all"]);
    assert_eq!(code, 0);
    let kinds: Vec<String> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "auth", "auth", "auth", "auth", "authid", "authid", "authid", "logout"
        ]
    );
}
