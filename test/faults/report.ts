import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

/** docs/RELIABILITY.md: the harness commands write their tables between `<!-- <name>:begin -->` and `<!-- <name>:end -->`. */
export const RELIABILITY_DOC = fileURLToPath(new URL('../../docs/RELIABILITY.md', import.meta.url));

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/**
 * Replaces the text between a section's markers (the markers stay), so reruns update the figures in
 * place, then formats the file as `npm run format` would (tables aligned), so `biome check` stays clean.
 */
export async function replaceSection(name: string, body: string, file = RELIABILITY_DOC): Promise<void> {
  const text = await readFile(file, 'utf8');
  const begin = `<!-- ${name}:begin -->`;
  const end = `<!-- ${name}:end -->`;
  const a = text.indexOf(begin);
  const b = text.indexOf(end);
  if (a < 0 || b < a) throw new Error(`${file} has no ${begin} … ${end} section`);
  await writeFile(file, `${text.slice(0, a + begin.length)}\n${body.trim()}\n${text.slice(b)}`);
  await promisify(execFile)(
    process.execPath,
    [join(ROOT, 'node_modules/@biomejs/biome/bin/biome'), 'format', '--write', file],
    {
      cwd: ROOT,
    },
  );
}

/** A markdown table from a header row and rows of cells. */
export function markdownTable(
  header: readonly string[],
  rows: ReadonlyArray<readonly (string | number)[]>,
  align?: readonly ('l' | 'r')[],
): string {
  const line = (cells: readonly (string | number)[]) => `| ${cells.map(String).join(' | ')} |`;
  const rule = `| ${header.map((_, i) => (align?.[i] === 'r' ? '---:' : '---')).join(' | ')} |`;
  return [line(header), rule, ...rows.map(line)].join('\n');
}
