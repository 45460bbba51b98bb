--- Cache warming: when the cursor rests, the server evaluates the prompt a suggestion there
--- would have (`llamacode/warm`), so the first keystroke at a new place only pays for what it
--- changes. The server skips it when the model is busy and drops it on any edit or request.
local server = require('llamacode.server')

local M = {}

local api = vim.api

M.method = 'llamacode/warm'

---@type table<integer, integer[]> buffer -> {changedtick, row, col} of its last warming
local last = {}

--- Ask the server to warm its cache at the cursor of the current window, once per place and
--- buffer version.
---@param buf integer
function M.at_cursor(buf)
  if buf ~= api.nvim_get_current_buf() or not server.wanted(buf) then
    return
  end
  -- A suggestion on screen means the prompt at the cursor was just evaluated.
  if require('llamacode.ghost').visible() then
    return
  end
  local client = server.client(buf)
  if not client then
    return
  end
  local pos = api.nvim_win_get_cursor(0)
  local place = { api.nvim_buf_get_changedtick(buf), pos[1], pos[2] }
  local prev = last[buf]
  if prev and prev[1] == place[1] and prev[2] == place[2] and prev[3] == place[3] then
    return
  end
  last[buf] = place
  client:notify(M.method, vim.lsp.util.make_position_params(0, client.offset_encoding))
end

--- Forget a buffer when it goes away.
---@param buf integer
function M.detach(buf)
  last[buf] = nil
end

return M
