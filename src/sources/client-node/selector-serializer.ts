// What @kubernetes/client-node's cache.js (ListWatch) uses of './serializer.js' (see slim.ts):
// ObjectSerializer.serialize(selector, 'string'), which returns a string as it is. The real
// serializer loads every generated model class to do that.
export const ObjectSerializer = {
  serialize<T>(data: T, type: string): T {
    if (type !== 'string') throw new Error(`selector-serializer: only strings are serialized here, not ${type}`);
    return data;
  },
};
