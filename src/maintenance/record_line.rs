//! A record line of an export, read for a restore: [`parse_record`] gives the record ready to
//! write ([`Encoded`]), or what is wrong with the line.
//!
//! A line is read once as [`RecordLine`]: [`Cookie`]'s fields, with `authextra` and
//! `authenticated_transport_info` read straight into their CBOR bytes
//! (`record/transcode.rs`), never into `serde_json::Value` trees. A line that this cannot
//! take as it is (any error, a float that may be a big integer, nesting too deep) is read
//! again as a [`Cookie`], the reference path: its record or its error is the one every line
//! got before, so the quick path changes no outcome, only the time.

use serde::Deserialize;
use uuid::Uuid;

use super::storable;
use crate::record::bigint;
use crate::record::cbor::empty_map;
use crate::record::codec::Encoded;
use crate::record::cookie::Cookie;
use crate::record::transcode::CborField;

/// A record line as [`Cookie`]'s serde form reads it (the same fields, defaults and unknown
/// fields refused), its two JSON values as CBOR bytes.
#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RecordLine {
    oid: Uuid,
    created: u64,
    max_age: u64,
    name: Option<String>,
    value: String,
    authenticated: u64,
    authenticated_on_node: Option<Uuid>,
    authenticated_on_worker: Option<String>,
    authenticated_transport_info: CborField,
    authenticated_session: u64,
    authenticated_joined_at: u64,
    authenticated_authmethod: Option<String>,
    authid: Option<String>,
    authrole: Option<String>,
    authmethod: Option<String>,
    authrealm: Option<String>,
    authextra: CborField,
}

/// The record of a line, or what is wrong with it (for the restore's list of bad lines).
pub(crate) fn parse_record(text: &str) -> Result<Encoded, String> {
    quick(text).map_or_else(|| reference(text), Ok)
}

/// The record of a line that needs no more than one reading; `None` for any other line.
fn quick(text: &str) -> Option<Encoded> {
    let line: RecordLine = serde_json::from_str(text).ok()?;
    let cookie = Cookie {
        oid: line.oid,
        created: line.created,
        max_age: line.max_age,
        name: line.name,
        value: line.value,
        authenticated: line.authenticated,
        authenticated_on_node: line.authenticated_on_node,
        authenticated_on_worker: line.authenticated_on_worker,
        // Not read by `encode_with`, which takes the bytes.
        authenticated_transport_info: empty_map(),
        authenticated_session: line.authenticated_session,
        authenticated_joined_at: line.authenticated_joined_at,
        authenticated_authmethod: line.authenticated_authmethod,
        authid: line.authid,
        authrole: line.authrole,
        authmethod: line.authmethod,
        authrealm: line.authrealm,
        authextra: empty_map(),
    };
    let bytes = cookie
        .encode_with(&line.authenticated_transport_info.0, &line.authextra.0)
        .ok()?;
    // Refused when the oid is nil or the value cannot be stored.
    Encoded::with_bytes(cookie, bytes).ok()
}

/// The record of a line read as a [`Cookie`], or what is wrong with it.
fn reference(text: &str) -> Result<Encoded, String> {
    let cookie: Cookie =
        serde_json::from_str(text).map_err(|e| format!("not a cookie record: {e}"))?;
    // Only a JSON value (authextra, the transport info) can hold an integer beyond 64 bits:
    // the other fields are integers that serde_json refuses when too large.
    if (bigint::may_hold_big_number(&cookie.authextra)
        || bigint::may_hold_big_number(&cookie.authenticated_transport_info))
        && let Some((path, literal)) = bigint::big_integer(text)
    {
        return Err(bigint::problem(&path, &literal));
    }
    if cookie.oid.is_nil() {
        return Err("the record has no oid (or the nil uuid)".into());
    }
    storable(&cookie.value)?;
    let bytes = cookie.encode().map_err(|e| e.to_string())?;
    Encoded::with_bytes(cookie, bytes).map_err(|e| e.to_string())
}

/// Checks the quick path against the reference on any text: a record the quick path gives
/// is the record the reference gives (a line it leaves is the reference's alone), neither
/// panics, and the transcoder it uses agrees with `cbor_field` on the whole text
/// (`transcode::agrees_with_cbor_field`). Panics on disagreement (the `restore_line` fuzz
/// target's oracle).
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn agrees_with_reference(text: &str) {
    let reference = reference(text);
    if let Some(quick) = quick(text) {
        assert_eq!(Ok(quick), reference, "the record of {text}");
    }
    crate::record::transcode::agrees_with_cbor_field(text);
}

#[cfg(test)]
mod tests {
    use super::{quick, reference};
    use crate::record::cookie::Cookie;

