//! A CBOR field (`authextra`, `authenticated_transport_info`) read straight from JSON into
//! its stored bytes, without a `serde_json::Value` in between: what a restore does with each
//! of its lines, where building, encoding and freeing those trees was a quarter of the
//! client's CPU (docs/benchmarks.md).
//!
//! The bytes are exactly those of `cbor.rs`'s [`cbor_field`](super::cbor::cbor_field) on the
//! `Value` serde_json would have parsed: definite lengths, map keys in byte order with the
//! last of a repeated key kept (a `Value` map is a `BTreeMap`), ciborium's shortest exact
//! float, and no bytes at all for `null` or `{}`. What this reader cannot decide alone it
//! refuses, so that the caller parses the line the reference way and reports it as before:
//! nesting deeper than [`MAX_CBOR_DEPTH`], and a float of 64-bit magnitude (it may be a big
//! integer that serde_json rounded: `bigint.rs` tells).

use ciborium_ll::{Encoder, Header};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::cbor::MAX_CBOR_DEPTH;

/// The stored bytes of one CBOR field, read from its JSON (see the module's docs).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct CborField(pub(crate) Vec<u8>);

impl<'de> serde::Deserialize<'de> for CborField {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut out = Vec::new();
        Node {
            out: &mut out,
            depth: 1,
        }
        .deserialize(deserializer)?;
        // What `is_empty_map` leaves unwritten: null and {}.
        if out == [0xF6] || out == [0xA0] {
            out.clear();
        }
        Ok(CborField(out))
    }
}

/// One JSON value at `depth` (the field itself is 1), appended to `out` as CBOR.
struct Node<'a> {
    out: &'a mut Vec<u8>,
    depth: usize,
}

/// Appends `header` to `out` (writing to a `Vec` cannot fail).
fn push(out: &mut Vec<u8>, header: Header) {
    let _ = Encoder::from(out).push(header);
}

/// Puts `header` in front of the items written to `out` from `start` on.
fn insert(out: &mut Vec<u8>, start: usize, header: Header) {
    let mut head = Vec::with_capacity(9);
    push(&mut head, header);
    out.splice(start..start, head);
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        if self.depth > MAX_CBOR_DEPTH {
            return Err(de::Error::custom("nested too deeply"));
        }
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        push(
            self.out,
            Header::Simple(if v {
                ciborium_ll::simple::TRUE
            } else {
                ciborium_ll::simple::FALSE
            }),
        );
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        push(
            self.out,
            if v < 0 {
                Header::Negative(v as u64 ^ !0)
            } else {
                Header::Positive(v as u64)
            },
        );
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        push(self.out, Header::Positive(v));
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        // Whether it is a big integer is the reference path's answer (`bigint.rs`).
        if super::bigint::may_be_big_integer(v) {
            return Err(E::custom("a float of 64-bit magnitude"));
        }
        push(self.out, Header::Float(v));
        Ok(())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        push(self.out, Header::Text(Some(v.len())));
        self.out.extend_from_slice(v.as_bytes());
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        push(self.out, Header::Simple(ciborium_ll::simple::NULL));
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let start = self.out.len();
        let mut items = 0;
        while seq
            .next_element_seed(Node {
                out: &mut *self.out,
                depth: self.depth + 1,
            })?
            .is_some()
        {
            items += 1;
        }
        insert(self.out, start, Header::Array(Some(items)));
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let start = self.out.len();
        // Each entry: where its key's text is, and where the entry starts.
        let mut entries: Vec<(std::ops::Range<usize>, usize)> = Vec::new();
        let mut sorted = true;
        loop {
            let entry = self.out.len();
            let Some(key) = map.next_key_seed(Key(&mut *self.out))? else {
                break;
            };
            if let Some((last, _)) = entries.last() {
                sorted &= self.out[last.clone()] < self.out[key.clone()];
            }
            entries.push((key, entry));
            map.next_value_seed(Node {
                out: &mut *self.out,
                depth: self.depth + 1,
            })?;
        }
        let mut count = entries.len();
        if !sorted {
            count = sort_entries(self.out, start, &entries);
        }
        insert(self.out, start, Header::Map(Some(count)));
        Ok(())
    }
}

