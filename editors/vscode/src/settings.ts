// Settings as the extension uses them: pure functions, so they are unit-tested without VS Code.

/** What `WorkspaceConfiguration.inspect` reports for one setting. */
export interface Inspected<T> {
  defaultValue?: T;
  globalValue?: T;
  workspaceValue?: T;
  workspaceFolderValue?: T;
}

/** Settings a workspace could use to run a program or load a file of its choosing. */
export const RESTRICTED = ["serverCommand", "modelPath", "adapterPath"] as const;

export const DEFAULT_COMMAND = ["llamacode", "serve", "--stdio"];

/**
 * The value of a setting, honouring workspace trust: in an untrusted workspace, workspace and
 * folder values are ignored and the user's own (or the default) value is used.
 */
export function effective<T>(inspected: Inspected<T> | undefined, trusted: boolean): T | undefined {
  if (!inspected) {
    return undefined;
  }
  if (trusted) {
    return (
      inspected.workspaceFolderValue ??
      inspected.workspaceValue ??
      inspected.globalValue ??
      inspected.defaultValue
    );
  }
  return inspected.globalValue ?? inspected.defaultValue;
}

/** A command given as an array or as one string split on blanks; rejects empty commands. */
export function parseCommand(value: unknown): string[] {
  let parts: string[];
  if (Array.isArray(value)) {
    parts = value.filter((p): p is string => typeof p === "string" && p.length > 0);
  } else if (typeof value === "string") {
    parts = value.trim().split(/\s+/).filter((p) => p.length > 0);
  } else {
    parts = [];
  }
  if (parts.length === 0) {
    throw new Error(
      "llamacode.serverCommand is empty: set it to the server command, e.g. " +
        '["llamacode", "serve", "--stdio"]',
    );
  }
  return parts;
}

/**
 * The server command line: the configured command, plus `--model` when a model is chosen and
 * `--adapter` when a LoRA adapter is.
 */
export function serverCommandLine(
  command: unknown,
  modelPath: string | undefined,
  adapterPath?: string,
): string[] {
  const parts = parseCommand(command);
  if (modelPath && modelPath.trim() !== "") {
    parts.push("--model", modelPath.trim());
  }
  if (adapterPath && adapterPath.trim() !== "") {
    parts.push("--adapter", adapterPath.trim());
  }
  return parts;
}

/** Whether inline suggestions are on for a language: its own entry, else "*", else on. */
export function languageEnabled(map: Record<string, boolean> | undefined, languageId: string): boolean {
  if (!map) {
    return true;
  }
  if (typeof map[languageId] === "boolean") {
    return map[languageId];
  }
  if (typeof map["*"] === "boolean") {
    return map["*"];
  }
  return true;
}

/** Settings the server understands, in its spelling (initializationOptions and changes). */
export interface ServerSettings {
  maxTokens?: number;
  timeBudgetMs?: number;
  languages?: Record<string, boolean>;
  trusted: boolean;
}

export function serverSettings(
  values: { maxTokens?: unknown; timeBudgetMs?: unknown; enable?: unknown },
  trusted: boolean,
): ServerSettings {
  const out: ServerSettings = { trusted };
  if (isPositiveInt(values.maxTokens)) {
    out.maxTokens = values.maxTokens;
  }
  if (isPositiveInt(values.timeBudgetMs)) {
    out.timeBudgetMs = values.timeBudgetMs;
  }
  if (values.enable && typeof values.enable === "object") {
    const languages: Record<string, boolean> = {};
    for (const [k, v] of Object.entries(values.enable as Record<string, unknown>)) {
      if (typeof v === "boolean") {
        languages[k] = v;
      }
    }
    out.languages = languages;
  }
  return out;
}

function isPositiveInt(v: unknown): v is number {
  return typeof v === "number" && Number.isInteger(v) && v > 0;
}
