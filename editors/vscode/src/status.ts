// Status bar text from the server's `llamacode/stats` answer and the last measured latency.

/** The parts of `llamacode/stats` the status bar shows. */
export interface Stats {
  model?: {
    path?: string | null;
    state?: string;
    error?: string | null;
    adapters?: Record<string, string>;
    adapter_problem?: string | null;
  };
  latency_ms?: { p50?: number | null; p95?: number | null };
  cache?: { hit_rate?: number | null };
  acceptance?: { rate?: number | null };
}

/** A model's display name: its file name without the .gguf extension. */
export function modelName(path: string | null | undefined): string {
  if (!path) {
    return "no model";
  }
  const base = path.split(/[\\/]/).pop() ?? path;
  return base.replace(/\.gguf$/i, "");
}

export function formatMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) {
    return "–";
  }
  return ms < 10 ? `${ms.toFixed(1)} ms` : `${Math.round(ms)} ms`;
}

function percent(v: number | null | undefined): string {
  return v === null || v === undefined ? "–" : `${Math.round(v * 100)}%`;
}

/** The status bar item's text and tooltip. */
export function statusText(
  stats: Stats | undefined,
  lastLatencyMs: number | undefined,
): { text: string; tooltip: string } {
  const state = stats?.model?.state ?? "starting";
  const name = modelName(stats?.model?.path);
  if (state === "failed") {
    return {
      text: "$(error) llamacode",
      tooltip: `llamacode: the model failed to load: ${stats?.model?.error ?? "unknown error"}`,
    };
  }
  if (state !== "ready") {
    return { text: "$(loading~spin) llamacode", tooltip: `llamacode: model ${state}` };
  }
  const tooltip = [
    `model: ${name}`,
    ...adapterLines(stats),
    `last suggestion: ${formatMs(lastLatencyMs)}`,
    `latency p50 / p95: ${formatMs(stats?.latency_ms?.p50)} / ${formatMs(stats?.latency_ms?.p95)}`,
    `cache hit rate: ${percent(stats?.cache?.hit_rate)}`,
    `acceptance rate: ${percent(stats?.acceptance?.rate)}`,
  ].join("\n");
  return { text: `$(sparkle) ${formatMs(lastLatencyMs)} · ${name}`, tooltip };
}

/** Which models apply the LoRA adapter, or why none does. */
function adapterLines(stats: Stats | undefined): string[] {
  const problem = stats?.model?.adapter_problem;
  if (problem) {
    return [`adapter not used: ${problem}`];
  }
  const byPath = new Map<string, string[]>();
  for (const [role, path] of Object.entries(stats?.model?.adapters ?? {})) {
    byPath.set(path, [...(byPath.get(path) ?? []), role]);
  }
  return [...byPath].map(([path, roles]) => `adapter: ${modelName(path)} (${roles.join(", ")})`);
}
