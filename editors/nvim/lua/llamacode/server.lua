--- Starting and finding the llamacode language server through vim.lsp.
local config = require('llamacode.config')

local M = {}

M.name = 'llamacode'

---@type llamacode.Options|nil
M.opts = nil

--- Client capabilities: Neovim's own plus inline completion, which Neovim 0.11 does not
--- announce by itself.
---@return lsp.ClientCapabilities
local function capabilities()
  local caps = vim.lsp.protocol.make_client_capabilities()
  caps.textDocument = caps.textDocument or {}
  caps.textDocument.inlineCompletion = caps.textDocument.inlineCompletion
    or { dynamicRegistration = false }
  caps.window = caps.window or {}
  caps.window.workDoneProgress = true
  return caps
end

--- Whether llamacode should attach to this buffer.
---@param buf integer
---@return boolean
function M.wanted(buf)
  local opts = M.opts
  if not opts or not vim.api.nvim_buf_is_valid(buf) then
    return false
  end
  if vim.bo[buf].buftype ~= '' then
    return false
  end
  local ft = vim.bo[buf].filetype
  if vim.tbl_contains(opts.disabled_filetypes, ft) then
    return false
  end
  if opts.filetypes then
    return vim.tbl_contains(opts.filetypes, ft)
  end
  return true
end

--- Start the server for `buf` (or attach the running one to it).
---@param buf integer
---@return integer|nil client_id
function M.attach(buf)
  local opts = assert(M.opts, 'llamacode: call require("llamacode").setup() first')
  local settings = config.server_settings(opts)
  local root = vim.fs.root(buf, opts.root_markers) or vim.fn.getcwd()
  return vim.lsp.start({
    name = M.name,
    cmd = opts.cmd,
    cmd_env = opts.cmd_env,
    root_dir = root,
    capabilities = capabilities(),
    init_options = settings,
    settings = { llamacode = settings },
  }, { bufnr = buf })
end

--- The llamacode client attached to `buf`, if any.
---@param buf integer|nil
---@return vim.lsp.Client|nil
function M.client(buf)
  local clients = vim.lsp.get_clients({ name = M.name, bufnr = buf })
  return clients[1]
end

--- Any running llamacode client (for commands that do not need a particular buffer).
---@return vim.lsp.Client|nil
function M.any_client()
  return M.client(vim.api.nvim_get_current_buf()) or vim.lsp.get_clients({ name = M.name })[1]
end

return M
