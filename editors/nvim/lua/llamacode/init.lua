--- llamacode.nvim: inline completion and chat from a local model through `llamacode serve`.
local config = require('llamacode.config')
local server = require('llamacode.server')

local M = {}

local api = vim.api

--- Whether Neovim's own inline completion (0.12+) draws and accepts suggestions.
---@return boolean
function M.uses_builtin()
  local opts = server.opts
  return opts ~= nil and opts.use_builtin and vim.lsp.inline_completion ~= nil
end

--- An insert-mode mapping that runs `action` while a suggestion is shown and otherwise
--- types the key as if it were not mapped.
local function map_own(lhs, action, desc)
  local ghost = require('llamacode.ghost')
  vim.keymap.set('i', lhs, function()
    if ghost.visible() then
      return ('<Cmd>lua require("llamacode.ghost").%s<CR>'):format(action)
    end
    return lhs
  end, { expr = true, replace_keycodes = true, silent = true, desc = desc })
end

local function map_builtin(keys)
  local ic = vim.lsp.inline_completion
  if keys.accept then
    vim.keymap.set('i', keys.accept, function()
      if not ic.get() then
        return keys.accept
      end
    end, { expr = true, replace_keycodes = true, silent = true, desc = 'llamacode: accept' })
  end
  if keys.next then
    vim.keymap.set('i', keys.next, function()
      ic.select({ count = 1 })
    end, { desc = 'llamacode: next suggestion' })
  end
  if keys.prev then
    vim.keymap.set('i', keys.prev, function()
      ic.select({ count = -1 })
    end, { desc = 'llamacode: previous suggestion' })
  end
end

local function map_keys(keys)
  if M.uses_builtin() then
    map_builtin(keys)
    return
  end
  local actions = {
    accept = { "accept('all')", 'llamacode: accept suggestion' },
    accept_line = { "accept('line')", 'llamacode: accept next line' },
    accept_word = { "accept('word')", 'llamacode: accept next word' },
    dismiss = { 'dismiss(nil, true)', 'llamacode: dismiss suggestion' },
  }
  for name, lhs in pairs(keys) do
    if lhs and actions[name] then
      map_own(lhs, actions[name][1], actions[name][2])
    end
  end
  -- Cycling also works with nothing shown: it asks for alternatives.
  if keys.next then
    vim.keymap.set('i', keys.next, function()
      require('llamacode.ghost').cycle(1)
    end, { silent = true, desc = 'llamacode: next suggestion' })
  end
  if keys.prev then
    vim.keymap.set('i', keys.prev, function()
      require('llamacode.ghost').cycle(-1)
    end, { silent = true, desc = 'llamacode: previous suggestion' })
  end
end

local function own_autocmds(group, opts)
  local ghost = require('llamacode.ghost')
  local function ours(buf)
    return server.client(buf) ~= nil
  end
  api.nvim_create_autocmd({ 'TextChangedI', 'TextChangedP', 'CursorMovedI' }, {
    group = group,
    callback = function(ev)
      if ours(ev.buf) then
        ghost.on_change(ev.buf, opts.debounce_ms, opts.auto_trigger)
      end
    end,
  })
  api.nvim_create_autocmd('InsertEnter', {
    group = group,
    callback = function(ev)
      if ours(ev.buf) and opts.auto_trigger then
        ghost.on_change(ev.buf, opts.debounce_ms, true)
      end
    end,
  })
  api.nvim_create_autocmd({ 'InsertLeave', 'BufLeave' }, {
    group = group,
    callback = function(ev)
      ghost.cancel(ev.buf)
      ghost.dismiss(ev.buf, true)
    end,
  })
  api.nvim_create_autocmd({ 'BufUnload', 'BufWipeout' }, {
    group = group,
    callback = function(ev)
      ghost.detach(ev.buf)
    end,
  })
end

--- Warm the server's cache where the cursor rests: in insert mode, and in normal mode since the
--- user may be about to type there.
local function warm_autocmds(group)
  local warm = require('llamacode.warm')
  api.nvim_create_autocmd({ 'CursorHold', 'CursorHoldI' }, {
    group = group,
    callback = function(ev)
      warm.at_cursor(ev.buf)
    end,
  })
  api.nvim_create_autocmd({ 'BufUnload', 'BufWipeout' }, {
    group = group,
    callback = function(ev)
      warm.detach(ev.buf)
    end,
  })
end

local function commands()
  api.nvim_create_user_command('LlamacodeChat', function(cmd)
    require('llamacode.chat').open({
      prompt = cmd.args ~= '' and cmd.args or nil,
      range = cmd.range > 0 and { cmd.line1, cmd.line2 } or nil,
    })
  end, { nargs = '*', range = true, desc = 'Open the llamacode chat buffer' })
  api.nvim_create_user_command('LlamacodeChatStop', function()
    require('llamacode.chat').stop()
  end, { desc = 'Stop the chat answer being written' })
  api.nvim_create_user_command('LlamacodeStatus', function()
    require('llamacode.status').show()
  end, { desc = 'Show the llamacode model, latency and cache statistics' })
  if not M.uses_builtin() then
    api.nvim_create_user_command('LlamacodeSuggest', function()
      require('llamacode.ghost').request(true)
    end, { desc = 'Ask for inline suggestions at the cursor' })
  end
end

--- Configure llamacode: start the server for matching buffers, map keys, define commands.
---@param user table|nil  see :help llamacode-options
function M.setup(user)
  local opts = config.resolve(user)
  server.opts = opts
  api.nvim_set_hl(0, 'LlamacodeGhost', { link = opts.ghost_hl, default = true })
  local group = api.nvim_create_augroup('llamacode', { clear = true })
  api.nvim_create_autocmd('FileType', {
    group = group,
    callback = function(ev)
      if server.wanted(ev.buf) then
        server.attach(ev.buf)
      end
    end,
  })
  if M.uses_builtin() then
    api.nvim_create_autocmd('LspAttach', {
      group = group,
      callback = function(ev)
        local client = vim.lsp.get_client_by_id(ev.data.client_id)
        if client and client.name == server.name then
          vim.lsp.inline_completion.enable(true, { bufnr = ev.buf, client_id = client.id })
        end
      end,
    })
  else
    own_autocmds(group, opts)
  end
  if opts.warm then
    warm_autocmds(group)
  end
  map_keys(opts.keys)
  commands()
  -- Buffers already open when setup runs.
  for _, buf in ipairs(api.nvim_list_bufs()) do
    if api.nvim_buf_is_loaded(buf) and vim.bo[buf].filetype ~= '' and server.wanted(buf) then
      server.attach(buf)
    end
  end
end

return M
