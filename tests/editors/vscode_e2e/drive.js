// Drives VS Code (code-server) in Chromium like a user: waits for the llamacode status bar item
// to show the model, opens a file, types, waits for ghost text, accepts it with Tab, saves, then
// runs "llamacode: Explain Selection" and reads the answer from the chat view.
//
// Every wait follows the language server's own signals, read from TAP_LOG (tests/editors/
// lsp_tap.py copies each LSP message there): the model's state in its llamacode/stats answers,
// and each inline completion and chat request with its answer. A busy machine makes the run
// slower, never wrong: nothing fails until DEADLINE_S, and a suggestion that came back empty
// is asked for again once the server has answered everything it was asked.
// Usage: node drive.js URL FILE_NAME OUT_DIR CHROMIUM TAP_LOG DEADLINE_S
//   (prints one JSON line of findings)
"use strict";
const fs = require("node:fs");
const { chromium } = require("playwright-core");

const [url, fileName, outDir, chromiumPath, tapLog, deadlineS] = process.argv.slice(2);
const deadline = Date.now() + Number(deadlineS) * 1000;
const POLL_MS = 500;
// No new inline request and nothing to show for this long: ask for a suggestion again.
const QUIET_MS = 5000;
const found = { statusReady: null, ghost: null, statusAfter: null, chatAnswer: null, errors: [] };

async function step(name, fn) {
  try {
    return await fn();
  } catch (err) {
    found.errors.push(`${name}: ${err.message.split("\n")[0]}`);
    return undefined;
  }
}

function left() {
  return Math.max(1, deadline - Date.now());
}

function timedOut(what) {
  return new Error(`${what} (after waiting until the deadline; ${JSON.stringify(serverView().summary)})`);
}

// What the server has said so far, from the tap log.
function serverView() {
  let lines = [];
  try {
    lines = fs.readFileSync(tapLog, "utf8").split("\n").filter(Boolean);
  } catch {
    lines = [];
  }
  const asked = new Map(); // id of a client request -> its method
  const answers = new Map(); // id -> the server's response
  for (const line of lines) {
    let entry;
    try {
      entry = JSON.parse(line);
    } catch {
      continue;
    }
    const { from, message } = entry;
    if (!message || message.id === undefined || message.id === null) {
      continue;
    }
    if (from === "client" && message.method) {
      asked.set(message.id, message.method);
    } else if (from === "server" && !message.method) {
      answers.set(message.id, message);
    }
  }
  const view = { modelState: undefined, modelError: undefined, inline: [], chats: [] };
  for (const [id, method] of asked) {
    const answer = answers.get(id);
    if (method === "llamacode/stats" && answer && answer.result && answer.result.model) {
      view.modelState = answer.result.model.state;
      view.modelError = answer.result.model.error;
    } else if (method === "textDocument/inlineCompletion") {
      view.inline.push({ id, answer });
    } else if (method === "llamacode/chat") {
      view.chats.push({ id, answer });
    }
  }
  view.summary = {
    model: view.modelState,
    inlineRequests: view.inline.length,
    inlineUnanswered: view.inline.filter((r) => !r.answer).length,
    chatRequests: view.chats.length,
    chatUnanswered: view.chats.filter((r) => !r.answer).length,
  };
  return view;
}

async function statusText(page) {
  const item = page.locator("#llamacode\\.llamacode, [id='llamacode.llamacode']").first();
  return (await item.count()) ? (await item.innerText()).trim() : null;
}

async function ghostText(page) {
  // Monaco draws the suggestion's first line as .ghost-text-decoration spans and the
  // following lines as .ghost-text spans; some spans hold only blanks.
  const text = (sel) => page.$$eval(sel, (els) => els.map((e) => e.textContent).join(""));
  return (await text(".ghost-text-decoration")) + (await text(".ghost-text"));
}

async function command(page, title) {
  await page.keyboard.press("F1");
  await page.waitForSelector(".quick-input-widget input", { state: "visible", timeout: left() });
  await page.keyboard.type(title);
  await page.waitForTimeout(500);
  await page.keyboard.press("Enter");
}

