//! A maintenance write's queued puts and import marks (`migrate.rs`) as one Redis
//! transaction: the records found are WATCHed and read with the other keys' types (one
//! round trip), checked here, then written between MULTI and EXEC (one more).
//!
//! Why a transaction and not a script: Redis runs a script's commands through Lua one by
//! one, in its only thread; for a restore that took 1.0–2.0 s per 100k cookies, where the
//! same SETs sent as commands take about 0.2 s. The transaction keeps what a script gave:
//! - compare-and-set: every record the batch found is WATCHed before it is read again, and
//!   EXEC writes nothing when any of them changed since (the caller then reads again and
//!   retries). A record the batch found absent, put once, is written with `SET NX`,
//!   neither watched nor read: when another client wrote the key meanwhile, that SET
//!   writes nothing while the batch's other writes are made, and the caller reads again
//!   and decides again ([`Outcome::Partly`]; its counts then call the records this batch
//!   wrote unchanged). A WATCH of those keys cost more than all of a restore's writes (a
//!   third of Redis's CPU for a restore into an empty store), for a race that needs two
//!   writers of the same values (two restores or imports of one file);
//! - all or none otherwise: the one thing that makes a command fail inside EXEC, a key of the wrong
//!   type, is found by the reads, before MULTI; a command the Redis user may not run, or a
//!   write refused for lack of memory (`OOM`), is refused while it is queued, and Redis then
//!   discards the whole transaction (`EXECABORT`).
//!
//! Only the records found are WATCHed: Redis 7.0 checks each key a WATCH adds against every key
//! the connection already watches, so a WATCH of n keys costs n² (6 ms for a batch's 1,000
//! keys, more than all its writes). The other keys need no WATCH:
//! - an authid set's expiry is moved with `PEXPIREAT NX` (a set without one) and
//!   `PEXPIREAT GT` (one ending earlier): never earlier, whatever other writers did since;
//! - an import mark's expiry is compared with what was read: two maintenance writes of the
//!   same mark at once may leave either one's (a mark is written with its cookie, whose
//!   record is WATCHed, except by a restore's mark lines);
//! - a key that another program gives another type between the read and EXEC (cookiestore
//!   never does) makes that key's write fail in EXEC while the others are made: the error
//!   says so, and what to delete.

use std::collections::{HashMap, HashSet};

use redis::{Connection, RedisError, RedisResult, Value};

use super::errors::{OTHER_PROGRAM, is_transport};
use super::{RedisBackend, tracking};
use crate::error::{Error, Result};

/// One queued write.
pub(super) enum Op {
    /// Compare-and-set: `bytes` at `key` when it still holds `expected` (empty: absent),
    /// expiring at `pxat` (ms since the epoch); while it lives, `value` is a member of the
    /// authid set `set_key`, whose expiry is never before its last cookie's.
    Put {
        key: String,
        set_key: Option<String>,
        expected: Vec<u8>,
        pxat: u64,
        bytes: Vec<u8>,
        value: String,
    },
    /// An import mark: its value is the cookie's expiry in ns, its key expires then (ms
    /// `pxat_ms(expires)`), and an existing mark's expiry is never moved earlier.
    Mark {
        key: String,
        expires: u64,
        pxat: u64,
    },
}

/// What became of a write.
enum Outcome {
    /// With the caches' lease as read after EXEC (`tracking.rs`).
    Written(Value),
    /// A record was not what its put expected, or a WATCHed key changed before EXEC.
    Changed,
    /// A record expected absent was there at EXEC (its `SET NX` wrote nothing), while the
    /// batch's other writes were made; with the lease as read after EXEC.
    Partly(Value),
    /// Refused before anything was written: the problem, for [`Error::Redis`].
    Refused(String),
}

/// Members per SADD, keys per MGET.
const CHUNK: usize = 1000;

/// The reasons another program's key makes a write impossible, and the mends.
const SET_WHAT: &str = "the set of an authid's cookies";
const SET_FIX: &str = "delete it (DEL), then log that authid out (logout_authid): while its \
    set is missing, that walks every cookie, so none of its cookies is left out of the set \
    that its next login makes";
const MARK_WHAT: &str = "an import mark (a string)";
const MARK_FIX: &str =
    "delete it (DEL): the import or restore that brings the cookie writes the mark again";

/// A key the ops write, and what the reads found at it.
struct Found {
    /// `TYPE` (`none` when absent).
    kind: String,
    /// `PEXPIRETIME`: -1 without an expiry, -2 absent.
    expires_ms: i64,
}

