//! Unit tests of `location/`: the one rule, query options, masking, prefixes.

use super::*;

fn redis(text: &str) -> RedisLocation {
    match Location::parse(text).unwrap() {
        Location::Redis(r) => r,
        other => panic!("{other:?}"),
    }
}

#[test]
fn urls_are_never_paths() {
    assert_eq!(
        Location::parse("/var/cookies").unwrap(),
        Location::Lmdb("/var/cookies".into())
    );
    assert_eq!(
        Location::parse("./redis://h/0").unwrap(),
        Location::Lmdb("./redis://h/0".into())
    );
    assert_eq!(Location::parse("REDIS://h").unwrap().kind(), "redis");
    assert_eq!(Location::parse("unix:///s.sock").unwrap().kind(), "redis");
    for text in ["http://h", "file:///var/cookies", "x+y://a:secret1@h"] {
        let err = Location::parse(text).unwrap_err();
        assert!(matches!(err, Error::UnsupportedLocation { .. }), "{err}");
        assert!(!err.to_string().contains("secret1"), "{err}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let raw = OsStr::from_bytes(b"redis://:pw\xff@h/0");
        let err = Location::parse(raw).unwrap_err();
        assert!(matches!(err, Error::UnsupportedLocation { .. }), "{err}");
        let path = OsStr::from_bytes(b"/tmp/\xff/redis://h");
        assert_eq!(Location::parse(path).unwrap().kind(), "lmdb");
    }
}

#[test]
fn query_options_are_ours_the_rest_is_the_crates() {
    let l = redis("redis://:secret@127.0.0.1:6379/2?prefix=cb1%3A&timeout_ms=500");
    assert_eq!(l.url, "redis://:secret@127.0.0.1:6379/2");
    assert_eq!(
        l.to_string(),
        "redis://:***@127.0.0.1:6379/2?prefix=cb1%3A&timeout_ms=500"
    );
    assert_eq!(l.prefix(), Some("cb1:"));
    assert_eq!(l.timeout(), Some(Duration::from_millis(500)));
    let l = redis("redis+unix:///run/redis.sock?db=1&pass=x&prefix=a:");
    assert_eq!(l.url, "redis+unix:///run/redis.sock?db=1&pass=x");
    assert_eq!(
        l.to_string(),
        "redis+unix:///run/redis.sock?db=1&pass=***&prefix=a:"
    );
    assert!(Location::parse("redis://h?timeout_ms=0").is_err());
    let l = redis("redis://h/0?allow_eviction=true");
    assert_eq!(l.allow_eviction(), Some(true));
    assert_eq!(l.url, "redis://h/0");
    assert_eq!(redis("redis://h").allow_eviction(), None);
    assert!(Location::parse("redis://h?allow_eviction=yes").is_err());
    assert!(Location::parse("redis://h?prefix=a:&prefix=b:").is_err());
}

#[test]
fn query_options_nobody_reads_are_refused_with_what_to_write() {
    // Each would look applied and not be: the `redis` crate reads no query option of a TCP
    // URL but `protocol`, and of a Unix socket's but `db`, `user`, `pass` and `protocol`.
    for (url, needle) in [
        ("redis://h/?db=2", "as the URL's path (redis://host:6379/2)"),
        ("redis+sentinel://s1,s2/m?db=2", "as the URL's path"),
        ("redis://h/0?pass=x", "redis://user:password@host"),
        (
            "redis://h/0?user=joe",
            "or the password as `?password_file=`",
        ),
        ("redis://h/0?protocol=resp3", "chooses the protocol"),
        (
            "rediss://10.0.0.5/0?tls_server_name=redis.internal",
            "as the certificate names it",
        ),
        (
            "redis://h/0?min_replicas_acked=1",
            "store option min_replicas_acked",
        ),
        (
            "redis://h/0?redis_cache_bytes=1000",
            "store option redis_cache_bytes",
        ),
        (
            "redis://h/0?key_prefix=a:",
            "key_prefix (in a URL: `prefix`)",
        ),
        (
            "redis://h/0?timout_ms=500",
            "the URL's options are prefix, timeout_ms,",
        ),
        ("unix:///run/r.sock?password=x", "the password as `?pass=`"),
        (
            "unix:///run/r.sock?timout_ms=5",
            "sentinel_user, db, user, pass",
        ),
    ] {
        let err = Location::parse(url).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidConfig { field, .. } if field == "url"),
            "{url}: {err:?}"
        );
        let text = err.to_string();
        assert!(text.contains("the query option `"), "{url}: {text}");
        assert!(
            text.contains(needle),
            "{url}: {needle:?} missing from: {text}"
        );
    }
    let l = redis("redis+unix:///run/r.sock?db=2&user=joe&pass=x");
    assert_eq!(l.url, "redis+unix:///run/r.sock?db=2&user=joe&pass=x");
    assert!(Location::parse("unix:///run/r.sock?protocol=3").is_err());
}

