// Job scripts: a file the engine writes that runs the same stage command line as the local
// executor, argument by argument (single-quoted: the shell never interprets a value). One
// script serves a whole job array: each task picks its stage by SLURM_ARRAY_TASK_ID.
import type { StageJob } from "../executor.js";

export function quote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Variables the stage needs beyond what sbatch exports from the submitting environment. */
function stageEnv(job: StageJob, base: NodeJS.ProcessEnv): [string, string][] {
  return Object.entries(job.env).filter(([k, v]) => base[k] !== v && /^[A-Za-z_][A-Za-z0-9_]*$/.test(k));
}

export function jobScript(
  jobs: StageJob[],
  rcFiles: string[],
  base: NodeJS.ProcessEnv = process.env,
): string {
  const lines = [
    "#!/bin/bash",
    `# medpipe run ${jobs[0]?.runId ?? ""}: ${jobs.map((j) => j.stage).join(", ")}`,
  ];
  lines.push('case "${SLURM_ARRAY_TASK_ID:-0}" in');
  jobs.forEach((job, i) => {
    lines.push(`${i})`);
    lines.push(`  cd ${quote(job.cwd)} || exit 97`);
    lines.push(`  exec 1>${quote(job.stdoutLog)} 2>${quote(job.stderrLog)}`);
    for (const [k, v] of stageEnv(job, base)) lines.push(`  export ${k}=${quote(v)}`);
    if (job.gpus === 0 && job.env.CUDA_VISIBLE_DEVICES === undefined)
      lines.push("  export CUDA_VISIBLE_DEVICES=''");
    lines.push(`  ${[job.command, ...job.args].map(quote).join(" ")}`);
    lines.push("  rc=$?");
    lines.push(`  printf '%s\\n' "$rc" > ${quote(rcFiles[i] as string)}`);
    lines.push('  exit "$rc"');
    lines.push("  ;;");
  });
  lines.push('*) echo "medpipe: no stage for array task $SLURM_ARRAY_TASK_ID" >&2; exit 98 ;;', "esac", "");
  return lines.join("\n");
}

/** Slurm's --time from a stage timeout: whole minutes, rounded up, at least one. */
export function slurmTime(ms: number): string {
  const minutes = Math.max(1, Math.ceil(ms / 60_000));
  const d = Math.floor(minutes / 1440);
  const h = Math.floor((minutes % 1440) / 60);
  const m = minutes % 60;
  const hhmm = `${String(h).padStart(2, "0")}:${String(m).padStart(2, "0")}:00`;
  return d > 0 ? `${d}-${hhmm}` : hhmm;
}
