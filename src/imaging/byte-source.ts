import { createReadStream } from "node:fs";
import { open } from "node:fs/promises";
import type { Readable } from "node:stream";
import { createGunzip } from "node:zlib";

/**
 * Sequential reader over a file that may be gzip-compressed (detected by its
 * magic bytes, not its name). Decompressed bytes are copied straight into the
 * caller's buffer, so a large image is held once plus one inflate chunk.
 */
export interface ByteSource {
  readonly compressed: boolean;
  /** Fills `into` completely; returns how many bytes it got (fewer only at end of file). */
  read(into: Uint8Array): Promise<number>;
  close(): Promise<void>;
}

const GZIP_CHUNK = 1 << 20;

export async function openByteSource(path: string): Promise<ByteSource> {
  const handle = await open(path, "r");
  try {
    const magic = new Uint8Array(2);
    const { bytesRead } = await handle.read(magic, 0, 2, 0);
    if (bytesRead === 2 && magic[0] === 0x1f && magic[1] === 0x8b) {
      await handle.close();
      return gzipSource(path);
    }
  } catch (err) {
    await handle.close();
    throw err;
  }
  let position = 0;
  return {
    compressed: false,
    async read(into) {
      let got = 0;
      while (got < into.length) {
        const { bytesRead } = await handle.read(into, got, into.length - got, position);
        if (bytesRead === 0) break;
        got += bytesRead;
        position += bytesRead;
      }
      return got;
    },
    close: () => handle.close(),
  };
}

function gzipSource(path: string): ByteSource {
  const gunzip = createGunzip({ chunkSize: GZIP_CHUNK });
  const file: Readable = createReadStream(path, { highWaterMark: GZIP_CHUNK });
  file.on("error", (err) => gunzip.destroy(err));
  file.pipe(gunzip);
  const chunks = gunzip[Symbol.asyncIterator]();
  let pending: Uint8Array = new Uint8Array(0);
  let done = false;
  return {
    compressed: true,
    async read(into) {
      let got = 0;
      while (got < into.length) {
        if (pending.length === 0) {
          if (done) break;
          const next = await chunks.next();
          if (next.done) {
            done = true;
            break;
          }
          pending = next.value as Uint8Array;
          continue;
        }
        const n = Math.min(pending.length, into.length - got);
        into.set(pending.subarray(0, n), got);
        pending = pending.subarray(n);
        got += n;
      }
      return got;
    },
    async close() {
      file.unpipe(gunzip);
      file.destroy();
      gunzip.destroy();
    },
  };
}
