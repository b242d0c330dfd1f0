//! The feed's entries as a reader gets them: [`Revocation`], [`Revocations`].

use uuid::Uuid;

use crate::feed::kind::RevocationKind;

/// One entry of the revocation feed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Revocation {
    /// Its sequence number (the first is 1; each commit appends in increasing order).
    pub seq: u64,
    /// When it was revoked (ns, the writer's clock).
    pub at_ns: u64,
    /// Why.
    pub kind: RevocationKind,
    /// The revoked cookie's value (empty when its record could not be decoded).
    pub value: String,
    /// The revoked cookie's oid.
    pub oid: Uuid,
}

/// What a read of the feed found ([`CookieStore::revocations_since`](crate::CookieStore::revocations_since),
/// [`Subscriber::poll`](crate::Subscriber::poll)).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
#[non_exhaustive]
pub struct Revocations {
    /// The entries after the given sequence number, in order.
    pub entries: Vec<Revocation>,
    /// The sequence number to ask after next time (the last one seen).
    pub next: u64,
    /// Whether entries after the given sequence number were already trimmed (the reader fell
    /// behind the retention window and missed some revocations). On Redis also when the
    /// feed lost entries the reader had not read, or is not the history it read (see
    /// [`Subscriber`](crate::Subscriber)).
    pub missed: bool,
}
