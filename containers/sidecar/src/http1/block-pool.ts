/** Fixed-size Buffers handed out and taken back, so response bytes land in memory already owned. */
export class BlockPool {
  readonly #free: Buffer[] = [];
  constructor(
    readonly blockSize = 256 * 1024,
    /** Free blocks kept at most; more are left to the garbage collector. */
    readonly maxFree = 256,
  ) {}

  take(): Buffer {
    return this.#free.pop() ?? Buffer.allocUnsafeSlow(this.blockSize);
  }

  give(blocks: readonly Buffer[]): void {
    for (const b of blocks) {
      if (this.#free.length >= this.maxFree) return;
      if (b.length === this.blockSize) this.#free.push(b);
    }
  }

  /** Blocks waiting to be reused. */
  get free(): number {
    return this.#free.length;
  }
}
