// A durable JSON-lines log: the bridge's only storage (idempotency keys, the inbound outbox).
//
// Why a file and not SQLite: the two stores are small (one line per message of the last day),
// written once per message and read in full at start-up; an append with fsync is all the
// durability they need, and it adds no native module to the image.
//
// Invariants:
// * `append` returns only after the line is on disk (fsync), so an answer or an acknowledged
//   inbound message survives a crash of the process or the host.
// * Start-up replays every line; a torn last line (a crash mid-write) is skipped, never fatal.
// * `compact` rewrites the live records to a temporary file, fsyncs it, renames it over the log
//   and fsyncs the folder: a crash leaves either the old log or the new one, never a mix.
import fs from 'node:fs';
import path from 'node:path';

export class JsonlLog {
  /** @param {string} file the log's path; its folder is created when missing. */
  constructor(file) {
    this.file = file;
    fs.mkdirSync(path.dirname(file), { recursive: true });
    this.fd = null;
    this.lines = 0;
  }

  /** Every record written so far, oldest first (torn or unreadable lines skipped). */
  read() {
    let text;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (error) {
      if (error.code === 'ENOENT') return [];
      throw error;
    }
    const records = [];
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      try {
        records.push(JSON.parse(line));
      } catch {
        // A line cut short by a crash: its write never returned, so nobody relied on it.
      }
    }
    this.lines = records.length;
    return records;
  }

  /** Appends one record and waits until it is on disk. */
  append(record) {
    if (this.fd === null) this.fd = fs.openSync(this.file, 'a');
    fs.writeSync(this.fd, `${JSON.stringify(record)}\n`);
    fs.fsyncSync(this.fd);
    this.lines += 1;
  }

  /** Replaces the log by `records`, atomically. */
  compact(records) {
    const tmp = `${this.file}.tmp`;
    const fd = fs.openSync(tmp, 'w');
    try {
      fs.writeSync(fd, records.map((r) => `${JSON.stringify(r)}\n`).join(''));
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    this.close();
    fs.renameSync(tmp, this.file);
    const dir = fs.openSync(path.dirname(this.file), 'r');
    try {
      fs.fsyncSync(dir);
    } finally {
      fs.closeSync(dir);
    }
    this.lines = records.length;
  }

  close() {
    if (this.fd !== null) {
      fs.closeSync(this.fd);
      this.fd = null;
    }
  }
}
