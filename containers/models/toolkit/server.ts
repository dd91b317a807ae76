import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { ModelServerError, NotAcceptableError, UnsupportedMediaTypeError } from './errors';
import { mediaType, negotiate } from './media';
import { type ModelServerOptions, resolveSettings, type ServerSettings } from './settings';

/** SageMaker's GET /execution-parameters answer (all fields optional; the job's request wins). */
export interface ExecutionParameters {
  readonly MaxConcurrentTransforms?: number;
  readonly BatchStrategy?: 'MULTI_RECORD' | 'SINGLE_RECORD';
  readonly MaxPayloadInMB?: number;
}

/**
 * A model, as the four hooks of SageMaker's inference toolkits (model_fn, input_fn, predict_fn,
 * output_fn). The toolkit owns HTTP: routing, body limits, content negotiation, errors, shutdown.
 */
export interface InferenceHandlers<Model, Input, Prediction> {
  /** Loads the model from its artifacts folder. Runs once, after the server listens; /ping is 503 until it resolves. */
  modelFn(modelDir: string): Model | Promise<Model>;
  /** Decodes a request body. `contentType` is canonical (see `mediaType`). Throw `BadInputError` (or anything) for 400. */
  inputFn(body: Buffer, contentType: string): Input | Promise<Input>;
  /** Runs the model. A throw is answered 500 with its message. */
  predictFn(input: Input, model: Model): Prediction | Promise<Prediction>;
  /** Encodes the prediction as `accept`, the negotiated response type (sent as Content-Type). */
  outputFn(prediction: Prediction, accept: string): string | Uint8Array | Promise<string | Uint8Array>;
  /** Request types `inputFn` reads; others are answered 415 before it runs. @default any type */
  readonly contentTypes?: readonly string[];
  /** Response types `outputFn` writes; an Accept that allows none of them is answered 406. @default any type */
  readonly accepts?: readonly string[];
  /** The type assumed when a request has no Content-Type. @default 'application/octet-stream' */
  readonly defaultContentType?: string;
  /** The response type when a request has no Accept (SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT wins). @default the request's type if writable, else `accepts[0]` */
  readonly defaultAccept?: string;
  /** GET /execution-parameters. Return undefined for 404 (the client then uses its defaults). @default see `defaultExecutionParameters` */
  executionParametersFn?(model: Model, settings: ServerSettings): ExecutionParameters | undefined;
}

export interface ModelServer {
  readonly port: number;
  /** `http://127.0.0.1:<port>` (or the bound host), for clients on this machine. */
  readonly url: string;
  readonly settings: ServerSettings;
  /** Resolves once `modelFn` has loaded the model; rejects with its error. */
  readonly loaded: Promise<void>;
  /** Stops accepting connections, lets in-flight invocations finish for up to `graceMs`, then closes every connection. */
  close(graceMs?: number): Promise<void>;
}

const MiB = 1024 * 1024;
/** SageMaker's rule: MaxConcurrentTransforms × MaxPayloadInMB ≤ 100. */
const MAX_CONCURRENT_TIMES_PAYLOAD_MB = 100;
/**
 * Node runs one prediction at a time on its one thread; a second request in flight overlaps the next
 * body's upload and parsing with the current prediction. More would only queue bodies in memory.
 */
const DEFAULT_MAX_CONCURRENT_TRANSFORMS = 2;
/** Longer than any client's idle keep-alive (undici: 4 s), so the client, not the server, closes idle sockets. */
const KEEP_ALIVE_TIMEOUT_MS = 65_000;

/** What /execution-parameters answers when the model has no hook: MULTI_RECORD, 2 in flight, payloads the request limit allows. */
export function defaultExecutionParameters(settings: ServerSettings): ExecutionParameters {
  const concurrency = DEFAULT_MAX_CONCURRENT_TRANSFORMS;
  const byLimit = Math.max(1, Math.floor(settings.maxRequestBytes / MiB));
  return {
    MaxConcurrentTransforms: concurrency,
    BatchStrategy: 'MULTI_RECORD',
    MaxPayloadInMB: Math.min(byLimit, Math.floor(MAX_CONCURRENT_TIMES_PAYLOAD_MB / concurrency)),
  };
}

