//! Crossbar.io `cookie` sections parse into a TrackerConfig and a store section: verbatim
//! node configs (tests/fixtures/crossbar-configs), Crossbar's attribute keys, and every way a
//! section can be wrong, each named in the error.

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use cookiestore::{
    CookieSection, CookieStore, Error, Location, SameSite, StoreOptions, Tracker, TrackerConfig,
};
use serde_json::{Value, json};

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/crossbar-configs")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// The `cookie` section of the first websocket path of the first transport.
fn cookie_section(config: &Value) -> &Value {
    let transports = config
        .pointer("/workers/0/transports")
        .or_else(|| config.get("transports"))
        .unwrap();
    &transports[0]["paths"]["ws"]["cookie"]
}

fn config_error(e: Error) -> (String, String) {
    match e {
        Error::InvalidConfig { field, problem } => (field, problem),
        other => panic!("expected InvalidConfig, got {other:?}"),
    }
}

#[test]
fn a_real_node_config_parses_and_opens() {
    let config = fixture("node-database.json");
    let section = CookieSection::from_value(cookie_section(&config)).unwrap();
    assert_eq!(section.tracker.name, "cbtid");
    assert_eq!(section.tracker.length, 24);
    assert_eq!(section.tracker.max_age, 604_800);
    assert_eq!(section.tracker.attributes, Default::default());
    let store = section.store.expect("the section has a store");
    assert_eq!(store.kind, "database");
    assert_eq!(store.location, Location::Lmdb("cookies".into()));
    assert_eq!(store.options.lmdb.maxsize, 10_485_760);
    assert!(!store.options.readonly);
    assert!(store.options.lmdb.sync);

    // Relative to the node directory, as in Crossbar.io; and it opens.
    let node = tempfile::tempdir().unwrap();
    let dir = store.location_in(node.path());
    assert_eq!(dir, Location::Lmdb(node.path().join("cookies")));
    let tracker = Tracker::open(&dir, store.options.clone(), section.tracker.clone()).unwrap();
    let tracked = tracker.track(None).unwrap();
    assert!(tracked.set_cookie.starts_with("cbtid="));
    assert!(tracked.set_cookie.ends_with(";max-age=604800"));
    assert_eq!(tracked.value.len(), 24);
}

#[test]
fn the_docs_memory_and_file_stores_are_refused_with_the_way_over() {
    let (field, problem) = config_error(
        CookieSection::from_value(cookie_section(&fixture("docs-memory.json"))).unwrap_err(),
    );
    assert_eq!(field, "store.type");
    assert!(
        problem.contains("\"memory\"") && problem.contains("database"),
        "{problem}"
    );

    let (field, problem) = config_error(
        CookieSection::from_value(cookie_section(&fixture("docs-file.json"))).unwrap_err(),
    );
    assert_eq!(field, "store.type");
    assert!(problem.contains("cookiestore import"), "{problem}");

    // The rest of those sections is a valid tracker config.
    let mut section = cookie_section(&fixture("docs-file.json")).clone();
    section.as_object_mut().unwrap().remove("store");
    let parsed = CookieSection::from_value(&section).unwrap();
    assert_eq!(parsed.tracker.max_age, 864_000);
    assert!(parsed.store.is_none());
}

#[test]
fn crossbars_attribute_keys_map_onto_ours() {
    let section = CookieSection::from_value(&json!({
        "name": "cbtid", "max_age": 3600,
        "secure": true, "http_strict": true, "same_site": "Strict",
        "store": {"type": "cookiestore", "path": "/var/lib/cookies", "sync": false,
                  "readonly": false, "purge_on_startup": true}
    }))
    .unwrap();
    let a = &section.tracker.attributes;
    assert!(a.secure && a.http_only);
    assert_eq!(a.same_site, Some(SameSite::Strict));
    let store = section.store.unwrap();
    assert_eq!(store.kind, "cookiestore");
    assert_eq!(
        store.location_in("/node"),
        Location::Lmdb("/var/lib/cookies".into())
    );
    assert!(!store.options.lmdb.sync && store.options.purge_on_startup);

    // Set-Cookie carries them, in Crossbar's order.
    let dir = tempfile::tempdir().unwrap();
    let store = CookieStore::open(dir.path(), StoreOptions::default()).unwrap();
    let tracker = Tracker::new(store, section.tracker).unwrap();
    let set = tracker.track(None).unwrap().set_cookie;
    assert!(
        set.ends_with(";max-age=3600;Secure;HttpOnly;SameSite=Strict"),
        "{set}"
    );

    // Our own `attributes` object works too; a key given both ways is refused.
    let ours: TrackerConfig = serde_json::from_value(json!({
        "attributes": {"http_only": true, "path": "/ws", "domain": "example.com"}
    }))
    .unwrap();
    assert!(ours.attributes.http_only);
    assert_eq!(ours.attributes.path.as_deref(), Some("/ws"));
    let both = CookieSection::from_value(&json!({"secure": true, "attributes": {"secure": false}}));
    let (_, problem) = config_error(both.unwrap_err());
    assert!(
        problem.contains("`secure`") && problem.contains("attributes.secure"),
        "{problem}"
    );
}

