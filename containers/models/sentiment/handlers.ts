import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import Sentiment from 'sentiment';
import english from 'sentiment/languages/en/index.js';
import { BadInputError, type InferenceHandlers, JSON_LINES, splitLines } from '../toolkit';
import { APP_REVIEW_LEXICON } from './lexicon';

/**
 * Review sentiment with the AFINN-165 lexicon (the `sentiment` package) plus an app-review lexicon.
 *
 * In:  application/jsonlines, one review per line: an object whose text field (`text` unless
 *      configured; a dotted path such as `review.body` reaches into nested objects) is read, or a bare
 *      JSON string (what an InputFilter such as `$.text` sends); application/json, one such value or
 *      a list of them; text/plain, one review per line.
 * Out: `{"label","score","comparative"}` per review: label is positive (score > 0), negative (< 0) or
 *      neutral; comparative is the score per word. application/jsonlines: one line per review, joined
 *      by `\n` with no trailing newline; application/json: one object, or a list for a list.
 */

export const LEXICON_FILE = 'lexicon.json';

export interface SentimentResult {
  readonly label: 'positive' | 'negative' | 'neutral';
  readonly score: number;
  readonly comparative: number;
}

export interface SentimentModel {
  analyze(text: string): SentimentResult;
}

export interface SentimentOptions {
  /** The field of a JSON object that holds the review text. @default 'text' */
  readonly textField?: string;
}

interface Reviews {
  readonly texts: readonly string[];
  /** application/json with one value (not a list) is answered with one object. */
  readonly single: boolean;
}

interface Scored {
  readonly results: readonly SentimentResult[];
  readonly single: boolean;
}

const JSON_TYPE = 'application/json';
const TEXT = 'text/plain';

let languages = 0;

async function readLexicon(modelDir: string): Promise<Record<string, number>> {
  const path = join(modelDir, LEXICON_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw e;
  }
  const value: unknown = JSON.parse(text);
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new Error(`${path}: expected {"word": score, ...}`);
  }
  const bad = Object.keys(value).filter((k) => !Number.isFinite((value as Record<string, unknown>)[k]));
  if (bad.length > 0) throw new Error(`${path}: scores must be numbers (${bad.slice(0, 5).join(', ')})`);
  return value as Record<string, number>;
}

export async function loadModel(modelDir: string): Promise<SentimentModel> {
  const extras = await readLexicon(modelDir);
  const analyzer = new Sentiment();
  // A language of its own rather than `analyze(text, { extras })`: the package merges extras into
  // its shared English table on every call, which would leak one model's words into another's.
  const language = `en-app-reviews-${++languages}`;
  analyzer.registerLanguage(language, {
    labels: { ...english.labels, ...APP_REVIEW_LEXICON, ...extras },
    scoringStrategy: english.scoringStrategy,
  });
  const added = Object.keys(extras).length;
  if (added > 0) {
    process.stdout.write(
      `[sentiment] ${added} word${added === 1 ? '' : 's'} from ${join(modelDir, LEXICON_FILE)}\n`,
    );
  }
  return {
    analyze(text) {
      const { score, comparative } = analyzer.analyze(text, { language });
      const label = score > 0 ? 'positive' : score < 0 ? 'negative' : 'neutral';
      return { label, score, comparative: Number(comparative.toFixed(4)) };
    },
  };
}

function parseJson(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new BadInputError(`${where} is not JSON: ${(e as Error).message}`);
  }
}

function valueAt(value: unknown, path: readonly string[]): unknown {
  for (const key of path) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  return value;
}

function reviewText(value: unknown, field: string, where: string): string {
  if (typeof value === 'string') return value;
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const obj = value as Record<string, unknown>;
    // A dotted field is a path unless the object has a key with that exact name.
    const text = Object.hasOwn(obj, field) ? obj[field] : valueAt(obj, field.split('.'));
    if (typeof text === 'string') return text;
    throw new BadInputError(
      `${where}: no string field "${field}" (got ${JSON.stringify(text) ?? 'nothing'})`,
    );
  }
  throw new BadInputError(`${where}: expected a JSON object with a "${field}" field or a JSON string`);
}

export function sentimentHandlers(
  options: SentimentOptions = {},
): InferenceHandlers<SentimentModel, Reviews, Scored> {
  const field = options.textField || 'text';
  return {
    contentTypes: [JSON_LINES, JSON_TYPE, TEXT],
    accepts: [JSON_LINES, JSON_TYPE],
    defaultContentType: JSON_LINES,

    modelFn: loadModel,

    inputFn(body, contentType) {
      if (contentType === TEXT) return { texts: splitLines(body), single: false };
      if (contentType === JSON_LINES) {
        const texts = splitLines(body).map((line, i) => {
          const where = `line ${i + 1}`;
          return reviewText(parseJson(line, where), field, where);
        });
        return { texts, single: false };
      }
      const value = parseJson(body.toString('utf8'), 'the body');
      if (Array.isArray(value)) {
        return { texts: value.map((v, i) => reviewText(v, field, `item ${i + 1}`)), single: false };
      }
      return { texts: [reviewText(value, field, 'the body')], single: true };
    },

    predictFn({ texts, single }, model) {
      return { results: texts.map((t) => model.analyze(t)), single };
    },

    outputFn({ results, single }, accept) {
      if (accept === JSON_LINES) return results.map((r) => JSON.stringify(r)).join('\n');
      return JSON.stringify(single ? results[0] : results);
    },
  };
}
