//! Why a feed entry was written: [`RevocationKind`], the one home of which kinds revoke.

/// Why a cookie was revoked, or what else changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum RevocationKind {
    /// A logout of one cookie (delete by value or by oid).
    Logout,
    /// A logout of every cookie of an authid ([`CookieStore::logout_authid`](crate::CookieStore::logout_authid)).
    Authid,
    /// A deletion by maintenance (clear, repair).
    Maintenance,
    /// Not a revocation: the cookie's authentication changed (set or cleared). Its
    /// connections stay; caches drop their answer for it.
    Auth,
    /// Not a revocation: the record was replaced whole ([`CookieStore::put`](crate::CookieStore::put): restore,
    /// import, an edit); any field, max_age included, may have changed.
    Replaced,
    /// Not a revocation: a purge deleted every cookie that expired at or before `at_ns`
    /// (value empty, oid nil).
    Purged,
    /// Not a revocation: changes the feed cannot itemize (another program wrote, a repair
    /// rebuilt the indexes); caches drop everything (value empty, oid nil).
    Flush,
}

impl RevocationKind {
    /// Every kind, in the order of their codes (1 to 7).
    pub const ALL: [RevocationKind; 7] = [
        RevocationKind::Logout,
        RevocationKind::Authid,
        RevocationKind::Maintenance,
        RevocationKind::Auth,
        RevocationKind::Replaced,
        RevocationKind::Purged,
        RevocationKind::Flush,
    ];

    /// The kind's code in a stored entry (1 to 7; LMDB's entry byte, Redis's `kind` field).
    pub(crate) fn code(self) -> u8 {
        match self {
            RevocationKind::Logout => 1,
            RevocationKind::Authid => 2,
            RevocationKind::Maintenance => 3,
            RevocationKind::Auth => 4,
            RevocationKind::Replaced => 5,
            RevocationKind::Purged => 6,
            RevocationKind::Flush => 7,
        }
    }

    /// The kind of a stored entry's code.
    pub(crate) fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => RevocationKind::Logout,
            2 => RevocationKind::Authid,
            3 => RevocationKind::Maintenance,
            4 => RevocationKind::Auth,
            5 => RevocationKind::Replaced,
            6 => RevocationKind::Purged,
            7 => RevocationKind::Flush,
            _ => return None,
        })
    }

    /// The kebab-case name, as in the JSON form.
    pub fn as_str(self) -> &'static str {
        match self {
            RevocationKind::Logout => "logout",
            RevocationKind::Authid => "authid",
            RevocationKind::Maintenance => "maintenance",
            RevocationKind::Auth => "auth",
            RevocationKind::Replaced => "replaced",
            RevocationKind::Purged => "purged",
            RevocationKind::Flush => "flush",
        }
    }

    /// Whether the cookie was revoked (logout, logout by authid, deletion by maintenance):
    /// its live connections should be closed. The other kinds only tell caches what
    /// changed.
    pub fn revokes(self) -> bool {
        matches!(
            self,
            RevocationKind::Logout | RevocationKind::Authid | RevocationKind::Maintenance
        )
    }
}
