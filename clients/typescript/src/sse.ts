// A text/event-stream parser as the HTML standard's EventSource reads one
// (https://html.spec.whatwg.org/multipage/server-sent-events.html): lines
// end with CRLF, LF or CR; a line starting with ':' is a comment; a field
// is "name: value" (one space after the colon dropped) or a bare name; a
// blank line ends the event.

/** One event: what the fields before a blank line said. */
export interface ServerSentEvent {
  /** The event: field, "message" when there was none. */
  event: string;
  /** The data: fields joined with "\n"; undefined when there was none (EventSource dispatches nothing then). */
  data?: string;
  /** The id: field, when the event had one. */
  id?: string;
  /** The retry: field in milliseconds, when the event had a valid one. */
  retry?: number;
}

/**
 * The events of body, in order. An event cut off by the end of the stream
 * is dropped, as EventSource drops it. Ending the iteration early cancels
 * body.
 */
export async function* parseEventStream(body: ReadableStream<Uint8Array>): AsyncGenerator<ServerSentEvent> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let pending = "";
  let first = true;
  let event = "";
  let data: string[] = [];
  let id: string | undefined;
  let retry: number | undefined;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      pending += decoder.decode(value, { stream: true });
      if (first && pending.length > 0) {
        if (pending.charCodeAt(0) === 0xfeff) pending = pending.slice(1);
        first = false;
      }
      for (;;) {
        const end = pending.search(/[\r\n]/);
        if (end < 0) break;
        // A CR at the end of what arrived may be the first half of a CRLF.
        if (pending[end] === "\r" && end === pending.length - 1) break;
        const line = pending.slice(0, end);
        pending = pending.slice(pending.startsWith("\r\n", end) ? end + 2 : end + 1);

        if (line === "") {
          if (data.length > 0 || id !== undefined || retry !== undefined) {
            const ev: ServerSentEvent = { event: event || "message" };
            if (data.length > 0) ev.data = data.join("\n");
            if (id !== undefined) ev.id = id;
            if (retry !== undefined) ev.retry = retry;
            yield ev;
          }
          event = "";
          data = [];
          id = undefined;
          retry = undefined;
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const name = colon < 0 ? line : line.slice(0, colon);
        let val = colon < 0 ? "" : line.slice(colon + 1);
        if (val.startsWith(" ")) val = val.slice(1);
        switch (name) {
          case "event":
            event = val;
            break;
          case "data":
            data.push(val);
            break;
          case "id":
            if (!val.includes("\0")) id = val;
            break;
          case "retry":
            if (/^[0-9]+$/.test(val)) retry = Number(val);
            break;
        }
      }
    }
  } finally {
    await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}
