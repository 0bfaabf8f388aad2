-- Managed by the chatmail Salt formula.
-- Dovecot 2.4's passdb/userdb for the relay.  2.4 has no dict passdb, so
-- this script asks doveauth the same questions 2.3's dict passdb asked
-- (auth.conf), over doveauth's dict-protocol socket:
--   passdb: L shared/passdb/<password>"<user>  (creates the account on
--           the first login; the answer's hash is checked by Dovecot, so
--           a wrong password on an existing account fails)
--   userdb: L shared/userdb/<user>
--   userdb iteration (doveadm user '*', doveadm -A): I<flags> <max> shared/userdb/
-- The answer is doveauth's flat JSON object of strings; its "password"
-- names its own scheme.  Runs in auth-worker (user vmail, use_worker).
local unix = require "socket.unix"

local SOCKET = "/run/doveauth/doveauth.socket"
local USERDB_PREFIX = "shared/userdb/"
local TIMEOUT = 10  -- seconds; doveauth answers in about a millisecond
local conn = nil

-- Dovecot's %E: backslash before " ' and \ (doveauth splits on ")
local function key_escape(s)
  return (s:gsub("[\\\"']", "\\%0"))
end

-- Dovecot's str_tabescape() for one dict-protocol field
local TAB_ESCAPES = { ["\1"] = "\1" .. "1", ["\t"] = "\1t", ["\r"] = "\1r", ["\n"] = "\1n", ["\0"] = "\1" .. "0" }
local function tab_escape(s)
  return (s:gsub("[%z\1\t\r\n]", TAB_ESCAPES))
end
local TAB_UNESCAPES = { ["1"] = "\1", t = "\t", r = "\r", n = "\n", ["0"] = "\0" }
local function tab_unescape(s)
  return (s:gsub("\1(.)", TAB_UNESCAPES))
end

local function connect()
  local c = unix()
  c:settimeout(TIMEOUT)
  local ok, err = c:connect(SOCKET)
  if not ok then
    c:close()
    return nil, err
  end
  return c
end

-- One dict lookup: the value, false (no such key) or nil and an error.
local function lookup(key, user)
  local line = "L" .. tab_escape(key) .. "\t" .. tab_escape(user) .. "\n"
  for _ = 1, 2 do  -- a connection doveauth closed (restart) is retried once
    if conn == nil then
      local err
      conn, err = connect()
      if conn == nil then
        return nil, "cannot connect to " .. SOCKET .. ": " .. tostring(err)
      end
    end
    local reply, err
    if conn:send(line) then
      reply, err = conn:receive("*l")
    end
    if reply ~= nil then
      local status = reply:sub(1, 1)
      if status == "O" then
        return tab_unescape(reply:sub(2))
      elseif status == "N" then
        return false
      end
      return nil, "doveauth failed the lookup (" .. reply .. ")"
    end
    conn:close()
    conn = nil
  end
  return nil, "no answer from " .. SOCKET
end

-- doveauth's answer: a flat JSON object whose values are strings
local JSON_ESCAPES = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }
local function json_string(s)
  return (s:gsub("\\(u?)(%x?%x?%x?%x?)", function(u, hex)
    if u == "u" then
      return utf8.char(tonumber(hex, 16))
    end
    return nil
  end):gsub("\\(.)", JSON_ESCAPES))
end
local function parse_entry(text)
  local entry = {}
  for k, v in text:gmatch('"([%w_]+)":%s*"(.-[^\\])"') do
    entry[k] = json_string(v)
  end
  return entry
end

local function account(kind, key, user)
  local value, err = lookup(key, user)
  if value == nil then
    return nil, err
  elseif value == false then
    return false
  end
  return parse_entry(value)
end

function auth_passdb_lookup(req)
  local password = req.password
  if password == nil or password == "" then
    return dovecot.auth.PASSDB_RESULT_USER_UNKNOWN, "no cleartext password"
  end
  local key = "shared/passdb/" .. key_escape(password) .. '"' .. key_escape(req.user)
  local entry, err = account("passdb", key, req.user)
  if entry == nil then
    return dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE, err
  elseif entry == false or entry.password == nil then
    return dovecot.auth.PASSDB_RESULT_USER_UNKNOWN, "no such account"
  end
  return dovecot.auth.PASSDB_RESULT_OK, { password = entry.password, user = entry.addr }
end

function auth_userdb_lookup(req)
  local entry, err = account("userdb", USERDB_PREFIX .. key_escape(req.user), req.user)
  if entry == nil then
    return dovecot.auth.USERDB_RESULT_INTERNAL_FAILURE, err
  elseif entry == false or entry.home == nil then
    return dovecot.auth.USERDB_RESULT_USER_UNKNOWN, "no such account"
  end
  return dovecot.auth.USERDB_RESULT_OK, { home = entry.home, uid = entry.uid, gid = entry.gid }
end

-- Every account, for doveadm's userdb iteration: doveauth lists the
-- account directories as rows "O<key>\t<value>", ending with an empty line.
function auth_userdb_iterate()
  local users = {}
  local line = "I0\t0\t" .. tab_escape(USERDB_PREFIX) .. "\t\n"
  local c, err = connect()
  if c == nil then
    error("cannot connect to " .. SOCKET .. ": " .. tostring(err))
  end
  local ok, send_err = c:send(line)
  if not ok then
    c:close()
    error("cannot ask " .. SOCKET .. ": " .. tostring(send_err))
  end
  while true do
    local reply, receive_err = c:receive("*l")
    if reply == nil then
      c:close()
      error("no complete answer from " .. SOCKET .. ": " .. tostring(receive_err))
    elseif reply == "" then
      break
    end
    local key = tab_unescape((reply:sub(2):match("^[^\t]*")))
    if reply:sub(1, 1) == "O" and key:sub(1, #USERDB_PREFIX) == USERDB_PREFIX then
      users[#users + 1] = key:sub(#USERDB_PREFIX + 1)
    end
  end
  c:close()
  return users
end
