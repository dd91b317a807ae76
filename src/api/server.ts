import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { transformJobArn } from './arns';
import { describeResponse, summaryResponse } from './job-description';
import { parseListModels, parseListTransformJobs } from './listing';
import type { ModelRegistry } from './model-registry';
import { ApiError, operationOf, readJsonBody, sendError, sendJson } from './protocol';
import { jobNotFound, type TransformJobs } from './transform-jobs';

/**
 * `batch-transform api`: an HTTP server that speaks SageMaker's protocol for the transform-job and
 * model operations, so boto3, the AWS CLI and other SageMaker clients work unchanged with
 * `endpoint_url` pointing at it. It never asks for credentials: clients sign their requests with
 * whatever they have, and the signature is not checked (the server binds to loopback by default).
 */

export interface ApiServerOptions {
  readonly jobs: TransformJobs;
  readonly models: ModelRegistry;
  /** @default '127.0.0.1' */
  readonly host?: string;
  /** 0 picks a free port. @default 8080 */
  readonly port?: number;
  /** One line per request that failed on our side. */
  readonly log?: (line: string) => void;
}

export interface ApiServer {
  /** `http://host:port`, the endpoint_url for clients. */
  readonly url: string;
  readonly server: Server;
  /** Stops accepting requests, stops running jobs and waits for them to end. */
  close(): Promise<void>;
}

type Operation = (body: Record<string, unknown>) => Promise<unknown>;

/** The operations, by X-Amz-Target name. */
export function operations(jobs: TransformJobs, models: ModelRegistry): Readonly<Record<string, Operation>> {
  const id = jobs.identity;
  const nameOf = (body: Record<string, unknown>, field: string): string => {
    const v = body[field];
    if (typeof v !== 'string' || v === '')
      throw new ApiError('ValidationException', `${field} is required (a non-empty string)`);
    return v;
  };
  return {
    async CreateTransformJob(body) {
      await jobs.create(body);
      // create() validated the request, so the name is a valid job name.
      return { TransformJobArn: transformJobArn(id, body.TransformJobName as string) };
    },
    async DescribeTransformJob(body) {
      return describeResponse(await mustGet(nameOf(body, 'TransformJobName')), id);
    },
    async ListTransformJobs(body) {
      const page = await jobs.list(parseListTransformJobs(body));
      return {
        TransformJobSummaries: page.views.map((v) => summaryResponse(v, id)),
        ...(page.nextToken ? { NextToken: page.nextToken } : {}),
      };
    },
    async StopTransformJob(body) {
      await jobs.stop(nameOf(body, 'TransformJobName'));
      return {};
    },
    /**
     * SageMaker returns a job's tags from ListTags, not DescribeTransformJob (botocore's shapes): the
     * request's Tags, which the deployment also puts on the job's ECS tasks. Transform jobs only.
     */
    async ListTags(body) {
      const arn = nameOf(body, 'ResourceArn');
      const prefix = transformJobArn(id, '');
      if (!arn.startsWith(prefix) || arn.length === prefix.length)
        throw new ApiError(
          'ValidationException',
          `ResourceArn ${arn} is not a transform job of this server (${prefix}<name>); ListTags here lists transform jobs' tags`,
        );
      const view = await mustGet(arn.slice(prefix.length));
      const tags = view.job?.Tags ?? (Array.isArray(view.request.Tags) ? view.request.Tags : []);
      return { Tags: tags };
    },
    async CreateModel(body) {
      return models.create(body);
    },
    async DescribeModel(body) {
      return models.describe(body);
    },
    async ListModels(body) {
      return models.list(parseListModels(body));
    },
    async DeleteModel(body) {
      return models.delete(body);
    },
  };

  async function mustGet(name: string) {
    const found = await jobs.get(name);
    if (!found) throw jobNotFound(id, name);
    return found;
  }
}

export async function startApiServer(o: ApiServerOptions): Promise<ApiServer> {
  const ops = operations(o.jobs, o.models);
  const server = createServer((req, res) => {
    void handle(req, res, ops, o.log);
  });
  // Clients keep connections open between polls; they must not hold close() up.
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? 8080, o.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${host}:${address.port}`,
    server,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      await o.jobs.close();
      server.closeAllConnections();
      await closed;
    },
  };
}

async function handle(
  req: IncomingMessage,
  res: ServerResponse,
  ops: Readonly<Record<string, Operation>>,
  log: ((line: string) => void) | undefined,
): Promise<void> {
  try {
    if (req.method !== 'POST')
      throw new ApiError(
        'UnknownOperationException',
        `SageMaker's API takes POST /, got ${req.method} ${req.url}`,
      );
    const name = operationOf(req);
    const op = Object.hasOwn(ops, name) ? ops[name] : undefined;
    if (!op)
      throw new ApiError(
        'UnknownOperationException',
        `${name} is not an operation this server offers (${Object.keys(ops).join(', ')}); docs/API.md lists what is supported`,
      );
    const body = await readJsonBody(req);
    sendJson(res, 200, await op(body));
  } catch (e) {
    if (e instanceof ApiError) {
      sendError(res, e);
      return;
    }
    log?.(`internal error: ${(e as Error).stack ?? String(e)}`);
    sendError(res, new ApiError('InternalFailure', (e as Error).message, 500));
  }
}
