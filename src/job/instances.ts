import type { Capacity } from '../contract/job';

/**
 * The instance catalog: every ml.* type SageMaker offers for batch transform in the families we
 * support, with its vCPUs, memory and accelerators (figures from the EC2 instance type pages of the
 * same names), and the rule that maps a type to where our task runs.
 */

export type AcceleratorKind = 'nvidia' | 'neuron';

export interface InstanceSpec {
  readonly vcpus: number;
  readonly memoryGiB: number;
  /** NVIDIA GPUs (declared to ECS as GPU resource requirements). */
  readonly gpus: number;
  /** AWS Neuron devices (Inferentia2 / Trainium), exposed to the container as /dev/neuron* devices. */
  readonly neuronDevices: number;
  /** The EC2 instance type behind the ml.* type. */
  readonly ec2InstanceType: string;
}

type Row = readonly [size: string, vcpus: number, memoryGiB: number, accelerators?: number];

const SIZES_M = [
  ['large', 2, 8],
  ['xlarge', 4, 16],
  ['2xlarge', 8, 32],
  ['4xlarge', 16, 64],
  ['8xlarge', 32, 128],
  ['12xlarge', 48, 192],
  ['16xlarge', 64, 256],
  ['24xlarge', 96, 384],
] as const satisfies readonly Row[];
const double = (rows: readonly Row[], factor: number): Row[] =>
  rows.map(([s, v, m]) => [s, v, m * factor] as const);
const half = (rows: readonly Row[]): Row[] => rows.map(([s, v, m]) => [s, v, m / 2] as const);

const FAMILIES: Readonly<Record<string, { rows: readonly Row[]; accelerator?: AcceleratorKind }>> = {
  m4: {
    rows: [
      ['xlarge', 4, 16],
      ['2xlarge', 8, 32],
      ['4xlarge', 16, 64],
      ['10xlarge', 40, 160],
      ['16xlarge', 64, 256],
    ],
  },
  c4: {
    rows: [
      ['xlarge', 4, 7.5],
      ['2xlarge', 8, 15],
      ['4xlarge', 16, 30],
      ['8xlarge', 36, 60],
    ],
  },
  c5: {
    rows: [
      ['xlarge', 4, 8],
      ['2xlarge', 8, 16],
      ['4xlarge', 16, 32],
      ['9xlarge', 36, 72],
      ['18xlarge', 72, 144],
    ],
  },
  m5: {
    rows: [
      ['large', 2, 8],
      ['xlarge', 4, 16],
      ['2xlarge', 8, 32],
      ['4xlarge', 16, 64],
      ['12xlarge', 48, 192],
      ['24xlarge', 96, 384],
    ],
  },
  m6i: { rows: [...SIZES_M, ['32xlarge', 128, 512]] },
  c6i: { rows: half([...SIZES_M, ['32xlarge', 128, 512]]) },
  r6i: { rows: double([...SIZES_M, ['32xlarge', 128, 512]], 2) },
  m7i: { rows: [...SIZES_M, ['48xlarge', 192, 768]] },
  c7i: { rows: half([...SIZES_M, ['48xlarge', 192, 768]]) },
  r7i: { rows: double([...SIZES_M, ['48xlarge', 192, 768]], 2) },
  p2: {
    accelerator: 'nvidia',
    rows: [
      ['xlarge', 4, 61, 1],
      ['8xlarge', 32, 488, 8],
      ['16xlarge', 64, 732, 16],
    ],
  },
  p3: {
    accelerator: 'nvidia',
    rows: [
      ['2xlarge', 8, 61, 1],
      ['8xlarge', 32, 244, 4],
      ['16xlarge', 64, 488, 8],
    ],
  },
  g4dn: {
    accelerator: 'nvidia',
    rows: [
      ['xlarge', 4, 16, 1],
      ['2xlarge', 8, 32, 1],
      ['4xlarge', 16, 64, 1],
      ['8xlarge', 32, 128, 1],
      ['12xlarge', 48, 192, 4],
      ['16xlarge', 64, 256, 1],
    ],
  },
  ...Object.fromEntries(
    (['g5', 'g6'] as const).map((family) => [
      family,
      {
        accelerator: 'nvidia' as const,
        rows: [
          ['xlarge', 4, 16, 1],
          ['2xlarge', 8, 32, 1],
          ['4xlarge', 16, 64, 1],
          ['8xlarge', 32, 128, 1],
          ['12xlarge', 48, 192, 4],
          ['16xlarge', 64, 256, 1],
          ['24xlarge', 96, 384, 4],
          ['48xlarge', 192, 768, 8],
        ] as Row[],
      },
    ]),
  ),
  trn1: {
    accelerator: 'neuron',
    rows: [
      ['2xlarge', 8, 32, 1],
      ['32xlarge', 128, 512, 16],
    ],
  },
  inf2: {
    accelerator: 'neuron',
    rows: [
      ['xlarge', 4, 16, 1],
      ['8xlarge', 32, 128, 1],
      ['24xlarge', 96, 384, 6],
      ['48xlarge', 192, 768, 12],
    ],
  },
};