impl RedisBackend {
    /// Writes `ops` in order (see the module): `Ok(false)` when a record was not what its
    /// put expected or changed meanwhile (nothing was written: the caller reads again).
    ///
    /// When a process caches lookups (the caches' lease exists), it waits out the lease
    /// before it returns, as the other writes do (`RedisBackend::run_replicated`): no cache
    /// then answers from an entry older than the records it wrote.
    pub(super) fn write_ops(&self, ops: &[Op]) -> Result<bool> {
        let lease_key = tracking::lease_key(&self.prefix);
        match self.run(|con| transact(con, ops, &lease_key))? {
            Outcome::Written(lease) => {
                if let Some(wait) = tracking::writer_wait(&lease) {
                    std::thread::sleep(wait);
                }
                Ok(true)
            }
            Outcome::Partly(lease) => {
                if let Some(wait) = tracking::writer_wait(&lease) {
                    std::thread::sleep(wait);
                }
                Ok(false)
            }
            Outcome::Changed => Ok(false),
            Outcome::Refused(problem) => Err(Error::Redis {
                location: self.location().to_string(),
                problem,
            }),
        }
    }
}

/// The record keys that one put of `ops` alone writes, expecting them absent: written with
/// `SET NX`, neither WATCHed nor read (see the module).
fn fresh_keys(ops: &[Op]) -> HashSet<&str> {
    let mut puts: HashMap<&str, (usize, bool)> = HashMap::with_capacity(ops.len());
    for op in ops {
        if let Op::Put { key, expected, .. } = op {
            let (count, absent) = puts.entry(key.as_str()).or_insert((0, true));
            *count += 1;
            *absent &= expected.is_empty();
        }
    }
    puts.into_iter()
        .filter(|(_, (count, absent))| *count == 1 && *absent)
        .map(|(key, _)| key)
        .collect()
}

/// Each distinct key of `ops` once, in first-use order: records, authid sets, marks.
fn distinct_keys(ops: &[Op]) -> (Vec<&str>, Vec<&str>, Vec<&str>) {
    let mut seen = HashSet::with_capacity(2 * ops.len());
    let (mut records, mut sets, mut marks) = (Vec::new(), Vec::new(), Vec::new());
    for op in ops {
        match op {
            Op::Put { key, set_key, .. } => {
                if seen.insert(key.as_str()) {
                    records.push(key.as_str());
                }
                if let Some(set) = set_key
                    && seen.insert(set.as_str())
                {
                    sets.push(set.as_str());
                }
            }
            Op::Mark { key, .. } => {
                if seen.insert(key.as_str()) {
                    marks.push(key.as_str());
                }
            }
        }
    }
    (records, sets, marks)
}

