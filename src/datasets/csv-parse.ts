// A small RFC 4180 CSV parser: comma (or another single-character) separator, double-quoted
// fields with "" escapes and embedded separators/newlines, CRLF or LF line ends, a UTF-8 BOM.

/** Rows of fields; blank lines are dropped. An unterminated quote is reported, not guessed at. */
export function parseCsv(text: string, separator = ","): { rows: string[][]; error: string | null } {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = "";
  let quoted = false;
  let line = 1;
  let quoteLine = 0;
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  const endRow = (): void => {
    row.push(field);
    field = "";
    if (!(row.length === 1 && row[0] === "")) rows.push(row);
    row = [];
  };
  for (; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i++;
        } else quoted = false;
      } else {
        if (ch === "\n") line++;
        field += ch;
      }
    } else if (ch === '"' && field === "") {
      quoted = true;
      quoteLine = line;
    } else if (ch === separator) {
      row.push(field);
      field = "";
    } else if (ch === "\n" || ch === "\r") {
      if (ch === "\r" && text[i + 1] === "\n") i++;
      line++;
      endRow();
    } else field += ch;
  }
  if (quoted) return { rows, error: `unterminated quoted field starting on line ${quoteLine}` };
  if (field !== "" || row.length > 0) endRow();
  return { rows, error: null };
}
