#!/usr/bin/env node
// npm run setup: the JavaScript dependencies (npm ci, which also builds), then the Python runtime
// the GPU stages need (torch, numpy) and the test oracles (scipy, nibabel, Pillow) when they are missing.
// Debian packages when we are root with apt-get; else pip with requirements.txt; else instructions.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

const say = (s) => process.stdout.write(`setup: ${s}\n`);
const run = (cmd, args, opts = {}) => spawnSync(cmd, args, { stdio: "inherit", ...opts }).status === 0;
const imports = (python, modules) =>
  spawnSync(python, ["-c", `import ${modules.join(", ")}`], { stdio: "ignore" }).status === 0;

if (!run("npm", ["ci", "--no-audit", "--no-fund"])) {
  say("npm ci failed");
  process.exit(1);
}

// A PIPELINE_PYTHON that is set is the only Python the pipeline uses: it must be the one that works.
const chosen = process.env.PIPELINE_PYTHON;
if (chosen && !imports(chosen, ["torch", "numpy"])) {
  say(`PIPELINE_PYTHON=${chosen} cannot import torch and numpy; install them there, or unset it`);
  process.exit(1);
}
const candidates = chosen ? [chosen] : ["python3", "/usr/bin/python3", "python"];
const runtime = candidates.find((p) => imports(p, ["torch", "numpy"]));
const canApt = process.getuid?.() === 0 && existsSync("/usr/bin/apt-get");
let aptUpdated = false;
const apt = (packages) => {
  if (!aptUpdated && !run("apt-get", ["update", "-qq"])) return false;
  aptUpdated = true;
  return run("apt-get", ["install", "-y", "-qq", "--no-install-recommends", ...packages], {
    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
  });
};

if (runtime) {
  say(`Python runtime: ${runtime} has torch and numpy`);
} else if (canApt) {
  say("installing torch and numpy from Debian (python3-torch python3-numpy)");
  if (!apt(["python3-torch", "python3-numpy"])) {
    say("apt-get install python3-torch python3-numpy failed");
    process.exit(1);
  }
} else if (spawnSync("python3", ["-m", "pip", "--version"], { stdio: "ignore" }).status === 0) {
  say("installing torch and numpy with pip (requirements.txt)");
  if (!run("python3", ["-m", "pip", "install", "-r", "requirements.txt"])) {
    say("pip install -r requirements.txt failed; install torch and numpy, or set PIPELINE_PYTHON");
    process.exit(1);
  }
} else {
  say("no Python with torch and numpy, and neither apt-get (as root) nor pip to install them.");
  say(
    "install them (e.g. apt-get install python3-torch python3-numpy), or set PIPELINE_PYTHON to a Python that has them",
  );
  process.exit(1);
}

// Test-only: the tests compare against Debian's Python with numpy, scipy and nibabel.
const oracle = existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
if (imports(oracle, ["numpy", "scipy", "nibabel", "PIL"]))
  say(`test oracles: ${oracle} has numpy, scipy, nibabel and Pillow`);
else if (canApt) {
  say("installing the test oracles from Debian (python3-numpy python3-scipy python3-nibabel python3-pil)");
  if (!apt(["python3-numpy", "python3-scipy", "python3-nibabel", "python3-pil"]))
    say(
      "WARNING: could not install the test oracles; the tests that need them are skipped, each one announced",
    );
} else
  say(
    "WARNING: the test oracles (numpy, scipy, nibabel, Pillow for /usr/bin/python3) are missing; the tests that need them are skipped, each one announced",
  );
say("done");
