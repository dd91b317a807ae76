/**
 * Time placeholders for scheduled jobs. A schedule's job template may write `{{ScheduledTime:FORMAT}}`
 * in TransformJobName, S3Uri and S3OutputPath; FORMAT is made of `yyyy MM dd HH mm ss` (UTC) and any
 * other characters, e.g. `s3://bucket/in/{{ScheduledTime:yyyy/MM/dd}}/`. `{{ScheduledTime}}` alone is
 * `yyyyMMddTHHmmssZ`. A scheduled job whose name has no placeholder gets `-yyyyMMddHHmmss` appended, so
 * every run has a unique name.
 */

const PLACEHOLDER = /\{\{\s*ScheduledTime(?::([^}]*))?\s*\}\}/g;

export function hasPlaceholder(text: string): boolean {
  PLACEHOLDER.lastIndex = 0;
  return PLACEHOLDER.test(text);
}

export function expandPlaceholders(text: string, time: Date): string {
  return text.replace(PLACEHOLDER, (_m, format: string | undefined) =>
    formatTime(time, format === undefined ? "yyyyMMdd'T'HHmmss'Z'" : format.trim()),
  );
}

/** Formats a UTC time with the tokens yyyy MM dd HH mm ss; text in single quotes is literal. */
export function formatTime(time: Date, format: string): string {
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  const tokens: Record<string, string> = {
    yyyy: pad(time.getUTCFullYear(), 4),
    MM: pad(time.getUTCMonth() + 1),
    dd: pad(time.getUTCDate()),
    HH: pad(time.getUTCHours()),
    mm: pad(time.getUTCMinutes()),
    ss: pad(time.getUTCSeconds()),
  };
  return format.replace(/'([^']*)'|yyyy|MM|dd|HH|mm|ss/g, (m, literal: string | undefined) =>
    literal !== undefined ? literal : tokens[m]!,
  );
}

/** The job name of one scheduled run: placeholders expanded, or the time appended (within 63 characters). */
export function scheduledJobName(template: string, time: Date): string {
  if (hasPlaceholder(template)) return expandPlaceholders(template, time);
  const suffix = `-${formatTime(time, 'yyyyMMddHHmmss')}`;
  return template.slice(0, 63 - suffix.length).replace(/-+$/, '') + suffix;
}
