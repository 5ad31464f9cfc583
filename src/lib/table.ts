// Plain aligned tables for human output (weft's commands, weft observe -o table); -o json prints
// the same rows as data.
export function formatTable(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('   ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n') + '\n';
}

export function indent(text: string, prefix = '  '): string {
  return text.replace(/^(?=.)/gm, prefix);
}