export const INSTANCE_CATALOG: Readonly<Record<string, InstanceSpec>> = Object.freeze(
  Object.fromEntries(
    Object.entries(FAMILIES).flatMap(([family, { rows, accelerator }]) =>
      rows.map(([size, vcpus, memoryGiB, acc = 0]) => [
        `ml.${family}.${size}`,
        {
          vcpus,
          memoryGiB,
          gpus: accelerator === 'nvidia' ? acc : 0,
          neuronDevices: accelerator === 'neuron' ? acc : 0,
          ec2InstanceType: `${family}.${size}`,
        },
      ]),
    ),
  ),
);

export const INSTANCE_TYPES: readonly string[] = Object.keys(INSTANCE_CATALOG).sort(compareInstanceTypes);

/** Orders ml.* types by family, then by size. */
export function compareInstanceTypes(a: string, b: string): number {
  const fa = a.split('.')[1] ?? '';
  const fb = b.split('.')[1] ?? '';
  if (fa !== fb) return fa < fb ? -1 : 1;
  return (INSTANCE_CATALOG[a]?.vcpus ?? 0) - (INSTANCE_CATALOG[b]?.vcpus ?? 0);
}

/**
 * Valid Fargate task sizes: CPU units → allowed memory (MiB) as [min, max, step].
 * Source: the ECS developer guide's "Task CPU and memory" table for Fargate on Linux.
 */
export const FARGATE_SIZES: ReadonlyArray<readonly [cpu: number, min: number, max: number, step: number]> = [
  [2048, 4096, 16384, 1024],
  [4096, 8192, 30720, 1024],
  [8192, 16384, 61440, 4096],
  [16384, 32768, 122880, 8192],
];

/**
 * What our sidecar keeps of every task; the model container gets the rest. The sidecar streams with
 * bounded memory (2 × MaxConcurrentTransforms × MaxPayloadInMB plus a small base), so 512 MiB covers
 * SageMaker's largest allowed product (100 MB) with room.
 */
export const SIDECAR_SHARE = { cpu: 256, memoryMiB: 512 } as const;

/**
 * The Fargate size for an instance type, or undefined when it does not fit Fargate. The task gets the
 * instance's vCPUs exactly and the smallest valid memory at or above the instance's; types without
 * accelerators only. Sizes Fargate cannot match (e.g. 36 vCPUs, or 32 GiB with 4 vCPUs) run on EC2
 * capacity of the same type rather than on a Fargate size with a different vCPU count.
 */
export function fargateSizeFor(spec: InstanceSpec): { cpu: number; memoryMiB: number } | undefined {
  if (spec.gpus > 0 || spec.neuronDevices > 0) return undefined;
  const cpu = spec.vcpus * 1024;
  const row = FARGATE_SIZES.find(([c]) => c === cpu);
  if (!row) return undefined;
  const [, min, max, step] = row;
  const wanted = Math.ceil(spec.memoryGiB * 1024);
  const memoryMiB = Math.max(min, Math.ceil(wanted / step) * step);
  return memoryMiB <= max ? { cpu, memoryMiB } : undefined;
}

/** True when the type runs on Fargate, so a deployment needs no EC2 capacity for it. */
export function isFargateType(instanceType: string): boolean {
  const spec = INSTANCE_CATALOG[instanceType];
  return spec !== undefined && fargateSizeFor(spec) !== undefined;
}

export class CapacityError extends Error {
  override readonly name = 'CapacityError';
}

/**
 * Where a job of this instance type runs in a deployment whose EC2-backed types are `enabledEc2Types`.
 * Throws CapacityError naming what is available when the type is unknown or not enabled.
 */
export function resolveCapacity(instanceType: string, enabledEc2Types: readonly string[]): Capacity {
  const spec = INSTANCE_CATALOG[instanceType];
  if (!spec) {
    throw new CapacityError(
      `unknown instance type "${instanceType}"; ${availableTypesSentence(enabledEc2Types)}`,
    );
  }
  const fargate = fargateSizeFor(spec);
  if (fargate) return { kind: 'fargate', ...fargate };
  if (!enabledEc2Types.includes(instanceType)) {
    throw new CapacityError(
      `instance type "${instanceType}" needs EC2 capacity that this deployment has not enabled; ${availableTypesSentence(enabledEc2Types)}`,
    );
  }
  return {
    kind: 'ec2',
    instanceType: spec.ec2InstanceType,
    cpu: spec.vcpus * 1024,
    memoryMiB: ec2TaskMemoryMiB(spec),
    gpus: spec.gpus,
    neuronDevices: spec.neuronDevices,
  };
}

/**
 * Memory a task may reserve on an EC2 instance of this type: the ECS agent and the OS keep some of
 * the instance's memory, so reserve 90% (rounded down to 256 MiB) of the nominal figure.
 */
export function ec2TaskMemoryMiB(spec: InstanceSpec): number {
  return Math.floor((spec.memoryGiB * 1024 * 0.9) / 256) * 256;
}

export function availableTypesSentence(enabledEc2Types: readonly string[]): string {
  const fargate = INSTANCE_TYPES.filter(isFargateType);
  const ec2 = [...enabledEc2Types].sort(compareInstanceTypes);
  return (
    `available: ${fargate.join(', ')} (Fargate)` +
    (ec2.length > 0 ? `; ${ec2.join(', ')} (EC2, enabled in this deployment)` : '; no EC2 types are enabled')
  );
}
