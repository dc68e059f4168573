import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deriveVm, inRootfs, specSource, type OciConfig } from './bundle.js';

const SPEC = `apiVersion: warden/v1
name: guest
cpus: 4
memory: 1Gi
boot:
  kernel: /boot/vmlinuz
  initrd: boot/initrd.gz
disks:
  - name: root
    image: /disk/root.qcow2
    format: qcow2
  - name: seed
    image: ../../seed.iso
    format: raw
    media: cdrom
`;

const base = { specText: SPEC, specOrigin: '/b/rootfs/warden/vm.yaml', rootfs: '/b/rootfs', workDir: '/w', vmName: 'c-x-12345678' };

test('spec paths, absolute or relative, resolve inside the rootfs and cannot climb out of it', () => {
  assert.equal(inRootfs('/r', '/boot/k'), '/r/boot/k');
  assert.equal(inRootfs('/r', 'boot/k'), '/r/boot/k');
  assert.equal(inRootfs('/r', '../../etc/shadow'), '/r/etc/shadow');
  const d = deriveVm({ ...base, oci: {} });
  assert.equal(d.spec['name'], 'c-x-12345678');
  assert.deepEqual(d.spec['boot'], { kernel: '/b/rootfs/boot/vmlinuz', initrd: '/b/rootfs/boot/initrd.gz' });
  assert.deepEqual(d.rootedPaths, ['/b/rootfs/boot/vmlinuz', '/b/rootfs/boot/initrd.gz', '/b/rootfs/disk/root.qcow2', '/b/rootfs/seed.iso']);
});

test('a writable disk gets a qcow2 overlay in the work dir over the rootfs image; a cdrom is used as is; chains may lead only inside the rootfs', () => {
  const d = deriveVm({ ...base, oci: {} });
  assert.deepEqual(d.overlays, [{ disk: 'root', base: '/b/rootfs/disk/root.qcow2', baseFormat: 'qcow2', path: '/w/disk-root.qcow2' }]);
  assert.deepEqual(d.spec['disks'], [
    { name: 'root', image: '/w/disk-root.qcow2', format: 'qcow2', allowDirs: ['/b/rootfs'] },
    { name: 'seed', image: '/b/rootfs/seed.iso', format: 'raw', media: 'cdrom', allowDirs: ['/b/rootfs'] },
  ]);
});

test('OCI linux.resources lower memory and vCPUs, never raise them; a netns path is reported', () => {
  const oci: OciConfig = { linux: { resources: { memory: { limit: 300 * 2 ** 20 + 5 }, cpu: { quota: 150_000, period: 100_000 } },
    namespaces: [{ type: 'pid' }, { type: 'network', path: '/var/run/netns/cni-1' }] } };
  const d = deriveVm({ ...base, oci });
  assert.equal(d.spec['memory'], 300 * 2 ** 20);
  assert.equal(d.spec['cpus'], 2);
  assert.equal(d.netns, '/var/run/netns/cni-1');
  assert.equal(d.notes.length, 2);
  const roomy = deriveVm({ ...base, oci: { linux: { resources: { memory: { limit: 8 * 2 ** 30 }, cpu: { quota: 800_000 } }, namespaces: [{ type: 'network' }] } } });
  assert.equal(roomy.spec['memory'], '1Gi');
  assert.equal(roomy.spec['cpus'], 4);
  assert.equal(roomy.netns, undefined, 'a new (empty) netns is not a pod\'s');
});

test('the spec comes from the annotation (inline or a rootfs path), else /warden/vm.yaml', () => {
  assert.deepEqual(specSource({}), { kind: 'file', path: '/warden/vm.yaml' });
  assert.deepEqual(specSource({ annotations: { 'io.warden.spec': '/vms/a.yaml' } }), { kind: 'file', path: '/vms/a.yaml' });
  assert.equal(specSource({ annotations: { 'io.warden.spec': '{"apiVersion":"warden/v1"}' } }).kind, 'inline');
  assert.equal(specSource({ annotations: { 'io.warden.spec': 'apiVersion: warden/v1\nname: x\n' } }).kind, 'inline');
});

test('a bad spec fails with every issue located in its origin, before anything is made', () => {
  assert.throws(() => deriveVm({ ...base, oci: {}, specText: 'apiVersion: warden/v1\nname: x\nmemory: lots\ncpus: 0\n' }), (e: { code?: string; message: string }) => {
    assert.equal(e.code, 'SPEC_INVALID');
    assert.match(e.message, /vm\.yaml:3/);
    assert.match(e.message, /cpus/);
    return true;
  });
});

test('the spec\'s own restart policy is dropped: the scheduler above containerd restarts tasks', () => {
  const d = deriveVm({ ...base, oci: {}, specText: `${SPEC}restart: always\n` });
  assert.equal('restart' in d.spec, false);
  assert.match(d.notes.join('\n'), /restart policy is ignored/);
});
