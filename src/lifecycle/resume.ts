import type { TransformJobDescription } from '../contract/description';
import type { NormalizedJob, StoredJob } from '../contract/job';
import { errorsObjectUri, jobWorkUri, outputObjectUri, summaryUri } from '../contract/layout';
import type { Problem } from '../job/problems';
import { findObjects } from '../storage/find-objects';
import { readJsonIfExists } from '../storage/json';
import type { Storage, StoredObject } from '../storage/storage';
import { joinUri } from '../storage/uri';
import { objectOutcomes, readReports } from './reports';

/**
 * Resuming a job (`Extensions.ResumeFrom`, docs/JOB.md "Resuming a job"): a job keeps the outputs an
 * earlier job of the same request completed and processes only the rest. The validate stage checks
 * the earlier job (`checkResumeFrom`); the plan stage finds the objects it completed whose outputs
 * are in place (`objectsCompletedEarlier`).
 */

/**
 * Fields of the normalized job that may differ from the earlier job's: none of them changes which
 * objects are read, an output byte, or where an output goes. Every other field must be equal.
 */
export const RESUME_MAY_DIFFER: readonly string[] = [
  'TransformJobName',
  'Extensions.ResumeFrom',
  'TransformResources',
  'MaxConcurrentTransforms',
  'ModelClientConfig',
  'Extensions.ShardMinSizeInMB',
  'Extensions.ModelStartupTimeoutInSeconds',
  'Tags',
  // Derived from the fields above, or only a note about them.
  'Capacity',
  'IgnoredFields',
];

/**
 * The field paths where `job` differs from `earlier`, ignoring RESUME_MAY_DIFFER, each with both
 * values. A field absent on one side and set on the other differs.
 */
export function requestDifferences(
  earlier: NormalizedJob,
  job: NormalizedJob,
): Array<{ path: string; earlier: unknown; now: unknown }> {
  const out: Array<{ path: string; earlier: unknown; now: unknown }> = [];
  const walk = (a: unknown, b: unknown, path: string) => {
    if (RESUME_MAY_DIFFER.includes(path)) return;
    if (isRecord(a) && isRecord(b)) {
      for (const k of new Set([...Object.keys(a), ...Object.keys(b)]))
        walk(a[k], b[k], path ? `${path}.${k}` : k);
      return;
    }
    if (JSON.stringify(a) !== JSON.stringify(b)) out.push({ path, earlier: a, now: b });
  };
  walk(earlier, job, '');
  return out;
}

/**
 * Checks the job named by `Extensions.ResumeFrom`: it exists in this deployment's work location, it
 * has ended (its summary is written: Completed, Failed or Stopped), and its request is this one's
 * apart from RESUME_MAY_DIFFER (so its outputs are under the same S3OutputPath and byte for byte
 * what this job would write). Returns the problems, each at `Extensions.ResumeFrom`, or where the
 * earlier job's work is.
 */
export async function checkResumeFrom(
  job: NormalizedJob,
  workRoot: string,
  storage: Storage,
): Promise<{ problems: Problem[]; resumeFrom?: { jobName: string; workUri: string } }> {
  const name = job.Extensions.ResumeFrom;
  if (name === undefined) return { problems: [] };
  const path = 'Extensions.ResumeFrom';
  const workUri = jobWorkUri(workRoot, name);
  const earlier = await readJsonIfExists<StoredJob>(storage, joinUri(workUri, 'job.json'));
  if (!earlier) {
    return {
      problems: [
        {
          path,
          message: `no job named "${name}" was found in this deployment's work location (${workUri}): it never ran here, or its work location has expired`,
        },
      ],
    };
  }
  const summary = await readJsonIfExists<TransformJobDescription>(storage, summaryUri(workUri));
  if (!summary) {
    return {
      problems: [
        {
          path,
          message: `job "${name}" has not ended (it has no summary yet): resume from it once it has completed, failed or been stopped`,
        },
      ],
    };
  }
  const differences = requestDifferences(earlier.job, job);
  if (differences.length > 0) {
    const shown = differences
      .slice(0, 5)
      .map((d) => `${d.path} (${show(d.earlier)} there, ${show(d.now)} here)`)
      .join(', ');
    return {
      problems: [
        {
          path,
          message: `job "${name}" ran a different request: ${shown}${differences.length > 5 ? `, and ${differences.length - 5} more` : ''}; only ${RESUME_MAY_DIFFER.slice(0, -2).join(', ')} may differ`,
        },
      ],
    };
  }
  return { problems: [], resumeFrom: { jobName: name, workUri } };
}

/**
 * Which of `objects` (this job's input, as listed) the earlier job completed with its outputs in
 * place, as indexes into `objects`. An object counts only if the earlier plan had it at the same
 * location, relative name and size; the earlier results say it Completed (or it had been completed
 * by the job that one resumed from); its `.out` exists, with the size the earlier results report
 * writing where they say; and its errors file exists when records were isolated. Anything else is
 * processed again.
 */
export async function objectsCompletedEarlier(
  storage: Storage,
  earlierWorkUri: string,
  outputPath: string,
  objects: ReadonlyArray<StoredObject & { readonly relativeKey: string }>,
): Promise<Set<number>> {
  const reports = await readReports(storage, earlierWorkUri);
  const plan = reports.plan;
  const done = new Set<number>();
  if (!plan) return done;
  const bytesOut = new Map<number, number>();
  for (const r of reports.results.values())
    for (const item of r.items) bytesOut.set(item.object, (bytesOut.get(item.object) ?? 0) + item.bytesOut);
  const earlierByUri = new Map<
    string,
    { relativeKey: string; size: number; outBytes?: number; errors: boolean }
  >();
  for (const outcome of objectOutcomes(reports)) {
    if (outcome.status !== 'Completed' && outcome.status !== 'CompletedEarlier') continue;
    const o = plan.objects[outcome.object]!;
    earlierByUri.set(o.uri, {
      relativeKey: o.relativeKey,
      size: o.size,
      ...(outcome.status === 'Completed' ? { outBytes: bytesOut.get(outcome.object) ?? 0 } : {}),
      errors: outcome.failedRecords > 0,
    });
  }
  const candidates: Array<{ index: number; out: string; outBytes?: number; errors?: string }> = [];
  objects.forEach((o, index) => {
    const e = earlierByUri.get(o.uri);
    if (!e || e.relativeKey !== o.relativeKey || e.size !== o.size) return;
    candidates.push({
      index,
      out: outputObjectUri(outputPath, o.relativeKey),
      ...(e.outBytes !== undefined ? { outBytes: e.outBytes } : {}),
      ...(e.errors ? { errors: errorsObjectUri(outputPath, o.relativeKey) } : {}),
    });
  });
  const sought = candidates.flatMap((c) => (c.errors ? [c.out, c.errors] : [c.out]));
  // Listed only: the deployed Plan stage may list the output locations but not read them.
  const found = await findObjects(storage, sought, outputPath, { listOnly: true });
  for (const c of candidates) {
    const out = found.get(c.out);
    if (!out || (c.outBytes !== undefined && out.size !== c.outBytes)) continue;
    if (c.errors && !found.has(c.errors)) continue;
    done.add(c.index);
  }
  return done;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function show(v: unknown): string {
  return v === undefined ? 'absent' : JSON.stringify(v);
}
