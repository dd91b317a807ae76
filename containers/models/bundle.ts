/**
 * Bundles an example model's server into one file, as its Dockerfile does at build time:
 *
 *   node --import tsx containers/models/bundle.ts <name> --outdir <dir>    → <dir>/serve.mjs
 *
 * The bundle needs nothing but Node 20: no node_modules, no tsx.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';

const MODELS_DIR = fileURLToPath(new URL('.', import.meta.url));

export async function bundleModel(name: string, outdir: string): Promise<string> {
  // Only containers/models is in an image build's context: the model is found by its directory.
  const entry = join(MODELS_DIR, name, 'serve.ts');
  if (!existsSync(entry))
    throw new Error(`no example model "${name}" (no ${name}/serve.ts beside bundle.ts)`);
  const outfile = join(outdir, 'serve.mjs');
  await build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    sourcemap: true,
    logLevel: 'warning',
    // sentiment loads unknown languages with require('../languages/' + code): our language is registered, never loaded.
    logOverride: { 'empty-glob': 'silent' },
    // CommonJS dependencies (sentiment) call require(); an ES module has none unless we make one.
    banner: {
      js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
    },
  });
  return outfile;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values, positionals } = parseArgs({
    options: { outdir: { type: 'string' } },
    allowPositionals: true,
  });
  if (positionals.length !== 1 || !values.outdir) {
    process.stderr.write('usage: bundle.ts <model name> --outdir <dir>\n');
    process.exit(2);
  }
  process.stdout.write(`wrote ${await bundleModel(positionals[0]!, values.outdir)}\n`);
}
