#!/usr/bin/env node
// The `batch-transform` command. Runs the TypeScript sources through tsx's loader so there is no
// build step between `npm ci` and the first job.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv);
