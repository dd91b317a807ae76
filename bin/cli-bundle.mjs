// How `batch-transform` starts: from an esbuild bundle of src/cli/main.ts, built on first use into
// the temp folder and reused while the sources are unchanged (the idea of src/local/sidecar-bundle.ts,
// for the CLI). Under tsx the CLI loads ~200 modules one by one: `--help` took a median 1.02 s on a
// busy 2-core machine, and 0.18 s from the bundle (docs/CLI.md). Plain JavaScript, so that nothing
// has to be compiled to decide.
//
// - The bundle's folder is named after a key of its inputs (every file's path, size and
//   modification time under src/, the lock files, tsconfig.json, this file) and of the checkout's
//   own path: a changed source gives a new key, so old code can never run.
// - A build goes to a folder of its own that is renamed into place: processes that start together
//   each build, the first rename wins, and none ever sees a half-written bundle.
// - Code runs from the cache only when no other user can write to its folder.
// - A build that fails leaves a note under the key (`<folder>.failed`, esbuild's words) and the CLI
//   runs through tsx, as it does with BATCH_TRANSFORM_CLI=tsx (stack traces then name the sources).
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, relative, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const ENTRY = join(ROOT, 'src', 'cli', 'main.ts');
/** What the bundle is made from; node_modules is covered by the lock files npm writes. */
const INPUTS = [
  'src',
  'bin/cli-bundle.mjs',
  'tsconfig.json',
  'package-lock.json',
  'node_modules/.package-lock.json',
];
/** Bundles of this checkout not started for this long are removed when a new one is built. */
const UNUSED_MS = 24 * 3600 * 1000;

/**
 * The CLI's entry module (its `main(argv)` runs a command): the cached bundle, built now when
 * missing, or the TypeScript sources through tsx when BATCH_TRANSFORM_CLI=tsx or the bundle cannot be
 * built or loaded.
 */
export async function loadCli(env = process.env) {
  // TEST ONLY: the fake AWS clients the deployed verbs' tests name (src/cli/deployed.ts) are a
  // TypeScript module, which the bundle can import only with the TypeScript loader registered.
  if (env.BATCH_TRANSFORM_TEST_AWS_CLIENTS) await registerTsx();
  if (env.BATCH_TRANSFORM_CLI !== 'tsx') {
    let bundle;
    try {
      bundle = await cachedBundle();
    } catch {
      // A cache that cannot be read or written (a read-only temp folder): run the sources.
    }
    if (bundle) {
      try {
        return await import(pathToFileURL(bundle).href);
      } catch (e) {
        // A bundle that does not load (esbuild output Node rejects) is noted like a failed build.
        noteFailure(dirname(bundle), e);
      }
    }
  }
  await registerTsx();
  return import(pathToFileURL(ENTRY).href);
}

let tsxRegistered = false;

async function registerTsx() {
  if (tsxRegistered) return;
  tsxRegistered = true;
  const { register } = await import('tsx/esm/api');
  register();
}

/** The bundle's main.mjs, built when missing; undefined when building failed for these sources. */
async function cachedBundle() {
  const cache = join(tmpdir(), 'batch-transform');
  mkdirSync(cache, { recursive: true });
  // Code is run from here: only from a folder that no other user can write to.
  const owner = statSync(cache);
  if (process.getuid && (owner.uid !== process.getuid() || (owner.mode & 0o022) !== 0)) return undefined;
  const prefix = `cli-${hash([ROOT]).slice(0, 8)}-`;
  const dir = join(cache, prefix + sourceKey());
  const main = join(dir, 'main.mjs');
  if (existsSync(main)) {
    markUsed(dir);
    return main;
  }
  if (existsSync(`${dir}.failed`)) return undefined;
  const temp = `${dir}.${process.pid}.${Date.now()}`;
  try {
    await build(temp);
  } catch (e) {
    rmSync(temp, { recursive: true, force: true });
    noteFailure(dir, e);
    return undefined;
  }
  try {
    renameSync(temp, dir);
  } catch (e) {
    // Another process's build won the rename: theirs is the same code.
    rmSync(temp, { recursive: true, force: true });
    if (!existsSync(main)) throw e;
  }
  removeUnused(cache, prefix, dir);
  return main;
}

