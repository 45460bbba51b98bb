--- Ghost text: asks the server for inline completions while typing, draws them with extmarks,
--- and accepts all of a suggestion, its next line or its next word.
local server = require('llamacode.server')
local text = require('llamacode.text')

local M = {}

local api = vim.api
local ns = api.nvim_create_namespace('llamacode.ghost')
M.ns = ns

local TRIGGER_INVOKED = 1
local TRIGGER_AUTOMATIC = 2

---@class llamacode.Candidate
---@field text string              what is still to be inserted at the anchor
---@field replace_end integer|nil  byte column up to which accept-all replaces text on the row
---@field command table|nil        the item's command, run on acceptance
---@field reported boolean|nil     whether the outcome was already reported
---@field accepted_chars integer|nil characters taken by partial accepts so far

---@class llamacode.BufState
---@field seq integer                       bumped on every cancel; stale answers are dropped
---@field timer uv.uv_timer_t|nil
---@field request {client: vim.lsp.Client, id: integer}|nil
---@field candidates llamacode.Candidate[]
---@field index integer
---@field row integer                       anchor row (0-based)
---@field col integer                       anchor byte column (0-based)
---@field tick integer                      changedtick the candidates were made for
---@field invoked boolean                   whether the candidates answer an invoked request
---@field seen integer[]|nil                {tick, row, col} last handled by on_change

---@type table<integer, llamacode.BufState>
local states = {}

---@type number|nil milliseconds from request to answer of the last suggestion shown
local last_latency_ms = nil

---@param buf integer
---@return llamacode.BufState
local function state(buf)
  local s = states[buf]
  if not s then
    s = { seq = 0, candidates = {}, index = 1, row = 0, col = 0, tick = -1, invoked = false }
    states[buf] = s
  end
  return s
end

local function cursor()
  local pos = api.nvim_win_get_cursor(0)
  return pos[1] - 1, pos[2]
end

local function in_insert_mode()
  return api.nvim_get_mode().mode:sub(1, 1) == 'i'
end

