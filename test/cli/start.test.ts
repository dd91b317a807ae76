import { chmod, cp, mkdir, readdir, readFile, realpath, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { build } from 'esbuild';
import { describe, it } from 'vitest';
import { ROOT, runCli } from '../support/cli';
import { makeTempDir, type TempDir } from '../support/tmp';

/**
 * How `batch-transform` starts (bin/cli-bundle.mjs): from a bundle cached in the temp folder. Each
 * test runs a copy of the checkout whose TMPDIR is its own, so it sees its own first run and can
 * change sources without touching the checkout other tests run.
 */
interface Checkout {
  readonly dir: TempDir;
  /** The copy's bin/batch-transform.mjs. */
  readonly cli: string;
  /** The copy's TMPDIR; bundles go under batch-transform/ in it. */
  readonly tmp: string;
  run(args: readonly string[], env?: NodeJS.ProcessEnv): ReturnType<typeof runCli>;
  /** Names in the bundle cache that belong to the CLI (bundles, failure notes, builds under way). */
  cached(): Promise<string[]>;
}

/** `under`: where in the temp folder the copy goes (as a package installed under node_modules/). */
async function copyCheckout(label: string, under = '.'): Promise<Checkout> {
  const dir = await makeTempDir(label);
  const root = join(dir.path, under);
  for (const entry of ['bin', 'src', 'package.json', 'package-lock.json', 'tsconfig.json'])
    await cp(join(ROOT, entry), join(root, entry), { recursive: true });
  await symlink(await realpath(join(ROOT, 'node_modules')), join(root, 'node_modules'));
  const tmp = join(dir.path, 'tmp');
  await mkdir(tmp);
  const cli = join(root, 'bin', 'batch-transform.mjs');
  return {
    dir,
    cli,
    tmp,
    run: (args, env = {}) =>
      runCli(args, { cli, cwd: dir.path, env: { TMPDIR: tmp, BATCH_TRANSFORM_CLI: '', ...env } }),
    cached: async () =>
      (await readdir(join(tmp, 'batch-transform')).catch(() => [] as string[]))
        .filter((n) => n.startsWith('cli-'))
        .sort(),
  };
}

const BUNDLE = /^cli-[0-9a-f]{8}-[0-9a-f]{16}$/;

describe('the batch-transform command starts', () => {
  it('from a bundle built on the first run and reused while the sources are unchanged', async ({
    expect,
  }) => {
    const c = await copyCheckout('cli-start');
    await using _ = c.dir;
    const first = await c.run(['--help']);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toContain('Usage: batch-transform');
    const built = await c.cached();
    expect(built).toHaveLength(1);
    expect(built[0]).toMatch(BUNDLE);
    const again = await c.run(['--help']);
    expect(again.stdout).toBe(first.stdout);
    expect(await c.cached()).toEqual(built);
  }, 120_000);

  it('with the code of a source changed since the last bundle: a new bundle is built under a new key', async ({
    expect,
  }) => {
    const c = await copyCheckout('cli-start');
    await using _ = c.dir;
    expect((await c.run(['--help'])).stdout).toContain('SageMaker Batch Transform in your own AWS account');
    const [old] = await c.cached();
    const main = join(c.dir.path, 'src', 'cli', 'main.ts');
    const source = await readFile(main, 'utf8');
    await writeFile(
      main,
      source.replace('SageMaker Batch Transform in your own AWS account', 'Changed words'),
    );
    const changed = await c.run(['--help']);
    expect(changed.code, changed.stderr).toBe(0);
    expect(changed.stdout).toContain('Changed words');
    const now = await c.cached();
    expect(now).toHaveLength(2);
    expect(now).toContain(old);
  }, 120_000);

  it('in many processes at once before any bundle exists: each runs, and one whole bundle is left', async ({
    expect,
  }) => {
    const c = await copyCheckout('cli-start');
    await using _ = c.dir;
    const runs = await Promise.all(Array.from({ length: 4 }, () => c.run(['--version'])));
    for (const r of runs) {
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.trim()).toBe('0.1.0');
    }
    // Builds under way are folders of their own, renamed into place: none is left behind.
    const cached = await c.cached();
    expect(cached).toHaveLength(1);
    expect(cached[0]).toMatch(BUNDLE);
    expect(await readdir(join(c.tmp, 'batch-transform', cached[0]!))).toContain('main.mjs');
  }, 120_000);

  it("with the checkout's own files where a source finds them relative to itself (import.meta.url)", async ({
    expect,
  }) => {
    const c = await copyCheckout('cli-start');
    await using _ = c.dir;
    const pkg = JSON.parse(await readFile(join(c.dir.path, 'package.json'), 'utf8'));
    await writeFile(join(c.dir.path, 'package.json'), JSON.stringify({ ...pkg, version: '9.8.7' }));
    const r = await c.run(['--version']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('9.8.7');
    expect(await c.cached()).toEqual([expect.stringMatching(BUNDLE)]);
  }, 120_000);

  it('from a bundle that keeps import.meta.url also when the checkout is a package under node_modules/', async ({
    expect,
  }) => {
    const c = await copyCheckout('cli-start', join('node_modules', 'batch-transform'));
    await using _ = c.dir;
    const pkgFile = join(c.dir.path, 'node_modules', 'batch-transform', 'package.json');
    const pkg = JSON.parse(await readFile(pkgFile, 'utf8'));
    await writeFile(pkgFile, JSON.stringify({ ...pkg, version: '9.8.7' }));
    const r = await c.run(['--version']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('9.8.7');
    expect(await c.cached()).toEqual([expect.stringMatching(BUNDLE)]);
  }, 120_000);

  it('through tsx when the sources cannot be bundled, noting why once for later runs', async ({ expect }) => {
    const c = await copyCheckout('cli-start');
    await using _ = c.dir;
    // Runs under tsx; a bundle would resolve it from the temp folder, so the build refuses it.
    await writeFile(
      join(c.dir.path, 'src', 'cli', 'schema.ts'),
      `${await readFile(join(c.dir.path, 'src', 'cli', 'schema.ts'), 'utf8')}\nexport const here = import.meta.dirname;\n`,
    );
    for (let i = 0; i < 2; i++) {
      const r = await c.run(['--version']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.trim()).toBe('0.1.0');
    }
    const cached = await c.cached();
    expect(cached).toHaveLength(1);
    expect(cached[0]).toMatch(/^cli-[0-9a-f]{8}-[0-9a-f]{16}\.failed$/);
    expect(await readFile(join(c.tmp, 'batch-transform', cached[0]!), 'utf8')).toContain(
      'uses import.meta.dirname',
    );
  }, 120_000);

  it('through tsx when the cached bundle does not load', async ({ expect }) => {
    const c = await copyCheckout('cli-start');
    await using _ = c.dir;
    expect((await c.run(['--version'])).code).toBe(0);
    const [bundle] = await c.cached();
    await writeFile(join(c.tmp, 'batch-transform', bundle!, 'main.mjs'), 'this is not JavaScript (\n');
    const r = await c.run(['--version']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('0.1.0');
    expect(await c.cached()).toContain(`${bundle}.failed`);
  }, 120_000);

  it('through tsx, building nothing, when other users can write to the bundle cache', async ({ expect }) => {
    const c = await copyCheckout('cli-start');
    await using _ = c.dir;
    const cache = join(c.tmp, 'batch-transform');
    await mkdir(cache);
    await chmod(cache, 0o777);
    const r = await c.run(['--version']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('0.1.0');
    expect(await c.cached()).toEqual([]);
  }, 120_000);

  it('through tsx with BATCH_TRANSFORM_CLI=tsx, building nothing', async ({ expect }) => {
    const c = await copyCheckout('cli-start');
    await using _ = c.dir;
    const r = await c.run(['--version'], { BATCH_TRANSFORM_CLI: 'tsx' });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('0.1.0');
    expect(await c.cached()).toEqual([]);
  }, 120_000);
});

/** The CLI's module graph as esbuild sees it when it bundles the entry. */
async function cliGraph() {
  const { metafile } = await build({
    entryPoints: [join(ROOT, 'src', 'cli', 'main.ts')],
    bundle: true,
    platform: 'node',
    format: 'esm',
    splitting: true,
    outdir: join(ROOT, 'unwritten'),
    write: false,
    metafile: true,
    logLevel: 'silent',
  });
  return metafile.inputs;
}

describe("the CLI's bundle", () => {
  it('is made only of files its cache key covers: sources under src/ and installed packages', async ({
    expect,
  }) => {
    const inputs = Object.keys(await cliGraph());
    expect(inputs.length).toBeGreaterThan(50);
    expect(inputs.filter((p) => !p.startsWith('src/') && !p.includes('node_modules/'))).toEqual([]);
  });

  it('loads no AWS SDK and no tar at start: only what needs them (deployed verbs, s3://, ModelDataUrl) imports them, when it runs', async ({
    expect,
  }) => {
    const inputs = await cliGraph();
    // Every module reachable from the entry by static imports, with the one that imports it.
    const importer = new Map<string, string>([
      [Object.keys(inputs).find((p) => p.endsWith('src/cli/main.ts'))!, ''],
    ]);
    for (const [path] of importer)
      for (const i of inputs[path]?.imports ?? [])
        if (i.kind === 'import-statement' && !i.external && !importer.has(i.path)) importer.set(i.path, path);
    const onDemand = [...importer]
      .filter(([p]) => /node_modules\/(@aws-sdk|tar)\//.test(p))
      .map(([p, by]) => `${p} ← ${by}`);
    expect(onDemand).toEqual([]);
  });
});