/// Rewrites the map entries written to `out` from `start` on in key order, keeping the last
/// of a repeated key (as a `BTreeMap` built by inserting them would); how many are left.
fn sort_entries(
    out: &mut Vec<u8>,
    start: usize,
    entries: &[(std::ops::Range<usize>, usize)],
) -> usize {
    let end = out.len();
    let spans: Vec<(std::ops::Range<usize>, std::ops::Range<usize>)> = entries
        .iter()
        .enumerate()
        .map(|(i, (key, from))| {
            let to = entries.get(i + 1).map_or(end, |(_, next)| *next);
            (key.clone(), *from..to)
        })
        .collect();
    let mut order: Vec<usize> = (0..spans.len()).collect();
    // Stable: of equal keys, the one written last stays last.
    order.sort_by(|&a, &b| out[spans[a].0.clone()].cmp(&out[spans[b].0.clone()]));
    let mut kept: Vec<usize> = Vec::with_capacity(order.len());
    for i in order {
        match kept.last_mut() {
            Some(last) if out[spans[*last].0.clone()] == out[spans[i].0.clone()] => *last = i,
            _ => kept.push(i),
        }
    }
    let mut region = Vec::with_capacity(end - start);
    for &i in &kept {
        region.extend_from_slice(&out[spans[i].1.clone()]);
    }
    out.truncate(start);
    out.extend_from_slice(&region);
    kept.len()
}

/// A map key, appended to `out` as CBOR text; where its text is in `out`.
struct Key<'a>(&'a mut Vec<u8>);

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = std::ops::Range<usize>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = std::ops::Range<usize>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a map key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        push(self.0, Header::Text(Some(v.len())));
        let start = self.0.len();
        self.0.extend_from_slice(v.as_bytes());
        Ok(start..self.0.len())
    }
}

/// Checks the transcoder against the reference on any text: when it reads `json` as a
/// field, serde_json parses the same text into a `Value` whose [`cbor_field`] bytes are the
/// same (a refusal is always allowed: the caller then takes the reference path). Panics on
/// disagreement (the `restore_line` fuzz target's oracle).
///
/// [`cbor_field`]: super::cbor::cbor_field
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn agrees_with_cbor_field(json: &str) {
    let Ok(CborField(fast)) = serde_json::from_str::<CborField>(json) else {
        return;
    };
    let value: serde_json::Value = serde_json::from_str(json)
        .unwrap_or_else(|e| panic!("transcoded, but serde_json refuses it: {e}"));
    let reference = super::cbor::cbor_field("authextra", &value)
        .unwrap_or_else(|e| panic!("transcoded, but the reference refuses it: {e}"));
    assert_eq!(fast, reference, "the CBOR bytes of {json}");
}

#[cfg(test)]
mod tests {
    use super::CborField;
    use crate::record::cbor::cbor_field;

