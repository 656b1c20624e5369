-- Prepended to the rate, reserve and release scripts (concat! in rate.rs and reserve.rs): integers as they read and write them.
-- Every number stays an integer of magnitude below 2^53, so Lua's doubles hold it exactly; numbers
-- are written with %d, never tostring (which keeps only 14 digits).

local MAX = 9007199254740991

-- A decimal integer within the exact range, or nil.
local function int(v)
  if type(v) ~= 'string' or not string.match(v, '^%-?%d+$') then return nil end
  local n = tonumber(v)
  if n == nil or n > MAX or n < -MAX then return nil end
  return n
end

local function fmt(n) return string.format('%d', n) end

