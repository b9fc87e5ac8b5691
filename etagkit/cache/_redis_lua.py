"""The Lua scripts of ``RedisStore`` (layout and rules in ``redis.py``): each call is one EVALSHA.

Mark lifetimes: a mark only has to outlive the entries that carry it (a missing mark reads as
"invalidated now", so a mark that expires early only costs a miss). ``begin`` and an invalidation
give a mark ``margin`` ms; a stored entry extends each of its marks to its own TTL + ``margin``
(never shortening one). So a mark never outlives what it protects by more than the margin
(issue 13: a 7-day mark per unknown Host). The clock lives ``CLOCK_TTL_MS``, refreshed on use.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

CLOCK_TTL_MS = 7 * 24 * 3600 * 1000

# Shared Lua: the hybrid clock. Marks are plain strings (hard ``h:<tag>``, soft ``s:<tag>``, and
# ``s``: the shard's latest soft mark, set with every soft one) so that one MGET reads them all;
# MGET answers nil for a key of another type, and SET overwrites any type, so a foreign value
# under a mark key reads as "no mark" and is repaired by the next write.
_LUA_CLOCK = """
local function fmt(n) return string.format('%.0f', n) end
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local CLOCK_TTL = @CLOCK_TTL@
local function read_clock(ck)
  local c = tonumber(redis.call('MGET', ck)[1])
  if c then
    redis.call('PEXPIRE', ck, CLOCK_TTL)
    return c
  end
  c = now_us()
  redis.call('SET', ck, fmt(c), 'PX', CLOCK_TTL)
  return c
end
""".replace("@CLOCK_TTL@", str(CLOCK_TTL_MS))

# KEYS: clock, hard mark keys... ARGV: margin_ms -> the clock
_BEGIN_LUA = (
    _LUA_CLOCK
    + """
local c = read_clock(KEYS[1])
if #KEYS > 1 then
  local m = redis.call('MGET', unpack(KEYS, 2))
  for i = 2, #KEYS do
    if not tonumber(m[i - 1]) then redis.call('SET', KEYS[i], fmt(c), 'PX', ARGV[1]) end
  end
end
return c
"""
)

# KEYS: entry -> nil (miss) | -1 (a foreign value under the key) | record (a hit) | {record} (a hit,
# soft-invalidated: rare, so the common reply is one bulk string, as cheap to parse as a GET's)
# The entry hash: d = record, s = started, m = its hard mark keys then the shard's latest soft mark
# key, o = its soft mark keys; m and o are concatenated MessagePack strings, so that one C call
# (cmsgpack.unpack) hands them to MGET with no table or JSON decode in between. The soft marks are
# read only if the latest soft mark is newer than `started` (rare: a soft invalidation since the
# entry's compute began). An entry of the previous layout (k = JSON mark list) has no m: a miss.
_GET_LUA = """
local function mget(packed) return redis.call('MGET', cmsgpack.unpack(packed)) end
local e = redis.pcall('HMGET', KEYS[1], 'd', 's', 'm')
if e.err then return -1 end
if not e[1] or not e[3] then return nil end
local started = tonumber(e[2])
if not started then return -1 end
local ok, m = pcall(mget, e[3])
if not ok or #m < 2 then return -1 end
local n = #m
for i = 1, n - 1 do
  local h = tonumber(m[i])
  if not h or h > started then return nil end
end
local latest = tonumber(m[n])
if latest and latest > started then
  local o = redis.call('HGET', KEYS[1], 'o')
  local sok, s = pcall(mget, o)
  if not sok then return -1 end
  for i = 1, #s do
    local v = tonumber(s[i])
    if v and v > started then return {e[1]} end
  end
end
return e[1]
"""

# KEYS: entry, clock, hard mark keys... ARGV: margin_ms, entry_ttl_ms, record, started, '1' on a
# non-home shard (a missing mark reads as invalidated at this shard's clock: see _shards.py), the
# shard's latest soft mark key, soft mark keys... (the entry's m and o fields are packed here, from
# the very key strings the script receives)
# -> 1 stored | 0 refused (a tag invalidated after `started`, or without a mark: one is created)
#    | 2 valid but not stored (entry_ttl_ms <= 0: it would expire at once)
_SET_LUA = (
    _LUA_CLOCK
    + """
