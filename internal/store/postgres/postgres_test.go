package postgres

import (
	"context"
	"os"
	"testing"

	"github.com/riposte-sec/riposte/internal/store"
	"github.com/riposte-sec/riposte/internal/store/postgres/pgtest"
	"github.com/riposte-sec/riposte/internal/store/storetest"
)

// pg is the test binary's PostgreSQL server, started on first use.
var pg pgtest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	pg.Stop()
	pgDurable.Stop()
	os.Exit(code)
}

func harness() storetest.Harness {
	return storetest.Harness{
		Fresh: func(t testing.TB) string { return pg.Database(t) },
		Open: func(_ testing.TB, loc string, opts store.Options) (store.Backend, error) {
			return Open(context.Background(), loc, opts)
		},
		Shared: true,
	}
}

// TestConformance runs the backend-independent suite against PostgreSQL,
// including two handles on one database appending and claiming at once.
func TestConformance(t *testing.T) {
	pg.Get(t)
	storetest.Run(t, harness())
}

func openTest(t *testing.T, opts store.Options) (*Store, string) {
	t.Helper()
	url := pg.Database(t)
	s, err := Open(context.Background(), url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, url
}
