// The chat conversation shown in the chat view: messages in, streamed answer pieces appended.

export type Role = "user" | "assistant";

export interface Message {
  role: Role;
  content: string;
}

export class Conversation {
  readonly messages: Message[] = [];
  private answering = false;

  get busy(): boolean {
    return this.answering;
  }

  /** Add a question and open an empty answer; returns the messages to send. */
  ask(question: string): Message[] {
    if (this.answering) {
      throw new Error("an answer is still being written");
    }
    const text = question.trim();
    if (text === "") {
      throw new Error("the question is empty");
    }
    this.messages.push({ role: "user", content: text });
    const toSend = this.messages.map((m) => ({ ...m }));
    this.messages.push({ role: "assistant", content: "" });
    this.answering = true;
    return toSend;
  }

  /** Append a streamed piece to the answer being written. */
  append(piece: string): void {
    const last = this.messages[this.messages.length - 1];
    if (this.answering && last && last.role === "assistant") {
      last.content += piece;
    }
  }

  /**
   * Close the answer. `text` is the server's whole answer: used when nothing was streamed.
   * An error closes the answer with the error's message.
   */
  finish(text: string | undefined, error?: string): void {
    const last = this.messages[this.messages.length - 1];
    if (last && last.role === "assistant") {
      if (error) {
        last.content += `${last.content ? "\n\n" : ""}[error: ${error}]`;
      } else if (last.content === "" && text) {
        last.content = text;
      }
    }
    this.answering = false;
  }

  clear(): void {
    this.messages.length = 0;
    this.answering = false;
  }
}

/** Text made safe to place in HTML. */
export function escapeHtml(s: string): string {
  return s
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;");
}
