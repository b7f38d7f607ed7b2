// Command loadgen posts unique Falco alerts to a riposte intake as fast as
// it can for a while and prints throughput and latency percentiles. It is a
// benchmark tool for scripts/bench-serve.sh, not part of riposte.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "riposte listen address")
	token := flag.String("token", os.Getenv("RIPOSTE_TOKEN"), "bearer token")
	conc := flag.Int("c", 32, "concurrent connections")
	batch := flag.Int("batch", 1, "alerts per request (NDJSON when > 1)")
	dur := flag.Duration("d", 10*time.Second, "duration")
	flag.Parse()

	tr := &http.Transport{MaxIdleConnsPerHost: *conc, MaxConnsPerHost: *conc, DialContext: (&net.Dialer{}).DialContext}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	url := "http://" + *addr + "/v1/alerts"
	var sent, failed atomic.Int64
	var mu sync.Mutex
	var lats []time.Duration
	stop := time.Now().Add(*dur)
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < *conc; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			var mine []time.Duration
			var buf bytes.Buffer
			for i := 0; time.Now().Before(stop); i++ {
				buf.Reset()
				for b := 0; b < *batch; b++ {
					fmt.Fprintf(&buf, `{"uuid":"lg-%d-%d-%d-%d","time":"2026-11-24T10:00:00.%09dZ","rule":"Terminal shell in container","priority":"Notice","source":"syscall","hostname":"bench","tags":["container","shell"],"output":"A shell was spawned in a container with an attached terminal (user=root shell=sh)","output_fields":{"container.id":"%012d","container.name":"bench-%d","container.image.repository":"staging/bench","proc.cmdline":"sh -i","user.name":"root"}}`+"\n",
						start.UnixNano(), w, i, b, i%1000000000, w, w)
				}
				req, _ := http.NewRequest("POST", url, bytes.NewReader(buf.Bytes()))
				req.Header.Set("Authorization", "Bearer "+*token)
				if *batch > 1 {
					req.Header.Set("Content-Type", "application/x-ndjson")
				} else {
					req.Header.Set("Content-Type", "application/json")
				}
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				var sink [512]byte
				for {
					if _, err := resp.Body.Read(sink[:]); err != nil {
						break
					}
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					failed.Add(1)
					continue
				}
				mine = append(mine, time.Since(t0))
				sent.Add(int64(*batch))
			}
			mu.Lock()
			lats = append(lats, mine...)
			mu.Unlock()
		}(w)
	}
	wg.Wait()
	el := time.Since(start)
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	pct := func(p float64) time.Duration {
		if len(lats) == 0 {
			return 0
		}
		return lats[int(float64(len(lats)-1)*p)]
	}
	fmt.Printf("alerts=%d requests=%d failed=%d seconds=%.1f alerts_per_s=%.0f batch=%d conc=%d p50_ms=%.2f p99_ms=%.2f max_ms=%.2f\n",
		sent.Load(), len(lats), failed.Load(), el.Seconds(), float64(sent.Load())/el.Seconds(), *batch, *conc,
		ms(pct(0.5)), ms(pct(0.99)), ms(pct(1)))
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
