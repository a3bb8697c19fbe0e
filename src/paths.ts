import { fileURLToPath } from "node:url";

/** The installed project (skills/, schemas/), whether running from src/ (tests) or dist/. */
export const PROJECT_ROOT = fileURLToPath(new URL("../", import.meta.url));
export const SCHEMAS_DIR = fileURLToPath(new URL("../schemas/", import.meta.url));
