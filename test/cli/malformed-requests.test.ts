import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main';
import { checkRequest } from '../../src/job/validate';
import { CLI, ROOT, runCli } from '../support/cli';
import { makeTempDir, type TempDir } from '../support/tmp';

/**
 * Requests of the wrong shape at every field, through every verb that takes a request: each answers
 * exit 2 with the problems and their field paths, never a stack trace. The verbs run in this process
 * (`main` is a function), so hundreds of requests take a second or two.
 */

const VALID = {
  TransformJobName: 'malformed',
  ModelName: 'test-model',
  BatchStrategy: 'MultiRecord',
  MaxPayloadInMB: 6,
  MaxConcurrentTransforms: 2,
  Environment: { A: 'b' },
  TransformInput: {
    DataSource: { S3DataSource: { S3DataType: 'S3Prefix', S3Uri: 's3://bucket-in/in/' } },
    ContentType: 'text/csv',
    CompressionType: 'None',
    SplitType: 'Line',
  },
  TransformOutput: { S3OutputPath: 's3://bucket-out/out/', Accept: 'text/csv', AssembleWith: 'Line' },
  TransformResources: { InstanceType: 'ml.m5.large', InstanceCount: 1 },
  DataProcessing: { InputFilter: '$', OutputFilter: '$', JoinSource: 'None' },
  ModelClientConfig: { InvocationsTimeoutInSeconds: 60, InvocationsMaxRetries: 1 },
  Tags: [{ Key: 'k', Value: 'v' }],
};

type Path = readonly (string | number)[];
const WRONG: readonly unknown[] = ['x', 7, true, null, [], {}, [1]];
const kind = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);

/** Every path of a JSON value (the root too), depth first. */
function paths(value: unknown, at: Path = []): Path[] {
  const out: Path[] = [at];
  if (Array.isArray(value)) {
    for (const [i, v] of value.entries()) out.push(...paths(v, [...at, i]));
  } else if (value && typeof value === 'object')
    for (const [k, v] of Object.entries(value)) out.push(...paths(v, [...at, k]));
  return out;
}

function setAt(value: unknown, path: Path, replacement: unknown): unknown {
  if (path.length === 0) return replacement;
  const copy = structuredClone(value) as Record<string | number, unknown>;
  let node = copy;
  for (const key of path.slice(0, -1)) node = node[key] as Record<string | number, unknown>;
  node[path.at(-1)!] = replacement;
  return copy;
}

function pathText(path: Path): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
}

/** Each field replaced by each value of another JSON type that makes the request invalid. */
function malformed(): Array<{ label: string; path: string; request: unknown }> {
  const out: Array<{ label: string; path: string; request: unknown }> = [];
  for (const path of paths(VALID)) {
    const original = path.reduce<unknown>((v, k) => (v as Record<string | number, unknown>)[k], VALID);
    for (const wrong of WRONG) {
      if (kind(wrong) === kind(original)) continue;
      const request = setAt(VALID, path, wrong);
      if (checkRequest(request, { local: true, enabledInstanceTypes: [] }).ok) continue; // still valid
      out.push({
        label: `${pathText(path) || '(request)'} = ${JSON.stringify(wrong)}`,
        path: pathText(path),
        request,
      });
    }
  }
  return out;
}

/** Runs the CLI in this process, capturing what it writes. */
async function inProcess(
  args: readonly string[],
): Promise<{ code: number | 'threw'; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const out = process.stdout.write;
  const err = process.stderr.write;
  process.stdout.write = ((chunk: string | Uint8Array) => {
    stdout += chunk;
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string | Uint8Array) => {
    stderr += chunk;
    return true;
  }) as typeof process.stderr.write;
  try {
    const code = await main(['node', 'batch-transform', ...args]);
    return { code, stdout, stderr };
  } catch (e) {
    return { code: 'threw', stdout, stderr: `${stderr}${(e as Error).stack}` };
  } finally {
    process.stdout.write = out;
    process.stderr.write = err;
  }
}