    /// Lines both paths read: the quick one must give the reference's record.
    #[test]
    fn the_quick_path_gives_the_reference_record() {
        let mut full = Cookie {
            oid: uuid::Uuid::from_u128(7),
            created: 1_767_225_600_000_000_000,
            max_age: 604_800,
            name: Some("cbtid".into()),
            value: "48yh56niHAbWn5PZIdb/Px/b".into(),
            authenticated: 1_767_225_602_500_000_000,
            authenticated_on_node: Some(uuid::Uuid::from_u128(9)),
            authenticated_on_worker: Some("worker001".into()),
            authenticated_transport_info: serde_json::json!({
                "peer": "tcp4:10.0.0.1:4000", "http_headers_received": {"host": "x", "a": [1, 2.5]}
            }),
            authenticated_session: 7_956_156_453_446_585,
            authenticated_joined_at: 1_767_225_602_400_000_000,
            authenticated_authmethod: Some("wampcra".into()),
            authid: Some("alice".into()),
            authrole: Some("user".into()),
            authmethod: Some("cookie".into()),
            authrealm: Some("realm1".into()),
            authextra: serde_json::json!({"groups": ["staff", "ops"], "level": -3, "z": null}),
        };
        let every_field = serde_json::to_string(&full).unwrap();
        full.authextra = serde_json::json!({});
        full.authenticated_transport_info = serde_json::Value::Null;
        let empty_maps = serde_json::to_string(&full).unwrap();
        for text in [
            every_field.as_str(),
            empty_maps.as_str(),
            r#"{"value":"abcdefghijklmnopqrstuvwx","oid":"32d14fee-d98d-4767-88b7-fd4ffc6f8584","authextra":{"b":1,"a":{"y":2,"x":3},"b":4}}"#,
            r#"{"oid":"32d14fee-d98d-4767-88b7-fd4ffc6f8584","value":"abcdefghijklmnopqrstuvwx","authextra":null,"authenticated_transport_info":{}}"#,
            r#"{"oid":"32d14fee-d98d-4767-88b7-fd4ffc6f8584","value":"abcdefghijklmnopqrstuvwx","authextra":[1,"x",true]}"#,
        ] {
            let quick = quick(text).expect(text);
            assert_eq!(Ok(quick), reference(text), "{text}");
        }
    }

    /// The fuzz target's seeds (`fuzz/corpus/restore_line`): both paths agree on each, and
    /// the seeds hold lines of both kinds, those the quick path reads and those it leaves.
    #[test]
    fn agrees_on_every_corpus_entry() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/restore_line");
        let (mut taken, mut left) = (0, 0);
        for entry in std::fs::read_dir(dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            super::agrees_with_reference(&text);
            if quick(&text).is_some() {
                taken += 1;
            } else {
                left += 1;
            }
        }
        assert!(
            taken >= 5 && left >= 5,
            "{taken} seeds read quickly, {left} left"
        );
    }

    /// Lines the quick path leaves to the reference, which says what is wrong.
    #[test]
    fn the_quick_path_leaves_every_refusal_to_the_reference() {
        let oid = "32d14fee-d98d-4767-88b7-fd4ffc6f8584";
        let deep = format!("{}1{}", "[".repeat(70), "]".repeat(70));
        for (text, problem) in [
            (
                format!(r#"{{"oid":"{oid}","value":"abcdefghijklmnopqrstuvwx","x":1}}"#),
                "unknown field `x`",
            ),
            (
                r#"{"value":"abcdefghijklmnopqrstuvwx"}"#.to_string(),
                "no oid",
            ),
            (format!(r#"{{"oid":"{oid}","value":"a b"}}"#), "' '"),
            (
                format!(
                    r#"{{"oid":"{oid}","value":"abcdefghijklmnopqrstuvwx","authextra":{{"n":[1,18446744073709551616]}}}}"#
                ),
                "authextra.n[1]: the integer 18446744073709551616 does not fit in 64 bits",
            ),
            (
                format!(
                    r#"{{"oid":"{oid}","value":"abcdefghijklmnopqrstuvwx","authextra":{deep}}}"#
                ),
                "nested deeper than 64 levels",
            ),
            (
                format!(r#"{{"oid":"{oid}","value":"abcdefghijklmnopqrstuvwx","created":-1}}"#),
                "not a cookie record",
            ),
        ] {
            assert!(quick(&text).is_none(), "{text}");
            let error = reference(&text).unwrap_err();
            assert!(error.contains(problem), "{text}: {error}");
        }
        // A float beyond 64 bits that is no integer is kept, by the reference path.
        let text = format!(
            r#"{{"oid":"{oid}","value":"abcdefghijklmnopqrstuvwx","authextra":{{"f":1e300}}}}"#
        );
        assert!(quick(&text).is_none());
        assert!(reference(&text).is_ok());
    }
}
