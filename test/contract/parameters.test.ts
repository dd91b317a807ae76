import { describe, expect, it } from 'vitest';
import {
  ModelParametersError,
  negotiateParameters,
  type ParameterChoices,
} from '../../src/contract/parameters';

describe("the model's /execution-parameters are range-checked like the request's", () => {
  it.each<[string, ParameterChoices, ParameterChoices, RegExp]>([
    [
      'MaxPayloadInMB over 100',
      {},
      { MaxPayloadInMB: 200 },
      /the model's GET \/execution-parameters asks for MaxPayloadInMB 200; at most 100 is allowed/,
    ],
    [
      'MaxConcurrentTransforms × MaxPayloadInMB over 100, both from the model',
      {},
      { MaxConcurrentTransforms: 20, MaxPayloadInMB: 6 },
      /gives MaxConcurrentTransforms and MaxPayloadInMB where MaxConcurrentTransforms × MaxPayloadInMB must be at most 100; got 20 × 6 = 120/,
    ],
    [
      "the model's MaxConcurrentTransforms against the default payload",
      {},
      { MaxConcurrentTransforms: 17 },
      /gives MaxConcurrentTransforms where .* got 17 × 6 = 102/,
    ],
    [
      "the model's MaxPayloadInMB against the request's concurrency",
      { MaxConcurrentTransforms: 10 },
      { MaxPayloadInMB: 20 },
      /gives MaxPayloadInMB where .* got 10 × 20 = 200/,
    ],
  ])('%s fails with a clear reason', (_, request, model, message) => {
    expect(() => negotiateParameters(request, model, 'Line')).toThrow(ModelParametersError);
    expect(() => negotiateParameters(request, model, 'Line')).toThrow(message);
  });

  it.each<[string, ParameterChoices, ParameterChoices]>([
    [
      'values the request overrides are not used, so not checked',
      { MaxPayloadInMB: 6, MaxConcurrentTransforms: 2 },
      { MaxPayloadInMB: 500, MaxConcurrentTransforms: 90 },
    ],
    ['in range', {}, { MaxConcurrentTransforms: 16, MaxPayloadInMB: 6 }],
    [
      'MaxPayloadInMB 0 (no limit) with any concurrency',
      {},
      { MaxConcurrentTransforms: 64, MaxPayloadInMB: 0 },
    ],
  ])('%s', (_, request, model) => {
    expect(() => negotiateParameters(request, model, 'Line')).not.toThrow();
  });
});
