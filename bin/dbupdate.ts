#!/usr/bin/env node
import { main } from '../src/cli/main.ts';

const code = await main(process.argv.slice(2));
// serve commands return -1: they run until a signal, and exit when their handles close.
if (code >= 0) process.exit(code);
