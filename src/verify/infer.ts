// The infer stages' outputs as predictions model.predictions may draw and make again: each case's
// image files through the package the stage ran (with the TTA setting it ran with).
import { isAbsolute, join } from "node:path";
import type { Evidence } from "../evidence/evidence.js";
import type { PackageCandidate } from "./model.js";
import type { Pack } from "./pack.js";

const FINISHED = new Set(["succeeded", "cached"]);

interface InferOutput {
  model: { path: string };
  settings?: { tta?: boolean };
  cases: { id: string; images: { path: string }[]; output: string }[];
}

/** A package path recorded by a stage of this run, read where it lies now (the run may have moved). */
function packageIn(pack: Pack, path: string): string {
  const m = /(?:^|\/)(stages\/.+)$/.exec(path);
  return m?.[1] && pack.exists(`${m[1]}/model.onnx`) ? join(pack.dir, m[1]) : path;
}

export function inferCandidates(pack: Pack, evidence: Evidence): PackageCandidate[] {
  const out: PackageCandidate[] = [];
  for (const s of Object.values(evidence.stages)) {
    if (s.skill !== "infer" || !FINISHED.has(s.status)) continue;
    const dir = `stages/${s.stage}`;
    let o: InferOutput;
    try {
      o = pack.json<InferOutput>(`${dir}/output.json`);
    } catch {
      continue; // outputs.schema says why
    }
    if (!o.model?.path || !Array.isArray(o.cases)) continue;
    const packagePath = packageIn(pack, o.model.path);
    o.cases.forEach((c, i) => {
      const images = (c.images ?? []).map((im) => im.path).filter((p) => isAbsolute(p));
      if (!images.length || !c.output) return;
      out.push({
        stage: s.stage,
        role: "",
        id: c.id,
        packagePath,
        images,
        ...(typeof o.settings?.tta === "boolean" ? { tta: o.settings.tta } : {}),
        predictionRel: `${dir}/${c.output}`,
        pointer: `${dir}/output.json#/cases/${i}`,
        claim: "the package did not make this prediction",
      });
    });
  }
  return out;
}
