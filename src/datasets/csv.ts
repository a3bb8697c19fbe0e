// A CSV with a header row and one case per row: image column(s), a label column, and optional
// id / fold / group columns. Relative paths resolve against the base dir (default: the CSV's folder).
import { readFile } from "node:fs/promises";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { caseIdOf, checkCases, checkFilesExist, imageEnding, Problems } from "./common.js";
import { parseCsv } from "./csv-parse.js";
import { type DatasetCase, type DatasetReadResult, emptyMeta, type ReadDatasetOptions } from "./types.js";

export async function readCsv(file: string, opts: ReadDatasetOptions = {}): Promise<DatasetReadResult> {
  const path = resolve(file);
  const root = resolve(opts.baseDir ?? dirname(path));
  const problems = new Problems();
  const meta = emptyMeta();
  const result: DatasetReadResult = { format: "csv", root, meta, cases: [], problems: problems.lines };
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    problems.add(path, `cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
    return result;
  }
  const { rows, error } = parseCsv(text, path.toLowerCase().endsWith(".tsv") ? "\t" : ",");
  if (error) problems.add(path, error);
  const header = (rows[0] ?? []).map((h) => h.trim());
  if (header.length === 0) {
    problems.add(path, "empty: no header row");
    return result;
  }
  const imageCols = opts.imageColumns ?? ["image"];
  const labelCol = opts.labelColumn ?? "label";
  const col = (name: string): number => header.indexOf(name);
  let missing = false;
  for (const name of [...imageCols, labelCol])
    if (col(name) < 0) {
      problems.add(path, `missing column "${name}" (header: ${header.join(", ")})`);
      missing = true;
    }
  if (missing) return result;

  const at = (p: string): string => (isAbsolute(p) ? p : join(root, p));
  const idCol = col(opts.idColumn ?? "id");
  const foldCol = col(opts.foldColumn ?? "fold");
  const groupCol = col(opts.groupColumn ?? "group");
  rows.slice(1).forEach((row, r) => {
    const where = `row ${r + 2}`;
    if (row.length !== header.length)
      problems.add(path, `${where}: ${row.length} fields, the header has ${header.length}`);
    const cell = (c: number): string => (c >= 0 ? (row[c] ?? "").trim() : "");
    const images = imageCols.map((name) => cell(col(name)));
    if (images.some((p) => p === "")) {
      problems.add(path, `${where}: empty image cell`);
      return;
    }
    const label = cell(col(labelCol));
    const c: DatasetCase = {
      id: cell(idCol) || caseIdOf(images[0]!),
      image: images.map(at),
      label: label === "" ? null : at(label),
    };
    const fold = cell(foldCol);
    if (fold !== "") {
      if (/^\d+$/.test(fold)) c.fold = Number(fold);
      else problems.add(path, `${where}: fold ${JSON.stringify(fold)} is not a non-negative integer`);
    }
    const group = cell(groupCol);
    if (group !== "") c.group = group;
    result.cases.push(c);
  });
  await checkFilesExist(result.cases, problems);
  checkCases(result.cases, problems, opts.requireLabels ?? true);
  meta.channelNames = imageCols.slice();
  meta.fileEnding = result.cases[0] ? imageEnding(result.cases[0].image[0] ?? "") || null : null;
  return result;
}
