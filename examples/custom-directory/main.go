// Command custom-directory shows a tenant.Directory backed by an
// integrator's own database — here a CSV file exported from an address
// management system, one row per network — reloaded when the file changes
// and used by seccloud's forward proxy to decide which terminals may use it.
//
//	go run ./examples/custom-directory -db examples/custom-directory/testdata/tenants.csv
//	curl --interface 127.0.1.5 -x http://127.0.0.1:3128 http://127.0.0.1:8000/
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jichitai/seccloud/proxy"
	"github.com/jichitai/seccloud/tenant"
)

// CSVDirectory is a tenant.Directory read from a CSV file with the header
// "id,name,network,egress": one row per network, rows with the same id
// form one tenant. Lookups never touch the file: they are answered from
// the last good load, validated by tenant.NewSnapshot (overlapping
// networks, bad ids, ...), which also does the longest-prefix matching
// without allocating. Reload replaces it atomically; a bad file keeps the
// previous tenants and reports every problem with its line number.
//
// CSVDirectory is safe for concurrent use.
type CSVDirectory struct {
	path string
	log  *slog.Logger

	cur atomic.Pointer[tenant.Snapshot]

	mu  sync.Mutex // serialises Reload
	sum [sha256.Size]byte
}

var _ tenant.Directory = (*CSVDirectory)(nil)

// OpenCSV loads path; it fails when the file is missing or invalid.
// log (nil: discard) receives reload records.
func OpenCSV(path string, log *slog.Logger) (*CSVDirectory, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &CSVDirectory{path: path, log: log}
	if _, err := d.Reload(); err != nil {
		return nil, err
	}
	return d, nil
}

// ByAddr implements tenant.Directory.
func (d *CSVDirectory) ByAddr(a netip.Addr) (*tenant.Tenant, bool) { return d.cur.Load().ByAddr(a) }

// ByDomain implements tenant.Directory.
func (d *CSVDirectory) ByDomain(name string) (*tenant.Tenant, bool) {
	return d.cur.Load().ByDomain(name)
}

// BySite implements tenant.Directory.
func (d *CSVDirectory) BySite(host string) (*tenant.Site, *tenant.Tenant, bool) {
	return d.cur.Load().BySite(host)
}

// Reload reads the file again. It reports whether the tenants changed; on
// error the previous tenants stay in use.
func (d *CSVDirectory) Reload() (changed bool, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	data, err := os.ReadFile(d.path)
	if err != nil {
		return false, fmt.Errorf("custom-directory: %w", err)
	}
	sum := sha256.Sum256(data)
	if d.cur.Load() != nil && sum == d.sum {
		return false, nil
	}
	snap, err := parseCSV(d.path, data)
	if err != nil {
		return false, err
	}
	d.cur.Store(snap)
	d.sum = sum
	d.log.Info("tenants loaded", "file", d.path, "tenants", len(snap.Tenants()))
	return true, nil
}

// Watch reloads every interval until ctx ends, logging failures.
func (d *CSVDirectory) Watch(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := d.Reload(); err != nil {
				d.log.Error("reload failed; keeping the previous tenants", "err", err)
			}
		}
	}
}

// parseCSV builds a snapshot, mapping validation errors back to lines.
func parseCSV(name string, data []byte) (*tenant.Snapshot, error) {
	r := csv.NewReader(bytes.NewReader(data))
	r.Comment = '#'
	r.FieldsPerRecord = 4
	head, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("custom-directory: %s: %w", name, err)
	}
	if strings.Join(head, ",") != "id,name,network,egress" {
		return nil, fmt.Errorf("custom-directory: %s: header must be id,name,network,egress", name)
	}
	var (
		tenants  []tenant.Tenant
		index    = map[string]int{}
		netLines [][]int // line of each tenant's networks[j]
		errs     []error
	)
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("custom-directory: %s: %w", name, err)
		}
		line, _ := r.FieldPos(0)
		p, err := netip.ParsePrefix(rec[2])
		if err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: network: %w", name, line, err))
			continue
		}
		e, err := netip.ParseAddr(rec[3])
		if err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: egress: %w", name, line, err))
			continue
		}
		i, ok := index[rec[0]]
		if !ok {
			i = len(tenants)
			index[rec[0]] = i
			tenants = append(tenants, tenant.Tenant{ID: rec[0], Name: rec[1]})
			netLines = append(netLines, nil)
		}
		t := &tenants[i]
		t.Networks = append(t.Networks, p)
		if !slices.Contains(t.EgressAddr, e) {
			t.EgressAddr = append(t.EgressAddr, e)
		}
		netLines[i] = append(netLines[i], line)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("custom-directory: %w", errors.Join(errs...))
	}
	snap, err := tenant.NewSnapshot(tenants, tenant.Options{})
	var ferrs tenant.Errors
	if errors.As(err, &ferrs) {
		for _, fe := range ferrs {
			errs = append(errs, fmt.Errorf("%s:%d: %w", name, lineOf(netLines, fe.Index, fe.Field), fe))
		}
		return nil, fmt.Errorf("custom-directory: %w", errors.Join(errs...))
	}
	if err != nil {
		return nil, fmt.Errorf("custom-directory: %w", err)
	}
	return snap, nil
}

var netField = regexp.MustCompile(`^networks\[(\d+)\]$`)

// lineOf returns the CSV line of a tenant's field: the network's own row,
// or the tenant's first row.
func lineOf(netLines [][]int, i int, field string) int {
	if i < 0 || i >= len(netLines) {
		return 0
	}
	if m := netField.FindStringSubmatch(field); m != nil {
		if j, _ := strconv.Atoi(m[1]); j < len(netLines[i]) {
			return netLines[i][j]
		}
	}
	return netLines[i][0]
}

func main() {
	db := flag.String("db", "tenants.csv", "the tenants CSV file (id,name,network,egress)")
	listen := flag.String("listen", "127.0.0.1:3128", "proxy listen address")
	every := flag.Duration("reload-every", 5*time.Second, "how often the file is checked for changes (also: SIGHUP)")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *db, *listen, *every, log, nil); err != nil {
		log.Error("custom-directory", "err", err)
		os.Exit(1)
	}
}

// run serves the proxy until ctx ends; ready, if not nil, receives the
// directory and the bound address.
func run(ctx context.Context, db, listen string, every time.Duration, log *slog.Logger, ready chan<- started) error {
	dir, err := OpenCSV(db, log)
	if err != nil {
		return err
	}
	go dir.Watch(ctx, every)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if _, err := dir.Reload(); err != nil {
					log.Error("reload failed; keeping the previous tenants", "err", err)
				}
			}
		}
	}()
	srv, err := proxy.New(proxy.Config{
		Directory:         dir,
		Logger:            log,
		AllowDestinations: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, // a loopback demo origin
	})
	if err != nil {
		return fmt.Errorf("custom-directory: %w", err)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("custom-directory: %w", err)
	}
	log.Info("proxy listening", "addr", ln.Addr().String())
	if ready != nil {
		ready <- started{dir, ln.Addr().String()}
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
	case err := <-errc:
		return fmt.Errorf("custom-directory: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

type started struct {
	dir  *CSVDirectory
	addr string
}
