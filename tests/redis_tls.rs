//! TLS (`rediss://`) and credentials kept outside the configuration, against real
//! redis-server processes: certificates made at test time (tests/common/tls.rs), a TLS port
//! with and without client certificates, an ACL user with a password. Every output a store
//! gives (errors' Display and Debug, the location, Debug of the store) is checked not to
//! hold the password.

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::redis_server::{RedisServer, need_redis};
use common::tls::{TlsRedis, need_tls, write_private};
use common::{ChildLines, child_command, child_role, report};
use cookiestore::{Auth, AuthContext, CookieStore, Error, StoreOptions};

const PASSWORD: &str = "Wq8-secret-pw-7Zk";

fn alice() -> Auth {
    Auth::new("alice", "user", "wampcra", "realm1")
}

/// A store's basic round: create, authenticate, read, log out.
fn basic_ops(store: &CookieStore) {
    let c = store.create("cbtid", 24, 600).unwrap();
    store
        .set_auth(&c.value, &alice(), &AuthContext::default())
        .unwrap();
    let got = store.get(&c.value).unwrap().unwrap();
    assert_eq!(got.authid.as_deref(), Some("alice"));
    assert_eq!(store.logout_authid("alice").unwrap(), 1);
    assert!(!store.exists(&c.value).unwrap());
}

fn open_err(location: &str, options: StoreOptions) -> Error {
    match CookieStore::open(location, options.timeout_ms(5_000)) {
        Ok(_) => panic!("{location} opened"),
        Err(e) => e,
    }
}

#[test]
fn tls_with_the_test_ca_connects_and_works() {
    if !need_tls() {
        return;
    }
    let redis = TlsRedis::start(false);
    let url = redis.url("localhost");
    let store = CookieStore::open(
        &url,
        StoreOptions::default()
            .tls_ca_file(&redis.pki.ca)
            .timeout_ms(5_000),
    )
    .unwrap();
    assert_eq!(store.location().to_string(), url);
    basic_ops(&store);
    // The URL's query gives the CA as well (how the command-line tool is given it).
    let ca = redis.pki.ca.to_str().unwrap();
    let store =
        CookieStore::open(format!("{url}?tls_ca_file={ca}"), StoreOptions::default()).unwrap();
    basic_ops(&store);
    // The cookies are in that Redis (read through its plain port).
    let c = store.create("cbtid", 24, 600).unwrap();
    let reply = redis
        .server
        .command(&["EXISTS", &format!("cookie:{}", c.value)]);
    assert_eq!(reply, ":1");
}

#[test]
fn a_certificate_from_another_ca_is_not_trusted() {
    if !need_tls() {
        return;
    }
    let redis = TlsRedis::start(false);
    let url = redis.url("localhost");
    for options in [
        StoreOptions::default().tls_ca_file(&redis.pki.other_ca),
        // The default: the system's roots, which do not hold the test CA.
        StoreOptions::default(),
    ] {
        let err = open_err(&url, options);
        assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains(&url), "{text}");
        assert!(text.contains("certificate was not trusted"), "{text}");
        assert!(text.contains("tls_ca_file"), "{text}");
    }
}

#[test]
fn a_host_the_certificate_does_not_name_is_refused() {
    if !need_tls() {
        return;
    }
    let redis = TlsRedis::start(false);
    // The certificate names localhost only.
    let err = open_err(
        &redis.url("127.0.0.1"),
        StoreOptions::default().tls_ca_file(&redis.pki.ca),
    );
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("does not name the host in the URL"),
        "{err}"
    );
}

