//! The fixture's cookies: cookie `i` is a pure function of `i`; the benches' options.

use std::time::{SystemTime, UNIX_EPOCH};

use cookiestore::{Auth, AuthContext, Cookie, StoreOptions};
use serde_json::{Value, json};
use uuid::Uuid;

/// Bump when the fixture's contents or layout change: old stores are then rebuilt.
pub const FORMAT: &str = "v1";
/// Cookie value length (Crossbar's default).
pub const VALUE_LEN: usize = 24;
/// Cookies per write transaction when building a fixture.
pub const BUILD_BATCH: u64 = 10_000;
/// 2026-01-01T00:00:00Z (ns): every fixture cookie is created just after this.
pub const BASE_NS: u64 = 1_767_225_600_000_000_000;
/// Seconds in a (365-day) year.
pub const YEAR_S: u64 = 365 * 86_400;
/// Nanoseconds per second.
pub const NS: u64 = 1_000_000_000;
/// Even cookies live 9 years, odd ones 10: nothing is expired today, and at
/// [`HALF_EXPIRED_NS`] exactly the even half is.
pub const MAX_AGE_EVEN: u64 = 9 * YEAR_S;
/// See [`MAX_AGE_EVEN`].
pub const MAX_AGE_ODD: u64 = 10 * YEAR_S;
/// A time at which exactly half of every fixture (the even cookies) is expired.
pub const HALF_EXPIRED_NS: u64 = BASE_NS + 9 * YEAR_S * NS + YEAR_S * NS / 2;
/// Map size for every environment the benches open (virtual only).
pub const MAP_SIZE: u64 = 16 << 30;

/// Seeds of the values, oids and key order ([`mix`]).
pub const SEED_VALUE: u64 = 0x5eed_c00c_1e00_0001;
pub const SEED_OID: u64 = 0x5eed_c00c_1e00_0002;
pub const SEED_ORDER: u64 = 0x5eed_c00c_1e00_0003;
/// The values' alphabet (base64).
pub const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
/// The router node the fixture cookies were authenticated on.
pub const NODE: Uuid = uuid::uuid!("2a1c0de5-7e57-4b3a-9c1d-000000000001");

/// SplitMix64: a cheap, good 64-bit mixer.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The value of fixture cookie `i`: 24 base64 characters (144 random bits), like Crossbar's.
pub fn value_into(i: u64, out: &mut [u8; VALUE_LEN]) {
    for w in 0..3 {
        let mut r = mix(SEED_VALUE ^ (i * 4 + w as u64));
        for c in 0..8 {
            out[w * 8 + c] = ALPHABET[(r & 63) as usize];
            r >>= 6;
        }
    }
}

/// [`value_into`] as a `String`.
pub fn value(i: u64) -> String {
    let mut v = [0u8; VALUE_LEN];
    value_into(i, &mut v);
    String::from_utf8(v.to_vec()).expect("base64 is ASCII")
}

/// The oid of fixture cookie `i` (a v4 UUID).
pub fn oid(i: u64) -> Uuid {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&mix(SEED_OID ^ (i * 2)).to_le_bytes());
    bytes[8..].copy_from_slice(&mix(SEED_OID ^ (i * 2 + 1)).to_le_bytes());
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// authextra of fixture cookie `i`: a few keys, as applications put there.
pub fn authextra(i: u64) -> Value {
    json!({"tenant": "acme", "groups": ["staff", "ops"], "level": i % 5, "uid": i})
}

/// The auth stored on fixture cookie `i`.
pub fn auth(i: u64) -> Auth {
    Auth::new(&format!("user{i:07}"), "user", "cookie", "realm1").with_authextra(authextra(i))
}

/// The transport details stored when cookie `i` was authenticated (modest: a real router
/// may store more headers).
pub fn transport_info(i: u64) -> Value {
    let r = mix(i);
    json!({
        "type": "websocket",
        "protocol": "wamp.2.json",
        "peer": format!("tcp4:10.{}.{}.{}:{}", r & 255, (r >> 8) & 255, (r >> 16) & 255,
                        1024 + (r >> 24) % 60_000),
        "http_headers_received": {
            "host": "router.example.com",
            "user-agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        },
    })
}

/// Where cookie `i` is (re)authenticated in the set_auth benches.
pub fn context(i: u64, now: u64) -> AuthContext {
    AuthContext::default()
        .node(Some(NODE))
        .worker(Some("worker001".into()))
        .transport_info(transport_info(i))
        .session(mix(i) >> 11)
        .joined_at(now)
        .authmethod(Some("wampcra".into()))
}

/// Fixture cookie `i`: authenticated, with authextra and a modest transport info.
pub fn cookie(i: u64) -> Cookie {
    let created = BASE_NS + i * 1_000;
    let a = auth(i);
    let r = mix(i);
    Cookie {
        oid: oid(i),
        created,
        max_age: if i.is_multiple_of(2) {
            MAX_AGE_EVEN
        } else {
            MAX_AGE_ODD
        },
        name: Some("cbtid".into()),
        value: value(i),
        authenticated: created + 2_500_000_000,
        authenticated_on_node: Some(NODE),
        authenticated_on_worker: Some("worker001".into()),
        authenticated_transport_info: transport_info(i),
        authenticated_session: r >> 11,
        authenticated_joined_at: created + 2_400_000_000,
        authenticated_authmethod: Some("wampcra".into()),
        authid: Some(a.authid),
        authrole: a.authrole,
        authmethod: a.authmethod,
        authrealm: a.authrealm,
        authextra: a.authextra,
    }
}

/// Store options of the benches: sync as given, a map large enough for 1M cookies.
/// The store's options for the benches: no cache (the `cached` group turns it on), so
/// every other group measures reads of the store itself.
pub fn options(sync: bool) -> StoreOptions {
    StoreOptions::default()
        .cache_bytes(0)
        .sync(sync)
        .maxsize(MAP_SIZE)
        .initial_mapsize(1 << 30)
}

/// Wall-clock now in ns (what the store's SystemClock gives).
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}
