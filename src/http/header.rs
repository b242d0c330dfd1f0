//! The request `Cookie` header of the router's WebSocket upgrade requests.
//!
//! * Parsing the request `Cookie` header ([RFC 6265 §4.2] grammar, read with
//!   the tolerance of [§5.4] and of browsers): [`cookie_values`] finds the
//!   values of one cookie without allocating; [`parse_cookie_header`] lists
//!   every valid pair.
//! * The response's `Set-Cookie` is `set_cookie.rs`'s.
//!
//! Parsing never fails and never panics: a pair that is not a valid cookie
//! (no `=`, a name that is not a token, a value that is empty or not made of
//! [cookie-octets](crate::CookieValue), bytes that are not UTF-8, …) is skipped
//! and the pairs after it are still read. Only `;` separates pairs; a `,` is
//! not a separator, so it makes the value it appears in invalid.
//!
//! [RFC 6265 §4.2]: https://www.rfc-editor.org/rfc/rfc6265#section-4.2
//! [§5.4]: https://www.rfc-editor.org/rfc/rfc6265#section-5.4

use std::iter::FusedIterator;

use crate::record::value::is_valid_bytes;

/// Returns the values of every cookie called `name` in a `Cookie` header, in
/// header order.
///
/// The name compares exactly (case-sensitively). Whitespace (SP / HTAB)
/// around names and values is ignored, and a value in double quotes is
/// returned without them. Only valid cookie values are returned (1 to 509 cookie-octets: see
/// [`CookieValue`](crate::CookieValue)); other pairs are skipped. Duplicates
/// are all returned, so the caller can try each one. If `name` is not a valid
/// cookie name (an RFC 2616 token), nothing is returned.
///
/// The iterator does not allocate and runs in time linear in the header
/// length.
///
/// ```
/// use cookiestore::cookie_values;
///
/// let header = b"lang=en; cbtid=\"abc123\"; cbtid=def456; cbtid=bad value";
/// let values: Vec<&str> = cookie_values(header, "cbtid").collect();
/// assert_eq!(values, ["abc123", "def456"]);
/// ```
pub fn cookie_values<'a>(header: &'a [u8], name: &'a str) -> CookieValues<'a> {
    let header: &[u8] = if is_token(name.as_bytes()) {
        header
    } else {
        &[]
    };
    CookieValues {
        pairs: Pairs { rest: header },
        name: name.as_bytes(),
    }
}

/// Iterator over the values of one cookie in a `Cookie` header, returned by
/// [`cookie_values`].
#[derive(Debug, Clone)]
#[must_use = "iterators are lazy and do nothing unless consumed"]
pub struct CookieValues<'a> {
    pairs: Pairs<'a>,
    name: &'a [u8],
}

impl<'a> Iterator for CookieValues<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let name = self.name;
        self.pairs
            .by_ref()
            .filter(|&(n, _)| n == name)
            .find_map(|(_, v)| cookie_value(v))
    }
}

impl FusedIterator for CookieValues<'_> {}

/// Returns every valid `(name, value)` pair of a `Cookie` header, in header
/// order, duplicates included.
///
/// A pair is valid when its name is a non-empty RFC 2616 token and its value
/// passes the same rules as in [`cookie_values`]; other pairs are skipped.
/// Meant for diagnostics and tests: the hot path uses [`cookie_values`].
#[must_use]
pub fn parse_cookie_header(header: &[u8]) -> Vec<(&str, &str)> {
    Pairs { rest: header }
        .filter(|&(name, _)| is_token(name))
        .filter_map(|(name, value)| Some((std::str::from_utf8(name).ok()?, cookie_value(value)?)))
        .collect()
}

/// The `(name, value)` pairs of a `Cookie` header that contain `=`, with
/// surrounding SP / HTAB trimmed and the value's double quotes removed; not
/// yet validated.
#[derive(Debug, Clone)]
struct Pairs<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Pairs<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        while !self.rest.is_empty() {
            let pair = match self.rest.iter().position(|&b| b == b';') {
                Some(i) => {
                    let pair = &self.rest[..i];
                    self.rest = &self.rest[i + 1..];
                    pair
                }
                None => std::mem::take(&mut self.rest),
            };
            if let Some(eq) = pair.iter().position(|&b| b == b'=') {
                let name = trim(&pair[..eq]);
                let value = match trim(&pair[eq + 1..]) {
                    [b'"', inner @ .., b'"'] => inner,
                    value => value,
                };
                return Some((name, value));
            }
        }
        None
    }
}

impl FusedIterator for Pairs<'_> {}

/// `value` as a `&str` if it is a valid cookie value (the one rule: `record/value.rs`,
/// whose length cap keeps out what no store can hold).
fn cookie_value(value: &[u8]) -> Option<&str> {
    if !is_valid_bytes(value) {
        return None;
    }
    // Cookie-octets are ASCII, so this cannot fail.
    std::str::from_utf8(value).ok()
}

