// .npy reading and writing against numpy 1.24: numpy writes files we read, and reads files we write.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { python } from "../../tests/support/oracle.js";
import { dtypeInfo } from "./dtype.js";
import { ImageReadError } from "./errors.js";
import { npyToVolume, parseNpyBuffer, readNpy, volumeToNpy, writeNpy } from "./npy.js";
import type { Dtype } from "./types.js";

interface NumpyArray {
  name: string;
  path: string;
  dtype: string;
  shape: number[];
  fortran: boolean;
  /** arr.ravel(order="F"): the Volume order, whatever the file's order. */
  data: number[];
}

const DTYPES: Dtype[] = ["uint8", "int8", "int16", "uint16", "int32", "uint32", "float32", "float64", "bool"];

let dir = "";
let made: NumpyArray[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "medpipe-npy-"));
  made = python<NumpyArray[]>(
    `
import os, numpy as np
from numpy.lib import format as fmt
rng = np.random.default_rng(3)
OUTPUT = []
def save(name, arr, version=None):
    p = os.path.join(INPUT["dir"], name + ".npy")
    with open(p, "wb") as f:
        fmt.write_array(f, arr, version=version)
    back = np.load(p)
    OUTPUT.append({"name": name, "path": p, "dtype": back.dtype.name, "shape": list(back.shape),
                   "fortran": bool(back.flags.f_contiguous and not back.flags.c_contiguous),
                   "data": back.astype(np.float64).ravel(order="F")})
for dt in ["u1", "i1", "i2", "u2", "i4", "u4", "f4", "f8", "?"]:
    d = np.dtype(dt)
    if d.kind in "iu":
        ii = np.iinfo(d)
        a = rng.integers(ii.min, ii.max, size=(4, 3, 5), endpoint=True, dtype=d)
    elif d.kind == "b":
        a = rng.integers(0, 2, size=(4, 3, 5)).astype(bool)
    else:
        a = (rng.standard_normal((4, 3, 5)) * 1000).astype(d)
    save("c_" + d.name, np.ascontiguousarray(a))
    save("f_" + d.name, np.asfortranarray(a))
save("v2_f4", rng.standard_normal((3, 4)).astype(np.float32), version=(2, 0))
save("be_i2", np.arange(24, dtype=">i2").reshape(2, 3, 4) * 300 - 3000)
save("vec_u2", np.arange(7, dtype=np.uint16))
save("c4d_f4", rng.standard_normal((2, 3, 4, 2)).astype(np.float32))
np.save(os.path.join(INPUT["dir"], "bad_i8.npy"), np.arange(6, dtype=np.int64))
`,
    { dir },
  );
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("readNpy against numpy", () => {
  it("reads every dtype in C and Fortran order, v1 and v2 headers, big-endian; arr[i,j,k] = voxel (i,j,k)", async () => {
    expect(made.length).toBeGreaterThanOrEqual(22);
    for (const m of made) {
      const arr = await readNpy(m.path);
      expect(arr.dtype, m.name).toBe(m.dtype);
      expect(arr.shape, m.name).toEqual(m.shape);
      expect(arr.fortranOrder, m.name).toBe(m.fortran);
      const vol = npyToVolume(arr);
      expect(vol.shape, m.name).toEqual(m.shape);
      expect(Array.from(vol.data), m.name).toEqual(m.data);
      // The same file from bytes in memory (as the verifier reads what it hashed).
      const fromBytes = parseNpyBuffer(readFileSync(m.path), m.path);
      expect({ ...fromBytes, data: Array.from(fromBytes.data) }, m.name).toEqual({
        ...arr,
        data: Array.from(arr.data),
      });
    }
  });
});

describe("writeNpy read back by numpy", () => {
  it("writes every dtype, Fortran (the Volume mapping) and C order", async () => {
    const shape = [4, 3, 5];
    const sent: Array<{ path: string; dtype: Dtype; fortran: boolean; volumeOrder: number[] }> = [];
    for (const dtype of DTYPES) {
      const info = dtypeInfo(dtype);
      const data = new info.ctor(60);
      for (let i = 0; i < 60; i++) {
        const signed = dtype.startsWith("u") ? 0 : 50;
        const frac = dtype.startsWith("float") ? 0.25 : 0;
        data[i] = dtype === "bool" ? Number(i % 3 === 0) : ((i * 37) % 101) - signed + frac;
      }
      const volume = { data, shape, spacing: [1, 1, 1] };
      const fPath = join(dir, `w_f_${dtype}.npy`);
      await writeNpy(fPath, volumeToNpy(volume, dtype));
      sent.push({ path: fPath, dtype, fortran: true, volumeOrder: Array.from(data) });
      // The same buffer declared C-order is numpy's arr.T of shape reversed: check that too.
      const cPath = join(dir, `w_c_${dtype}.npy`);
      await writeNpy(cPath, { data, dtype, shape: [5, 3, 4], fortranOrder: false });
      sent.push({ path: cPath, dtype, fortran: false, volumeOrder: Array.from(data) });
    }
    const back = python<Array<{ dtype: string; shape: number[]; data: number[]; fortran: boolean }>>(
      `
import numpy as np
OUTPUT = []
for p, fortran in INPUT:
    a = np.load(p)
    # Volume order for a Fortran file is ravel("F"); a C file of the same buffer is its transpose.
    v = a if fortran else a.T
    OUTPUT.append({"dtype": a.dtype.name, "shape": list(v.shape), "fortran": bool(a.flags.f_contiguous and a.ndim > 1 and not a.flags.c_contiguous),
                   "data": v.astype(np.float64).ravel(order="F")})
`,
      sent.map((s) => [s.path, s.fortran]),
    );
    back.forEach((b, i) => {
      const s = sent[i]!;
      // Our dtype names are numpy's.
      expect(b.dtype, s.path).toBe(s.dtype);
      expect(b.shape, s.path).toEqual([4, 3, 5]);
      expect(b.fortran, s.path).toBe(s.fortran);
      expect(b.data, s.path).toEqual(s.volumeOrder);
    });
  });
});

describe("bad .npy files", () => {
  const fails = async (path: string, pattern: RegExp) => {
    const err = await readNpy(path).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err, path).toBeInstanceOf(ImageReadError);
    expect((err as Error).message).toContain(path);
    expect((err as Error).message).toMatch(pattern);
  };
  it("names the file and the problem", async () => {
    await fails(join(dir, "bad_i8.npy"), /unsupported .npy dtype '<i8'/);
    const good = readFileSync(made[0]!.path);
    const cut = join(dir, "cut.npy");
    writeFileSync(cut, good.subarray(0, good.length - 5));
    await fails(cut, /truncated/);
    const junk = join(dir, "junk.npy");
    writeFileSync(junk, Buffer.from("not an array at all"));
    await fails(junk, /bad magic/);
    await fails(join(dir, "absent.npy"), /cannot open/);
    for (const [bytes, pattern] of [
      [good.subarray(0, good.length - 5), /truncated/],
      [Buffer.from("not an array at all"), /bad magic/],
      [readFileSync(join(dir, "bad_i8.npy")), /unsupported .npy dtype '<i8'/],
    ] as const)
      expect(() => parseNpyBuffer(bytes, "mem.npy")).toThrow(pattern);
  });
});
