/**
 * Bundles the sidecar into one ES module, as its Dockerfile does at build time:
 *
 *   node --import tsx containers/sidecar/bundle.ts --outdir <dir>    → <dir>/sidecar.mjs
 *
 * The bundle needs nothing but Node 20: the AWS SDK, undici and the data plane are inside it.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';

const SIDECAR_DIR = fileURLToPath(new URL('.', import.meta.url));

export async function bundleSidecar(outdir: string): Promise<string> {
  const outfile = join(outdir, 'sidecar.mjs');
  await build({
    entryPoints: [join(SIDECAR_DIR, 'src', 'main.ts')],
    outfile,
    bundle: true,
    platform: 'node',
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
