#!/usr/bin/env node
// The `batch-transform` command. Runs the TypeScript sources with no build step between `npm ci`
// and the first job: from a bundle built on first use and cached (cli-bundle.mjs), or through tsx.
import { loadCli } from './cli-bundle.mjs';

// The AWS SDK warns on every process under Node 20 that its future releases need Node 22; the
// versions this package pins run on Node 20, so the notice is noise on every command (and every
// sidecar, which inherits this environment). Set the variable to false to see it.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const { main } = await loadCli();
process.exitCode = await main(process.argv);
