import { fileURLToPath } from 'node:url';
import { EXAMPLE_MODELS } from '../local/example-models';
import type { ModelSource } from '../local/worker';

/** Example model commands are relative to the repository root. */
const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

export function exampleModelNames(): string[] {
  return EXAMPLE_MODELS.map((m) => m.name);
}

export function exampleModelSource(name: string): ModelSource | undefined {
  const m = EXAMPLE_MODELS.find((e) => e.name === name);
  return m ? { kind: 'argv', argv: m.command, cwd: REPO_ROOT, label: m.name } : undefined;
}
