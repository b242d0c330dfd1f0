//! Unit tests of `legacy.rs`: replaying `cookies.dat` (the fixture, expiry, line endings,
//! long lines), what each broken line is reported as, and the fields read.

use super::*;
use serde_json::json;
use std::fs::File;
use std::io::{BufReader, Read};

const DAT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/crossbar-cookies.dat"
);
const EXPECTED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/crossbar-cookies.expected.jsonl"
);

/// 2026-11-22T02:49:50.212Z
const T0: u64 = 1_795_315_790_212_000_000;
const WEEK: u64 = 604_800;

fn fixture_bytes() -> Vec<u8> {
    std::fs::read(DAT).expect("fixture crossbar-cookies.dat")
}

fn good(cbtid: &str, status: &str) -> String {
    json!({
        "cbtid": cbtid, "status": status, "created": "2026-11-22T02:49:50.212Z",
        "modified": null, "deleted": null, "max_age": WEEK,
        "authid": null, "authrole": null, "authmethod": null, "authrealm": null,
        "authextra": null
    })
    .to_string()
}

fn values(r: &Replay) -> Vec<&str> {
    r.cookies.iter().map(|c| c.value.as_str()).collect()
}

fn bad_numbers(r: &Replay) -> Vec<u64> {
    r.bad_lines.iter().map(|(n, _)| *n).collect()
}

fn err(line: &str) -> LegacyLineError {
    parse_line(line).expect_err(line)
}

fn opt_str(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

#[test]
fn fixture_replay_matches_expected_state() {
    let r = replay(BufReader::new(File::open(DAT).expect("fixture"))).expect("replay");
    assert_eq!(r.lines, 78);
    assert_eq!(r.blank_lines, 0);
    assert!(r.bad_lines.is_empty(), "{:?}", r.bad_lines);
    assert_eq!(r.deleted, 8);
    assert_eq!(r.cookies.len(), 32);

    let expected_text = std::fs::read_to_string(EXPECTED).expect("fixture");
    let mut expected: Vec<LegacyCookie> = expected_text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("expected line is JSON");
            let created = v["created"].as_str().expect("created");
            LegacyCookie {
                value: opt_str(&v, "cbtid").expect("cbtid"),
                created_ns: rfc3339::parse_rfc3339_ns(created).expect("created parses"),
                max_age: v["max_age"].as_u64().expect("max_age"),
                authid: opt_str(&v, "authid"),
                authrole: opt_str(&v, "authrole"),
                authmethod: opt_str(&v, "authmethod"),
                authrealm: opt_str(&v, "authrealm"),
                authextra: v.get("authextra").filter(|x| !x.is_null()).cloned(),
                modified_ns: None,
            }
        })
        .collect();
    assert_eq!(expected.len(), 32);
    expected.sort_by(|a, b| a.value.cmp(&b.value));

    let mut got = r.cookies.clone();
    got.sort_by(|a, b| a.value.cmp(&b.value));
    for (g, e) in got.iter().zip(&expected) {
        let g_without_modified = LegacyCookie {
            modified_ns: None,
            ..g.clone()
        };
        assert_eq!(&g_without_modified, e);
    }
    assert_eq!(got.len(), expected.len());

    // Re-authenticated cookies keep their last state, including when it changed.
    let renamed = r
        .cookies
        .iter()
        .find(|c| c.authid.as_deref() == Some("user36-renamed"))
        .expect("user36-renamed");
    assert_eq!(renamed.authrole.as_deref(), Some("admin"));
    assert_eq!(renamed.authextra, Some(json!({"i": 36})));
    assert_eq!(
        renamed.modified_ns,
        Some(rfc3339::parse_rfc3339_ns("2026-11-22T02:49:50.231Z").expect("ts"))
    );
    let never_modified = r
        .cookies
        .iter()
        .find(|c| c.value == "MWaqHDq3eKwiMrKJA9xfrv/S")
        .expect("MWaq…");
    assert_eq!(never_modified.modified_ns, None);
    assert_eq!(never_modified.authid, None);
}

