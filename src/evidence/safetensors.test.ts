import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { python } from "../../tests/support/oracle.js";
import {
  digestOfDigests,
  nonFiniteTensors,
  readSafetensors,
  SafetensorsError,
  tensorDigests,
} from "./safetensors.js";

// Files written by the project's Python writer (torch on CPU); digests recomputed in Python with
// hashlib over bytes sliced by a from-scratch struct/json parse (not by the writer's own code).
const dir = mkdtempSync(join(tmpdir(), "st-"));
const written = python<{ files: string[]; digests: Record<string, Record<string, string>> }>(
  `
import sys, json, struct, hashlib
sys.path.insert(0, INPUT["py"])
import torch
from medpipe.safetensors_io import save_file
torch.manual_seed(0)
a = {"w": torch.randn(3, 4), "b": torch.zeros(2, dtype=torch.float16), "i": torch.arange(5, dtype=torch.int64),
     "h": torch.ones(2, 2, dtype=torch.bfloat16)}
bad = {"ok": torch.ones(3), "nan": torch.tensor([1.0, float("nan")]), "inf16": torch.tensor([float("inf")], dtype=torch.float16),
       "inf64": torch.tensor([1e300, float("-inf")], dtype=torch.float64), "big64": torch.tensor([1e300, -1e-300], dtype=torch.float64),
       "nanbf": torch.tensor([2.0, float("nan")], dtype=torch.bfloat16), "bigbf": torch.tensor([3e38], dtype=torch.bfloat16)}
files = [INPUT["dir"] + "/a.safetensors", INPUT["dir"] + "/bad.safetensors"]
save_file(a, files[0], {"epoch": "3"})
save_file(bad, files[1])
def digests(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        b, e = t["data_offsets"]
        prefix = (t["dtype"] + ":" + ",".join(str(d) for d in t["shape"]) + "\\n").encode("ascii")
        out[name] = hashlib.sha256(prefix + raw[8 + n + b: 8 + n + e]).hexdigest()
    return out
OUTPUT = {"files": files, "digests": {f: digests(f) for f in files}}
`,
  { py: join(process.cwd(), "src/py"), dir },
);

describe("safetensors (TypeScript reader)", () => {
  it("reads the header and metadata and computes the same per-tensor digests as an independent parse", () => {
    for (const f of written.files) {
      const st = readSafetensors(f);
      expect(tensorDigests(st)).toEqual(written.digests[f]);
    }
    const a = readSafetensors(written.files[0] as string);
    expect(a.metadata).toEqual({ epoch: "3" });
    expect(a.tensors.find((t) => t.name === "w")).toMatchObject({ dtype: "F32", shape: [3, 4] });
  });

  it("finds non-finite floats in F32, F64, F16 and BF16 tensors, and no large finite one", () => {
    expect(nonFiniteTensors(readSafetensors(written.files[1] as string)).sort()).toEqual([
      "inf16",
      "inf64",
      "nan",
      "nanbf",
    ]);
    expect(nonFiniteTensors(readSafetensors(written.files[0] as string))).toEqual([]);
  });

  it("digest of digests matches the hand-derived definition", () => {
    const d = { b: "2", a: "1" };
    const expected = python<string>(
      'import hashlib\nOUTPUT = hashlib.sha256(b"a\\t1\\nb\\t2\\n").hexdigest()',
    );
    expect(digestOfDigests(d)).toBe(expected);
  });

  it("refuses a broken file with its name", () => {
    expect(() => readSafetensors(join(process.cwd(), "package.json"))).toThrow(SafetensorsError);
  });
});
