import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The keys `npm run bench` promises on its last line (docs/PERFORMANCE.md). */
const REQUIRED = [
  'boundaryScanMBps',
  'lineMultiRecordMBps',
  'packRatio',
  'singleRecordRecordsPerSec',
  'echoCeilingMBps',
  'pipelineMBps',
  'pipelineRatio',
  'cpuSecondsPerGiB',
  'peakRssMBSmall',
  'peakRssMBLarge',
  'pipelineRatioBound',
  'smallObjectsSaturation',
  'smallObjectsPerSecond',
  'modelSaturation',
  's3PipelineMBps',
  's3CpuSecondsPerGiB',
  's3PeakRssMiBSmall',
  's3PeakRssMiBLarge',
  'localJobOverheadSeconds',
] as const;

/** The goals `goalsMet` reports on, one per goal in docs/PERFORMANCE.md. */
const GOALS = [
  'packRatio',
  'singleRecordRecordsPerSec',
  'pipelineRatio',
  'cpuSecondsPerGiB',
  'peakRss',
  'peakRssFlat',
  'smallObjectsSaturation',
  'modelSaturation',
  'modelSaturationVsCeiling',
  'localJobOverheadSeconds',
  's3CpuSecondsPerGiB',
  's3PeakRss',
  's3PeakRssFlat',
] as const;

// Keeps the benchmark from rotting: it runs end to end on a few MB and reports every figure.
// Speed is not asserted here; `npm run bench` measures it.
describe('npm run bench -- --smoke', () => {
  it('prints a table and, as its last line, JSON with every figure a positive finite number', async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', 'bench/run.ts', '--smoke'],
      { cwd: ROOT, maxBuffer: 1 << 20, timeout: 290_000 },
    );
    const lines = stdout.trimEnd().split('\n');
    expect(lines.some((l) => l.startsWith('figure'))).toBe(true);
    const figures = JSON.parse(lines.at(-1)!) as Record<string, unknown>;
    expect(figures.mode).toBe('smoke');
    for (const key of REQUIRED) {
      const value = figures[key];
      expect
        .soft(typeof value === 'number' && Number.isFinite(value) && value > 0, `${key} = ${value}`)
        .toBe(true);
    }
    const goals = figures.goalsMet as Record<string, unknown>;
    expect(Object.keys(goals).sort()).toEqual([...GOALS].sort());
    for (const key of GOALS) expect(typeof goals[key], key).toBe('boolean');
  }, 300_000);
});
