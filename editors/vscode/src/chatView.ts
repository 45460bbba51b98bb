// The chat view: a webview in the panel whose answers stream in from `llamacode/chat`.
import { randomBytes, randomUUID } from "node:crypto";
import * as vscode from "vscode";
import { LanguageClient, WorkDoneProgress } from "vscode-languageclient/node";
import { Conversation } from "./conversation";

/** Optional code the question is about, in LSP terms. */
export interface ChatContext {
  textDocument: { uri: string };
  range?: { start: { line: number; character: number }; end: { line: number; character: number } };
}

interface ChatResult {
  text?: string;
  stopReason?: string;
}

type FromView = { type: "ask"; text: string } | { type: "stop" } | { type: "clear" } | { type: "ready" };

export class ChatViewProvider implements vscode.WebviewViewProvider {
  static readonly viewId = "llamacode.chatView";
  private view: vscode.WebviewView | undefined;
  private readonly conversation = new Conversation();
  private cancel: vscode.CancellationTokenSource | undefined;

  constructor(private readonly getClient: () => LanguageClient | undefined) {}

  resolveWebviewView(view: vscode.WebviewView): void {
    this.view = view;
    view.webview.options = { enableScripts: true };
    view.webview.html = html(view.webview.cspSource, randomBytes(16).toString("base64"));
    view.webview.onDidReceiveMessage((msg: FromView) => {
      if (msg.type === "ask") {
        void this.ask(msg.text);
      } else if (msg.type === "stop") {
        this.cancel?.cancel();
      } else if (msg.type === "clear") {
        if (!this.conversation.busy) {
          this.conversation.clear();
          this.render();
        }
      } else if (msg.type === "ready") {
        this.render();
      }
    });
  }

  /** Show the view (creating it if needed). */
  async reveal(): Promise<void> {
    await vscode.commands.executeCommand(`${ChatViewProvider.viewId}.focus`);
  }

  /** Ask a question, optionally about some code, and stream the answer into the view. */
  async ask(question: string, context?: ChatContext): Promise<void> {
    const client = this.getClient();
    if (!client || !client.isRunning()) {
      void vscode.window.showErrorMessage("llamacode: the language server is not running.");
      return;
    }
    let messages;
    try {
      messages = this.conversation.ask(question);
    } catch (err) {
      void vscode.window.showWarningMessage(`llamacode: ${(err as Error).message}`);
      return;
    }
    this.render();
    const token = `llamacode-chat-${randomUUID()}`;
    const progress = client.onProgress(WorkDoneProgress.type, token, (value) => {
      if (value.kind === "report" && value.message) {
        this.conversation.append(value.message);
        void this.view?.webview.postMessage({ type: "delta", text: value.message });
      }
    });
    this.cancel = new vscode.CancellationTokenSource();
    try {
      const result = await client.sendRequest<ChatResult>(
        "llamacode/chat",
        { messages, workDoneToken: token, ...context },
        this.cancel.token,
      );
      this.conversation.finish(result?.text);
    } catch (err) {
      const cancelled = this.cancel.token.isCancellationRequested;
      this.conversation.finish(undefined, cancelled ? "stopped" : (err as Error).message);
    } finally {
      progress.dispose();
      this.cancel.dispose();
      this.cancel = undefined;
      this.render();
    }
  }

  private render(): void {
    void this.view?.webview.postMessage({
      type: "render",
      messages: this.conversation.messages,
      busy: this.conversation.busy,
    });
  }
}

function html(cspSource: string, nonce: string): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy"
  content="default-src 'none'; style-src ${cspSource} 'unsafe-inline'; script-src 'nonce-${nonce}';">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<style>
  body { font-family: var(--vscode-font-family); font-size: var(--vscode-font-size); padding: 0 8px; }
  #log { display: flex; flex-direction: column; gap: 8px; padding-bottom: 8px; }
  .msg { white-space: pre-wrap; padding: 6px 8px; border-radius: 4px;
         font-family: var(--vscode-editor-font-family); }
  .user { background: var(--vscode-input-background); }
  .assistant { border-left: 2px solid var(--vscode-focusBorder); }
  .who { font-weight: bold; font-family: var(--vscode-font-family); }
  form { display: flex; gap: 4px; position: sticky; bottom: 0; padding: 6px 0;
         background: var(--vscode-sideBar-background); }
  textarea { flex: 1; resize: vertical; min-height: 2.5em; color: var(--vscode-input-foreground);
             background: var(--vscode-input-background); border: 1px solid var(--vscode-input-border); }
  button { color: var(--vscode-button-foreground); background: var(--vscode-button-background);
           border: none; padding: 4px 10px; cursor: pointer; }
</style>
</head>
<body>
<div id="log"></div>
<form id="form">
  <textarea id="question" placeholder="Ask llamacode (Ctrl+Enter sends)"></textarea>
  <button id="send" type="submit">Send</button>
  <button id="stop" type="button" hidden>Stop</button>
  <button id="clear" type="button">Clear</button>
</form>
<script nonce="${nonce}">
  const vscode = acquireVsCodeApi();
  const log = document.getElementById("log");
  const question = document.getElementById("question");
  const send = document.getElementById("send");
  const stop = document.getElementById("stop");
  let answer = null;
  function add(role, text) {
    const box = document.createElement("div");
    box.className = "msg " + role;
    const who = document.createElement("div");
    who.className = "who";
    who.textContent = role === "user" ? "You" : "llamacode";
    const body = document.createElement("div");
    body.className = "body";
    body.textContent = text;
    box.append(who, body);
    log.append(box);
    return body;
  }
  window.addEventListener("message", (event) => {
    const msg = event.data;
    if (msg.type === "render") {
      log.textContent = "";
      answer = null;
      for (const m of msg.messages) { answer = add(m.role, m.content); }
      send.disabled = msg.busy;
      stop.hidden = !msg.busy;
    } else if (msg.type === "delta" && answer) {
      answer.textContent += msg.text;
    }
    window.scrollTo(0, document.body.scrollHeight);
  });
  document.getElementById("form").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = question.value.trim();
    if (text) { vscode.postMessage({ type: "ask", text }); question.value = ""; }
  });
  question.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { document.getElementById("form").requestSubmit(); }
  });
  stop.addEventListener("click", () => vscode.postMessage({ type: "stop" }));
  document.getElementById("clear").addEventListener("click", () => vscode.postMessage({ type: "clear" }));
  vscode.postMessage({ type: "ready" });
</script>
</body>
</html>`;
}
