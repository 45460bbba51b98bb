import assert from "node:assert/strict";
import { test } from "node:test";
import { Conversation, escapeHtml } from "../src/conversation";

test("a question is sent with the history and its answer streams in", () => {
  const c = new Conversation();
  assert.deepEqual(c.ask(" hi "), [{ role: "user", content: "hi" }]);
  assert.equal(c.busy, true);
  c.append("Hel");
  c.append("lo");
  c.finish("Hello");
  assert.equal(c.busy, false);
  assert.deepEqual(c.messages, [
    { role: "user", content: "hi" },
    { role: "assistant", content: "Hello" },
  ]);
  const next = c.ask("again");
  assert.equal(next.length, 3);
  assert.equal(next[2].content, "again");
});

test("an answer that was not streamed comes from the final result", () => {
  const c = new Conversation();
  c.ask("q");
  c.finish("whole answer");
  assert.equal(c.messages[1].content, "whole answer");
});

test("one question at a time, and never an empty one", () => {
  const c = new Conversation();
  assert.throws(() => c.ask("   "), /empty/);
  c.ask("first");
  assert.throws(() => c.ask("second"), /still being written/);
});

test("errors close the answer with their message", () => {
  const c = new Conversation();
  c.ask("q");
  c.append("part");
  c.finish(undefined, "stopped");
  assert.equal(c.messages[1].content, "part\n\n[error: stopped]");
  assert.equal(c.busy, false);
});

test("HTML special characters are escaped", () => {
  assert.equal(escapeHtml(`<a href="x">'&'</a>`), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
});
