--- :LlamacodeStatus: the model, latency and cache statistics from `llamacode/stats`.
local server = require('llamacode.server')

local M = {}

local function fmt(v)
  if type(v) == 'number' then
    if v ~= math.floor(v) then
      return ('%.3g'):format(v)
    end
    return tostring(v)
  end
  if v == vim.NIL or v == nil then
    return '-'
  end
  return tostring(v)
end

--- Lines that show a (nested) stats table, one "a.b: value" per leaf, in a stable order.
---@param stats table
---@param prefix string|nil
---@param out string[]|nil
---@return string[]
function M.lines(stats, prefix, out)
  out = out or {}
  local keys = vim.tbl_keys(stats)
  table.sort(keys, function(a, b)
    return tostring(a) < tostring(b)
  end)
  for _, k in ipairs(keys) do
    local v = stats[k]
    local name = prefix and (prefix .. '.' .. k) or tostring(k)
    if type(v) == 'table' and not vim.islist(v) then
      M.lines(v, name, out)
    elseif type(v) == 'table' then
      out[#out + 1] = ('%s: %s'):format(name, table.concat(vim.tbl_map(fmt, v), ', '))
    else
      out[#out + 1] = ('%s: %s'):format(name, fmt(v))
    end
  end
  return out
end

--- Fetch the statistics and call `cb(err, stats)`.
---@param cb fun(err: table|nil, stats: table|nil)
function M.fetch(cb)
  local client = server.any_client()
  if not client then
    cb({ message = 'no llamacode server is running; open a source file first' }, nil)
    return
  end
  client:request('llamacode/stats', {}, function(err, result)
    cb(err, result)
  end, 0)
end

--- Show the statistics in a scratch window.
function M.show()
  M.fetch(function(err, stats)
    if err then
      vim.notify('llamacode: ' .. (err.message or vim.inspect(err)), vim.log.levels.ERROR)
      return
    end
    local lines = { 'llamacode status', '' }
    lines[#lines + 1] = 'server: ' .. table.concat(server.opts.cmd, ' ')
    local last = require('llamacode.ghost').last_latency_ms()
    lines[#lines + 1] = ('last suggestion latency (client): %s ms'):format(fmt(last))
    lines[#lines + 1] = ''
    vim.list_extend(lines, M.lines(stats or {}))
    local buf = vim.api.nvim_create_buf(false, true)
    vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
    vim.bo[buf].modifiable = false
    vim.bo[buf].bufhidden = 'wipe'
    pcall(vim.api.nvim_buf_set_name, buf, 'llamacode://status')
    vim.cmd('botright split')
    vim.api.nvim_win_set_buf(0, buf)
    vim.keymap.set('n', 'q', '<Cmd>close<CR>', { buffer = buf, nowait = true })
  end)
end

return M