/// The WATCH, the reads, the checks, and MULTI ... EXEC, on one connection. A WATCH is
/// never left behind on it: EXEC ends it, and every other way out sends UNWATCH.
fn transact(con: &mut Connection, ops: &[Op], lease_key: &str) -> RedisResult<Outcome> {
    let (mut records, sets, marks) = distinct_keys(ops);
    let fresh = fresh_keys(ops);
    records.retain(|key| !fresh.contains(key));
    let mut read = redis::pipe();
    if !records.is_empty() {
        read.cmd("WATCH").arg(&records).ignore();
    }
    for part in records.chunks(CHUNK) {
        read.cmd("MGET").arg(part);
    }
    read.cmd("TIME");
    for key in &sets {
        read.cmd("TYPE").arg(key);
    }
    for key in &marks {
        read.cmd("TYPE").arg(key).cmd("PEXPIRETIME").arg(key);
    }
    let replies: Vec<Value> = match read.query(con) {
        Ok(replies) => replies,
        Err(e) => return Err(unwatched(con, e)),
    };
    let mut replies = replies.into_iter();
    let mut next = || replies.next().unwrap_or(Value::Nil);
    let mut stored: HashMap<&str, Option<Vec<u8>>> = HashMap::with_capacity(records.len());
    for part in records.chunks(CHUNK) {
        let got: Vec<Option<Vec<u8>>> = redis::from_redis_value(next())?;
        stored.extend(part.iter().copied().zip(got));
    }
    let (secs, micros): (u64, u64) = redis::from_redis_value(next())?;
    let now_ms = secs * 1000 + micros / 1000;
    let mut found: HashMap<&str, Found> = HashMap::with_capacity(sets.len() + marks.len());
    for key in &sets {
        let kind: String = redis::from_redis_value(next())?;
        found.insert(
            key,
            Found {
                kind,
                expires_ms: 0,
            },
        );
    }
    for key in &marks {
        let kind: String = redis::from_redis_value(next())?;
        let expires_ms: i64 = redis::from_redis_value(next())?;
        found.insert(key, Found { kind, expires_ms });
    }
    if let Some(outcome) = check(ops, &stored, &found) {
        redis::cmd("UNWATCH").exec(con)?;
        return Ok(outcome);
    }
    let Writes {
        pipe: mut write,
        labels,
        members,
    } = writes(ops, &sets, found, now_ms, &fresh);
    write.cmd("GET").arg(lease_key);
    match write.query::<(Value, Value)>(con) {
        Ok((Value::Nil, _)) => Ok(Outcome::Changed),
        Ok((Value::Array(results), lease)) => {
            catch_up(con, &late_sets(&results, &labels), &members)?;
            match refused_nx(&results, &labels) {
            Some(keys) => not_strings(con, &keys).map(|kind| match kind {
                None => Outcome::Partly(lease),
                Some(kind) => Outcome::Refused(format!(
                    "WRONGTYPE a cookie key holds a {kind}, not a cookie record: \
                     {OTHER_PROGRAM}; the batch's other writes were made; find the keys under the store's prefix \
                     and `cookie:` that are not strings (TYPE) and delete them (DEL), then \
                     run it again"
                )),
            }),
            None => Ok(Outcome::Written(lease)),
        }
        }
        Ok((_, lease)) => Ok(Outcome::Written(lease)),
        // Refused while queued (so the transaction was discarded) or by EXEC: nothing was
        // written. A lost connection or a READONLY replica stays an error of the call.
        Err(e) if !is_transport(&e) && !matches!(e.code(), Some("READONLY" | "LOADING")) => {
            Ok(Outcome::Refused(refusal(e, &labels)))
        }
        Err(e) => Err(e),
    }
}

/// What a command of the write pipeline did, to name it in an error (a cookie key is not
/// named: it holds a cookie value).
enum Label<'a> {
    Multi,
    Record,
    /// A record's `SET NX` (a fresh key), with its key (never shown: it holds a cookie value).
    FreshRecord(&'a str),
    Mark(&'a str),
    Sadd(&'a str),
    Expire(&'a str),
    /// The `PEXPIREAT NX` of a set the reads found absent (the only one it gets).
    ExpireNew(&'a str),
    Exec,
}

impl std::fmt::Display for Label<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Label::Multi => f.write_str("MULTI"),
            Label::Record => f.write_str("SET of a cookie key"),
            Label::FreshRecord(_) => f.write_str("SET NX of a cookie key"),
            Label::Mark(key) => write!(f, "SET {key}"),
            Label::Sadd(key) => write!(f, "SADD {key}"),
            Label::Expire(key) | Label::ExpireNew(key) => write!(f, "PEXPIREAT {key}"),
            Label::Exec => f.write_str("EXEC"),
        }
    }
}

/// The problem of a write Redis refused (`e`). A command refused while queued makes Redis
/// discard the transaction (EXEC answers `EXECABORT`): nothing was written, and the first
/// refusal is named with its command (`labels`, by position in the pipeline). Without an
/// `EXECABORT`, a command failed inside EXEC (a key another program changed since the
/// reads) and the others were made.
fn refusal(e: RedisError, labels: &[Label<'_>]) -> String {
    let text = e.to_string();
    let errors = e
        .into_server_errors()
        .unwrap_or_else(|| std::sync::Arc::new([]));
    let discarded = errors.iter().any(|(_, error)| error.code() == "EXECABORT");
    if !discarded {
        return format!(
            "Redis failed a write of the batch ({text}): another program changed one of the \
             store's keys while it was written; the batch's other writes were made; find \
             the key of another type under the store's prefix (TYPE) and delete it (DEL)"
        );
    }
    let first = errors
        .iter()
        .find(|(_, error)| error.code() != "EXECABORT")
        .map(|(index, error)| {
            let command = labels.get(*index).unwrap_or(&Label::Exec);
            format!(
                "{} {} ({command})",
                error.code(),
                error.details().unwrap_or_default()
            )
        })
        .unwrap_or(text);
    format!(
        "Redis refused the write: {first}; nothing was changed; allow the store's Redis user \
         every command cookiestore uses (SET, SADD, PEXPIREAT, WATCH, MULTI, EXEC), on all \
         keys that begin with the store's prefix, and give Redis the memory to hold the \
         cookies"
    )
}

/// The keys whose `SET NX` among EXEC's `results` wrote nothing (answered nil): another
/// client wrote them after the batch's reads. `None` when every one wrote. `labels` name
/// the pipeline's commands in order, MULTI first, so EXEC's result `i` is that of
/// `labels[i + 1]`.
fn refused_nx<'a>(results: &[Value], labels: &[Label<'a>]) -> Option<Vec<&'a str>> {
    let refused: Vec<&str> = results
        .iter()
        .zip(labels.iter().skip(1))
        .filter_map(|(result, label)| match label {
            Label::FreshRecord(key) if *result == Value::Nil => Some(*key),
            _ => None,
        })
        .collect();
    (!refused.is_empty()).then_some(refused)
}

