/**
 * The review sentiment model server. In the container: `node serve.mjs serve`; from the repository:
 * `node --import tsx containers/models/sentiment/serve.ts serve`. `SENTIMENT_TEXT_FIELD` names the
 * JSON field that holds the review text (default `text`); set it in the job's Environment.
 */
import { runModelServer } from '../toolkit';
import { sentimentHandlers } from './handlers';

await runModelServer(sentimentHandlers({ textField: process.env['SENTIMENT_TEXT_FIELD'] }));
