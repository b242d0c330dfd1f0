//! Credentials rotated while a store is open, against real redis-server processes: a
//! password file replaced (or rewritten in place) after the ACL user's password changed, and
//! the certificates of mutual TLS renewed on both sides. New connections use the files as
//! they are now, without reopening the store; a change that cannot be used leaves the earlier
//! credentials in use and is named in the store's errors; no password is ever shown.

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::redis_server::{RedisServer, need_redis, wait_available};
use common::tls::{Pki, TlsRedis, need_tls, write_private};
use cookiestore::{Auth, AuthContext, CookieStore, Error, StoreOptions};

const OLD: &str = "Old-pw-4Tq9-rotation";
const NEW: &str = "New-pw-8Kd2-rotation";
const WRONG: &str = "Wrong-pw-3Jx7-rotation";

/// A store's basic round: create, authenticate, read, log out.
fn basic_ops(store: &CookieStore) {
    let c = store.create("cbtid", 24, 600).unwrap();
    store
        .set_auth(
            &c.value,
            &Auth::new("alice", "user", "wampcra", "realm1"),
            &AuthContext::default(),
        )
        .unwrap();
    let got = store.get(&c.value).unwrap().unwrap();
    assert_eq!(got.authid.as_deref(), Some("alice"));
    assert_eq!(store.logout_authid("alice").unwrap(), 1);
    assert!(!store.exists(&c.value).unwrap());
}

/// Replaces `path` as operators and Kubernetes do: a new file renamed over it (0600).
fn replace(path: &Path, text: &str) {
    let next = path.with_extension("next");
    write_private(&next, text);
    std::fs::rename(&next, path).unwrap();
}

/// Copies `from` over `to` by renaming a copy (0600).
fn replace_with(to: &Path, from: &Path) {
    replace(to, &std::fs::read_to_string(from).unwrap());
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Closes every connection of the ACL user `joe`: the store's next call needs a new one.
fn kill_joe(server: &RedisServer) {
    let reply = server.command(&["CLIENT", "KILL", "USER", "joe"]);
    assert!(reply.starts_with(':'), "{reply}");
}

/// Every text of `err` (Display and Debug) holds none of the passwords.
fn assert_no_password(err: &Error) {
    for text in [err.to_string(), format!("{err:?}")] {
        for password in [OLD, NEW, WRONG] {
            assert!(!text.contains(password), "{text}");
        }
    }
}

#[test]
fn a_rotated_password_file_is_used_without_reopening() {
    if !need_redis() {
        return;
    }
    let server = RedisServer::start();
    let acl = |rules: &[&str]| {
        let mut args = vec!["ACL", "SETUSER", "joe"];
        args.extend_from_slice(rules);
        assert_eq!(server.command(&args), "+OK");
    };
    acl(&["on", &format!(">{OLD}"), "~*", "&*", "+@all"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("redis-password");
    write_private(&file, &format!("{OLD}\n"));
    let store = CookieStore::open(
        format!("redis://joe@127.0.0.1:{}/", server.port),
        StoreOptions::default()
            .password_file(&file)
            .timeout_ms(5_000),
    )
    .unwrap();
    basic_ops(&store);
    let kept = store.create("cbtid", 24, 600).unwrap();

    // The rotation: the new password added to the user, the file replaced, the old password
    // removed; the store's connections are closed, so its next call makes a new one, which
    // only the new password opens.
    acl(&[&format!(">{NEW}")]);
    replace(&file, &format!("{NEW}\n"));
    acl(&[&format!("<{OLD}")]);
    kill_joe(&server);
    assert!(store.exists(&kept.value).unwrap());
    basic_ops(&store);

    // A wrong password written in place (same inode): the next new connection is refused,
    // the error names the user and never a password.
    std::fs::write(&file, format!("{WRONG}\n")).unwrap();
    kill_joe(&server);
    let err = store.exists(&kept.value).unwrap_err();
    assert!(matches!(err, Error::RedisCredentials { .. }), "{err:?}");
    assert!(err.to_string().contains("ACL user `joe`"), "{err}");
    assert_no_password(&err);

    // The right password in a file others may read: refused as at open, so the wrong one
    // read before stays in use, and the errors say why the change was not taken.
    std::fs::write(&file, format!("{NEW}\n")).unwrap();
    set_mode(&file, 0o644);
    let err = store.exists(&kept.value).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::RedisCredentials { .. }), "{err:?}");
    assert!(
        text.contains("the credential files changed, but the change could not be used"),
        "{text}"
    );
    assert!(text.contains("chmod 600"), "{text}");
    assert_no_password(&err);

    // Mended (chmod changes the file's status time): the store works again, and the errors
    // no longer speak of the change.
    set_mode(&file, 0o600);
    assert!(store.exists(&kept.value).unwrap());
    basic_ops(&store);
    acl(&[&format!("<{NEW}"), &format!(">{WRONG}")]);
    kill_joe(&server);
    let err = store.exists(&kept.value).unwrap_err();
    assert!(matches!(err, Error::RedisCredentials { .. }), "{err:?}");
    assert!(!err.to_string().contains("could not be used"), "{err}");
    assert_no_password(&err);
}

#[test]
fn renewed_tls_certificates_are_used_without_reopening() {
    if !need_tls() {
        return;
    }
    let redis = TlsRedis::start(true);
    let renewed = Pki::new();
    // The store's own copies of its CA, certificate and key, as an operator's deployment
    // keeps them.
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let cert = dir.path().join("client.pem");
    let key = dir.path().join("client.key");
    replace_with(&ca, &redis.pki.ca);
    replace_with(&cert, &redis.pki.client_cert);
    replace_with(&key, &redis.pki.client_key);
    let store = CookieStore::open(
        redis.url("localhost"),
        StoreOptions::default()
            .tls_ca_file(&ca)
            .tls_client_cert(&cert, &key)
            .timeout_ms(5_000),
    )
    .unwrap();
    basic_ops(&store);
    let kept = store.create("cbtid", 24, 600).unwrap();

    // The server is renewed first: a certificate from a new CA, and client certificates
    // of that CA only. The store's next new connection fails its TLS handshake.
    let path = |p: &Path| p.to_str().unwrap().to_string();
    let reply = redis.server.command(&[
        "CONFIG",
        "SET",
        "tls-cert-file",
        &path(&renewed.server_cert),
        "tls-key-file",
        &path(&renewed.server_key),
        "tls-ca-cert-file",
        &path(&renewed.ca),
    ]);
    assert_eq!(reply, "+OK");
    assert_eq!(
        redis
            .server
            .command(&["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"])
            .chars()
            .next(),
        Some(':')
    );
    let err = store.exists(&kept.value).unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    assert!(!store.health().available);

    // Then the store's files: it comes back by itself (its probe connects with them), and
    // every call works.
    replace_with(&ca, &renewed.ca);
    replace_with(&cert, &renewed.client_cert);
    replace_with(&key, &renewed.client_key);
    wait_available(&store);
    assert!(store.exists(&kept.value).unwrap());
    basic_ops(&store);
}
