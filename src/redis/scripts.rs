//! The Lua scripts: each check-and-write runs atomically in Redis.
//!
//! The records are FlatBuffers, which Lua does not read: the client reads a record, decides
//! in Rust, and a script writes only if the record is still exactly the bytes it read
//! (compare-and-set). A script that finds a record changed writes nothing and says so; the
//! client reads again and retries.

use std::sync::LazyLock;

use redis::Script;

/// Compare-and-set one record. KEYS: cookie key, authid set key (absent: no authid).
/// ARGV: expected bytes ('' = must be absent), expiry (`keep` = keep the key's expiry, which
/// must then exist; else PXAT in ms), new bytes, the cookie value (set member).
/// Returns 1 written, 0 the record changed meanwhile, -1 the record is gone (`keep`).
pub(crate) static PUT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local cur = redis.call('GET', KEYS[1])
local expected = ARGV[1]
if expected == '' then
  if cur then return 0 end
elseif cur ~= expected then
  if not cur then return -1 end
  return 0
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
    Script::new(
        r#"
local cur = redis.call('GET', KEYS[1])
if not cur then return -1 end
if cur ~= ARGV[1] then return 0 end
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
/// (nothing is written then).
pub(crate) static REVOKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
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
local prev = redis.call('GET', KEYS[2]) or ''
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
    Script::new(
        r#"
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

/// Sets an import mark, never moving its expiry earlier. KEYS[1]: the mark. ARGV: its value
/// (the expiry in ns), the expiry as PXAT (ms). Returns 1 written, 0 kept (the mark already
/// expires as late, or never).
pub(crate) static MARK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local cur = redis.call('PEXPIRETIME', KEYS[1])
if cur == -1 or cur >= tonumber(ARGV[2]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
return 1
"#,
    )
});

/// The feed after a position. KEYS[1]: the stream, KEYS[2]: the head key. ARGV: the
/// sequence number to read after, the most entries to return. Returns {last generated id,
/// first retained id or nil, head tag or nil, entries}; {nil, nil, head, {}} when the
/// stream does not exist.
pub(crate) static SINCE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
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
