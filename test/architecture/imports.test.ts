import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type ArrowRule, cycles, importEdges, packageImports, sourceFiles, violations } from './import-graph';

const ROOT = join(import.meta.dirname, '..', '..');

/**
 * The arrows DESIGN.md forbids. Each rule names the layer it protects; a new arrow that breaks one
 * fails this suite with the file pair.
 */
const RULES: readonly ArrowRule[] = [
  { name: 'lib/ never imports a Lambda', from: /^lib\//, to: /^lambdas\// },
  { name: 'lib/ never imports a container', from: /^lib\//, to: /^containers\// },
  {
    name: 'the sidecar never imports a lifecycle stage',
    from: /^containers\/sidecar\//,
    to: /^src\/lifecycle\//,
  },
  {
    name: 'the sidecar never imports local mode, the CLI or the client',
    from: /^containers\/sidecar\//,
    to: /^src\/(local|cli|client|api)\//,
  },
  {
    // Their Dockerfiles copy containers/models alone: an import from elsewhere breaks the image build.
    name: 'an example model imports nothing outside containers/models (its image is built from there)',
    from: /^containers\/models\//,
    to: /./,
    except: /^containers\/models\//,
  },
  { name: 'the job request never imports the data plane', from: /^src\/job\//, to: /^src\/dataplane\// },
  {
    name: 'the contract imports nothing but itself (and the URI helpers)',
    from: /^src\/contract\//,
    to: /./,
    except: /^src\/contract\/|^src\/storage\/uri\.ts$/,
  },
  {
    name: 'src/ never imports the layers above it',
    from: /^src\//,
    to: /^(lib|lambdas|containers|bin|bench|test)\//,
  },
  {
    name: 'the data plane imports only the contract, the job request and JSONPath',
    from: /^src\/dataplane\//,
    to: /^src\//,
    except: /^src\/(dataplane|contract|job|jsonpath)\//,
  },
  {
    name: 'a Lambda imports no other Lambda',
    from: /^lambdas\/(?!shared\/)/,
    to: /^lambdas\/(?!shared\/)/,
    except: /^lambdas\/[^/]+\/handler\.ts$/,
  },
];

describe('the import graph keeps its arrows pointing down', () => {
  const files = sourceFiles(ROOT);
  const edges = importEdges(ROOT, files);

  it('reads the project: hundreds of files and their edges', () => {
    expect(files.length).toBeGreaterThan(100);
    expect(edges.length).toBeGreaterThan(files.length);
    expect(edges).toContainEqual({ from: 'lib/lifecycle.ts', to: 'src/contract/state-names.ts' });
  });

  it.each(RULES.map((r) => [r.name, r] as const))('%s', (_name, rule) => {
    expect(violations(edges, [rule])).toEqual([]);
  });

  it('the contract and the data plane import no AWS SDK and do no I/O', () => {
    const heavy = /^(@aws-sdk\/|node:(fs|net|http|https|child_process))/;
    const offenders = files
      .filter((f) => /^src\/(contract|dataplane|jsonpath)\//.test(f))
      .flatMap((f) =>
        packageImports(ROOT, f)
          .filter((p) => heavy.test(p))
          .map((p) => `${f} → ${p}`),
      );
    expect(offenders).toEqual([]);
  });

  it('has no import cycles', () => {
    expect(cycles(edges)).toEqual([]);
  });
});

describe('the guard itself', () => {
  it('reports a forbidden arrow with its file pair', () => {
    const edges = [
      { from: 'lib/stack.ts', to: 'lambdas/shared/deployment.ts' },
      { from: 'lib/stack.ts', to: 'src/contract/state.ts' },
    ];
    expect(violations(edges, RULES)).toEqual([
      'lib/ never imports a Lambda: lib/stack.ts → lambdas/shared/deployment.ts',
    ]);
  });

  it('finds a cycle of three files', () => {
    const edges = [
      { from: 'a', to: 'b' },
      { from: 'b', to: 'c' },
      { from: 'c', to: 'a' },
      { from: 'c', to: 'd' },
    ];
    expect(cycles(edges)).toEqual([['a', 'b', 'c']]);
  });
});
