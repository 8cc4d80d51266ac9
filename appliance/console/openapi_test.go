package console

import (
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// TestOpenAPIDocumentsEveryEndpoint: openapi.yaml lists exactly the
// endpoints the console serves, and each documented one answers (401
// without a session, except the login).
func TestOpenAPIDocumentsEveryEndpoint(t *testing.T) {
	b, err := os.ReadFile("openapi.yaml")
	require.NoError(t, err)
	var doc struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	require.NoError(t, yaml.Unmarshal(b, &doc))
	var documented []string
	for p, ops := range doc.Paths {
		for m := range ops {
			documented = append(documented, strings.ToUpper(m)+" "+p)
		}
	}
	e := newEnv(t, nil)
	var served []string
	for _, ep := range e.c.apiEndpoints() {
		served = append(served, ep.method+" "+ep.path)
	}
	sort.Strings(documented)
	sort.Strings(served)
	assert.Equal(t, served, documented)

	c := e.client()
	for _, ep := range e.c.apiEndpoints() {
		if ep.path == "/api/v1/session" && ep.method == "POST" {
			continue
		}
		code, _ := c.api(ep.method, strings.NewReplacer("{id}", "x", "{n}", "1").Replace(ep.path), nil)
		assert.Equal(t, 401, code, "%s %s without a session", ep.method, ep.path)
	}
	assert.True(t, e.auditHas("", "api", "denied", "GET /api/v1/incidents"))
}
