package cluster

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/espnode/espnode/store/postgres/pgtest"
	"github.com/espnode/espnode/store/s3archive/s3test"
)

// sharedBackend is issue 14's cluster: one PostgreSQL index and job queue and one S3-compatible
// archive that every node uses, both real servers the test starts (Debian's PostgreSQL in a
// temporary folder, versitygw on a posix folder).
type sharedBackend struct {
	pg       *pgtest.Server
	s3       *s3test.Server
	clusters int
}

func newSharedBackend(tb testing.TB) *sharedBackend {
	tb.Helper()
	return &sharedBackend{pg: pgtest.Start(tb), s3: s3test.Start(tb)}
}

func (*sharedBackend) describe() string {
	return "PostgreSQL index and job queue, S3 archive on versitygw, shared by every node"
}

// roles: three nodes receive; the middle one, which the scenario kills, is the only one that
// also runs the workers, so that the jobs running when it is killed are its own: they come back
// only through River's rescuer, as a dead node's jobs must.
func (*sharedBackend) roles() []string { return []string{"ingest", "all", "ingest"} }

func (b *sharedBackend) restartIndex(tb testing.TB) bool {
	tb.Helper()
	b.pg.Restart(tb)
	return true
}

// newStorage gives a cluster a database of its own and a prefix of its own in the bucket.
func (b *sharedBackend) newStorage(tb testing.TB) storage {
	tb.Helper()
	b.clusters++
	prefix := fmt.Sprintf("cluster%d", b.clusters)
	env := append([]string{
		"ESPNODE_INDEX=" + b.pg.NewDatabase(tb),
		"ESPNODE_ARCHIVE=s3://" + b.s3.Bucket + "/" + prefix,
		// versitygw serves buckets as paths, not as host names.
		"ESPNODE_S3_PATH_STYLE=true",
		// The jobs a killed node was running come back to the others after rescue_after
		// (River's rescuer): seconds here, not the default quarter of an hour. It must
		// exceed delivery_timeout.
		"ESPNODE_PIPELINE_DELIVERY_TIMEOUT=10s",
		"ESPNODE_PIPELINE_RESCUE_AFTER=15s",
	}, b.s3.Env()...)
	return storage{env: env, objects: func(tb testing.TB, _ []*node) map[string]int64 {
		tb.Helper()
		keys, err := b.s3.Keys(context.Background(), prefix+"/")
		if err != nil {
			tb.Fatal(err)
		}
		out := map[string]int64{}
		for k, size := range keys {
			// What the nodes stage beside the archive (multipart uploads in progress) is not
			// an object of it.
			if key := strings.TrimPrefix(k, prefix+"/"); strings.HasPrefix(key, "archive/") {
				out[key] = size
			}
		}
		return out
	}}
}
