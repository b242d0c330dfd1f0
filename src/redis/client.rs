//! The `redis` crate's client of a store: the location's URL with TLS (`rediss://`) and the
//! password, wherever it is kept.
//!
//! **TLS.** `rediss://` connects with rustls. The server's certificate must chain to the
//! system's trust store (read by rustls-native-certs), or to the CA(s) of `tls_ca_file`
//! only, and name the URL's host (a name, or an IP address in the certificate's
//! subjectAltName). `tls_cert_file` + `tls_key_file` give a client certificate (mutual TLS).
//! The TLS options on a plain `redis://` URL are refused (a store meant to be reached over
//! TLS never silently goes without it). `rediss+sentinel://` reaches the sentinels and the
//! master over TLS, with the same options (the master's URL is `rediss://`: `redis/pool.rs`
//! keeps its TLS settings for both); the TLS options on `redis+sentinel://` are refused.
//!
//! **Credentials.** The ACL user is the URL's (`redis://user@host`, `?user=` for a Unix
//! socket), else `default`. The password is one of: the URL's (`redis://user:pass@host`,
//! `?pass=`), the file `password_file`, the environment variable `password_env`; two given
//! at once are refused, as a setup whose password depends on a precedence rule nobody
//! remembers. A URL's query option takes precedence over the same option in
//! [`RedisOptions`]. Files holding a key or a password must not be readable by others.
//!
//! **The sentinels' credentials** (`redis+sentinel://` and `rediss+sentinel://` only,
//! refused on other URLs): the
//! ACL user `sentinel_user` (else `default`) and the password of `sentinel_password_file`
//! or `sentinel_password_env` (one of them), apart from the master's. They are kept in the
//! location's `Sentinels`, the password among its secrets too, for `redis/pool.rs` to ask
//! the sentinels with.

use std::path::{Path, PathBuf};
use std::time::Duration;

use redis::io::tcp::{TcpSettings, socket2};
use redis::{Client, ClientTlsConfig, IntoConnectionInfo, TlsCertificates};

use crate::config::location::RedisLocation;
use crate::config::redis_options::RedisOptions;
use crate::error::{Error, Result};

/// The client of `location`, and the location with the password (if read from a file or the
/// environment) added to the secrets its errors are cleaned of.
pub(super) fn client(
    location: &RedisLocation,
    options: &RedisOptions,
) -> Result<(Client, RedisLocation)> {
    let mut location = location.clone();
    let ca = file_path(&location, options, "tls_ca_file");
    let cert = file_path(&location, options, "tls_cert_file");
    let key = file_path(&location, options, "tls_key_file");
    let password_file = file_path(&location, options, "password_file");
    let password_env = location
        .file_option("password_env")
        .map(str::to_string)
        .or_else(|| options.password_env.clone());

    let mut info = location
        .secret_url()
        .into_connection_info()
        .map_err(|e| bad_url(&location, &e.to_string()))?
        .set_tcp_settings(tcp_settings());
    let tls = matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. });

    let mut settings = info.redis_settings().clone();
    let user = settings.username().unwrap_or("default").to_string();
    let in_url = settings.password().is_some_and(|p| !p.is_empty());
    let password = one_password(
        &location,
        "",
        in_url,
        password_file.as_deref(),
        password_env.as_deref(),
    )?;
    if let Some(password) = password {
        location.add_secret(&password);
        settings = settings.set_password(password);
        info = info.set_redis_settings(settings);
    }
    location.set_user(&user);
    sentinel_credentials(&mut location, options)?;

    let tls_given = [
        ("tls_ca_file", &ca),
        ("tls_cert_file", &cert),
        ("tls_key_file", &key),
    ]
    .into_iter()
    .find(|(_, v)| v.is_some());
    if !tls {
        if let Some((name, _)) = tls_given
            && location.sentinel().is_some()
        {
            return Err(Error::config(
                name,
                format!(
                    "is set, but {} reaches the sentinels and the master without TLS; \
                     write rediss+sentinel://host1:port1,host2:port2/MASTERNAME to reach both \
                     over TLS (or drop the TLS options)",
                    location.masked()
                ),
            ));
        }
        if let Some((name, _)) = tls_given {
            return Err(Error::config(
                name,
                format!(
                    "is set, but {} is not a TLS URL; use rediss://host:port/db to reach Redis \
                     over TLS (or drop the TLS options)",
                    location.masked()
                ),
            ));
        }
        let client = Client::open(info).map_err(|e| bad_url(&location, &e.to_string()))?;
        return Ok((client, location));
    }
    let client_tls = match (&cert, &key) {
        (Some(cert), Some(key)) => Some(ClientTlsConfig {
            client_cert: read_certificates("tls_cert_file", cert)?,
            client_key: read_private("tls_key_file", key)?,
        }),
        (None, None) => None,
        (Some(_), None) => {
            return Err(Error::config(
                "tls_key_file",
                "is missing: tls_cert_file is set, and a client certificate needs its key",
            ));
        }
        (None, Some(_)) => {
            return Err(Error::config(
                "tls_cert_file",
                "is missing: tls_key_file is set, and a key needs its client certificate",
            ));
        }
    };
    let root_cert = ca
        .map(|ca| read_certificates("tls_ca_file", &ca))
        .transpose()?;
    let client = Client::build_with_tls(
        info,
        TlsCertificates {
            client_tls,
            root_cert,
        },
    )
    .map_err(|e| {
        let text = e.to_string();
        let field = if text.contains("root") || text.contains("trust anchors") {
            "tls_ca_file"
        } else if text.contains("private key") {
            "tls_key_file"
        } else {
            "tls_cert_file"
        };
        Error::config(
            field,
            format!(
                "could not be used: {text}; give PEM files (a certificate chain, a PKCS#8, \
                 PKCS#1 or SEC1 key)"
            ),
        )
    })?;
    Ok((client, location))
}

