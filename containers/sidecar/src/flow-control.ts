/**
 * What bounds a partition's work: invocation slots (MaxConcurrentTransforms requests in flight) and
 * the memory budget (bytes of mini-batches packed and not yet written). Both are shared by every
 * object the partition has open, so the slots stay busy across objects while memory stays within
 * 2 × MaxConcurrentTransforms × MaxPayloadInMB, whatever the objects' sizes.
 */

/**
 * Waiters served by rank, lowest first, and in arrival order within a rank. The partition ranks a
 * waiter by the order its object was opened in, so the oldest open object goes first: it finishes
 * packing sooner and hands its place to the next object while the others still have mini-batches
 * to pack. Served round-robin instead, objects opened together run in step and finish packing
 * together, and the slots then wait while the next objects open (a GET's first byte).
 */
class RankedQueue<T> {
  private readonly items: Array<{ rank: number; value: T }> = [];
  get length(): number {
    return this.items.length;
  }
  push(value: T, rank: number): void {
    let i = this.items.length;
    while (i > 0 && this.items[i - 1]!.rank > rank) i--;
    this.items.splice(i, 0, { rank, value });
  }
  peek(): T | undefined {
    return this.items[0]?.value;
  }
  shift(): T | undefined {
    return this.items.shift()?.value;
  }
}

/** A counting semaphore: at most `n` holders at once; waiters by rank, then in order. */
export class Semaphore {
  private waiters = new RankedQueue<() => void>();
  #held = 0;
  #peak = 0;
  constructor(private free: number) {}
  /** Holders now, and the most there ever were at once. */
  get held(): number {
    return this.#held;
  }
  get peak(): number {
    return this.#peak;
  }
  async acquire(rank = 0): Promise<void> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((resolve) => this.waiters.push(resolve, rank));
    this.#held++;
    if (this.#held > this.#peak) this.#peak = this.#held;
  }
  release(): void {
    this.#held--;
    const next = this.waiters.shift();
    if (next) next();
    else this.free++;
  }
}

/**
 * Bytes held by mini-batches from the moment the packer is asked for them until their output is
 * written: a body and its response. `acquire` waits until the bytes fit (or nothing is held, so one
 * mini-batch larger than the whole budget still goes through, alone); `take` counts bytes that are
 * already in memory (a response larger than its reservation) without waiting, which holds back the
 * next `acquire` until enough is released. Waiters are served in order.
 */
export class MemoryBudget {
  #used = 0;
  #peak = 0;
  private readonly waiters = new RankedQueue<{ bytes: number; resolve: () => void }>();
  constructor(readonly limit: number) {}

  get used(): number {
    return this.#used;
  }
  /** The most ever held at once (acquired and taken). */
  get peak(): number {
    return this.#peak;
  }

  async acquire(bytes: number, rank = 0): Promise<void> {
    if (this.waiters.length === 0 && this.fits(bytes)) {
      this.add(bytes);
      return;
    }
    await new Promise<void>((resolve) => this.waiters.push({ bytes, resolve }, rank));
  }

  take(bytes: number): void {
    this.add(bytes);
  }

  release(bytes: number): void {
    this.#used -= bytes;
    while (this.waiters.length > 0 && this.fits(this.waiters.peek()!.bytes)) {
      const next = this.waiters.shift()!;
      this.add(next.bytes);
      next.resolve();
    }
  }

  private fits(bytes: number): boolean {
    return this.#used === 0 || this.#used + bytes <= this.limit;
  }

  private add(bytes: number): void {
    this.#used += bytes;
    if (this.#used > this.#peak) this.#peak = this.#used;
  }
}

/** A count that goes up and down, with the most it ever was. */
export class Gauge {
  #now = 0;
  #peak = 0;
  get now(): number {
    return this.#now;
  }
  get peak(): number {
    return this.#peak;
  }
  add(n: number): void {
    this.#now += n;
    if (this.#now > this.#peak) this.#peak = this.#now;
  }
}

/** The flow control one partition's objects share. */
export interface PartitionFlow {
  /** MaxConcurrentTransforms invocation slots. */
  readonly slots: Semaphore;
  /** 2 × MaxConcurrentTransforms × MaxPayloadInMB: mini-batches packed and not yet written. */
  readonly budget: MemoryBudget;
  /** The largest body the packer makes (MaxPayloadInMB in bytes): what one read-ahead reserves. */
  readonly payloadBytes: number;
  /** Objects open at once. */
  readonly objects: number;
  /**
   * Objects larger than one mini-batch being packed at once: ceil(MCT / 2). Each has an upload whose
   * part buffers (the S3 writer's, on S3) sit outside the budget, so many small objects may be open but
   * only a few large ones; a large object has mini-batches enough to keep slots busy by itself. A
   * permit is handed back when the object's last mini-batch is packed, so the next object opens while
   * the last answers and the completion of the output are under way.
   */
  readonly largeObjects: Semaphore;
  /** Mini-batches packed and not yet written (or given up), in all objects. */
  readonly packed: Gauge;
}

/**
 * The flow control of one partition. MaxConcurrentTransforms invocation slots; a memory budget of
 * 2 × MaxConcurrentTransforms × MaxPayloadInMB (MiB) for mini-batches packed and not yet written, a
 * body and its response each (the formula docs/PERFORMANCE.md holds the sidecar's peak RSS to); and
 * up to 2 × MaxConcurrentTransforms objects open at once (ceil(MCT / 2) of them larger than one
 * mini-batch), so that while one object opens, waits for its last output or completes its upload,
 * others have mini-batches packed and waiting for a slot.
 */
export function partitionFlow(o: { maxConcurrentTransforms: number; payloadBytes: number }): PartitionFlow {
  const mct = o.maxConcurrentTransforms;
  return {
    slots: new Semaphore(mct),
    budget: new MemoryBudget(2 * mct * o.payloadBytes),
    payloadBytes: o.payloadBytes,
    objects: 2 * mct,
    largeObjects: new Semaphore(Math.ceil(mct / 2)),
    packed: new Gauge(),
  };
}
