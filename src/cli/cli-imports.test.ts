import { readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { COMMAND_GROUPS, commandGroupOf } from './program.js';

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/**
 * What loading `file` loads: its static value imports, followed through the project's own modules
 * (`import type` is erased by the compiler; `import()` is loaded only when its command runs).
 * Answers the project modules (relative to src) and the packages reached.
 */
function staticImports(file: string): { modules: Set<string>; packages: Set<string> } {
  const modules = new Set<string>();
  const packages = new Set<string>();
  const visit = (f: string): void => {
    const rel = relative(SRC, f);
    if (modules.has(rel)) return;
    modules.add(rel);
    const text = readFileSync(f, 'utf8');
    for (const m of text.matchAll(/^(?:import|export)\s+(?!type\s)(?:[^'";]*?\sfrom\s+)?['"]([^'"]+)['"]/gm)) {
      const spec = m[1] as string;
      if (spec.startsWith('.')) visit(join(dirname(f), spec.replace(/\.js$/, '.ts')));
      else if (!spec.startsWith('node:')) packages.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : (spec.split('/')[0] as string));
    }
  };
  visit(file);
  return { modules, packages };
}

describe('the CLI loads only its own command', () => {
  it.each(['main', ...COMMAND_GROUPS.map((g) => `commands/${g}`)])('src/cli/%s.ts reaches no server module and no package but commander', (name) => {
    const { modules, packages } = staticImports(join(SRC, 'cli', `${name}.ts`));
    expect([...packages].filter((p) => p !== 'commander'), 'packages (TypeBox alone costs 140 ms per CLI call)').toEqual([]);
    // The CLI's own layer, the domain words of core, and the small system helpers it shares (pinned TLS, private files).
    const outside = [...modules].filter((m) => !['cli/', 'core/', 'system/'].some((d) => m.startsWith(d)) && m !== 'placement/placement.ts');
    expect(outside, 'server modules the CLI would load').toEqual([]);
    expect([...modules].filter((m) => m.startsWith('core/schemas/')), 'schema modules (they build TypeBox schemas)').toEqual([]);
  });

  it('finds the group a command line runs, past global options and their values', () => {
    expect(commandGroupOf(['volume', 'list'])).toBe('volume');
    expect(commandGroupOf(['--api', 'http://x', '--token', 'volume', 'backend', 'list'])).toBe('backend');
    expect(commandGroupOf(['--api=http://x', 'events', '--follow'])).toBe('events');
    expect(commandGroupOf(['--help'])).toBeNull();
    expect(commandGroupOf(['help', 'volume'])).toBeNull();
    expect(commandGroupOf(['volumes'])).toBeNull();
    expect(commandGroupOf([])).toBeNull();
  });
});
