-- Managed by the chatmail Salt formula.
-- OpenDKIM screen policy: runs before signatures are verified.
-- Only signatures made by the From: domain count (strict alignment, like
-- DMARC adkim=s); any other signature is ignored, so it can neither make
-- nor break the message in final.lua.

local from_domain = odkim.get_fromdomain(ctx)
if from_domain == nil then
  return nil
end

local nsigs = odkim.get_sigcount(ctx)
if nsigs == nil then
  return nil
end

-- Domain names compare case-insensitively.  (Only strings are lowered:
-- `opendkim -n` runs this script with placeholder values, and any Lua
-- error there crashes the config check.)
local function lower(value)
  if type(value) == "string" then
    return string.lower(value)
  end
  return value
end

from_domain = lower(from_domain)
for i = 0, nsigs - 1 do
  local sig = odkim.get_sighandle(ctx, i)
  if sig ~= nil and lower(odkim.sig_getdomain(sig)) ~= from_domain then
    odkim.sig_ignore(sig)
  end
end

return nil
