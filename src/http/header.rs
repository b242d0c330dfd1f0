//! HTTP cookie headers for the router's WebSocket upgrade requests.
//!
//! * Parsing the request `Cookie` header ([RFC 6265 §4.2] grammar, read with
//!   the tolerance of [§5.4] and of browsers): [`cookie_values`] finds the
//!   values of one cookie without allocating; [`parse_cookie_header`] lists
//!   every valid pair.
//! * Formatting the response `Set-Cookie` header value the way Crossbar.io
//!   does: [`set_cookie_value`], with optional [`CookieAttributes`] checked
//!   once by [`validate_attributes`].
//!
//! Parsing never fails and never panics: a pair that is not a valid cookie
//! (no `=`, a name that is not a token, a value that is empty or not made of
//! [cookie-octets](crate::CookieValue), bytes that are not UTF-8, …) is skipped
//! and the pairs after it are still read. Only `;` separates pairs; a `,` is
//! not a separator, so it makes the value it appears in invalid.
//!
//! [RFC 6265 §4.2]: https://www.rfc-editor.org/rfc/rfc6265#section-4.2
//! [§5.4]: https://www.rfc-editor.org/rfc/rfc6265#section-5.4

use std::fmt;
use std::iter::FusedIterator;

use crate::record::value::is_cookie_octet;

/// Returns the values of every cookie called `name` in a `Cookie` header, in
/// header order.
///
/// The name compares exactly (case-sensitively). Whitespace (SP / HTAB)
/// around names and values is ignored, and a value in double quotes is
/// returned without them. Only non-empty values made of cookie-octets are
/// returned (see [`CookieValue`](crate::CookieValue)); other pairs are skipped. Duplicates
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

/// Value of the `SameSite` cookie attribute (in configuration JSON: `"Strict"`, `"Lax"` or
/// `"None"`, as Crossbar.io writes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
pub enum SameSite {
    /// `SameSite=Strict`: sent only with same-site requests.
    Strict,
    /// `SameSite=Lax`: also sent with top-level cross-site navigations.
    Lax,
    /// `SameSite=None`: sent with all requests; browsers require `Secure`.
    None,
}

impl SameSite {
    /// The attribute value as written in `Set-Cookie`: `Strict`, `Lax` or
    /// `None`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Strict => "Strict",
            Self::Lax => "Lax",
            Self::None => "None",
        }
    }
}

impl fmt::Display for SameSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Optional `Set-Cookie` attributes; the default sets none of them, which is
/// what Crossbar.io sends.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct CookieAttributes {
    /// Adds `;HttpOnly`: the cookie is hidden from scripts.
    pub http_only: bool,
    /// Adds `;Secure`: the cookie is sent over HTTPS only.
    pub secure: bool,
    /// Adds `;SameSite=…`.
    pub same_site: Option<SameSite>,
    /// Adds `;Path=…`; an absolute path such as `/ws`.
    pub path: Option<String>,
    /// Adds `;Domain=…`; an ASCII host name such as `example.com`.
    pub domain: Option<String>,
}

impl CookieAttributes {
    /// Sets [`http_only`](Self::http_only).
    pub fn http_only(mut self, on: bool) -> Self {
        self.http_only = on;
        self
    }

    /// Sets [`secure`](Self::secure).
    pub fn secure(mut self, on: bool) -> Self {
        self.secure = on;
        self
    }

    /// Sets [`same_site`](Self::same_site).
    pub fn same_site(mut self, same_site: Option<SameSite>) -> Self {
        self.same_site = same_site;
        self
    }

    /// Sets [`path`](Self::path).
    pub fn path(mut self, path: Option<String>) -> Self {
        self.path = path;
        self
    }

    /// Sets [`domain`](Self::domain).
    pub fn domain(mut self, domain: Option<String>) -> Self {
        self.domain = domain;
        self
    }
}

