//! The tracker API a router worker calls: header edge cases, new cookies for none, unknown
//! or expired ones, the auth round trip, logout, and config validation.

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use cookiestore::{Auth, AuthContext, AuthUpdate, Error, Tracker, TrackerConfig};
use cookiestore::{CookieAttributes, SameSite};
use serde_json::json;
use uuid::Uuid;

const T0: u64 = FIXTURE_DAY_NS;

fn tracker(config: TrackerConfig) -> (tempfile::TempDir, Tracker, cookiestore::ManualClock) {
    let dir = tempfile::tempdir().unwrap();
    let (options, clock) = options_at(T0);
    let t = Tracker::open(dir.path(), options, config).unwrap();
    (dir, t, clock)
}

#[test]
fn no_header_creates_a_cookie_as_crossbar_does() {
    let (_d, t, _) = tracker(TrackerConfig::default());
    let tracked = t.track(None).unwrap();
    assert!(tracked.is_new);
    assert_eq!(tracked.value.len(), 24);
    assert!(
        tracked
            .value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
    );
    assert_eq!(
        tracked.set_cookie,
        format!("cbtid={};max-age=86400", tracked.value)
    );
    assert_eq!(tracked.auth, None);
    assert_eq!(
        tracked.authid(),
        tracked.value,
        "unauthenticated: the value is the authid"
    );
    let stored = t.store().get(&tracked.value).unwrap().unwrap();
    assert_eq!(stored.name.as_deref(), Some("cbtid"));
    assert_eq!(stored.created, T0);
    assert_eq!(stored.max_age, 86_400);
}

#[test]
fn known_cookie_is_found_among_others_in_the_header() {
    let (_d, t, clock) = tracker(TrackerConfig::default());
    let first = t.track(None).unwrap();
    clock.advance_secs(400);
    for header in [
        format!("cbtid={}", first.value),
        format!("a=1; cbtid={}; b=2", first.value),
        format!("a=1;cbtid=\"{}\"", first.value),
        format!("  cbtid = {}  ", first.value),
        format!("\tcbtid={};", first.value),
        format!("cbtid=unknownunknown; cbtid={}", first.value),
        format!("garbage\u{0}; x=\u{7f}; cbtid={}", first.value),
    ] {
        let again = t.track(Some(header.as_bytes())).unwrap();
        assert!(!again.is_new, "{header:?}");
        assert_eq!(again.value, first.value, "{header:?}");
        assert_eq!(
            again.set_cookie,
            format!("cbtid={};max-age={}", first.value, 86_400 - 400),
            "max-age is the remaining lifetime"
        );
    }
    assert_eq!(
        t.store().count().unwrap(),
        1,
        "no cookie was created for these"
    );
}

#[test]
fn unknown_expired_or_garbage_cookies_get_a_new_one() {
    let (_d, t, clock) = tracker(TrackerConfig::default().max_age(60));
    let old = t.track(None).unwrap();
    let mut headers: Vec<Vec<u8>> = vec![
        b"cbtid=doesnotexist".to_vec(),
        b"".to_vec(),
        b"cbtid=".to_vec(),
        b"cbtid".to_vec(),
        b";;;===;;;".to_vec(),
        b"CBTID=abc".to_vec(),
        vec![0xff, 0xfe, b'=', 0x80],
        b"xcbtid=abcdefgh".to_vec(),
        format!("cbtid={}", "A".repeat(600)).into_bytes(),
        b"cbtid=has space".to_vec(),
        b"cbtid=\"unbalanced".to_vec(),
    ];
    headers.push(format!("cbtid={}\u{0}", old.value).into_bytes());
    for h in &headers {
        let tracked = t.track(Some(h)).unwrap();
        assert!(tracked.is_new, "{:?}", String::from_utf8_lossy(h));
        assert_ne!(tracked.value, old.value);
    }
    clock.advance_secs(60);
    let header = format!("cbtid={}", old.value);
    let after = t.track(Some(header.as_bytes())).unwrap();
    assert!(
        after.is_new,
        "an expired cookie is absent: a new one is issued"
    );
    assert_ne!(after.value, old.value);
}

#[test]
fn huge_and_many_cookie_headers_are_handled() {
    let (_d, t, _) = tracker(TrackerConfig::default());
    let known = t.track(None).unwrap();
    let mut header = String::new();
    for i in 0..5000 {
        header.push_str(&format!("c{i}=v{i}; "));
    }
    header.push_str(&format!("cbtid={}", known.value));
    assert_eq!(t.track(Some(header.as_bytes())).unwrap().value, known.value);
    let junk = vec![b'x'; 100_000];
    assert!(t.track(Some(&junk)).unwrap().is_new);
}

