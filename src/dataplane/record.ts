import type { SplitType } from '../contract/job';

/**
 * One record of an object. `framed` is the record's bytes as they sit in the object (RecordIO and
 * TFRecord headers, checksums and padding included; for Line the line without its `\n`; for None the
 * whole object). MultiRecord bodies keep the framing, SingleRecord bodies send the bare `payload`.
 */
export class DataRecord {
  constructor(
    /** Absolute offset of the record's first byte (its framing included) in the decompressed object. */
    readonly offset: number,
    readonly framed: Buffer,
    /** Framing bytes before the payload. */
    private readonly head = 0,
    /** Framing bytes after the payload (checksum, padding). */
    private readonly tail = 0,
    /** The payload when it is not one slice of `framed` (a RecordIO record split around the magic). */
    private readonly joined?: Buffer,
    /** The record as read, when an InputFilter replaced it (JoinSource Input joins with this). */
    readonly input?: Buffer,
  ) {}

  /** The bare record: framing stripped, RecordIO parts re-joined. */
  get payload(): Buffer {
    if (this.joined) return this.joined;
    return this.head === 0 && this.tail === 0
      ? this.framed
      : this.framed.subarray(this.head, this.framed.length - this.tail);
  }
}

/** A byte range [start, end) of an object assigned to one shard (see src/contract/plan.ts). */
export interface ShardWindow {
  readonly start: number;
  readonly end: number;
}

export interface SplitOptions {
  readonly splitType: SplitType;
  /** Line only: a `\n` inside an RFC 4180 quoted field does not end the record (extension). */
  readonly csvQuotedNewlines?: boolean;
  /**
   * Process only the records that start inside this window. The source must then begin at
   * `shardReadStart(splitType, window)`; iteration ends (and so stops reading) at the first record
   * that starts at or after `window.end`.
   */
  readonly window?: ShardWindow;
  /**
   * Fail as soon as a record's payload is known to exceed this many bytes, so one huge record cannot
   * make the splitter buffer without bound. The packer does the exact check.
   */
  readonly maxRecordBytes?: number;
}
