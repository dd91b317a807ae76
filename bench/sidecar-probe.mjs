/**
 * Preloaded into the sidecar process by the benchmark (NODE_OPTIONS=--import); the sidecar's own
 * code is unchanged. When the process exits it writes to BENCH_PROBE_FILE:
 *  - its peak resident set (VmHWM) and CPU time (user + system, every thread), read from inside at
 *    exit, so nothing is lost between samples;
 *  - its CPU time and the clock when the first POST /invocations started (the model client's
 *    diagnostics channel), so the CPU of the transform can be told from the CPU of starting Node and
 *    loading the bundle, and the invocations' span from the partition's start-up.
 * With BENCH_PROBE_SAMPLE_MS it also keeps the memory breakdown (V8 heap, ArrayBuffers) of the
 * moment RSS was highest, to tell what the peak is made of.
 */
import { subscribe } from 'node:diagnostics_channel';
import { readFileSync, writeFileSync } from 'node:fs';

const file = process.env.BENCH_PROBE_FILE;
const sampleMs = Number(process.env.BENCH_PROBE_SAMPLE_MS ?? 0);
const cpuUs = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};

if (file) {
  let firstInvocationCpuUs;
  let firstInvocationAtMs;
  // INVOCATION_CHANNEL in containers/sidecar/src/model-client.ts.
  subscribe('batch-transform:invocation:start', () => {
    firstInvocationCpuUs ??= cpuUs();
    firstInvocationAtMs ??= Date.now();
  });

  let atPeak;
  if (sampleMs > 0) {
    setInterval(() => {
      const m = process.memoryUsage();
      if (!atPeak || m.rss > atPeak.rss) atPeak = m;
    }, sampleMs).unref();
  }

  process.on('exit', (code) => {
    const status = readFileSync('/proc/self/status', 'utf8');
    const kib = (name) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? Number.NaN);
    writeFileSync(
      file,
      JSON.stringify({
        pid: process.pid,
        code,
        vmHwmKiB: kib('VmHWM'),
        cpuUs: cpuUs(),
        firstInvocationCpuUs: firstInvocationCpuUs ?? null,
        firstInvocationAtMs: firstInvocationAtMs ?? null,
        ...(atPeak ? { atPeak } : {}),
      }),
    );
  });
}
