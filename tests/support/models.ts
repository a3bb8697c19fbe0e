// The small networks tests build packages from: seeded and fast on the CPU, the real architectures.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { examplePlan } from "../../src/preprocess/example-plan.js";
import { ROOT } from "./cli.js";
import { python } from "./oracle.js";

/** A 3-level residual UNet (4-8-16 channels), one input channel, two classes. */
export const TINY_UNET = {
  family: "unet",
  spatial_dims: 3,
  in_channels: 1,
  out_channels: 2,
  channels: [4, 8, 16],
  strides: [2, 2],
  num_res_units: 1,
};

/**
 * A model package of TINY_UNET, seeded and untrained, in `pkg`: model.onnx and weights.safetensors
 * written by medpipe's Python (Debian's torch), plan.json for heart_micro-like volumes at 2 mm.
 */
export function writeTinyPackage(pkg: string, seed: number, keepLargestComponent: boolean): void {
  python(
    `
import os, sys, json
sys.path.insert(0, INPUT["py"])
import torch
torch.set_num_threads(1)
from medpipe.nets import build_network
from medpipe.export_onnx import export_onnx
from medpipe.safetensors_io import save_file
net = build_network(INPUT["network"], seed=INPUT["seed"]).eval()
os.makedirs(INPUT["pkg"], exist_ok=True)
export_onnx(net, os.path.join(INPUT["pkg"], "model.onnx"), 1, 3)
save_file({k: v.detach().contiguous() for k, v in net.state_dict().items()},
          os.path.join(INPUT["pkg"], "weights.safetensors"),
          metadata={"architecture": json.dumps(net.config, sort_keys=True)})
`,
    { py: join(ROOT, "src", "py"), pkg, network: TINY_UNET, seed },
  );
  const plan = {
    ...examplePlan({
      cases: [{ id: "la_004", image: ["imagesTr/la_004.nii.gz"], label: "labelsTr/la_004.nii.gz" }],
      targetSpacing: [2.0, 2.0, 2.0],
      normalization: { scheme: "zscore", over: "all", mean: 160, std: 35 },
    }),
    patch_size: [32, 32, 32],
    network: TINY_UNET,
    inference: { overlap: 0.5, mode: "hann", tta: false, keep_largest_component: keepLargestComponent },
  };
  writeFileSync(join(pkg, "plan.json"), JSON.stringify(plan, null, 2));
  writeFileSync(join(pkg, "model_card.json"), "{}\n");
}
