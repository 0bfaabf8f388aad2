-- Managed by the chatmail Salt formula.
-- Dovecot push_notification_lua hook, run on LMTP delivery only.
-- A new message for someone else than its sender sets the private mailbox
-- attribute /private/messagenew; Dovecot writes it through
-- mail_attribute_dict to chatmail-metadata, which sends the push
-- notification to the devices registered for that mailbox.
-- Self-sent copies (multi-device) are not notified.
-- A mailbox without chatmail-metadata's token file (metadata.json in its
-- home) has no device to notify: nothing is asked of chatmail-metadata,
-- which saves a mailbox sync and a dict transaction per delivery.

function dovecot_lua_notify_begin_txn(user)
  return user
end

local function has_device_tokens(user)
  if user.home == nil or user.home == "" then
    return true -- no home to look in: ask chatmail-metadata, as before
  end
  local tokens = io.open(user.home .. "/metadata.json", "r")
  if tokens == nil then
    return false
  end
  tokens:close()
  return true
end

function dovecot_lua_notify_event_message_new(user, event)
  local sender = event.from_address or ""
  if string.lower(user.username) == string.lower(sender) or not has_device_tokens(user) then
    return
  end
  local mailbox = user:mailbox(event.mailbox)
  mailbox:sync()
  mailbox:metadata_set("/private/messagenew", "")
  mailbox:free()
end

function dovecot_lua_notify_end_txn(ctx)
end
