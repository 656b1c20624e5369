-- Sets one of a licensee's metering values from the ledger's committed state, only if it is still missing.
--
-- KEYS[1]  the month total or charged total (hash n, g) or the day set (hash '#g' plus one field per post id)
-- ARGV[1]  'total' or 'day'
-- ARGV[2]  time to live (ms)
-- ARGV[3]  'total': the value; 'day': the first counted post id (further post ids in ARGV[4..])
--
-- Each seeding stamps the key with a fresh generation (the server's time in microseconds), which every reservation
-- records: a release gives counts back only to the generation it took them from, never to a key seeded anew since
-- (whose committed value does not include the reservation).
--
-- Returns {'seeded'} or {'present'}.

if redis.call('EXISTS', KEYS[1]) == 1 then return {'present'} end
local time = redis.call('TIME')
local gen = time[1] .. string.format('%06d', tonumber(time[2]))
if ARGV[1] == 'total' then
  redis.call('HSET', KEYS[1], 'n', ARGV[3], 'g', gen)
else
  redis.call('HSET', KEYS[1], '#g', gen)
  local fields = {}
  for i = 3, #ARGV do
    fields[#fields + 1] = ARGV[i]
    fields[#fields + 1] = '1'
    if #fields >= 1000 then
      redis.call('HSET', KEYS[1], unpack(fields))
      fields = {}
    end
  end
  if #fields > 0 then redis.call('HSET', KEYS[1], unpack(fields)) end
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {'seeded'}