#[test]
fn passwords_are_masked_in_every_form() {
    let password = "p/a?s#s@w%2Frd";
    let cases = [
        format!("redis://:{password}@127.0.0.1:6391/0"),
        format!("redis://joe:{password}@127.0.0.1:6391/0"),
        format!("redis+unix:///run/r.sock?pass={password}"),
        format!("unix:///run/r.sock?db=1&password={password}&user=joe"),
        format!("ftp://joe:{password}@h/x"),
    ];
    for text in &cases {
        let masked = mask(text);
        for piece in ["p/a", "s#s", "w%2Frd"] {
            assert!(!masked.contains(piece), "{text} -> {masked}");
        }
        let err = Location::parse(text).unwrap_err().to_string();
        assert!(!err.contains("w%2Frd") && !err.contains("p/a"), "{err}");
    }
    assert_eq!(
        mask(&cases[1]),
        "redis://joe:***@127.0.0.1:6391/0",
        "the user name stays"
    );
    // Percent-encoded, the same password is a valid URL, shown masked everywhere.
    let text = "redis://joe:p%2Fa%3Fs%23s%40w%252Frd@127.0.0.1:6391/0";
    let l = redis(text);
    assert_eq!(l.to_string(), "redis://joe:***@127.0.0.1:6391/0");
    let debug = format!("{:?}", Location::Redis(l.clone()));
    assert!(!debug.contains("p%2F") && debug.contains("***"), "{debug}");
    assert_eq!(
        l.sanitize(&format!("failed: {text}; AUTH p/a?s#s@w%2Frd")),
        "failed: redis://joe:***@127.0.0.1:6391/0; AUTH ***"
    );
    let l = redis("redis+unix:///run/r.sock?pass=p%40ss+word");
    assert_eq!(l.sanitize("AUTH p@ss word"), "AUTH ***");
}

#[test]
fn file_options_are_ours_and_decoded() {
    let l = redis("rediss://joe@h:6380/1?tls_ca_file=/etc/ssl/my%20ca.pem&password_env=REDIS_PW");
    assert_eq!(l.url, "rediss://joe@h:6380/1");
    assert_eq!(l.file_option("tls_ca_file"), Some("/etc/ssl/my ca.pem"));
    assert_eq!(l.file_option("password_env"), Some("REDIS_PW"));
    assert_eq!(l.file_option("password_file"), None);
    assert_eq!(
        l.to_string(),
        "rediss://joe@h:6380/1?tls_ca_file=/etc/ssl/my%20ca.pem&password_env=REDIS_PW"
    );
    assert!(Location::parse("rediss://h?tls_key_file=").is_err());
    assert!(Location::parse("rediss://h?password_file=a&password_file=b").is_err());
    assert_eq!(mask("rediss://u:secret9@h/0"), "rediss://u:***@h/0");
}

#[test]
fn prefixes_never_overlap() {
    for ok in ["", "cb1:", "node-a:", "a.b_c:", "cookies:", "Cookie:"] {
        assert!(check_key_prefix(ok).is_ok(), "{ok}");
    }
    for bad in [
        "cb1",
        "a:b:",
        ":",
        "a b:",
        "a*:",
        "cookie:",
        "authid:",
        "imported:",
        "revocations:",
        "feature_level:",
        "é:",
    ] {
        assert!(check_key_prefix(bad).is_err(), "{bad}");
    }
    assert!(matches!(
        Location::parse("redis://h/0?prefix=cookie:"),
        Err(Error::InvalidConfig { .. })
    ));
}

