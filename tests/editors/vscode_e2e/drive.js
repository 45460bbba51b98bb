// Drives VS Code (code-server) in Chromium like a user: waits for the llamacode status bar item
// to show the model, opens a file, types, waits for ghost text, accepts it with Tab, saves, then
// runs "llamacode: Explain Selection" and reads the answer from the chat view.
// Usage: node drive.js URL FILE_NAME OUT_DIR CHROMIUM   (prints one JSON line of findings)
"use strict";
const { chromium } = require("playwright-core");

const [url, fileName, outDir, chromiumPath] = process.argv.slice(2);
const found = { statusReady: null, ghost: null, statusAfter: null, chatAnswer: null, errors: [] };

async function step(name, fn) {
  try {
    return await fn();
  } catch (err) {
    found.errors.push(`${name}: ${err.message.split("\n")[0]}`);
    return undefined;
  }
}

async function statusText(page) {
  const item = page.locator("#llamacode\\.llamacode, [id='llamacode.llamacode']").first();
  return (await item.count()) ? (await item.innerText()).trim() : null;
}

async function command(page, title) {
  await page.keyboard.press("F1");
  await page.waitForSelector(".quick-input-widget input", { state: "visible" });
  await page.keyboard.type(title);
  await page.waitForTimeout(500);
  await page.keyboard.press("Enter");
}

(async () => {
  const browser = await chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox"] });
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  try {
    await page.goto(url);
    await page.waitForSelector(".monaco-workbench", { timeout: 120000 });

    found.statusReady = await step("status bar shows the model", async () => {
      const end = Date.now() + 120000;
      while (Date.now() < end) {
        const text = await statusText(page);
        if (text && text.includes("·")) return text;
        await page.waitForTimeout(250);
      }
      throw new Error(`status bar still says ${JSON.stringify(await statusText(page))}`);
    });

    await step("open the file", async () => {
      await page.keyboard.press("Control+P");
      await page.waitForSelector(".quick-input-widget input", { state: "visible" });
      await page.keyboard.type(fileName);
      await page.waitForTimeout(800);
      await page.keyboard.press("Enter");
      await page.waitForSelector(".monaco-editor .view-lines", { timeout: 30000 });
      // Panels that load late (the built-in chat) can take the focus: type only once the
      // editor has it.
      const end = Date.now() + 30000;
      for (;;) {
        await page.locator(".monaco-editor .view-lines").first().click();
        await page.waitForTimeout(300);
        const inEditor = await page.evaluate(
          () => !!document.activeElement && !!document.activeElement.closest(".monaco-editor"),
        );
        if (inEditor) break;
        if (Date.now() > end) throw new Error("the editor never got the keyboard focus");
      }
    });

    found.ghost = await step("ghost text appears", async () => {
      await page.keyboard.press("Control+End");
      await page.keyboard.press("ArrowUp");
      await page.keyboard.press("End");
      await page.keyboard.type("r");
      // Monaco draws the suggestion's first line as .ghost-text-decoration spans and the
      // following lines as .ghost-text spans; some spans hold only blanks.
      await page.waitForFunction(
        () =>
          Array.from(document.querySelectorAll(".ghost-text-decoration, .ghost-text")).some(
            (e) => e.textContent.trim() !== "",
          ),
        null,
        { timeout: 120000 },
      );
      await page.screenshot({ path: `${outDir}/ghost.png` });
      const text = (sel) =>
        page.$$eval(sel, (els) => els.map((e) => e.textContent).join(""));
      return (await text(".ghost-text-decoration")) + (await text(".ghost-text"));
    });

    await step("Tab accepts and the file is saved", async () => {
      await page.keyboard.press("Tab");
      await page.waitForTimeout(500);
      await page.keyboard.press("Control+S");
      await page.waitForTimeout(1000);
    });

    found.statusAfter = await step("status bar shows the latency", async () => {
      await page.waitForTimeout(1000);
      return statusText(page);
    });

    found.chatAnswer = await step("explain streams into the chat view", async () => {
      await page.keyboard.press("Control+A");
      await command(page, "llamacode: Explain Selection");
      const end = Date.now() + 180000;
      while (Date.now() < end) {
        for (const frame of page.frames()) {
          const answer = await frame
            .$$eval(".msg.assistant .body", (els) => els.map((e) => e.textContent))
            .catch(() => []);
          const sendDisabled = await frame
            .$eval("#send", (b) => b.disabled)
            .catch(() => null);
          if (answer.length && answer[answer.length - 1].trim() && sendDisabled === false) {
            await page.screenshot({ path: `${outDir}/chat.png` });
            return answer[answer.length - 1];
          }
        }
        await page.waitForTimeout(500);
      }
      throw new Error("no answer in the chat view");
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
