import assert from "node:assert/strict";
import { test } from "node:test";
import { IdleWarmer, WarmParams, placeKey } from "../src/warm";

const DELAY_MS = 5;

function at(line: number, character: number, uri = "file:///w/a.py"): WarmParams {
  return { textDocument: { uri }, position: { line, character } };
}

/** A warmer whose notifications are recorded, and a way to wait for the next one. */
function recorded(): { warmer: IdleWarmer; sent: WarmParams[]; next: () => Promise<void> } {
  const sent: WarmParams[] = [];
  let wake: (() => void) | undefined;
  const warmer = new IdleWarmer(DELAY_MS, (params) => {
    sent.push(params);
    wake?.();
  });
  const next = () =>
    new Promise<void>((resolve) => {
      wake = resolve;
    });
  return { warmer, sent, next };
}

/** Resolves after every timer due before `ms` from now has run (Node runs timers in order). */
function laterThan(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

test("a burst of cursor moves warms only the place where the cursor rests", async () => {
  const { warmer, sent, next } = recorded();
  const sentOne = next();
  warmer.moved(at(1, 0), 1);
  warmer.moved(at(1, 1), 1);
  warmer.moved(at(2, 4), 1);
  await sentOne;
  // the earlier moves' timers were due first: had they run, they would be listed first
  assert.deepEqual(sent, [at(2, 4)]);
});

test("a place is not warmed twice in a row, but again once its document changed", async () => {
  const { warmer, sent, next } = recorded();
  let sentOne = next();
  warmer.moved(at(3, 2), 1);
  await sentOne;
  warmer.moved(at(3, 2), 1);
  await laterThan(DELAY_MS * 4);
  assert.deepEqual(sent, [at(3, 2)]);
  sentOne = next();
  warmer.moved(at(3, 2), 2);
  await sentOne;
  assert.deepEqual(sent, [at(3, 2), at(3, 2)]);
});

test("a place where a suggestion was asked for is not warmed", async () => {
  const { warmer, sent, next } = recorded();
  warmer.moved(at(5, 1), 7);
  warmer.asked(at(5, 1), 7);
  warmer.moved(at(5, 1), 7);
  await laterThan(DELAY_MS * 4);
  assert.deepEqual(sent, []);
  const sentOne = next();
  warmer.moved(at(6, 0), 7);
  await sentOne;
  assert.deepEqual(sent, [at(6, 0)]);
});

test("after a server restart the same place is warmed again", async () => {
  const { warmer, sent, next } = recorded();
  let sentOne = next();
  warmer.moved(at(0, 0), 1);
  await sentOne;
  warmer.reset();
  sentOne = next();
  warmer.moved(at(0, 0), 1);
  await sentOne;
  assert.deepEqual(sent, [at(0, 0), at(0, 0)]);
});

test("a cancelled or disposed warmer sends nothing", async () => {
  const { warmer, sent } = recorded();
  warmer.moved(at(1, 1), 1);
  warmer.cancel();
  warmer.moved(at(2, 2), 1);
  warmer.dispose();
  await laterThan(DELAY_MS * 4);
  assert.deepEqual(sent, []);
});

test("places differ by document, version, line and character", () => {
  const keys = new Set([
    placeKey(at(1, 2), 1),
    placeKey(at(1, 2), 2),
    placeKey(at(2, 1), 1),
    placeKey(at(1, 2, "file:///w/b.py"), 1),
  ]);
  assert.equal(keys.size, 4);
  assert.equal(placeKey(at(1, 2), 1), placeKey(at(1, 2), 1));
});
