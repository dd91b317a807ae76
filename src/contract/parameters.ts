import type { BatchStrategy, SplitType } from './job';

/**
 * The three parameters negotiated with the model at run time, in one place. SageMaker's precedence:
 * the request, then the model's `GET /execution-parameters`, then the defaults (REFERENCE.md, "Model
 * contract"). Validate, the sidecar, the data plane, the results and the description all use
 * `EffectiveParameters`; nothing else declares these fields.
 */
export interface EffectiveParameters {
  readonly MaxConcurrentTransforms: number;
  readonly BatchStrategy: BatchStrategy;
  /** Mebibytes (6 means 6 × 1,048,576 bytes); 0 means no limit: the object is streamed whole. */
  readonly MaxPayloadInMB: number;
}

/** What one source (the request or the model) says; absent fields fall through to the next source. */
export type ParameterChoices = Partial<EffectiveParameters>;

/** SageMaker's defaults when neither the request nor /execution-parameters say (as its local mode does). */
export const PARAMETER_DEFAULTS: EffectiveParameters = {
  MaxConcurrentTransforms: 1,
  BatchStrategy: 'MultiRecord',
  MaxPayloadInMB: 6,
};

/** MaxPayloadInMB's upper bound, and the bound of MaxConcurrentTransforms × MaxPayloadInMB (SageMaker's rule). */
export const MAX_PAYLOAD_IN_MB = 100;

/** SageMaker spells it MultiRecord; models' /execution-parameters say MULTI_RECORD. Accepts both, any case. */
export function parseBatchStrategy(value: unknown): BatchStrategy | undefined {
  if (typeof value !== 'string') return undefined;
  const s = value.toUpperCase().replace('_', '');
  if (s === 'MULTIRECORD') return 'MultiRecord';
  if (s === 'SINGLERECORD') return 'SingleRecord';
  return undefined;
}

/**
 * The choices in a model's `/execution-parameters` body. A field that is missing or not of the right
 * kind is left to the defaults: MaxConcurrentTransforms must be a positive integer, MaxPayloadInMB a
 * non-negative integer.
 */
export function modelParameterChoices(body: unknown): ParameterChoices {
  if (typeof body !== 'object' || body === null) return {};
  const b = body as Record<string, unknown>;
  const out: { -readonly [K in keyof ParameterChoices]: ParameterChoices[K] } = {};
  if (Number.isInteger(b.MaxConcurrentTransforms) && (b.MaxConcurrentTransforms as number) > 0)
    out.MaxConcurrentTransforms = b.MaxConcurrentTransforms as number;
  if (Number.isInteger(b.MaxPayloadInMB) && (b.MaxPayloadInMB as number) >= 0)
    out.MaxPayloadInMB = b.MaxPayloadInMB as number;
  const strategy = parseBatchStrategy(b.BatchStrategy);
  if (strategy) out.BatchStrategy = strategy;
  return out;
}

/** Whether the request leaves anything to the model, i.e. whether `/execution-parameters` must be asked. */
export function asksModel(request: ParameterChoices): boolean {
  return !(request.MaxConcurrentTransforms && request.BatchStrategy && request.MaxPayloadInMB !== undefined);
}

/** A rule the choices break, with the field it concerns. */
export interface ParameterProblem {
  readonly field: keyof EffectiveParameters;
  readonly message: string;
}

/**
 * SageMaker's rule across the fields: MaxConcurrentTransforms × MaxPayloadInMB ≤ 100 (0 or absent
 * means "not set" for both). Each field's own range is the schema's job.
 */
export function parameterProblems(p: ParameterChoices): ParameterProblem[] {
  const mct = p.MaxConcurrentTransforms;
  const payload = p.MaxPayloadInMB;
  if (mct && payload && payload <= MAX_PAYLOAD_IN_MB && mct * payload > MAX_PAYLOAD_IN_MB) {
    return [
      {
        field: 'MaxConcurrentTransforms',
        message: `MaxConcurrentTransforms × MaxPayloadInMB must be at most ${MAX_PAYLOAD_IN_MB}; got ${mct} × ${payload} = ${mct * payload}`,
      },
    ];
  }
  return [];
}

/**
 * A model's `/execution-parameters` asked for values SageMaker's ranges do not allow. A failure of
 * the job's setup, not a bug: its stack is its message, so a worker reports it without frames.
 */
export class ModelParametersError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelParametersError';
    this.stack = message;
  }
}

/**
 * The parameters in force: the request, then the model, then the defaults. SplitType None sends each
 * object as one record, which SageMaker treats as SingleRecord whatever was asked.
 *
 * Values taken from the model are range-checked like the request's (MaxPayloadInMB ≤ 100 and
 * MaxConcurrentTransforms × MaxPayloadInMB ≤ 100, SageMaker's API reference for CreateTransformJob):
 * out of range, this throws ModelParametersError naming the value and how to override it. Values the
 * request overrides are not used, so not checked.
 */
export function negotiateParameters(
  request: ParameterChoices,
  model: ParameterChoices | undefined,
  splitType: SplitType,
): EffectiveParameters {
  const strategy = request.BatchStrategy ?? model?.BatchStrategy ?? PARAMETER_DEFAULTS.BatchStrategy;
  const effective: EffectiveParameters = {
    MaxConcurrentTransforms:
      request.MaxConcurrentTransforms ??
      model?.MaxConcurrentTransforms ??
      PARAMETER_DEFAULTS.MaxConcurrentTransforms,
    BatchStrategy: splitType === 'None' ? 'SingleRecord' : strategy,
    MaxPayloadInMB: request.MaxPayloadInMB ?? model?.MaxPayloadInMB ?? PARAMETER_DEFAULTS.MaxPayloadInMB,
  };
  const fromModel = {
    MaxConcurrentTransforms:
      request.MaxConcurrentTransforms === undefined && model?.MaxConcurrentTransforms !== undefined,
    MaxPayloadInMB: request.MaxPayloadInMB === undefined && model?.MaxPayloadInMB !== undefined,
  };
  const override = 'set it in the request (which takes precedence) or fix the model';
  if (fromModel.MaxPayloadInMB && effective.MaxPayloadInMB > MAX_PAYLOAD_IN_MB) {
    throw new ModelParametersError(
      `the model's GET /execution-parameters asks for MaxPayloadInMB ${effective.MaxPayloadInMB}; at most ${MAX_PAYLOAD_IN_MB} is allowed: ${override}`,
    );
  }
  if (fromModel.MaxConcurrentTransforms || fromModel.MaxPayloadInMB) {
    const [problem] = parameterProblems(effective);
    if (problem) {
      const which = (['MaxConcurrentTransforms', 'MaxPayloadInMB'] as const)
        .filter((f) => fromModel[f])
        .join(' and ');
      throw new ModelParametersError(
        `the model's GET /execution-parameters gives ${which} where ${problem.message}: ${override}`,
      );
    }
  }
  return effective;
}
