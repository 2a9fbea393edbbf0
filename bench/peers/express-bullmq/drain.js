// BullMQ's worker side, for comparison with moked's runner: queue N no-op jobs (addBulk, in
// batches of 1,000), then time one Worker with concurrency C until all N completed.
//
//   node drain.js [N=20000] [C=50]        env: REDIS_HOST (127.0.0.1), REDIS_PORT (6391), REDIS_DB (0)
//
// Prints one line: RESULT jobs= concurrency= fill_s= drain_s= jobs_per_s= completed= failed= left=
// partial=0 startup_s= steady_jobs_per_s= worker_cpu_s= cpu_ms_per_job= redis_cpu_s=
// (worker_cpu_s: this process during the drain, where the Worker runs; redis_cpu_s: Redis's
// used_cpu_user+sys over the drain only, the fill excluded).
'use strict';
const { Queue, Worker } = require('bullmq');
const IORedis = require('ioredis');

const jobs = Number(process.argv[2] || 20000);
const concurrency = Number(process.argv[3] || 50);
const connection = {
  host: process.env.REDIS_HOST || '127.0.0.1',
  port: Number(process.env.REDIS_PORT || 6391),
  db: Number(process.env.REDIS_DB || 0),
  maxRetriesPerRequest: null, // required by BullMQ workers
};
const seconds = (from) => Number(process.hrtime.bigint() - from) / 1e9;

async function redisCpu(client) {
  const info = await client.info('cpu');
  const field = (name) => Number((info.match(new RegExp(`${name}:([0-9.]+)`)) || [])[1] || 0);
  return field('used_cpu_user') + field('used_cpu_sys');
}

async function main() {
  const queue = new Queue('drain', { connection });
  await queue.obliterate({ force: true });
  const fillStart = process.hrtime.bigint();
  for (let first = 0; first < jobs; first += 1000) {
    const batch = [];
    for (let i = first; i < Math.min(jobs, first + 1000); i++) {
      const sid = 'CA' + i.toString(16).padStart(32, '0');
      batch.push({ name: 'call_status', data: { kind: 'call_status', sid, status: 'completed' } });
    }
    await queue.addBulk(batch);
  }
  const fill = seconds(fillStart);

  const stats = new IORedis(connection);
  const redis0 = await redisCpu(stats);
  const start = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  let finished = 0;
  let firstDone = null;
  const worker = await new Promise((resolve) => {
    const w = new Worker('drain', async () => null, { connection, concurrency });
    const count = () => {
      if (firstDone === null) firstDone = process.hrtime.bigint();
      if (++finished === jobs) resolve(w);
    };
    w.on('completed', count);
    w.on('failed', count);
  });
  const end = process.hrtime.bigint();
  const cpu = process.cpuUsage(cpu0);
  const drain = Number(end - start) / 1e9;
  const cpuS = (cpu.user + cpu.system) / 1e6;
  const startup = Number(firstDone - start) / 1e9;
  const steady = (jobs - 1) / (Number(end - firstDone) / 1e9);
  const redis1 = await redisCpu(stats);
  const counts = await queue.getJobCounts('completed', 'failed', 'wait', 'active');
  console.log(
    `RESULT jobs=${jobs} concurrency=${concurrency} fill_s=${fill.toFixed(3)} drain_s=${drain.toFixed(3)} ` +
      `jobs_per_s=${(jobs / drain).toFixed(1)} completed=${counts.completed} failed=${counts.failed} ` +
      `left=${counts.wait + counts.active} partial=0 startup_s=${startup.toFixed(3)} ` +
      `steady_jobs_per_s=${steady.toFixed(1)} worker_cpu_s=${cpuS.toFixed(2)} ` +
      `cpu_ms_per_job=${((1000 * cpuS) / jobs).toFixed(3)} redis_cpu_s=${(redis1 - redis0).toFixed(2)}`,
  );
  await worker.close();
  await queue.close();
  stats.disconnect();
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
