//! The client a store connects with, kept in step with the files it is made from.
//!
//! A store's credentials may be files (`password_file`, `sentinel_password_file`,
//! `tls_ca_file`, `tls_cert_file`, `tls_key_file`: `client.rs`), and operators replace them
//! while routers run: a password rotated on the ACL user, a client certificate renewed before
//! it expires, a new CA. A router must not need a restart (which drops its sessions) for it.
//! So before each new connection (a call's, the watcher's, the cache's tracking connection,
//! the probe's), [`Credentials::client`] looks at the files, one `stat` each: when one
//! changed since the client was made (device, inode, size, modification or status change
//! time), the client is made again from them, as at open, and new connections use it.
//! Connections already open stay as they are: Redis checked their credentials when they
//! were made.
//!
//! A change that cannot be used (a file that cannot be read, that others may read, that
//! holds no certificate, two passwords at once, ...) leaves the earlier client in use; what
//! was wrong is added to every Redis error of the store until the files change again, so that
//! a store that fails after a rotation says why. A password read from a file stays among the
//! secrets error texts are cleaned of after it is replaced. A password in the URL or in an
//! environment variable is read once, at open: neither changes while the process runs.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use redis::{Client, RedisError};

use super::client::{client, credential_files};
use super::errors::unavailable_or_redis;
use crate::config::location::{RedisLocation, Sentinels};
use crate::config::redis_options::RedisOptions;
use crate::error::{Error, Result};
use crate::fork::gated;

/// A store's client, and what it is made from.
pub(super) struct Credentials {
    /// The location as the store was opened with it, and its options: what the client is
    /// made again from.
    given: RedisLocation,
    options: RedisOptions,
    /// The credential files, as [`credential_files`] lists them.
    files: Vec<PathBuf>,
    current: Mutex<Current>,
}

/// The client in use, and the files' stamps it was made (or last tried) from.
struct Current {
    client: Client,
    /// The location as [`client`] returns it (the passwords read from files or the
    /// environment among its secrets, the sentinels' credentials), with the secrets of
    /// every earlier one.
    location: RedisLocation,
    stamps: Vec<Option<Stamp>>,
    /// Why the files' last change could not be used, when it could not.
    problem: Option<String>,
}

/// What tells a file's change: a file replaced (rename, a symbolic link switched, as
/// Kubernetes updates a mounted secret) has another inode; one rewritten in place, another
/// size or time. `None` in [`Current::stamps`]: the file could not be looked at.
#[derive(Clone, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    modified: (i64, i64),
    changed: (i64, i64),
}

impl Credentials {
    /// The client of `location` with `options` ([`client`]), and the location as it returns
    /// it (for messages).
    pub(super) fn open(
        location: &RedisLocation,
        options: &RedisOptions,
    ) -> Result<(Credentials, RedisLocation)> {
        let files = credential_files(location, options);
        // Stamped before reading: a change made in between is seen at the next look.
        let stamps = stamps(&files);
        let (made, made_location) = client(location, options)?;
        let credentials = Credentials {
            given: location.clone(),
            options: options.clone(),
            files,
            current: Mutex::new(Current {
                client: made,
                location: made_location.clone(),
                stamps,
                problem: None,
            }),
        };
        Ok((credentials, made_location))
    }

    /// The client to make a new connection with, and the sentinels to ask for the master
    /// (with their credentials): made again first when a credential file changed.
    pub(super) fn client(&self) -> (Client, Option<Sentinels>) {
        if !self.files.is_empty() {
            self.follow_files();
        }
        gated(&self.current, |c| {
            (c.client.clone(), c.location.sentinel().cloned())
        })
    }

    /// The crate's error for `e` ([`unavailable_or_redis`]): its text cleaned of every
    /// password read so far, and saying why the files' last change is not in use, if so.
    pub(super) fn error(&self, timeout: Duration, e: RedisError) -> Error {
        gated(&self.current, |c| {
            let err = unavailable_or_redis(&c.location, timeout, e);
            match &c.problem {
                Some(problem) => with_note(err, problem),
                None => err,
            }
        })
    }

    /// Makes the client again when a file's stamp changed since the last look.
    fn follow_files(&self) {
        let now = stamps(&self.files);
        if gated(&self.current, |c| c.stamps == now) {
            return;
        }
        // Made outside the lock: reading the files is I/O. Two threads that see the change
        // at once both make the client; either result is the files' content.
        let made = client(&self.given, &self.options);
        gated(&self.current, |c| {
            c.stamps = now;
            match made {
                Ok((client, mut location)) => {
                    location.keep_secrets_of(&c.location);
                    c.client = client;
                    c.location = location;
                    c.problem = None;
                }
                Err(e) => {
                    c.problem = Some(format!(
                        "the credential files changed, but the change could not be used \
                         ({}); the client made before it is still in use",
                        c.location.sanitize(&e.to_string())
                    ));
                }
            }
        });
    }
}

/// The stamps of `files`, in order.
fn stamps(files: &[PathBuf]) -> Vec<Option<Stamp>> {
    files.iter().map(|file| stamp(file)).collect()
}

#[cfg(unix)]
fn stamp(file: &std::path::Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    // Followed: what counts is the file a link leads to now.
    let meta = std::fs::metadata(file).ok()?;
    Some(Stamp {
        dev: meta.dev(),
        ino: meta.ino(),
        len: meta.len(),
        modified: (meta.mtime(), meta.mtime_nsec()),
        changed: (meta.ctime(), meta.ctime_nsec()),
    })
}

#[cfg(not(unix))]
fn stamp(file: &std::path::Path) -> Option<Stamp> {
    let meta = std::fs::metadata(file).ok()?;
    let since = |t: std::io::Result<std::time::SystemTime>| {
        t.ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or((0, 0), |d| {
                (
                    i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                    i64::from(d.subsec_nanos()),
                )
            })
    };
    Some(Stamp {
        dev: 0,
        ino: 0,
        len: meta.len(),
        modified: since(meta.modified()),
        changed: since(meta.created()),
    })
}

/// `err` with `note` added to its problem (the errors a Redis failure gives).
fn with_note(mut err: Error, note: &str) -> Error {
    if let Error::Unavailable { problem, .. }
    | Error::Redis { problem, .. }
    | Error::RedisCredentials { problem, .. } = &mut err
    {
        problem.push_str("; ");
        problem.push_str(note);
    }
    err
}
