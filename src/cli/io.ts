import { readFile } from 'node:fs/promises';

/** Exit codes shared by every verb. */
export const EXIT = { ok: 0, failed: 1, invalid: 2 } as const;

/** A user-facing failure: printed as one clear message, never as a stack trace. */
export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    message: string,
    readonly exitCode: number = EXIT.invalid,
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
    throw new CliError(
      err.code === 'ENOENT' ? `cannot read ${source}: no such file` : `cannot read ${source}: ${err.message}`,
    );
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new CliError(
      `${source === '-' ? 'standard input' : source} is not valid JSON: ${(e as Error).message}`,
    );
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
