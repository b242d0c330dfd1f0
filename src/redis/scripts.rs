//! The Lua scripts: each check-and-write runs atomically in Redis.
//!
//! The records are FlatBuffers, which Lua does not read: the client reads a record, decides
//! in Rust, and a script writes only if the record is still exactly the bytes it read
//! (compare-and-set). A script that finds a record changed writes nothing and says so; the
//! client reads again and retries.
//!
//! Redis does not undo a script's writes when a later command of it fails (a key of the
//! wrong type, a command the Redis user may not run): the writes before it stay. So every
//! script first checks everything that could make one of its writes fail (the functions of
//! [`CHECKS`]) and, when a check fails, returns an error reply without writing anything: a
//! script does all of its writes or none, and a call that reports an error changed nothing.

use std::sync::LazyLock;

use redis::Script;

/// Lua the scripts begin with: the checks made before a first write. Each function returns
/// nil when its check passes, else the error reply to return, which says what is wrong,
/// that nothing was changed, and what to do.
/// - `wrong_type(key, type, what, fix)`: `key` is missing or of `type` (as `TYPE` names it);
///   `what` names what it should hold, `fix` says how to mend it.
/// - `denied(label, command, args...)`: the connection's Redis user may run `command` with
///   `args` (ACL); `label` names its key in the message (a cookie key is not named: it holds
///   a cookie value).
/// - `bad_feed(key)`: the feed stream, if any, ends at an id that a `0-*` append can follow.
const CHECKS: &str = r#"
local FEED_FIX = 'delete it (DEL): the feed then starts over, and its readers are told ' ..
  'that they missed revocations (they re-check their cookies)'
local HEAD_FIX = 'delete it (DEL): the feed\'s readers are then told once that they may ' ..
  'have missed revocations (they re-check their cookies)'
local SET_FIX = 'delete it (DEL), then log that authid out (logout_authid): while its ' ..
  'set is missing, that walks every cookie, so none of its cookies is left out of the set ' ..
  'that its next login makes'
local function wrong_type(key, want, what, fix)
  local t = redis.call('TYPE', key)['ok']
  if t == 'none' or t == want then return nil end
  return redis.error_reply('WRONGTYPE the key ' .. key .. ' holds a ' .. t .. ', not ' ..
    what .. ': another program wrote it (cookiestore alone may write the keys under its ' ..
    'prefix: give other data other keys, or the store a prefix of its own); nothing was ' ..
    'changed; ' .. fix)
end
local function denied(label, command, ...)
  if redis.acl_check_cmd(command, ...) then return nil end
  return redis.error_reply('NOPERM the Redis user of the store may not run ' .. command ..
    ' on ' .. label .. ' (ACL); nothing was changed; allow that user every command ' ..
    'cookiestore uses, on all keys and channels that begin with the store\'s prefix')
end
local function bad_feed(key)
  if redis.call('EXISTS', key) == 0 then return nil end
  local info = redis.call('XINFO', 'STREAM', key)
  local last = ''
  for k = 1, #info, 2 do
    if info[k] == 'last-generated-id' then last = info[k + 1] end
  end
  if string.match(last, '^0%-%d+$') and last ~= '0-18446744073709551615' then return nil end
  return redis.error_reply('DAMAGED the revocation feed ' .. key .. ' ends at the id ' ..
    last .. ', after which cookiestore cannot append (its ids are 0-1, 0-2, ...): another ' ..
    'program added to it; nothing was changed; ' .. FEED_FIX)
end
"#;

/// A script of `body`, after [`CHECKS`].
fn checked(body: &str) -> Script {
    Script::new(&format!("{CHECKS}{body}"))
}

