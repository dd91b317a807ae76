import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleModel } from '../../containers/models/bundle';
import { startModelProcess } from '../fixtures/models/start';

// The Dockerfiles run this same bundling step; the images cannot be built here, so prove that the
// bundles they would contain serve on plain Node, from a folder with no node_modules and no tsx.
describe('example model bundles (what the images run)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'model-bundles-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it.each([
    ['iris', 'text/csv', '5.1,3.5,1.4,0.2', /^setosa,0\.\d{4}$/],
    ['sentiment', 'application/jsonlines', '{"text":"love it"}', /^\{"label":"positive","score":3,/],
  ])('%s: the bundle serves `serve` on plain Node', async (name, contentType, body, expected) => {
    const entry = await bundleModel(name, join(dir, name));
    const model = await startModelProcess([process.execPath, entry, 'serve'], {
      env: { SM_MODEL_DIR: join(dir, 'no-artifacts') },
    });
    try {
      const res = await fetch(`${model.url}/invocations`, {
        method: 'POST',
        body,
        headers: { 'Content-Type': contentType },
      });
      expect(res.status).toBe(200);
      expect(await res.text()).toMatch(expected);
      expect(await model.stop()).toBe(0);
    } finally {
      await model.stop();
    }
  });

  it('refuses a name that is not an example model', async () => {
    await expect(bundleModel('nope', dir)).rejects.toThrow('no example model "nope"');
  });
});
