package store_test

import (
	"path/filepath"
	"testing"

	"github.com/riposte-sec/riposte/internal/store"
	"github.com/riposte-sec/riposte/internal/store/storetest"
)

// TestConformance runs the backend-independent suite against SQLite.
func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Harness{
		Fresh: func(t testing.TB) string { return store.PathIn(filepath.Join(t.TempDir(), "data")) },
		Open: func(_ testing.TB, loc string, opts store.Options) (store.Backend, error) {
			return store.Open(loc, opts)
		},
	})
}
