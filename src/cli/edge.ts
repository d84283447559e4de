import type { Command } from './main.ts';

export const edgeCommands: Record<string, Command> = {};
