//! The response's `Set-Cookie` header, formatted the way Crossbar.io sends it
//! ([`set_cookie_value`]), with optional [`CookieAttributes`] checked once, when the
//! configuration is loaded ([`validate_attributes`]).

use std::fmt;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::header::cookie_values;

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
        let values: Vec<&str> = cookie_values(header.as_bytes(), "cbtid").collect();
        assert_eq!(values, ["YWJj=="]);
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
