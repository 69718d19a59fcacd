package mongodb

import "time"

// LateWriteWindow is how long after a write of unknown outcome (its answer lost, or its
// operation timed out) was sent it may still land: FerretDB v1 reads a document when a
// write arrives and writes it once SQLite's write lock is free, waiting up to its busy
// timeout (10 s), and a second more. A store that must not be overtaken by such a write
// (the product service's fence, the order service's removal of an idempotency key) waits
// this long after sending it. Not covered: a write the network holds back longer, or one
// sent by a process that stopped since. On MongoDB, whose writes are atomic and bounded by
// their maxTimeMS, the wait is not needed but costs little.
const LateWriteWindow = 11 * time.Second
