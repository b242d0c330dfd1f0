//! A clock set back before a cookie's `created`: the Set-Cookie max-age never exceeds the
//! cookie's own max_age, and `check` reports the record as created in the future.

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use cookiestore::maintenance::{Problem, check};
use cookiestore::{Tracker, TrackerConfig};

const T0: u64 = FIXTURE_DAY_NS;

#[test]
fn set_cookie_max_age_never_exceeds_max_age_with_the_clock_set_back() {
    let dir = tempfile::tempdir().unwrap();
    let (options, clock) = options_at(T0);
    let t = Tracker::open(dir.path(), options, TrackerConfig::default()).unwrap();
    let first = t.track(None).unwrap();
    clock.set(T0 - 30 * 86_400 * 1_000_000_000); // a month back
    let header = format!("cbtid={}", first.value);
    let again = t.track(Some(header.as_bytes())).unwrap();
    assert!(!again.is_new);
    assert_eq!(
        again.set_cookie,
        format!("cbtid={};max-age=86400", first.value)
    );

    let report = check(t.store().as_lmdb().unwrap()).unwrap();
    let oid = t.store().get(&first.value).unwrap().unwrap().oid;
    assert!(
        report.problems.iter().any(|p| matches!(
            p,
            Problem::CreatedInFuture { oid: o, created, .. } if *o == oid && *created == T0
        )),
        "{:?}",
        report.problems
    );
    let p = report
        .problems
        .iter()
        .find(|p| p.kind() == "created-in-future")
        .unwrap();
    assert!(p.to_string().contains("check the clock"), "{p}");
    assert!(!p.repairable());

    // With the clock right again, the store is clean.
    clock.set(T0 + 1_000_000_000);
    assert!(
        check(t.store().as_lmdb().unwrap())
            .unwrap()
            .problems
            .is_empty()
    );
}