(async () => {
  const browser = await chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox"] });
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  try {
    await page.goto(url, { timeout: left() });
    await page.waitForSelector(".monaco-workbench", { timeout: left() });

    found.statusReady = await step("status bar shows the model", async () => {
      for (;;) {
        const view = serverView();
        if (view.modelState === "failed") {
          throw new Error(`the model failed to load: ${view.modelError}`);
        }
        const text = await statusText(page);
        if (view.modelState === "ready" && text && text.includes("·")) return text;
        if (Date.now() > deadline) throw timedOut(`status bar still says ${JSON.stringify(text)}`);
        await page.waitForTimeout(POLL_MS);
      }
    });

    await step("open the file", async () => {
      await page.keyboard.press("Control+P");
      await page.waitForSelector(".quick-input-widget input", { state: "visible", timeout: left() });
      await page.keyboard.type(fileName);
      await page.waitForTimeout(800);
      await page.keyboard.press("Enter");
      await page.waitForSelector(".monaco-editor .view-lines", { timeout: left() });
      // Panels that load late (the built-in chat) can take the focus: type only once the
      // editor has it.
      for (;;) {
        await page.locator(".monaco-editor .view-lines").first().click();
        await page.waitForTimeout(300);
        const inEditor = await page.evaluate(
          () => !!document.activeElement && !!document.activeElement.closest(".monaco-editor"),
        );
        if (inEditor) break;
        if (Date.now() > deadline) throw new Error("the editor never got the keyboard focus");
      }
    });

    found.ghost = await step("ghost text appears", async () => {
      await page.keyboard.press("Control+End");
      await page.keyboard.press("ArrowUp");
      await page.keyboard.press("End");
      await page.keyboard.type("r");
      let seen = -1;
      let quietSince = Date.now();
      for (;;) {
        const text = await ghostText(page);
        if (text.trim() !== "") {
          await page.screenshot({ path: `${outDir}/ghost.png` });
          return text;
        }
        const { summary } = serverView();
        if (summary.inlineRequests !== seen || summary.inlineUnanswered > 0) {
          seen = summary.inlineRequests;
          quietSince = Date.now(); // the server is still working, or VS Code just asked
        } else if (Date.now() - quietSince > QUIET_MS) {
          // Everything asked was answered and nothing shows (an empty answer, or one VS Code
          // dropped): ask again, as a user would.
          await command(page, "Trigger Inline Suggestion");
          quietSince = Date.now();
        }
        if (Date.now() > deadline) throw timedOut("no ghost text");
        await page.waitForTimeout(POLL_MS);
      }
    });

    await step("Tab accepts and the file is saved", async () => {
      await page.keyboard.press("Tab");
      await page.waitForTimeout(300);
      await page.keyboard.press("Control+S");
      for (;;) {
        const dirty = await page.$$eval(".tabs-container .tab.active.dirty", (els) => els.length);
        if (dirty === 0) return;
        if (Date.now() > deadline) throw new Error("the file was never saved");
        await page.waitForTimeout(POLL_MS);
      }
    });

    found.statusAfter = await step("status bar shows the latency", async () => {
      for (;;) {
        const text = await statusText(page);
        if (text && text.includes(" ms · ")) return text;
        if (Date.now() > deadline) return text;
        await page.waitForTimeout(POLL_MS);
      }
    });

    found.chatAnswer = await step("explain streams into the chat view", async () => {
      await page.keyboard.press("Control+A");
      await command(page, "llamacode: Explain Selection");
      for (;;) {
        const chats = serverView().chats;
        const answered = chats.length > 0 && chats.every((c) => c.answer);
        const last = chats[chats.length - 1];
        if (answered && last.answer.error) {
          throw new Error(`llamacode/chat failed: ${last.answer.error.message}`);
        }
        for (const frame of page.frames()) {
          const answer = await frame
            .$$eval(".msg.assistant .body", (els) => els.map((e) => e.textContent))
            .catch(() => []);
          const sendDisabled = await frame.$eval("#send", (b) => b.disabled).catch(() => null);
          if (answered && answer.length && answer[answer.length - 1].trim() && sendDisabled === false) {
            await page.screenshot({ path: `${outDir}/chat.png` });
            return answer[answer.length - 1];
          }
        }
        if (Date.now() > deadline) throw timedOut("no answer in the chat view");
        await page.waitForTimeout(POLL_MS);
      }
    });
    // the server's statistics go to the extension's log, for whoever reads a failure
    await step("show stats", async () => {
      await command(page, "llamacode: Show Stats");
      await page.waitForTimeout(1000);
    });
  } finally {
    await page.screenshot({ path: `${outDir}/last.png` }).catch(() => undefined);
    await browser.close();
  }
  process.stdout.write(JSON.stringify(found) + "\n");
})().catch((err) => {
  found.errors.push(`fatal: ${err.message}`);
  process.stdout.write(JSON.stringify(found) + "\n");
  process.exit(1);
});