/// Compare-and-set one record. KEYS: cookie key, authid set key (absent: no authid).
/// ARGV: expected bytes ('' = must be absent), expiry (`keep` = keep the key's expiry, which
/// must then exist; else PXAT in ms), new bytes, the cookie value (set member).
/// Returns 1 written, 0 the record changed meanwhile, -1 the record is gone (`keep`).
/// The SET comes first: should it fail, nothing was written; what would make the set's
/// writes fail is checked before it.
pub(crate) static PUT: LazyLock<Script> = LazyLock::new(|| {
    checked(
        r#"
local cur = redis.call('GET', KEYS[1])
local expected = ARGV[1]
if expected == '' then
  if cur then return 0 end
elseif cur ~= expected then
  if not cur then return -1 end
  return 0
end
if KEYS[2] then
  local bad = wrong_type(KEYS[2], 'set', 'the set of an authid\'s cookies', SET_FIX)
    or denied(KEYS[2], 'SADD', KEYS[2], ARGV[4])
    or denied(KEYS[2], 'PEXPIREAT', KEYS[2], '1')
  if bad then return bad end
end
if ARGV[2] == 'keep' then
  redis.call('SET', KEYS[1], ARGV[3], 'KEEPTTL')
else
  redis.call('SET', KEYS[1], ARGV[3], 'PXAT', ARGV[2])
end
-- An expiry in the past drops the key at once: then it joins no authid set.
if KEYS[2] and redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('SADD', KEYS[2], ARGV[4])
  local exp = redis.call('PEXPIRETIME', KEYS[1])
  local cur_exp = redis.call('PEXPIRETIME', KEYS[2])
  if exp > 0 and cur_exp >= 0 and cur_exp < exp then
    redis.call('PEXPIREAT', KEYS[2], exp)
  elseif exp > 0 and cur_exp == -1 then
    redis.call('PEXPIREAT', KEYS[2], exp)
  end
end
return 1
"#,
    )
});

/// Compare-and-set of a record whose authentication is cleared. KEYS: cookie key, the set of
/// its old authid. ARGV: expected bytes, new bytes, the cookie value (set member).
/// The key's expiry is kept. Returns 1 written, 0 the record changed meanwhile, -1 gone.
pub(crate) static CLEAR_AUTH: LazyLock<Script> = LazyLock::new(|| {
    checked(
        r#"
local cur = redis.call('GET', KEYS[1])
if not cur then return -1 end
if cur ~= ARGV[1] then return 0 end
local bad = wrong_type(KEYS[2], 'set', 'the set of an authid\'s cookies', SET_FIX)
  or denied(KEYS[2], 'SREM', KEYS[2], ARGV[3])
if bad then return bad end
redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
redis.call('SREM', KEYS[2], ARGV[3])
return 1
"#,
    )
});

