-- One metered response's reservation, atomically: datapact_ledger::meter_page_within_credit in Lua, applied to the
-- counts every node shares, then recorded so that it can be settled or released.
--
-- KEYS[1]  month total of (licensee, month): hash n = records counted (committed + reserved), g = generation
-- KEYS[2]  day set of (licensee, day): hash '#g' = generation, one field per post id counted that day
-- KEYS[3]  charged total of the licensee: hash n = micro-units charged (committed + reserved), g = generation
-- KEYS[4]  the node's outstanding reservations of this licensee: hash request id -> record
-- ARGV[1]  request id
-- ARGV[2]  the response's instant (ms)
-- ARGV[3]  month label (YYYY-MM)        ARGV[4]  day label (YYYY-MM-DD)
-- ARGV[5]  cap: 'none', 'hard' or 'soft' ARGV[6]  the cap's limit (records a month)
-- ARGV[7]  dedup: 'daily' or 'none'
-- ARGV[8]  prepaid: '1' or '0'
-- ARGV[9]  per-record price (micro-units)  ARGV[10] included records a month  ARGV[11] credits added (micro-units)
-- ARGV[12..15] time to live (ms) of the month total, day set, charged total and the node's reservations
-- ARGV[16..] the page: post ids in response order (decimal strings; never turned into Lua numbers)
--
-- Returns (all strings):
--   {'unseeded', what...}   a needed value is missing ('month', 'day', 'charged'): nothing was changed
--   {'duplicate'}           this node already holds a reservation under this request id: nothing was changed
--   {'refused', limit, used}
--   {'nocredit', balance, per_record}
--   {'serve', delivered, counts ('1'/'0' per delivered record), counted, cut, overage, used_after, charge, balance}
--   {'corrupt', why} / {'range', why}  a stored value is malformed / a value would leave the exact range: unchanged
--
-- Everything is read and checked before anything is written, because Redis does not roll a script back.
-- Every number stays an integer of magnitude below 2^53, so Lua's doubles hold it exactly; numbers are written with
-- %d, never tostring (which keeps only 14 digits).

-- MAX, int and fmt: lua/prelude.lua.
local FIRST_POST = 16

local month_key, day_key, charged_key, pending_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local request_id, at, month_label, day_label = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local cap_kind, cap_limit = ARGV[5], int(ARGV[6])
local daily = ARGV[7] == 'daily'
local prepaid = ARGV[8] == '1'
local per_record, included, credited = int(ARGV[9]), int(ARGV[10]), int(ARGV[11])
local month_ttl, day_ttl, charged_ttl, pending_ttl = ARGV[12], ARGV[13], ARGV[14], ARGV[15]
if not (cap_limit and per_record and included and credited) then return {'corrupt', 'bad arguments'} end

if redis.call('HEXISTS', pending_key, request_id) == 1 then return {'duplicate'} end

-- The state: a missing value is reported, never guessed.
local missing = {}
local function total(key, name)
  local stored = redis.call('HMGET', key, 'n', 'g')
  if not stored[1] and not stored[2] then
    missing[#missing + 1] = name
    return nil, nil, nil
  end
  local n = int(stored[1])
  if not n or n < 0 or not stored[2] then return nil, nil, 'malformed ' .. name .. ' total ' .. key end
  return n, stored[2], nil
end

local used, month_gen, bad = total(month_key, 'month')
if bad then return {'corrupt', bad} end
local day_gen = ''
if daily then
  day_gen = redis.call('HGET', day_key, '#g')
  if not day_gen then
    if redis.call('EXISTS', day_key) == 1 then return {'corrupt', 'day set without generation ' .. day_key} end
    missing[#missing + 1] = 'day'
    day_gen = ''
  end
end
local charged, charged_gen = 0, ''
if prepaid then
  charged, charged_gen, bad = total(charged_key, 'charged')
  if bad then return {'corrupt', bad} end
end
if #missing > 0 then
  table.insert(missing, 1, 'unseeded')
  return missing
end

-- The rule (meter_page_within_credit): the hard cap first, then the credit, then the longest prefix that fits.
local cap_remaining = nil
if cap_kind == 'hard' then
  cap_remaining = cap_limit - used
  if cap_remaining <= 0 then return {'refused', fmt(cap_limit), fmt(used)} end
end
local balance = 0
local covered = nil
if prepaid then
  balance = credited - charged
  if balance < -MAX then return {'range', 'balance below -(2^53 - 1)'} end
  if per_record > 0 then
    local included_left = included - used
    if included_left < 0 then included_left = 0 end
    local affordable = 0
    if balance > 0 then
      -- Exact floor division: fmod is exact, and so is dividing an exact multiple.
      affordable = (balance - math.fmod(balance, per_record)) / per_record
    end
    covered = included_left + affordable
    if covered == 0 then return {'nocredit', fmt(balance), fmt(per_record)} end
  end
end
local remaining = cap_remaining
if covered and (not remaining or covered < remaining) then remaining = covered end

local counts = {}
local counted_posts = {}
local seen = {}
local counted = 0
for i = FIRST_POST, #ARGV do
  local post = ARGV[i]
  local costs = true
  if daily then
    if seen[post] then
      costs = false
    else
      seen[post] = true
      costs = redis.call('HEXISTS', day_key, post) == 0
    end
  end
  if costs and remaining and counted == remaining then break end
  if costs then
    counted = counted + 1
    counts[#counts + 1] = '1'
    counted_posts[#counted_posts + 1] = post
  else
    counts[#counts + 1] = '0'
  end
end
local page_len = #ARGV - FIRST_POST + 1
local delivered = #counts
local cut = 0
if delivered < page_len then cut = 1 end
local used_after = used + counted
local charge = 0
if prepaid then
  local included_left = included - used
  if included_left < 0 then included_left = 0 end
  if included_left > counted then included_left = counted end
  charge = (counted - included_left) * per_record
end
local overage = 0
if cap_kind == 'soft' then
  local base = cap_limit
  if used > base then base = used end
  overage = used_after - base
  if overage < 0 then overage = 0 end
end
if used_after > MAX then return {'range', 'month total would pass 2^53 - 1'} end
if charged + charge > MAX then return {'range', 'charged total would pass 2^53 - 1'} end

-- Apply and record.
if counted > 0 then redis.call('HINCRBY', month_key, 'n', fmt(counted)) end
redis.call('PEXPIRE', month_key, month_ttl)
if daily then
  local fields = {}
  for _, post in ipairs(counted_posts) do
    fields[#fields + 1] = post
    fields[#fields + 1] = '1'
  end
  if #fields > 0 then redis.call('HSET', day_key, unpack(fields)) end
  redis.call('PEXPIRE', day_key, day_ttl)
end
if prepaid then
  if charge > 0 then redis.call('HINCRBY', charged_key, 'n', fmt(charge)) end
  redis.call('PEXPIRE', charged_key, charged_ttl)
end
local day_field = ''
if daily then day_field = day_label end
local record = table.concat({
  '1', at, month_label, month_gen, day_field, day_gen, charged_gen, fmt(counted), fmt(charge),
  table.concat(daily and counted_posts or {}, ','),
}, '|')
redis.call('HSET', pending_key, request_id, record)
redis.call('PEXPIRE', pending_key, pending_ttl)

local balance_text = ''
if prepaid then balance_text = fmt(balance) end
return {'serve', fmt(delivered), table.concat(counts), fmt(counted), fmt(cut), fmt(overage), fmt(used_after),
  fmt(charge), balance_text}
