import assert from "node:assert/strict";
import { test } from "node:test";
import {
  DEFAULT_COMMAND,
  effective,
  languageEnabled,
  parseCommand,
  serverCommandLine,
  serverSettings,
} from "../src/settings";

test("an untrusted workspace cannot choose the server command or model", () => {
  const inspected = {
    defaultValue: DEFAULT_COMMAND,
    globalValue: ["/opt/llamacode/bin/llamacode", "serve", "--stdio"],
    workspaceValue: ["/tmp/evil.sh"],
  };
  assert.deepEqual(effective(inspected, false), inspected.globalValue);
  assert.deepEqual(effective({ workspaceFolderValue: "/w/m.gguf" }, false), undefined);
});

test("a trusted workspace's own settings win over the user's", () => {
  const inspected = { defaultValue: "", globalValue: "/u/m.gguf", workspaceValue: "/w/m.gguf" };
  assert.equal(effective(inspected, true), "/w/m.gguf");
  assert.equal(effective({ ...inspected, workspaceFolderValue: "/f/m.gguf" }, true), "/f/m.gguf");
});

test("untrusted falls back to the default when the user set nothing", () => {
  assert.deepEqual(
    effective({ defaultValue: DEFAULT_COMMAND, workspaceValue: ["x"] }, false),
    DEFAULT_COMMAND,
  );
});

test("the server command accepts an array or a string and refuses an empty one", () => {
  assert.deepEqual(parseCommand(["llamacode", "serve", "--stdio"]), DEFAULT_COMMAND);
  assert.deepEqual(parseCommand("  llamacode  serve --stdio "), DEFAULT_COMMAND);
  assert.throws(() => parseCommand([]), /serverCommand is empty/);
  assert.throws(() => parseCommand(""), /serverCommand is empty/);
  assert.throws(() => parseCommand(42), /serverCommand is empty/);
});

test("a model path becomes the server's --model flag", () => {
  assert.deepEqual(serverCommandLine(DEFAULT_COMMAND, " /m/a b.gguf "), [
    ...DEFAULT_COMMAND,
    "--model",
    "/m/a b.gguf",
  ]);
  assert.deepEqual(serverCommandLine(DEFAULT_COMMAND, ""), DEFAULT_COMMAND);
  assert.deepEqual(serverCommandLine(DEFAULT_COMMAND, undefined), DEFAULT_COMMAND);
});

test("an adapter path becomes the server's --adapter flag", () => {
  assert.deepEqual(serverCommandLine(DEFAULT_COMMAND, "/m/a.gguf", " /m/my lora.gguf "), [
    ...DEFAULT_COMMAND,
    "--model",
    "/m/a.gguf",
    "--adapter",
    "/m/my lora.gguf",
  ]);
  assert.deepEqual(serverCommandLine(DEFAULT_COMMAND, undefined, ""), DEFAULT_COMMAND);
});

test("languages are enabled by their own entry, then by '*', then by default", () => {
  assert.equal(languageEnabled(undefined, "python"), true);
  assert.equal(languageEnabled({ "*": true, markdown: false }, "markdown"), false);
  assert.equal(languageEnabled({ "*": false, python: true }, "python"), true);
  assert.equal(languageEnabled({ "*": false }, "go"), false);
  assert.equal(languageEnabled({}, "go"), true);
});

test("server settings keep only valid values, in the server's spelling", () => {
  assert.deepEqual(
    serverSettings({ maxTokens: 32, timeBudgetMs: 800, enable: { "*": true, md: false } }, true),
    { trusted: true, maxTokens: 32, timeBudgetMs: 800, languages: { "*": true, md: false } },
  );
  assert.deepEqual(serverSettings({ maxTokens: 0, timeBudgetMs: 1.5, enable: { a: "no" } }, false), {
    trusted: false,
    languages: {},
  });
});
