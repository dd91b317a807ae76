/**
 * Times the benchmark's one-record local job (`localJobOverheadSeconds`, scenarios.ts) for one or
 * more checkouts of the CLI, runs interleaved so a busy spell on the machine hits every checkout:
 *
 *   node --import tsx bench/local-job.ts [--runs 9] [--cli other/bin/batch-transform.mjs …]
 *
 * Without --cli it times this checkout's `bin/batch-transform.mjs`. One warm-up run per CLI first
 * (it builds any cached bundle), then `--runs` measured rounds; prints each CLI's median and range.
 * An older commit to compare with: `git archive <commit> | tar -x -C <dir>`, then link this
 * checkout's node_modules into `<dir>` and pass `--cli <dir>/bin/batch-transform.mjs`.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startTestModel } from '../test/fixtures/models/start';
import { localJobSeconds } from './scenarios';
import { median, spread } from './stats';

const { values } = parseArgs({
  options: { runs: { type: 'string', default: '9' }, cli: { type: 'string', multiple: true } },
});
const clis = values.cli?.length
  ? values.cli
  : [fileURLToPath(new URL('../bin/batch-transform.mjs', import.meta.url))];
const runs = Number(values.runs);
const scratchDir = await mkdtemp(join(tmpdir(), 'batch-transform-local-job-'));
const model = await startTestModel({ TEST_MODEL_RECORD_LIMIT: '0' });
try {
  const times: number[][] = clis.map(() => []);
  for (let round = -1; round < runs; round++) {
    for (const [i, cli] of clis.entries()) {
      const s = await localJobSeconds({ scratchDir, modelUrl: model.url, name: `local-job-${i}`, cli });
      if (round >= 0) times[i]!.push(s);
    }
  }
  for (const [i, cli] of clis.entries()) {
    const t = times[i]!;
    process.stdout.write(
      `${cli}: median ${median(t).toFixed(2)} s (${spread(t, 2)}) over ${t.length} runs\n`,
    );
  }
} finally {
  await model.stop();
  await rm(scratchDir, { recursive: true, force: true });
}
