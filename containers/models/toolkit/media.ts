/**
 * Media types as the hooks see them: lower case, without parameters, with the common JSON Lines
 * spellings folded into SageMaker's `application/jsonlines`, so a model compares plain strings.
 */

const ALIASES: Readonly<Record<string, string>> = {
  'application/jsonl': 'application/jsonlines',
  'application/json-lines': 'application/jsonlines',
  'application/x-jsonlines': 'application/jsonlines',
  'application/ndjson': 'application/jsonlines',
  'application/x-ndjson': 'application/jsonlines',
};

export const JSON_LINES = 'application/jsonlines';

/** `Text/CSV; charset=utf-8` → `text/csv`; empty or missing → undefined. */
export function mediaType(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const semi = header.indexOf(';');
  const type = (semi === -1 ? header : header.slice(0, semi)).trim().toLowerCase();
  if (type === '') return undefined;
  return ALIASES[type] ?? type;
}

interface AcceptEntry {
  readonly type: string;
  readonly q: number;
}

function parseAccept(header: string): AcceptEntry[] {
  const entries: AcceptEntry[] = [];
  for (const part of header.split(',')) {
    const [range = '', ...params] = part.split(';');
    const type = mediaType(range);
    if (type === undefined) continue;
    let q = 1;
    for (const p of params) {
      const [k, v] = p.split('=');
      if (k?.trim() === 'q' && v !== undefined) q = Number(v.trim());
    }
    if (Number.isFinite(q) && q > 0) entries.push({ type, q });
  }
  // Array.prototype.sort is stable, so equal q values keep the client's order.
  return entries.sort((a, b) => b.q - a.q);
}

/**
 * Picks the response media type for an Accept header (RFC 9110 q-values and wildcards).
 * `fallback` answers a missing Accept, the full wildcard, and a `type/*` range it matches. With `supported` undefined
 * the model writes whatever it is asked for. Returns undefined when nothing acceptable is supported.
 */
export function negotiate(
  accept: string | undefined,
  supported: readonly string[] | undefined,
  fallback: string,
): string | undefined {
  if (accept === undefined || accept.trim() === '') return fallback;
  const canonical = supported?.map((t) => mediaType(t) ?? t);
  for (const { type } of parseAccept(accept)) {
    if (type === '*/*') return fallback;
    if (type.endsWith('/*')) {
      const prefix = type.slice(0, -1);
      if (fallback.startsWith(prefix)) return fallback;
      const match = canonical?.find((t) => t.startsWith(prefix));
      if (match) return match;
      continue;
    }
    if (canonical === undefined || canonical.includes(type)) return type;
  }
  return undefined;
}
