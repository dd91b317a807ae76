import { beforeAll, describe, expect, it } from 'vitest';
import { docker, dockerAvailable } from './ecs-runner';
import { IMAGES } from './images';

/**
 * The sidecar image as containers/sidecar/Dockerfile builds it: `FROM scratch` with node, its shared
 * libraries, the user database and the bundle. That fetch-model and the sidecar still do their work
 * in it, run as ECS runs them, is e2e.test.ts's part; these cases hold what the image is.
 */

/** The ceiling on the image's size, in MB as `docker image ls` counts them (10⁶ bytes). */
const MAX_IMAGE_MB = 150;

/** Runs a script with the image's node, as ECS runs the image: read-only root, the image's user. */
function nodeInImage(script: string, dockerArgs: readonly string[] = []) {
  return docker([
    'run',
    '--rm',
    '--read-only',
    ...dockerArgs,
    '--entrypoint',
    'node',
    IMAGES.sidecar,
    '-e',
    script,
  ]);
}

/** The JSON the last line of a script's output holds, or the run's failure. */
function lastLine(r: { code: number; stdout: string; stderr: string }): unknown {
  if (r.code !== 0) throw new Error(`exit ${r.code}: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!);
}

beforeAll(async () => {
  if (!(await dockerAvailable()))
    throw new Error('no Docker engine answers: run `bash test/containers/setup.sh` (as root) first');
});

describe('the sidecar image', () => {
  it(`is at most ${MAX_IMAGE_MB} MB`, async () => {
    const r = await docker(['image', 'inspect', '--format', '{{.Size}}', IMAGES.sidecar]);
    expect(r.code, r.stderr).toBe(0);
    const mb = Number(r.stdout.trim()) / 1e6;
    console.info(`${IMAGES.sidecar}: ${mb.toFixed(1)} MB`);
    expect(mb).toBeLessThanOrEqual(MAX_IMAGE_MB);
  });

  it('has no shell: it holds only node, its shared libraries, the user database and the bundle', async () => {
    const sh = await docker(['run', '--rm', '--entrypoint', 'sh', IMAGES.sidecar, '-c', 'true']);
    expect(sh.code).not.toBe(0);
    expect(sh.stderr).toMatch(/executable file not found/);

    const files = lastLine(
      await nodeInImage(`
        const { readdirSync } = require('fs');
        const files = [];
        const walk = (dir) => {
          for (const e of readdirSync(dir, { withFileTypes: true })) {
            const p = (dir === '/' ? '' : dir) + '/' + e.name;
            if (['/proc', '/sys', '/dev'].includes(p)) continue;
            if (e.isDirectory()) walk(p);
            else files.push(p);
          }
        };
        walk('/');
        console.log(JSON.stringify(files));
      `),
    ) as string[];
    const allowed = [
      /^\/usr\/local\/bin\/node$/,
      /^(\/usr)?\/lib[^/]*\/([^/]+\/)?[^/]+\.so(\.\d+)*$/,
      /^\/etc\/(passwd|group|nsswitch\.conf)$/,
      /^\/opt\/sidecar\/(chunks\/)?[\w-]+\.mjs(\.map)?$/,
      // What the engine adds to every container.
      /^\/(\.dockerenv|etc\/(hosts|hostname|resolv\.conf|mtab))$/,
    ];
    expect(files.filter((f) => !allowed.some((a) => a.test(f)))).toEqual([]);
    expect(files).toEqual(expect.arrayContaining(['/usr/local/bin/node', '/opt/sidecar/sidecar.mjs']));
  });

  it('runs as node (uid 1000) and gives its volumes /opt/ml/model owned by node (0755) and /tmp (1777)', async () => {
    const r = await docker(['image', 'inspect', '--format', '{{json .Config}}', IMAGES.sidecar]);
    expect(r.code, r.stderr).toBe(0);
    const config = JSON.parse(r.stdout) as { User: string; Volumes: Record<string, unknown> };
    expect(config.User).toBe('node');
    expect(Object.keys(config.Volumes).sort()).toEqual(['/opt/ml/model', '/tmp']);

    const seen = lastLine(
      await nodeInImage(`
        const { statSync } = require('fs');
        const dir = (p) => { const s = statSync(p); return { uid: s.uid, gid: s.gid, mode: (s.mode & 0o7777).toString(8) }; };
        const { uid, gid, username } = require('os').userInfo();
        console.log(JSON.stringify({ user: { uid, gid, username }, model: dir('/opt/ml/model'), tmp: dir('/tmp') }));
      `),
    );
    expect(seen).toEqual({
      user: { uid: 1000, gid: 1000, username: 'node' },
      model: { uid: 1000, gid: 1000, mode: '755' },
      tmp: { uid: 0, gid: 0, mode: '1777' },
    });
  });

  it('resolves host names through /etc/hosts and through DNS (glibc’s built-in name services)', async () => {
    // A one-answer DNS server inside the container, the resolver /etc/resolv.conf names: every A
    // query gets 10.1.2.3. dns.lookup is getaddrinfo, through /etc/nsswitch.conf.
    const seen = lastLine(
      await nodeInImage(
        `
        const dgram = require('dgram');
        const dns = require('dns');
        const server = dgram.createSocket('udp4');
        server.on('message', (q, from) => {
          let i = 12;
          while (q[i] !== 0) i += q[i] + 1;
          const type = q.readUInt16BE(i + 1);
          const header = Buffer.from(q.subarray(0, 12));
          header.writeUInt16BE(0x8180, 2);
          header.writeUInt16BE(1, 4);
          header.writeUInt16BE(type === 1 ? 1 : 0, 6);
          header.writeUInt32BE(0, 8);
          const answer = type === 1 ? Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 1, 2, 3]) : Buffer.alloc(0);
          server.send(Buffer.concat([header, q.subarray(12, i + 5), answer]), from.port, from.address);
        });
        server.bind(53, '127.0.0.1', async () => {
          const lookup = async (host) => (await dns.promises.lookup(host, { family: 4 })).address;
          console.log(JSON.stringify({ dns: await lookup('s3.example.test'), files: await lookup('model.example.test') }));
          server.close();
        });
      `,
        ['--dns', '127.0.0.1', '--add-host', 'model.example.test:10.9.8.7'],
      ),
    );
    expect(seen).toEqual({ dns: '10.1.2.3', files: '10.9.8.7' });
  });

  it('speaks TLS and trusts the roots S3’s certificates chain to without a system CA bundle', async () => {
    // Node's own OpenSSL and Mozilla store: Amazon Root CA 1 signs S3's chain (Starfield cross-signs
    // it for old clients). A TLS handshake (pre-shared key: no certificate to make) shows OpenSSL
    // needs no file of the image.
    const seen = lastLine(
      await nodeInImage(`
        const tls = require('tls');
        const { X509Certificate } = require('crypto');
        const roots = tls.rootCertificates.map((pem) => new X509Certificate(pem).subject);
        const key = Buffer.alloc(32, 7);
        const options = { ciphers: 'PSK-AES128-GCM-SHA256', maxVersion: 'TLSv1.2' };
        const server = tls.createServer({ ...options, pskCallback: () => key }, (s) => s.end('over tls'));
        server.listen(0, '127.0.0.1', () => {
          const socket = tls.connect({ ...options, port: server.address().port, host: '127.0.0.1', checkServerIdentity: () => undefined, pskCallback: () => ({ psk: key, identity: 'sidecar' }) });
          let got = '';
          socket.on('data', (d) => { got += d; });
          socket.on('end', () => {
            console.log(JSON.stringify({
              amazonRoots: roots.filter((s) => /CN=(Amazon Root CA \\d|Starfield Services Root)/.test(s)).length,
              got,
              protocol: socket.getProtocol(),
            }));
            server.close();
          });
        });
      `),
    ) as { amazonRoots: number; got: string; protocol: string };
    expect(seen.amazonRoots).toBeGreaterThanOrEqual(4);
    expect(seen.got).toBe('over tls');
    expect(seen.protocol).toBe('TLSv1.2');
  });
});
