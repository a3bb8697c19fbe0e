import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PY_ROOT } from "../cvtrain/python.js";
import { detectGpus } from "../run/gpus.js";
import { probePython, pythonCandidates, pythonProblem } from "../run/python.js";
import { EXIT, printJson } from "./output.js";

interface Check {
  name: string;
  ok: boolean;
  detail: string;
  fix?: string;
}

function canApt(): boolean {
  return process.getuid?.() === 0 && existsSync("/usr/bin/apt-get");
}

/** Node, Python with torch and numpy, CUDA, GPUs, onnxruntime: what is there, and how to fix what is not. */
export async function doctor(o: { json?: boolean }): Promise<number> {
  const checks: Check[] = [];
  const major = Number(process.versions.node.split(".")[0]);
  checks.push({
    name: "node",
    ok: major >= 20,
    detail: process.version,
    ...(major < 20 ? { fix: "install Node.js 20 or newer" } : {}),
  });

  const probes = pythonCandidates().map(probePython);
  const good = probes.find((p) => p.runtime);
  const pyFix = process.env.PIPELINE_PYTHON
    ? `point PIPELINE_PYTHON (now ${process.env.PIPELINE_PYTHON}) at a Python that has torch and numpy, or unset it`
    : canApt()
      ? "apt-get update && apt-get install -y python3-torch python3-numpy"
      : "python3 -m pip install -r requirements.txt   (or set PIPELINE_PYTHON to a Python that has torch and numpy)";
  checks.push({
    name: "python (torch + numpy)",
    ok: Boolean(good),
    detail: good?.runtime
      ? `${process.env.PIPELINE_PYTHON ? "PIPELINE_PYTHON=" : ""}${good.command}: Python ${good.runtime.python}, torch ${good.runtime.torch}, numpy ${good.runtime.numpy}`
      : pythonProblem(probes),
    ...(good ? {} : { fix: pyFix }),
  });
  if (good) checks.push(onnxExport(good.command));
  const cuda = good?.runtime?.cuda ?? null;
  checks.push({
    name: "cuda",
    ok: true,
    detail: cuda
      ? `CUDA ${cuda}, ${good?.runtime?.gpus.join(", ")}`
      : "not available: GPU stages run on CPU (gpu: preferred) or fail (gpu: required)",
  });
  const gpus = detectGpus();
  let smi = "";
  try {
    smi = execFileSync("nvidia-smi", ["--query-gpu=name,memory.total", "--format=csv,noheader"], {
      encoding: "utf8",
      timeout: 10_000,
    }).trim();
  } catch {
    smi = "";
  }
  checks.push({
    name: "gpus",
    ok: true,
    detail: gpus.length
      ? `${gpus.length} device(s) for stages: ${gpus.join(", ")}${smi ? ` (${smi.replace(/\n/g, "; ")})` : ""}`
      : "none",
  });
  let ort: Check;
  try {
    const spec = "onnxruntime-node";
    const mod = (await import(spec)) as { env?: { versions?: { common?: string } } };
    ort = {
      name: "onnxruntime-node",
      ok: true,
      detail: `installed${mod.env?.versions?.common ? ` ${mod.env.versions.common}` : ""}`,
    };
  } catch {
    ort = {
      name: "onnxruntime-node",
      ok: false,
      detail: "not installed (needed by the infer skill and the verifier's model check)",
      fix: "npm ci",
    };
  }
  checks.push(ort);

  if (o.json) printJson({ ok: checks.every((c) => c.ok), checks });
  else
    for (const c of checks) {
      process.stdout.write(`${c.ok ? "✔" : "✖"} ${c.name}: ${c.detail}\n`);
      if (c.fix) process.stdout.write(`    fix: ${c.fix}\n`);
    }
  return checks.every((c) => c.ok || c.name === "onnxruntime-node") ? EXIT.ok : EXIT.failed;
}

// Every training stage ends by writing model.onnx with torch's TorchScript-based exporter
// (medpipe.export_onnx); a torch without it would fail every stage at its last step, so a tiny
// network is exported here first.
const EXPORT_PROBE = `
import os, sys, tempfile
from medpipe.nets import build_network
from medpipe.export_onnx import export_onnx
net = build_network({"spatial_dims": 2, "channels": [2, 4], "strides": [2], "num_res_units": 0}, seed=0)
info = export_onnx(net, os.path.join(sys.argv[1], "probe.onnx"), in_channels=1, spatial_dims=2)
print(info["opset"])
`;

function onnxExport(python: string): Check {
  const dir = mkdtempSync(join(tmpdir(), "medpipe-doctor-"));
  try {
    const r = spawnSync(python, ["-c", EXPORT_PROBE, dir], {
      encoding: "utf8",
      timeout: 120_000,
      env: { ...process.env, PYTHONPATH: [PY_ROOT, process.env.PYTHONPATH].filter(Boolean).join(":") },
    });
    if (r.status === 0)
      return { name: "onnx export", ok: true, detail: `model.onnx writes (opset ${r.stdout.trim()})` };
    const last = (r.stderr || r.error?.message || "no output").trim().split("\n").pop();
    return {
      name: "onnx export",
      ok: false,
      detail: `${python} cannot write model.onnx, so every training stage would fail at packaging: ${last}`,
      fix: "use a torch whose torch.onnx.export still has the TorchScript exporter (dynamo=False)",
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
