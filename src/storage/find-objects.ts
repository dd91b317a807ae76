import type { Storage, StoredObject } from './storage';

/** At most this many locations are checked with one HEAD each; more are matched against a listing. */
export const HEAD_AT_MOST = 64;
/** HEAD requests in flight. */
const HEAD_CONCURRENCY = 16;
/**
 * Keys a listing may go through per location sought before the rest are HEADed instead. A listing
 * page holds 1,000 keys, so 20 keys per location still costs a twentieth of a request each, and a
 * prefix full of other objects cannot turn a short manifest into a listing of the whole bucket.
 */
const LISTED_PER_SOUGHT = 20;
const LISTED_AT_LEAST = 10_000;

/**
 * Finds which of `uris` exist, with their sizes, without one request per location where a listing
 * can confirm them: up to HEAD_AT_MOST locations are HEADed; more are matched against a listing of
 * their longest common prefix (every one starts with `within`, whose own listing is the widest
 * made), which stops once all are found. If the listing runs past its budget (the prefix holds many
 * objects not sought), the locations still unconfirmed are HEADed. Locations not returned do not
 * exist (or, with `listOnly`, were not listed). At 100,000 manifest entries this
 * is 100 listing pages instead of 100,000 HEADs (`npm run scale`, manifestPlanSecondsPer100kEntries).
 */
export async function findObjects(
  storage: Storage,
  uris: Iterable<string>,
  within: string,
  opts: {
    /**
     * Only list (every location, however few, and the whole common prefix if need be); never HEAD.
     * For a caller allowed to list a location but not to read its objects.
     */
    readonly listOnly?: boolean;
  } = {},
): Promise<Map<string, StoredObject>> {
  const sought = new Set(uris);
  const found = new Map<string, StoredObject>();
  if (sought.size === 0) return found;
  if (sought.size > HEAD_AT_MOST || opts.listOnly) {
    const common = commonPrefix(sought);
    const prefix = common.startsWith(within) ? common : within;
    const budget = opts.listOnly
      ? Number.POSITIVE_INFINITY
      : Math.max(LISTED_AT_LEAST, LISTED_PER_SOUGHT * sought.size);
    let listed = 0;
    for await (const o of storage.list(prefix)) {
      if (sought.has(o.uri)) found.set(o.uri, o);
      if (found.size === sought.size || ++listed >= budget) break;
    }
  }
  if (opts.listOnly) return found;
  const rest = [...sought].filter((u) => !found.has(u));
  let next = 0;
  const worker = async () => {
    while (next < rest.length) {
      const uri = rest[next++]!;
      const o = await storage.head(uri);
      if (o) found.set(uri, o);
    }
  };
  await Promise.all(Array.from({ length: Math.min(HEAD_CONCURRENCY, rest.length) }, worker));
  return found;
}

function commonPrefix(uris: Iterable<string>): string {
  let prefix: string | undefined;
  for (const u of uris) {
    if (prefix === undefined) {
      prefix = u;
      continue;
    }
    let i = 0;
    while (i < prefix.length && i < u.length && prefix.charCodeAt(i) === u.charCodeAt(i)) i++;
    prefix = prefix.slice(0, i);
    if (prefix === '') break;
  }
  return prefix ?? '';
}
