-- Managed by the chatmail Salt formula.
-- Dovecot push_notification_lua hook, run on LMTP delivery only.
-- A new message for someone else than its sender sets the private mailbox
-- attribute /private/messagenew; Dovecot writes it through
-- mail_attribute_dict to chatmail-metadata, which sends the push
-- notification to the devices registered for that mailbox.
-- Self-sent copies (multi-device) are not notified.

function dovecot_lua_notify_begin_txn(user)
  return user
end

function dovecot_lua_notify_event_message_new(user, event)
  local mailbox = user:mailbox(event.mailbox)
  mailbox:sync()
  local sender = event.from_address or ""
  if string.lower(user.username) ~= string.lower(sender) then
    mailbox:metadata_set("/private/messagenew", "")
  end
  mailbox:free()
end

function dovecot_lua_notify_end_txn(ctx)
end
