import { open, rm } from 'node:fs/promises';
import { ownCpuSeconds } from './proc';

/**
 * What reading the input and writing the output cost on this machine, with nothing else: the file
 * read in 256 KiB reads into reused buffers (as the sidecar reads file:// input) and written back in
 * one `writev` per `batchBytes` (as it writes a mini-batch's output). The pipeline pays this on top
 * of the HTTP round trips the echo ceiling measures, so with both cores busy its best ratio to the
 * ceiling is (client + model) / (client + model + this): `pipelineRatioBound` in the report.
 */
export async function fileCopyCpu(o: { input: string; output: string; batchBytes: number }): Promise<{
  bytes: number;
  cpuSeconds: number;
}> {
  const CHUNK = 256 * 1024;
  const perBatch = Math.max(1, Math.round(o.batchBytes / CHUNK));
  const ring = Array.from({ length: perBatch }, () => Buffer.allocUnsafeSlow(CHUNK));
  const cpu = ownCpuSeconds();
  const src = await open(o.input, 'r');
  const dst = await open(o.output, 'w');
  let bytes = 0;
  try {
    for (;;) {
      const parts: Buffer[] = [];
      for (const buffer of ring) {
        const { bytesRead } = await src.read(buffer, 0, CHUNK, bytes);
        if (bytesRead === 0) break;
        bytes += bytesRead;
        parts.push(buffer.subarray(0, bytesRead));
      }
      if (parts.length === 0) break;
      await dst.writev(parts);
    }
  } finally {
    await src.close();
    await dst.close();
  }
  const cpuSeconds = ownCpuSeconds() - cpu;
  await rm(o.output, { force: true });
  return { bytes, cpuSeconds };
}
