// Command wafmem measures what holds the memory of waf.Server under the
// "varied" GET workload of bench/waf/run.sh (GET /index.html?id=<new
// number>&date=…&q=<word>, a new query on every request). It wires the
// server like bench/waf/seccloud-waf (default CRS engine, CDN cache, access
// events through detect.Async into detect/store), runs an origin that
// answers like nginx serving a static file (ETag, Last-Modified, 700
// bytes), sends -n requests over -c keep-alive connections on loopback and
// prints runtime.MemStats and the process RSS every -every requests. At
// the end it writes a heap profile (-heapprofile) to read with
//
//	go tool pprof -top -inuse_space wafmem heap.pprof
//
// -hdrpad adds a header with a new value on every request, as browsers'
// Cookie and Referer do, to see the fast path's memo of request skeletons.
// Everything is on 127.0.0.1.
//
//	go run ./bench/waf/wafmem -n 300000 -heapprofile /tmp/heap.pprof
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/store"
	"github.com/jichitai/seccloud/tenant"
	"github.com/jichitai/seccloud/waf"
)

var words = []string{"%E9%98%B2%E7%81%BD", "%E9%81%BF%E9%9B%A3%E6%89%80", "%E3%81%8A%E7%9F%A5%E3%82%89%E3%81%9B",
	"%E3%81%94%E3%81%BF%E5%8F%8E%E9%9B%86", "weather", "library", "station", "school"}

func main() {
	n := flag.Int("n", 300000, "requests")
	conns := flag.Int("c", 32, "connections")
	every := flag.Int("every", 50000, "print memory figures every this many requests")
	heapProf := flag.String("heapprofile", "", "write a heap profile here at the end")
	noCache := flag.Bool("nocache", false, "turn the CDN cache off")
	noEvents := flag.Bool("noevents", false, "discard the access events instead of storing them")
	cacheMB := flag.Int64("cachemb", 0, "waf.CacheConfig.MaxBytes in MiB (0: the default)")
	memLimit := flag.Int64("memlimit", 0, "debug.SetMemoryLimit in MiB (0: none)")
	pad := flag.Int("hdrpad", 0, "add a header X-Trace-Id with a new value of this many bytes to every request (a browser's varying Cookie or Referer)")
	flag.Parse()
	if *memLimit > 0 {
		debug.SetMemoryLimit(*memLimit << 20)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	page := []byte("<!DOCTYPE html><html lang=\"ja\"><head><meta charset=\"utf-8\"><title>防災情報</title></head><body><h1>防災情報</h1><p>" +
		strings.Repeat("x", 600) + "</p></body></html>\n")
	lm := time.Now().Add(-time.Minute).UTC()
	origin := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Server", "nginx/1.26.3")
		h.Set("Content-Type", "text/html")
		h.Set("Content-Length", strconv.Itoa(len(page)))
		h.Set("Last-Modified", lm.Format(http.TimeFormat))
		h.Set("ETag", fmt.Sprintf("\"%x-%x\"", lm.Unix(), len(page)))
		h.Set("Accept-Ranges", "bytes")
		_, _ = w.Write(page)
	})
	ol, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go func() { _ = http.Serve(ol, origin) }()

	dir, err := tenant.NewSnapshot([]tenant.Tenant{{
		ID: "bench", Name: "ベンチ市",
		Networks:   []netip.Prefix{netip.MustParsePrefix("127.0.1.0/24")},
		EgressAddr: []netip.Addr{netip.MustParseAddr("127.0.0.1")},
		Sites:      []tenant.Site{{Host: "app.bench.test", Origins: []string{ol.Addr().String()}}},
	}}, tenant.Options{})
	if err != nil {
		log.Fatal(err)
	}
	var sink detect.Sink = detect.Discard
	var as *detect.Async
	if !*noEvents {
		data, err := os.MkdirTemp("", "wafmem")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(data)
		st, err := store.Open(store.Config{Dir: data, Logger: logger})
		if err != nil {
			log.Fatal(err)
		}
		as, err = detect.NewAsync(detect.AsyncConfig{Writer: st, Logger: logger, QueueSize: 1 << 17, BatchSize: 4096})
		if err != nil {
			log.Fatal(err)
		}
		sink = as
	}
	ce, err := waf.NewCRSEngine(waf.CRSConfig{Logger: logger})
	if err != nil {
		log.Fatal(err)
	}
	srv, err := waf.New(waf.Config{Directory: dir, Sink: sink, Logger: logger, Engine: ce,
		Origins: waf.OriginConfig{HealthPath: "/index.html"},
		DDoS:    waf.DDoSConfig{Disabled: true}, Cache: waf.CacheConfig{Disabled: *noCache, MaxBytes: *cacheMB << 20}})
	if err != nil {
		log.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()

	tr := &http.Transport{MaxIdleConnsPerHost: *conns, MaxConnsPerHost: *conns, DisableCompression: true}
	client := &http.Client{Transport: tr}
	base := "http://" + l.Addr().String()
	var next, done, bad atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	report := func(label string) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		rss, hwm := procStatus("VmRSS"), procStatus("VmHWM")
		fmt.Printf("%-8s %7.1fs HeapAlloc %4d MiB  HeapInuse %4d  HeapIdle %4d  HeapReleased %4d  Sys %4d  NextGC %4d  NumGC %4d  RSS %4d  HWM %4d MiB\n",
			label, time.Since(start).Seconds(), ms.HeapAlloc>>20, ms.HeapInuse>>20, ms.HeapIdle>>20, ms.HeapReleased>>20,
			ms.Sys>>20, ms.NextGC>>20, ms.NumGC, rss>>10, hwm>>10)
	}
	report("start")
	var mu sync.Mutex
	for range *conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(*n) {
					return
				}
				path := fmt.Sprintf("/index.html?id=%d&date=2026-%02d-%02d&q=%s",
					(i*7919)%1000003, (i%12)+1, (i%28)+1, words[i%8])
				req, _ := http.NewRequest(http.MethodGet, base+path, nil)
				req.Host = "app.bench.test"
				req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36")
				req.Header.Set("Accept", "*/*")
				if *pad > 0 {
					v := strconv.FormatInt(i, 36)
					req.Header.Set("X-Trace-Id", v+strings.Repeat("a", max(*pad-len(v), 0)))
				}
				resp, err := client.Do(req)
				if err != nil {
					bad.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					bad.Add(1)
				}
				if d := done.Add(1); d%int64(*every) == 0 {
					mu.Lock()
					report(strconv.FormatInt(d/1000, 10) + "k")
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	report("end")
	fmt.Printf("requests %d, not 200: %d, %.0f req/s\n", done.Load(), bad.Load(), float64(done.Load())/time.Since(start).Seconds())
	if c := srv.Cache(); c != nil {
		fmt.Printf("cache: %+v\n", c.Stats())
	}
	runtime.GC()
	report("after GC")
	if *heapProf != "" {
		f, err := os.Create(*heapProf)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.WriteHeapProfile(f); err != nil {
			log.Fatal(err)
		}
		f.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
	if as != nil {
		_ = as.Close(ctx)
	}
}

// procStatus returns a kB field of /proc/self/status (0 when unknown).
func procStatus(field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}
