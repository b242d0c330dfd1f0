//! The Cookie record codec: every field round-trips, absent fields follow cfxdb's defaults,
//! corrupt bytes are errors, never panics.

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

use cookiestore::{Cookie, CookieView, Error};
use serde_json::json;
use uuid::Uuid;

fn full() -> Cookie {
    Cookie {
        oid: Uuid::new_v4(),
        created: 1_763_800_000_123_456_789,
        max_age: 604_800,
        name: Some("cbtid".into()),
        value: "h8krRyv3cjc/bzhHM5s6XXmy".into(),
        authenticated: 1_763_800_001_000_000_000,
        authenticated_on_node: Some(Uuid::new_v4()),
        authenticated_on_worker: Some("worker-ü1".into()),
        authenticated_transport_info: json!({"type": "websocket", "peer": "tcp4:127.0.0.1:1", "nested": {"a": [1, 2.5, null, true]}}),
        authenticated_session: 6_278_134_200_484_350,
        authenticated_joined_at: 1_763_800_002_000_000_000,
        authenticated_authmethod: Some("wampcra".into()),
        authid: Some("ユーザー🍪".into()),
        authrole: Some("frontend".into()),
        authmethod: Some("cookie".into()),
        authrealm: Some("com.example.app".into()),
        authextra: json!({"roles": ["a", "b"], "n": -3, "big": u64::MAX, "f": 1.5, "none": null}),
    }
}

#[test]
fn every_field_round_trips() {
    let c = full();
    let bytes = c.encode().unwrap();
    assert_eq!(Cookie::decode(&bytes).unwrap(), c);
    let view = CookieView::new(&bytes).unwrap();
    assert_eq!(view.value(), c.value);
    assert_eq!(view.authid(), c.authid.as_deref());
    assert_eq!(view.auth().unwrap().unwrap(), c.auth().unwrap());
    assert_eq!(view.expires_at(), c.created + 604_800 * 1_000_000_000);
}

#[test]
fn empty_record_is_12_bytes_like_cfxdbs_and_decodes_to_defaults() {
    let empty = Cookie::default();
    let bytes = empty.encode().unwrap();
    assert_eq!(bytes.len(), 12, "cfxdb's empty Cookie encodes to 12 bytes");
    let back = Cookie::decode(&bytes).unwrap();
    assert_eq!(back, empty);
    assert_eq!(back.authextra, json!({}));
    assert_eq!(back.authid, None);
    assert_eq!(back.created, 0);
}

#[test]
fn falsy_fields_are_not_written() {
    let mut c = full();
    c.authid = Some(String::new());
    c.authextra = json!({});
    c.authenticated_session = 0;
    let back = Cookie::decode(&c.encode().unwrap()).unwrap();
    assert_eq!(
        back.authid, None,
        "an empty string is left out, as cfxdb does"
    );
    assert_eq!(back.authenticated_session, 0);
    assert_eq!(back.authextra, json!({}));
}

#[test]
fn unicode_survives() {
    let mut c = full();
    c.authrealm = Some("réalm-名前-🚀".into());
    c.authextra = json!({"ключ": "значение", "emoji": "🍪🍪"});
    assert_eq!(Cookie::decode(&c.encode().unwrap()).unwrap(), c);
}

#[test]
fn json_form_uses_cfxdb_field_names_and_leaves_unset_out() {
    let c = Cookie {
        oid: Uuid::nil(),
        value: "abcdef".into(),
        max_age: 10,
        ..Cookie::default()
    };
    let v = serde_json::to_value(&c).unwrap();
    assert_eq!(
        v,
        json!({"oid": "00000000-0000-0000-0000-000000000000", "max_age": 10, "value": "abcdef"})
    );
    let back: Cookie = serde_json::from_value(v).unwrap();
    assert_eq!(back, c);
}

#[test]
fn truncated_and_corrupt_bytes_are_errors() {
    let bytes = full().encode().unwrap();
    for len in 0..bytes.len() {
        let r = Cookie::decode(&bytes[..len]);
        assert!(
            matches!(r, Err(Error::InvalidRecord { .. })),
            "prefix of {len} bytes decoded"
        );
    }
    // Flip every byte in turn: decoding may succeed (a changed number) but never panics.
    let mut failures = 0;
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0xFF;
        if Cookie::decode(&b).is_err() {
            failures += 1;
        }
    }
    assert!(failures > 0);
    assert!(matches!(
        Cookie::decode(b"garbage!garbage!"),
        Err(Error::InvalidRecord { .. })
    ));
}

#[test]
fn invalid_cbor_in_authextra_is_an_error_naming_the_field() {
    // Encode a record whose authextra bytes are not CBOR by patching a valid one.
    let mut c = full();
    c.authextra = json!({"k": "vvvvvvvvvvvvvvvv"});
    let mut bytes = c.encode().unwrap();
    let needle = b"vvvvvvvvvvvvvvvv";
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap();
    // Turn the text header before it into a reserved CBOR major-7 code (0xFC is invalid).
    bytes[at - 1] = 0xFC;
    let err = Cookie::decode(&bytes).unwrap_err().to_string();
    assert!(err.contains("authextra"), "{err}");
}

#[test]
fn too_deep_authextra_is_refused_on_write() {
    let mut v = json!(1);
    for _ in 0..100 {
        v = json!([v]);
    }
    let c = Cookie {
        authextra: json!({"deep": v}),
        ..full()
    };
    let err = c.encode().unwrap_err();
    assert!(matches!(err, Error::InvalidValue { .. }), "{err}");
    assert!(err.to_string().contains("deeper"));
}

#[test]
fn huge_authextra_is_refused_on_write() {
    let c = Cookie {
        authextra: json!({"blob": "x".repeat(2 * 1024 * 1024)}),
        ..full()
    };
    let err = c.encode().unwrap_err();
    assert!(err.to_string().contains("bytes, more than"), "{err}");
}
