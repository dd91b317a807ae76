/**
 * Fault injection: real jobs (`batch-transform run --local`: the CLI, real sidecar and model
 * processes, the loopback S3 server) while a model is killed, answers 500 or is too slow, a sidecar is
 * SIGKILLed mid-upload, or S3 answers 500/503 or stalls. Every run is checked (harness.ts) against the
 * fault-free run of the same layout.
 *
 *   npm run faults                    every kind 3 times on each deployment (local runner, state machine)
 *   npm run faults -- --quick         every kind once locally, three kinds on the state machine
 *   npm run faults -- --seed 42       replay a run; --repeat N, --only kindA,kindB, --mode local|sfn, --no-doc
 *
 * Layouts (whole objects on 2 workers, or a big object cut into shards on 3) and every detail of a
 * fault are drawn from the seed. Prints a markdown table (faults injected by kind, jobs that ended correctly, records lost or
 * duplicated, uploads and scratch objects left) and writes it into docs/RELIABILITY.md between the
 * faults markers. Exits 1 if any run broke an invariant.
 */
import { LOCAL_CLI_KINDS, type LocalCliKind, type LocalCliReport, runLocalCliScenario } from './local-cli';
import { markdownTable, replaceSection } from './report';
import { KINDS, type Kind } from './scenarios';
import { FaultSession, type Mode, type RunReport, summarize } from './session';

// The AWS SDK's notice about Node 20 support, once per process (the CLI children inherit this).
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

interface Args {
  quick: boolean;
  seed: number;
  repeat: number;
  only?: Kind[];
  modes: Mode[];
  doc: boolean;
  /** Only the local-mode slice on the CLI itself (local-cli.ts). */
  localCliOnly: boolean;
}

/** The state machine part of --quick: the faults its retries and Catch paths handle differently. */
const QUICK_SFN: readonly Kind[] = ['modelKill', 'sidecarKill', 's3Persistent'];