#[test]
fn fixture_deleted_cookies_are_absent() {
    let text = String::from_utf8(fixture_bytes()).expect("utf-8");
    let mut deleted: Vec<String> = text
        .lines()
        .filter_map(|l| parse_line(l).ok())
        .filter(|l| l.status == LegacyStatus::Deleted)
        .map(|l| l.cookie.value)
        .collect();
    deleted.sort();
    deleted.dedup();
    assert_eq!(deleted.len(), 8);

    let r = replay(text.as_bytes()).expect("replay");
    for d in &deleted {
        assert!(!values(&r).contains(&d.as_str()), "{d} should be deleted");
    }
}

#[test]
fn fixture_cookies_keep_first_seen_order() {
    let text = String::from_utf8(fixture_bytes()).expect("utf-8");
    let r = replay(text.as_bytes()).expect("replay");
    let mut first_seen: Vec<String> = Vec::new();
    for l in text.lines() {
        let v = parse_line(l).expect("fixture line").cookie.value;
        if !first_seen.contains(&v) {
            first_seen.push(v);
        }
    }
    let survivors: Vec<&str> = first_seen
        .iter()
        .map(String::as_str)
        .filter(|v| values(&r).contains(v))
        .collect();
    assert_eq!(values(&r), survivors);
}

#[test]
fn fixture_expiry_with_pinned_clock() {
    let r = replay(fixture_bytes().as_slice()).expect("replay");
    let day_after = T0 + 86_400 * 1_000_000_000;
    let much_later = T0 + 8 * 86_400 * 1_000_000_000;
    for c in &r.cookies {
        assert_eq!(c.max_age, WEEK);
        assert_eq!(c.expires_ns(), c.created_ns + WEEK * 1_000_000_000);
        assert!(!c.is_expired(day_after));
        assert!(c.is_expired(much_later));
    }
}

#[test]
fn expiry_boundaries() {
    let mut c = parse_line(&good("abc", "created")).expect("good").cookie;
    let expires = T0 + WEEK * 1_000_000_000;
    assert_eq!(c.expires_ns(), expires);
    assert!(!c.is_expired(expires - 1));
    assert!(c.is_expired(expires));
    c.max_age = 0;
    assert!(c.is_expired(T0));
    c.max_age = u64::MAX;
    assert_eq!(c.expires_ns(), u64::MAX);
    assert!(!c.is_expired(u64::MAX - 1));
    assert!(c.is_expired(u64::MAX));
}

