/** @module sys/node-process: the real ProcessRunner over child_process.spawn. */
import { spawn } from 'node:child_process';
import type { ProcessRunner, RunOptions, RunResult } from './ports.js';

export class NodeProcessRunner implements ProcessRunner {
  run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    const [file, ...args] = argv;
    if (file === undefined) return Promise.reject(new TypeError('run: empty argv'));
    return new Promise((resolve, reject) => {
      const child = spawn(file, args, {
        stdio: ['pipe', 'pipe', 'pipe'],
        ...(options.env === undefined ? {} : { env: options.env }),
        ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
      });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      const followUp = options.followUp;
      let followed = false;
      child.stdout.on('data', (b: Buffer) => {
        out.push(b);
        if (followUp !== undefined && !followed && followUp.after(Buffer.concat(out).toString('utf8'))) {
          followed = true;
          child.stdin.end(followUp.input);
        }
      });
      child.stderr.on('data', (b: Buffer) => err.push(b));
      const timer = options.timeoutMs === undefined ? undefined
        : setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
      child.on('error', (e) => { if (timer) clearTimeout(timer); reject(e); });
      child.on('close', (code, signal) => {
        if (timer) clearTimeout(timer);
        resolve({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
      });
      child.stdin.on('error', () => { /* the child may exit before reading its input */ });
      if (followUp === undefined) child.stdin.end(options.input ?? '');
      else child.stdin.write(options.input ?? '');
    });
  }
}
