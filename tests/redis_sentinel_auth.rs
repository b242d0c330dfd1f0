//! Sentinels with a password (`requirepass`; tests/common/sentinel.rs starts them on
//! loopback): asked with `sentinel_password_file` (or the URL's query), and an error naming
//! the sentinel's refusal and the ACL user (never the password) without it, with a wrong
//! one or for an unknown user. The sentinel options are refused on other URLs, given two
//! ways at once, or as a user without a password.
//!
//! Skipped with a message when redis-server is missing (except under CI).

// A failed unwrap here (helpers included) is the test failing.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/sentinel.rs"]
mod sentinel;

use common::redis_server::need_redis;
use common::tls::write_private;
use cookiestore::{CookieStore, Error, StoreOptions};
use sentinel::{SENTINEL_PASSWORD, Sentinels, assert_logs_in, master_and_replica};

#[test]
fn sentinels_with_a_password_are_asked_with_sentinel_password_file() {
    if !need_redis() {
        return;
    }
    let (master, _replica) = master_and_replica();
    let sentinels = Sentinels::start_with_password(master.port);
    assert_eq!(sentinels.master_port(), master.port);
    let dir = tempfile::tempdir().unwrap();
    let right = dir.path().join("sentinel.pw");
    write_private(&right, &format!("{SENTINEL_PASSWORD}\n"));
    let wrong = dir.path().join("wrong.pw");
    write_private(&wrong, "Wrong-sentinel-pw\n");
    let url = sentinels.url();
    let options = StoreOptions::default().timeout_ms(1500);

    // With the password: the store works.
    let store = CookieStore::open(url.as_str(), options.clone().sentinel_password_file(&right))
        .unwrap_or_else(|e| panic!("open with the sentinels' password: {e}"));
    let value = assert_logs_in(&store);
    // The same as a URL query option, with the user named.
    let query = format!(
        "{url}?sentinel_user=default&sentinel_password_file={}",
        right.display()
    );
    let store = CookieStore::open(query.as_str(), options.clone()).unwrap();
    assert_eq!(store.get_auth(&value).unwrap().unwrap().authid, "alice");

    // Without it, or with a wrong one: the open fails, naming the sentinel's refusal and what
    // to give, never the password.
    let without = CookieStore::open(url.as_str(), options.clone()).unwrap_err();
    let text = without.to_string();
    assert!(matches!(without, Error::Unavailable { .. }), "{without:?}");
    assert!(
        text.contains(&format!(
            "sentinel 127.0.0.1:{} asks for a password",
            sentinels.ports[0]
        )) && text.contains("sentinel_password_file"),
        "{text}"
    );
    let refused = CookieStore::open(url.as_str(), options.clone().sentinel_password_file(&wrong))
        .unwrap_err();
    let text = format!("{refused} {refused:?}");
    assert!(
        text.contains("refused the credentials of the ACL user `default`")
            && text.contains("sentinel_password_file"),
        "{text}"
    );
    for secret in [SENTINEL_PASSWORD, "Wrong-sentinel-pw"] {
        assert!(!text.contains(secret), "{text}");
        assert!(!format!("{without} {without:?}").contains(secret));
    }
    // An unknown ACL user with the right password is refused alike, the user named.
    let refused = CookieStore::open(
        url.as_str(),
        options
            .sentinel_password_file(&right)
            .sentinel_user("nobody"),
    )
    .unwrap_err();
    let text = format!("{refused} {refused:?}");
    assert!(
        text.contains("refused the credentials of the ACL user `nobody`"),
        "{text}"
    );
    assert!(!text.contains(SENTINEL_PASSWORD), "{text}");
}

#[test]
fn the_sentinel_options_are_refused_on_other_urls() {
    // Refused before any connection is made: no Redis needed.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sentinel.pw");
    write_private(&file, "S3cret-sentinel\n");
    let url = "redis://127.0.0.1:1/0";
    for (field, options, url) in [
        (
            "sentinel_password_file",
            StoreOptions::default().sentinel_password_file(&file),
            url.to_string(),
        ),
        (
            "sentinel_password_env",
            StoreOptions::default().sentinel_password_env("COOKIESTORE_SENTINEL_PW"),
            url.to_string(),
        ),
        (
            "sentinel_user",
            StoreOptions::default(),
            format!("{url}?sentinel_user=watcher"),
        ),
    ] {
        let err = CookieStore::open(url.as_str(), options).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidConfig { field: f, .. } if f == field),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("not a redis+sentinel:// URL"),
            "{err}"
        );
    }
}

