// llamacode for VS Code: inline suggestions and chat from `llamacode serve` over LSP.
import { performance } from "node:perf_hooks";
import * as vscode from "vscode";
import {
  DidChangeConfigurationNotification,
  LanguageClient,
  LanguageClientOptions,
  ServerOptions,
} from "vscode-languageclient/node";
import { ChatContext, ChatViewProvider } from "./chatView";
import {
  DEFAULT_COMMAND,
  RESTRICTED,
  effective,
  languageEnabled,
  serverCommandLine,
  serverSettings,
} from "./settings";
import { Stats, statusText } from "./status";
import { IdleWarmer, WARM_DELAY_MS, WARM_METHOD } from "./warm";

const SECTION = "llamacode";
const DOCUMENTS = [{ scheme: "file" }, { scheme: "untitled" }];

let client: LanguageClient | undefined;
let lastLatencyMs: number | undefined;
let statusItem: vscode.StatusBarItem;
let output: vscode.LogOutputChannel;
let statusTimer: NodeJS.Timeout | undefined;
const warmer = new IdleWarmer(WARM_DELAY_MS, (params) => {
  client?.sendNotification(WARM_METHOD, params).catch((err: Error) => {
    output.warn(`${WARM_METHOD} failed: ${err.message}`);
  });
});

/** Whether the user wants inline suggestions in this document (llamacode.enable). */
function suggestionsWanted(document: vscode.TextDocument): boolean {
  const enable = vscode.workspace.getConfiguration(SECTION).get<Record<string, boolean>>("enable");
  return vscode.languages.match(DOCUMENTS, document) > 0 && languageEnabled(enable, document.languageId);
}

/** The cursor of the active editor moved: warm the server's cache there once it rests. */
function warmAtCursor(editor: vscode.TextEditor | undefined): void {
  const wanted =
    editor !== undefined &&
    editor === vscode.window.activeTextEditor &&
    editor.selection.isEmpty &&
    client?.isRunning() === true &&
    suggestionsWanted(editor.document);
  if (!wanted || !client) {
    warmer.cancel();
    return;
  }
  const params = client.code2ProtocolConverter.asTextDocumentPositionParams(
    editor.document,
    editor.selection.active,
  );
  warmer.moved(params, editor.document.version);
}

function readSettings(): { commandLine: string[]; settings: ReturnType<typeof serverSettings> } {
  const cfg = vscode.workspace.getConfiguration(SECTION);
  const trusted = vscode.workspace.isTrusted;
  const command = effective(cfg.inspect<unknown>("serverCommand"), trusted) ?? DEFAULT_COMMAND;
  const modelPath = effective(cfg.inspect<string>("modelPath"), trusted);
  const adapterPath = effective(cfg.inspect<string>("adapterPath"), trusted);
  return {
    commandLine: serverCommandLine(command, modelPath, adapterPath),
    settings: serverSettings(
      {
        maxTokens: cfg.get("maxTokens"),
        timeBudgetMs: cfg.get("timeBudgetMs"),
        enable: cfg.get("enable"),
      },
      trusted,
    ),
  };
}

async function refreshStatus(): Promise<void> {
  if (!client || !client.isRunning()) {
    statusItem.text = "$(circle-slash) llamacode";
    statusItem.tooltip = "llamacode: the language server is not running";
    return;
  }
  try {
    const stats = await client.sendRequest<Stats>("llamacode/stats", {});
    const { text, tooltip } = statusText(stats, lastLatencyMs);
    statusItem.text = text;
    statusItem.tooltip = tooltip;
    if (stats.model?.state === "loading" || stats.model?.state === "idle") {
      scheduleStatus(1000);
    }
  } catch (err) {
    output.warn(`llamacode/stats failed: ${(err as Error).message}`);
  }
}

function scheduleStatus(delayMs: number): void {
  if (statusTimer) {
    clearTimeout(statusTimer);
  }
  statusTimer = setTimeout(() => {
    statusTimer = undefined;
    void refreshStatus();
  }, delayMs);
}