/// Revokes (deletes, appends to the feed) and unlinks (drops a stale authid-set member)
/// records, all or none. KEYS[1]: the feed stream, KEYS[2]: the feed's head key; then per
/// item: the cookie key and its authid set key. ARGV: stream cap, at (ns), kind code,
/// channel, tag base (random, fresh for each call); then per item: expected bytes ('' =
/// absent), action (`r` revoke, `u` unlink), oid, value, has-authid (`1`/`0`).
/// Each appended entry carries `tag` (the base and a counter: unique) and `prev` (the tag
/// of the entry appended before it, read from the head key: '' when there is none); the
/// head key is then set to the last appended entry's tag (see `feed.rs`).
/// Returns the number of revocations appended, or -i when item i changed meanwhile
/// (nothing is written then). A feed, head or set that a write would fail on (wrong type,
/// an id the feed cannot follow, a command the user may not run) is an error reply, and
/// nothing is written either: never a cookie deleted without its feed entry.
pub(crate) static REVOKE: LazyLock<Script> = LazyLock::new(|| {
    checked(
        r#"
local n = (#KEYS - 2) / 2
for i = 1, n do
  local b = 5 + 5 * (i - 1)
  local cur = redis.call('GET', KEYS[2 * i + 1])
  local expected = ARGV[b + 1]
  local ok
  if expected == '' then ok = not cur else ok = (cur == expected) end
  if not ok then return -i end
end
local any = false
for i = 1, n do
  local b = 5 + 5 * (i - 1)
  local bad = false
  if ARGV[b + 2] == 'r' then
    any = true
    bad = denied('a cookie key', 'DEL', KEYS[2 * i + 1])
  end
  if not bad and ARGV[b + 5] == '1' then
    bad = wrong_type(KEYS[2 * i + 2], 'set', 'the set of an authid\'s cookies', SET_FIX)
      or denied(KEYS[2 * i + 2], 'SREM', KEYS[2 * i + 2], ARGV[b + 4])
  end
  if bad then return bad end
end
if any then
  local bad = wrong_type(KEYS[1], 'stream', 'the revocation feed (a stream)', FEED_FIX)
    or wrong_type(KEYS[2], 'string', 'the revocation feed\'s head (a string)', HEAD_FIX)
    or bad_feed(KEYS[1])
    or denied(KEYS[1], 'XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '0-*', 'at', ARGV[2])
    or denied(KEYS[2], 'SET', KEYS[2], ARGV[5])
    or denied('the channel ' .. ARGV[4], 'PUBLISH', ARGV[4], '0-1')
  if bad then return bad end
end
local prev = ''
if any then prev = redis.call('GET', KEYS[2]) or '' end
local last = false
local revoked = 0
for i = 1, n do
  local b = 5 + 5 * (i - 1)
  if ARGV[b + 2] == 'r' then
    redis.call('DEL', KEYS[2 * i + 1])
    revoked = revoked + 1
    local tag = ARGV[5] .. '-' .. revoked
    last = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '0-*',
      'at', ARGV[2], 'kind', ARGV[3], 'oid', ARGV[b + 3], 'value', ARGV[b + 4],
      'tag', tag, 'prev', prev)
    prev = tag
  end
  if ARGV[b + 5] == '1' then
    redis.call('SREM', KEYS[2 * i + 2], ARGV[b + 4])
  end
end
if last then
  redis.call('SET', KEYS[2], prev)
  redis.call('PUBLISH', ARGV[4], last)
end
return revoked
"#,
    )
});

/// Raises the store's feature level. KEYS[1]: the level key. ARGV[1]: this build's level.
/// Returns the level now recorded (higher than ARGV[1] when a newer build raised it).
pub(crate) static RAISE_LEVEL: LazyLock<Script> = LazyLock::new(|| {
    checked(
        r#"
local bad = wrong_type(KEYS[1], 'string', 'the store\'s feature level (a string)',
  'delete it (DEL): the next writer records its level again')
if bad then return bad end
local cur = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local want = tonumber(ARGV[1])
if cur < want then
  redis.call('SET', KEYS[1], ARGV[1])
  return want
end
return cur
"#,
    )
});

/// The feed after a position. KEYS[1]: the stream, KEYS[2]: the head key. ARGV: the
/// sequence number to read after, the most entries to return. Returns {last generated id,
/// first retained id or nil, head tag or nil, entries}; {nil, nil, head, {}} when the
/// stream does not exist. A stream or head of the wrong type is an error reply saying so.
pub(crate) static SINCE: LazyLock<Script> = LazyLock::new(|| {
    checked(
        r#"
local bad = wrong_type(KEYS[1], 'stream', 'the revocation feed (a stream)', FEED_FIX)
  or wrong_type(KEYS[2], 'string', 'the revocation feed\'s head (a string)', HEAD_FIX)
if bad then return bad end
local head = redis.call('GET', KEYS[2])
if redis.call('EXISTS', KEYS[1]) == 0 then return {false, false, head, {}} end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local last = false
for k = 1, #info, 2 do
  if info[k] == 'last-generated-id' then last = info[k + 1] end
end
local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
local first_id = false
if first[1] then first_id = first[1][1] end
local entries = redis.call('XRANGE', KEYS[1], '(0-' .. ARGV[1], '+', 'COUNT', ARGV[2])
return {last, first_id, head, entries}
"#,
    )
});
