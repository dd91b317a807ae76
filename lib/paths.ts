import { fileURLToPath } from 'node:url';

/** The repository root: Lambda entries, the sidecar's Docker context and package-lock.json are found from it. */
export const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
