--- Options for llamacode.nvim: defaults, merging and validation.
local M = {}

---@class llamacode.Keys
---@field accept string|false       accept the whole suggestion
---@field accept_line string|false  accept the next line of the suggestion
---@field accept_word string|false  accept the next word of the suggestion
---@field next string|false         show the next alternative
---@field prev string|false         show the previous alternative
---@field dismiss string|false      hide the suggestion

---@class llamacode.Options
M.defaults = {
  -- Command that starts the language server over stdio.
  cmd = { 'llamacode', 'serve', '--stdio' },
  -- Extra environment variables for the server process.
  cmd_env = nil,
  -- Files whose nearest ancestor holds one of these names share that ancestor as root.
  root_markers = { '.git' },
  -- Path of a GGUF model; nil lets the server use its default model.
  model_path = nil,
  -- Path of a GGUF LoRA adapter, applied to the server's models whose tensors it fits.
  adapter_path = nil,
  -- Most tokens generated for one inline suggestion; nil keeps the server's setting.
  max_tokens = nil,
  -- Time budget for one inline suggestion in milliseconds; nil keeps the server's setting.
  time_budget_ms = nil,
  -- Further server settings, sent as initializationOptions next to the three above.
  server_settings = {},
  -- Filetypes to attach to; nil attaches to every normal file buffer.
  filetypes = nil,
  -- Filetypes never attached to, even when `filetypes` is nil.
  disabled_filetypes = { 'help', 'gitcommit', 'gitrebase' },
  -- Ask for a suggestion automatically while typing in insert mode.
  auto_trigger = true,
  -- Quiet time after the last keystroke before a suggestion is requested.
  debounce_ms = 75,
  -- Where the cursor rests (CursorHold, CursorHoldI), have the server evaluate the prompt a
  -- suggestion there would have, so the first keystroke there is fast.
  warm = true,
  -- Use Neovim's own vim.lsp.inline_completion (Neovim 0.12+) when it exists.
  use_builtin = true,
  -- Insert-mode keys; false leaves a key unmapped. Each key keeps its usual meaning when no
  -- suggestion is shown.
  keys = {
    accept = '<Tab>',
    accept_line = '<M-Down>',
    accept_word = '<M-Right>',
    next = '<M-]>',
    prev = '<M-[>',
    dismiss = '<C-]>',
  },
  -- Highlight group linked to by LlamacodeGhost (the ghost text).
  ghost_hl = 'Comment',
  chat = {
    -- Window command that opens the chat buffer.
    open_cmd = 'botright vsplit',
    -- System prompt sent before the conversation; nil lets the server choose.
    system_prompt = nil,
  },
}

-- Options whose default is nil, so they are absent from M.defaults.
local optional = {
  cmd_env = true,
  model_path = true,
  adapter_path = true,
  filetypes = true,
  max_tokens = true,
  time_budget_ms = true,
}

local function check_keys(keys)
  for name, value in pairs(keys) do
    if M.defaults.keys[name] == nil then
      error(('llamacode: unknown key %q in keys (known: %s)'):format(
        name,
        table.concat(vim.tbl_keys(M.defaults.keys), ', ')
      ))
    end
    if value ~= false and type(value) ~= 'string' then
      error(('llamacode: keys.%s must be a key string or false'):format(name))
    end
  end
end

--- Merge user options over the defaults and reject unknown or mistyped ones.
---@param user table|nil
---@return llamacode.Options
function M.resolve(user)
  user = user or {}
  for name in pairs(user) do
    if M.defaults[name] == nil and not optional[name] then
      error(('llamacode: unknown option %q; see :help llamacode-options'):format(name))
    end
  end
  local opts = vim.tbl_deep_extend('force', vim.deepcopy(M.defaults), user)
  if user.cmd then
    opts.cmd = user.cmd
  end
  if user.filetypes then
    opts.filetypes = user.filetypes
  end
  vim.validate('cmd', opts.cmd, 'table')
  vim.validate('debounce_ms', opts.debounce_ms, 'number')
  vim.validate('auto_trigger', opts.auto_trigger, 'boolean')
  vim.validate('warm', opts.warm, 'boolean')
  vim.validate('use_builtin', opts.use_builtin, 'boolean')
  vim.validate('max_tokens', opts.max_tokens, 'number', true)
  vim.validate('time_budget_ms', opts.time_budget_ms, 'number', true)
  vim.validate('model_path', opts.model_path, 'string', true)
  vim.validate('adapter_path', opts.adapter_path, 'string', true)
  vim.validate('server_settings', opts.server_settings, 'table')
  vim.validate('filetypes', opts.filetypes, 'table', true)
  vim.validate('disabled_filetypes', opts.disabled_filetypes, 'table')
  vim.validate('keys', opts.keys, 'table')
  check_keys(opts.keys)
  if #opts.cmd == 0 then
    error('llamacode: cmd must name the server program, e.g. { "llamacode", "serve", "--stdio" }')
  end
  return opts
end

--- Settings the server receives as initializationOptions and through didChangeConfiguration.
---@param opts llamacode.Options
---@return table
function M.server_settings(opts)
  local settings = vim.deepcopy(opts.server_settings)
  -- Options come from the user's own configuration, so the server may load the model they name.
  settings.trusted = true
  settings.maxTokens = settings.maxTokens or opts.max_tokens
  settings.timeBudgetMs = settings.timeBudgetMs or opts.time_budget_ms
  if opts.model_path then
    settings.modelPath = settings.modelPath or vim.fs.normalize(opts.model_path)
  end
  if opts.adapter_path then
    settings.adapterPath = settings.adapterPath or vim.fs.normalize(opts.adapter_path)
  end
  return settings
end

return M
