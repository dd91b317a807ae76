/**
 * The synthesized state machine definition as plain ASL: CloudFormation references resolved to
 * placeholder ARNs, so asl-validator can check it and aws-local-stepfunctions can run it (with local
 * handlers bound by state name; the ARNs only have to be well-formed).
 */

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** A state machine definition (Amazon States Language), walked freely by the tests and the local runner. */
// biome-ignore lint/suspicious/noExplicitAny: ASL is untyped JSON here
export type Asl = any;

export const PLACEHOLDER_ENV = { partition: 'aws', region: 'us-east-1', account: '123456789012' } as const;

export interface CfnTemplate {
  readonly Resources: Record<string, { readonly Type: string; readonly Properties?: Record<string, Json> }>;
}

/** The definition of the template's (only) state machine, parsed. */
export function stateMachineDefinition(template: CfnTemplate): Asl {
  const machines = Object.values(template.Resources).filter(
    (r) => r.Type === 'AWS::StepFunctions::StateMachine',
  );
  if (machines.length !== 1)
    throw new Error(`expected one state machine in the template, found ${machines.length}`);
  const props = machines[0]!.Properties ?? {};
  const body = props.DefinitionString ?? props.Definition;
  const resolved = resolve(body as Json, template);
  return typeof resolved === 'string' ? JSON.parse(resolved) : resolved;
}

/** Resolves Fn::Join, Ref and Fn::GetAtt …Arn/Name to placeholders; anything else is left as it is. */
export function resolve(value: Json, template: CfnTemplate): Json {
  if (Array.isArray(value)) return value.map((v) => resolve(v, template));
  if (value === null || typeof value !== 'object') return value;
  if ('Fn::Join' in value) {
    const [separator, parts] = value['Fn::Join'] as [string, Json[]];
    return parts.map((p) => String(resolve(p, template))).join(separator);
  }
  if ('Ref' in value) return ref(String(value.Ref), template);
  if ('Fn::GetAtt' in value) {
    const [id, attribute] = value['Fn::GetAtt'] as [string, string];
    return attribute === 'Arn' ? arnOf(id, template) : `${id}.${attribute}`;
  }
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolve(v, template)]));
}

function ref(id: string, template: CfnTemplate): string {
  switch (id) {
    case 'AWS::Partition':
      return PLACEHOLDER_ENV.partition;
    case 'AWS::Region':
      return PLACEHOLDER_ENV.region;
    case 'AWS::AccountId':
      return PLACEHOLDER_ENV.account;
    case 'AWS::URLSuffix':
      return 'amazonaws.com';
    default: {
      // A Ref of a resource is its name or id (a readable stand-in is its logical id), or for a few
      // types its ARN.
      const resource = template.Resources[id];
      if (!resource) throw new Error(`Ref to ${id}, which the template does not define`);
      return REF_SHAPES[resource.Type]?.(id, template) ?? id;
    }
  }
}

const REF_SHAPES: Record<string, (id: string, template: CfnTemplate) => string> = {
  // Bucket names are lowercase: the same name as the bucket's ARN, so a local S3 server can hold it.
  'AWS::S3::Bucket': (id) => id.toLowerCase(),
  'AWS::ECS::TaskDefinition': arnOf,
  'AWS::StepFunctions::StateMachine': arnOf,
  'AWS::SNS::Topic': arnOf,
};

const ARN_SHAPES: Record<string, (id: string, properties: Record<string, Json>) => string> = {
  'AWS::Lambda::Function': (id) =>
    `lambda:${PLACEHOLDER_ENV.region}:${PLACEHOLDER_ENV.account}:function:${id}`,
  'AWS::ECS::Cluster': (id) => `ecs:${PLACEHOLDER_ENV.region}:${PLACEHOLDER_ENV.account}:cluster/${id}`,
  // Revision 1 of its family, as a first deployment registers it.
  'AWS::ECS::TaskDefinition': (id, properties) =>
    `ecs:${PLACEHOLDER_ENV.region}:${PLACEHOLDER_ENV.account}:task-definition/${properties.Family ?? id}:1`,
  'AWS::IAM::Role': (id) => `iam::${PLACEHOLDER_ENV.account}:role/${id}`,
  'AWS::StepFunctions::StateMachine': (id) =>
    `states:${PLACEHOLDER_ENV.region}:${PLACEHOLDER_ENV.account}:stateMachine:${id}`,
  'AWS::S3::Bucket': (id) => `s3:::${id.toLowerCase()}`,
};

function arnOf(id: string, template: CfnTemplate): string {
  const resource = template.Resources[id];
  if (!resource) throw new Error(`Fn::GetAtt of ${id}, which the template does not define`);
  const shape = ARN_SHAPES[resource.Type];
  const [, service = 'unknown'] = resource.Type.split('::').map((s) => s.toLowerCase());
  return `arn:${PLACEHOLDER_ENV.partition}:${shape ? shape(id, resource.Properties ?? {}) : `${service}:${PLACEHOLDER_ENV.region}:${PLACEHOLDER_ENV.account}:${id}`}`;
}