#[test]
fn auth_round_trip_and_logout() {
    let (_d, t, clock) = tracker(TrackerConfig::default());
    let c = t.track(None).unwrap();
    let auth = Auth::new("alice", "admin", "cookie", "realm1").with_authextra(json!({"x": [1, 2]}));
    let node = Uuid::new_v4();
    let ctx = AuthContext::default()
        .node(Some(node))
        .worker(Some("worker-1".into()))
        .transport_info(json!({"peer": "tcp4:127.0.0.1:5000"}))
        .session(42)
        .joined_at(T0 + 1)
        .authmethod(Some("wampcra".into()));
    clock.advance_secs(5);
    assert_eq!(
        t.authenticate(&c.value, &auth, &ctx).unwrap(),
        AuthUpdate::Written
    );
    assert_eq!(
        t.authenticate(&c.value, &auth, &ctx).unwrap(),
        AuthUpdate::Unchanged,
        "no write when nothing changed"
    );

    let header = format!("cbtid={}", c.value);
    let again = t.track(Some(header.as_bytes())).unwrap();
    assert_eq!(again.auth.as_ref(), Some(&auth));
    assert_eq!(again.authid(), "alice");

    let stored = t.store().get(&c.value).unwrap().unwrap();
    assert_eq!(stored.authenticated, T0 + 5 * 1_000_000_000);
    assert_eq!(stored.authenticated_on_node, Some(node));
    assert_eq!(stored.authenticated_on_worker.as_deref(), Some("worker-1"));
    assert_eq!(stored.authenticated_session, 42);
    assert_eq!(stored.authenticated_authmethod.as_deref(), Some("wampcra"));
    assert_eq!(
        stored.authenticated_transport_info,
        json!({"peer": "tcp4:127.0.0.1:5000"})
    );

    let other = Auth::new("alice", "user", "cookie", "realm1");
    assert_eq!(
        t.authenticate(&c.value, &other, &ctx).unwrap(),
        AuthUpdate::Written
    );
    assert_eq!(
        t.get_auth(&c.value).unwrap().unwrap().authrole.as_deref(),
        Some("user")
    );

    assert!(t.logout(&c.value).unwrap());
    assert!(!t.logout(&c.value).unwrap());
    assert!(!t.exists(&c.value).unwrap());
    assert_eq!(t.get_auth(&c.value).unwrap(), None);
    assert_eq!(
        t.authenticate(&c.value, &auth, &ctx).unwrap(),
        AuthUpdate::NoSuchCookie
    );
    let after = t.track(Some(header.as_bytes())).unwrap();
    assert!(after.is_new, "a logged-out cookie is not accepted again");
    assert_eq!(
        t.store().stats().unwrap().lmdb.unwrap().value_index_entries,
        1
    );
}

#[test]
fn set_cookie_attributes_are_opt_in() {
    let config = TrackerConfig::default()
        .name("my_cookie")
        .length(32)
        .max_age(3600)
        .attributes(
            CookieAttributes::default()
                .http_only(true)
                .secure(true)
                .same_site(Some(SameSite::Strict))
                .path(Some("/ws".into()))
                .domain(Some("example.com".into())),
        );
    let (_d, t, _) = tracker(config);
    let c = t.track(None).unwrap();
    assert_eq!(c.value.len(), 32);
    assert_eq!(
        c.set_cookie,
        format!(
            "my_cookie={};max-age=3600;Path=/ws;Domain=example.com;Secure;HttpOnly;SameSite=Strict",
            c.value
        )
    );
}

#[test]
fn config_validation_names_the_field_and_range() {
    let cases: Vec<(TrackerConfig, &str, &str)> = vec![
        (
            TrackerConfig::default().name("Cbtid"),
            "name",
            "^[a-z][a-z0-9_]+$",
        ),
        (
            TrackerConfig::default().name("c"),
            "name",
            "^[a-z][a-z0-9_]+$",
        ),
        (
            TrackerConfig::default().name("cb-tid"),
            "name",
            "^[a-z][a-z0-9_]+$",
        ),
        (
            TrackerConfig::default().length(5),
            "length",
            "between 6 and 64",
        ),
        (
            TrackerConfig::default().length(65),
            "length",
            "between 6 and 64",
        ),
        (TrackerConfig::default().max_age(0), "max_age", "1 second"),
        (
            TrackerConfig::default().max_age(315_360_001),
            "max_age",
            "10 years",
        ),
        (
            TrackerConfig::default()
                .attributes(CookieAttributes::default().same_site(Some(SameSite::None))),
            "attributes",
            "",
        ),
    ];
    for (config, field, allowed) in cases {
        let err = config.validate().unwrap_err();
        match &err {
            Error::InvalidConfig { field: f, problem } => {
                assert_eq!(*f, field);
                assert!(problem.contains(allowed), "{problem}");
            }
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            Tracker::open(dir.path(), Default::default(), config),
            Err(Error::InvalidConfig { .. })
        ));
    }
    for (length, max_age) in [(6, 1), (64, 315_360_000)] {
        TrackerConfig::default()
            .length(length)
            .max_age(max_age)
            .validate()
            .unwrap();
    }
}

#[test]
fn config_parses_crossbar_json_with_defaults() {
    let c: TrackerConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(c, TrackerConfig::default());
    assert_eq!(
        (c.name.as_str(), c.length, c.max_age),
        ("cbtid", 24, 86_400)
    );
    assert!(
        serde_json::from_str::<TrackerConfig>(r#"{"lenght": 3}"#).is_err(),
        "typos are rejected"
    );
}

#[test]
fn values_are_random_and_distinct() {
    let (_d, t, _) = tracker(TrackerConfig::default());
    let mut seen = std::collections::HashSet::new();
    let mut chars = std::collections::HashSet::new();
    for _ in 0..500 {
        let v = t.track(None).unwrap().value;
        chars.extend(v.chars());
        assert!(seen.insert(v));
    }
    assert_eq!(
        chars.len(),
        64,
        "all 64 characters of the alphabet appear: 6 bits each"
    );
}
