import { readFile } from 'node:fs/promises';

/** Exit codes shared by every verb. */
export const EXIT = { ok: 0, failed: 1, invalid: 2 } as const;

/** A user-facing failure: printed as one clear message, never as a stack trace. */
export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    message: string,
    readonly exitCode: number = EXIT.invalid,
    /** The field path (or option) it is about, as problems name them: `''` for the request document. */
    readonly path?: string,
  ) {
    super(message);
  }
}

/** Reads a JSON document from a file path or `-` (standard input). */
export async function readJsonInput(source: string): Promise<unknown> {
  let text: string;
  try {
    text = source === '-' ? await readStdin() : await readFile(source, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why =
      err.code === 'ENOENT' ? 'no such file' : err.code === 'EISDIR' ? 'it is a directory' : err.message;
    throw new CliError(`cannot read ${source}: ${why}`, EXIT.invalid, '');
  }
  const name = source === '-' ? 'standard input' : source;
  if (text.trim() === '') throw new CliError(`${name} is empty; expected a JSON request`, EXIT.invalid, '');
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new CliError(`${name} is not valid JSON: ${(e as Error).message}`, EXIT.invalid, '');
  }
}

/**
 * `readJsonInput` for verbs whose --json output is a problem list: with --json, an unreadable request
 * is reported as one more problem on standard output (and as a message on standard error).
 */
export async function readRequestReportingJson(source: string, json: boolean | undefined): Promise<unknown> {
  try {
    return await readJsonInput(source);
  } catch (e) {
    if (json && e instanceof CliError) printJson([{ path: e.path ?? '', message: e.message }]);
    throw e;
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** ` N completed earlier (kept),` for a resumed job (`Extensions.ResumeFrom`), else nothing. */
export function earlier(p: { objectsCompletedEarlier?: number }): string {
  return p.objectsCompletedEarlier ? ` ${p.objectsCompletedEarlier} completed earlier (kept),` : '';
}
