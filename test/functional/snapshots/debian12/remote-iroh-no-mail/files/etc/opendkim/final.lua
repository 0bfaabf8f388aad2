-- Managed by the chatmail Salt formula.
-- OpenDKIM final policy: runs at the end of each message.
--
-- Outgoing mail (the reinject smtpd sets {daemon_name} to ORIGINATING)
-- is signed by OpenDKIM and needs no check here.
-- Incoming mail must carry at least one valid signature of its From:
-- domain (screen.lua ignored all others); otherwise it is rejected with
-- 554 5.7.1.  Accepted mail loses its DKIM-Signature and
-- Authentication-Results headers: they are of no use after this point
-- and only cost storage.

if odkim.get_mtasymbol(ctx, "{daemon_name}") == "ORIGINATING" then
  return nil
end

local nsigs = odkim.get_sigcount(ctx)
if nsigs == nil then
  return nil
end

local DKIM_H = "https://github.com/trusteddomainproject/OpenDKIM/blob/master/libopendkim/dkim.h#L108"
local valid = false
local error_msg = "No valid DKIM signature found."

for i = 0, nsigs - 1 do
  local sig = odkim.get_sighandle(ctx, i)
  local result = odkim.sig_result(sig)
  if result == 0 then
    valid = true
  else
    -- ignored (unaligned) signatures report -1
    error_msg = "DKIM signature is invalid, error code " .. tostring(result) .. ", search " .. DKIM_H
  end
end

if not valid then
  odkim.set_reply(ctx, "554", "5.7.1", error_msg)
  odkim.set_result(ctx, SMFIS_REJECT)
  return nil
end

-- Header indices are 0-based; delete from the last one so the indices of
-- the remaining signatures do not shift.
for i = nsigs - 1, 0, -1 do
  odkim.del_header(ctx, "DKIM-Signature", i)
end

-- Up to 10 Authentication-Results headers: each deletion of the first one
-- moves the next one to index 0.
for _ = 1, 10 do
  odkim.del_header(ctx, "Authentication-Results", 0)
end

return nil