/// The files the client of `location` is made from ([`client`]): the five options that
/// name a file, those given. `credentials.rs` watches them for a change.
pub(super) fn credential_files(location: &RedisLocation, options: &RedisOptions) -> Vec<PathBuf> {
    file_options(options)
        .into_iter()
        .filter_map(|(name, _)| file_path(location, options, name))
        .collect()
}

/// The options that name a file the client is made from, and their values in `options`.
fn file_options(options: &RedisOptions) -> [(&'static str, Option<&PathBuf>); 5] {
    [
        ("tls_ca_file", options.tls_ca_file.as_ref()),
        ("tls_cert_file", options.tls_cert_file.as_ref()),
        ("tls_key_file", options.tls_key_file.as_ref()),
        ("password_file", options.password_file.as_ref()),
        (
            "sentinel_password_file",
            options.sentinel_password_file.as_ref(),
        ),
    ]
}

/// The file of option `name` (one of [`file_options`]): the URL's query option, else the
/// same option in `options`.
fn file_path(location: &RedisLocation, options: &RedisOptions, name: &str) -> Option<PathBuf> {
    location.file_option(name).map(PathBuf::from).or_else(|| {
        file_options(options)
            .into_iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, value)| value.cloned())
    })
}

/// Keepalive probes start after this long without traffic on a connection.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
/// The time between two keepalive probes, and how many go unanswered before the
/// connection is given up.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
const KEEPALIVE_PROBES: u32 = 4;

/// The TCP settings of every connection to Redis (and to the sentinels, which the master's
/// connection info is made from). `TCP_NODELAY`: a command is sent at once, not held back
/// while an earlier segment waits for its acknowledgement (as hiredis and redis-py do).
/// Keepalive probes after [`KEEPALIVE_IDLE`] without traffic: an idle pooled connection or
/// the watcher's subscription keeps its entry in the load balancers and NAT tables between
/// hosts, which forget idle flows, some silently (a connection then hangs at its next use,
/// costing a call its timeout and opening the breaker); and a Redis host that vanished is
/// noticed about 2 minutes later, not at the next use.
fn tcp_settings() -> TcpSettings {
    let keepalive = socket2::TcpKeepalive::new().with_time(KEEPALIVE_IDLE);
    #[cfg(any(target_os = "linux", target_os = "macos", target_os = "freebsd"))]
    let keepalive = keepalive
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_PROBES);
    TcpSettings::default()
        .set_nodelay(true)
        .set_keepalive(keepalive)
}

/// Reads the sentinels' credentials (`sentinel_user`, `sentinel_password_file`,
/// `sentinel_password_env`: a URL's query option before the same option in `options`) into
/// `location` ([`RedisLocation::set_sentinel_credentials`]), which `redis/pool.rs` asks the
/// sentinels with. They are refused on a location that is not `redis+sentinel://` or
/// `rediss+sentinel://` (a
/// setup that believes its sentinels are asked with a password while nothing is), as are
/// both password sources at once, and a user without a password.
fn sentinel_credentials(location: &mut RedisLocation, options: &RedisOptions) -> Result<()> {
    let file = file_path(location, options, "sentinel_password_file");
    let env = location
        .file_option("sentinel_password_env")
        .map(str::to_string)
        .or_else(|| options.sentinel_password_env.clone());
    let user = location
        .file_option("sentinel_user")
        .map(str::to_string)
        .or_else(|| options.sentinel_user.clone());
    let given = [
        ("sentinel_password_file", file.is_some()),
        ("sentinel_password_env", env.is_some()),
        ("sentinel_user", user.is_some()),
    ];
    if location.sentinel().is_none() {
        if let Some((name, _)) = given.iter().find(|(_, set)| *set) {
            return Err(Error::config(
                *name,
                format!(
                    "is set, but {} is not a redis+sentinel:// URL (nor rediss+sentinel://): \
                     the sentinel options are \
                     the credentials of the sentinels a master is found through; drop them, or \
                     name the sentinels with redis+sentinel://host1:port1,host2:port2/MASTERNAME",
                    location.masked()
                ),
            ));
        }
        return Ok(());
    }
    let password = one_password(
        location,
        "sentinel_",
        false,
        file.as_deref(),
        env.as_deref(),
    )?;
    if let Some(user) = &user
        && password.is_none()
    {
        return Err(Error::config(
            "sentinel_user",
            format!(
                "is {user:?}, but no password for the sentinels is given; give it with \
                 sentinel_password_file or sentinel_password_env (or drop sentinel_user)"
            ),
        ));
    }
    location.set_sentinel_credentials(user.as_deref(), password.as_deref());
    Ok(())
}