type Body =
  | { readonly body: Buffer; readonly bytes: number }
  | { readonly body: undefined; readonly bytes: number };

/**
 * Reads the whole body, or only counts it once it passes `limit`. The body is always read to its
 * end before an error is answered: answering while the client is still sending makes many clients
 * (undici among them) see a reset connection instead of the 413, and the client needs the status.
 */
function readBody(req: IncomingMessage, limit: number): Promise<Body> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    let bytes = 0;
    let chunks: Buffer[] | undefined = Number.isFinite(declared) && declared > limit ? undefined : [];
    req.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (chunks === undefined) return;
      if (bytes > limit) chunks = undefined;
      else chunks.push(chunk);
    });
    req.on('end', () => {
      if (chunks === undefined) resolve({ body: undefined, bytes });
      else resolve({ body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, bytes), bytes });
    });
    req.on('error', reject);
  });
}

function defaultLog(line: string, level: 'info' | 'error'): void {
  (level === 'error' ? process.stderr : process.stdout).write(`[model-server] ${line}\n`);
}

/** Starts the HTTP server, then loads the model in the background (/ping answers 503 until then). */
export async function startModelServer<Model, Input, Prediction>(
  handlers: InferenceHandlers<Model, Input, Prediction>,
  options: ModelServerOptions = {},
): Promise<ModelServer> {
  const settings = resolveSettings(options);
  const log = options.log ?? defaultLog;
  let model: { value: Model } | undefined;
  let shuttingDown = false;
  let inFlight = 0;
  let idle: (() => void) | undefined;
  // Compared in canonical form, so a model may list `application/x-ndjson` or `text/csv; charset=utf-8`.
  const readableTypes = handlers.contentTypes?.map((t) => mediaType(t) ?? t);
  const writableTypes = handlers.accepts?.map((t) => mediaType(t) ?? t);
  const canWrite = (type: string | undefined): type is string =>
    type !== undefined && (writableTypes === undefined || writableTypes.includes(type));

  const send = (res: ServerResponse, status: number, body: string | Uint8Array, contentType: string) => {
    res.statusCode = status;
    res.setHeader('Content-Type', contentType);
    res.setHeader('Content-Length', typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength);
    if (shuttingDown) res.setHeader('Connection', 'close');
    res.end(body);
  };
  const sendError = (res: ServerResponse, status: number, message: string) =>
    send(res, status, `${message}\n`, 'text/plain; charset=utf-8');

  const invoke = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const contentType =
      mediaType(req.headers['content-type']) ?? handlers.defaultContentType ?? 'application/octet-stream';
    const readable = readableTypes === undefined || readableTypes.includes(contentType);
    const { body } = await readBody(req, readable ? settings.maxRequestBytes : -1);
    if (!model) return sendError(res, 503, 'the model is not loaded yet');
    if (!readable) {
      const e = new UnsupportedMediaTypeError(req.headers['content-type'] ?? '(none)', handlers.contentTypes);
      return sendError(res, e.status, e.message);
    }
    if (body === undefined) {
      return sendError(
        res,
        413,
        `request body is larger than this model's limit of ${settings.maxRequestBytes} bytes`,
      );
    }
    const fallback =
      [mediaType(settings.defaultAccept), mediaType(handlers.defaultAccept), contentType].find(canWrite) ??
      writableTypes![0]!;
    const accept = negotiate(req.headers.accept, writableTypes, fallback);
    if (accept === undefined) {
      const e = new NotAcceptableError(req.headers.accept ?? '', handlers.accepts);
      return sendError(res, e.status, e.message);
    }

    let input: Input;
    try {
      input = await handlers.inputFn(body, contentType);
    } catch (e) {
      const status = e instanceof ModelServerError ? e.status : 400;
      const message = (e as Error).message;
      return sendError(res, status, status === 400 ? `invalid ${contentType} input: ${message}` : message);
    }
    let output: string | Uint8Array;
    try {
      output = await handlers.outputFn(await handlers.predictFn(input, model.value), accept);
    } catch (e) {
      const status = e instanceof ModelServerError ? e.status : 500;
      if (status >= 500) log(`invocation failed: ${(e as Error).stack ?? e}`, 'error');
      return sendError(res, status, (e as Error).message);
    }
    send(res, 200, output, accept);
  };

  const route = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = req.url?.split('?', 1)[0];
    if (path === '/invocations') {
      if (req.method !== 'POST') return sendError(res, 405, 'use POST /invocations');
      inFlight++;
      try {
        await invoke(req, res);
      } finally {
        inFlight--;
        if (inFlight === 0) idle?.();
      }
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return sendError(res, 405, `use GET ${path}`);
    if (path === '/ping') {
      return model ? send(res, 200, '', 'text/plain') : sendError(res, 503, 'loading the model');
    }
    if (path === '/execution-parameters') {
      if (!model) return sendError(res, 503, 'loading the model');
      const params = handlers.executionParametersFn
        ? handlers.executionParametersFn(model.value, settings)
        : defaultExecutionParameters(settings);
      if (params === undefined) return sendError(res, 404, 'this model has no execution parameters');
      return send(res, 200, JSON.stringify(params), 'application/json');
    }
    sendError(res, 404, `no route ${req.method} ${path}`);
  };

  const server = createServer((req, res) => {
    const started = settings.logRequests ? performance.now() : 0;
    if (settings.logRequests) {
      res.on('finish', () => {
        const ms = (performance.now() - started).toFixed(1);
        const bytesIn = req.headers['content-length'] ?? 0;
        const bytesOut = res.getHeader('content-length') ?? 0;
        log(`${req.method} ${req.url} ${res.statusCode} in=${bytesIn}B out=${bytesOut}B ${ms}ms`, 'info');
      });
    }
    route(req, res).catch((e: Error) => {
      // Only a broken connection gets here (every hook error is answered above).
      log(`request failed: ${e.message}`, 'error');
      if (!res.headersSent) sendError(res, 500, e.message);
      else res.destroy();
    });
  });
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  server.headersTimeout = KEEP_ALIVE_TIMEOUT_MS + 1000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(settings.port, settings.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  log(`listening on ${settings.host}:${port}`, 'info');

  const loadStarted = performance.now();
  const loaded = (async () => {
    model = { value: await handlers.modelFn(settings.modelDir) };
    log(
      `model loaded from ${settings.modelDir} in ${(performance.now() - loadStarted).toFixed(0)}ms`,
      'info',
    );
  })();
  // The caller decides what a load failure means; keep it from being an unhandled rejection meanwhile.
  loaded.catch(() => {});

  const close = async (graceMs = settings.shutdownGraceMs): Promise<void> => {
    shuttingDown = true;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    if (inFlight > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, graceMs);
        idle = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    server.closeAllConnections();
    await closed;
  };

  const host = settings.host === '0.0.0.0' || settings.host === '::' ? '127.0.0.1' : settings.host;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  return { port, url: `http://${urlHost}:${port}`, settings, loaded, close };
}