/// Strips leading and trailing SP / HTAB.
fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// RFC 2616 `token`: one or more CHARs that are neither CTLs nor separators.
fn is_token(s: &[u8]) -> bool {
    const SEPARATORS: &[u8] = b"()<>@,;:\\\"/[]?={}";
    !s.is_empty()
        && s.iter()
            .all(|&b| b.is_ascii_graphic() && !SEPARATORS.contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::value::is_cookie_octets;
    use std::fmt::Write as _;

    fn values<'a>(header: &'a [u8], name: &'a str) -> Vec<&'a str> {
        cookie_values(header, name).collect()
    }

    #[test]
    fn single_cookie() {
        assert_eq!(values(b"cbtid=abc", "cbtid"), ["abc"]);
    }

    #[test]
    fn several_cookies() {
        let h = b"lang=en; cbtid=abc; theme=dark";
        assert_eq!(values(h, "cbtid"), ["abc"]);
        assert_eq!(values(h, "lang"), ["en"]);
        assert_eq!(values(h, "theme"), ["dark"]);
        assert_eq!(
            parse_cookie_header(h),
            [("lang", "en"), ("cbtid", "abc"), ("theme", "dark")]
        );
    }

    #[test]
    fn spaces_and_tabs_trimmed() {
        let h = b" \ta=1 ;\tcbtid \t= \tabc\t ;  b = 2  ";
        assert_eq!(values(h, "cbtid"), ["abc"]);
        assert_eq!(
            parse_cookie_header(h),
            [("a", "1"), ("cbtid", "abc"), ("b", "2")]
        );
        assert_eq!(values(b"a=1;cbtid=abc", "cbtid"), ["abc"]);
    }

    #[test]
    fn quoted_values() {
        assert_eq!(values(b"cbtid=\"abc\"", "cbtid"), ["abc"]);
        assert_eq!(values(b"cbtid = \"abc\" ; x=1", "cbtid"), ["abc"]);
        // Quotes must be balanced, and are not part of the value.
        for h in [
            &b"cbtid=\"abc"[..],
            b"cbtid=abc\"",
            b"cbtid=\"",
            b"cbtid=\"\"",
            b"cbtid=\"a\"b\"",
            b"cbtid=\" abc\"",
        ] {
            assert!(
                values(h, "cbtid").is_empty(),
                "{:?}",
                String::from_utf8_lossy(h)
            );
        }
    }

    #[test]
    fn duplicates_all_yielded_in_order() {
        let h = b"cbtid=first; other=x; cbtid=second; cbtid=first";
        assert_eq!(values(h, "cbtid"), ["first", "second", "first"]);
    }

    #[test]
    fn other_names_ignored() {
        assert!(values(b"a=1; b=2", "cbtid").is_empty());
        // Case-sensitive.
        assert!(values(b"CBTID=abc; Cbtid=abc", "cbtid").is_empty());
    }

    #[test]
    fn name_prefix_or_suffix_not_matched() {
        let h = b"xcbtid=1; cbtidx=2; cbti=3; cbtid=4";
        assert_eq!(values(h, "cbtid"), ["4"]);
    }

    #[test]
    fn empty_value_skipped() {
        assert_eq!(values(b"cbtid=; cbtid=  ; cbtid=ok", "cbtid"), ["ok"]);
        assert!(values(b"cbtid=", "cbtid").is_empty());
    }

    #[test]
    fn pair_without_equals_skipped() {
        assert_eq!(values(b"cbtid; cbtid=ok; cbtid", "cbtid"), ["ok"]);
        assert!(values(b"cbtid", "cbtid").is_empty());
        assert_eq!(parse_cookie_header(b";;; a ; ;b=1;"), [("b", "1")]);
    }

    #[test]
    fn equals_inside_value_kept() {
        assert_eq!(values(b"cbtid=YWJj==; x=a=b", "cbtid"), ["YWJj=="]);
        assert_eq!(values(b"x=a=b", "x"), ["a=b"]);
    }

    #[test]
    fn comma_is_not_a_separator() {
        assert!(values(b"cbtid=abc, other=x", "cbtid").is_empty());
        assert!(values(b"a=1,cbtid=abc", "cbtid").is_empty());
        assert_eq!(values(b"a=1,b=2; cbtid=abc", "cbtid"), ["abc"]);
    }

    #[test]
    fn invalid_values_skipped() {
        for bad in [
            &b"a b"[..],
            b"a\\b",
            b"a,b",
            b"a\"b",
            b"a\x7fb",
            b"a\x01b",
            b"a\rb",
            b"\xc3\xa9",
        ] {
            let mut h = b"cbtid=".to_vec();
            h.extend_from_slice(bad);
            h.extend_from_slice(b"; cbtid=ok");
            assert_eq!(
                values(&h, "cbtid"),
                ["ok"],
                "{:?}",
                String::from_utf8_lossy(&h)
            );
        }
    }

    #[test]
    fn garbage_pairs_do_not_stop_parsing() {
        let h = b"=; ==; =x; \x01\x02=\x03; (a)=b; {=}; \"q\"=v; cbtid=ok";
        assert_eq!(values(h, "cbtid"), ["ok"]);
        assert_eq!(parse_cookie_header(h), [("cbtid", "ok")]);
    }

    #[test]
    fn nul_bytes() {
        assert!(values(b"cbtid=a\0b; \0=\0; cbtid=ok\0", "cbtid").is_empty());
        assert_eq!(values(b"cbtid=a\0b; \0=\0; cbtid=ok", "cbtid"), ["ok"]);
        assert!(values(b"\0\0\0", "cbtid").is_empty());
    }

    #[test]
    fn non_utf8_in_unrelated_pair() {
        let h = b"junk=\xff\xfe\xc3; \xc0\xaf=x; cbtid=ok";
        assert_eq!(values(h, "cbtid"), ["ok"]);
        assert_eq!(parse_cookie_header(h), [("cbtid", "ok")]);
    }

    #[test]
    fn non_utf8_in_wanted_value_skipped() {
        let h = b"cbtid=ab\xffcd; cbtid=\xe2\x82\xac; cbtid=ok";
        assert_eq!(values(h, "cbtid"), ["ok"]);
    }

    #[test]
    fn invalid_requested_name_matches_nothing() {
        assert!(values(b"=abc", "").is_empty());
        assert!(values(b"a b=abc", "a b").is_empty());
        assert!(values(b"a;b=abc", "a;b").is_empty());
    }

    #[test]
    fn huge_header() {
        let mut h = b"big=".to_vec();
        h.resize(100_000 - b"; cbtid=ok".len(), b'x');
        h.extend_from_slice(b"; cbtid=ok");
        assert_eq!(h.len(), 100_000);
        assert_eq!(values(&h, "cbtid"), ["ok"]);
        // Longer than any store can hold (509 bytes): not a cookie value.
        assert!(values(&h, "big").is_empty());

        // Adversarial shapes stay linear and find nothing.
        for fill in [b';', b'=', b' ', b'"', 0xff] {
            assert!(values(&vec![fill; 100_000], "cbtid").is_empty());
        }
    }

    #[test]
    fn values_longer_than_a_store_can_hold_are_skipped() {
        let longest = "a".repeat(509);
        let header = format!("cbtid={}; cbtid={longest}; cbtid=ok", "b".repeat(510));
        assert_eq!(values(header.as_bytes(), "cbtid"), [longest.as_str(), "ok"]);
        assert_eq!(parse_cookie_header(header.as_bytes()).len(), 2);
    }

    #[test]
    fn five_thousand_cookies() {
        let mut h: String = (0..5_000).fold(String::new(), |mut h, i| {
            write!(h, "c{i}=v{i}; ").unwrap();
            h
        });
        h.push_str("cbtid=last");
        assert_eq!(values(h.as_bytes(), "cbtid"), ["last"]);
        assert_eq!(values(h.as_bytes(), "c4999"), ["v4999"]);
        assert_eq!(parse_cookie_header(h.as_bytes()).len(), 5_001);
    }

    #[test]
    fn random_bytes_never_panic_and_yield_valid_values() {
        // Mostly bytes that shape the grammar, so that valid pairs do occur.
        const ALPHABET: &[u8] = b"aaabbb===;;;  \t\"";
        // xorshift64*, fixed seed: deterministic.
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next = move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_F491_4F6C_DD1D)
        };
        let mut header = Vec::new();
        let mut found = 0;
        for _ in 0..20_000 {
            header.clear();
            let len = next() % 64;
            for _ in 0..len {
                let [b0, b1, ..] = next().to_be_bytes();
                header.push(if b0 % 4 == 0 {
                    b1
                } else {
                    ALPHABET[usize::from(b1) % ALPHABET.len()]
                });
            }
            let pairs = parse_cookie_header(&header);
            for &(name, value) in &pairs {
                assert!(is_token(name.as_bytes()), "{name:?}");
                assert!(
                    !value.is_empty() && is_cookie_octets(value.as_bytes()),
                    "{value:?}"
                );
            }
            for name in ["a", "b", "ab", "ba"] {
                let got: Vec<&str> = cookie_values(&header, name).collect();
                assert!(
                    got.iter()
                        .all(|v| !v.is_empty() && is_cookie_octets(v.as_bytes()))
                );
                let expected: Vec<&str> = pairs
                    .iter()
                    .filter(|&&(n, _)| n == name)
                    .map(|&(_, v)| v)
                    .collect();
                assert_eq!(got, expected, "{:?}", String::from_utf8_lossy(&header));
                found += got.len();
            }
        }
        assert!(found > 1_000, "generator too weak: {found} values found");
    }
}
