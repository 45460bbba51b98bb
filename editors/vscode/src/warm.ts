// Cache warming: once the cursor has rested, the server evaluates the prompt a suggestion there
// would have (`llamacode/warm`), so the first keystroke at a new place only pays for what it
// changes. Pure, so it is unit-tested without VS Code.

export const WARM_METHOD = "llamacode/warm";

/** How long the cursor must rest before the server is asked to warm its cache there. */
export const WARM_DELAY_MS = 300;

/** The notification's params: the LSP position of the cursor in its document. */
export interface WarmParams {
  textDocument: { uri: string };
  position: { line: number; character: number };
}

/** One cursor place in one version of a document. */
export function placeKey(params: WarmParams, version: number): string {
  return `${params.textDocument.uri}@${version}:${params.position.line}:${params.position.character}`;
}

/**
 * Debounces cursor moves into warm notifications: sends the last place once `delayMs` pass
 * without another move, and never for the place (and document version) warmed or asked for
 * last, whose prompt the server has just evaluated.
 */
export class IdleWarmer {
  private timer: NodeJS.Timeout | undefined;
  private last: string | undefined;

  constructor(
    private readonly delayMs: number,
    private readonly send: (params: WarmParams) => void,
  ) {}

  /** The cursor moved to `params` in document version `version`. */
  moved(params: WarmParams, version: number): void {
    this.cancel();
    const key = placeKey(params, version);
    if (key === this.last) {
      return;
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.last = key;
      this.send(params);
    }, this.delayMs);
  }

  /** A suggestion was asked for at this place: its prompt needs no warming. */
  asked(params: WarmParams, version: number): void {
    this.cancel();
    this.last = placeKey(params, version);
  }

  /** A new server starts with an empty cache: every place may be warmed again. */
  reset(): void {
    this.cancel();
    this.last = undefined;
  }

  cancel(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
  }

  dispose(): void {
    this.cancel();
  }
}
