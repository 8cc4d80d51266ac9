package backup_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/jichitai/seccloud/appliance/backup"
)

func Example() {
	root, _ := os.MkdirTemp("", "backup-example")
	defer os.RemoveAll(root)
	data := filepath.Join(root, "data")
	_ = os.MkdirAll(filepath.Join(data, "quarantine"), 0o750)
	_ = os.WriteFile(filepath.Join(data, "quarantine", "q1.eml"), []byte("Subject: held\r\n\r\nbody\r\n"), 0o640)

	b, err := backup.New(backup.Config{Source: data, Dest: filepath.Join(root, "backups"), Keep: 7})
	if err != nil {
		fmt.Println(err)
		return
	}
	snap, err := b.Run(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(snap.Files), "file,", snap.Copied, "bytes stored")

	// Prove the snapshot restores: restore into a scratch directory and
	// check every file's hash.
	rep, err := b.Verify(context.Background(), snap.ID, filepath.Join(root, "scratch"), nil)
	fmt.Println(rep.OK(), err)

	_ = os.RemoveAll(data) // lost
	_, err = b.Restore(context.Background(), "latest", data)
	got, _ := os.ReadFile(filepath.Join(data, "quarantine", "q1.eml"))
	fmt.Printf("%q %v\n", got, err)
	// Output:
	// 1 file, 23 bytes stored
	// true <nil>
	// "Subject: held\r\n\r\nbody\r\n" <nil>
}
