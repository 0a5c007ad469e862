//! The Lua scripts of the Redis queue store: each change to a record is one
//! script, so it is atomic across every replica (Redis runs one at a time),
//! and each is safe to send twice (it checks what is there first), except
//! `PUSH`, which is therefore never sent again after a dropped connection.
//!
//! Keys (`{p}` is `queue.redis_prefix`, `{r}` a route name):
//! `{p}:q:{r}` the pending stream, consumer group `hookgate`; entry ids are
//! `0-{n}` with `n` from `{p}:qmeta:seq`, the id `hookgate queue` shows;
//! field `r` is the encoded record as accepted. `{p}:qstate:{r}` a hash:
//! entry id -> `attempts next_attempt last_error`, the delivery state
//! (stream entries cannot change). `{p}:dead:{r}` the dead letters.
//! `{p}:qlease:{r}` which replica delivers the route. `{p}:qmeta:bytes` the
//! bytes of every stored value; `{p}:qmeta:routes` the routes ever stored.

/// KEYS stream, bytes, seq, routes; ARGV value, max_bytes, route.
/// Returns the new id, or 0 when the value does not fit `max_bytes`.
pub(super) const PUSH: &str = r"
local size = string.len(ARGV[1])
local used = tonumber(redis.call('GET', KEYS[2]) or '0')
if used + size > tonumber(ARGV[2]) then
  return 0
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('XGROUP', 'CREATE', KEYS[1], 'hookgate', '0', 'MKSTREAM')
end
local id = redis.call('INCR', KEYS[3])
redis.call('XADD', KEYS[1], '0-' .. id, 'r', ARGV[1])
redis.call('INCRBY', KEYS[2], size)
redis.call('SADD', KEYS[4], ARGV[3])
return id
";

/// KEYS lease, stream, state; ARGV consumer, lease_ms.
///
/// Takes or renews the route's lease; without it returns `{0}`. With it,
/// the route's head for this consumer: the group's oldest pending entry if
/// this consumer owns it; claimed (`XAUTOCLAIM`, idle at least a lease) if a
/// replica that lost the lease (it crashed) owns it, `{2}` if not idle that
/// long yet; else the next new entry (`XREADGROUP >`). So at most one entry
/// of a route is pending at a time, and it is always the oldest.
/// Returns `{3, id, value, state or nil}` (`4` instead of `3`: just claimed
/// from another consumer), or `{1}` when there is none.
pub(super) const HEAD: &str = r"
local holder = redis.call('GET', KEYS[1])
if holder == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
elseif holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
else
  return {0}
end
if redis.call('EXISTS', KEYS[2]) == 0 then
  return {1}
end
local p = redis.pcall('XPENDING', KEYS[2], 'hookgate', '-', '+', 1)
if p.err then
  redis.call('XGROUP', 'CREATE', KEYS[2], 'hookgate', '0')
  p = {}
end
local entry
local code = 3
if #p > 0 then
  local id = p[1][1]
  if p[1][2] == ARGV[1] then
    local e = redis.call('XRANGE', KEYS[2], id, id)
    if #e == 0 then
      redis.call('XACK', KEYS[2], 'hookgate', id)
      return {1}
    end
    entry = e[1]
  else
    local c = redis.call('XAUTOCLAIM', KEYS[2], 'hookgate', ARGV[1], ARGV[2], id, 'COUNT', 1)
    if #c[2] == 0 then
      return {2}
    end
    entry = c[2][1]
    code = 4
  end
else
  local r = redis.call('XREADGROUP', 'GROUP', 'hookgate', ARGV[1], 'COUNT', 1, 'STREAMS', KEYS[2], '>')
  if not r then
    return {1}
  end
  entry = r[1][2][1]
end
return {code, entry[1], entry[2][2] or '', redis.call('HGET', KEYS[3], entry[1])}
";

/// KEYS stream, state; ARGV id, state. Records a failed attempt's new state.
pub(super) const RETRY: &str = r"
if #redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
";

/// KEYS stream, dead, state, bytes, seq; ARGV id, value, `raw`?
/// Moves an entry to the dead letters (with `value`, or as stored when
/// ARGV[3] is `raw`), under the same id where the dead stream allows it.
pub(super) const DEAD: &str = r"
local e = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #e == 0 then
  return 0
end
local old = e[1][2][2] or ''
local value = ARGV[2]
if ARGV[3] == 'raw' then
  value = old
end
local added = redis.pcall('XADD', KEYS[2], ARGV[1], 'r', value)
if type(added) == 'table' and added.err then
  redis.call('XADD', KEYS[2], '0-' .. redis.call('INCR', KEYS[5]), 'r', value)
end
redis.call('XACK', KEYS[1], 'hookgate', ARGV[1])
redis.call('XDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('INCRBY', KEYS[4], string.len(value) - string.len(old))
return 1
";

/// KEYS stream (pending or dead), state, bytes; ARGV id, `pending`?
/// Deletes an entry (delivered, or dropped) and frees its bytes.
pub(super) const REMOVE: &str = r"
local e = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #e == 0 then
  return 0
end
if ARGV[2] == 'pending' then
  redis.call('XACK', KEYS[1], 'hookgate', ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
end
redis.call('XDEL', KEYS[1], ARGV[1])
if redis.call('DECRBY', KEYS[3], string.len(e[1][2][2] or '')) < 0 then
  redis.call('SET', KEYS[3], 0)
end
return 1
";

/// KEYS dead, stream, bytes, seq, routes; ARGV id, value, route.
/// Appends a dead letter to the route's stream under a new id.
pub(super) const REDRIVE: &str = r"
local e = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #e == 0 then
  return 0
end
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('XGROUP', 'CREATE', KEYS[2], 'hookgate', '0', 'MKSTREAM')
end
local id = redis.call('INCR', KEYS[4])
redis.call('XADD', KEYS[2], '0-' .. id, 'r', ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[1])
redis.call('INCRBY', KEYS[3], string.len(ARGV[2]) - string.len(e[1][2][2] or ''))
redis.call('SADD', KEYS[5], ARGV[3])
return id
";

/// KEYS lease; ARGV consumer. Gives a lease up, only if it is still ours.
pub(super) const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// KEYS lease; ARGV consumer, lease_ms. Extends a lease, only if it is still ours.
pub(super) const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";
