// The libbpf binding's failure paths, on the real kernel.
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { BpfError, BpfObject, RawMap } from '../../src/datapath/libbpf.js';
import { REPO } from '../harness/agent.js';

describe('libbpf binding', () => {
  it('a program the verifier rejects fails to load with the verifier log in the error', () => {
    const obj = path.join(REPO, 'build/test-bpf/rejected.o');
    assert.throws(
      () => BpfObject.load(obj),
      (err: unknown) => {
        assert.ok(err instanceof BpfError);
        assert.equal(err.op, `load BPF object ${obj}`);
        assert.match(err.message, /EACCES/);
        assert.match(err.message, /BEGIN PROG LOAD LOG/);
        assert.match(err.message, /invalid access to map value/, 'the verifier says why');
        return true;
      },
    );
  });

  it('a missing object names the file', () => {
    assert.throws(() => BpfObject.load('/nonexistent/x.o'), /open BPF object \/nonexistent\/x\.o: ENOENT/);
  });

  it('a missing pin names the path', () => {
    assert.throws(
      () => RawMap.openPinned('/sys/fs/bpf/weft-no-such-pin'),
      /open pinned object \/sys\/fs\/bpf\/weft-no-such-pin: ENOENT/,
    );
  });
});
