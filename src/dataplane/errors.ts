/**
 * A problem with the data of one object (bad framing, corrupt gzip, an oversize record, a filter that
 * cannot apply, a model response that cannot be split): that object fails, the job goes on with the
 * others. The message already says what and where; the sidecar prefixes the job and the object key.
 */
export class DataError extends Error {
  override readonly name = 'DataError';

  constructor(
    message: string,
    /** Absolute byte offset in the decompressed object of the record concerned, when known. */
    readonly offset?: number,
  ) {
    super(message);
  }
}

/** The one wording for a record that cannot fit a request, used by the splitters and the packer. */
export function oversizeRecordError(offset: number, size: number, limit: number, atLeast = false): DataError {
  return new DataError(
    `record at byte offset ${offset} is ${atLeast ? 'at least ' : ''}${size} bytes, ` +
      `more than MaxPayloadInMB allows (${limit} bytes)`,
    offset,
  );
}
