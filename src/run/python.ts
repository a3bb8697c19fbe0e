// Finding a Python that can run the GPU stages: it must import torch and numpy.
import { spawnSync } from "node:child_process";

export interface PythonRuntime {
  command: string;
  python: string;
  torch: string;
  numpy: string;
  cuda: string | null;
  gpus: string[];
}

export interface PythonProbe {
  command: string;
  runtime: PythonRuntime | null;
  problem: string | null;
}

const PROBE = `
import json, sys
info = {"python": sys.version.split()[0]}
import numpy; info["numpy"] = numpy.__version__
import torch; info["torch"] = torch.__version__
info["cuda"] = torch.version.cuda if torch.cuda.is_available() else None
info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
print(json.dumps(info))
`;

/**
 * PIPELINE_PYTHON alone when it is set: someone who names an interpreter means that one, and a
 * silent fall-back to another Python would run stages on a torch they did not choose.
 */
export function pythonCandidates(env: NodeJS.ProcessEnv = process.env): string[] {
  return env.PIPELINE_PYTHON ? [env.PIPELINE_PYTHON] : ["python3", "/usr/bin/python3", "python"];
}

/** Why no usable Python was found, in one line, naming PIPELINE_PYTHON when it was the one tried. */
export function pythonProblem(probes: PythonProbe[], env: NodeJS.ProcessEnv = process.env): string {
  const line = (p: PythonProbe) =>
    (p.problem ?? "")
      .split("\n")
      .map((l) => l.trim())
      .filter(Boolean)
      .join(" ");
  if (env.PIPELINE_PYTHON)
    return `PIPELINE_PYTHON=${env.PIPELINE_PYTHON}: ${probes.map(line).join("; ") || "not probed"} (when set, no other Python is tried)`;
  return `no Python with torch and numpy (${probes.map((p) => `${p.command}: ${line(p)}`).join("; ")})`;
}

export function probePython(command: string): PythonProbe {
  const r = spawnSync(command, ["-c", PROBE], { encoding: "utf8", timeout: 120_000 });
  if (r.error)
    return {
      command,
      runtime: null,
      problem: (r.error as NodeJS.ErrnoException).code === "ENOENT" ? "not found" : r.error.message,
    };
  if (r.status !== 0) {
    const last = r.stderr.trim().split("\n").pop() ?? `exit ${r.status}`;
    return { command, runtime: null, problem: last };
  }
  const info = JSON.parse(r.stdout.trim().split("\n").pop() as string) as Omit<PythonRuntime, "command">;
  return { command, runtime: { command, ...info }, problem: null };
}

let found: { runtime: PythonRuntime | null; probes: PythonProbe[] } | undefined;

/** The first candidate that imports torch and numpy (memoized for the process, probes too), or null. */
export function findPython(env: NodeJS.ProcessEnv = process.env): {
  runtime: PythonRuntime | null;
  probes: PythonProbe[];
} {
  if (found !== undefined) return found;
  const probes: PythonProbe[] = [];
  for (const c of pythonCandidates(env)) {
    const p = probePython(c);
    probes.push(p);
    if (p.runtime) {
      found = { runtime: p.runtime, probes };
      return found;
    }
  }
  found = { runtime: null, probes };
  return found;
}
