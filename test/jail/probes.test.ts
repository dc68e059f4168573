/** Integration: real probes inside real jails (setpriv, bwrap, cgroups), asserted from inside and outside. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isRoot, jailName, probeSpec, runProbe, tempConfig } from './helpers.js';
import { launchJail, teardownJail } from '../../src/jail/index.js';

const FIRST = 231072; // this file's slice of the test range: 231072-231103
const skipUnlessRoot = (t: import('node:test').TestContext): boolean => {
  if (isRoot()) return false;
  t.skip('needs root: uid switch and cgroups');
  return true;
};

test('identity and privileges: leased uid/gid, every capability set empty, no_new_privs', async (t) => {
  if (skipUnlessRoot(t)) return;
  const config = tempConfig(t, FIRST, 8);
  const { exit, out, handle } = await runProbe(t, config, probeSpec(jailName('ids'), 'grep -E "^(Uid|Gid|Groups|Cap[A-Za-z]+|NoNewPrivs):" /proc/self/status'));
  assert.deepEqual(exit, { exitCode: 0 });
  assert.equal(handle.uid, FIRST);
  assert.match(out, new RegExp(`^Uid:\\t${FIRST}\\t${FIRST}\\t${FIRST}\\t${FIRST}$`, 'm'));
  assert.match(out, new RegExp(`^Gid:\\t${FIRST}\\t${FIRST}\\t${FIRST}\\t${FIRST}$`, 'm'));
  assert.match(out, /^Groups:\s*$/m, 'no supplementary groups');
  const caps = out.split('\n').filter((l) => l.startsWith('Cap'));
  assert.deepEqual(caps.map((l) => l.split(':')[0]), ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb']);
  for (const line of caps) assert.match(line, /:\t0{16}$/, line);
  assert.match(out, /^NoNewPrivs:\t1$/m);
});

test('no way back up: nested user namespaces, new namespaces and mounts are all refused inside', async (t) => {
  if (skipUnlessRoot(t)) return;
  const config = tempConfig(t, FIRST + 30, 2);
  const name = jailName('esc');
  const script = 'unshare -U true 2>/dev/null; echo userns=$?; unshare -n true 2>/dev/null; echo netns=$?; mount -t tmpfs x /tmp 2>/dev/null; echo mount=$?; hostname';
  const { exit, out } = await runProbe(t, config, probeSpec(name, script));
  assert.deepEqual(exit, { exitCode: 0 });
  assert.deepEqual(out.split('\n').filter((l) => l !== ''), ['userns=1', 'netns=1', 'mount=1', name]);
});

test('fds: the program sees exactly stdio plus the allowlist, renumbered from 3', async (t) => {
  if (skipUnlessRoot(t)) return;
  const config = tempConfig(t, FIRST + 8, 4);
  const a = join(config.stateDir, '..', 'a.txt');
  const b = join(config.stateDir, '..', 'b.txt');
  writeFileSync(a, 'content of a\n');
  writeFileSync(b, 'content of b\n');
  // Opened in an order that puts them on fds other than 3 and 4 here.
  const spare = openSync('/dev/null', 'r');
  const fb = openSync(b, 'r');
  const fa = openSync(a, 'r');
  t.after(() => { for (const fd of [spare, fa, fb]) closeSync(fd); });
  // ls lists its own fd table; the one fd it opened itself is the /proc/self/fd directory it reads.
  const spec = probeSpec(jailName('fds'), 'cat <&3; cat <&4; exec ls -l /proc/self/fd', {
    fds: [{ name: 'first', target: 3 }, { name: 'second', target: 4 }],
  });
  const { exit, out } = await runProbe(t, config, spec, { fds: new Map([['first', fa], ['second', fb]]) });
  assert.deepEqual(exit, { exitCode: 0 });
  const lines = out.split('\n');
  assert.deepEqual(lines.slice(0, 2), ['content of a', 'content of b']);
  const entries = lines.filter((l) => /^l[rwx-]{9} /.test(l));
  const table = new Map(entries.filter((l) => l.includes(' -> ')).map((l) => {
    const m = / (\d+) -> (.*)$/.exec(l)!;
    return [Number(m[1]), m[2]!] as const;
  }));
  assert.deepEqual([...table.keys()].sort((x, y) => x - y), [0, 1, 2, 3, 4]);
  // ls reads the directory through one more fd and closes it before reading the links: that one shows no target.
  const unlinked = entries.filter((l) => !l.includes(' -> ')).map((l) => Number(/ (\d+)$/.exec(l)?.[1]));
  assert.deepEqual(unlinked, [5], 'the only other entry is ls\'s own, already closed, directory fd');
  assert.equal(table.get(3), a);
  assert.equal(table.get(4), b);
});

test('view: only the binds are visible, /usr is read-only, another jail\'s files are not there', async (t) => {
  if (skipUnlessRoot(t)) return;
  const config = tempConfig(t, FIRST + 12, 4);
  const base = join(config.stateDir, '..');
  chmodSync(base, 0o755); // bwrap runs as the jail's uid: it can bind only what that uid can reach
  for (const j of ['a', 'b']) { mkdirSync(join(base, j)); writeFileSync(join(base, j, `secret-${j}`), j); }
  // Another jail runs meanwhile, with a file in its own /tmp and its own /data.
  const other = jailName('other');
  t.after(() => teardownJail(other, config));
  const otherSpec = probeSpec(other, 'echo a > /tmp/secret-other; exec sleep 30', {
    mounts: [...probeSpec('x', '').mounts, { type: 'ro-bind', source: join(base, 'a'), target: '/data' }],
  });
  const h = await launchJail(otherSpec, { fds: new Map(), config });
  for (const deadline = Date.now() + 30_000; !existsSync(`/proc/${h.pid}/root/tmp/secret-other`) && Date.now() < deadline;) {
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.ok(existsSync(`/proc/${h.pid}/root/tmp/secret-other`), 'the other jail wrote its file');
  const script = [
    'for p in /etc/passwd /root /var /home /sys /run "' + base + '" /data/secret-a /tmp/secret-other; do [ -e "$p" ] && echo "VISIBLE $p"; done',
    'n=$(ls -d /proc/[0-9]* | wc -l); [ "$n" -gt 6 ] && echo "OTHER PROCESSES VISIBLE: $n"',
    'ls /data', 'touch /usr/x 2>/dev/null && echo "USR WRITABLE"', 'echo hi > /tmp/t && cat /tmp/t',
    'ls /dev | tr "\\n" " "',
  ].join('; ');
  const spec = probeSpec(jailName('view'), script, {
    mounts: [...probeSpec('x', '').mounts, { type: 'ro-bind', source: join(base, 'b'), target: '/data' }],
  });
  const { exit, out } = await runProbe(t, config, spec);
  assert.deepEqual(exit, { exitCode: 0 });
  assert.doesNotMatch(out, /VISIBLE|USR WRITABLE/);
  await teardownJail(other, config);
  const lines = out.split('\n');
  assert.equal(lines[0], 'secret-b');
  assert.equal(lines[1], 'hi');
  assert.equal(lines[2]!.trim(), 'fd full null random stderr stdin stdout urandom zero', 'only the base device nodes');
});

test('network: a new namespace holds only lo', async (t) => {
  if (skipUnlessRoot(t)) return;
  const config = tempConfig(t, FIRST + 16, 4);
  const { exit, out } = await runProbe(t, config, probeSpec(jailName('net'), 'tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " "'));
  assert.deepEqual(exit, { exitCode: 0 });
  assert.deepEqual(out.split('\n').filter((l) => l !== ''), ['lo']);
});

test('environment, working directory and rlimits are exactly the spec\'s', async (t) => {
  if (skipUnlessRoot(t)) return;
  const config = tempConfig(t, FIRST + 20, 4);
  const spec = probeSpec(jailName('env'), 'env | sort | tr "\\n" " "; echo; pwd; ulimit -n; ulimit -c; ulimit -f', {
    env: { PATH: '/usr/bin', ONLY: 'this' }, cwd: '/usr/share', rlimits: { nofile: 64, core: 0, fsize: 2048 },
  });
  const { exit, out } = await runProbe(t, config, spec);
  assert.deepEqual(exit, { exitCode: 0 });
  const [envLine, cwd, nofile, core, fsize] = out.split('\n');
  // busybox sh adds PWD (and SHLVL) itself; nothing comes from the manager's environment.
  const vars = envLine!.trim().split(' ').filter((v) => !/^(PWD|SHLVL|OLDPWD)=/.test(v));
  assert.deepEqual(vars, ['ONLY=this', 'PATH=/usr/bin']);
  assert.equal(cwd, '/usr/share');
  assert.equal(nofile, '64');
  assert.equal(core, '0');
  assert.equal(fsize, '4', 'ulimit -f counts 512-byte blocks: 2048 bytes');
});

test('memory limit bites: an allocation past it is OOM-killed, one below it is not', async (t) => {
  if (skipUnlessRoot(t)) return;
  const config = tempConfig(t, FIRST + 24, 4);
  const name = jailName('oom');
  const spec = probeSpec(name, 'dd if=/dev/zero of=/dev/null bs=8M count=1 2>/dev/null && echo small-ok; dd if=/dev/zero of=/dev/null bs=96M count=1 2>/dev/null; echo big-rc=$?', {
    cgroup: { name, memoryBytes: 48 << 20, pids: 16 },
  });
  let oomKills = -1;
  const { exit, out } = await runProbe(t, config, spec, {
    inspect: (h) => {
      const mem = h.cgroupPaths.find((p) => p.includes('/memory/')) ?? h.cgroupPaths[0]!;
      const ctl = readFileSync(join(mem, mem.includes('/memory/') ? 'memory.oom_control' : 'memory.events'), 'utf8');
      oomKills = Number(/oom_kill (\d+)/.exec(ctl)?.[1] ?? -1);
    },
  });
  assert.deepEqual(exit, { exitCode: 0 });
  assert.match(out, /^small-ok$/m);
  assert.match(out, /^big-rc=137$/m, 'SIGKILLed by the OOM killer');
  assert.ok(oomKills >= 1, `the cgroup counted an OOM kill (${oomKills})`);
});

test('pids limit bites: a fork loop stops at pids.max', async (t) => {
  if (skipUnlessRoot(t)) return;
  const config = tempConfig(t, FIRST + 28, 2);
  const name = jailName('pids');
  // 20 background sleeps against a limit of 10 tasks (monitor, init and the shell count too).
  const spec = probeSpec(name, 'n=0; i=0; while [ $i -lt 20 ]; do if sleep 30 2>/dev/null & then n=$((n+1)); fi; i=$((i+1)); done; echo tried=$i; kill $(jobs -p) 2>/dev/null; exit 0', {
    cgroup: { name, pids: 10, memoryBytes: 128 << 20 },
  });
  let events = '';
  const { out } = await runProbe(t, config, spec, {
    inspect: (h) => {
      const pids = h.cgroupPaths.find((p) => p.includes('/pids/')) ?? h.cgroupPaths[0]!;
      events = readFileSync(join(pids, 'pids.events'), 'utf8');
    },
  });
  assert.match(out, /can't fork|Resource temporarily unavailable/i, 'the shell saw fork fail');
  const max = Number(/max (\d+)/.exec(events)?.[1] ?? 0);
  assert.ok(max >= 1, `pids.events counts refused forks: ${events.trim()}`);
});
