// Command load fetches URLs over HTTP as fast as it can with a fixed number of clients, for a
// fixed time, and prints what it got: the WADO-RS half of bench/dicomweb, run in turn against the
// node and against Orthanc on the same files.
//
//	load -urls FILE [-accept TYPE] [-c 4] [-d 10s]
//
// Prints one line: requests, seconds, requests/s, MiB/s. Any answer but 200 is an error.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	urlsFile := flag.String("urls", "", "file of URLs, one a line, fetched round-robin")
	accept := flag.String("accept", `multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.1`, "Accept header")
	clients := flag.Int("c", 4, "concurrent clients")
	duration := flag.Duration("d", 10*time.Second, "how long to fetch")
	flag.Parse()
	if err := run(*urlsFile, *accept, *clients, *duration); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

func run(urlsFile, accept string, clients int, duration time.Duration) error {
	f, err := os.Open(urlsFile)
	if err != nil {
		return err
	}
	var urls []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if u := strings.TrimSpace(sc.Text()); u != "" {
			urls = append(urls, u)
		}
	}
	f.Close()
	if len(urls) == 0 {
		return errors.New("no URLs")
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}, Timeout: time.Minute}
	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	var next, requests, bytes atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for range clients {
		wg.Go(func() {
			for ctx.Err() == nil {
				u := urls[int(next.Add(1)-1)%len(urls)]
				req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
				req.Header.Set("Accept", accept)
				rsp, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						once.Do(func() { firstErr = err })
						cancel()
					}
					return
				}
				n, err := io.Copy(io.Discard, rsp.Body)
				rsp.Body.Close()
				if ctx.Err() != nil {
					return
				}
				if err != nil || rsp.StatusCode != http.StatusOK {
					once.Do(func() { firstErr = fmt.Errorf("GET %s: %s %v", u, rsp.Status, err) })
					cancel()
					return
				}
				requests.Add(1)
				bytes.Add(n)
			}
		})
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	if firstErr != nil {
		return firstErr
	}
	fmt.Printf("%d %.3f %.1f %.2f\n", requests.Load(), secs, float64(requests.Load())/secs, float64(bytes.Load())/secs/(1<<20))
	return nil
}
