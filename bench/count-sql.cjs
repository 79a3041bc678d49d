// BENCH_COUNT_SQL=1: preloaded (-r) into each kitbridge process under test. Counts the
// better-sqlite3 statements it runs and the transactions it commits, for the `stats` answer
// (globalThis.__benchSql), so that the bench can print SQL statements per event: a figure that,
// unlike CPU time, does not move with the load of a shared machine.
const Database = require('better-sqlite3');

const counts = { statements: 0, transactions: 0 };
globalThis.__benchSql = counts;

const probe = new Database(':memory:');
const Statement = Object.getPrototypeOf(probe.prepare('select 1'));
probe.close();
for (const m of ['run', 'get', 'all', 'iterate']) {
  const original = Statement[m];
  Statement[m] = function (...args) {
    counts.statements++;
    return original.apply(this, args);
  };
}

const transaction = Database.prototype.transaction;
Database.prototype.transaction = function (fn) {
  // Its BEGIN and COMMIT are statements too (counted above); this counts the transactions.
  const tx = transaction.call(this, fn);
  const counted = (f) =>
    function (...args) {
      counts.transactions++;
      return f.apply(this, args);
    };
  const out = counted(tx);
  for (const v of ['default', 'deferred', 'immediate', 'exclusive']) out[v] = counted(tx[v]);
  return out;
};