local started = tonumber(ARGV[4])
local keep = tonumber(ARGV[2]) + tonumber(ARGV[1])  -- a mark outlives this entry by the margin
local stored = 1
local c = nil
if ARGV[5] == '1' then  -- a non-home shard: its clock, kept in use; a missing one starts at `started`
  c = tonumber(redis.call('MGET', KEYS[2])[1])
  if not c then c = started end
  redis.call('SET', KEYS[2], fmt(c), 'PX', CLOCK_TTL)
end
local m = redis.call('MGET', unpack(KEYS, 3))
for i = 3, #KEYS do
  local h = tonumber(m[i - 2])
  if not h then
    c = c or read_clock(KEYS[2])
    redis.call('SET', KEYS[i], fmt(c), 'PX', ARGV[1])
    if ARGV[5] ~= '1' or started < c then stored = 0 end
  elseif h > started then
    stored = 0
  elseif redis.call('PTTL', KEYS[i]) < keep then
    redis.call('PEXPIRE', KEYS[i], keep)
  end
end
redis.call('DEL', KEYS[1])  -- what was there is no newer than this value
if stored == 1 and tonumber(ARGV[2]) <= 0 then return 2 end
if stored == 1 then
  local m = {unpack(KEYS, 3)}
  m[#m + 1] = ARGV[6]
  local o = cmsgpack.pack(unpack(ARGV, 7))
  redis.call('HSET', KEYS[1], 'd', ARGV[3], 's', ARGV[4], 'm', cmsgpack.pack(unpack(m)), 'o', o)
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return stored
"""
)

# KEYS: clock, mark keys (all hard, or all soft then the shard's latest soft mark)... ARGV: margin_ms,
# channel, 'h' | 's', origin, tags... -> {the new clock, how many subscribers received the message};
# published in the same script (unless channel is '': a sharded namespace publishes after its last
# phase), with the clock as a string (cjson would round a 16-digit number) and the origin to
# acknowledge it to
_INVALIDATE_LUA = (
    _LUA_CLOCK
    + """
local c = tonumber(redis.call('MGET', KEYS[1])[1]) or 0
c = fmt(math.max(c + 1, now_us()))
redis.call('SET', KEYS[1], c, 'PX', CLOCK_TTL)
for i = 2, #KEYS do
  redis.call('SET', KEYS[i], c, 'PX', ARGV[1])
end
if ARGV[2] == '' then return {tonumber(c), 0} end
local msg = cjson.encode({f = ARGV[3], t = {unpack(ARGV, 5)}, c = c, o = ARGV[4]})
local n = redis.call('PUBLISH', ARGV[2], msg)
return {tonumber(c), n}
"""
)

# KEYS: entry. ARGV: channel, key
_DELETE_LUA = """
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[1], cjson.encode({k = ARGV[2]}))
return 1
"""

# A non-home shard's phase of an invalidation (_shards.py). KEYS: clock, mark keys (as for
# _INVALIDATE_LUA)... ARGV: margin_ms, C -> 1. Marks and the clock only grow: max(existing, C).
_RAISE_LUA = (
    _LUA_CLOCK
    + """
local c = tonumber(ARGV[2])
local m = redis.call('MGET', unpack(KEYS))
if not tonumber(m[1]) or tonumber(m[1]) < c then redis.call('SET', KEYS[1], ARGV[2], 'PX', CLOCK_TTL) end
for i = 2, #KEYS do
  local h = tonumber(m[i])
  if not h or h < c then redis.call('SET', KEYS[i], ARGV[2], 'PX', ARGV[1]) end
end
return 1
"""
)

# The last phase of a sharded invalidation. KEYS: the home clock (routes it to the home node, where
# two-level listeners subscribe). ARGV: channel, message -> how many subscribers received it
_PUBLISH_LUA = """
return redis.call('PUBLISH', ARGV[1], ARGV[2])
"""

# KEYS: lease. ARGV: token -> 1 released | 0 (not ours any more: expired, taken over)
_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True, slots=True)
class _Script:
    """A Lua script and its SHA1, for EVALSHA (redis-py's ``Script`` adds per-call overhead we avoid)."""

    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())


_BEGIN = _Script(_BEGIN_LUA)
_GET = _Script(_GET_LUA)
_SET = _Script(_SET_LUA)
_INVALIDATE = _Script(_INVALIDATE_LUA)
_DELETE = _Script(_DELETE_LUA)
_RELEASE = _Script(_RELEASE_LUA)
_RAISE = _Script(_RAISE_LUA)
_PUBLISH = _Script(_PUBLISH_LUA)
_SCRIPTS = (_BEGIN, _GET, _SET, _INVALIDATE, _DELETE, _RELEASE, _RAISE, _PUBLISH)