/// The password given one way at most (`prefix` "" for the master's options, `sentinel_`
/// for the sentinels'): in the URL (`in_url`, already in its settings), in the file of
/// option `{prefix}password_file`, or in the environment variable of
/// `{prefix}password_env`; read now when it is one of the last two. Two ways at once are
/// refused, as a setup whose password depends on a precedence rule nobody remembers.
fn one_password(
    location: &RedisLocation,
    prefix: &str,
    in_url: bool,
    file: Option<&Path>,
    env: Option<&str>,
) -> Result<Option<String>> {
    let file_field = format!("{prefix}password_file");
    let env_field = format!("{prefix}password_env");
    let given: Vec<&str> = [
        in_url.then_some("a password in the URL"),
        file.map(|_| file_field.as_str()),
        env.map(|_| env_field.as_str()),
    ]
    .into_iter()
    .flatten()
    .collect();
    if given.len() > 1 {
        let whose = if prefix.is_empty() {
            "the"
        } else {
            "the sentinels'"
        };
        return Err(Error::config(
            file_field.as_str(),
            format!(
                "{} are given at once for {}; give {whose} password one way only",
                given.join(" and "),
                location.masked()
            ),
        ));
    }
    match (file, env) {
        (Some(path), _) => read_password_file(&file_field, path).map(Some),
        (None, Some(name)) => read_password_env(&env_field, name).map(Some),
        (None, None) => Ok(None),
    }
}

/// The bytes of the file of option `field`.
fn read_file(field: &str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        Error::config(
            field,
            format!("is {}, which cannot be read: {e}", path.display()),
        )
    })
}

/// The bytes of the PEM file of option `field`, which must hold a certificate (redis-rs
/// would take a file without one for an empty list, and the handshake would fail later with
/// a less telling error).
fn read_certificates(field: &str, path: &Path) -> Result<Vec<u8>> {
    let bytes = read_file(field, path)?;
    if !bytes
        .windows(27)
        .any(|w| w == b"-----BEGIN CERTIFICATE-----")
    {
        return Err(Error::config(
            field,
            format!(
                "is {}, which holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                path.display()
            ),
        ));
    }
    Ok(bytes)
}

/// The bytes of the secret file of option `field`, after checking that others cannot read it.
fn read_private(field: &str, path: &Path) -> Result<Vec<u8>> {
    check_private(field, path)?;
    read_file(field, path)
}

/// Refuses a secret file that others may read: mode 0600 or less, or 0640 or less when
/// owned by root (a key shared with a service's group, as Debian's `ssl-cert`, stays
/// possible).
#[cfg(unix)]
fn check_private(field: &str, path: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).map_err(|e| {
        Error::config(
            field,
            format!("is {}, which cannot be read: {e}", path.display()),
        )
    })?;
    let mode = meta.mode() & 0o777;
    let allowed = if meta.uid() == 0 { 0o740 } else { 0o700 };
    if mode & !allowed != 0 {
        return Err(Error::config(
            field,
            format!(
                "is {}, which others may read (mode {mode:o}): it holds a secret; run `chmod \
                 600 {}` (0640 is accepted for a file owned by root)",
                path.display(),
                path.display()
            ),
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_field: &str, _path: &Path) -> Result<()> {
    Ok(())
}

/// The password in `path` (the file of option `field`): its one line, without the trailing
/// newline.
fn read_password_file(field: &str, path: &Path) -> Result<String> {
    let bytes = read_private(field, path)?;
    let text = String::from_utf8(bytes).map_err(|_| {
        Error::config(
            field,
            format!("is {}, which is not UTF-8 text", path.display()),
        )
    })?;
    let password = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text);
    if password.is_empty() || password.contains(['\n', '\r']) {
        return Err(Error::config(
            field,
            format!(
                "is {}, which must hold the password on one line (it is empty or has several \
                 lines)",
                path.display()
            ),
        ));
    }
    Ok(password.to_string())
}

/// The password in the environment variable `name` (the value of option `field`).
fn read_password_env(field: &str, name: &str) -> Result<String> {
    match std::env::var(name) {
        Ok(password) if !password.is_empty() => Ok(password),
        Ok(_) => Err(Error::config(
            field,
            format!("is {name:?}, and that environment variable is empty; set it to the password"),
        )),
        Err(std::env::VarError::NotPresent) => Err(Error::config(
            field,
            format!(
                "is {name:?}, and that environment variable is not set; set it to the password"
            ),
        )),
        Err(std::env::VarError::NotUnicode(_)) => Err(Error::config(
            field,
            format!("is {name:?}, and that environment variable is not UTF-8"),
        )),
    }
}

/// The error of a URL the `redis` crate refuses.
fn bad_url(location: &RedisLocation, problem: &str) -> Error {
    Error::Unavailable {
        location: location.masked().to_string(),
        problem: location.sanitize(problem),
    }
}
