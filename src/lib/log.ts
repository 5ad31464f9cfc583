// Structured logging in logfmt: one line per event, greppable, with the fields that matter
// (file, object, field) as keys rather than buried in prose.
export type Level = 'debug' | 'info' | 'warn' | 'error';
export type Fields = Record<string, string | number | boolean | undefined | null>;

const ORDER: Record<Level, number> = { debug: 0, info: 1, warn: 2, error: 3 };

function quote(v: string): string {
  return /^[\w./:@,+[\]-]+$/.test(v) ? v : JSON.stringify(v);
}

export interface Logger {
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
}

export function createLogger(opts: { level?: Level; write?: (line: string) => void } = {}): Logger {
  const min = ORDER[opts.level ?? 'info'];
  const write = opts.write ?? ((line: string) => process.stderr.write(line));
  const emit = (level: Level, msg: string, fields: Fields = {}) => {
    if (ORDER[level] < min) return;
    let line = `time=${new Date().toISOString()} level=${level} msg=${quote(msg)}`;
    for (const [k, v] of Object.entries(fields)) if (v !== undefined && v !== null) line += ` ${k}=${quote(String(v))}`;
    write(`${line}\n`);
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
  };
}