/**
 * The container entry point: `docker run <image> serve` (SageMaker's contract) or no argument at all.
 * Exits 1 if the model cannot load, so a dead model is seen at once rather than as a ping timeout;
 * on SIGTERM or SIGINT lets in-flight invocations finish, then exits 0.
 */
export async function runModelServer<Model, Input, Prediction>(
  handlers: InferenceHandlers<Model, Input, Prediction>,
  options: ModelServerOptions & { readonly argv?: readonly string[] } = {},
): Promise<void> {
  const argv = options.argv ?? process.argv.slice(2);
  const log = options.log ?? defaultLog;
  if (argv.length > 1 || (argv.length === 1 && argv[0] !== 'serve')) {
    log(`usage: serve (got "${argv.join(' ')}")`, 'error');
    process.exit(2);
  }
  let server: ModelServer;
  try {
    server = await startModelServer(handlers, options);
  } catch (e) {
    log(`cannot start: ${(e as Error).message}`, 'error');
    process.exit(1);
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: finishing in-flight invocations, then exiting`, 'info');
    server.close().then(() => process.exit(0));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  try {
    await server.loaded;
  } catch (e) {
    // The stack for whoever debugs modelFn, then the reason as the last line: a supervisor that
    // reports a process's last output shows the reason, not a stack frame.
    if ((e as Error).stack) log((e as Error).stack!, 'error');
    log(`cannot load the model from ${server.settings.modelDir}: ${(e as Error).message ?? e}`, 'error');
    await server.close(0);
    process.exit(1);
  }
}