#[test]
fn sentinel_urls_parse_and_mask() {
    let r = redis(
        "redis+sentinel://joe:s3cret!@10.0.0.1:26379,[::1]:26380,sen3/mymaster/2?prefix=cb1:&timeout_ms=700",
    );
    let sentinels = r.sentinel().unwrap();
    assert_eq!(
        sentinels.nodes,
        vec![
            ("10.0.0.1".to_string(), 26379),
            ("::1".to_string(), 26380),
            ("sen3".to_string(), SENTINEL_PORT),
        ]
    );
    assert_eq!(sentinels.master, "mymaster");
    assert_eq!(r.secret_url(), "redis://joe:s3cret!@10.0.0.1:26379/2");
    assert_eq!(r.prefix(), Some("cb1:"));
    assert_eq!(r.timeout(), Some(Duration::from_millis(700)));
    let shown = format!("{r} {r:?}");
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(shown.contains("redis+sentinel://joe:***@10.0.0.1:26379,[::1]:26380,sen3/mymaster/2"));
    assert_eq!(
        redis("redis+sentinel://h1:1,h2:2/m").secret_url(),
        "redis://h1:1/0"
    );
    assert_eq!(
        redis("redis+sentinel://:pw@[::1]/m/3").secret_url(),
        "redis://:pw@[::1]:26379/3"
    );
    assert!(redis("redis://h/0").sentinel().is_none());
}

#[test]
fn tls_sentinel_urls_name_a_rediss_master() {
    let r = redis(
        "rediss+sentinel://joe:s3cret!@10.0.0.1:26379,sen2/mymaster/2?tls_ca_file=/etc/ca.pem",
    );
    let sentinels = r.sentinel().unwrap();
    assert_eq!(
        sentinels.nodes,
        vec![
            ("10.0.0.1".to_string(), 26379),
            ("sen2".to_string(), SENTINEL_PORT),
        ]
    );
    assert_eq!(sentinels.master, "mymaster");
    // The master's URL is `rediss://`: the client connects over TLS (`redis/pool.rs` keeps
    // it for the sentinels and the master).
    assert_eq!(r.secret_url(), "rediss://joe:s3cret!@10.0.0.1:26379/2");
    assert_eq!(r.file_option("tls_ca_file"), Some("/etc/ca.pem"));
    let shown = format!("{r} {r:?}");
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(shown.contains("rediss+sentinel://joe:***@10.0.0.1:26379,sen2/mymaster/2"));
    assert_eq!(
        Location::parse("REDISS+SENTINEL://h1/m").unwrap().kind(),
        "redis"
    );
    let err = Location::parse("rediss+sentinel://h1:26379").unwrap_err();
    assert!(
        err.to_string()
            .contains("write rediss+sentinel://[user:password@]host1:port1"),
        "{err}"
    );
}

#[test]
fn the_sentinels_credentials_are_query_options_and_never_shown() {
    let mut r = redis(
        "redis+sentinel://h1,h2/m?sentinel_user=watcher&sentinel_password_file=/etc/s%20pw&prefix=cb1:",
    );
    assert_eq!(r.file_option("sentinel_user"), Some("watcher"));
    assert_eq!(r.file_option("sentinel_password_file"), Some("/etc/s pw"));
    // Not passed on to the `redis` crate.
    assert_eq!(r.secret_url(), "redis://h1:26379/0");
    r.set_sentinel_credentials(Some("watcher"), Some("S3nt-pw"));
    let sentinels = r.sentinel().unwrap();
    assert_eq!(sentinels.user.as_deref(), Some("watcher"));
    assert_eq!(sentinels.password.as_deref(), Some("S3nt-pw"));
    assert!(!format!("{r:?} {r}").contains("S3nt-pw"), "{r:?}");
    assert_eq!(r.sanitize("AUTH watcher S3nt-pw"), "AUTH watcher ***");
    assert!(Location::parse("redis+sentinel://h/m?sentinel_user=").is_err());
}

#[test]
fn bad_sentinel_urls_say_what_is_wrong() {
    for (text, says) in [
        ("redis+sentinel://h1:26379", "names no master"),
        ("redis+sentinel://h1:26379/", "master's name"),
        ("redis+sentinel://h1:26379/my$master", "master's name"),
        ("redis+sentinel://h1:26379/m/x", "database number"),
        ("redis+sentinel://h1:26379/m/1/2", "database number"),
        ("redis+sentinel://h1:0/m", "bad port"),
        ("redis+sentinel://h1:x/m", "bad port"),
        ("redis+sentinel://h1,,h2/m", "not host:port"),
        ("redis+sentinel://:pa55word@h1:70000/m", "bad port"),
    ] {
        let err = Location::parse(text).unwrap_err();
        let shown = err.to_string();
        assert!(
            matches!(err, Error::InvalidConfig { .. }),
            "{text}: {shown}"
        );
        assert!(shown.contains(says), "{text}: {shown}");
        assert!(!shown.contains("pa55word"), "{shown}");
    }
}
