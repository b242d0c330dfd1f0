//! The `cookies.dat` line parser and the file replay: any bytes, never a panic; an accepted
//! line holds a usable cookie value.
#![no_main]

use cookiestore::CookieValue;
use cookiestore::maintenance::{parse_line, replay};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        match parse_line(text) {
            Ok(line) => {
                let v = &line.cookie.value;
                assert!(!v.is_empty() && v.len() <= CookieValue::MAX_LEN && CookieValue::is_cookie_octets(v));
                let _ = line.cookie.expires_ns();
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
    let r = replay(data).expect("reading from a slice cannot fail");
    assert!(r.cookies.len() as u64 + r.bad_lines.len() as u64 + r.blank_lines <= r.lines);
    for (n, e) in &r.bad_lines {
        assert!(*n >= 1 && *n <= r.lines);
        let _ = e.to_string();
    }
    for c in &r.cookies {
        assert!(!c.value.is_empty() && CookieValue::is_cookie_octets(&c.value));
    }
});
