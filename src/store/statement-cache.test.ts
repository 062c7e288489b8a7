import Sqlite from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { cachingStatements } from './statement-cache.js';

describe('cachingStatements', () => {
  it('answers the same prepared statement for the same SQL text, and a new one for another', () => {
    const db = cachingStatements(new Sqlite(':memory:'));
    const a = db.prepare('select 1 as n');
    expect(db.prepare('select 1 as n')).toBe(a);
    expect(db.prepare('select 2 as n')).not.toBe(a);
    db.close();
  });

  it('drops the least recently used statement beyond its capacity', () => {
    const db = cachingStatements(new Sqlite(':memory:'), 2);
    const one = db.prepare('select 1');
    const two = db.prepare('select 2');
    expect(db.prepare('select 1')).toBe(one); // now the most recent
    db.prepare('select 3'); // evicts `select 2`
    expect(db.prepare('select 1')).toBe(one);
    expect(db.prepare('select 2')).not.toBe(two);
    db.close();
  });

  it('keeps answering correctly after the schema changes under a cached statement', () => {
    const raw = new Sqlite(':memory:');
    const db = cachingStatements(raw);
    raw.exec("create table t (a text); insert into t values ('x')");
    expect(db.prepare('select * from t').all([])).toEqual([{ a: 'x' }]);
    raw.exec("alter table t add column b text default 'y'");
    expect(db.prepare('select * from t').all([])).toEqual([{ a: 'x', b: 'y' }]);
    db.close();
  });
});
