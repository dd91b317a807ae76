/**
 * What the sidecar learns about the model container from ECS's task metadata endpoint (version 4,
 * `$ECS_CONTAINER_METADATA_URI_V4/task`, which ECS sets in every container on Fargate and EC2).
 *
 * On ECS the model runs in a container of its own that is not essential, so nothing stops the task
 * when it dies: without this the sidecar would poll `/ping` for the whole start-up budget (an hour by
 * default) before failing. The task's metadata lists every container with its `KnownStatus` and,
 * once stopped, its `ExitCode`; a background poll keeps the latest answer so that the health wait and
 * the transform can ask, synchronously, whether the model is gone.
 */

/** How often the metadata is read: a second is soon enough, and the endpoint is local to the task. */
const POLL_INTERVAL_MS = 1000;
/** One read's time limit: the endpoint answers in milliseconds; a slow answer is skipped, not waited for. */
const READ_TIMEOUT_MS = 2000;

interface TaskMetadata {
  readonly Containers?: ReadonlyArray<{
    readonly Name?: string;
    readonly KnownStatus?: string;
    readonly ExitCode?: number;
  }>;
}

export interface ContainerWatch {
  /** Why the container is gone (`container "model" exited with code 1`), undefined while it runs. */
  exited(): string | undefined;
  stop(): void;
}

/**
 * Polls the task metadata for the container named `container` until `stop()`. Reads that fail are
 * ignored (the next one may succeed): the watch can only ever say "gone" from an answer that says so.
 */
export function watchContainer(metadataUri: string, container: string): ContainerWatch {
  let gone: string | undefined;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const read = async () => {
    try {
      const res = await fetch(`${metadataUri.replace(/\/+$/, '')}/task`, {
        signal: AbortSignal.timeout(READ_TIMEOUT_MS),
      });
      if (!res.ok) {
        await res.body?.cancel();
        return;
      }
      gone ??= stoppedReason((await res.json()) as TaskMetadata, container);
    } catch {
      // Unreachable for a moment: keep the last answer.
    }
  };
  const tick = async () => {
    await read();
    if (!stopped && gone === undefined) {
      timer = setTimeout(() => void tick(), POLL_INTERVAL_MS);
      timer.unref();
    }
  };
  void tick();
  return {
    exited: () => gone,
    stop: () => {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

/** `container "model" exited with code 1` when the metadata says it stopped, else undefined. */
export function stoppedReason(task: TaskMetadata, container: string): string | undefined {
  const c = task.Containers?.find((x) => x.Name === container);
  if (c?.KnownStatus !== 'STOPPED') return undefined;
  return `container "${container}" exited${c.ExitCode === undefined ? '' : ` with code ${c.ExitCode}`}`;
}