#[test]
fn mutual_tls_needs_the_client_certificate() {
    if !need_tls() {
        return;
    }
    let redis = TlsRedis::start(true);
    let url = redis.url("localhost");
    let pki = &redis.pki;
    let err = open_err(&url, StoreOptions::default().tls_ca_file(&pki.ca));
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    assert!(err.to_string().contains("tls_cert_file"), "{err}");
    let store = CookieStore::open(
        &url,
        StoreOptions::default()
            .tls_ca_file(&pki.ca)
            .tls_client_cert(&pki.client_cert, &pki.client_key),
    )
    .unwrap();
    basic_ops(&store);
    // A key others may read is refused before anything is sent.
    set_mode(&pki.client_key, 0o644);
    let err = open_err(
        &url,
        StoreOptions::default()
            .tls_ca_file(&pki.ca)
            .tls_client_cert(&pki.client_cert, &pki.client_key),
    );
    assert!(
        matches!(&err, Error::InvalidConfig { field, .. } if field == "tls_key_file"),
        "{err:?}"
    );
    assert!(err.to_string().contains("chmod 600"), "{err}");
    // Files that are not what their option says are refused, named.
    set_mode(&pki.client_key, 0o600);
    let not_pem = pki.dir.path().join("not.pem");
    write_private(&not_pem, "not a certificate\n");
    for (options, field) in [
        (StoreOptions::default().tls_ca_file(&not_pem), "tls_ca_file"),
        (
            StoreOptions::default()
                .tls_ca_file(&pki.ca)
                .tls_client_cert(&not_pem, &pki.client_key),
            "tls_cert_file",
        ),
        (
            StoreOptions::default()
                .tls_ca_file(&pki.ca)
                .tls_client_cert(&pki.client_cert, &not_pem),
            "tls_key_file",
        ),
        (
            StoreOptions::default().tls_ca_file(pki.dir.path().join("missing.pem")),
            "tls_ca_file",
        ),
    ] {
        let err = open_err(&url, options);
        assert!(
            matches!(&err, Error::InvalidConfig { field: f, .. } if f == field),
            "{field}: {err:?}"
        );
    }
}

#[test]
fn tls_options_on_a_plain_url_are_refused() {
    if !need_redis() {
        return;
    }
    let server = RedisServer::start();
    let err = open_err(
        &server.url(""),
        StoreOptions::default().tls_ca_file("/nonexistent/ca.pem"),
    );
    assert!(
        matches!(&err, Error::InvalidConfig { field, .. } if field == "tls_ca_file"),
        "{err:?}"
    );
    assert!(err.to_string().contains("rediss://"), "{err}");
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A server with the ACL user `joe` whose password is [`PASSWORD`].
fn server_with_joe() -> RedisServer {
    let server = RedisServer::start();
    let reply = server.command(&[
        "ACL",
        "SETUSER",
        "joe",
        "on",
        &format!(">{PASSWORD}"),
        "~*",
        "&*",
        "+@all",
    ]);
    assert_eq!(reply, "+OK");
    server
}

/// Every text a failed open gives: Display, Debug, and the location's.
fn assert_no_password(err: &Error) {
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(!text.contains(PASSWORD), "{text}");
    }
}

#[test]
fn credentials_from_the_url_a_file_or_the_environment() {
    if !need_redis() {
        return;
    }
    let server = server_with_joe();
    let base = format!("redis://joe@127.0.0.1:{}/", server.port);
    // In the URL.
    let store = CookieStore::open(
        format!("redis://joe:{PASSWORD}@127.0.0.1:{}/", server.port),
        StoreOptions::default(),
    )
    .unwrap();
    for text in [store.location().to_string(), format!("{store:?}")] {
        assert!(!text.contains(PASSWORD), "{text}");
    }
    basic_ops(&store);
    // In a file, given by option or in the URL's query.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("redis-password");
    write_private(&file, &format!("{PASSWORD}\n"));
    let store = CookieStore::open(&base, StoreOptions::default().password_file(&file)).unwrap();
    basic_ops(&store);
    let store = CookieStore::open(
        format!("{base}?password_file={}", file.display()),
        StoreOptions::default(),
    )
    .unwrap();
    assert!(!format!("{store:?}").contains(PASSWORD));
    basic_ops(&store);
    // Two ways at once are refused.
    let err = open_err(
        &format!("redis://joe:{PASSWORD}@127.0.0.1:{}/", server.port),
        StoreOptions::default().password_file(&file),
    );
    assert!(matches!(err, Error::InvalidConfig { .. }), "{err:?}");
    assert!(err.to_string().contains("one way only"), "{err}");
    assert_no_password(&err);
    // A file others may read is refused, saying what to do.
    set_mode(&file, 0o644);
    let err = open_err(&base, StoreOptions::default().password_file(&file));
    assert!(err.to_string().contains("chmod 600"), "{err}");
    assert_no_password(&err);
    // In the environment: a child process with the variable set.
    let mut child = child_command("credentials_child", &server.port.to_string())
        .env("COOKIESTORE_TEST_REDIS_PASSWORD", PASSWORD)
        .spawn()
        .unwrap();
    let lines = ChildLines::new(&mut child);
    let got = lines.next_timeout(std::time::Duration::from_secs(120));
    assert!(child.wait().unwrap().success());
    assert_eq!(got, Some(serde_json::json!({"opened": true})));
}

