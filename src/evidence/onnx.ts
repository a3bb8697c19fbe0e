// Reading an ONNX model as data, for the verifier: the graph's float tensors (initializers and
// Constant nodes' values) and its nodes' operators, inputs, outputs and float attributes. It
// decodes protobuf's wire format for the few onnx.proto fields it needs and skips every other
// field, so the model is never loaded into a runtime. Field numbers are onnx.proto's.

export interface OnnxTensor {
  /** The initializer's name, or the Constant node's output. */
  name: string;
  dims: number[];
  /** onnx.proto's TensorProto.DataType: 1 float32, 7 int64, ... */
  dataType: number;
  /** float32 values as little-endian bytes; null for other types (not needed). */
  float32: Buffer | null;
}

export interface OnnxNode {
  op: string;
  inputs: string[];
  outputs: string[];
  /** Float attributes (LeakyRelu's alpha, InstanceNormalization's epsilon, ...). */
  floats: Record<string, number>;
}

export interface OnnxGraph {
  path: string;
  initializers: OnnxTensor[];
  /** Constant nodes' `value` tensors, named by the node's output. */
  constants: OnnxTensor[];
  nodes: OnnxNode[];
}

export class OnnxError extends Error {}

const FLOAT = 1;

interface Field {
  field: number;
  wire: number;
  /** The varint's value (wire type 0). */
  value: number;
  /** The payload's byte range (wire types 1, 2 and 5). */
  start: number;
  end: number;
}

/** The fields of one protobuf message occupying buf[start, end). */
function fields(buf: Buffer, start: number, end: number, path: string): Field[] {
  const out: Field[] = [];
  let i = start;
  const varint = (): number => {
    let v = 0;
    let scale = 1;
    for (;;) {
      if (i >= end) throw new OnnxError(`${path}: not an ONNX model (truncated protobuf)`);
      const b = buf[i++] as number;
      v += (b & 0x7f) * scale;
      if (b < 0x80) return v;
      scale *= 128;
    }
  };
  while (i < end) {
    const key = varint();
    const field = Math.floor(key / 8);
    const wire = key % 8;
    if (wire === 0) out.push({ field, wire, value: varint(), start: i, end: i });
    else if (wire === 2) {
      const n = varint();
      if (i + n > end) throw new OnnxError(`${path}: not an ONNX model (a field runs past its message)`);
      out.push({ field, wire, value: 0, start: i, end: i + n });
      i += n;
    } else if (wire === 1 || wire === 5) {
      const n = wire === 1 ? 8 : 4;
      out.push({ field, wire, value: 0, start: i, end: i + n });
      i += n;
    } else throw new OnnxError(`${path}: not an ONNX model (protobuf wire type ${wire})`);
  }
  if (i !== end) throw new OnnxError(`${path}: not an ONNX model (truncated protobuf)`);
  return out;
}

/** A packed run of varints (a repeated integer field written as one length-delimited field). */
function packedVarints(b: Buffer): number[] {
  const out: number[] = [];
  let v = 0;
  let scale = 1;
  for (const byte of b) {
    v += (byte & 0x7f) * scale;
    scale *= 128;
    if (byte < 0x80) {
      out.push(v);
      v = 0;
      scale = 1;
    }
  }
  return out;
}

function tensor(buf: Buffer, start: number, end: number, path: string, fallbackName: string): OnnxTensor {
  const t: OnnxTensor = { name: fallbackName, dims: [], dataType: 0, float32: null };
  let raw: Buffer | null = null;
  const floats: Buffer[] = [];
  for (const f of fields(buf, start, end, path)) {
    // onnx.proto is proto2: repeated numbers come unpacked, but a packed run is legal too.
    if (f.field === 1)
      t.dims.push(...(f.wire === 2 ? packedVarints(buf.subarray(f.start, f.end)) : [f.value]));
    else if (f.field === 2) t.dataType = f.value;
    else if (f.field === 4)
      floats.push(buf.subarray(f.start, f.end)); // packed, or one 4-byte value
    else if (f.field === 8) t.name = buf.toString("utf8", f.start, f.end);
    else if (f.field === 9) raw = buf.subarray(f.start, f.end);
    else if (f.field === 14 && f.value === 1)
      throw new OnnxError(`${path}: tensor ${t.name} keeps its data in an external file (not supported)`);
  }
  if (t.dataType === FLOAT) t.float32 = raw ?? Buffer.concat(floats);
  const count = t.dims.reduce((a, b) => a * b, 1);
  if (t.float32 && t.float32.length !== 4 * count)
    throw new OnnxError(`${path}: tensor ${t.name} holds ${t.float32.length / 4} floats, its dims ${count}`);
  return t;
}

/** Parses ONNX model bytes already in memory (the verifier's, read and hashed once). */
export function parseOnnx(buf: Buffer, path: string): OnnxGraph {
  const graphs = fields(buf, 0, buf.length, path).filter((f) => f.field === 7); // ModelProto.graph
  const g = graphs[graphs.length - 1];
  if (!g) throw new OnnxError(`${path}: not an ONNX model (no graph)`);
  const out: OnnxGraph = { path, initializers: [], constants: [], nodes: [] };
  for (const f of fields(buf, g.start, g.end, path)) {
    if (f.field === 5) out.initializers.push(tensor(buf, f.start, f.end, path, "")); // GraphProto.initializer
    if (f.field !== 1) continue; // GraphProto.node
    const node: OnnxNode = { op: "", inputs: [], outputs: [], floats: {} };
    const values: Field[] = [];
    for (const n of fields(buf, f.start, f.end, path)) {
      const text = () => buf.toString("utf8", n.start, n.end);
      if (n.field === 1) node.inputs.push(text());
      else if (n.field === 2) node.outputs.push(text());
      else if (n.field === 4) node.op = text();
      else if (n.field === 5) {
        // AttributeProto: name = 1, f = 2, t = 5
        const attr = fields(buf, n.start, n.end, path);
        const named = attr.find((a) => a.field === 1);
        const name = named ? buf.toString("utf8", named.start, named.end) : "";
        for (const a of attr) {
          if (a.field === 2 && a.wire === 5) node.floats[name] = buf.readFloatLE(a.start);
          else if (a.field === 5 && a.wire === 2) values.push(a);
        }
      }
    }
    if (node.op === "Constant")
      for (const v of values) out.constants.push(tensor(buf, v.start, v.end, path, node.outputs[0] ?? ""));
    out.nodes.push(node);
  }
  return out;
}
