import { join } from 'node:path';
import type { CfnElement } from 'aws-cdk-lib';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import { REPO_ROOT } from '../../lib/paths';
import { TransformFunction } from '../../lib/transform-function';
import { type Asl, type CfnTemplate, resolve } from './definition';
import { asLambda, type LocalHandler } from './local-execution';
import type { Cfn, Synthesized } from './synth';

/**
 * The synthesized stack as if deployed, on this machine: its buckets are buckets of a local S3
 * server (named by the placeholders of definition.ts), and each Lambda Task state of the definition
 * calls the handler module of the function it names (the construct's `entry`), in this process, with
 * that function's synthesized environment. So a local execution proves the wiring as well as the
 * code: which function each state invokes and what each function is told.
 */

/** The name of every bucket the template creates. */
export function bucketNames(template: CfnTemplate): string[] {
  return Object.entries(template.Resources)
    .filter(([, r]) => r.Type === 'AWS::S3::Bucket')
    .map(([id]) => String(resolve({ Ref: id }, template)));
}

/** The name of one of the construct's buckets. */
export function bucketName(synth: Synthesized, bucket: IBucket): string {
  const id = logicalId(synth, bucket.node.defaultChild as CfnElement);
  return String(resolve({ Ref: id }, synth.json));
}

/**
 * A local handler for every Task state that invokes a Lambda function, keyed by state name (the
 * shape `runLocally` takes): the function's handler module, run with `platformEnvironment` (what
 * the Lambda runtime provides: region, credentials, and here the local endpoints) and the
 * function's own environment, reporting errors as Lambda does.
 */
export async function lambdaStates(
  synth: Synthesized,
  definition: Asl,
  platformEnvironment: Readonly<Record<string, string>>,
): Promise<Record<string, LocalHandler>> {
  const functions = new Map<string, TransformFunction>();
  for (const c of synth.stack.node.findAll()) {
    if (c instanceof TransformFunction)
      functions.set(logicalId(synth, c.function.node.defaultChild as CfnElement), c);
  }
  const handlers: Record<string, LocalHandler> = {};
  for (const [name, state] of taskStates(definition)) {
    const id = /:lambda:[^:]+:\d+:function:([A-Za-z0-9]+)$/.exec(String(state.Resource))?.[1];
    if (!id) continue;
    const fn = functions.get(id);
    if (!fn)
      throw new Error(
        `state ${name} invokes ${state.Resource}, which is not a TransformFunction of the stack`,
      );
    const module = (await import(join(REPO_ROOT, fn.entry))) as { handler?: LocalHandler };
    if (typeof module.handler !== 'function') throw new Error(`${fn.entry} exports no handler`);
    const variables = (synth.json.Resources[id]?.Properties as Cfn)?.Environment?.Variables ?? {};
    const environment = resolve(variables, synth.json) as Record<string, string>;
    handlers[name] = asLambda(inEnvironment({ ...platformEnvironment, ...environment }, module.handler));
  }
  return handlers;
}

/**
 * Runs a handler with these variables in `process.env`, as its Lambda would see them, and puts the
 * previous values back afterwards. The lifecycle never runs two Lambda states at once (only the Map
 * runs in parallel, and its iterations are ECS tasks), so swapping the environment is safe.
 */
function inEnvironment(variables: Readonly<Record<string, string>>, handler: LocalHandler): LocalHandler {
  return async (input) => {
    const saved = Object.keys(variables).map((k) => [k, process.env[k]] as const);
    Object.assign(process.env, variables);
    try {
      return await handler(input);
    } finally {
      for (const [k, v] of saved) {
        if (v === undefined) Reflect.deleteProperty(process.env, k);
        else process.env[k] = v;
      }
    }
  };
}

function* taskStates(definition: Asl): Generator<[string, Asl]> {
  for (const [name, state] of Object.entries<Asl>(definition.States ?? {})) {
    if (state.Type === 'Task') yield [name, state];
    if (state.ItemProcessor) yield* taskStates(state.ItemProcessor);
  }
}

function logicalId(synth: Synthesized, element: CfnElement): string {
  return String(synth.stack.resolve(element.logicalId));
}
