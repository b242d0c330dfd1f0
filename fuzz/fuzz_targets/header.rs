//! The `Cookie` request header parser: any bytes, never a panic, and only valid values out.
#![no_main]

use cookiestore::{CookieValue, cookie_values, parse_cookie_header};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let pairs = parse_cookie_header(data);
    for (name, value) in &pairs {
        assert!(!name.is_empty());
        assert!(!value.is_empty() && CookieValue::is_cookie_octets(value), "{value:?}");
    }
    // The fast path finds exactly the values the full parse lists under that name.
    for name in ["cbtid", "a", "x_y"] {
        let fast: Vec<&str> = cookie_values(data, name).collect();
        let full: Vec<&str> = pairs
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| *v)
            .collect();
        assert_eq!(fast, full, "name {name:?}");
    }
    // An invalid cookie name finds nothing.
    assert_eq!(cookie_values(data, "bad name").count(), 0);
    assert_eq!(cookie_values(data, "").count(), 0);
});
