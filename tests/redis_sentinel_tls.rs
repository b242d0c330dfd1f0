//! TLS with Redis Sentinel (`rediss+sentinel://`): a master, a replica and sentinels
//! serving TLS only to the store (tests/common/sentinel.rs, with certificates of
//! tests/common/tls.rs naming 127.0.0.1, the address the sentinels announce), reached with
//! `tls_ca_file`, and refused as untrusted without it, or when the master's certificate
//! does not name that address; a manual failover (`SENTINEL FAILOVER`) over TLS, after
//! which writes go to the new master; TLS options on a plain `redis+sentinel://` URL.
//!
//! Skipped with a message when redis-server (built with TLS) is missing (except under CI).

// A failed unwrap here (helpers included) is the test failing.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/sentinel.rs"]
mod sentinel;

use common::tls::{Pki, need_tls, write_private};
use cookiestore::{CookieStore, Error, StoreOptions};
use sentinel::{
    Sentinels, assert_logs_in, assert_the_next_cycle_reaches, cycle, manual_failover,
    tls_master_and_replica,
};

#[test]
fn sentinels_and_master_over_tls() {
    if !need_tls() {
        return;
    }
    // The sentinels announce the master by its IP address: the certificates name it.
    let pki = Pki::for_server(&["localhost", "127.0.0.1"]);
    let (_master, master_tls, _replica, _) = tls_master_and_replica(&pki);
    let sentinels = Sentinels::start_tls(master_tls, &pki);
    assert_eq!(sentinels.master_port(), master_tls);
    let url = sentinels.url();
    assert!(url.starts_with("rediss+sentinel://"), "{url}");
    let options = StoreOptions::default().timeout_ms(1500);

    // Trusting the test CA (a URL query option): the store works, over TLS throughout (the
    // sentinels and the master have no plain port the store could use: theirs are the
    // setup's, not the ones named).
    let trusted = format!("{url}?tls_ca_file={}", pki.ca.display());
    let store = CookieStore::open(trusted.as_str(), options.clone())
        .unwrap_or_else(|e| panic!("open over TLS through the sentinels: {e}"));
    let value = assert_logs_in(&store);
    // The same with the option given in StoreOptions.
    let store = CookieStore::open(url.as_str(), options.clone().tls_ca_file(&pki.ca)).unwrap();
    assert_eq!(store.get_auth(&value).unwrap().unwrap().authid, "alice");

    // Without it (the system's roots, which do not hold the test CA): refused, and said so.
    let err = CookieStore::open(url.as_str(), options).unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("certificate was not trusted"), "{text}");
    assert!(text.contains("check the sentinels' TLS"), "{text}");
    assert!(!text.contains("SENTINEL MASTERS"), "{text}");
}

#[test]
fn a_master_certificate_without_the_announced_address_is_refused() {
    if !need_tls() {
        return;
    }
    // Certificates naming localhost only: the sentinels, written as localhost, are trusted,
    // but the master they announce is 127.0.0.1, which its certificate does not name.
    let pki = Pki::new();
    let (_master, master_tls, _replica, _) = tls_master_and_replica(&pki);
    let sentinels = Sentinels::start_tls(master_tls, &pki);
    let url = sentinels.url().replace("127.0.0.1", "localhost");
    let err = CookieStore::open(
        url.as_str(),
        StoreOptions::default()
            .timeout_ms(1500)
            .tls_ca_file(&pki.ca),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("does not name the host"), "{text}");
}

#[test]
fn a_failover_over_tls_goes_to_the_new_master() {
    if !need_tls() {
        return;
    }
    let pki = Pki::for_server(&["localhost", "127.0.0.1"]);
    let (master, master_tls, replica, replica_tls) = tls_master_and_replica(&pki);
    let sentinels = Sentinels::start_tls(master_tls, &pki);
    let store = CookieStore::open(
        sentinels.url().as_str(),
        StoreOptions::default().tls_ca_file(&pki.ca),
    )
    .unwrap();
    for _ in 0..5 {
        assert!(cycle(&store).is_some());
    }
    // A manual failover: the sentinels promote the replica (announced by its TLS port, as
    // it replicates with tls-replication yes) and demote the master.
    manual_failover(&sentinels, master.port, replica_tls);
    // The first write after it goes to the new master, over TLS, without an error.
    assert_the_next_cycle_reaches(&store, replica.port, "a failover over TLS");
}

#[test]
fn tls_options_on_a_plain_sentinel_url_point_to_rediss_sentinel() {
    // Refused before any connection is made: no Redis needed.
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    write_private(&ca, "not read\n");
    let err = CookieStore::open(
        "redis+sentinel://127.0.0.1:1,127.0.0.1:2/cookies",
        StoreOptions::default().tls_ca_file(&ca),
    )
    .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidConfig { field, .. } if field == "tls_ca_file"),
        "{err:?}"
    );
    assert!(err.to_string().contains("rediss+sentinel://"), "{err}");
}
