import type { VerifyReport } from "./types.js";

const MARK = { pass: "✔", fail: "✖", warn: "!", skipped: "-" } as const;

export function renderMarkdown(r: VerifyReport): string {
  const lines = [
    `# Verification: ${r.verdict.toUpperCase()}`,
    "",
    `Run \`${r.run_id ?? "?"}\` of \`${r.pipeline ?? "?"}\` (mode ${r.mode ?? "?"}), verifier ${r.verifier.version}.`,
    "",
    `Metrics: ${r.quality.note}.`,
    "",
    "| | check | result | evidence |",
    "|---|---|---|---|",
  ];
  for (const c of r.checks)
    lines.push(
      `| ${MARK[c.verdict]} | \`${c.id}\` | ${c.message.replace(/\|/g, "\\|")} | ${c.evidence
        .slice(0, 3)
        .map((e) => `\`${e}\``)
        .join(", ")}${c.evidence.length > 3 ? ", …" : ""} |`,
    );
  lines.push("", `${Object.keys(r.judged).length} files read and hashed.`, "");
  return lines.join("\n");
}
