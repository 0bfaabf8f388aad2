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

for i = 0, nsigs - 1 do
  local sig = odkim.get_sighandle(ctx, i)
  if sig ~= nil and string.lower(odkim.sig_getdomain(sig) or "") ~= string.lower(from_domain) then
    odkim.sig_ignore(sig)
  end
end

return nil
