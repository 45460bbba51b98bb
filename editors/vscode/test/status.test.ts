import assert from "node:assert/strict";
import { test } from "node:test";
import { formatMs, modelName, statusText } from "../src/status";

test("the model's name is its file name without .gguf", () => {
  assert.equal(modelName("/a/b/SmolLM2-135M-Instruct.Q4_1.gguf"), "SmolLM2-135M-Instruct.Q4_1");
  assert.equal(modelName("C:\\m\\codellama.GGUF"), "codellama");
  assert.equal(modelName(null), "no model");
});

test("latencies are shown in milliseconds", () => {
  assert.equal(formatMs(3.14159), "3.1 ms");
  assert.equal(formatMs(123.6), "124 ms");
  assert.equal(formatMs(undefined), "–");
  assert.equal(formatMs(null), "–");
});

test("a ready server shows the last latency and the model", () => {
  const { text, tooltip } = statusText(
    {
      model: { path: "/m/tiny.gguf", state: "ready" },
      latency_ms: { p50: 20, p95: 40 },
      cache: { hit_rate: 0.25 },
      acceptance: { rate: null },
    },
    42,
  );
  assert.equal(text, "$(sparkle) 42 ms · tiny");
  assert.match(tooltip, /latency p50 \/ p95: 20 ms \/ 40 ms/);
  assert.match(tooltip, /cache hit rate: 25%/);
  assert.match(tooltip, /acceptance rate: –/);
});

test("loading and failed models are said so", () => {
  assert.match(statusText({ model: { state: "loading" } }, undefined).text, /loading/);
  const failed = statusText({ model: { state: "failed", error: "bad magic" } }, undefined);
  assert.match(failed.text, /error/);
  assert.match(failed.tooltip, /bad magic/);
});

test("the tooltip says which models apply the adapter, or why none does", () => {
  const applied = statusText(
    {
      model: {
        path: "/m/a.gguf",
        state: "ready",
        adapters: { typing: "/m/lora.gguf" },
        adapter_problem: null,
      },
    },
    1,
  );
  assert.match(applied.tooltip, /adapter: lora \(typing\)/);
  const refused = statusText(
    { model: { path: "/m/a.gguf", state: "ready", adapters: {}, adapter_problem: "not a LoRA" } },
    1,
  );
  assert.match(refused.tooltip, /adapter not used: not a LoRA/);
});
