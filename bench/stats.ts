/** Small statistics and formatting helpers for the benchmark. */

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** `min–max` of a series, for the table: the spread tells how noisy the machine was. */
export function spread(values: readonly number[], digits = 0): string {
  if (values.length < 2) return '';
  return `${fmt(Math.min(...values), digits)}–${fmt(Math.max(...values), digits)}`;
}

export function fmt(v: number, digits = 0): string {
  return Number.isFinite(v) ? v.toFixed(digits) : String(v);
}

export const MB = 1_000_000;
export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

/** Bytes per millisecond as MB/s (decimal megabytes, as the goals are stated). */
export const mbps = (bytes: number, ms: number): number => bytes / MB / (ms / 1000);
