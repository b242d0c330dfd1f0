//! How cookies, times and sizes are shown.

use cookiestore::Cookie;
use cookiestore::format_rfc3339_ns;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

/// A cookie as `dump` and `get --json` print it: all 17 fields in cfxdb's schema order,
/// timestamps as RFC 3339 (null when unset), uuids as strings, CBOR maps as JSON.
#[derive(Debug, Serialize)]
pub struct DumpCookie<'a> {
    pub oid: Uuid,
    pub created: Option<String>,
    pub max_age: u64,
    pub name: Option<&'a str>,
    pub value: &'a str,
    pub authenticated: Option<String>,
    pub authenticated_on_node: Option<Uuid>,
    pub authenticated_on_worker: Option<&'a str>,
    pub authenticated_transport_info: Value,
    pub authenticated_session: Option<u64>,
    pub authenticated_joined_at: Option<String>,
    pub authenticated_authmethod: Option<&'a str>,
    pub authid: Option<&'a str>,
    pub authrole: Option<&'a str>,
    pub authmethod: Option<&'a str>,
    pub authrealm: Option<&'a str>,
    pub authextra: Value,
}

/// RFC 3339 with nanoseconds, or `None` for 0 (unset).
pub fn ts(ns: u64) -> Option<String> {
    (ns != 0).then(|| format_rfc3339_ns(ns))
}

fn map(v: &Value) -> Value {
    if v.is_null() {
        Value::Object(Default::default())
    } else {
        v.clone()
    }
}

impl<'a> DumpCookie<'a> {
    pub fn new(c: &'a Cookie) -> Self {
        DumpCookie {
            oid: c.oid,
            created: ts(c.created),
            max_age: c.max_age,
            name: c.name.as_deref(),
            value: &c.value,
            authenticated: ts(c.authenticated),
            authenticated_on_node: c.authenticated_on_node,
            authenticated_on_worker: c.authenticated_on_worker.as_deref(),
            authenticated_transport_info: map(&c.authenticated_transport_info),
            authenticated_session: (c.authenticated_session != 0)
                .then_some(c.authenticated_session),
            authenticated_joined_at: ts(c.authenticated_joined_at),
            authenticated_authmethod: c.authenticated_authmethod.as_deref(),
            authid: c.authid.as_deref(),
            authrole: c.authrole.as_deref(),
            authmethod: c.authmethod.as_deref(),
            authrealm: c.authrealm.as_deref(),
            authextra: map(&c.authextra),
        }
    }
}

/// A duration in ns as a short text: `6d 23h`, `4h 05m`, `12m 30s`, `42s`, `0.250s`.
pub fn duration(ns: u64) -> String {
    let s = ns / 1_000_000_000;
    let (d, h, m) = (s / 86_400, s / 3_600 % 24, s / 60 % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m:02}m")
    } else if m > 0 {
        format!("{m}m {:02}s", s % 60)
    } else if s > 0 {
        format!("{s}s")
    } else {
        format!("{:.3}s", ns as f64 / 1e9)
    }
}

/// "in 6d 23h" or "expired 2h 05m ago", relative to `now`.
pub fn relative(at: u64, now: u64) -> String {
    if at > now {
        format!("in {}", duration(at - now))
    } else {
        format!("expired {} ago", duration(now - at))
    }
}

/// Seconds to the second, for tables: `2026-11-22T02:49:50Z`.
pub fn short_time(ns: u64) -> String {
    if ns == 0 {
        return "-".into();
    }
    let full = format_rfc3339_ns(ns);
    match full.split_once('.') {
        Some((secs, _)) => format!("{secs}Z"),
        None => full,
    }
}

/// Bytes with a binary unit: `64.0 MiB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// At most `max` characters, with `…` marking a cut.
pub fn shorten(s: &str, max: usize) -> String {
    match s.char_indices().nth(max.saturating_sub(1)) {
        Some((cut, _)) if s.chars().count() > max => format!("{}…", &s[..cut]),
        _ => s.to_string(),
    }
}

/// Control characters (newlines, escapes) made visible, so a field cannot break a table line
/// or drive the terminal.
pub fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

/// Terminal columns of `s`: East Asian wide and fullwidth characters (and emoji) take two.
pub fn width(s: &str) -> usize {
    s.chars()
        .map(|c| match c as u32 {
            0x1100..=0x115F
            | 0x2E80..=0x303E
            | 0x3041..=0x33FF
            | 0x3400..=0x4DBF
            | 0x4E00..=0x9FFF
            | 0xA000..=0xA4CF
            | 0xAC00..=0xD7A3
            | 0xF900..=0xFAFF
            | 0xFE30..=0xFE4F
            | 0xFF00..=0xFF60
            | 0xFFE0..=0xFFE6
            | 0x1F300..=0x1F64F
            | 0x1F900..=0x1F9FF
            | 0x20000..=0x3FFFD => 2,
            _ => 1,
        })
        .sum()
}

/// A left-aligned table with a header row; columns two spaces apart.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| width(h)).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(width(cell));
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            text.push_str(cell);
            text.extend(std::iter::repeat_n(' ', w - width(cell)));
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration(604_800_000_000_000), "7d 0h");
        assert_eq!(duration(3_900_000_000_000), "1h 05m");
        assert_eq!(duration(750_000_000_000), "12m 30s");
        assert_eq!(duration(42_000_000_000), "42s");
        assert_eq!(duration(250_000_000), "0.250s");
    }

    #[test]
    fn shortening() {
        assert_eq!(shorten("abcdef", 4), "abc…");
        assert_eq!(shorten("abcd", 4), "abcd");
        assert_eq!(shorten("ünïcødé", 3), "ün…");
        assert_eq!(size(67_108_864), "64.0 MiB");
        assert_eq!(size(100), "100 B");
    }
}
