/**
 * Bundles the sidecar into one ES module, as its Dockerfile does at build time:
 *
 *   node --import tsx containers/sidecar/bundle.ts --outdir <dir>    → <dir>/sidecar.mjs
 *
 * The bundle needs nothing but Node 20: the AWS SDK, tar and the data plane are inside it. What is
 * only imported dynamically (the S3 backend with the AWS SDK, the model-archive extraction) is split
 * into chunks beside `sidecar.mjs`, read only by a process that needs them: a sidecar whose job is all
 * file:// never parses the SDK (~10 MB less memory). Copy the whole directory.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';

const SIDECAR_DIR = fileURLToPath(new URL('.', import.meta.url));

export async function bundleSidecar(outdir: string): Promise<string> {
  const outfile = join(outdir, 'sidecar.mjs');
  // Chunk names carry content hashes: clear the last build's, or they pile up beside the new ones.
  await rm(join(outdir, 'chunks'), { recursive: true, force: true });
  await build({
    entryPoints: { sidecar: join(SIDECAR_DIR, 'src', 'main.ts') },
    outdir,
    splitting: true,
    outExtension: { '.js': '.mjs' },
    chunkNames: 'chunks/[name]-[hash]',
    bundle: true,
    platform: 'node',
    // The AWS SDK's ES module builds (`module`), not its one-file CommonJS builds (`main`): esbuild
    // can then drop the S3 client's unused commands (its chunk 1.07 MB → 294 KB), and a task holds
    // less code. Interleaved bench runs on S3: peak RSS 138–144 → 123–138 MiB. (esbuild's default
    // order for platform node is main first.)
    mainFields: ['module', 'main'],
    target: 'node20',
    format: 'esm',
    sourcemap: true,
    minify: false,
    logLevel: 'warning',
    // CommonJS dependencies inside the bundle call require(); an ES module has none unless we make one.
    banner: {
      js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
    },
  });
  return outfile;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values } = parseArgs({ options: { outdir: { type: 'string' } } });
  if (!values.outdir) {
    process.stderr.write('usage: bundle.ts --outdir <dir>\n');
    process.exit(2);
  }
  const file = await bundleSidecar(values.outdir);
  process.stdout.write(`${file}\n`);
}
