package app

import (
	"encoding/json"
	"os"

	"github.com/jichitai/seccloud/tenant"
)

// runFile is written to DataDir/seccloud.run while the appliance runs, so
// that `seccloud config rollback` can find the running instance and ask it
// to reload.
type runFile struct {
	Pid     int    `json:"pid"`
	Console string `json:"console"`
	// Config is the absolute config file path; "" for the embedded demo.
	Config string `json:"config"`
}

func writeRunFile(path string, r runFile) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return tenant.WriteFileAtomic(path, append(b, '\n'), 0o640)
}

func readRunFile(path string) (runFile, error) {
	var r runFile
	b, err := os.ReadFile(path)
	if err != nil {
		return r, err
	}
	return r, json.Unmarshal(b, &r)
}
