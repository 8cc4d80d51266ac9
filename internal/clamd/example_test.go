package clamd_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/jichitai/seccloud/internal/clamd"
	"github.com/jichitai/seccloud/internal/clamd/clamdtest"
)

// Scanning a download with clamd on a unix socket. Here the daemon is a
// throw-away one from clamdtest; in production it is the system's clamd.
func Example() {
	d, err := clamdtest.New(clamdtest.Options{})
	if err != nil {
		log.Fatal(err) // clamd not installed: apt-get install clamav-daemon
	}
	defer d.Stop()

	c, err := clamd.New(clamd.Config{Address: d.Socket}) // or "127.0.0.1:3310"
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	res, err := c.ScanBytes(context.Background(), []byte(clamdtest.EICAR))
	if errors.Is(err, clamd.ErrUnavailable) {
		log.Fatal("the scanner is down: ", err)
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Status, res.Signature)
	// Output: infected Seccloud.Test.EICAR.UNOFFICIAL
}
