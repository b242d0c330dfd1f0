//! The revocation feed on Redis: a stream with ids `0-seq`, so that sequence numbers are
//! dense (1, 2, 3, ...) as in LMDB, and a reader knows exactly whether it missed entries.
//!
//! # A reader never skips a revocation without being told
//!
//! On Redis the feed can lose its history or go back in time, which a sequence number
//! alone cannot show:
//!
//! - it starts over at 1: Redis restarted without persistence, `FLUSHALL`, the stream key
//!   deleted (or evicted);
//! - it goes back to an older state: Redis restarted from an older RDB snapshot (the
//!   default persistence after a crash) or AOF, a failover to a replica that had not
//!   received the last writes (asynchronous replication: the replica holds a prefix of the
//!   primary's writes, as an older snapshot does; the tests emulate a failover by loading
//!   the lagging replica's data at the primary's address).
//!
//! Either way, new appends reuse numbers that a reader has passed, and a reader that only
//! compared numbers would take the entries after its position for the ones it had not
//! read, skipping the others. An epoch key beside the stream would not tell either: a
//! rollback restores the old epoch together with the old stream.
//!
//! So every entry carries two fields besides the revocation:
//!
//! - `tag`: unique to the entry. Each call of the revoke script gets 122 random bits from
//!   the OS generator (a v4 UUID, drawn by the client) and numbers its entries after them;
//! - `prev`: the `tag` of the entry appended just before it, which the script reads from
//!   the head key (`{prefix}revocations:head`) and replaces with the last tag it appended.
//!   The entry and the head key are written by one script, so every state Redis can come
//!   back in (a snapshot, an AOF, a replica: each holds whole scripts) holds both or
//!   neither. A missing head reads as `''`, as does an entry without tags (written before
//!   tags existed, or by an older cookiestore).
//!
//! A [`Subscriber`](crate::Subscriber) remembers its position `s` and its anchor `a`: the
//! tag that the entry after `s` must name as `prev` (the head it saw at the feed's end,
//! else the tag of the last entry it read). A tag is written once, by one script, in one
//! state of the feed; so an entry whose `prev` is `a`, or a head equal to `a`, exists only
//! in states that grew from the history the reader read up to `s`: the entries after `s`
//! in them are exactly what it has not read. Each poll is one script (one atomic read) of
//! the feed's last id `L`, its first retained id, the head, and the entries after `s`:
//!
//! 1. `L < s`: the feed is shorter than what the reader read (it started over, or went
//!    back) → missed.
//! 2. The entry `s + 1` exists: it continues the reader's history if its `prev` is `a`;
//!    otherwise → missed.
//! 3. `L > s` and the entry `s + 1` is gone: it was trimmed before it was read → missed
//!    (and not checked further: it cannot be).
//! 4. `L = s`: the head must be `a`; otherwise the feed went back and grew again to the
//!    same length → missed.
//!
//! A read of more than one batch checks the same at each round trip (with the last entry
//! read as position and its tag as anchor), as Redis may be replaced between two of them.
//! For 1, 2 and 4 the reader gets every retained entry (any of them may be new to it) and
//! anchors at the feed's end, so a miss is reported once. Each case above ends in one of
//! them: after a restart without persistence, a flush, a deleted stream, new entries chain
//! from `''` or from a head the reader passed, and `L < s`, or the entry at `s + 1` (or the
//! head when `L = s`) carries a tag drawn after the loss; after a rollback to a state that
//! ends at `r`: when `r >= s` the reader's entry `s` is still there and so is everything
//! after it (nothing is missed, nothing is reported), when `r < s` the entries from `r + 1`
//! on are new and 1, 2 or 4 applies. Trimming (by age in `purge_expired`, by
//! `revocation_stream_max`, or by hand) removes entries but neither the head nor the
//! `prev` of the entries kept: 3 applies, never a false alarm. An evicted head (with
//! `allow_eviction`) can only cause a miss that was not needed.
//!
//! The check needs every writer to write tags: entries appended by an older cookiestore
//! (sharing the Redis during an upgrade) carry none and leave the head alone, so a reader
//! reports a miss at each of them (a re-check, never a gap), and a rollback over entries of
//! only such writers is not seen.
//!
//! What no reader can get back are revocations of a history that was lost: logouts
//! committed after the state Redis went back to are undone together with the data (the
//! cookies are back). That is durability: see docs/operations.md ("Redis: faults and durability").
//!
//! A position given as a number alone ([`CookieStore::revocations_since`](crate::CookieStore::revocations_since),
//! [`Subscriber::starting_after`](crate::Subscriber::starting_after), `cookiestore
//! revocations --since N`) has no anchor: it gets checks 1 and 3 only, a subscriber then
//! anchors at its first poll.

