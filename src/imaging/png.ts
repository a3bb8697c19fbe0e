// A minimal PNG encoder (8-bit greyscale or RGB, no interlace): enough to write overlays that any
// viewer opens, with node:zlib for the deflate stream and the chunk CRC-32 (PNG specification,
// ISO/IEC 15948: signature, IHDR, one IDAT, IEND).
import { crc32, deflateSync } from "node:zlib";

export interface RasterImage {
  width: number;
  height: number;
  /** 1: greyscale, 3: RGB. */
  channels: 1 | 3;
  /** Row-major, top row first, `channels` bytes per pixel: width × height × channels bytes. */
  data: Uint8Array;
}

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** length, type, data, CRC-32 of type + data. */
function chunk(type: string, data: Uint8Array): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, "latin1");
  const tail = Buffer.alloc(4);
  tail.writeUInt32BE(crc32(data, crc32(head.subarray(4))), 0);
  return Buffer.concat([head, data, tail]);
}

export function encodePng(image: RasterImage): Buffer {
  const { width, height, channels, data } = image;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1)
    throw new Error(`PNG size ${width}x${height}: expected positive integers`);
  const stride = width * channels;
  if (data.length !== stride * height)
    throw new Error(
      `PNG data has ${data.length} bytes, expected ${width}x${height}x${channels} = ${stride * height}`,
    );
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = channels === 1 ? 0 : 2; // colour type: greyscale or truecolour
  // compression, filter method and interlace all 0: deflate, adaptive filtering, none.
  // Every scanline uses filter type 0 (None): small images, simplicity over a few bytes.
  const raw = Buffer.alloc((stride + 1) * height);
  for (let y = 0; y < height; y++) raw.set(data.subarray(y * stride, (y + 1) * stride), y * (stride + 1) + 1);
  return Buffer.concat([
    SIGNATURE,
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(raw)),
    chunk("IEND", new Uint8Array(0)),
  ]);
}
