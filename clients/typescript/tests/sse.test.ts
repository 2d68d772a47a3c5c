import assert from "node:assert/strict";
import { test } from "node:test";
import { parseEventStream, type ServerSentEvent } from "../src/index.js";

/** The events parseEventStream reads from chunks, sent one by one. */
async function parse(...chunks: string[]): Promise<ServerSentEvent[]> {
  const encoder = new TextEncoder();
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const c of chunks) controller.enqueue(encoder.encode(c));
      controller.close();
    },
  });
  const events: ServerSentEvent[] = [];
  for await (const ev of parseEventStream(body)) events.push(ev);
  return events;
}

test("sse: fields, comments, multi-line data and the default event type", async () => {
  assert.deepEqual(
    await parse(": watching\n\nid: 12\nevent: put\ndata: {\"a\":\ndata:1}\n\ndata:no space\nunknown: x\n\n: heartbeat\n\n"),
    [
      { event: "put", data: '{"a":\n1}', id: "12" },
      { event: "message", data: "no space" },
    ],
  );
});

test("sse: CRLF, CR and LF line ends, split anywhere between chunks, and a leading BOM", async () => {
  const text = "\uFEFFevent: a\r\ndata: 1\r\n\r\nevent: b\rdata: 2\r\revent: c\ndata: 3\n\n";
  const want = [
    { event: "a", data: "1" },
    { event: "b", data: "2" },
    { event: "c", data: "3" },
  ];
  assert.deepEqual(await parse(text), want);
  for (let i = 1; i < text.length; i++) {
    assert.deepEqual(await parse(text.slice(0, i), text.slice(i)), want, `split at ${i}`);
  }
  // One character a chunk.
  assert.deepEqual(await parse(...text), want);
});

test("sse: retry and a bare id are reported; an event cut off by the end is dropped", async () => {
  assert.deepEqual(await parse("retry: 2500\n\nretry: soon\nid: 7\n\ndata: half"), [
    { event: "message", retry: 2500 },
    { event: "message", id: "7" },
  ]);
});
