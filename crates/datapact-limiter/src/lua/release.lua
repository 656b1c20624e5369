-- Gives back what one reservation took, exactly once: its records to the month total, its posts to the day set,
-- its charge to the charged total, each only to the generation of the key it took them from.
--
-- KEYS[1]  the node's outstanding reservations of the licensee (hash request id -> record)
-- KEYS[2]  the month total   KEYS[3]  the day set   KEYS[4]  the charged total  (as in reserve.lua)
-- ARGV[1]  request id   ARGV[2]  month label   ARGV[3]  day label
--
-- A key seeded anew since the reservation (Redis flushed, or the key expired) holds committed values only, which
-- never included this uncommitted reservation: it is left alone. An unknown request id (already settled or
-- released) changes nothing.
--
-- Returns {'released'}, {'unknown'} or {'corrupt', why} (nothing changed).

-- MAX, int and fmt: lua/prelude.lua.

local pending_key, month_key, day_key, charged_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local request_id, month_label, day_label = ARGV[1], ARGV[2], ARGV[3]

local record = redis.call('HGET', pending_key, request_id)
if not record then return {'unknown'} end

-- '1|at|month|month gen|day|day gen|charged gen|counted|charge|post,post,...'
local fields = {}
for field in string.gmatch(record .. '|', '([^|]*)|') do fields[#fields + 1] = field end
local counted, charge = int(fields[8]), int(fields[9])
if #fields ~= 10 or fields[1] ~= '1' or not counted or counted < 0 or not charge or charge < 0 then
  return {'corrupt', 'malformed reservation ' .. request_id .. ' in ' .. pending_key}
end
local month, month_gen, day, day_gen, charged_gen = fields[3], fields[4], fields[5], fields[6], fields[7]
if month ~= month_label or (day ~= '' and day ~= day_label) then
  return {'corrupt', 'reservation ' .. request_id .. ' is for ' .. month .. ' ' .. day .. ', not ' .. day_label}
end
local posts = {}
for post in string.gmatch(fields[10], '[^,]+') do posts[#posts + 1] = post end

-- Check everything, then write.
local new_used = nil
local stored = redis.call('HMGET', month_key, 'n', 'g')
if stored[2] == month_gen and counted > 0 then
  local n = int(stored[1])
  if not n or n < counted then return {'corrupt', 'month total ' .. month_key .. ' below a reservation'} end
  new_used = n - counted
end
local day_matches = day ~= '' and #posts > 0 and redis.call('HGET', day_key, '#g') == day_gen
local new_charged = nil
if charged_gen ~= '' and charge > 0 then
  stored = redis.call('HMGET', charged_key, 'n', 'g')
  if stored[2] == charged_gen then
    local n = int(stored[1])
    if not n or n < charge then return {'corrupt', 'charged total ' .. charged_key .. ' below a reservation'} end
    new_charged = n - charge
  end
end

if new_used then redis.call('HSET', month_key, 'n', fmt(new_used)) end
if day_matches then
  for i = 1, #posts, 1000 do
    redis.call('HDEL', day_key, unpack(posts, i, math.min(i + 999, #posts)))
  end
end
if new_charged then redis.call('HSET', charged_key, 'n', fmt(new_charged)) end
redis.call('HDEL', pending_key, request_id)
return {'released'}
