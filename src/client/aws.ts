import { CloudFormationClient } from '@aws-sdk/client-cloudformation';
import { SFNClient } from '@aws-sdk/client-sfn';

/**
 * The client's one boundary with AWS: anything with the SDK v3 clients' `send(command)`. The real
 * SFNClient and CloudFormationClient fit it; tests pass a fake that records the commands and answers
 * with SDK-shaped responses.
 */
export interface CommandSender {
  // biome-ignore lint/suspicious/noExplicitAny: every SDK v3 client's overloaded send() must fit; call sites type the output.
  send(command: any): Promise<any>;
}

/** The control-plane clients the client uses: Step Functions for jobs, CloudFormation for the stack's outputs. */
export interface AwsClients {
  readonly sfn?: CommandSender;
  readonly cloudFormation?: CommandSender;
}

/** How to reach AWS. Both default to the SDK's own chain (AWS_REGION, AWS_PROFILE, ~/.aws/config). */
export interface AwsConnection {
  readonly region?: string;
  readonly profile?: string;
}

/** A client built here, so `close()` can release its sockets. */
export interface OwnedClient extends CommandSender {
  destroy(): void;
}

export function createSfnClient(c: AwsConnection): OwnedClient {
  return new SFNClient(sdkConfig(c));
}

export function createCloudFormationClient(c: AwsConnection): OwnedClient {
  return new CloudFormationClient(sdkConfig(c));
}

export function sdkConfig(c: AwsConnection): { region?: string; profile?: string } {
  return { ...(c.region ? { region: c.region } : {}), ...(c.profile ? { profile: c.profile } : {}) };
}

/** What went wrong, for programs that branch on it; `message` is a sentence for people. */
export type BatchTransformErrorKind =
  /** No state machine could be found: no stack, no stack output, no ARN given. */
  | 'NoDeployment'
  /** No job of that name. */
  | 'NotFound'
  /** `transform()` with a TransformJobName that was used before. */
  | 'AlreadyExists'
  /** `stop()` of a job that already ended. */
  | 'NotInProgress'
  /** A filter or option outside its range. */
  | 'InvalidArgument'
  /** AWS refused or could not be reached (credentials, permissions, network). */
  | 'Aws';

export class BatchTransformError extends Error {
  override readonly name = 'BatchTransformError';
  constructor(
    readonly kind: BatchTransformErrorKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The SDK's error name (`ExecutionDoesNotExist`, `ValidationError`, …), or undefined. */
export function awsErrorName(e: unknown): string | undefined {
  return e instanceof Error ? e.name : undefined;
}

const REFUSED =
  /^(AccessDenied|AccessDeniedException|UnrecognizedClientException|InvalidClientTokenId|ExpiredToken|ExpiredTokenException|InvalidSignatureException|SignatureDoesNotMatch)$/;
const NETWORK = /^(ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|EHOSTUNREACH)$/;

/**
 * Turns an SDK failure into one sentence that says what was being done and what to change. `doing`
 * reads like "starting job "x"".
 */
export function awsFailure(e: unknown, doing: string): BatchTransformError {
  if (e instanceof BatchTransformError) return e;
  const err = e as Error & { code?: string; $metadata?: unknown };
  const name = awsErrorName(e) ?? 'Error';
  const message = err?.message ?? String(e);
  if (name === 'CredentialsProviderError' || /Could not load credentials/i.test(message)) {
    return new BatchTransformError(
      'Aws',
      `${doing}: no AWS credentials found; configure a profile (aws configure, then --profile or AWS_PROFILE) or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY`,
      { cause: e },
    );
  }
  // An empty AWS_REGION reaches the SDK as region "" and is refused as a hostname, not as missing.
  if (/Region is missing|region="" is not/i.test(message)) {
    return new BatchTransformError(
      'Aws',
      `${doing}: no AWS region configured; pass --region (or the region option) or set AWS_REGION`,
      { cause: e },
    );
  }
  if (/Region not accepted/i.test(message)) {
    return new BatchTransformError('Aws', `${doing}: the AWS region is not valid (${message})`, { cause: e });
  }
  if (REFUSED.test(name)) {
    return new BatchTransformError('Aws', `${doing}: AWS refused the request (${name}: ${message})`, {
      cause: e,
    });
  }
  if (err?.code && NETWORK.test(err.code)) {
    return new BatchTransformError('Aws', `${doing}: cannot reach AWS (${err.code}: ${message})`, {
      cause: e,
    });
  }
  return new BatchTransformError('Aws', `${doing} failed: ${name}: ${message}`, { cause: e });
}