#[test]
fn broken_lines_are_reported_and_good_lines_kept() {
    // (line number, content): the numbers document the test and are checked.
    let numbered: Vec<(u64, Vec<u8>)> = vec![
        (1, good("good1", "created").into_bytes()),
        (2, b"{not json".to_vec()),
        (3, good("good2", "created").into_bytes()),
        (4, br#"{"status": "created", "created": "2026-11-22T02:49:50.212Z", "max_age": 1}"#.to_vec()),
        (5, br#"{"cbtid": "x", "created": "yesterday", "max_age": 1}"#.to_vec()),
        (6, b"\xff\xfe{\"cbtid\": \"x\"}".to_vec()),
        (7, good("good3", "modified").into_bytes()),
        (8, br#"{"cbtid": 42, "created": "2026-11-22T02:49:50.212Z", "max_age": 1}"#.to_vec()),
        (9, br#"{"cbtid": "x", "created": "2026-11-22T02:49:50.212Z", "max_age": "1"}"#.to_vec()),
        (10, br#"{"cbtid": "x", "created": "2026-11-22T02:49:50.212Z", "max_age": 1, "authid": 7}"#.to_vec()),
        (11, b"[1, 2, 3]".to_vec()),
        (12, br#"{"cbtid": "x", "status": "gone", "created": "2026-11-22T02:49:50.212Z", "max_age": 1}"#.to_vec()),
        (13, br#"{"cbtid": "a b", "created": "2026-11-22T02:49:50.212Z", "max_age": 1}"#.to_vec()),
        (14, br#"{"cbtid": "x", "created": "2026-11-22T02:49:50.212Z", "max_age": -1}"#.to_vec()),
        (15, good("good4", "").into_bytes()),
        (16, b"{\"cbtid\": \"caf\xc3\xa9\xc3\"}".to_vec()),
        (17, good("good5", "created").into_bytes()),
    ];
    assert!(numbered.iter().zip(1..).all(|((n, _), i)| *n == i));
    let lines: Vec<Vec<u8>> = numbered.into_iter().map(|(_, l)| l).collect();
    let file = lines.join(&b'\n');
    let r = replay(file.as_slice()).expect("replay");
    assert_eq!(r.lines, 17);
    assert_eq!(values(&r), ["good1", "good2", "good3", "good5"]);
    assert_eq!(
        bad_numbers(&r),
        [2, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15, 16]
    );
    let by_line: HashMap<u64, &LegacyLineError> =
        r.bad_lines.iter().map(|(n, e)| (*n, e)).collect();
    assert!(matches!(by_line[&2], LegacyLineError::NotJson { .. }));
    assert!(matches!(
        by_line[&4],
        LegacyLineError::MissingField { field: "cbtid", .. }
    ));
    assert!(matches!(
        by_line[&5],
        LegacyLineError::BadTimestamp {
            field: "created",
            ..
        }
    ));
    assert_eq!(by_line[&6], &LegacyLineError::NotUtf8 { valid_up_to: 0 });
    assert!(matches!(
        by_line[&8],
        LegacyLineError::InvalidField { field: "cbtid", .. }
    ));
    assert!(matches!(
        by_line[&9],
        LegacyLineError::InvalidField {
            field: "max_age",
            ..
        }
    ));
    assert!(matches!(
        by_line[&10],
        LegacyLineError::InvalidField {
            field: "authid",
            ..
        }
    ));
    assert_eq!(
        by_line[&11],
        &LegacyLineError::NotAnObject { found: "an array" }
    );
    assert!(matches!(
        by_line[&12],
        LegacyLineError::InvalidField {
            field: "status",
            ..
        }
    ));
    assert_eq!(
        by_line[&13],
        &LegacyLineError::CbtidBadChar { ch: ' ', at: 1 }
    );
    assert!(matches!(
        by_line[&14],
        LegacyLineError::InvalidField {
            field: "max_age",
            ..
        }
    ));
    // `"status": ""` is not a known status.
    assert!(matches!(
        by_line[&15],
        LegacyLineError::InvalidField {
            field: "status",
            ..
        }
    ));
    assert_eq!(by_line[&16], &LegacyLineError::NotUtf8 { valid_up_to: 16 });
}

#[test]
fn error_messages_say_what_is_wrong() {
    let e = err(r#"{"cbtid": "x", "created": "yesterday", "max_age": 1}"#);
    let msg = e.to_string();
    assert!(
        msg.starts_with(
            "field \"created\": expected a UTC timestamp like 2026-11-22T02:49:50.212Z, got \"yesterday\" ("
        ),
        "{msg}"
    );
    assert!(std::error::Error::source(&e).is_some());

    let cases: &[(&str, &str)] = &[
        ("", "line is not valid JSON ("),
        ("{\"cbtid\": ", "line is not valid JSON ("),
        ("\"str\"", "line is a string, expected a JSON object"),
        ("null", "line is null, expected a JSON object"),
        (
            r#"{"created": "2026-11-22T02:49:50.212Z", "max_age": 1}"#,
            "field \"cbtid\": missing, expected the cookie value as a string",
        ),
        (
            r#"{"cbtid": null, "created": "2026-11-22T02:49:50.212Z", "max_age": 1}"#,
            "field \"cbtid\": expected the cookie value as a string, got null",
        ),
        (
            r#"{"cbtid": "", "created": "2026-11-22T02:49:50.212Z", "max_age": 1}"#,
            "field \"cbtid\": expected a non-empty cookie value, got \"\"",
        ),
        (
            r#"{"cbtid": "a;b", "created": "2026-11-22T02:49:50.212Z", "max_age": 1}"#,
            "field \"cbtid\": character ';' at byte 1 is not allowed in a cookie value",
        ),
        (
            r#"{"cbtid": "x", "max_age": 1}"#,
            "field \"created\": missing, expected a UTC timestamp like 2026-11-22T02:49:50.212Z",
        ),
        (
            r#"{"cbtid": "x", "created": 1795315790, "max_age": 1}"#,
            "field \"created\": expected a UTC timestamp like 2026-11-22T02:49:50.212Z, got 1795315790",
        ),
        (
            r#"{"cbtid": "x", "created": null, "max_age": 1}"#,
            "field \"created\": expected a UTC timestamp like 2026-11-22T02:49:50.212Z, got null",
        ),
        (
            r#"{"cbtid": "x", "created": "2026-11-22T02:49:50.212Z"}"#,
            "field \"max_age\": missing, expected a whole number of seconds (0 or more)",
        ),
        (
            r#"{"cbtid": "x", "created": "2026-11-22T02:49:50.212Z", "max_age": 1.5}"#,
            "field \"max_age\": expected a whole number of seconds (0 or more), got 1.5",
        ),
        (
            r#"{"cbtid": "x", "created": "2026-11-22T02:49:50.212Z", "max_age": -5}"#,
            "field \"max_age\": expected a whole number of seconds (0 or more), got -5",
        ),
        (
            r#"{"cbtid": "x", "status": "gone", "created": "2026-11-22T02:49:50.212Z", "max_age": 1}"#,
            "field \"status\": expected \"created\", \"modified\" or \"deleted\", got \"gone\"",
        ),
        (
            r#"{"cbtid": "x", "status": 3, "created": "2026-11-22T02:49:50.212Z", "max_age": 1}"#,
            "field \"status\": expected \"created\", \"modified\" or \"deleted\", got 3",
        ),
        (
            r#"{"cbtid": "x", "created": "2026-11-22T02:49:50.212Z", "max_age": 1, "authrole": ["a"]}"#,
            "field \"authrole\": expected a string or null, got an array",
        ),
        (
            r#"{"cbtid": "x", "created": "2026-11-22T02:49:50.212Z", "max_age": 1, "authrealm": true}"#,
            "field \"authrealm\": expected a string or null, got true",
        ),
        (
            r#"{"cbtid": "x", "created": "2026-11-22T02:49:50.212Z", "max_age": 1, "authmethod": {}}"#,
            "field \"authmethod\": expected a string or null, got an object",
        ),
        (
            r#"{"cbtid": "x", "created": "2026-11-22T02:49:50.212Z", "max_age": 1, "modified": "soon"}"#,
            "field \"modified\": expected a UTC timestamp like 2026-11-22T02:49:50.212Z, got \"soon\" (",
        ),
        (
            r#"{"cbtid": "x", "created": "2026-11-22T02:49:50.212Z", "max_age": 1, "deleted": 0}"#,
            "field \"deleted\": expected a UTC timestamp like 2026-11-22T02:49:50.212Z, or null, got 0",
        ),
    ];
    for (line, start) in cases {
        let msg = err(line).to_string();
        assert!(
            msg.starts_with(start),
            "{line}\n  gave: {msg}\n  want: {start}…"
        );
    }
    assert_eq!(
        LegacyLineError::NotUtf8 { valid_up_to: 3 }.to_string(),
        "line is not valid UTF-8: invalid byte sequence at byte 3"
    );
    assert_eq!(
        LegacyLineError::CbtidTooLong { len: 510 }.to_string(),
        "field \"cbtid\": the cookie value is 510 bytes long, at most 509 are allowed"
    );
    // Long values are shortened in messages.
    let long = "z".repeat(10_000);
    let msg = err(&format!(
        r#"{{"cbtid": "x", "created": "2026-11-22T02:49:50.212Z", "max_age": 1, "authid": 1, "status": "{long}"}}"#
    ))
    .to_string();
    assert!(msg.len() < 200, "{msg}");
}

#[test]
fn cbtid_must_be_cookie_octets() {
    let line = |cbtid: &str| {
        json!({"cbtid": cbtid, "created": "2026-11-22T02:49:50.212Z", "max_age": 1}).to_string()
    };
    for ok in [
        "VBphpKSNoAUxJQ1er3NlJ65U",
        "a+b/c=",
        "!#$%&'()*+-./0123456789:<=>?@AZ[]^_`az{|}~",
    ] {
        assert_eq!(parse_line(&line(ok)).expect(ok).cookie.value, ok);
    }
    for (bad, ch, at) in [
        ("a b", ' ', 1),
        ("a\"b", '"', 1),
        ("ab,", ',', 2),
        (";", ';', 0),
        ("a\\b", '\\', 1),
        ("a\tb", '\t', 1),
        ("a\u{7f}", '\u{7f}', 1),
        ("abcé", 'é', 3),
        ("\u{0}", '\u{0}', 0),
    ] {
        assert_eq!(
            err(&line(bad)),
            LegacyLineError::CbtidBadChar { ch, at },
            "{bad:?}"
        );
    }
    let max = "a".repeat(MAX_CBTID_LEN);
    assert_eq!(
        parse_line(&line(&max)).expect("509 bytes").cookie.value,
        max
    );
    let over = "a".repeat(MAX_CBTID_LEN + 1);
    assert_eq!(
        err(&line(&over)),
        LegacyLineError::CbtidTooLong {
            len: MAX_CBTID_LEN + 1
        }
    );
    assert_eq!(err(&line("")), LegacyLineError::EmptyCbtid);
}

#[test]
fn parses_all_fields() {
    let l = parse_line(
        r#"{"cbtid": "VBphpKSNoAUxJQ1er3NlJ65U", "status": "modified", "created": "2026-11-22T02:49:50.212Z", "modified": "2026-11-22T02:49:50.221Z", "deleted": null, "max_age": 604800, "authid": "user0", "authrole": "frontend", "authmethod": "wampcra", "authrealm": "realm1", "authextra": {"i": 0, "tags": ["x"]}, "unknown": [1]}"#,
    )
    .expect("line");
    assert_eq!(
        l,
        LegacyLine {
            status: LegacyStatus::Modified,
            cookie: LegacyCookie {
                value: "VBphpKSNoAUxJQ1er3NlJ65U".into(),
                created_ns: T0,
                max_age: WEEK,
                authid: Some("user0".into()),
                authrole: Some("frontend".into()),
                authmethod: Some("wampcra".into()),
                authrealm: Some("realm1".into()),
                authextra: Some(json!({"i": 0, "tags": ["x"]})),
                modified_ns: Some(T0 + 9_000_000),
            },
        }
    );
    // Statuses; purge_on_startup lines have none.
    let with_status = |s: Value| {
        let mut v = json!({"cbtid": "x", "created": "2026-11-22T02:49:50.212Z", "max_age": 1});
        if let Some(m) = v.as_object_mut() {
            m.insert("status".into(), s);
        }
        parse_line(&v.to_string()).map(|l| l.status)
    };
    assert_eq!(with_status(json!("created")), Ok(LegacyStatus::Created));
    assert_eq!(with_status(json!("deleted")), Ok(LegacyStatus::Deleted));
    assert_eq!(with_status(json!(null)), Ok(LegacyStatus::Unspecified));
    assert!(with_status(json!("Created")).is_err());
    let l = parse_line(r#"{"cbtid": "x", "created": "2026-11-22T02:49:50.212Z", "max_age": 0}"#)
        .expect("minimal line");
    assert_eq!(l.status, LegacyStatus::Unspecified);
    assert_eq!(l.cookie.max_age, 0);
    assert_eq!(l.cookie.modified_ns, None);
    // Offsets are converted; authextra may be any JSON.
    let l = parse_line(
        r#" {"cbtid": "x", "created": "2026-11-22T03:49:50.212+01:00", "max_age": 18446744073709551615, "authextra": "s"} "#,
    )
    .expect("line");
    assert_eq!(l.cookie.created_ns, T0);
    assert_eq!(l.cookie.max_age, u64::MAX);
    assert_eq!(l.cookie.authextra, Some(json!("s")));
    // max_age must be a JSON integer in 0..=u64::MAX.
    let max_age = |m: &str| {
        let line =
            format!(r#"{{"cbtid": "x", "created": "2026-11-22T02:49:50.212Z", "max_age": {m}}}"#);
        parse_line(&line).map(|l| l.cookie.max_age)
    };
    assert_eq!(max_age("18446744073709551615"), Ok(u64::MAX));
    assert_eq!(max_age("0"), Ok(0));
    for bad in [
        "18446744073709551616",
        "1e3",
        "604800.0",
        "-1",
        "\"60\"",
        "null",
        "true",
        "[60]",
    ] {
        assert!(
            matches!(
                max_age(bad),
                Err(LegacyLineError::InvalidField {
                    field: "max_age",
                    ..
                })
            ),
            "{bad}"
        );
    }
    // Before 1970.
    assert!(matches!(
        err(r#"{"cbtid": "x", "created": "1969-12-31T23:59:59Z", "max_age": 1}"#),
        LegacyLineError::BadTimestamp {
            field: "created",
            ..
        }
    ));
}

#[test]
fn blank_lines_are_ignored() {
    let file = format!(
        "\n{}\n   \n\t\r\n\r\n{}\n\n",
        good("a", "created"),
        good("b", "created")
    );
    let r = replay(file.as_bytes()).expect("replay");
    assert_eq!(values(&r), ["a", "b"]);
    assert_eq!(r.lines, 7);
    assert_eq!(r.blank_lines, 5);
    assert!(r.bad_lines.is_empty());

    let r = replay(&b""[..]).expect("replay");
    assert_eq!(r, Replay::default());
}

#[test]
fn crlf_line_endings() {
    let lf = fixture_bytes();
    let crlf: Vec<u8> = lf
        .iter()
        .flat_map(|&b| {
            if b == b'\n' {
                vec![b'\r', b'\n']
            } else {
                vec![b]
            }
        })
        .collect();
    let a = replay(lf.as_slice()).expect("lf");
    let b = replay(crlf.as_slice()).expect("crlf");
    assert_eq!(a, b);
    assert_eq!(b.cookies.len(), 32);
    // A stray \r inside a line is whitespace to JSON; a lone \r line is blank.
    let file = format!("{}\r\n\r\n{}\r", good("a", "created"), good("b", "created"));
    let r = replay(file.as_bytes()).expect("replay");
    assert_eq!(values(&r), ["a", "b"]);
    assert_eq!((r.lines, r.blank_lines), (3, 1));
}

#[test]
fn last_line_without_newline() {
    let mut bytes = fixture_bytes();
    assert_eq!(bytes.pop(), Some(b'\n'));
    let r = replay(bytes.as_slice()).expect("replay");
    assert_eq!(r, replay(fixture_bytes().as_slice()).expect("replay"));
    assert_eq!((r.lines, r.cookies.len(), r.deleted), (78, 32, 8));

    let one = good("only", "created");
    let r = replay(one.as_bytes()).expect("replay");
    assert_eq!(values(&r), ["only"]);
    assert_eq!(r.lines, 1);

    // A truncated last line (e.g. a crash during the append) is a bad line.
    let file = format!("{}\n{{\"cbtid\": \"trunc", good("a", "created"));
    let r = replay(file.as_bytes()).expect("replay");
    assert_eq!(values(&r), ["a"]);
    assert_eq!(bad_numbers(&r), [2]);
}

#[test]
fn replay_semantics() {
    let file = [
        good("a", "created"),
        good("b", "created"),
        good("ghost", "deleted"),
        good("a", "deleted"),
        good("c", ""),
        good("a", "created"),
        good("b", "deleted"),
        good("b", "deleted"),
    ]
    .join("\n")
    .replace(r#","status":"""#, "");
    let r = replay(file.as_bytes()).expect("replay");
    // "a" was deleted and created again: it is seen anew after "c".
    assert_eq!(values(&r), ["c", "a"]);
    assert_eq!(r.deleted, 2);
    assert!(r.bad_lines.is_empty(), "{:?}", r.bad_lines);

    // The last line wins, whatever its status says.
    let file = [
        good("a", "created"),
        good("a", "modified").replace("\"authid\":null", "\"authid\":\"u1\""),
        good("a", "created").replace("\"authid\":null", "\"authid\":\"u2\""),
    ]
    .join("\n");
    let r = replay(file.as_bytes()).expect("replay");
    assert_eq!(r.cookies.len(), 1);
    assert_eq!(r.cookies[0].authid.as_deref(), Some("u2"));
}

#[test]
fn long_lines_and_tiny_buffers() {
    let big_extra = "x".repeat(3 << 20);
    let long = json!({
        "cbtid": "big", "created": "2026-11-22T02:49:50.212Z", "max_age": 1,
        "authextra": {"blob": big_extra}
    })
    .to_string();
    let too_long_cbtid = json!({
        "cbtid": "c".repeat(600), "created": "2026-11-22T02:49:50.212Z", "max_age": 1
    })
    .to_string();
    let deep = format!(
        r#"{{"cbtid": "deep", "created": "2026-11-22T02:49:50.212Z", "max_age": 1, "authextra": {}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let long_len = long.len() as u64 + 1;
    let file = [long, too_long_cbtid, deep, good("small", "created")].join("\n");
    let r = replay(BufReader::with_capacity(7, file.as_bytes())).expect("replay");
    // Lines longer than MAX_LINE are bad lines, never read into memory whole.
    assert_eq!(values(&r), ["small"]);
    assert_eq!(bad_numbers(&r), [1, 2, 3]);
    assert_eq!(r.bad_lines[0].1, LegacyLineError::TooLong { len: long_len });
    assert_eq!(r.bad_lines[1].1, LegacyLineError::CbtidTooLong { len: 600 });
    assert!(matches!(r.bad_lines[2].1, LegacyLineError::NotJson { .. }));

    let fixture = replay(BufReader::with_capacity(1, fixture_bytes().as_slice()));
    assert_eq!(fixture.expect("replay").cookies.len(), 32);
}

#[test]
fn io_errors_bubble_up() {
    struct Failing {
        data: Vec<u8>,
        pos: usize,
    }
    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let rest = self.data.get(self.pos..).unwrap_or_default();
            if rest.is_empty() {
                return Err(io::Error::other("disk on fire"));
            }
            let n = rest.len().min(buf.len()).min(5);
            buf[..n].copy_from_slice(&rest[..n]);
            self.pos += n;
            Ok(n)
        }
    }
    let reader = BufReader::new(Failing {
        data: format!("{}\n", good("a", "created")).into_bytes(),
        pos: 0,
    });
    let e = replay(reader).expect_err("I/O error");
    assert_eq!(e.to_string(), "disk on fire");
}

fn xorshift(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x
}

#[test]
fn random_bytes_never_panic() {
    let fixture = fixture_bytes();
    let samples: Vec<&[u8]> = fixture.split(|&b| b == b'\n').collect();
    const PIECES: &[&[u8]] = &[
        b"{",
        b"}",
        b"[",
        b"]",
        b"\"",
        b":",
        b",",
        b"\\",
        b"\\u",
        b"\xff",
        b"\xc3",
        b"\r",
        b"\n",
        b" ",
        b"null",
        b"-1",
        b"1e999",
        b"\"cbtid\"",
        b"\"created\"",
        b"\"max_age\"",
        b"\"status\"",
        b"\"deleted\"",
        b"\"authextra\"",
        b"\"2026-11-22T02:49:50.212Z\"",
        b"604800",
        b"\xe2\x80",
        b"\x00",
    ];
    let mut state = 0x1234_5678_9ABC_DEF1;
    for round in 0..3000 {
        let mut file = Vec::new();
        let line_count = xorshift(&mut state) % 8;
        for _ in 0..line_count {
            match xorshift(&mut state) % 4 {
                // Random bytes.
                0 => {
                    let len = xorshift(&mut state) % 120;
                    file.extend((0..len).map(|_| xorshift(&mut state) as u8));
                }
                // JSON-ish fragments.
                1 => {
                    for _ in 0..xorshift(&mut state) % 30 {
                        let i = (xorshift(&mut state) as usize) % PIECES.len();
                        file.extend_from_slice(PIECES.get(i).copied().unwrap_or_default());
                    }
                }
                // A fixture line with a few bytes changed, cut short or not.
                _ => {
                    let i = (xorshift(&mut state) as usize) % samples.len();
                    let mut line = samples.get(i).copied().unwrap_or_default().to_vec();
                    for _ in 0..xorshift(&mut state) % 4 {
                        if !line.is_empty() {
                            let at = (xorshift(&mut state) as usize) % line.len();
                            if let Some(b) = line.get_mut(at) {
                                *b = xorshift(&mut state) as u8;
                            }
                        }
                    }
                    if xorshift(&mut state).is_multiple_of(5) {
                        let keep = (xorshift(&mut state) as usize) % (line.len() + 1);
                        line.truncate(keep);
                    }
                    file.extend_from_slice(&line);
                }
            }
            file.push(b'\n');
        }
        let r = replay(file.as_slice()).expect("in-memory reads never fail");
        let expected_lines = file.iter().filter(|&&b| b == b'\n').count() as u64;
        assert_eq!(r.lines, expected_lines, "round {round}");
        assert!(r.blank_lines + r.bad_lines.len() as u64 <= r.lines);
        assert!(r.bad_lines.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(
            r.bad_lines
                .iter()
                .all(|(n, e)| *n >= 1 && *n <= r.lines && !e.to_string().is_empty())
        );
        for c in &r.cookies {
            assert!(!c.value.is_empty() && c.value.len() <= MAX_CBTID_LEN);
            let _ = (c.expires_ns(), c.is_expired(u64::MAX));
        }
        for line in file.split(|&b| b == b'\n') {
            let _ = parse_line(&String::from_utf8_lossy(line));
        }
    }
}
