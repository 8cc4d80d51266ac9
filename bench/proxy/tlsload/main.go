// Command tlsload measures HTTPS requests per second through a TLS
// inspecting forward proxy, for bench/proxy/tls.sh: each of -c
// connections sends CONNECT, completes TLS with the proxy's minted
// certificate (trusted through -cacert) and then sends keep-alive GETs
// for -d; with -newconn every request uses a new tunnel and handshake.
// It prints "requests N errors E seconds S req/s R".
//
//	go run ./bench/proxy/tlsload -proxy 127.0.0.1:13128 -cacert ca.pem -url https://127.0.0.1:18443/1k
package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	proxy := flag.String("proxy", "127.0.0.1:13128", "proxy host:port")
	target := flag.String("url", "https://127.0.0.1:18443/1k", "HTTPS URL to fetch")
	cacert := flag.String("cacert", "", "PEM file of the proxy's inspection CA (required)")
	conns := flag.Int("c", 64, "connections")
	dur := flag.Duration("d", 20*time.Second, "duration")
	newconn := flag.Bool("newconn", false, "a new tunnel and TLS handshake for every request")
	flag.Parse()
	pem, err := os.ReadFile(*cacert)
	if err != nil {
		log.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		log.Fatal("no certificate in -cacert")
	}
	u, err := url.Parse(*target)
	if err != nil {
		log.Fatal(err)
	}
	host := u.Hostname()
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\nUser-Agent: tlsload\r\n\r\n"
	conf := &tls.Config{RootCAs: roots, ServerName: host, NextProtos: []string{"http/1.1"},
		ClientSessionCache: nil} // no resumption: every handshake is a full one

	var ok, bad atomic.Int64
	stop := time.Now().Add(*dur)
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < *conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				c, br, err := open(*proxy, u.Host, conf)
				if err != nil {
					bad.Add(1)
					time.Sleep(10 * time.Millisecond)
					continue
				}
				for time.Now().Before(stop) {
					if err := get(c, br, req); err != nil {
						bad.Add(1)
						break
					}
					ok.Add(1)
					if *newconn {
						break
					}
				}
				c.Close()
			}
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	fmt.Printf("requests %d errors %d seconds %.1f req/s %.0f\n", ok.Load(), bad.Load(), secs, float64(ok.Load())/secs)
}

func open(proxy, target string, conf *tls.Config) (net.Conn, *bufio.Reader, error) {
	c, err := net.DialTimeout("tcp", proxy, 5*time.Second)
	if err != nil {
		return nil, nil, err
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		c.Close()
		return nil, nil, fmt.Errorf("CONNECT: %v %v", resp, err)
	}
	tc := tls.Client(c, conf)
	if err := tc.Handshake(); err != nil {
		c.Close()
		return nil, nil, err
	}
	_ = c.SetDeadline(time.Time{})
	return tc, bufio.NewReader(tc), nil
}

func get(c net.Conn, br *bufio.Reader, req string) error {
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		return err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && resp.StatusCode != 200 {
		err = fmt.Errorf("status %d", resp.StatusCode)
	}
	return err
}
