//! The revocation feed on Redis: a stream with ids `0-seq`, so that sequence numbers are
//! dense (1, 2, 3, ...) as in LMDB, and a reader knows exactly whether it missed entries.

use redis::Value;
use uuid::Uuid;

use super::RedisBackend;
use super::scripts::SINCE;
use crate::error::{Error, Result};
use crate::revocations::{Revocation, RevocationKind, Revocations};

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

fn entry(v: &Value) -> Result<Revocation> {
    let Value::Array(parts) = v else {
        return Err(damaged("a malformed entry"));
    };
    let [id, Value::Array(fields)] = &parts[..] else {
        return Err(damaged("a malformed entry"));
    };
    let seq = seq_of(&text(id).ok_or_else(|| damaged("a malformed id"))?)?;
    let (mut at, mut kind, mut oid, mut value) = (None, None, None, None);
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
            _ => {}
        }
    }
    match (at, kind, oid, value) {
        (Some(at_ns), Some(kind), Some(oid), Some(value)) => Ok(Revocation {
            seq,
            at_ns,
            kind,
            value,
            oid,
        }),
        _ => Err(damaged(&format!("a malformed entry (seq {seq})"))),
    }
}

impl RedisBackend {
    /// The revocations after `after`, with `missed` when some of them were trimmed (or the
    /// feed was lost: Redis restarted without persistence, so it starts over below `after`).
    pub(crate) fn revocations_since(&self, after: u64) -> Result<Revocations> {
        let stream = self.stream_key();
        let mut out = Revocations {
            entries: Vec::new(),
            next: after,
            missed: false,
        };
        let mut from = after;
        loop {
            let reply: Value =
                self.run(|con| SINCE.key(&stream).arg(from).arg(READ_BATCH).invoke(con))?;
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
            let entries = match parts.get(2) {
                Some(Value::Array(entries)) => entries,
                _ => return Err(damaged("an unexpected reply")),
            };
            if from == after {
                if last < after {
                    // The feed starts over (lost, or another store's): everything is new.
                    out.missed = true;
                    from = 0;
                    out.next = 0;
                    continue;
                }
                // Entries after `after` that are no longer there were trimmed.
                let first_kept = first.unwrap_or(last + 1);
                out.missed |= last > after && first_kept > after + 1;
            }
            let n = entries.len();
            for e in entries {
                let e = entry(e)?;
                from = e.seq;
                out.entries.push(e);
            }
            // As LMDB: the last entry read, else the feed's end (entries may all be trimmed).
            out.next = match out.entries.last() {
                Some(e) => e.seq,
                None => out.next.max(last),
            };
            if n < READ_BATCH {
                return Ok(out);
            }
        }
    }

    /// The highest sequence number so far (0 when the feed is empty or missing).
    pub(crate) fn last_revocation(&self) -> Result<u64> {
        let stream = self.stream_key();
        let reply: Value = self.run(|con| SINCE.key(&stream).arg(u64::MAX).arg(1).invoke(con))?;
        match reply {
            Value::Array(parts) => match parts.first().and_then(text) {
                Some(id) => seq_of(&id),
                None => Ok(0),
            },
            _ => Err(damaged("an unexpected reply")),
        }
    }

    /// Trims the entries older than `cutoff` (ns); returns how many.
    pub(crate) fn trim_revocations(&self, cutoff: u64) -> Result<u64> {
        let stream = self.stream_key();
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
                let e = entry(e)?;
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
