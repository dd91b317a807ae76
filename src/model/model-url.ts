/**
 * Why `url` cannot be a model server's address, or undefined when it can: the sidecar speaks plain
 * HTTP/1.1 to the model (SageMaker's contract, on the task's loopback), at the root of the server.
 */
export function modelUrlProblem(url: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return `"${url}" is not a URL; expected http://host:port`;
  }
  if (parsed.protocol !== 'http:') {
    return `"${url}" is not http://host:port: the model is reached over plain HTTP/1.1, as SageMaker reaches it`;
  }
  if (parsed.pathname.replace(/\/+$/, '') !== '' || parsed.search || parsed.hash || parsed.username) {
    return `"${url}" must be only http://host:port: the model answers /ping and /invocations at its root`;
  }
  return undefined;
}