#[test]
fn the_sentinels_password_is_given_one_way_and_a_user_needs_one() {
    // Refused before any connection is made: no Redis needed.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sentinel.pw");
    write_private(&file, "S3cret-sentinel\n");
    let url = "redis+sentinel://127.0.0.1:1/cookies";
    for (field, options, needle) in [
        (
            "sentinel_password_file",
            StoreOptions::default()
                .sentinel_password_file(&file)
                .sentinel_password_env("COOKIESTORE_SENTINEL_PW"),
            "one way only",
        ),
        (
            "sentinel_user",
            StoreOptions::default().sentinel_user("watcher"),
            "no password for the sentinels",
        ),
    ] {
        let err = CookieStore::open(url, options).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidConfig { field: f, .. } if f == field),
            "{err:?}"
        );
        assert!(err.to_string().contains(needle), "{err}");
    }
    // A file others may read is refused, as the master's password_file.
    std::fs::write(&file, "S3cret-sentinel\n").unwrap();
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let err =
        CookieStore::open(url, StoreOptions::default().sentinel_password_file(&file)).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidConfig { field, .. } if field == "sentinel_password_file"),
        "{err:?}"
    );
    assert!(err.to_string().contains("chmod 600"), "{err}");
}

/// Closes the connections a store made to the server on `port` (those without a name: the
/// sentinels name theirs, the replica's link is not `normal`), so its next call needs a new
/// one.
fn kill_unnamed_clients(port: u16) {
    let mut con = sentinel::connect(port);
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .arg("TYPE")
        .arg("normal")
        .query(&mut con)
        .unwrap();
    let me: u64 = redis::cmd("CLIENT").arg("ID").query(&mut con).unwrap();
    let mut killed = 0;
    for line in list.lines() {
        let field = |name: &str| {
            line.split(' ')
                .find_map(|f| f.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
                .unwrap_or_default()
                .to_string()
        };
        let id: u64 = field("id").parse().unwrap();
        if id != me && field("name").is_empty() {
            let _: u64 = redis::cmd("CLIENT")
                .arg("KILL")
                .arg("ID")
                .arg(id)
                .query(&mut con)
                .unwrap();
            killed += 1;
        }
    }
    assert!(killed > 0, "no connection of the store to close: {list}");
}

#[test]
fn a_rotated_sentinel_password_file_is_used_without_reopening() {
    if !need_redis() {
        return;
    }
    const ROTATED: &str = "Rotated-sentinel-pw-5Hn";
    let (master, _replica) = master_and_replica();
    let sentinels = Sentinels::start_with_password(master.port);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sentinel.pw");
    write_private(&file, &format!("{SENTINEL_PASSWORD}\n"));
    let store = CookieStore::open(
        sentinels.url().as_str(),
        StoreOptions::default()
            .timeout_ms(5_000)
            .sentinel_password_file(&file),
    )
    .unwrap();
    let value = assert_logs_in(&store);

    // Every sentinel's password changes, then the file (renamed over it); the store's
    // connection to the master is closed, so its next call asks the sentinels again, with
    // the file as it is now.
    for &port in &sentinels.ports {
        let mut con = sentinels
            .client_of(port)
            .get_connection_with_timeout(std::time::Duration::from_secs(5))
            .unwrap();
        let _: () = redis::cmd("ACL")
            .arg("SETUSER")
            .arg("default")
            .arg("resetpass")
            .arg(format!(">{ROTATED}"))
            .query(&mut con)
            .unwrap();
    }
    let next = dir.path().join("sentinel.pw.next");
    write_private(&next, &format!("{ROTATED}\n"));
    std::fs::rename(&next, &file).unwrap();
    kill_unnamed_clients(master.port);
    assert_eq!(store.get_auth(&value).unwrap().unwrap().authid, "alice");
    assert_logs_in(&store);

    // A password the sentinels refuse, written in place: the next new connection fails,
    // naming the refusal, never a password.
    std::fs::write(&file, "Wrong-sentinel-pw\n").unwrap();
    kill_unnamed_clients(master.port);
    let err = store.get_auth(&value).unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(
        text.contains("refused the credentials of the ACL user `default`"),
        "{text}"
    );
    for secret in [SENTINEL_PASSWORD, ROTATED, "Wrong-sentinel-pw"] {
        assert!(!text.contains(secret), "{text}");
    }
}
