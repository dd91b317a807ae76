/**
 * The long fuzz run: every data-plane property of properties.ts with many more random cases than CI
 * runs. `npm run fuzz` (100,000 cases in all, shared by weight), `npm run fuzz -- --runs 1000000`,
 * `--only <name>[,<name>]`, `--seed <n>` to replay a run (`--path <p>` to replay one failing case).
 * Prints cases per second per property and writes the table into docs/RELIABILITY.md (between the
 * fuzz markers) unless `--no-doc`. Exits 1 on the first counterexample, printing it and its seed.
 */
import fc from 'fast-check';
import { PROPERTIES } from './properties';
import { replaceSection } from '../faults/report';

interface Args {
  runs: number;
  seed: number;
  only?: string[];
  path?: string;
  doc: boolean;
}

function parseArgs(argv: readonly string[]): Args {
  const args: Args = { runs: 100_000, seed: Date.now() % 2 ** 31, doc: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--runs') args.runs = Number(value());
    else if (a === '--seed') args.seed = Number(value());
    else if (a === '--only') args.only = value().split(',');
    else if (a === '--path') args.path = value();
    else if (a === '--no-doc') args.doc = false;
    else throw new Error(`unknown option ${a}; options: --runs N --seed S --only a,b --path P --no-doc`);
  }
  if (!(args.runs > 0) || !Number.isInteger(args.seed))
    throw new Error('--runs and --seed take whole numbers');
  return args;
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const chosen = PROPERTIES.filter((p) => !args.only || args.only.includes(p.name));
  if (chosen.length === 0)
    throw new Error(`no property named ${args.only}; names: ${PROPERTIES.map((p) => p.name)}`);
  const weights = chosen.reduce((s, p) => s + p.weight, 0);
  console.log(`fuzz: ${args.runs} cases over ${chosen.length} properties, seed ${args.seed}`);
  const rows: string[] = [];
  let total = 0;
  const started = performance.now();
  for (const p of chosen) {
    const numRuns = Math.max(1, Math.round((args.runs * p.weight) / weights));
    const t0 = performance.now();
    const details = await fc.check(p.property(), {
      numRuns,
      seed: args.seed,
      ...(args.path ? { path: args.path } : {}),
    });
    const secs = (performance.now() - t0) / 1000;
    if (details.failed) {
      console.error(`\n✗ ${p.name}: ${p.claim}`);
      console.error(fc.defaultReportMessage(details));
      console.error(
        `replay: npm run fuzz -- --only ${p.name} --seed ${details.seed} --path ${details.counterexamplePath}`,
      );
      return 1;
    }
    total += details.numRuns;
    const rate = Math.round(details.numRuns / secs);
    console.log(
      `✓ ${p.name.padEnd(20)} ${String(details.numRuns).padStart(8)} cases  ${secs.toFixed(1).padStart(6)} s  ${String(rate).padStart(7)} cases/s`,
    );
    rows.push(
      `| \`${p.name}\` | ${p.claim} | ${details.numRuns.toLocaleString('en-US')} | ${rate.toLocaleString('en-US')} |`,
    );
  }
  const secs = (performance.now() - started) / 1000;
  const rate = Math.round(total / secs);
  console.log(`all ${total} cases passed in ${secs.toFixed(1)} s (${rate} cases/s)`);
  if (args.doc && !args.only && !args.path) {
    const command = `npm run fuzz -- --runs ${args.runs} --seed ${args.seed}`;
    const table = [
      `\`${command}\` (${new Date().toISOString().slice(0, 10)}, Node ${process.versions.node}, ${total.toLocaleString('en-US')} cases in ${secs.toFixed(0)} s, ${rate.toLocaleString('en-US')} cases/s, no counterexample):`,
      '',
      '| property | claim | cases | cases/s |',
      '| --- | --- | ---: | ---: |',
      ...rows,
    ].join('\n');
    await replaceSection('fuzz', table);
    console.log('wrote the table into docs/RELIABILITY.md');
  }
  return 0;
}

process.exitCode = await main();
