--- :LlamacodeChat: a chat buffer whose answers stream in from `llamacode/chat`.
---
--- The buffer is the conversation: "## You" and "## llamacode" headings split it into
--- messages, so earlier turns can be edited before the next question is sent.
local server = require('llamacode.server')

local M = {}

local api = vim.api
local USER, ASSISTANT = '## You', '## llamacode'
local NAME = 'llamacode://chat'

---@class llamacode.ChatState
---@field buf integer|nil
---@field busy {client: vim.lsp.Client, id: integer, token: string}|nil
---@field streamed string   text of the answer received so far
---@field context {textDocument: table, range: table}|nil selection sent with the next question
local chat = { streamed = '' }

local token_seq = 0

--- The messages written in the chat buffer, oldest first.
---@param lines string[]
---@return {role: string, content: string}[]
function M.parse(lines)
  local messages, role, body = {}, nil, {}
  local function flush()
    if role then
      local content = vim.trim(table.concat(body, '\n'))
      if content ~= '' then
        messages[#messages + 1] = { role = role, content = content }
      end
    end
  end
  for _, line in ipairs(lines) do
    if line == USER or line == ASSISTANT then
      flush()
      role, body = line == USER and 'user' or 'assistant', {}
    elseif role then
      body[#body + 1] = line
    end
  end
  flush()
  return messages
end

local function append(lines)
  local buf = chat.buf
  local last = api.nvim_buf_line_count(buf)
  api.nvim_buf_set_lines(buf, last, last, false, lines)
end

--- Add streamed text to the end of the answer being written.
---@param chunk string
local function append_text(chunk)
  local buf = chat.buf
  if not buf or not api.nvim_buf_is_valid(buf) or chunk == '' then
    return
  end
  local last = api.nvim_buf_line_count(buf)
  local tail = api.nvim_buf_get_lines(buf, last - 1, last, false)[1] or ''
  local parts = vim.split(chunk, '\n', { plain = true })
  parts[1] = tail .. parts[1]
  api.nvim_buf_set_lines(buf, last - 1, last, false, parts)
  for _, win in ipairs(vim.fn.win_findbuf(buf)) do
    api.nvim_win_set_cursor(win, { api.nvim_buf_line_count(buf), 0 })
  end
end

--- Add a streamed piece of the answer.
---@param text string
local function receive(text)
  chat.streamed = chat.streamed .. text
  append_text(text)
end

--- The piece of the answer in a `$/progress` value: work-done reports carry it as `message`.
---@param value any
---@return string|nil
function M.text_of(value)
  if type(value) == 'table' and value.kind == 'report' and type(value.message) == 'string' then
    return value.message
  end
  return nil
end

local function finish(err, result)
  chat.busy = nil
  if err then
    append_text(('\n[error: %s]'):format(err.message or vim.inspect(err)))
  elseif chat.streamed == '' and type(result) == 'table' and type(result.text) == 'string' then
    -- The server streams only when it can report progress; otherwise the answer comes whole.
    receive(result.text)
  end
  append({ '', USER, '' })
  for _, win in ipairs(vim.fn.win_findbuf(chat.buf)) do
    api.nvim_win_set_cursor(win, { api.nvim_buf_line_count(chat.buf), 0 })
  end
  api.nvim_exec_autocmds('User', { pattern = 'LlamacodeChatDone', modeline = false })
end

--- Send the conversation in the chat buffer and stream the answer below it.
function M.send()
  local buf = chat.buf
  if not buf or not api.nvim_buf_is_valid(buf) then
    return
  end
  if chat.busy then
    vim.notify(
      'llamacode: an answer is still being written; :LlamacodeChatStop stops it',
      vim.log.levels.WARN
    )
    return
  end
  local client = server.any_client()
  if not client then
    vim.notify('llamacode: no server running; open a source file first', vim.log.levels.ERROR)
    return
  end
  local messages = M.parse(api.nvim_buf_get_lines(buf, 0, -1, false))
  if #messages == 0 or messages[#messages].role ~= 'user' then
    vim.notify('llamacode: write a question under "' .. USER .. '" first', vim.log.levels.WARN)
    return
  end
  if server.opts.chat.system_prompt then
    table.insert(messages, 1, { role = 'system', content = server.opts.chat.system_prompt })
  end
  token_seq = token_seq + 1
  local token = ('llamacode-chat-%d'):format(token_seq)
  local params = { messages = messages, workDoneToken = token }
  if chat.context then
    params.textDocument, params.range = chat.context.textDocument, chat.context.range
    chat.context = nil
  end
  append({ '', ASSISTANT, '' })
  chat.streamed = ''
  local ok, id = client:request('llamacode/chat', params, finish, 0)
  if ok then
    chat.busy = { client = client, id = id, token = token }
  else
    finish({ message = 'the server has stopped' })
  end
end

--- Stop the answer being written.
function M.stop()
  if chat.busy then
    chat.busy.client:cancel_request(chat.busy.id)
    finish({ message = 'stopped' })
  end
end

local function on_progress(ev)
  local busy = chat.busy
  local params = ev.data and ev.data.params
  if not busy or not params or params.token ~= busy.token then
    return
  end
  local text = M.text_of(params.value)
  if text then
    receive(text)
  end
end

local function create_buffer()
  local buf = api.nvim_create_buf(false, true)
  api.nvim_buf_set_name(buf, NAME)
  vim.bo[buf].buftype = 'nofile'
  vim.bo[buf].bufhidden = 'hide'
  vim.bo[buf].swapfile = false
  vim.bo[buf].filetype = 'markdown'
  api.nvim_buf_set_lines(buf, 0, -1, false, { USER, '' })
  vim.keymap.set('n', '<CR>', M.send, { buffer = buf, desc = 'llamacode: send question' })
  vim.keymap.set('i', '<C-s>', function()
    vim.cmd.stopinsert()
    M.send()
  end, { buffer = buf, desc = 'llamacode: send question' })
  vim.keymap.set('n', '<C-c>', M.stop, { buffer = buf, desc = 'llamacode: stop answer' })
  api.nvim_create_autocmd('LspProgress', {
    group = api.nvim_create_augroup('llamacode.chat', { clear = true }),
    callback = on_progress,
  })
  return buf
end

--- Open (or focus) the chat buffer; with a prompt, send it at once.
---@param args {prompt: string|nil, range: integer[]|nil}|nil
function M.open(args)
  args = args or {}
  local source = api.nvim_get_current_buf()
  if args.range and source ~= chat.buf then
    -- Whole lines: the range ends at the start of the line after the selection.
    chat.context = {
      textDocument = { uri = vim.uri_from_bufnr(source) },
      range = {
        start = { line = args.range[1] - 1, character = 0 },
        ['end'] = { line = args.range[2], character = 0 },
      },
    }
  end
  if not chat.buf or not api.nvim_buf_is_valid(chat.buf) then
    chat.buf = create_buffer()
  end
  local wins = vim.fn.win_findbuf(chat.buf)
  if #wins > 0 then
    api.nvim_set_current_win(wins[1])
  else
    vim.cmd(server.opts.chat.open_cmd)
    api.nvim_win_set_buf(0, chat.buf)
  end
  if args.prompt then
    local last = api.nvim_buf_line_count(chat.buf)
    local tail = api.nvim_buf_get_lines(chat.buf, last - 1, last, false)[1]
    if tail == '' then
      api.nvim_buf_set_lines(chat.buf, last - 1, last, false, { args.prompt })
    else
      append({ args.prompt })
    end
    M.send()
  else
    api.nvim_win_set_cursor(0, { api.nvim_buf_line_count(chat.buf), 0 })
  end
end

--- The chat buffer, if one was opened.
---@return integer|nil
function M.buffer()
  return chat.buf
end

--- Whether an answer is being streamed.
---@return boolean
function M.busy()
  return chat.busy ~= nil
end

return M
