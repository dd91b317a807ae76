/**
 * The example models, by name, as processes: what the local runner starts when a job's ModelName
 * names one. Each command runs from the repository root, serves on SAGEMAKER_BIND_TO_PORT (0 picks a
 * free port), prints a line ending in `listening on <host>:<port>` once the port is open, and answers
 * GET /ping 200 once its model is loaded. The same servers are bundled into the images built by
 * `containers/models/<name>/Dockerfile`.
 */
import { fileURLToPath } from 'node:url';
import type { ModelSource } from './worker';

export interface ExampleModel {
  /** The ModelName a job uses to pick this model. */
  readonly name: string;
  /** argv that starts the server as a plain process, relative to the repository root. */
  readonly command: readonly string[];
  readonly description: string;
}

const tsx = (entry: string): readonly string[] => [process.execPath, '--import', 'tsx', entry, 'serve'];

export const EXAMPLE_MODELS: readonly ExampleModel[] = [
  {
    name: 'iris',
    command: tsx('containers/models/iris/serve.ts'),
    description:
      'Iris species from 4 flower measurements (softmax regression). text/csv rows in, `label,probability` lines out; JSON and JSON Lines too.',
  },
  {
    name: 'sentiment',
    command: tsx('containers/models/sentiment/serve.ts'),
    description:
      'Review sentiment (AFINN-165 + app-review words). JSON Lines reviews (or bare JSON strings) in, `{"label","score","comparative"}` lines out.',
  },
];

export function findExampleModel(name: string): ExampleModel | undefined {
  return EXAMPLE_MODELS.find((m) => m.name === name);
}

/** Example model commands are relative to the repository root. */
const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

export function exampleModelNames(): string[] {
  return EXAMPLE_MODELS.map((m) => m.name);
}

/** The example model of this name as a local run starts it, or undefined when there is none. */
export function exampleModelSource(name: string): ModelSource | undefined {
  const m = findExampleModel(name);
  return m ? { kind: 'argv', argv: m.command, cwd: REPO_ROOT, label: m.name } : undefined;
}
