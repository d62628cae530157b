-- Runs an Argo CD health-check script outside Argo CD, as Argo CD does: the object is the global
-- `obj`, the script returns {status = ..., message = ...}. Works with Lua 5.1 (gopher-lua, which
-- Argo CD embeds, implements 5.1) and 5.4.
-- Usage: lua argocd-health-runner.lua SCRIPT.lua OBJECT.json   -> prints "<status>\t<message>"
local cjson = require "cjson"
local script_path, object_path = arg[1], arg[2]
assert(script_path and object_path, "usage: argocd-health-runner.lua SCRIPT.lua OBJECT.json")
local file = assert(io.open(object_path, "r"))
local data = file:read("*a")
file:close()
local env = setmetatable({ obj = cjson.decode(data) }, { __index = _G })
local chunk
if setfenv then
  chunk = assert(loadfile(script_path))
  setfenv(chunk, env)
else
  chunk = assert(loadfile(script_path, "t", env))
end
local hs = chunk()
assert(type(hs) == "table", "the script returned no table")
local valid = { Healthy = true, Progressing = true, Degraded = true, Suspended = true, Missing = true, Unknown = true }
assert(valid[hs.status], "invalid health status " .. tostring(hs.status))
io.write(hs.status, "\t", hs.message or "", "\n")