#[test]
fn misspelt_keys_and_bad_values_are_named() {
    let mut cases = vec![
        (json!({"max_agee": 10}), "cookie", "max_agee"),
        (
            json!({"store": {"type": "database", "path": "c", "maxsise": 1}}),
            "store",
            "maxsise",
        ),
        (
            json!({"store": {"type": "redis", "path": "c"}}),
            "store.type",
            "redis",
        ),
        (json!({"store": {"path": "c"}}), "store.type", "missing"),
        (
            json!({"store": {"type": "database"}}),
            "store.path",
            "missing",
        ),
        (
            json!({"store": {"type": "database", "path": "c", "maxsize": 10}}),
            "maxsize",
            "10 bytes",
        ),
        // A store is at exactly one of `path` (a directory) and `url` (a Redis URL).
        (
            json!({"store": {"type": "cookiestore", "path": "c", "url": "redis://h/0"}}),
            "store.path",
            "`store.url` are both given",
        ),
        (
            json!({"store": {"type": "cookiestore", "key_prefix": "a:"}}),
            "store.path",
            "`store.url`",
        ),
        (
            json!({"store": {"type": "cookiestore", "url": 6379}}),
            "store.url",
            "6379",
        ),
        // A value of the wrong type: the key is named (serde's message alone does not).
        (
            json!({"store": {"type": "cookiestore", "path": "c", "sync": "yes"}}),
            "store.sync",
            "boolean",
        ),
        (
            json!({"store": {"type": "cookiestore", "path": "c", "durability": "fast"}}),
            "store.durability",
            "fast",
        ),
        (json!({"name": "CBTID"}), "name", "CBTID"),
        (json!({"length": 5}), "length", "5"),
        (json!({"max_age": 0}), "max_age", "0 seconds"),
        (json!({"same_site": "Sometimes"}), "cookie", "Sometimes"),
        (json!({"same_site": "None"}), "attributes", "Secure"),
        (json!("cbtid"), "cookie", "JSON object"),
    ];
    // A `url` must be a Redis URL whose query options parse.
    #[cfg(feature = "redis")]
    cases.extend([
        (
            json!({"store": {"type": "cookiestore", "url": "http://127.0.0.1:6379/0"}}),
            "store.url",
            "Redis URL",
        ),
        (
            json!({"store": {"type": "cookiestore", "url": "/var/lib/cookies"}}),
            "store.url",
            "store.path",
        ),
        (
            json!({"store": {"type": "cookiestore", "url": "redis://h/0?timeout_ms=0"}}),
            "store.url",
            "timeout_ms",
        ),
        (
            json!({"store": {"type": "cookiestore", "url": "redis://h/0", "timeout_ms": 0}}),
            "timeout_ms",
            "is 0",
        ),
    ]);
    // Without the Redis backend, a `url` is refused naming the feature.
    #[cfg(not(feature = "redis"))]
    cases.push((
        json!({"store": {"type": "cookiestore", "url": "redis://h/0"}}),
        "store.url",
        "feature `redis`",
    ));
    for (section, field, needle) in cases {
        let (got_field, problem) = config_error(CookieSection::from_value(&section).unwrap_err());
        assert_eq!(got_field, field, "{section}: {problem}");
        assert!(
            problem.contains(needle) || got_field.contains(needle),
            "{section}: {problem:?} does not name {needle:?}"
        );
    }
    let text = CookieSection::from_json("{\"name\": ")
        .unwrap_err()
        .to_string();
    assert!(text.contains("invalid configuration"), "{text}");
}

#[cfg(feature = "redis")]
#[test]
fn a_store_url_names_a_redis_store_as_it_is() {
    for url in [
        "redis://127.0.0.1:6379/0",
        "redis://:secret@cache.example:6380/2?prefix=cb1:",
        "redis+unix:///run/redis/redis.sock?db=1",
    ] {
        let section = CookieSection::from_value(&json!({
            "name": "cbtid", "max_age": 604800,
            "store": {"type": "cookiestore", "url": url, "key_prefix": "node:",
                      "timeout_ms": 1500}
        }))
        .unwrap();
        let store = section.store.unwrap();
        assert_eq!(store.kind, "cookiestore");
        // Not joined to the node directory: two nodes on two hosts name the same store.
        let a = store.location_in("/srv/node-a/.crossbar");
        assert_eq!(a.kind(), "redis");
        assert_eq!(a, store.location_in("/srv/node-b/.crossbar"));
        assert_eq!(a, Location::parse(url).unwrap());
        assert!(!a.to_string().contains("secret"), "{a}");
        assert_eq!(store.options.redis.key_prefix, "node:");
        assert_eq!(store.options.timeout_ms, 1500);
    }
    // `path` keeps naming a directory (relative to the node directory).
    let section = CookieSection::from_value(&json!({
        "store": {"type": "cookiestore", "path": "cookies"}
    }))
    .unwrap();
    assert_eq!(
        section.store.unwrap().location_in("/srv/node"),
        Location::Lmdb("/srv/node/cookies".into())
    );
    // A password in a refused URL is not echoed.
    let (field, problem) = config_error(
        CookieSection::from_value(&json!({
            "store": {"type": "cookiestore", "url": "http://user:secret@h:6379/0"}
        }))
        .unwrap_err(),
    );
    assert_eq!(field, "store.url");
    assert!(!problem.contains("secret"), "{problem}");
}

