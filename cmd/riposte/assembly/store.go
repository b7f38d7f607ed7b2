package assembly

import (
	"context"
	"fmt"

	"github.com/riposte-sec/riposte/internal/store"
	"github.com/riposte-sec/riposte/internal/store/postgres"
)

// StoreEnv names the store URL in the environment (the flag --store and
// the config's store.url are the other ways).
const StoreEnv = "RIPOSTE_STORE"

// Store is what riposte needs of its store: the Backend, and one-time keys
// for signed requests. *store.Store (SQLite) and *postgres.Store have both.
type Store interface {
	store.Backend
	store.Nonces
}

// OpenStore opens the store a command was pointed at: the PostgreSQL
// database at url when it is set (postgres://...), else the SQLite file in
// the data directory. The caller closes it.
func OpenStore(ctx context.Context, url, data string, opts store.Options) (Store, error) {
	if url != "" {
		if !postgres.IsURL(url) {
			return nil, fmt.Errorf("open store: want a postgres:// or postgresql:// URL, got %q", postgres.Redact(url))
		}
		return postgres.Open(ctx, url, opts)
	}
	return store.Open(store.PathIn(data), opts)
}