function parseArgs(argv: readonly string[]): Args {
  const args: Args = {
    quick: false,
    seed: Date.now() % 1_000_000,
    repeat: 3,
    modes: ['local', 'sfn'],
    doc: true,
    localCliOnly: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--quick') args.quick = true;
    else if (a === '--seed') args.seed = Number(value());
    else if (a === '--repeat') args.repeat = Number(value());
    else if (a === '--only') {
      args.only = value().split(',') as Kind[];
      const unknown = args.only.filter((k) => !(k in KINDS));
      if (unknown.length)
        throw new Error(`unknown kind(s) ${unknown}; kinds: ${Object.keys(KINDS).join(', ')}`);
    } else if (a === '--mode') {
      const m = value();
      if (m !== 'local' && m !== 'sfn') throw new Error('--mode is local or sfn');
      args.modes = [m];
    } else if (a === '--no-doc') args.doc = false;
    else if (a === '--local-cli-only') args.localCliOnly = true;
    else
      throw new Error(
        `unknown option ${a}; options: --quick --seed N --repeat N --only kind,kind --mode local|sfn --no-doc --local-cli-only`,
      );
  }
  if (args.quick) args.repeat = 1;
  if (!Number.isInteger(args.seed) || !(args.repeat >= 1))
    throw new Error('--seed and --repeat take whole numbers');
  return args;
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const cliFailures = args.modes.includes('local') && !args.only ? await localCliSlice(args) : 0;
  if (args.localCliOnly) return cliFailures > 0 ? 1 : 0;
  const kinds = (Object.keys(KINDS) as Kind[]).filter((k) => !args.only || args.only.includes(k));
  const plan: Array<{ kind: Kind; mode: Mode }> = [];
  for (const mode of args.modes) {
    for (let round = 0; round < args.repeat; round++) {
      for (const kind of kinds) {
        if (args.quick && mode === 'sfn' && !QUICK_SFN.includes(kind)) continue;
        plan.push({ kind, mode });
      }
    }
  }
  const flags = [
    args.quick ? '--quick' : args.repeat !== 3 ? `--repeat ${args.repeat}` : '',
    args.modes.length === 1 ? `--mode ${args.modes[0]}` : '',
    `--seed ${args.seed}`,
  ].filter(Boolean);
  const command = `npm run faults -- ${flags.join(' ')}`;
  console.log(
    `faults: ${plan.length} runs, seed ${args.seed} (replay: ${command}${args.only ? ` --only ${args.only}` : ''})`,
  );
  const started = Date.now();
  const session = await FaultSession.start(args.seed, { bigMiB: 18, modes: args.modes });
  const reports: RunReport[] = [];
  try {
    for (const mode of args.modes) {
      for (const layout of ['whole', 'sharded'] as const) {
        const b = await session.baseline(mode, layout);
        console.log(`baseline ${mode} ${layout}: ${(b.ms / 1000).toFixed(1)} s, outputs equal the oracle`);
      }
    }
    for (const [i, { kind, mode }] of plan.entries()) {
      const report = await session.run(kind, args.seed * 1000 + i + 1, mode);
      reports.push(report);
      const mark = report.problems.length === 0 ? '✓' : '✗';
      console.log(
        `${mark} ${mode.padEnd(5)} ${kind.padEnd(18)} ${report.status.padEnd(9)} ${(report.ms / 1000).toFixed(1).padStart(5)} s  faults ${report.faults}  ${report.variant}`,
      );
      for (const note of report.notes) console.log(`    ${note}`);
      if (report.reason) console.log(`    reason: ${report.reason.slice(0, 400)}`);
      for (const p of report.problems) console.log(`    PROBLEM: ${p}`);
    }
  } finally {
    await session.stop();
  }
  const rows = summarize(reports);
  const table = markdownTable(
    [
      'fault',
      'run by',
      'runs',
      'faults injected',
      'jobs that ended correctly',
      'records lost',
      'records duplicated',
      'uploads left',
      'scratch left',
    ],
    rows.map((s) => [
      KINDS[s.kind],
      s.mode === 'local' ? 'local runner' : 'state machine',
      s.runs,
      s.faults,
      `${s.correct} / ${s.runs}`,
      s.lost,
      s.duplicated,
      s.uploadsLeft,
      s.scratchLeft,
    ]),
    ['l', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
  );
  const failed = reports.filter((r) => r.problems.length > 0);
  const minutes = ((Date.now() - started) / 60_000).toFixed(1);
  console.log(`\n${table}\n`);
  console.log(`${reports.length - failed.length} of ${reports.length} runs ended correctly (${minutes} min)`);
  if (args.doc && !args.only) {
    const date = new Date().toISOString().slice(0, 10);
    const failures = failed.map(
      (r) =>
        `- \`${r.kind}\`, ${r.mode === 'local' ? 'local runner' : 'state machine'} (${r.variant}): ${withoutPaths(r.problems.join('; ')).slice(0, 400)}`,
    );
    await replaceSection(
      'faults',
      [
        `\`${command}\` (${date}, Node ${process.versions.node}, ${reports.length} runs in ${minutes} min):`,
        '',
        table,
        ...(failures.length ? ['', 'Runs that broke an invariant:', '', ...failures] : []),
      ].join('\n'),
    );
    console.log('wrote the table into docs/RELIABILITY.md');
  }
  return failed.length > 0 || cliFailures > 0 ? 1 : 0;
}

/** The local-mode slice: signals to the CLI and same-name runs (local-cli.ts). Returns the failed runs. */
async function localCliSlice(args: Args): Promise<number> {
  if (process.platform !== 'linux') {
    console.log('local-cli slice: skipped (processes are found in /proc, Linux only)');
    return 0;
  }
  const started = Date.now();
  const reports: LocalCliReport[] = [];
  const kinds = Object.keys(LOCAL_CLI_KINDS) as LocalCliKind[];
  for (let round = 0; round < args.repeat; round++) {
    for (const [k, kind] of kinds.entries()) {
      const report = await runLocalCliScenario(kind, args.seed * 100 + round * kinds.length + k + 1);
      reports.push(report);
      console.log(
        `${report.correct ? '✓' : '✗'} local-cli ${kind.padEnd(16)} ${(report.ms / 1000).toFixed(1).padStart(5)} s  ${report.problems.join('; ')}`,
      );
    }
  }
  const rows = kinds.map((kind) => {
    const of = reports.filter((r) => r.kind === kind);
    const ms = of.map((r) => r.ms).sort((a, b) => a - b);
    return [
      LOCAL_CLI_KINDS[kind],
      of.length,
      `${of.filter((r) => r.correct).length} / ${of.length}`,
      `${(ms[Math.floor((ms.length - 1) / 2)]! / 1000).toFixed(1)} s (max ${(ms.at(-1)! / 1000).toFixed(1)} s)`,
      of.reduce((n, r) => n + r.processesLeft, 0),
      of.reduce((n, r) => n + r.partialsLeft, 0),
    ];
  });
  const table = markdownTable(
    [
      'what happens to the CLI',
      'runs',
      'ended correctly',
      'time, median',
      'processes left',
      'partial files left',
    ],
    rows,
    ['l', 'r', 'r', 'r', 'r', 'r'],
  );
  const minutes = ((Date.now() - started) / 60_000).toFixed(1);
  console.log(`\n${table}\n`);
  const failed = reports.filter((r) => !r.correct).length;
  if (args.doc) {
    const command = `npm run faults -- --local-cli-only${args.repeat !== 3 ? ` --repeat ${args.repeat}` : ''} --seed ${args.seed}`;
    await replaceSection(
      'local-cli',
      [
        `\`${command}\` (${new Date().toISOString().slice(0, 10)}, Node ${process.versions.node}, ${reports.length} runs in ${minutes} min):`,
        '',
        table,
        ...reports
          .filter((r) => !r.correct)
          .map((r) => `- \`${r.kind}\`: ${withoutPaths(r.problems.join('; ')).slice(0, 400)}`),
      ].join('\n'),
    );
  }
  return failed;
}

/** Problems quote reasons and stack traces; the committed report keeps no path of the machine it ran on. */
function withoutPaths(text: string): string {
  return text.replaceAll('\n', ' ').replace(/(?<![\w.])\/(?:[\w.@+-]+\/)+[\w.@+-]*/g, '<path>');
}

process.exitCode = await main();