    /// The transcoded bytes of `json`, and the reference's (`None`: refused).
    fn both(json: &str) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
        let fast = serde_json::from_str::<CborField>(json).ok().map(|c| c.0);
        let value: serde_json::Value = serde_json::from_str(json).unwrap();
        let reference = cbor_field("authextra", &value).ok();
        (fast, reference)
    }

    #[test]
    fn gives_the_bytes_of_the_parsed_value() {
        for json in [
            "null",
            "{}",
            "[]",
            "[null]",
            r#"{"a":null}"#,
            r#"{"b":1,"a":2}"#,
            r#"{"a":1,"a":2,"b":{"z":[],"y":{}},"a":3}"#,
            r#"{"ä":1,"a":2,"Z":3,"aa":4,"":5}"#,
            r#"{"n":[0,-1,23,24,255,256,65535,65536,4294967296,-4294967297,18446744073709551615,-9223372036854775808]}"#,
            r#"{"f":[0.0,-0.0,1.5,0.1,65504.0,1e-7,3.4028234663852886e10,16777217.0,-9.1e18,5e-324,1.0]}"#,
            r#"{"s":"esc\"aped\\ \u00e9 \ud83d\ude00","t":true,"u":false}"#,
            r#"[1,"two",[3,{"four":4}]]"#,
            "5",
            "\"text\"",
            r#"{"groups":["staff","ops"],"level":0,"tenant":"acme","uid":0}"#,
        ] {
            let (fast, reference) = both(json);
            assert_eq!(fast, reference, "{json}");
            assert!(fast.is_some(), "{json}");
        }
        let long: String = format!(
            "{{{}}}",
            (0..300)
                .rev()
                .map(|i| format!("\"k{i:03}\":\"{}\"", "v".repeat(i)))
                .collect::<Vec<_>>()
                .join(",")
        );
        let (fast, reference) = both(&long);
        assert_eq!(fast, reference);
    }

    /// A random JSON text: maps with keys repeated and out of order, numbers of every width
    /// and sign, floats, escapes, nesting up to `depth`.
    fn random_json(rng: &mut rand::rngs::StdRng, depth: usize, out: &mut String) {
        use rand::RngExt;
        let keys = ["a", "b", "aa", "B", "", "é", "k\\\"q", "\\u00e9", "z", "0"];
        match rng.random_range(0..if depth == 0 { 6 } else { 8 }) {
            0 => out.push_str(["null", "true", "false"][rng.random_range(0..3)]),
            1 => out.push_str(&rng.random::<u64>().to_string()),
            2 => out.push_str(&(rng.random::<i64>() >> rng.random_range(0..63)).to_string()),
            3 => {
                let f = rng.random::<f64>() * 10f64.powi(rng.random_range(-30..18));
                out.push_str(&format!("{f:?}"));
            }
            4 => out.push_str(&format!("{}", rng.random_range(0..70_000u32))),
            5 => {
                let len = rng.random_range(0..30);
                out.push('"');
                for _ in 0..len {
                    out.push_str(
                        ["x", "\\n", "\\\"", "ü", "\\ud83d\\ude00", "€"][rng.random_range(0..6)],
                    );
                }
                out.push('"');
            }
            6 => {
                out.push('[');
                for i in 0..rng.random_range(0..5) {
                    if i > 0 {
                        out.push(',');
                    }
                    random_json(rng, depth - 1, out);
                }
                out.push(']');
            }
            _ => {
                out.push('{');
                for i in 0..rng.random_range(0..8) {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&format!("\"{}\":", keys[rng.random_range(0..keys.len())]));
                    random_json(rng, depth - 1, out);
                }
                out.push('}');
            }
        }
    }

    #[test]
    fn gives_the_bytes_of_the_parsed_value_for_random_documents() {
        use rand::{RngExt, SeedableRng};
        let seed: u64 = rand::rng().random();
        eprintln!("transcode: seed {seed}");
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut transcoded = 0;
        for _ in 0..3_000 {
            let mut json = String::new();
            random_json(&mut rng, 5, &mut json);
            let (fast, reference) = both(&json);
            if let Some(fast) = fast {
                assert_eq!(Some(fast), reference, "seed {seed}: {json}");
                transcoded += 1;
            }
        }
        // Only floats of 64-bit magnitude go to the reference path; most documents have none.
        assert!(transcoded > 1_000, "seed {seed}: {transcoded}");
    }

    #[test]
    fn leaves_to_the_reference_path_what_it_cannot_decide() {
        let nested =
            |levels: usize| format!("{}1{}", "[".repeat(levels - 1), "]".repeat(levels - 1));
        // 64 levels (the scalar is the 64th) go in; 65 do not, in both.
        assert_eq!(both(&nested(64)).0, both(&nested(64)).1);
        assert!(both(&nested(64)).0.is_some());
        assert_eq!(both(&nested(65)), (None, None));
        for big in [
            "18446744073709551616",
            "-9223372036854775809",
            "1e300",
            "9.2e18",
        ] {
            assert!(both(&format!("{{\"n\":{big}}}")).0.is_none(), "{big}");
        }
    }
}
