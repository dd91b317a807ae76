/** The content kinds the data plane can filter and join. Everything else passes through as bytes. */
export type ContentKind = 'csv' | 'json' | 'jsonlines' | 'other';

/** Classifies a MIME type, ignoring parameters and case (`text/csv; charset=utf-8` is csv). */
export function contentKind(contentType: string | undefined): ContentKind {
  const base = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  switch (base) {
    case 'text/csv':
    case 'application/csv':
      return 'csv';
    case 'application/json':
      return 'json';
    case 'application/jsonlines':
    case 'application/x-jsonlines':
    case 'application/jsonl':
    case 'application/x-ndjson':
      return 'jsonlines';
    default:
      return 'other';
  }
}
