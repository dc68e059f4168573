/** COMMAND_REGISTRARS: a run that names its command builds only it, and that command is the one the whole program has. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Command } from 'commander';
import { buildProgram } from '../main.js';
import type { Io } from '../output.js';
import { COMMAND_REGISTRARS, registrars, registrarsFor, type Registrar } from './index.js';

const quiet: Io = { out() { /* unused */ }, err() { /* unused */ } };

function namesOf(r: Registrar): string[] {
  const p = new Command('warden');
  r(p, quiet);
  return p.commands.flatMap((c) => [c.name(), ...c.aliases()]);
}

/** Every command under `c` with its help text, by its path. */
function helpTree(c: Command, path = ''): Map<string, string> {
  const out = new Map<string, string>([[path, c.helpInformation()]]);
  for (const sub of c.commands) for (const [k, v] of helpTree(sub, `${path} ${sub.name()}`)) out.set(k, v);
  return out;
}

test('the table names, for each command and alias in it, exactly the registrars that define it, in registrars order', () => {
  const expected: Record<string, Registrar[]> = {};
  for (const r of registrars) for (const name of namesOf(r)) (expected[name] ??= []).push(r);
  for (const [name, rs] of Object.entries(COMMAND_REGISTRARS)) assert.deepEqual(rs.map((r) => r.name), (expected[name] ?? []).map((r) => r.name), name);
  // A command missing from the table still runs (all registrars are built for it), only slower: say so.
  const missing = Object.keys(expected).filter((n) => !Object.hasOwn(COMMAND_REGISTRARS, n));
  if (missing.length > 0) console.log(`# commands not in COMMAND_REGISTRARS (built with every registrar): ${missing.join(' ')}`);
});

test('a command built alone has the same subcommands, options and help as in the whole program', () => {
  const whole = buildProgram(quiet);
  for (const name of Object.keys(COMMAND_REGISTRARS)) {
    const alone = buildProgram(quiet, [name, '--help']);
    const find = (p: Command) => p.commands.find((c) => c.name() === name || c.aliases().includes(name));
    assert.deepEqual(helpTree(find(alone)!), helpTree(find(whole)!), name);
  }
});

test('all registrars for no command, help, an unknown command or an option first; none for a bare --version', () => {
  for (const argv of [[], ['help', 'validate'], ['valdate'], ['--json', 'list'], ['toString'], ['__proto__']]) assert.equal(registrarsFor(argv), registrars, argv.join(' '));
  assert.deepEqual(registrarsFor(['--version']), []);
  assert.deepEqual(registrarsFor(['-V']), []);
  assert.equal(registrarsFor(['--version', 'list']), registrars);
});
