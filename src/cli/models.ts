import { EXAMPLE_MODELS } from '../../containers/models/index';
import type { ModelSource } from '../local/worker';

export function exampleModelNames(): string[] {
  return EXAMPLE_MODELS.map((m) => m.name);
}

export function exampleModelSource(name: string): ModelSource | undefined {
  const m = EXAMPLE_MODELS.find((e) => e.name === name);
  return m ? { kind: 'argv', argv: m.command, cwd: m.cwd, label: m.name } : undefined;
}
