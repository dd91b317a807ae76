/** One thing wrong with a request: where (a field path such as `TransformInput.SplitType`) and what. */
export interface Problem {
  readonly path: string;
  readonly message: string;
}

/** A request that cannot run. Carries every problem found, not just the first. */
export class JobValidationError extends Error {
  override readonly name = 'JobValidationError';
  constructor(
    readonly problems: readonly Problem[],
    readonly jobName?: string,
  ) {
    super(formatProblems(problems, jobName));
  }
}

export function formatProblems(problems: readonly Problem[], jobName?: string): string {
  const head = `${jobName ? `Transform job "${jobName}"` : 'The request'} has ${problems.length} problem${problems.length === 1 ? '' : 's'}:`;
  return [head, ...problems.map((p) => `  - ${p.path || '(request)'}: ${p.message}`)].join('\n');
}

/** Renders a path array as `A.B[0].C`, quoting keys that are not identifiers (`Environment["1x"]`). */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else if (typeof part === 'string' && /^[A-Za-z_][A-Za-z0-9_]*$/.test(part))
      out += out ? `.${part}` : part;
    else out += `[${JSON.stringify(String(part))}]`;
  }
  return out;
}
