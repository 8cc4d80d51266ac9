// Command cacheorigin is the origin of bench/waf/cache.sh: a 1 KiB
// /index.html with Cache-Control: max-age=300, so the WAF's CDN cache
// answers every request after the first.
//
//	go run ./bench/waf/cacheorigin -listen 127.0.0.1:18190
package main

import (
	"flag"
	"log"
	"net/http"
	"strings"
	"sync/atomic"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18190", "listen address (loopback)")
	flag.Parse()
	page := []byte("<!DOCTYPE html><html lang=\"ja\"><head><meta charset=\"utf-8\"><title>防災情報</title></head><body><h1>避難所の開設状況</h1><p>" +
		strings.Repeat("x", 900) + "</p></body></html>\n")
	var hits atomic.Int64
	http.HandleFunc("/index.html", func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "max-age=300")
		w.Write(page)
	})
	http.HandleFunc("/hits", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(strings.TrimSpace(itoa(hits.Load())) + "\n"))
	})
	log.Fatal(http.ListenAndServe(*listen, nil))
}

func itoa(n int64) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}
