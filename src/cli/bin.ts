/** @module cli/bin: the process entry point; everything else is testable through `run`. */
import { run } from './main.js';

void run(process.argv.slice(2)).then((code) => { process.exitCode = code; });
