/**
 * @module test/shim/image: a VM image for ctr built from a directory, no registry: the
 * directory becomes one uncompressed layer of an OCI image layout, tarred and given to
 * `ctr image import`. The directory holds /warden/vm.yaml, the test guest's kernel and
 * initramfs, and a small qcow2 disk.
 */
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureTestGuest } from '../../src/vm/index.js';

function sh(argv: string[]): void {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${argv.join(' ')} failed: ${r.stderr}`);
}

/** The VM directory: what a user would put into a VM image (the spec uses rootfs paths). */
export function vmRootfs(dir: string, cmdlineExtra = ''): string {
  const g = ensureTestGuest();
  mkdirSync(join(dir, 'warden'), { recursive: true });
  mkdirSync(join(dir, 'boot'));
  mkdirSync(join(dir, 'disk'));
  copyFileSync(g.kernel, join(dir, 'boot', 'vmlinuz'));
  copyFileSync(g.initrd, join(dir, 'boot', 'initramfs.gz'));
  sh(['qemu-img', 'create', '-q', '-f', 'qcow2', join(dir, 'disk', 'root.qcow2'), '64M']);
  writeFileSync(join(dir, 'warden', 'vm.yaml'), [
    'apiVersion: warden/v1',
    'name: guest',
    'memory: 256Mi',
    'accel: tcg',
    'boot:',
    '  kernel: /boot/vmlinuz',
    '  initrd: boot/initramfs.gz # relative: inside the rootfs too',
    `  cmdline: "${g.cmdline}${cmdlineExtra}"`,
    'disks:',
    '  - name: root',
    '    image: /disk/root.qcow2',
    '    format: qcow2',
    '',
  ].join('\n'));
  return dir;
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Imports `rootfs` as image `ref` into the containerd that `ctr` talks to; returns ref. */
export function importImage(ctr: (args: string[]) => unknown, rootfs: string, ref: string): string {
  const work = mkdtempSync(join(tmpdir(), 'wsh-img-'));
  try {
    const blobs = join(work, 'oci', 'blobs', 'sha256');
    mkdirSync(blobs, { recursive: true });
    const layerTar = join(work, 'layer.tar');
    sh(['tar', '--numeric-owner', '--owner=0', '--group=0', '-C', rootfs, '-cf', layerTar, '.']);
    const layer = readFileSync(layerTar);
    const put = (b: Buffer): { digest: string; size: number } => {
      const d = sha(b);
      writeFileSync(join(blobs, d), b);
      return { digest: `sha256:${d}`, size: b.length };
    };
    const l = put(layer);
    const config = put(Buffer.from(JSON.stringify({
      architecture: 'amd64', os: 'linux', config: { Cmd: ['/warden/vm.yaml'], Labels: { 'io.warden.vm': 'true' } },
      rootfs: { type: 'layers', diff_ids: [l.digest] },
    })));
    const manifest = put(Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...l }],
    })));
    writeFileSync(join(work, 'oci', 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    writeFileSync(join(work, 'oci', 'index.json'), JSON.stringify({
      schemaVersion: 2,
      manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest,
        annotations: { 'io.containerd.image.name': ref, 'org.opencontainers.image.ref.name': ref.split(':').pop() } }],
    }));
    const tar = join(work, 'image.tar');
    sh(['tar', '-C', join(work, 'oci'), '-cf', tar, '.']);
    ctr(['image', 'import', tar]);
    return ref;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
