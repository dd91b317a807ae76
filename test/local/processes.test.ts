import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { lastMeaningfulLine } from '../../src/local/processes';

describe('the reason a model process gives when it exits', () => {
  it('is its last line when it printed its own reason', () => {
    expect(
      lastMeaningfulLine('loading\n[iris] cannot load the model: model.json is not a usable model\n'),
    ).toBe('[iris] cannot load the model: model.json is not a usable model');
  });

  it("is the error's own line, not `Node.js vX`, after an uncaught Node error", () => {
    const crash = spawnSync(process.execPath, ['-e', "require('./no-such-model-server.js')"], {
      encoding: 'utf8',
    });
    expect(crash.stderr.trim().split('\n').at(-1)).toMatch(/^Node\.js v\d/);
    expect(lastMeaningfulLine(crash.stderr)).toMatch(
      /^Error: Cannot find module '.*no-such-model-server\.js'/,
    );
  });

  it('is nothing when the process printed nothing', () => {
    expect(lastMeaningfulLine('\n  \n')).toBeUndefined();
  });
});
