/**
 * The serving toolkit: write a model as four functions, get a SageMaker-compatible HTTP server.
 * See containers/models/README.md.
 */
export { BadInputError, ModelServerError, NotAcceptableError, UnsupportedMediaTypeError } from './errors';
export { JSON_LINES, mediaType, negotiate } from './media';
export {
  defaultExecutionParameters,
  type ExecutionParameters,
  type InferenceHandlers,
  type ModelServer,
  runModelServer,
  startModelServer,
} from './server';
export {
  DEFAULT_MAX_REQUEST_BYTES,
  type ModelServerOptions,
  resolveSettings,
  type ServerSettings,
} from './settings';
export { splitLines } from './lines';
