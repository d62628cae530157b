-- Argo CD health check for safedeploy.dev/SafeDeployment (resource.customizations.health.
-- safedeploy.dev_SafeDeployment in argocd-cm). Argo CD runs it with gopher-lua (Lua 5.1); the
-- object is the global `obj`. It maps the operator's status to Argo CD's health:
--   status.observedGeneration behind metadata.generation  -> Progressing (spec not yet seen)
--   condition Stalled=True, phase Degraded or Blocked      -> Degraded (canary reverted, or the
--                                                             revision may not start: attestation)
--   phase Paused or Inconclusive                           -> Suspended (waits for a person:
--                                                             pause step, `kubectl safedeploy
--                                                             pause`, analysis undecided)
--   phase Healthy with condition Ready=True                -> Healthy
--   anything else (Pending, Progressing, no status yet)    -> Progressing
-- The message is the operator's status.message (or the deciding condition's message).
local hs = {}

local function condition(status, type_)
  if status == nil or status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == type_ then
      return c
    end
  end
  return nil
end

local function message(status, c, fallback)
  if status ~= nil and status.message ~= nil and status.message ~= "" then
    return status.message
  end
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return fallback
end

local status = obj.status
if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the safedeploy operator to report a status"
  return hs
end

local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the safedeploy operator to observe generation " .. string.format("%d", generation)
  return hs
end

local phase = status.phase
local stalled = condition(status, "Stalled")
if phase == "Degraded" or phase == "Blocked" or (stalled ~= nil and stalled.status == "True") then
  hs.status = "Degraded"
  local attested = condition(status, "Attested")
  if phase == "Blocked" and attested ~= nil and attested.status == "False" then
    hs.message = "Blocked: " .. message(nil, attested, "attestation rejected")
  else
    hs.message = message(status, stalled, "The canary was reverted")
  end
  return hs
end

if phase == "Paused" or phase == "Inconclusive" then
  hs.status = "Suspended"
  hs.message = message(status, condition(status, "Progressing"), "The rollout is paused")
  return hs
end

local ready = condition(status, "Ready")
if phase == "Healthy" and ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = message(status, ready, "The rollout is complete")
  return hs
end

hs.status = "Progressing"
hs.message = message(status, condition(status, "Progressing"), "The rollout is in progress")
return hs
