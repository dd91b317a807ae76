import { describe, expect, it } from 'vitest';
import { runCli } from '../support/cli';

/** `batch-transform api`'s usage: one back end, and the local options only with --local. */
describe('batch-transform api: usage', () => {
  it('answers --help with the back ends, the credentials note and an example', async () => {
    const r = await runCli(['api', '--help']);
    expect(r.code).toBe(0);
    for (const text of [
      '--local',
      '--stack',
      '--state-machine-arn',
      '--model-command',
      '--port',
      'never asks for credentials',
    ])
      expect(r.stdout).toContain(text);
  });

  it.each([
    [[], 'needs one back end'],
    [['--local', '--stack', 'BatchTransform'], 'needs one back end'],
    [['--stack', 'BatchTransform', '--model-command', 'python3 model.py'], 'go with --local only'],
    [['--local', '--port', '70000'], 'a port is a whole number from 0 to 65535'],
  ])('refuses %j with exit 2 and says why', async (args, message) => {
    const r = await runCli(['api', ...args]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
  });
});
