/**
 * Byte plumbing shared by the splitters and the packer: a queue over incoming chunks for framed
 * formats, and helpers over a body kept as a list of parts (Buffers sliced from the input chunks,
 * so packing a 6 MiB mini-batch copies nothing; the HTTP client writes the parts as they are).
 */

export const NEWLINE = Buffer.from('\n');

/**
 * Unread bytes of a stream, kept as the chunks they arrived in. Reads that fall inside one chunk
 * are subarrays; only a record that spans chunks is copied, once, into a buffer of its exact size.
 */
export class ChunkQueue {
  private chunks: Buffer[] = [];
  /** Index of the chunk holding the read position (consumed chunks are compacted away in bulk). */
  private head = 0;
  /** Read position inside chunks[head]. */
  private at = 0;
  /** Unread bytes. */
  length = 0;
  /** Absolute offset of the read position. */
  offset: number;

  constructor(offset = 0) {
    this.offset = offset;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  /** The uint32 LE at `rel` bytes past the read position; the caller checks `length` first. */
  uint32(rel: number): number {
    const first = this.chunks[this.head]!;
    const p = this.at + rel;
    if (p + 4 <= first.length) return first.readUInt32LE(p);
    const b0 = this.byte(rel);
    const b1 = this.byte(rel + 1);
    const b2 = this.byte(rel + 2);
    return (b0 | (b1 << 8) | (b2 << 16) | (this.byte(rel + 3) << 24)) >>> 0;
  }

  private byte(rel: number): number {
    let p = this.at + rel;
    for (let k = this.head; k < this.chunks.length; k++) {
      const c = this.chunks[k]!;
      if (p < c.length) return c[p]!;
      p -= c.length;
    }
    throw new RangeError('read past the queued bytes');
  }

  /** The next `n` bytes (n ≤ length) without consuming them; copied only when they span chunks. */
  peek(n: number): Buffer {
    const first = this.chunks[this.head]!;
    if (this.at + n <= first.length) return first.subarray(this.at, this.at + n);
    const out = Buffer.allocUnsafe(n);
    for (let k = 0; k < n; k++) out[k] = this.byte(k);
    return out;
  }

  /** Removes and returns the next `n` bytes (n ≤ length). */
  take(n: number): Buffer {
    const first = this.chunks[this.head]!;
    if (this.at + n <= first.length) {
      const out = first.subarray(this.at, this.at + n);
      this.advance(n);
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[this.head]!;
      const k = Math.min(c.length - this.at, n - filled);
      c.copy(out, filled, this.at, this.at + k);
      filled += k;
      this.advance(k);
    }
    return out;
  }

  /** Discards the next `n` bytes (n ≤ length). */
  skip(n: number): void {
    let left = n;
    while (left > 0) {
      const k = Math.min(this.chunks[this.head]!.length - this.at, left);
      this.advance(k);
      left -= k;
    }
  }

  /** Moves the read position by k bytes within chunks[head]. */
  private advance(k: number): void {
    this.at += k;
    this.length -= k;
    this.offset += k;
    if (this.at < this.chunks[this.head]!.length) return;
    this.at = 0;
    this.head++;
    // Compact in bulk: a shift per chunk would make a record spanning many chunks quadratic.
    if (this.head === this.chunks.length || this.head >= 1024) {
      this.chunks.splice(0, this.head);
      this.head = 0;
    }
  }
}

/** Total bytes of a list of parts. */
export function partsLength(parts: readonly Buffer[]): number {
  let n = 0;
  for (const p of parts) n += p.length;
  return n;
}

/** The parts covering bytes [from, to) of the concatenation of `parts`; subarrays, no copy. */
export function sliceParts(parts: readonly Buffer[], from: number, to: number): Buffer[] {
  const out: Buffer[] = [];
  let pos = 0;
  for (const p of parts) {
    const end = pos + p.length;
    if (end > from && pos < to) out.push(p.subarray(Math.max(0, from - pos), Math.min(p.length, to - pos)));
    if (end >= to) break;
    pos = end;
  }
  return out;
}

/** One Buffer for a list of parts: the part itself when there is one, else a single copy. */
export function joinParts(parts: readonly Buffer[], length = partsLength(parts)): Buffer {
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts as Buffer[], length);
}

/**
 * Appends `b` to a parts list, extending the last part instead when `b` continues it in the same
 * memory: consecutive records sliced from one chunk collapse back into one part.
 */
export function appendPart(parts: Buffer[], b: Buffer): void {
  const last = parts[parts.length - 1];
  if (last && last.buffer === b.buffer && last.byteOffset + last.length === b.byteOffset) {
    parts[parts.length - 1] = Buffer.from(last.buffer, last.byteOffset, last.length + b.length);
  } else if (b.length > 0) {
    parts.push(b);
  }
}

/**
 * Appends a Line record to a MultiRecord body, `\n`-separated from what is there. When the record
 * follows the last part in the same memory with just its `\n` between (the usual case: both were
 * sliced from one chunk), the last part is extended over the `\n` and the record, copying nothing.
 */
export function appendLine(parts: Buffer[], line: Buffer): void {
  const last = parts[parts.length - 1];
  if (last === undefined) {
    parts.push(line);
    return;
  }
  if (last.buffer === line.buffer && last.byteOffset + last.length + 1 === line.byteOffset) {
    const merged = Buffer.from(last.buffer, last.byteOffset, last.length + 1 + line.length);
    if (merged[last.length] === 10) {
      parts[parts.length - 1] = merged;
      return;
    }
  }
  parts.push(NEWLINE);
  if (line.length > 0) parts.push(line);
}
