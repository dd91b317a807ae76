/**
 * Storage locations. The job contract speaks of S3 URIs (`s3://bucket/key-prefix`); local runs may
 * also use `file:///absolute/path`. This is the one parser for both; everything else imports it.
 *
 * SageMaker's `S3Uri` pattern is `^(https|s3)://([^/]+)/?(.*)$` (API reference, TransformS3DataSource
 * and TransformOutput), so `https://` S3 URLs are accepted too, virtual-hosted
 * (`https://bucket.s3.us-east-1.amazonaws.com/key`) and path-style
 * (`https://s3.us-east-1.amazonaws.com/bucket/key`), and read as the `s3://bucket/key` they name
 * (`normalizeLocationUri`). Their keys are URL-encoded, as S3 writes them.
 */

export type Location =
  | { readonly scheme: 's3'; readonly bucket: string; readonly key: string }
  | { readonly scheme: 'file'; readonly path: string };

/** S3 bucket naming rules (general purpose buckets): 3–63 chars, lowercase, digits, dots, hyphens. */
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

export class LocationError extends Error {
  override readonly name = 'LocationError';
}

/** Returns why `uri` is not a usable location, or undefined if it is. */
export function locationProblem(uri: string, opts: { allowFile?: boolean } = {}): string | undefined {
  try {
    parseLocation(uri, opts);
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

/** An S3 endpoint host: `s3.amazonaws.com`, `s3.us-east-1.amazonaws.com`, `s3-us-west-2…`, dualstack, China. */
const S3_HOST = /^s3(?:[.-][a-z0-9-]+)*\.amazonaws\.com(?:\.cn)?$/;
/** A virtual-hosted S3 host: `<bucket>.` then an S3 endpoint host. */
const S3_VIRTUAL_HOST = /^(.+?)\.(s3(?:[.-][a-z0-9-]+)*\.amazonaws\.com(?:\.cn)?)$/;

/** The `s3://bucket/key` an `https://` S3 URL names, or why it names none. */
function httpsToS3(uri: string): string {
  const rest = uri.slice('https://'.length);
  const slash = rest.indexOf('/');
  const host = (slash === -1 ? rest : rest.slice(0, slash)).toLowerCase();
  const path = slash === -1 ? '' : rest.slice(slash + 1);
  let decoded: string;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    throw new LocationError('the path of an https:// S3 URL must be URL-encoded');
  }
  if (S3_HOST.test(host)) {
    if (decoded === '')
      throw new LocationError('a path-style https:// S3 URL must name a bucket after the host');
    return `s3://${decoded}`;
  }
  const m = S3_VIRTUAL_HOST.exec(host);
  if (m) return `s3://${m[1]}/${decoded}`;
  throw new LocationError(
    `an https:// location must be an S3 URL (https://bucket.s3.region.amazonaws.com/key or https://s3.region.amazonaws.com/bucket/key); got host "${host}"`,
  );
}

/** A location as this project writes it: an `https://` S3 URL becomes `s3://bucket/key`; others are unchanged. */
export function normalizeLocationUri(uri: string): string {
  return uri.startsWith('https://') ? httpsToS3(uri) : uri;
}

export function parseLocation(uri: string, opts: { allowFile?: boolean } = {}): Location {
  if (uri.startsWith('https://')) uri = httpsToS3(uri);
  if (uri.startsWith('s3://')) {
    const rest = uri.slice(5);
    const slash = rest.indexOf('/');
    const bucket = slash === -1 ? rest : rest.slice(0, slash);
    const key = slash === -1 ? '' : rest.slice(slash + 1);
    if (!BUCKET.test(bucket) || bucket.includes('..')) {
      throw new LocationError(
        `"${bucket}" is not a valid S3 bucket name (3–63 lowercase letters, digits, dots or hyphens)`,
      );
    }
    return { scheme: 's3', bucket, key };
  }
  if (uri.startsWith('file://')) {
    if (opts.allowFile === false) throw new LocationError('file:// locations are only allowed in local runs');
    // The path as written, never percent-decoded: a file:// location names a file the way an s3://
    // URI names a key, so a listed name (`a%20b.csv`, `pct%zz.csv`) maps back to that same file, and
    // `a b.csv` and `a%20b.csv` stay two objects. formatLocation writes paths the same way.
    const path = uri.slice(7);
    if (!path.startsWith('/')) throw new LocationError('a file:// location must be absolute (file:///path)');
    return { scheme: 'file', path };
  }
  throw new LocationError(
    `expected an s3://bucket/prefix URI (or an https:// S3 URL)${opts.allowFile === false ? '' : ' or file:///path'}`,
  );
}

export function formatLocation(loc: Location): string {
  return loc.scheme === 's3' ? `s3://${loc.bucket}/${loc.key}` : `file://${loc.path}`;
}

/** Joins a relative key onto a location that names a folder-like prefix, adding one `/` if missing. */
export function joinUri(base: string, relative: string): string {
  return base.endsWith('/') ? base + relative : `${base}/${relative}`;
}

/**
 * The part of an input prefix that output names are relative to: everything up to and including its
 * last `/`. S3Prefix is a raw string prefix (`s3://b/data/in` matches `data/input.csv`), so an object's
 * relative name is taken from the prefix's "folder", which keeps `input.csv` rather than `put.csv`.
 */
export function prefixBase(uri: string): string {
  const loc = parseLocation(uri);
  const path = loc.scheme === 's3' ? loc.key : loc.path;
  const cut = path.lastIndexOf('/') + 1;
  const base = path.slice(0, cut);
  return loc.scheme === 's3' ? `s3://${loc.bucket}/${base}` : `file://${base}`;
}

/** True when one location is a raw string prefix of the other (same scheme and bucket). */
export function locationsOverlap(a: string, b: string): boolean {
  const la = parseLocation(a);
  const lb = parseLocation(b);
  if (la.scheme !== lb.scheme) return false;
  if (la.scheme === 's3' && lb.scheme === 's3') {
    if (la.bucket !== lb.bucket) return false;
    return la.key.startsWith(lb.key) || lb.key.startsWith(la.key);
  }
  const pa = (la as { path: string }).path;
  const pb = (lb as { path: string }).path;
  return pa.startsWith(pb) || pb.startsWith(pa);
}