/// The sets found absent whose `PEXPIREAT NX` among EXEC's `results` set nothing
/// (answered 0): another client made the set, with its expiry, after the batch's reads.
fn late_sets<'a>(results: &[Value], labels: &[Label<'a>]) -> Vec<&'a str> {
    results
        .iter()
        .zip(labels.iter().skip(1))
        .filter_map(|(result, label)| match label {
            Label::ExpireNew(set) if *result == Value::Int(0) => Some(*set),
            _ => None,
        })
        .collect()
}

/// Gives each of the `late` sets the expiry it would have had with `GT` too: one more
/// transaction adds the batch's members again (a member is added once however often) and
/// moves the set's expiry to its last cookie's, never earlier, as [`writes`] does for a set
/// found. Until it runs, the set may end before one of those cookies.
fn catch_up(
    con: &mut Connection,
    late: &[&str],
    members: &HashMap<&str, (Vec<&str>, u64)>,
) -> RedisResult<()> {
    if late.is_empty() {
        return Ok(());
    }
    let mut pipe = redis::pipe();
    pipe.atomic();
    for set in late {
        let Some((list, last)) = members.get(set) else {
            continue;
        };
        for part in list.chunks(CHUNK) {
            pipe.cmd("SADD").arg(*set).arg(part).ignore();
        }
        for condition in ["NX", "GT"] {
            pipe.cmd("PEXPIREAT")
                .arg(*set)
                .arg(*last)
                .arg(condition)
                .ignore();
        }
    }
    pipe.exec(con)
}

/// The type of the first of `keys` that holds no string (a record), if one does: a cookie
/// key that another program wrote, which `SET NX` would never write over (and a MGET reads
/// as absent), so that a re-read would find the batch as before.
fn not_strings(con: &mut Connection, keys: &[&str]) -> RedisResult<Option<String>> {
    let mut types = redis::pipe();
    for key in keys {
        types.cmd("TYPE").arg(*key);
    }
    let kinds: Vec<String> = types.query(con)?;
    Ok(kinds
        .into_iter()
        .find(|kind| kind != "string" && kind != "none"))
}

/// `e`, after an UNWATCH on `con` when it can still be used.
fn unwatched(con: &mut Connection, e: RedisError) -> RedisError {
    if !is_transport(&e) {
        let _ = redis::cmd("UNWATCH").exec(con);
    }
    e
}

/// Why the ops cannot be written as read, if they cannot: a put whose record is not what
/// it expected (a later put of a key expects what the earlier one wrote), or an authid
/// set or mark key of another type.
fn check(
    ops: &[Op],
    stored: &HashMap<&str, Option<Vec<u8>>>,
    found: &HashMap<&str, Found>,
) -> Option<Outcome> {
    let mut written: HashMap<&str, &[u8]> = HashMap::with_capacity(ops.len());
    for op in ops {
        match op {
            Op::Put {
                key,
                set_key,
                expected,
                bytes,
                ..
            } => {
                let current = match written.get(key.as_str()) {
                    Some(bytes) => Some(*bytes),
                    None => stored.get(key.as_str()).and_then(|b| b.as_deref()),
                };
                let as_expected = match current {
                    None => expected.is_empty(),
                    Some(current) => !expected.is_empty() && current == &expected[..],
                };
                if !as_expected {
                    return Some(Outcome::Changed);
                }
                written.insert(key, bytes);
                if let Some(set) = set_key
                    && let Some(problem) = wrong_type(set, found.get(set.as_str()), "set")
                {
                    return Some(problem);
                }
            }
            Op::Mark { key, .. } => {
                if let Some(problem) = wrong_type(key, found.get(key.as_str()), "string") {
                    return Some(problem);
                }
            }
        }
    }
    None
}

