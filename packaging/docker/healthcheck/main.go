// Command healthcheck is the container image's HEALTHCHECK: the final image
// (distroless) has no shell, curl or wget, so this static binary asks the
// appliance's console for /healthz and exits 0 on "200 OK", 1 otherwise.
//
//	healthcheck [URL]    (default http://127.0.0.1:9090/healthz)
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

// DefaultURL is the console's health endpoint in the container config.
const DefaultURL = "http://127.0.0.1:9090/healthz"

func main() {
	url := DefaultURL
	if len(os.Args) > 1 {
		url = os.Args[1]
	}
	if err := check(context.Background(), url, 5*time.Second); err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		os.Exit(1)
	}
}

// check GETs url and succeeds on status 200.
func check(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return nil
}
