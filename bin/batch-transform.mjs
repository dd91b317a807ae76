#!/usr/bin/env node
// The `batch-transform` command. Runs the TypeScript sources through tsx's loader so there is no
// build step between `npm ci` and the first job.
import { register } from 'tsx/esm/api';

// The AWS SDK warns on every process under Node 20 that its future releases need Node 22; the
// versions this package pins run on Node 20, so the notice is noise on every command (and every
// sidecar, which inherits this environment). Set the variable to false to see it.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

register();
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv);
