//go:build !unix

package store

import (
	"fmt"
	"os"
)

// lockFile only creates the lock file where flock does not exist: one
// writing process per data directory is then the operator's job.
func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	return f, nil
}
