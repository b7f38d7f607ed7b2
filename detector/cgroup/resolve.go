package cgroup

import (
	"errors"
	"io/fs"
	"path/filepath"
	"syscall"
)

// Resolver maps v2 cgroup ids (the kernfs node id the kernel reports, which
// is the directory's inode number on cgroup2) to paths by walking the
// unified hierarchy. The table is rebuilt on a miss: a new cgroup appears
// at the next walk, and a removed cgroup's id is never reused, so stale
// entries are harmless until the rebuild drops them.
//
// A Resolver is not safe for concurrent use; the detector's state
// goroutine owns it.
type Resolver struct {
	mount string
	ids   map[uint64]string
	walks int
}

// NewResolver returns a resolver over the v2 hierarchy mounted at mount.
func NewResolver(mount string) *Resolver {
	return &Resolver{mount: mount}
}

// Path returns the cgroup path of id ("/kubepods.slice/..."), walking the
// hierarchy again when id is not known.
func (r *Resolver) Path(id uint64) (string, bool) {
	if p, ok := r.ids[id]; ok {
		return p, true
	}
	r.rebuild()
	p, ok := r.ids[id]
	return p, ok
}

// Walks counts the walks of the hierarchy so far.
func (r *Resolver) Walks() int { return r.walks }

func (r *Resolver) rebuild() {
	r.walks++
	ids := make(map[uint64]string, len(r.ids))
	_ = filepath.WalkDir(r.mount, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while walking
			}
			return fs.SkipDir
		}
		if !d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		rel, err := filepath.Rel(r.mount, path)
		if err != nil {
			return nil
		}
		ids[st.Ino] = filepath.Clean("/" + rel)
		return nil
	})
	r.ids = ids
}
