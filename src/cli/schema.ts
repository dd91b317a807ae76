import type { Command } from 'commander';
import { jobRequestJsonSchema } from '../job/schema';
import { printJson } from './io';

export function registerSchema(program: Command): void {
  program
    .command('schema')
    .description(
      'Print the job request (CreateTransformJob plus our Extensions) as JSON Schema, for editors and the console.',
    )
    .action(() => printJson(jobRequestJsonSchema()));
}
