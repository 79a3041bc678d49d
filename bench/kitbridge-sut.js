// kitbridge as an operator runs it (`kitbridge run telegram`, webhook mode), in a child process.
import { run } from '../packages/cli/dist/index.js';

const bridge = await run('telegram', process.env);
process.send({ ready: true, port: bridge.address.port });
process.on('message', async (m) => {
  if (m === 'stats')
    process.send({
      cpu: process.cpuUsage(),
      rss: process.memoryUsage().rss,
      mem: process.memoryUsage(),
      ...(globalThis.__benchSql ? { sql: { ...globalThis.__benchSql } } : {}),
    });
  if (m === 'exit') {
    await bridge.stop(1000);
    process.exit(0);
  }
});
