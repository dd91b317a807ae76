/**
 * Splits a MultiRecord body into its records. A sender joins records with `\n` and may end the body
 * with one; `\r\n` files are common, so a trailing `\r` is dropped from each line. An empty body has
 * no records; an empty line in the middle is a record (the model decides whether that is an error),
 * so that the N-th output line always answers the N-th input line.
 */
export function splitLines(body: Buffer | string): string[] {
  let text = typeof body === 'string' ? body : body.toString('utf8');
  if (text.endsWith('\n')) text = text.slice(0, -1);
  if (text === '') return [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.endsWith('\r')) lines[i] = line.slice(0, -1);
  }
  return lines;
}
