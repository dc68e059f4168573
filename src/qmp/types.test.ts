import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** Lines ending in `// ERR` must each fail to compile; every other line must compile. */
const fixture = (index: string) => `import type { QmpClient, QmpEvent } from '${index}';
declare const c: QmpClient;
export async function good(): Promise<void> {
  const s = await c.execute('query-status');
  const state: 'running' | 'paused' | 'prelaunch' | string = s.status;
  await c.execute('stop');
  await c.execute('blockdev-add', { driver: 'file', filename: '/dev/fdset/1', 'node-name': 'n', 'read-only': true });
  await c.execute('blockdev-add', { driver: 'qcow2', 'node-name': 'q', file: 'n', backing: null });
  await c.execute('device_add', { driver: 'scsi-hd', drive: 'n', id: 'd', 'logical_block_size': 4096 });
  const added = await c.execute('add-fd', { opaque: 'x' }, { fds: [3], timeoutMs: 100 });
  const set: number = added['fdset-id'];
  const sub = c.events(['DEVICE_DELETED', 'STOP']);
  const e = await sub.next();
  if (e.event === 'DEVICE_DELETED') { const d: string | undefined = e.data.device; void d; }
  const all: QmpEvent = await c.events().next();
  await c.execute('query-yank', undefined, { oob: true });
  void state; void set; void all;
}
export async function bad(): Promise<void> {
  await c.execute('query-stauts'); // ERR
  await c.execute('blockdev-add', { driver: 'file', 'node-name': 'n' }); // ERR
  await c.execute('blockdev-add', { driver: 'nope', filename: 'f' }); // ERR
  await c.execute('device_del'); // ERR
  await c.execute('device_del', { id: 1 }); // ERR
  await c.execute('query-status', { verbose: true }); // ERR
  const s = await c.execute('query-status'); const n: number = s.status; void n; // ERR
  c.events(['NOT_AN_EVENT']); // ERR
  await c.execute('add-fd', {}, { fds: 'x' }); // ERR
  await c.execute('device_add', { bus: 'pci.0' }); // ERR
  await c.execute('query-status', undefined, { oob: true }); // ERR
}
`;

test('a mistyped call fails to compile, a well-typed one compiles (tsc on a fixture)', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'warden-qmp-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'fixture.mts');
  const text = fixture(join(root, 'src', 'qmp', 'index.js'));
  writeFileSync(file, text);
  const program = ts.createProgram([file], {
    target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext,
    strict: true, exactOptionalPropertyTypes: true, noEmit: true, skipLibCheck: true, types: ['node'],
    typeRoots: [join(root, 'node_modules', '@types')],
  });
  const diags = ts.getPreEmitDiagnostics(program).filter((d) => d.file?.fileName === file);
  const errLines = new Set(diags.map((d) => d.file!.getLineAndCharacterOfPosition(d.start!).line));
  const lines = text.split('\n');
  const expected = new Set(lines.flatMap((l, i) => (l.endsWith('// ERR') ? [i] : [])));
  assert.equal(expected.size, 11);
  const unexpected = diags.filter((d) => !expected.has(d.file!.getLineAndCharacterOfPosition(d.start!).line));
  assert.deepEqual(unexpected.map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n')), [], 'good lines compile');
  for (const i of expected) assert.ok(errLines.has(i), `line ${i + 1} should fail to compile: ${lines[i]}`);
});
