// The PNG encoder against two independent decoders: a chunk-by-chunk reading with Python's
// zlib and struct (signature, IHDR fields, every CRC-32, the inflated scanlines and their filter
// bytes) and Pillow's decoder; pixel values compared exactly.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeWithOracle, python } from "../../tests/support/oracle.js";
import { encodePng, type RasterImage } from "./png.js";

const describeOracle = describeWithOracle("PIL");

let dir = "";
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "medpipe-png-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Deterministic bytes covering 0..255 (no repeating pattern deflate could hide a bug in). */
function raster(width: number, height: number, channels: 1 | 3): RasterImage {
  const data = new Uint8Array(width * height * channels);
  let s = 12345;
  for (let i = 0; i < data.length; i++) {
    s = (s * 1103515245 + 12345) % 2147483648;
    data[i] = s >> 23;
  }
  return { width, height, channels, data };
}

interface Decoded {
  chunks: string[];
  crc_ok: boolean[];
  ihdr: number[];
  filters: number[];
  pixels: number[];
  pil_mode: string;
  pil_size: number[];
  pil_pixels: number[];
}

const DECODE = `
import struct, zlib
from PIL import Image
import numpy as np
with open(INPUT["path"], "rb") as f:
    b = f.read()
assert b[:8] == b"\\x89PNG\\r\\n\\x1a\\n", b[:8]
pos, chunks, crc_ok, idat, ihdr = 8, [], [], b"", None
while pos < len(b):
    (n,) = struct.unpack(">I", b[pos:pos + 4])
    kind, body = b[pos + 4:pos + 8], b[pos + 8:pos + 8 + n]
    (crc,) = struct.unpack(">I", b[pos + 8 + n:pos + 12 + n])
    chunks.append(kind.decode())
    crc_ok.append(zlib.crc32(kind + body) == crc)
    if kind == b"IHDR":
        ihdr = list(struct.unpack(">IIBBBBB", body))
    if kind == b"IDAT":
        idat += body
    pos += 12 + n
w, h, channels = ihdr[0], ihdr[1], {0: 1, 2: 3}[ihdr[3]]
raw = zlib.decompress(idat)
stride = w * channels
rows = [raw[y * (stride + 1):(y + 1) * (stride + 1)] for y in range(h)]
im = Image.open(INPUT["path"])
OUTPUT = {"chunks": chunks, "crc_ok": crc_ok, "ihdr": ihdr, "filters": [r[0] for r in rows],
          "pixels": list(b"".join(r[1:] for r in rows)), "pil_mode": im.mode, "pil_size": list(im.size),
          "pil_pixels": np.asarray(im).ravel().tolist()}
`;

describeOracle("encodePng", () => {
  it.each([
    [1, 7, 5],
    [3, 13, 4],
    [3, 1, 1],
  ] as const)("channels %i, %ix%i: Python's zlib/struct and Pillow read back every byte", (channels, width, height) => {
    const image = raster(width, height, channels);
    const path = join(dir, `c${channels}-${width}x${height}.png`);
    writeFileSync(path, encodePng(image));
    const d = python<Decoded>(DECODE, { path });
    expect(d.chunks).toEqual(["IHDR", "IDAT", "IEND"]);
    expect(d.crc_ok).toEqual([true, true, true]);
    // width, height, bit depth 8, colour type 0 (grey) / 2 (RGB), compression, filter, interlace 0.
    expect(d.ihdr).toEqual([width, height, 8, channels === 1 ? 0 : 2, 0, 0, 0]);
    expect(d.filters).toEqual(new Array(height).fill(0));
    expect(d.pixels).toEqual([...image.data]);
    expect(d.pil_mode).toBe(channels === 1 ? "L" : "RGB");
    expect(d.pil_size).toEqual([width, height]);
    expect(d.pil_pixels).toEqual([...image.data]);
  });

  it("refuses data of the wrong length and empty sizes", () => {
    expect(() => encodePng({ width: 2, height: 2, channels: 3, data: new Uint8Array(11) })).toThrow(
      /11 bytes, expected 2x2x3 = 12/,
    );
    expect(() => encodePng({ width: 0, height: 2, channels: 1, data: new Uint8Array(0) })).toThrow(
      /positive integers/,
    );
  });
});
