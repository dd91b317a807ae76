/**
 * Which images a model made with CreateModel may run on a deployed stack (the construct's
 * `createdModelImages`). One rule, checked by CreateModel (so the caller hears at once, naming the
 * field) and again by Validate before it registers a task definition (so a model written to the
 * models location by other means cannot run an image the deployment did not allow).
 *
 * A pattern is an image URI where `*` matches any run of characters; in the registry's host name
 * (before the first `/`) it does not match `/`, so `123456789012.dkr.ecr.*.amazonaws.com/*` cannot be
 * satisfied by another host.
 */

/** ECR repositories of `account` in any region: the default. */
export function defaultCreatedModelImages(account: string): string[] {
  return [`${account}.dkr.ecr.*.amazonaws.com/*`];
}

export function imageAllowed(image: string, patterns: readonly string[]): boolean {
  return patterns.some((p) => patternRegExp(p).test(image));
}

function patternRegExp(pattern: string): RegExp {
  const slash = pattern.indexOf('/');
  const host = slash === -1 ? pattern : pattern.slice(0, slash);
  const path = slash === -1 ? '' : pattern.slice(slash);
  const glob = (text: string, star: string) =>
    text
      .split('*')
      .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
      .join(star);
  return new RegExp(`^${glob(host, '[^/]*')}${glob(path, '.*')}$`);
}

/** The ECR repositories an image pattern names, for the pull permission it needs; undefined for other registries. */
export interface EcrRepositoryPattern {
  readonly account: string;
  /** A region, or `*`. */
  readonly region: string;
  /** The repository name, `*` where the pattern has one (the tag or digest removed). */
  readonly repository: string;
}

const ECR_PATTERN = /^(\d{12})\.dkr\.ecr\.([a-z0-9*-]+)\.amazonaws\.com(?:\.cn)?\/([^:@]+)/;

export function ecrRepositoryOfPattern(pattern: string): EcrRepositoryPattern | undefined {
  const m = ECR_PATTERN.exec(pattern);
  if (!m) return undefined;
  return { account: m[1]!, region: m[2]!, repository: m[3]! };
}
