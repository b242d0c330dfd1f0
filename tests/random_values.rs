//! Cookie values are drawn from the operating system's generator at every draw, so a process
//! and its `fork()`ed child never hand out the same value (with a generator state inside the
//! process, the child inherits the state and repeats the parent's draws exactly).

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]
#![cfg(unix)]

use std::collections::HashSet;
use std::io::Write;

use cookiestore::{CookieStore, CookieValue, StoreOptions};

const DRAWS: usize = 1_000;

fn draw(n: usize) -> Vec<String> {
    (0..n)
        .map(|_| CookieValue::random(24).unwrap().into_string())
        .collect()
}

/// Forks; the child runs `child` (whose lines go to a file), then exits at once. Returns the
/// child's lines.
fn in_forked_child(child: impl FnOnce() -> Vec<String>) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("child.txt");
    // SAFETY: the child only draws values, writes a file and `_exit`s; it never returns into
    // the test harness (whose other threads do not exist in the child).
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let lines = child();
        let code = std::fs::File::create(&out)
            .and_then(|mut f| f.write_all(lines.join("\n").as_bytes()))
            .map_or(1, |()| 0);
        // SAFETY: ends the child without running the parent's destructors or atexit hooks.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for the child just forked.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the child failed: status {status}"
    );
    std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_forked_child_never_draws_the_parents_values() {
    // Draw first, as a process that created a cookie before forking its workers does.
    let before = draw(1);
    let child = in_forked_child(|| draw(DRAWS));
    let parent = draw(DRAWS);
    assert_eq!(child.len(), DRAWS);
    let parent: HashSet<_> = parent.into_iter().chain(before).collect();
    let shared: Vec<_> = child.iter().filter(|v| parent.contains(*v)).collect();
    assert!(
        shared.is_empty(),
        "{} of {DRAWS} values drawn in the child were also drawn in the parent, e.g. {:?}",
        shared.len(),
        shared.first()
    );
    let distinct: HashSet<_> = child.iter().collect();
    assert_eq!(distinct.len(), DRAWS, "the child's values are distinct");
}

#[test]
fn stores_in_a_parent_and_its_forked_child_create_different_cookies() {
    let dir = tempfile::tempdir().unwrap();
    let parent_store = CookieStore::open(
        dir.path().join("parent"),
        StoreOptions::default().sync(false),
    )
    .expect("open the parent's store");
    parent_store.create("cbtid", 24, 3600).unwrap();
    let child_path = dir.path().join("child");
    let child = in_forked_child(move || {
        let store = CookieStore::open(&child_path, StoreOptions::default().sync(false)).unwrap();
        (0..DRAWS)
            .map(|_| store.create("cbtid", 24, 3600).unwrap().value)
            .collect()
    });
    let parent: HashSet<String> = (0..DRAWS)
        .map(|_| parent_store.create("cbtid", 24, 3600).unwrap().value)
        .collect();
    let shared = child.iter().filter(|v| parent.contains(*v)).count();
    assert_eq!(shared, 0, "values shared between two stores across fork()");
}
