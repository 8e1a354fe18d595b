package s3archive

import (
	"context"
	"fmt"
	"testing"

	"github.com/rs/zerolog"

	"github.com/espnode/espnode/store"
	"github.com/espnode/espnode/store/archivetest"
	"github.com/espnode/espnode/store/fsarchive"
	"github.com/espnode/espnode/store/s3archive/s3test"
)

// BenchmarkWriteCommit writes and commits objects of a typical CT slice (531 KB) and of a large
// multi-frame instance (50 MB) in the Store's 64 KiB writes, on fsarchive and on this archive
// (versitygw's posix backend on the same disk, over loopback), side by side in one run. The S3
// rows are the key named before the first part was full, as the Store does (a large object goes
// to its key directly), and the staging scheme (through a staging key and a server-side copy),
// which an instance takes whose first part fills before its Series Instance UID is read. Keys rotate over a few, so that
// commits also replace objects, as duplicates do.
//
//	go test -run '^$' -bench WriteCommit -benchtime 20x ./store/s3archive/
func BenchmarkWriteCommit(b *testing.B) {
	srv := s3test.Start(b)
	ctx := context.Background()
	for _, size := range []int{531 << 10, 50 << 20} {
		content := archivetest.Pattern(size, size)
		for _, engine := range []string{"fsarchive", "s3", "s3-named"} {
			b.Run(fmt.Sprintf("%s/%dKiB", engine, size>>10), func(b *testing.B) {
				var a store.Archive
				if engine == "fsarchive" {
					fa, err := fsarchive.Open(b.TempDir(), fsarchive.Options{Logger: zerolog.Nop()})
					if err != nil {
						b.Fatal(err)
					}
					defer fa.Close()
					a = fa
				} else {
					sa, err := Open(ctx, Config{Bucket: srv.Bucket, Prefix: "bench-" + engine, Endpoint: srv.Endpoint, Region: srv.Region,
						AccessKeyID: srv.AccessKeyID, SecretAccessKey: srv.SecretAccessKey, PathStyle: true}, zerolog.Nop())
					if err != nil {
						b.Fatal(err)
					}
					a = sa
				}
				b.SetBytes(int64(size))
				i := 0
				for b.Loop() {
					key := fmt.Sprintf("archive/1.2.3/1.2.3.4/1.2.3.4.%d.dcm", i%4)
					i++
					w, err := a.Create(ctx)
					if err != nil {
						b.Fatal(err)
					}
					if engine == "s3-named" {
						w.(*writer).Name(key)
					}
					for off := 0; off < size; off += 64 << 10 {
						if _, err := w.Write(content[off:min(off+64<<10, size)]); err != nil {
							b.Fatal(err)
						}
					}
					if err := w.Commit(ctx, key); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