use redis::Value;
use uuid::Uuid;

use super::RedisBackend;
use super::errors::OTHER_PROGRAM;
use super::scripts::SINCE;
use crate::error::{Error, Result};
use crate::feed::kind::RevocationKind;
use crate::feed::revocation::{Revocation, Revocations};

/// Entries read per round trip.
const READ_BATCH: usize = 10_000;

fn damaged(what: &str) -> Error {
    Error::metadata(format!("the Redis revocation stream holds {what}"))
}

/// The sequence number of a stream id `0-seq`.
fn seq_of(id: &str) -> Result<u64> {
    match id.split_once('-') {
        Some(("0", seq)) => seq.parse().map_err(|_| damaged("a malformed id")),
        _ => Err(damaged(&format!(
            "the id {id:?}, not one of cookiestore's (0-seq)"
        ))),
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

/// One stream entry: the revocation, its tag and the tag of the entry before it (`''`
/// when not written).
struct Entry {
    revocation: Revocation,
    tag: String,
    prev: String,
}

fn entry(v: &Value) -> Result<Entry> {
    let Value::Array(parts) = v else {
        return Err(damaged("a malformed entry"));
    };
    let [id, Value::Array(fields)] = &parts[..] else {
        return Err(damaged("a malformed entry"));
    };
    let seq = seq_of(&text(id).ok_or_else(|| damaged("a malformed id"))?)?;
    let (mut at, mut kind, mut oid, mut value) = (None, None, None, None);
    let (mut tag, mut prev) = (String::new(), String::new());
    for pair in fields.chunks(2) {
        let [k, v] = pair else { break };
        let v = text(v);
        match text(k).as_deref() {
            Some("at") => at = v.and_then(|v| v.parse::<u64>().ok()),
            Some("kind") => {
                kind = v
                    .and_then(|v| v.parse::<u8>().ok())
                    .and_then(RevocationKind::from_code)
            }
            Some("oid") => oid = v.and_then(|v| Uuid::parse_str(&v).ok()),
            Some("value") => value = v,
            Some("tag") => tag = v.unwrap_or_default(),
            Some("prev") => prev = v.unwrap_or_default(),
            _ => {}
        }
    }
    match (at, kind, oid, value) {
        (Some(at_ns), Some(kind), Some(oid), Some(value)) => Ok(Entry {
            revocation: Revocation {
                seq,
                at_ns,
                kind,
                value,
                oid,
            },
            tag,
            prev,
        }),
        _ => Err(damaged(&format!("a malformed entry (seq {seq})"))),
    }
}

/// One read of the feed (the SINCE script).
struct Read {
    /// The last sequence number generated (0 when the stream does not exist).
    last: u64,
    /// The first retained one.
    first: Option<u64>,
    /// The head key: the tag of the last entry appended (`''` when missing).
    head: String,
    entries: Vec<Entry>,
}

impl RedisBackend {
    fn read_feed(&self, after: u64, count: usize) -> Result<Read> {
        let (stream, head) = (self.stream_key(), self.head_key());
        let reply: Value = self.run(|con| {
            SINCE
                .key(&stream)
                .key(&head)
                .arg(after)
                .arg(count)
                .invoke(con)
        })?;
        let Value::Array(parts) = reply else {
            return Err(damaged("an unexpected reply"));
        };
        let last = match parts.first().and_then(text) {
            Some(id) => seq_of(&id)?,
            None => 0,
        };
        let first = match parts.get(1).and_then(text) {
            Some(id) => Some(seq_of(&id)?),
            None => None,
        };
        let head = parts.get(2).and_then(text).unwrap_or_default();
        let entries = match parts.get(3) {
            Some(Value::Array(entries)) => entries.iter().map(entry).collect::<Result<_>>()?,
            _ => return Err(damaged("an unexpected reply")),
        };
        Ok(Read {
            last,
            first,
            head,
            entries,
        })
    }

    /// The revocations after `after`, with `missed` when some of them were trimmed, or when
    /// the feed is shorter than `after` (it started over or went back).
    pub(crate) fn revocations_since(&self, after: u64) -> Result<Revocations> {
        Ok(self.revocations_after(after, None)?.0)
    }

    /// The revocations after `after` for a reader whose anchor there is `anchor` (see the
    /// module docs; `None`: unknown, only the numbers are checked), and the reader's new
    /// anchor. `missed` is also set when the feed is not the history the reader read.
    pub(crate) fn revocations_after(
        &self,
        after: u64,
        anchor: Option<&str>,
    ) -> Result<(Revocations, String)> {
        let mut out = Revocations {
            entries: Vec::new(),
            next: after,
            missed: false,
        };
        let mut tag = anchor.unwrap_or_default().to_string();
        // What the entry after `from` must name as `prev` (`None`: not known). Checked at
        // each round trip (a long read takes several), until the reader is sent back to 0.
        let mut expect = anchor.map(str::to_string);
        let mut from = after;
        let mut restarted = false;
        loop {
            let read = self.read_feed(from, READ_BATCH)?;
            if !restarted {
                let continues = if read.last < from {
                    false // 1: shorter than what the reader read
                } else if let Some(expect) = &expect {
                    match read.entries.first() {
                        Some(e) if e.revocation.seq == from + 1 => &e.prev == expect, // 2
                        Some(_) => true, // 3: trimmed, below
                        None => read.last > from || &read.head == expect, // 3 or 4
                    }
                } else {
                    true
                };
                if !continues {
                    // Not the reader's history: every retained entry may be new to it.
                    out.missed = true;
                    out.entries.clear();
                    out.next = 0;
                    from = 0;
                    tag = String::new();
                    restarted = true;
                    continue;
                }
                // 3: entries after `from` that are no longer there were trimmed.
                let first_kept = read.first.unwrap_or(read.last + 1);
                out.missed |= read.last > from && first_kept > from + 1;
            }
            let n = read.entries.len();
            for e in read.entries {
                from = e.revocation.seq;
                tag = e.tag;
                out.entries.push(e.revocation);
            }
            expect = Some(tag.clone());
            // As LMDB: the last entry read, else the feed's end (entries may all be trimmed).
            out.next = match out.entries.last() {
                Some(e) => e.seq,
                None => out.next.max(read.last),
            };
            if n < READ_BATCH {
                if out.next == read.last {
                    tag = read.head; // what the next append names as `prev`
                }
                return Ok((out, tag));
            }
        }
    }

    /// Refuses a feed key that holds something other than a stream, with the scripts' words
    /// (`CHECKS` in `scripts.rs`).
    fn check_feed_type(&self, stream: &str) -> Result<()> {
        let found: String = self.run(|con| redis::cmd("TYPE").arg(stream).query(con))?;
        if found == "none" || found == "stream" {
            return Ok(());
        }
        Err(Error::Redis {
            location: self.location().to_string(),
            problem: format!(
                "the key {stream} holds a {found}, not the revocation feed (a stream): \
                 {OTHER_PROGRAM}; nothing was changed; delete it (DEL): the feed then starts \
                 over, and its readers are told that they missed revocations (they re-check \
                 their cookies)"
            ),
        })
    }

    /// The highest sequence number so far (0 when the feed is empty or missing), and the
    /// anchor there (the head).
    pub(crate) fn last_revocation(&self) -> Result<(u64, String)> {
        let read = self.read_feed(u64::MAX, 1)?;
        Ok((read.last, read.head))
    }

    /// Entries in the feed (`XLEN`; 0 when it is missing).
    pub(crate) fn feed_len(&self) -> Result<u64> {
        let stream = self.stream_key();
        self.check_feed_type(&stream)?;
        self.run(|con| redis::cmd("XLEN").arg(&stream).query(con))
    }

    /// Trims the entries older than `cutoff` (ns); returns how many.
    pub(crate) fn trim_revocations(&self, cutoff: u64) -> Result<u64> {
        let stream = self.stream_key();
        self.check_feed_type(&stream)?;
        let mut keep_from: Option<String> = None;
        let mut start = "-".to_string();
        let mut trimmed_any = false;
        loop {
            let batch: Value = self.run(|con| {
                redis::cmd("XRANGE")
                    .arg(&stream)
                    .arg(&start)
                    .arg("+")
                    .arg("COUNT")
                    .arg(1000)
                    .query(con)
            })?;
            let Value::Array(entries) = batch else {
                return Err(damaged("an unexpected reply"));
            };
            let n = entries.len();
            for e in &entries {
                let e = entry(e)?.revocation;
                if e.at_ns >= cutoff {
                    keep_from = Some(format!("0-{}", e.seq));
                    break;
                }
                trimmed_any = true;
                start = format!("(0-{}", e.seq);
            }
            if keep_from.is_some() || n < 1000 {
                break;
            }
        }
        if !trimmed_any {
            return Ok(0);
        }
        let minid = match keep_from {
            Some(id) => id,
            // Everything is old: keep nothing (the stream and its last id stay).
            None => match start
                .strip_prefix("(0-")
                .and_then(|s| s.parse::<u64>().ok())
            {
                Some(seq) => format!("0-{}", seq + 1),
                None => return Ok(0),
            },
        };
        self.run(|con| {
            redis::cmd("XTRIM")
                .arg(&stream)
                .arg("MINID")
                .arg(&minid)
                .query(con)
        })
    }
}
