// The spread of a bench measurement over its runs: the numbers its tables print.
export interface Spread {
  min: number;
  median: number;
  max: number;
}

/** min, median (mean of the middle two for an even count) and max; xs must not be empty. */
export function spread(xs: number[]): Spread {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return { min: s[0]!, median: s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2, max: s[s.length - 1]! };
}