async function startClient(): Promise<void> {
  let commandLine: string[];
  let settings;
  try {
    ({ commandLine, settings } = readSettings());
  } catch (err) {
    void vscode.window.showErrorMessage((err as Error).message);
    return;
  }
  const [command, ...args] = commandLine;
  const serverOptions: ServerOptions = { command, args, options: { env: process.env } };
  const clientOptions: LanguageClientOptions = {
    documentSelector: DOCUMENTS,
    initializationOptions: settings,
    outputChannel: output,
    middleware: {
      provideInlineCompletionItems: async (document, position, context, token, next) => {
        if (!suggestionsWanted(document)) {
          return null;
        }
        if (client) {
          const params = client.code2ProtocolConverter.asTextDocumentPositionParams(document, position);
          warmer.asked(params, document.version);
        }
        const started = performance.now();
        const result = await next(document, position, context, token);
        const items = Array.isArray(result) ? result : result?.items;
        if (items && items.length > 0) {
          lastLatencyMs = performance.now() - started;
          scheduleStatus(300);
        }
        return result;
      },
      // VS Code shows the server's suggestions inline; its completion items would repeat them.
      provideCompletionItem: () => null,
    },
  };
  client = new LanguageClient("llamacode", "llamacode", serverOptions, clientOptions);
  warmer.reset();
  output.info(`starting ${commandLine.join(" ")}`);
  try {
    await client.start();
  } catch (err) {
    void vscode.window.showErrorMessage(
      `llamacode: could not start "${commandLine.join(" ")}": ${String((err as Error)?.message ?? err)}. ` +
        "Set llamacode.serverCommand to the full path of `llamacode serve --stdio`.",
    );
  }
  void refreshStatus();
}

async function restartClient(): Promise<void> {
  const old = client;
  client = undefined;
  if (old) {
    await old.stop().catch(() => undefined);
  }
  await startClient();
}

function selectionContext(editor: vscode.TextEditor | undefined): ChatContext | undefined {
  if (!editor || !client) {
    return undefined;
  }
  const sel = editor.selection;
  if (sel.isEmpty) {
    return { textDocument: { uri: editor.document.uri.toString() } };
  }
  return {
    textDocument: { uri: editor.document.uri.toString() },
    range: client.code2ProtocolConverter.asRange(sel),
  };
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  output = vscode.window.createOutputChannel("llamacode", { log: true });
  statusItem = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Right, 100);
  statusItem.name = "llamacode";
  statusItem.command = "llamacode.showStats";
  statusItem.text = "$(loading~spin) llamacode";
  statusItem.show();
  const chat = new ChatViewProvider(() => client);
  context.subscriptions.push(
    output,
    statusItem,
    vscode.window.registerWebviewViewProvider(ChatViewProvider.viewId, chat, {
      webviewOptions: { retainContextWhenHidden: true },
    }),
    vscode.commands.registerCommand("llamacode.openChat", async () => {
      await chat.reveal();
      const editor = vscode.window.activeTextEditor;
      const question = await vscode.window.showInputBox({
        prompt: "Ask llamacode",
        placeHolder: editor && !editor.selection.isEmpty ? "about the selected code" : undefined,
      });
      if (question) {
        const ctx = editor && !editor.selection.isEmpty ? selectionContext(editor) : undefined;
        await chat.ask(question, ctx);
      }
    }),
    vscode.commands.registerCommand("llamacode.explainSelection", async () => {
      const editor = vscode.window.activeTextEditor;
      if (!editor || editor.selection.isEmpty) {
        void vscode.window.showInformationMessage("llamacode: select some code to explain first.");
        return;
      }
      await chat.reveal();
      await chat.ask("Explain what the selected code does.", selectionContext(editor));
    }),
    vscode.commands.registerCommand("llamacode.restart", restartClient),
    vscode.commands.registerCommand("llamacode.showStats", async () => {
      if (!client || !client.isRunning()) {
        void vscode.window.showWarningMessage("llamacode: the language server is not running.");
        return;
      }
      const stats = await client.sendRequest<Stats>("llamacode/stats", {});
      output.info(`llamacode/stats\n${JSON.stringify(stats, null, 2)}`);
      output.show(true);
      void refreshStatus();
    }),
    vscode.workspace.onDidChangeConfiguration(async (e) => {
      if (!e.affectsConfiguration(SECTION)) {
        return;
      }
      if (RESTRICTED.some((name) => e.affectsConfiguration(`${SECTION}.${name}`))) {
        await restartClient();
        return;
      }
      if (client?.isRunning()) {
        const { trusted, ...settings } = readSettings().settings;
        await client.sendNotification(DidChangeConfigurationNotification.type, { settings });
      }
    }),
    // Trust granted: settings from the workspace now count, which may change the command.
    vscode.workspace.onDidGrantWorkspaceTrust(restartClient),
    vscode.window.onDidChangeTextEditorSelection((e) => warmAtCursor(e.textEditor)),
    vscode.window.onDidChangeActiveTextEditor(warmAtCursor),
    warmer,
    { dispose: () => statusTimer && clearTimeout(statusTimer) },
  );
  await startClient();
}

export async function deactivate(): Promise<void> {
  if (client) {
    await client.stop();
    client = undefined;
  }
}
