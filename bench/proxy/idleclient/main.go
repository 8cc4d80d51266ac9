// Command idleclient holds many idle CONNECT tunnels for
// bench/proxy/idle.sh ("60,000 concurrent idle CONNECT tunnels held with
// RSS ≤ 1 GiB").
//
// As the origin it accepts and holds every connection on 127.0.0.1–
// 127.0.0.<-addrs> at -port (several destination addresses, so that a
// proxy's upstream connections from one egress address are not limited to
// one address's ~28,000 ephemeral ports):
//
//	idleclient -origin -port 18443 -addrs 4
//
// As the client it opens -n tunnels through -proxy to those addresses in
// turn, from source addresses 127.0.<src>.1 … (-per-src connections
// each), checks every "200", prints "open N" and holds them until it is
// killed or its standard input closes:
//
//	idleclient -proxy 127.0.0.1:13128 -n 60000 -port 18443 -addrs 4
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	originMode := flag.Bool("origin", false, "be the origin: accept and hold connections")
	port := flag.Int("port", 18443, "origin port")
	addrs := flag.Int("addrs", 4, "origin addresses 127.0.0.1 .. 127.0.0.<addrs>")
	proxyAddr := flag.String("proxy", "127.0.0.1:13128", "proxy address")
	n := flag.Int("n", 60000, "tunnels to open")
	perSrc := flag.Int("per-src", 5000, "tunnels per source address")
	src := flag.Int("src", 10, "third octet of the first source address (127.0.<src>.1)")
	workers := flag.Int("workers", 64, "concurrent dials")
	flag.Parse()
	if *originMode {
		origin(*port, *addrs)
		return
	}
	client(*proxyAddr, *n, *perSrc, *src, *workers, *port, *addrs)
}

func origin(port, addrs int) {
	var held atomic.Int64
	var mu sync.Mutex
	var conns []net.Conn
	for i := 1; i <= addrs; i++ {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.%d:%d", i, port))
		if err != nil {
			log.Fatal(err)
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					log.Print(err)
					time.Sleep(10 * time.Millisecond)
					continue
				}
				mu.Lock()
				conns = append(conns, c) // held, never read: the tunnel stays idle
				mu.Unlock()
				held.Add(1)
			}
		}()
	}
	fmt.Println("origin ready")
	for {
		time.Sleep(5 * time.Second)
		fmt.Fprintf(os.Stderr, "origin holds %d\n", held.Load())
	}
}

func client(proxyAddr string, n, perSrc, src, workers, port, addrs int) {
	var next atomic.Int64
	var failed atomic.Int64
	conns := make([]net.Conn, n)
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 256)
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				s := i / perSrc
				from := netip.AddrFrom4([4]byte{127, 0, byte(src + s/250), byte(1 + s%250)})
				d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(from, 0)), Timeout: 30 * time.Second}
				c, err := d.Dial("tcp", proxyAddr)
				if err != nil {
					if failed.Add(1) <= 5 {
						log.Printf("dial %d from %v: %v", i, from, err)
					}
					continue
				}
				target := fmt.Sprintf("127.0.0.%d:%d", 1+i%addrs, port)
				fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
				c.SetReadDeadline(time.Now().Add(30 * time.Second))
				got := 0
				for !bytes.Contains(buf[:got], []byte("\r\n\r\n")) && got < len(buf) {
					k, err := c.Read(buf[got:])
					got += k
					if err != nil {
						break
					}
				}
				c.SetReadDeadline(time.Time{})
				if !bytes.HasPrefix(buf[:got], []byte("HTTP/1.1 200")) && !bytes.HasPrefix(buf[:got], []byte("HTTP/1.0 200")) {
					if failed.Add(1) <= 5 {
						log.Printf("tunnel %d: %q", i, buf[:got])
					}
					c.Close()
					continue
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	ok := 0
	for _, c := range conns {
		if c != nil {
			ok++
		}
	}
	fmt.Printf("open %d failed %d in %.1fs\n", ok, failed.Load(), time.Since(start).Seconds())
	// Hold until stdin closes (or the process is killed).
	_, _ = io.Copy(io.Discard, bufio.NewReader(os.Stdin))
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}
