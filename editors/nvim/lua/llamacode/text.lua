--- Pure text helpers: which part of a suggestion a partial accept takes, and positions.
local M = {}

--- The next line of a suggestion: text up to the first newline; when the suggestion starts
--- with a newline, that newline and the whole following line.
---@param s string
---@return string
function M.next_line(s)
  local nl = s:find('\n', 1, true)
  if not nl then
    return s
  end
  if nl > 1 then
    return s:sub(1, nl - 1)
  end
  local following = s:find('\n', 2, true)
  return following and s:sub(1, following - 1) or s
end

--- The next word of a suggestion: leading blanks plus a run of word characters, or plus a
--- run of punctuation, or a line break with the next line's indentation.
---@param s string
---@return string
function M.next_word(s)
  return s:match('^[ \t]*[%w_]+')
    or s:match('^[ \t]*[^%w_%s]+')
    or s:match('^\r?\n[ \t]*')
    or s:match('^%s+')
    or s
end

--- Where the cursor lands after inserting `text` at (row, col), both 0-based, col in bytes.
---@param row integer
---@param col integer
---@param text string
---@return integer row, integer col
function M.end_of_insert(row, col, text)
  local lines = vim.split(text, '\n', { plain = true })
  if #lines == 1 then
    return row, col + #lines[1]
  end
  return row + #lines - 1, #lines[#lines]
end

--- Byte column of an LSP character offset in `line`.
---@param line string
---@param character integer
---@param encoding string 'utf-8'|'utf-16'|'utf-32'
---@return integer
function M.byte_col(line, character, encoding)
  local ok, col = pcall(vim.str_byteindex, line, encoding, character, false)
  if not ok then
    return #line
  end
  return math.min(col, #line)
end

--- The text of an inline completion item (a plain string or a snippet StringValue).
---@param item table
---@return string
function M.insert_text(item)
  local t = item.insertText
  if type(t) == 'table' then
    t = t.value or ''
    if (item.insertText.kind or '') == 'snippet' then
      -- Ghost text shows a snippet's literal text: placeholders keep their defaults.
      t = t:gsub('%${%d+:([^}]*)}', '%1'):gsub('%${%d+}', ''):gsub('%$%d+', ''):gsub('\\([$}\\])', '%1')
    end
  end
  return ((t or ''):gsub('\r\n', '\n'))
end

--- What remains to show once the buffer text between the item's start and the cursor is
--- taken into account; nil when the buffer and the item disagree.
---@param typed string  buffer text from the item's start to the cursor
---@param text string   the item's insert text
---@return string|nil
function M.remainder(typed, text)
  if text:sub(1, #typed) ~= typed then
    return nil
  end
  return text:sub(#typed + 1)
end

return M