/// The refusal when `key` holds neither nothing nor a `want` (as `TYPE` names it).
fn wrong_type(key: &str, found: Option<&Found>, want: &str) -> Option<Outcome> {
    let found = found?;
    if found.kind == "none" || found.kind == want {
        return None;
    }
    let (what, fix) = if want == "set" {
        (SET_WHAT, SET_FIX)
    } else {
        (MARK_WHAT, MARK_FIX)
    };
    Some(Outcome::Refused(format!(
        "WRONGTYPE the key {key} holds a {}, not {what}: {OTHER_PROGRAM}; nothing was \
         changed; {fix}",
        found.kind
    )))
}

/// The write pipeline of a batch, what names its commands, and each authid set's members
/// with its last cookie's expiry (ms).
struct Writes<'a> {
    pipe: redis::Pipeline,
    labels: Vec<Label<'a>>,
    members: HashMap<&'a str, (Vec<&'a str>, u64)>,
}

/// MULTI, the writes of `ops`, EXEC (whose reply is the pipeline's first result): each record
/// SET with its expiry; a mark SET unless the key already expires at or after it (or never);
/// each authid set's live members added, and its expiry moved to its last cookie's, never
/// earlier: `NX` (a set without an expiry, which a new set is) and `GT` (one ending
/// earlier). A set the reads found absent gets `NX` alone: the SADD before it makes the
/// set, without an expiry, unless another client made it meanwhile, with one (every
/// cookiestore write gives a set its expiry in the transaction that makes it); then `NX`
/// answers 0 and [`catch_up`] sends the `GT`. One command in five of a restore's batch.
/// `now_ms` is Redis's clock at the reads: a record expiring by then is dropped by its SET
/// at once and joins no set. The labels name each command of the pipeline, in order.
fn writes<'a>(
    ops: &'a [Op],
    sets: &[&'a str],
    mut found: HashMap<&str, Found>,
    now_ms: u64,
    fresh: &HashSet<&str>,
) -> Writes<'a> {
    let mut members: HashMap<&'a str, (Vec<&'a str>, u64)> = HashMap::with_capacity(sets.len());
    let absent: HashSet<&str> = sets
        .iter()
        .copied()
        .filter(|set| found.get(set).is_some_and(|f| f.kind == "none"))
        .collect();
    let mut write = redis::pipe();
    let mut labels = Vec::with_capacity(ops.len() + 2 * sets.len() + 2);
    write.cmd("MULTI").ignore();
    labels.push(Label::Multi);
    for op in ops {
        match op {
            Op::Put {
                key,
                set_key,
                pxat,
                bytes,
                value,
                ..
            } => {
                let set = write.cmd("SET").arg(key).arg(bytes).arg("PXAT").arg(*pxat);
                if fresh.contains(key.as_str()) {
                    set.arg("NX").ignore();
                    labels.push(Label::FreshRecord(key));
                } else {
                    set.ignore();
                    labels.push(Label::Record);
                }
                if let Some(set) = set_key
                    && *pxat > now_ms
                {
                    let (list, last) = members.entry(set.as_str()).or_default();
                    list.push(value);
                    *last = (*last).max(*pxat);
                }
            }
            Op::Mark { key, expires, pxat } => {
                let Some(mark) = found.get_mut(key.as_str()) else {
                    continue;
                };
                let current = if mark.kind == "none" {
                    -2
                } else {
                    mark.expires_ms
                };
                if current == -1 || current >= *pxat as i64 {
                    continue;
                }
                write
                    .cmd("SET")
                    .arg(key)
                    .arg(*expires)
                    .arg("PXAT")
                    .arg(*pxat)
                    .ignore();
                labels.push(Label::Mark(key));
                mark.kind = "string".into();
                mark.expires_ms = *pxat as i64;
            }
        }
    }
    for set in sets {
        let Some((list, last)) = members.get(set) else {
            continue;
        };
        for part in list.chunks(CHUNK) {
            write.cmd("SADD").arg(set).arg(part).ignore();
            labels.push(Label::Sadd(set));
        }
        if absent.contains(set) {
            write
                .cmd("PEXPIREAT")
                .arg(set)
                .arg(*last)
                .arg("NX")
                .ignore();
            labels.push(Label::ExpireNew(set));
            continue;
        }
        for condition in ["NX", "GT"] {
            write
                .cmd("PEXPIREAT")
                .arg(set)
                .arg(*last)
                .arg(condition)
                .ignore();
            labels.push(Label::Expire(set));
        }
    }
    write.cmd("EXEC");
    labels.push(Label::Exec);
    Writes {
        pipe: write,
        labels,
        members,
    }
}