--- Draw the current candidate: its first line inline at the cursor, the rest as virtual lines.
---@param buf integer
local function render(buf)
  api.nvim_buf_clear_namespace(buf, ns, 0, -1)
  local s = states[buf]
  local c = s and s.candidates[s.index]
  if not c then
    return
  end
  local lines = vim.split(c.text, '\n', { plain = true })
  local mark = { hl_mode = 'combine', priority = 200 }
  if lines[1] ~= '' then
    mark.virt_text = { { lines[1], 'LlamacodeGhost' } }
    mark.virt_text_pos = 'inline'
  end
  if #lines > 1 then
    mark.virt_lines = {}
    for i = 2, #lines do
      mark.virt_lines[#mark.virt_lines + 1] = { { lines[i], 'LlamacodeGhost' } }
    end
  end
  api.nvim_buf_set_extmark(buf, ns, s.row, s.col, mark)
end

local ACCEPT = 'llamacode.accept'

--- Tell the server what became of a suggestion: `accepted`, `partial` (with the number of
--- characters taken so far) or `dismissed`. Items from other servers' commands are run as
--- given on full acceptance only.
---@param buf integer
---@param c llamacode.Candidate
---@param outcome 'accepted'|'partial'|'dismissed'
local function report(buf, c, outcome)
  local cmd = c.command
  if c.reported or not cmd or not cmd.command then
    return
  end
  local command, arguments = cmd.command, cmd.arguments
  if cmd.command == ACCEPT and type(arguments) == 'table' and arguments[1] then
    if outcome == 'partial' then
      command, arguments = 'llamacode.acceptPartial', { arguments[1], c.accepted_chars or 0 }
    elseif outcome == 'dismissed' then
      command = 'llamacode.dismiss'
    end
  elseif outcome ~= 'accepted' then
    return
  end
  c.reported = outcome ~= 'partial'
  local client = server.client(buf)
  if client then
    client:request('workspace/executeCommand', {
      command = command,
      arguments = arguments,
    }, function() end, buf)
  end
end

--- Stop the pending debounce timer and cancel the in-flight request of `buf`.
---@param buf integer
function M.cancel(buf)
  local s = state(buf)
  s.seq = s.seq + 1
  if s.timer then
    s.timer:stop()
  end
  if s.request then
    pcall(s.request.client.cancel_request, s.request.client, s.request.id)
    s.request = nil
  end
end

--- Hide the suggestion of `buf` and forget its candidates; `explicit` reports the shown one
--- as dismissed (the user turned it down rather than typed past it).
---@param buf integer|nil
---@param explicit boolean|nil
function M.dismiss(buf, explicit)
  buf = buf or api.nvim_get_current_buf()
  local s = state(buf)
  local shown = s.candidates[s.index]
  if explicit and shown then
    report(buf, shown, 'dismissed')
  end
  s.candidates = {}
  s.index = 1
  if api.nvim_buf_is_valid(buf) then
    api.nvim_buf_clear_namespace(buf, ns, 0, -1)
  end
end

--- Turn the server's items into candidates relative to the cursor at (row, col).
---@param buf integer
---@param items table[]
---@param row integer
---@param col integer
---@param encoding string
---@return llamacode.Candidate[]
local function candidates_from(buf, items, row, col, encoding)
  local line = api.nvim_buf_get_lines(buf, row, row + 1, false)[1] or ''
  local out, seen = {}, {}
  for _, item in ipairs(items) do
    local insert = text.insert_text(item)
    local start_col, replace_end = col, nil
    local range = item.range
    if range and range.start.line == row then
      start_col = text.byte_col(line, range.start.character, encoding)
      if range['end'].line == row then
        local end_col = text.byte_col(line, range['end'].character, encoding)
        if end_col > col then
          replace_end = end_col
        end
      end
    end
    local rest = (range == nil or range.start.line == row) and start_col <= col
      and text.remainder(line:sub(start_col + 1, col), insert)
    if rest and rest ~= '' and not seen[rest] then
      seen[rest] = true
      out[#out + 1] = { text = rest, replace_end = replace_end, command = item.command }
    end
  end
  return out
end

--- Ask the server for inline completions at the cursor in the current buffer.
---@param invoked boolean|nil  true when the user asked (alternatives wanted)
---@param step integer|nil     move this far from the shown suggestion once alternatives arrive
function M.request(invoked, step)
  local buf = api.nvim_get_current_buf()
  local client = server.client(buf)
  if not client then
    return
  end
  M.cancel(buf)
  local s = state(buf)
  local seq = s.seq
  local row, col = cursor()
  local tick = api.nvim_buf_get_changedtick(buf)
  local shown = s.candidates[s.index] and s.candidates[s.index].text
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
  ---@diagnostic disable-next-line: inject-field
  params.context = { triggerKind = invoked and TRIGGER_INVOKED or TRIGGER_AUTOMATIC }
  local started = vim.uv.hrtime()
  local ok, id = client:request('textDocument/inlineCompletion', params, function(err, result)
    if s.seq ~= seq then
      return
    end
    s.request = nil
    if err or not result or not api.nvim_buf_is_valid(buf) then
      return
    end
    if api.nvim_get_current_buf() ~= buf or not in_insert_mode() then
      return
    end
    local r, c = cursor()
    if api.nvim_buf_get_changedtick(buf) ~= tick or r ~= row or c ~= col then
      return
    end
    local items = result.items or result
    local found = candidates_from(buf, items, row, col, client.offset_encoding)
    if #found == 0 and not invoked then
      M.dismiss(buf)
      return
    end
    if #found == 0 then
      return
    end
    last_latency_ms = (vim.uv.hrtime() - started) / 1e6
    s.candidates, s.index = found, 1
    s.row, s.col, s.tick, s.invoked = row, col, tick, invoked == true
    for i, cand in ipairs(found) do
      if cand.text == shown then
        s.index = (i - 1 + (step or 0)) % #found + 1
      end
    end
    render(buf)
    api.nvim_exec_autocmds('User', { pattern = 'LlamacodeSuggestion', modeline = false })
  end, buf)
  if ok then
    s.request = { client = client, id = id }
  end
end

--- Schedule a request after the debounce delay; each call restarts the delay.
---@param buf integer
---@param delay integer
local function schedule(buf, delay)
  local s = state(buf)
  s.timer = s.timer or assert(vim.uv.new_timer())
  s.timer:stop()
  s.timer:start(
    delay,
    0,
    vim.schedule_wrap(function()
      if api.nvim_get_current_buf() == buf and in_insert_mode() then
        M.request(false)
      end
    end)
  )
end

--- Keep the suggestion when the user typed its beginning; otherwise drop it and ask again.
---@param buf integer
---@param delay integer
---@param auto boolean
function M.on_change(buf, delay, auto)
  local s = state(buf)
  local row, col = cursor()
  local tick = api.nvim_buf_get_changedtick(buf)
  if s.seen and s.seen[1] == tick and s.seen[2] == row and s.seen[3] == col then
    return
  end
  s.seen = { tick, row, col }
  if s.candidates[1] and s.tick == tick and s.row == row and s.col == col then
    return
  end
  if s.candidates[1] and row == s.row and col > s.col then
    local line = api.nvim_buf_get_lines(buf, row, row + 1, false)[1] or ''
    local typed = line:sub(s.col + 1, col)
    local kept = {}
    for _, c in ipairs(s.candidates) do
      local rest = text.remainder(typed, c.text)
      if rest and rest ~= '' then
        c.text = rest
        if c.replace_end then
          c.replace_end = c.replace_end + #typed
        end
        kept[#kept + 1] = c
      end
    end
    if #kept > 0 then
      M.cancel(buf)
      s.candidates, s.index = kept, 1
      s.col, s.tick = col, tick
      render(buf)
      return
    end
  end
  M.dismiss(buf)
  M.cancel(buf)
  if auto then
    schedule(buf, delay)
  end
end

--- Whether a suggestion is shown in the current buffer.
---@return boolean
function M.visible()
  local s = states[api.nvim_get_current_buf()]
  return s ~= nil and s.candidates[s.index] ~= nil
end

--- The text of the suggestion shown in the current buffer (what accept would insert), or nil.
---@return string|nil
function M.current()
  local s = states[api.nvim_get_current_buf()]
  local c = s and s.candidates[s.index]
  return c and c.text
end

--- Insert all of the suggestion, or its next line or word.
---@param what 'all'|'line'|'word'
---@return boolean accepted
function M.accept(what)
  local buf = api.nvim_get_current_buf()
  local s = states[buf]
  local c = s and s.candidates[s.index]
  if not c then
    return false
  end
  local row, col = cursor()
  if row ~= s.row or col ~= s.col then
    M.dismiss(buf)
    return false
  end
  local chunk = c.text
  if what == 'line' then
    chunk = text.next_line(c.text)
  elseif what == 'word' then
    chunk = text.next_word(c.text)
  end
  local rest = c.text:sub(#chunk + 1)
  local end_col = col
  if rest == '' and c.replace_end then
    end_col = c.replace_end
  end
  M.cancel(buf)
  api.nvim_buf_set_text(buf, row, col, row, end_col, vim.split(chunk, '\n', { plain = true }))
  local new_row, new_col = text.end_of_insert(row, col, chunk)
  api.nvim_win_set_cursor(0, { new_row + 1, new_col })
  c.accepted_chars = (c.accepted_chars or 0) + vim.fn.strchars(chunk)
  report(buf, c, rest == '' and 'accepted' or 'partial')
  if rest == '' then
    M.dismiss(buf)
    return true
  end
  c.text = rest
  if c.replace_end then
    c.replace_end = new_col + (c.replace_end - col)
  end
  s.candidates, s.index = { c }, 1
  s.row, s.col, s.tick = new_row, new_col, api.nvim_buf_get_changedtick(buf)
  s.seen = { s.tick, new_row, new_col }
  render(buf)
  return true
end

--- Show the next (1) or previous (-1) alternative; asks the server for alternatives first
--- when only the automatic suggestion is known.
---@param step integer
function M.cycle(step)
  local buf = api.nvim_get_current_buf()
  local s = state(buf)
  if not s.invoked then
    M.request(true, step)
    return
  end
  local n = #s.candidates
  if n > 1 then
    s.index = (s.index - 1 + step) % n + 1
    render(buf)
  end
end

--- Index and count of the shown alternative, for statuslines.
---@return integer index, integer count
function M.position()
  local s = states[api.nvim_get_current_buf()]
  if not s or not s.candidates[1] then
    return 0, 0
  end
  return s.index, #s.candidates
end

--- Time from request to answer of the last suggestion shown, in milliseconds.
---@return number|nil
function M.last_latency_ms()
  return last_latency_ms
end

--- Forget a buffer's state when it goes away.
---@param buf integer
function M.detach(buf)
  local s = states[buf]
  if s then
    M.cancel(buf)
    if s.timer then
      s.timer:close()
    end
    states[buf] = nil
  end
end

return M
