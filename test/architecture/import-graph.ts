import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';

/**
 * The project's import graph, read with the TypeScript compiler's own pre-processor (static imports,
 * re-exports and dynamic `import()`), limited to the project's own files. Used by the architecture
 * test to keep the arrows pointing down (DESIGN.md, "Layout").
 */
export interface ImportEdge {
  /** Repository-relative, `/`-separated. */
  readonly from: string;
  readonly to: string;
}

const SOURCE_DIRS = ['bin', 'lib', 'lambdas', 'containers', 'src', 'bench'];

export function sourceFiles(root: string, dirs: readonly string[] = SOURCE_DIRS): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      if (name === 'node_modules' || name.startsWith('.')) continue;
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (/\.(ts|mts|mjs)$/.test(name) && !name.endsWith('.d.ts')) out.push(path);
    }
  };
  for (const d of dirs) walk(join(root, d));
  return out.map((p) => toRepoPath(root, p)).sort();
}

const toRepoPath = (root: string, abs: string) => relative(root, abs).split(sep).join('/');

function resolveImport(root: string, fromFile: string, specifier: string): string | undefined {
  if (!specifier.startsWith('.')) return undefined;
  const base = resolve(root, dirname(fromFile), specifier);
  for (const candidate of [base, `${base}.ts`, join(base, 'index.ts'), base.replace(/\.js$/, '.ts')]) {
    try {
      if (statSync(candidate).isFile()) return toRepoPath(root, candidate);
    } catch {
      // not this candidate
    }
  }
  return undefined;
}

/** Every edge between the given files' own modules (packages such as `aws-cdk-lib` are left out). */
export function importEdges(root: string, files: readonly string[]): ImportEdge[] {
  const edges: ImportEdge[] = [];
  for (const from of files) {
    const info = ts.preProcessFile(readFileSync(join(root, from), 'utf8'), true, true);
    for (const ref of info.importedFiles) {
      const to = resolveImport(root, from, ref.fileName);
      if (to) edges.push({ from, to });
    }
  }
  return edges;
}

/** Package imports of the given files, for rules such as "no AWS SDK in the contract". */
export function packageImports(root: string, file: string): string[] {
  const info = ts.preProcessFile(readFileSync(join(root, file), 'utf8'), true, true);
  return info.importedFiles.map((r) => r.fileName).filter((s) => !s.startsWith('.'));
}

/** A forbidden arrow: files matching `from` must not import files matching `to`. */
export interface ArrowRule {
  readonly name: string;
  readonly from: RegExp;
  readonly to: RegExp;
  /** Targets the rule allows although `to` matches them. */
  readonly except?: RegExp;
}

export function violations(edges: readonly ImportEdge[], rules: readonly ArrowRule[]): string[] {
  const out: string[] = [];
  for (const rule of rules) {
    for (const e of edges) {
      if (rule.from.test(e.from) && rule.to.test(e.to) && !rule.except?.test(e.to))
        out.push(`${rule.name}: ${e.from} → ${e.to}`);
    }
  }
  return out;
}

/** Import cycles, each as the list of files around it (one cycle reported per strongly connected set). */
export function cycles(edges: readonly ImportEdge[]): string[][] {
  const next = new Map<string, string[]>();
  for (const e of edges) next.set(e.from, [...(next.get(e.from) ?? []), e.to]);
  // Tarjan's strongly connected components.
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    onStack.add(v);
    for (const w of next.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || next.get(v)?.includes(v)) found.push(component.sort());
    }
  };
  for (const v of next.keys()) if (!idx.has(v)) visit(v);
  return found;
}