/** The problems a verb printed with --json: an array, or a run's `{TransformJobStatus: 'Invalid', Problems}`. */
function problemsOf(stdout: string): Array<{ path: string; message: string }> {
  const text = stdout.trim();
  const parsed = JSON.parse(text.startsWith('[') ? text : text.split('\n').pop()!);
  if (Array.isArray(parsed)) return parsed;
  expect(parsed.TransformJobStatus).toBe('Invalid');
  return parsed.Problems;
}

/** A problem about the changed field: at it, at an enclosing object, or at a field inside it. */
const relates = (problem: string, changed: string) =>
  problem === changed ||
  changed.startsWith(`${problem}.`) ||
  changed.startsWith(`${problem}[`) ||
  (changed === '' ? true : problem.startsWith(changed));

let dir: TempDir;
beforeAll(async () => {
  dir = await makeTempDir('bt-malformed');
});
afterAll(() => dir.remove());

const CASES = malformed();
const VERBS: Record<string, (file: string) => string[]> = {
  validate: (file) => ['validate', file, '--local', '--json'],
  'run --local': (file) => ['run', file, '--local', '--model-url', 'http://127.0.0.1:9', '--json'],
  // An ARN given, so no stack is looked up: the request is refused before any AWS call.
  submit: (file) => [
    'submit',
    file,
    '--state-machine-arn',
    'arn:aws:states:us-east-1:123456789012:stateMachine:none',
    '--json',
  ],
};

describe('wrongly typed requests', () => {
  it('are generated for every field of a request', () => {
    expect(CASES.length).toBeGreaterThan(100);
    expect(CASES.map((c) => c.label)).toContain('TransformOutput = "x"');
  });

  it.each(Object.keys(VERBS))(
    '%s: exit 2, every problem with its field path, no stack trace',
    async (verb) => {
      await mkdir(join(dir.path, 'requests'), { recursive: true });
      const failures: string[] = [];
      for (const [i, c] of CASES.entries()) {
        const file = join(dir.path, 'requests', `${i}.json`);
        await writeFile(file, JSON.stringify(c.request));
        const r = await inProcess(VERBS[verb]!(file));
        const problems = r.code === 2 ? problemsOf(r.stdout) : [];
        if (r.code !== 2 || /\n\s+at /.test(r.stderr) || !problems.some((p) => relates(p.path, c.path)))
          failures.push(`${c.label}: exit ${r.code}, ${r.stdout.trim()} ${r.stderr.trim().slice(0, 300)}`);
      }
      expect(failures).toEqual([]);
    },
    60_000,
  );
});

describe('run --local --json ends every outcome with one JSON line', () => {
  it.each([
    ['a missing file', async () => join(dir.path, 'nothing-here.json'), 'no such file'],
    ['invalid JSON', async () => write('broken.json', '{"TransformJobName": '), 'is not valid JSON'],
    ['an empty file', async () => write('empty.json', ''), 'is empty'],
    ['a directory', async () => dir.path, 'is a directory'],
    ['a request that is not an object', async () => write('string.json', '"x"'), 'must be a JSON object'],
  ])('%s: exit 2, the problem as JSON on the last line of stdout', async (_what, make, message) => {
    const r = await inProcess(['run', await make(), '--local', '--json']);
    expect(r.code).toBe(2);
    const last = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(last.TransformJobStatus).toBe('Invalid');
    expect(last.Problems[0].path).toBe('');
    expect(last.Problems[0].message).toContain(message);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  async function write(name: string, text: string): Promise<string> {
    const file = join(dir.path, name);
    await writeFile(file, text);
    return file;
  }
});

describe('a closed standard output', () => {
  it('ends `submit --help | head -1` quietly: no EPIPE, no stack trace', async () => {
    const child = spawn(process.execPath, [CLI, 'submit', '--help'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // The reader goes away before the CLI writes, as `head` does after its first lines.
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    const [code] = await once(child, 'exit');
    expect(stderr).toBe('');
    expect(code).toBe(0);
  });

  it('still prints the whole help to a reader that reads it', async () => {
    const r = await runCli(['submit', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Usage: batch-transform submit');
  });
});
