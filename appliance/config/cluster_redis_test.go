package config

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestClusterRedis(t *testing.T) {
	for _, tt := range []struct {
		name, value string
		ok          bool
	}{
		{"host:port", "127.0.0.1:6379", true},
		{"url", "redis://:secret@10.0.0.5:6379/0", true},
		{"tls url", "rediss://redis.example:6380", true},
		{"no port", "10.0.0.5", false},
		{"bad port", "10.0.0.5:redis", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("c.yaml", []byte("version: 1\nlisten: {console: 127.0.0.1:0}\ncluster: {redis: \""+tt.value+"\"}\n"))
			if tt.ok {
				require.NoError(t, err)
				assert.Equal(t, tt.value, cfg.Cluster.Redis)
				assert.Equal(t, RoleStandalone, cfg.Cluster.Role, "any role may share limits")
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), "cluster.redis")
		})
	}
}
