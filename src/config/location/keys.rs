//! The words a Redis store's keys start with after its prefix, and the rule for prefixes
//! that keeps two deployments sharing one Redis from ever seeing each other's keys.

/// The words every key of a Redis store starts with after its prefix: the one list, from
/// which the Redis backend (`redis/mod.rs`, `redis/policy.rs`) builds its keys and
/// [`check_key_prefix`] refuses prefixes.
pub(crate) mod key_words {
    /// `{prefix}cookie:{value}`: a cookie's record.
    pub(crate) const COOKIE: &str = "cookie";
    /// `{prefix}authid:{authid}`: the values of an authid's cookies.
    pub(crate) const AUTHID: &str = "authid";
    /// `{prefix}imported:{sha256 hex}`: an import mark.
    pub(crate) const IMPORTED: &str = "imported";
    /// `{prefix}revocations` (the stream and its channel) and `{prefix}revocations:head`.
    pub(crate) const REVOCATIONS: &str = "revocations";
    /// `{prefix}feature_level`.
    pub(crate) const FEATURE_LEVEL: &str = "feature_level";
    /// `{prefix}cache_lease`: the lease of the processes' caches (`redis/tracking.rs`).
    pub(crate) const CACHE_LEASE: &str = "cache_lease";
}

/// The words the keys of a Redis store with the empty prefix start with (`cookie:...`,
/// `authid:...`, `imported:...`, `revocations`, `revocations:head`, `feature_level`, `cache_lease`): a
/// non-empty prefix may not be one of them followed by `:`, so that no key of one deployment
/// is ever taken for another's (see [`check_key_prefix`]).
pub(crate) const KEY_WORDS: [&str; 6] = [
    key_words::COOKIE,
    key_words::AUTHID,
    key_words::IMPORTED,
    key_words::REVOCATIONS,
    key_words::FEATURE_LEVEL,
    key_words::CACHE_LEASE,
];

/// Checks a Redis key prefix: `""`, or a word of letters, digits, `_`, `-` and `.`, followed
/// by one `:` (`cb1:`, `node-a:`), which is not one of [`KEY_WORDS`].
///
/// Why: a store's keys are the prefix followed by one of the key words (`cookie:`,
/// `authid:`, ...). Two prefixes of this form are never a beginning of one another (each has
/// its one `:` at its end), so two deployments never see each other's keys, and a
/// non-empty one never begins with a key word followed by `:`, so the deployment with the
/// empty prefix never sees another's keys either (`cookie:` as a prefix would make
/// `cookie:cookie:X`, which the empty prefix's `cookie:*` would take for its own).
pub(crate) fn check_key_prefix(prefix: &str) -> std::result::Result<(), String> {
    if prefix.is_empty() {
        return Ok(());
    }
    let word = prefix.strip_suffix(':').unwrap_or(prefix);
    let word_ok = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if !word_ok || !prefix.ends_with(':') {
        return Err(format!(
            "is {prefix:?}; a key prefix is empty, or a word of letters, digits, `_`, `-` and \
             `.` followed by one `:` (for example \"cb1:\"), so that no deployment's keys \
             begin with another's prefix"
        ));
    }
    if KEY_WORDS.contains(&word) {
        return Err(format!(
            "is {prefix:?}, which the keys of a store with the empty prefix begin with (its \
             keys would be taken for that store's); choose another word, for example \"cb1:\""
        ));
    }
    Ok(())
}
