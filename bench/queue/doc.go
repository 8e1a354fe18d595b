// Package queue measures the job queue on each engine, side by side in one run: jobs per second
// through River (each inserted in its own index transaction, as the node's Puts insert them,
// worked by a no-op worker and completed by River) on SQLite (store/sqlite) and on PostgreSQL
// (store/postgres, a server started by pgtest on the same machine). go test -bench . ./bench/queue/
package queue
