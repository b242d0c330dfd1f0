//! Integers too large for JSON numbers as this crate (and cfxdb's JSON readers) hold them.
//!
//! serde_json (without `arbitrary_precision`) reads an integer beyond the 64-bit range as
//! an `f64`, so `123456789012345678901234567890` in an authextra would be stored, and come
//! back, as `1.2345678901234568e29`. Rather than change the value silently, the text readers
//! (`restore`, `import`) refuse a record holding one, naming the field.

/// The first integer literal in the JSON `text` that fits neither `i64` nor `u64`: its path
/// (`authextra.ids[2]`) and its digits. `None` when there is none (cheaply, when no run of 20
/// or more digits, nor a `-` and 19, occurs). `text` is expected to be valid JSON.
pub(crate) fn big_integer(text: &str) -> Option<(String, String)> {
    let bytes = text.as_bytes();
    if !may_hold_big_integer(bytes) {
        return None;
    }
    enum Frame {
        Object(Option<String>),
        Array(usize),
    }
    let mut stack: Vec<Frame> = Vec::new();
    let mut expect_key = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                let start = i + 1;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                let raw = text.get(start..i.min(bytes.len())).unwrap_or_default();
                if expect_key {
                    if let Some(Frame::Object(key)) = stack.last_mut() {
                        *key = Some(
                            serde_json::from_str::<String>(&format!("\"{raw}\""))
                                .unwrap_or_else(|_| raw.to_string()),
                        );
                    }
                    expect_key = false;
                }
            }
            b'{' => {
                stack.push(Frame::Object(None));
                expect_key = true;
            }
            b'[' => stack.push(Frame::Array(0)),
            b'}' | b']' => {
                stack.pop();
            }
            b',' => match stack.last_mut() {
                Some(Frame::Object(_)) => expect_key = true,
                Some(Frame::Array(n)) => *n += 1,
                None => {}
            },
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < bytes.len()
                    && matches!(bytes[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                let literal = &text[start..i];
                if !literal.contains(['.', 'e', 'E'])
                    && literal.parse::<i64>().is_err()
                    && literal.parse::<u64>().is_err()
                {
                    let mut path = String::new();
                    for frame in &stack {
                        match frame {
                            Frame::Object(Some(key)) => {
                                if !path.is_empty() {
                                    path.push('.');
                                }
                                path.push_str(key);
                            }
                            Frame::Object(None) => {}
                            Frame::Array(n) => path.push_str(&format!("[{n}]")),
                        }
                    }
                    return Some((path, literal.to_string()));
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Whether `text` has a run of 20 or more digits, or of 19 after a `-`: a JSON integer (no
/// leading zeros) that fits neither `i64` nor `u64` has one (`u64::MAX` has 20 digits,
/// `i64::MIN` 19), and nanosecond timestamps (19 digits) do not, so that the records of a
/// restore are not walked again for nothing.
fn may_hold_big_integer(bytes: &[u8]) -> bool {
    let mut run = 0;
    let mut negative = false;
    let mut after = b' ';
    for &b in bytes {
        if b.is_ascii_digit() {
            if run == 0 {
                negative = after == b'-';
            }
            run += 1;
            if run >= 20 || (run >= 19 && negative) {
                return true;
            }
        } else {
            run = 0;
        }
        after = b;
    }
    false
}

/// Whether `value` holds a number that a big integer literal may have become: serde_json
/// reads an integer beyond the 64-bit range as an `f64`, whose magnitude is then at least
/// 2^63 (below `i64::MIN`, or above `u64::MAX`). A record whose JSON values hold none needs
/// no walk of its text by [`big_integer`]; one that holds such a float (a big integer, or a
/// literal like `1e300`) gets the walk, which tells them apart.
pub(crate) fn may_hold_big_number(value: &serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::Number(n) => n.is_f64() && n.as_f64().is_some_and(may_be_big_integer),
        Value::Array(items) => items.iter().any(may_hold_big_number),
        Value::Object(map) => map.values().any(may_hold_big_number),
        Value::Null | Value::Bool(_) | Value::String(_) => false,
    }
}

/// Whether serde_json may have read the float `f` from an integer literal beyond 64 bits: its
/// magnitude is at least 2^63 (~9.2e18).
pub(crate) fn may_be_big_integer(f: f64) -> bool {
    f.abs() >= 9.2e18
}

/// The problem with the big integer `literal` at `path`, for error messages.
pub(crate) fn problem(path: &str, literal: &str) -> String {
    let float = literal
        .parse::<f64>()
        .map(|f| f.to_string())
        .unwrap_or_default();
    format!(
        "field {path}: the integer {literal} does not fit in 64 bits, and would be stored (and \
         come back) as the float {float}; store it as a string"
    )
}

#[cfg(test)]
mod tests {
    use super::{big_integer, may_hold_big_number};

    #[test]
    fn finds_the_path_of_the_first_big_integer() {
        let text = r#"{"oid":"x","max_age":604800,"authextra":{"ok":18446744073709551615,
            "neg":-9223372036854775808,"f":1.5e300,"s":"123456789012345678901234567890",
            "list":[1,{"a\"b":[0,-123456789012345678901234567890]}]}}"#;
        assert_eq!(
            big_integer(text),
            Some((
                "authextra.list[1].a\"b[1]".to_string(),
                "-123456789012345678901234567890".to_string()
            ))
        );
        assert_eq!(big_integer(r#"{"n":18446744073709551616}"#).unwrap().0, "n");
        assert_eq!(
            big_integer(r#"{"n":18446744073709551615, "m": 1e30}"#),
            None
        );
        // 19 digits: a timestamp in ns fits; a negative one may not.
        assert_eq!(
            big_integer(r#"{"created":1767225600000000000,"n":-9223372036854775808}"#),
            None
        );
        assert_eq!(
            big_integer(r#"{"created":1767225600000000000,"a":{"n":-9223372036854775809}}"#),
            Some(("a.n".to_string(), "-9223372036854775809".to_string()))
        );
        assert_eq!(
            big_integer(r#"{"n":[99999999999999999999]}"#),
            Some(("n[0]".to_string(), "99999999999999999999".to_string()))
        );
    }

    #[test]
    fn only_values_holding_a_float_of_64_bit_magnitude_need_the_walk() {
        let parsed = |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap();
        for text in [
            r#"{"a":[1,{"b":18446744073709551616}]}"#,
            r#"{"n":-9223372036854775809}"#,
            r#"[1e300]"#,
        ] {
            assert!(may_hold_big_number(&parsed(text)), "{text}");
        }
        for text in [
            r#"{"a":[18446744073709551615,-9223372036854775808,1.5,"123456789012345678901"]}"#,
            r#"{"t":1767225600000000000,"f":9.1e18}"#,
            "null",
        ] {
            assert!(!may_hold_big_number(&parsed(text)), "{text}");
        }
    }
}
