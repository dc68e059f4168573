/** @module cli/bin: the process entry point; everything else is testable through `run`. */
import { run } from './main.js';

process.exitCode = await run(process.argv.slice(2));