#[test]
fn a_url_is_not_a_store_path() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = std::env::current_dir().unwrap();
    // Redis URLs open a Redis store (tests/redis.rs); other schemes are refused.
    for url in [
        "http://127.0.0.1:6379/0",
        "memcached://host/1",
        "file:///tmp/r.sock",
    ] {
        let err = CookieStore::open(url, StoreOptions::default()).unwrap_err();
        assert!(matches!(err, Error::UnsupportedLocation { .. }), "{err:?}");
        assert!(err.to_string().contains("store's directory"), "{err}");
    }
    // Nothing was created: neither here nor under the current directory.
    assert!(!cwd.join("redis:").exists());
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
}

/// A valid value of each key a section may hold (a new key needs one here).
fn sample(key: &str) -> Value {
    match key {
        "type" => json!("cookiestore"),
        "path" => json!("cookies"),
        "url" => json!("redis://127.0.0.1:6379/0"),
        "maxsize" => json!(1 << 30),
        "initial_mapsize" => json!(1 << 20),
        "readonly" | "sync" | "purge_on_startup" | "secure" | "http_strict" | "allow_eviction"
        | "connect_lazily" => {
            json!(true)
        }
        "durability" => json!("full"),
        "file_mode" => json!(0o640),
        "revocation_retention_secs" => json!(60),
        "key_prefix" => json!("cb1:"),
        "timeout_ms" => json!(1500),
        "revocation_stream_max" => json!(1000),
        "min_replicas_acked" => json!(1),
        "replica_ack_timeout_ms" => json!(300),
        "cache_bytes" => json!(0),
        "redis_cache_bytes" => json!(1 << 20),
        "tls_ca_file" | "tls_cert_file" | "tls_key_file" | "password_file" => {
            json!("/etc/cookiestore/redis-file.pem")
        }
        "password_env" => json!("COOKIESTORE_REDIS_PASSWORD"),
        "sentinel_password_file" => json!("/etc/cookiestore/sentinel.pw"),
        "sentinel_password_env" => json!("COOKIESTORE_SENTINEL_PASSWORD"),
        "sentinel_user" => json!("cookiestore"),
        "name" => json!("cbtid"),
        "length" => json!(24),
        "max_age" => json!(3600),
        "same_site" => json!("Lax"),
        "attributes" => json!({"path": "/"}),
        other => panic!("no sample value for the key {other:?}: add one to this test"),
    }
}

#[test]
fn the_listed_keys_are_exactly_those_the_parser_accepts() {
    let store_keys = cookiestore::StoreSection::keys();
    assert_eq!(&store_keys[..3], ["type", "path", "url"]);
    assert!(store_keys.contains(&"cache_bytes") && store_keys.contains(&"durability"));
    // Each listed key parses (with `path`, or `url` in place of it).
    for key in store_keys {
        let mut store = json!({"type": "cookiestore", "path": "cookies"});
        if *key == "url" {
            store.as_object_mut().unwrap().remove("path");
        }
        store[*key] = sample(key);
        let section = json!({"store": store});
        CookieSection::from_value(&section)
            .unwrap_or_else(|e| panic!("the listed key {key:?} is refused: {e}"));
    }
    // And no other: serde's error for an unknown key lists the keys it accepts.
    let (field, problem) = config_error(
        CookieSection::from_value(
            &json!({"store": {"type": "cookiestore", "path": "c", "nope": 1}}),
        )
        .unwrap_err(),
    );
    assert_eq!(field, "store");
    let accepted: Vec<&str> = problem
        .split_once("expected one of ")
        .unwrap_or_else(|| panic!("{problem}"))
        .1
        .split(", ")
        .map(|k| k.trim_matches('`'))
        .collect();
    assert_eq!(accepted, store_keys[3..], "{problem}");

    let cookie_keys = CookieSection::keys();
    let mut section = json!({"store": {"type": "cookiestore", "path": "cookies"}});
    for key in cookie_keys.iter().filter(|k| **k != "store") {
        section[*key] = sample(key);
    }
    CookieSection::from_value(&section).unwrap();
    let (_, problem) = config_error(CookieSection::from_value(&json!({"nope": 1})).unwrap_err());
    let accepted: Vec<&str> = problem
        .split_once("expected one of ")
        .unwrap_or_else(|| panic!("{problem}"))
        .1
        .split(", ")
        .map(|k| k.trim_matches('`'))
        .collect();
    assert_eq!(accepted, cookie_keys[..cookie_keys.len() - 1], "{problem}");
}
