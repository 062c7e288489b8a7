import { describe, expect, it } from 'vitest';
import { StowageError } from '../../core/errors.js';
import { DEFAULT_IQN_PREFIX, parseTgtUri } from './tgt-config.js';

describe('parseTgtUri', () => {
  it('reads portal, control port, backing URI and prefix', () => {
    expect(parseTgtUri(new URL('tgt://10.99.3.1:3261?backing=btrfs:///mnt/pool&control=7'), {})).toEqual({
      portal: '10.99.3.1:3261', controlPort: 7, iqnPrefix: DEFAULT_IQN_PREFIX, backingUri: 'btrfs:///mnt/pool', backingOptions: {},
    });
    expect(parseTgtUri(new URL('tgt://10.0.0.1?backing=dir%3A%2F%2F%2Fsrv%2Fluns&control=12&iqnPrefix=iqn.2024-01.lab.stowage:ab12'), { 'backing.quota': 'on' })).toEqual({
      portal: '10.0.0.1:3260', controlPort: 12, iqnPrefix: 'iqn.2024-01.lab.stowage:ab12', backingUri: 'dir:///srv/luns', backingOptions: { quota: 'on' },
    });
  });

  it('lets options override the query', () => {
    expect(parseTgtUri(new URL('tgt://10.0.0.1:3260?backing=dir:///a&control=1'), { control: '9' }).controlPort).toBe(9);
  });

  it.each([
    ['tgt://storage.example:3260?backing=dir:///a&control=1', /IP address/],
    ['tgt://10.0.0.1:3260?control=1', /backing/],
    ['tgt://10.0.0.1:3260?backing=dir:///a', /control/],
    ['tgt://10.0.0.1:3260?backing=dir:///a&control=70000', /control/],
    ['tgt://10.0.0.1:3260?backing=dir:///a&control=1&iqnPrefix=foo', /iqnPrefix/],
    ['tgt://10.0.0.1:3260?backing=dir:///a&control=1&iqnPrefix=iqn.2024-01.x%20y', /iqnPrefix/],
    ['tgt://10.0.0.1:3260/path?backing=dir:///a&control=1', /path/],
    ['tgt://10.0.0.1:3260?backing=dir:///a&control=1&bogus=1', /unknown option/],
  ])('rejects %s', (uri, why) => {
    const call = (): unknown => parseTgtUri(new URL(uri), {});
    expect(call).toThrow(StowageError);
    expect(call).toThrow(why);
  });
});