/// Formats a `Set-Cookie` header value: `name=value;max-age=N`, exactly as
/// Crossbar.io sends it, followed by the attributes that are set, in this
/// order: `;Path=…`, `;Domain=…`, `;Secure`, `;HttpOnly`, `;SameSite=…`.
///
/// Nothing is checked here: `name` must be a token, `value` must satisfy
/// the rules of [`CookieValue`](crate::CookieValue), and `attrs` should have passed
/// [`validate_attributes`] (once, when the configuration is loaded).
#[must_use]
pub fn set_cookie_value(
    name: &str,
    value: &str,
    max_age_secs: u64,
    attrs: &CookieAttributes,
) -> String {
    use std::fmt::Write as _;
    // One allocation, sized for the usual attributes.
    let mut out = String::with_capacity(name.len() + value.len() + 64);
    out.push_str(name);
    out.push('=');
    out.push_str(value);
    out.push_str(";max-age=");
    let _ = write!(out, "{max_age_secs}");
    if let Some(path) = &attrs.path {
        out.push_str(";Path=");
        out.push_str(path);
    }
    if let Some(domain) = &attrs.domain {
        out.push_str(";Domain=");
        out.push_str(domain);
    }
    if attrs.secure {
        out.push_str(";Secure");
    }
    if attrs.http_only {
        out.push_str(";HttpOnly");
    }
    if let Some(same_site) = attrs.same_site {
        out.push_str(";SameSite=");
        out.push_str(same_site.as_str());
    }
    out
}

/// Checks that [`CookieAttributes`] make a `Set-Cookie` header that browsers
/// accept.
///
/// * `path` must start with `/` and contain only US-ASCII characters other
///   than controls and `;`;
/// * `domain` must be non-empty and contain only ASCII letters, digits, `-`
///   and `.` (internationalized names in their `xn--` form);
/// * `SameSite=None` requires `secure`.
///
/// # Errors
///
/// A message that says what is wrong and how to fix it.
pub fn validate_attributes(attrs: &CookieAttributes) -> Result<(), String> {
    if let Some(path) = &attrs.path {
        if !path.starts_with('/') {
            return Err(format!(
                "cookie path {path:?} does not start with '/': browsers ignore it; \
                 use an absolute path such as \"/ws\""
            ));
        }
        if let Some(c) = path
            .chars()
            .find(|&c| c == ';' || !c.is_ascii() || c.is_ascii_control())
        {
            let what = if c == ';' {
                "';'".to_owned()
            } else if c.is_ascii() {
                format!("the control character {c:?}")
            } else {
                format!("the non-ASCII character {c:?}")
            };
            return Err(format!(
                "cookie path {path:?} contains {what}: use a path without ';', \
                 control or non-ASCII characters (percent-encode them)"
            ));
        }
    }
    if let Some(domain) = &attrs.domain {
        if domain.is_empty() {
            return Err(
                "cookie domain is empty: leave the domain unset for a host-only cookie, \
                 or give a host name such as \"example.com\""
                    .to_owned(),
            );
        }
        if let Some(c) = domain
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || c == '-' || c == '.'))
        {
            return Err(format!(
                "cookie domain {domain:?} contains {c:?}: use only ASCII letters, digits, \
                 '-' and '.' (write internationalized names in their \"xn--\" form)"
            ));
        }
    }
    if attrs.same_site == Some(SameSite::None) && !attrs.secure {
        return Err(
            "cookie SameSite=None requires Secure, otherwise browsers reject \
             the cookie: set secure (and serve over HTTPS) or use SameSite=Lax or Strict"
                .to_owned(),
        );
    }
    Ok(())
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

