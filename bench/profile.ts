import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** The functions where a V8 CPU profile spent most of its own (self) time, as lines of a table. */
export function topSelfTime(profile: CpuProfile, limit = 15): string[] {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  let total = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const node = byId.get(profile.samples[i]!)!;
    const dt = profile.timeDeltas[i] ?? 0;
    total += dt;
    const { functionName, url, lineNumber } = node.callFrame;
    const file = url.replace(/^.*\/(node_modules\/[^/]+|src|containers|bench)\//, '$1/');
    const key = `${functionName || '(anonymous)'} ${file ? `${file}:${lineNumber + 1}` : ''}`.trim();
    self.set(key, (self.get(key) ?? 0) + dt);
  }
  return [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, limit)
    .map(
      ([k, us]) =>
        `${((100 * us) / total).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(6)} ms  ${k}`,
    );
}

/** Summaries of every `.cpuprofile` in `dir`. */
export async function summarizeProfiles(dir: string, limit = 15): Promise<string[]> {
  const out: string[] = [];
  for (const name of (await readdir(dir)).filter((f) => f.endsWith('.cpuprofile')).sort()) {
    const profile = JSON.parse(await readFile(join(dir, name), 'utf8')) as CpuProfile;
    out.push(`${name}:`, ...topSelfTime(profile, limit));
  }
  return out;
}