/** Later runs of the same sources go straight to tsx; the note says why. */
function noteFailure(dir, e) {
  try {
    writeFileSync(`${dir}.failed`, `${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  } catch {
    // Only a shortcut for later runs.
  }
}

/** Every file's path, size and modification time under INPUTS, with the checkout's path. */
function sourceKey() {
  const lines = [ROOT];
  for (const input of INPUTS) {
    const path = join(ROOT, input);
    let s;
    try {
      s = statSync(path);
    } catch {
      lines.push(`${input}\0missing`);
      continue;
    }
    const files = s.isDirectory()
      ? readdirSync(path, { recursive: true, withFileTypes: true })
          .filter((e) => e.isFile())
          .map((e) => join(e.parentPath ?? e.path, e.name))
          .sort()
      : [path];
    for (const file of files) {
      const f = file === path ? s : statSync(file);
      lines.push(`${relative(ROOT, file)}\0${f.size}\0${f.mtimeMs}`);
    }
  }
  return hash(lines).slice(0, 16);
}

function hash(lines) {
  return createHash('sha256').update(lines.join('\n')).digest('hex');
}

/**
 * Bundles src/cli/main.ts into `outdir`. What is only imported dynamically (the AWS SDK clients of
 * the deployed-stack verbs, the S3 backend) goes into chunks that a process reads only when it needs
 * them. Every source keeps its own `import.meta.url`, so paths it finds relative to itself (the
 * package.json, the example models, the sidecar's sources) are the checkout's, not the temp folder's.
 */
async function build(outdir) {
  const esbuild = await import('esbuild');
  try {
    await esbuild.build({
      entryPoints: { main: ENTRY },
      outdir,
      splitting: true,
      outExtension: { '.js': '.mjs' },
      chunkNames: 'chunks/[name]-[hash]',
      bundle: true,
      platform: 'node',
      target: 'node20',
      format: 'esm',
      logLevel: 'silent',
      // CommonJS dependencies inside the bundle call require(); an ES module has none unless we make one.
      banner: {
        js: "import { createRequire as bundleRequire } from 'node:module'; const require = bundleRequire(import.meta.url);",
      },
      plugins: [ownImportMetaUrl],
    });
  } finally {
    await esbuild.stop?.();
  }
}

/** esbuild plugin: `import.meta.url` in the project's sources becomes that source's own URL. */
const ownImportMetaUrl = {
  name: 'own-import-meta-url',
  setup(b) {
    b.onLoad({ filter: /\.[cm]?[jt]s$/ }, (args) => {
      // The project's own files only (this checkout may itself lie under someone's node_modules).
      const own = relative(ROOT, args.path).split(sep);
      if (own[0] === '..' || own[0] === 'node_modules' || isAbsolute(own.join(sep))) return undefined;
      const text = readFileSync(args.path, 'utf8');
      // Node resolves these from the module's own location too; a bundle would resolve them from
      // the temp folder. None is used yet: refuse, and the CLI runs through tsx until it is handled.
      const other = /\bimport\.meta\.(resolve|dirname|filename)\b/.exec(text);
      if (other)
        return { errors: [{ text: `${args.path} uses ${other[0]}, which the CLI bundle cannot keep` }] };
      const url = JSON.stringify(pathToFileURL(args.path).href);
      const loader = /\.[cm]?ts$/.test(args.path) ? 'ts' : 'js';
      return { contents: text.replace(/\bimport\.meta\.url\b/g, url), loader };
    });
  },
};

/** A bundle's folder time says when it last started a CLI (see removeUnused). */
function markUsed(dir) {
  try {
    const now = new Date();
    utimesSync(dir, now, now);
  } catch {
    // Only housekeeping.
  }
}

/** Removes this checkout's bundles that no CLI started from for UNUSED_MS (each is a few MB). */
function removeUnused(cache, prefix, keep) {
  try {
    for (const name of readdirSync(cache)) {
      const path = join(cache, name);
      if (!name.startsWith(prefix) || path === keep) continue;
      if (Date.now() - statSync(path).mtimeMs > UNUSED_MS) rmSync(path, { recursive: true, force: true });
    }
  } catch {
    // Only housekeeping.
  }
}
