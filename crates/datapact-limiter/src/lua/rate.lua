-- One fixed-window rate check, atomically: datapact_terms::RateLimiter::check in Lua.
--
-- KEYS[1]  the counter hash of (licensee, endpoint): s = window start (ms), w = window length (ms), c = count
-- ARGV[1]  now (ms, the caller's clock)
-- ARGV[2]  start of the epoch-aligned window holding now (computed by the caller: window_start(now, w))
-- ARGV[3]  window length (ms)
-- ARGV[4]  requests allowed per window
-- ARGV[5]  how long after its window ends a counter is kept (ms)
-- ARGV[6]  'count', or 'peek' to report the state a request would see without counting it or writing anything
--
-- Returns {'ok', allowed (1/0), start, window, count} (all strings), or {'corrupt', why}.
-- Every number stays an integer below 2^53, so Lua's doubles hold it exactly; formatted with %d, never tostring.

-- MAX, int and fmt: lua/prelude.lua.

local now, start, window, limit, keep = int(ARGV[1]), int(ARGV[2]), int(ARGV[3]), int(ARGV[4]), int(ARGV[5])
if not (now and start and window and limit and keep) then return {'corrupt', 'bad arguments'} end

local s, w, c = start, window, 0
local stored = redis.call('HMGET', KEYS[1], 's', 'w', 'c')
if stored[1] or stored[2] or stored[3] then
  local ss, sw, sc = int(stored[1]), int(stored[2]), int(stored[3])
  if not (ss and sw and sc and sw > 0 and sc >= 0) then
    return {'corrupt', 'malformed rate counter ' .. KEYS[1]}
  end
  if ss + sw + keep <= now then
    -- Ended long enough ago to be swept: as if absent (the in-process limiter sweeps within a minute too).
  elseif sw == window then
    -- The same window keeps its count, a later one starts at 0, an earlier now (a clock stepped back) keeps it.
    if start > ss then s, w, c = start, window, 0 else s, w, c = ss, sw, sc end
  else
    -- A changed window length carries the count over if the old window overlaps the new one.
    local overlaps = ss < start + window and start < ss + sw
    s, w = start, window
    if overlaps then c = sc else c = 0 end
  end
end

local allowed = 0
if c < limit then allowed = 1 end
if ARGV[6] == 'peek' then return {'ok', fmt(allowed), fmt(s), fmt(w), fmt(c)} end
c = c + allowed
redis.call('HSET', KEYS[1], 's', fmt(s), 'w', fmt(w), 'c', fmt(c))
local ttl = s + w + keep - now
if ttl < 1 then ttl = 1 end
redis.call('PEXPIRE', KEYS[1], fmt(ttl))
return {'ok', fmt(allowed), fmt(s), fmt(w), fmt(c)}