/// The child of [`credentials_from_the_url_a_file_or_the_environment`]: opens with
/// `password_env`.
#[test]
fn credentials_child() {
    let Some(port) = child_role() else { return };
    let store = CookieStore::open(
        format!("redis://joe@127.0.0.1:{port}/?password_env=COOKIESTORE_TEST_REDIS_PASSWORD"),
        StoreOptions::default(),
    );
    let opened = store.is_ok();
    if let Ok(store) = &store {
        basic_ops(store);
    }
    report(&serde_json::json!({ "opened": opened }));
}

#[test]
fn a_wrong_password_names_the_user_never_the_password() {
    if !need_redis() {
        return;
    }
    let server = server_with_joe();
    let wrong = format!("{PASSWORD}-wrong");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pw");
    write_private(&file, &wrong);
    for (url, options) in [
        (
            format!("redis://joe:{wrong}@127.0.0.1:{}/", server.port),
            StoreOptions::default(),
        ),
        (
            format!("redis://joe@127.0.0.1:{}/", server.port),
            StoreOptions::default().password_file(&file),
        ),
    ] {
        let err = open_err(&url, options);
        assert!(matches!(err, Error::RedisCredentials { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("ACL user `joe`"), "{text}");
        assert!(text.contains("password_file"), "{text}");
        for text in [text, format!("{err:?}")] {
            assert!(!text.contains(&wrong) && !text.contains(PASSWORD), "{text}");
        }
    }
    // Opened lazily (as Crossbar's workers open Redis): the first call reports the refused
    // credentials, not the open-time checks it could not make.
    let store = CookieStore::open(
        format!("redis://joe:{wrong}@127.0.0.1:{}/", server.port),
        StoreOptions::default().connect_lazily(true),
    )
    .unwrap();
    let err = store.exists("x").unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::RedisCredentials { .. }), "{err:?}");
    assert!(
        text.contains("refused the credentials of the ACL user `joe`"),
        "{text}"
    );
    assert!(!text.contains("maxmemory-policy"), "{text}");
    assert!(!text.contains(&wrong), "{text}");
    // A lasting refusal, as a setting Redis is refused for: a subscriber is made (it starts
    // at the feed's end once the credentials are mended), so a router worker starts, and
    // its health says why it cannot reach its store.
    assert!(cookiestore::Subscriber::new(&store).is_ok());
    let health = store.health();
    assert!(!health.available);
    let problem = health.problem.unwrap_or_default();
    assert!(problem.contains("ACL user `joe`"), "{problem}");
    assert!(!problem.contains(&wrong), "{problem}");
    // No user in the URL: `default`, which has no password here (`nopass`).
    let err = open_err(
        &format!("redis://:{wrong}@127.0.0.1:{}/", server.port),
        StoreOptions::default(),
    );
    assert!(!err.to_string().contains(&wrong), "{err}");
}