/// `value` as a `&str` if it is a non-empty run of cookie-octets.
fn cookie_value(value: &[u8]) -> Option<&str> {
    if value.is_empty() || !value.iter().copied().all(is_cookie_octet) {
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
        assert_eq!(values(&h, "big").len(), 1);

        // Adversarial shapes stay linear and find nothing.
        for fill in [b';', b'=', b' ', b'"', 0xff] {
            assert!(values(&vec![fill; 100_000], "cbtid").is_empty());
        }
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

    #[test]
    fn set_cookie_plain() {
        let attrs = CookieAttributes::default();
        assert_eq!(
            set_cookie_value("cbtid", "abc", 604_800, &attrs),
            "cbtid=abc;max-age=604800"
        );
        assert_eq!(
            set_cookie_value("cbtid", "abc", 0, &attrs),
            "cbtid=abc;max-age=0"
        );
    }

    #[test]
    fn set_cookie_each_attribute() {
        let base = CookieAttributes::default();
        let cases = [
            (
                CookieAttributes {
                    path: Some("/ws".into()),
                    ..base.clone()
                },
                "c=v;max-age=60;Path=/ws",
            ),
            (
                CookieAttributes {
                    domain: Some("example.com".into()),
                    ..base.clone()
                },
                "c=v;max-age=60;Domain=example.com",
            ),
            (
                CookieAttributes {
                    secure: true,
                    ..base.clone()
                },
                "c=v;max-age=60;Secure",
            ),
            (
                CookieAttributes {
                    http_only: true,
                    ..base.clone()
                },
                "c=v;max-age=60;HttpOnly",
            ),
            (
                CookieAttributes {
                    same_site: Some(SameSite::Strict),
                    ..base.clone()
                },
                "c=v;max-age=60;SameSite=Strict",
            ),
            (
                CookieAttributes {
                    same_site: Some(SameSite::Lax),
                    ..base.clone()
                },
                "c=v;max-age=60;SameSite=Lax",
            ),
            (
                CookieAttributes {
                    same_site: Some(SameSite::None),
                    secure: true,
                    ..base
                },
                "c=v;max-age=60;Secure;SameSite=None",
            ),
        ];
        for (attrs, expected) in cases {
            assert_eq!(set_cookie_value("c", "v", 60, &attrs), expected);
        }
    }

    #[test]
    fn set_cookie_all_attributes_in_order() {
        let attrs = CookieAttributes {
            http_only: true,
            secure: true,
            same_site: Some(SameSite::Lax),
            path: Some("/x".into()),
            domain: Some("example.com".into()),
        };
        assert_eq!(
            set_cookie_value("cbtid", "abc", 1, &attrs),
            "cbtid=abc;max-age=1;Path=/x;Domain=example.com;Secure;HttpOnly;SameSite=Lax"
        );
        assert_eq!(validate_attributes(&attrs), Ok(()));
    }

    #[test]
    fn set_cookie_round_trips_through_parser() {
        let header = set_cookie_value("cbtid", "YWJj==", 60, &CookieAttributes::default());
        assert_eq!(values(header.as_bytes(), "cbtid"), ["YWJj=="]);
    }

    #[test]
    fn same_site_display() {
        assert_eq!(SameSite::Strict.to_string(), "Strict");
        assert_eq!(SameSite::Lax.to_string(), "Lax");
        assert_eq!(SameSite::None.as_str(), "None");
    }

    #[test]
    fn validate_accepts_defaults_and_good_values() {
        assert_eq!(validate_attributes(&CookieAttributes::default()), Ok(()));
        let attrs = CookieAttributes {
            path: Some("/".into()),
            domain: Some("xn--bcher-kva.example-1.com".into()),
            same_site: Some(SameSite::Strict),
            ..Default::default()
        };
        assert_eq!(validate_attributes(&attrs), Ok(()));
    }

    #[test]
    fn validate_path_errors() {
        let err = |path: &str| {
            validate_attributes(&CookieAttributes {
                path: Some(path.into()),
                ..Default::default()
            })
            .unwrap_err()
        };
        assert!(
            err("/a;b").starts_with("cookie path \"/a;b\" contains ';': use a path without ';'"),
            "{}",
            err("/a;b")
        );
        assert!(
            err("/a\nb").contains("control character '\\n'"),
            "{}",
            err("/a\nb")
        );
        assert!(err("/a\x7f").contains("control character"));
        assert!(err("/caf\u{e9}").contains("non-ASCII character 'é'"));
        assert!(err("ws").contains("does not start with '/'"));
        assert!(err("").contains("does not start with '/'"));
    }

    #[test]
    fn validate_domain_errors() {
        let err = |domain: &str| {
            validate_attributes(&CookieAttributes {
                domain: Some(domain.into()),
                ..Default::default()
            })
            .unwrap_err()
        };
        assert!(err("").starts_with("cookie domain is empty"));
        assert!(err("ex ample.com").starts_with("cookie domain \"ex ample.com\" contains ' '"));
        assert!(err("a;b.com").contains("contains ';'"));
        assert!(err("exa_mple.com").contains("contains '_'"));
        assert!(err("b\u{fc}cher.de").contains("\"xn--\""));
        assert!(err("a.com\r\n").contains("contains '\\r'"));
    }

    #[test]
    fn validate_same_site_none_requires_secure() {
        let attrs = CookieAttributes {
            same_site: Some(SameSite::None),
            ..Default::default()
        };
        let err = validate_attributes(&attrs).unwrap_err();
        assert!(err.contains("SameSite=None requires Secure"), "{err}");
        let attrs = CookieAttributes {
            secure: true,
            ..attrs
        };
        assert_eq!(validate_attributes(&attrs), Ok(()));
    }
}
