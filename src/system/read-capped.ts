/**
 * Reads `stream` to its end, at most `capBytes` of it: past that it stops (the stream destroyed,
 * as leaving a for-await does) and throws `tooLarge()`. A stream error rejects as it came.
 */
export async function readCapped(stream: AsyncIterable<Buffer>, capBytes: number, tooLarge: () => Error): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of stream) {
    n += c.length;
    if (n > capBytes) throw tooLarge();
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}
