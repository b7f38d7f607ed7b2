package containerd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/responders/contain"
)

// QuarantineState is what containerd.quarantine records about a container
// so that containerd.release removes exactly what it installed: one JSON
// file per container in <data_dir>/containerd/quarantine/<namespace>/<id>.json.
type QuarantineState struct {
	Version   int       `json:"version"`
	Namespace string    `json:"namespace"` // containerd's
	Container string    `json:"container"` // full id
	Name      string    `json:"name,omitempty"`
	Time      time.Time `json:"time"`
	Actor     string    `json:"actor,omitempty"`
	Incident  string    `json:"incident,omitempty"`
	// Netns identifies the network namespace the table is in (the nsfs
	// device and inode of /proc/<pid>/ns/net): a task started again has
	// a new one, and the old table went with the old namespace.
	Netns NetnsID `json:"netns"`
	// Pid is the task's init pid when the table was installed.
	Pid   int    `json:"pid"`
	Table string `json:"table"` // QuarantineTable, family inet
	// Installed is the table as read back after installing it.
	Installed installedTable `json:"installed"`
	Allow     []string       `json:"allow,omitempty"`
}

// NetnsID identifies a network namespace.
type NetnsID struct {
	Dev uint64 `json:"dev"`
	Ino uint64 `json:"ino"`
}

func (n NetnsID) String() string { return fmt.Sprintf("net:[%d]", n.Ino) }

func (r *Responder) quarantineDir(ns string) string {
	base := r.cfg.DataDir
	if base == "" {
		base = filepath.Dir(r.cfg.EvidenceDir)
	}
	return filepath.Join(base, "containerd", "quarantine", ns)
}

func (r *Responder) statePath(ns, id string) string {
	return filepath.Join(r.quarantineDir(ns), id+".json")
}

// QuarantineState returns what quarantine recorded about the container id
// in containerd namespace ns; ok is false when it is not quarantined.
func (r *Responder) QuarantineState(ns, id string) (st QuarantineState, ok bool, err error) {
	b, err := os.ReadFile(r.statePath(ns, id))
	if errors.Is(err, fs.ErrNotExist) {
		return QuarantineState{}, false, nil
	}
	if err != nil {
		return QuarantineState{}, false, fmt.Errorf("read quarantine state: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return QuarantineState{}, false, fmt.Errorf("read quarantine state %s: %w", r.statePath(ns, id), err)
	}
	return st, true, nil
}

func (r *Responder) saveState(st QuarantineState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode quarantine state: %w", err)
	}
	dir := r.quarantineDir(st.Namespace)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save quarantine state: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".state-*")
	if err != nil {
		return fmt.Errorf("save quarantine state: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(append(b, '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), r.statePath(st.Namespace, st.Container))
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("save quarantine state: %w", err)
	}
	return nil
}

func (r *Responder) removeState(ns, id string) error {
	if err := os.Remove(r.statePath(ns, id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove quarantine state: %w", err)
	}
	return nil
}

// openNetns opens the network namespace of t's task. It refuses the
// host's namespace (a container run with host networking cannot be
// isolated without isolating the node), and checks the pid still belongs
// to t's cgroup after the open, so a pid reused meanwhile cannot redirect
// the rules into another process's namespace.
func (r *Responder) openNetns(t target) (*os.File, NetnsID, error) {
	pid := int(t.task.Pid())
	f, err := os.Open(filepath.Join(r.proc, strconv.Itoa(pid), "ns", "net"))
	if err != nil {
		return nil, NetnsID{}, fmt.Errorf("open the network namespace of task pid %d: %w", pid, err)
	}
	id, err := netnsOf(f)
	if err == nil && r.hostNetns(id) {
		err = errors.New("it shares the host's network namespace (host networking): isolating it would isolate the node; pause or kill it instead")
	}
	if err == nil {
		var cg = t.Cgroup
		if cg, err = contain.CgroupOf(r.proc, pid); err == nil && cg != t.Cgroup {
			err = fmt.Errorf("task pid %d left cgroup %s while riposte looked at it", pid, t.Cgroup)
		}
	}
	if err != nil {
		f.Close()
		return nil, NetnsID{}, err
	}
	return f, id, nil
}

// hostNetns reports whether id is the host's network namespace (pid 1's)
// or riposte's own (the agent runs with the host's network; pid 1 may be
// out of reach in a sandbox).
func (r *Responder) hostNetns(id NetnsID) bool {
	for _, p := range []string{"1", "self"} {
		f, err := os.Open(filepath.Join(r.proc, p, "ns", "net"))
		if err != nil {
			continue
		}
		hid, err := netnsOf(f)
		f.Close()
		if err == nil && hid == id {
			return true
		}
	}
	return false
}

func netnsOf(f *os.File) (NetnsID, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return NetnsID{}, fmt.Errorf("stat %s: %w", f.Name(), err)
	}
	return NetnsID{Dev: uint64(st.Dev), Ino: st.Ino}, nil //nolint:unconvert // Dev is uint32 on some platforms
}

// quarantine isolates the container's network namespace: an nftables
// table that drops everything in and out but loopback and the configured
// allow-list. It is recorded (after the kernel accepted it, read back
// from the kernel) so release removes exactly that table; a quarantine
// found installed as recorded is left as it is.
func (r *Responder) quarantine(_ context.Context, req actions.Request, t target) (actions.Result, error) {
	if t.task == nil || !t.Running() {
		return actions.Result{Note: "not running (" + stateOf(t) + "); it has no network to isolate"}, nil
	}
	ns, id, err := r.openNetns(t)
	if err != nil {
		return actions.Result{}, err
	}
	defer ns.Close()
	c, err := nftConn(ns)
	if err != nil {
		return actions.Result{}, err
	}
	prev, had, err := r.QuarantineState(t.Namespace, t.ID)
	if err != nil {
		return actions.Result{}, err
	}
	cur, present, err := readTable(c)
	if err != nil {
		return actions.Result{}, err
	}
	detail := map[string]any{"netns": id.String(), "table": "inet " + QuarantineTable, "allow": r.allowStrings()}
	if had && present && prev.Netns == id && prev.Installed.same(cur) {
		detail["state"] = r.statePath(t.Namespace, t.ID)
		return actions.Result{Note: "already quarantined (nftables table " + QuarantineTable + " in place since " + prev.Time.Format(time.RFC3339) + ")", Detail: detail}, nil
	}
	// A table present but not as recorded (an interrupted quarantine, or
	// an edit by hand) is replaced in the same transaction.
	if err := installTable(c, present, r.allow); err != nil {
		return actions.Result{}, err
	}
	got, ok, err := readTable(c)
	if err == nil && !ok {
		err = errors.New("the table is missing right after installing it")
	}
	if err != nil {
		return actions.Result{}, fmt.Errorf("read back nftables table %s: %w", QuarantineTable, err)
	}
	st := QuarantineState{
		Version: 1, Namespace: t.Namespace, Container: t.ID, Name: t.Name, Time: time.Now().UTC(),
		Actor: req.Actor, Incident: req.Incident, Netns: id, Pid: int(t.task.Pid()), Table: QuarantineTable,
		Installed: got, Allow: r.allowStrings(),
	}
	if err := r.saveState(st); err != nil {
		// The table stays: isolation matters more than the record, and a
		// quarantine run again adopts the table by replacing it.
		return actions.Result{}, fmt.Errorf("%w (the nftables table is installed; run quarantine again to record it)", err)
	}
	detail["state"] = r.statePath(t.Namespace, t.ID)
	note := "network isolated: nftables table " + QuarantineTable + " drops all but loopback"
	if len(r.allow) > 0 {
		note += fmt.Sprintf(" and %d allowed prefixes", len(r.allow))
	}
	if present {
		note += " (replaced a table not as recorded)"
	}
	return actions.Result{Note: note, Detail: detail}, nil
}

// release removes the quarantine table recorded for the container, then
// thaws it if it is paused (as container.release does for Docker).
func (r *Responder) release(ctx context.Context, req actions.Request, t target) (actions.Result, error) {
	st, had, err := r.QuarantineState(t.Namespace, t.ID)
	if err != nil {
		return actions.Result{}, err
	}
	var parts []string
	detail := map[string]any{}
	if t.task != nil && t.Running() {
		ns, id, err := r.openNetns(t)
		if err != nil {
			return actions.Result{}, err
		}
		defer ns.Close()
		c, err := nftConn(ns)
		if err != nil {
			return actions.Result{}, err
		}
		cur, present, err := readTable(c)
		if err != nil {
			return actions.Result{}, err
		}
		detail["netns"] = id.String()
		switch {
		case had && st.Netns != id:
			parts = append(parts, fmt.Sprintf("the task runs in a new network namespace (%s, quarantined %s); the quarantine went with the old one", id, st.Netns))
			if present {
				return actions.Result{}, fmt.Errorf("a %s table is in its new network namespace %s, which riposte did not record; left in place", QuarantineTable, id)
			}
		case !present && had:
			parts = append(parts, "nftables table "+QuarantineTable+" already gone (record cleared)")
		case !present:
		case had && !st.Installed.same(cur):
			return actions.Result{}, fmt.Errorf("nftables table %s in %s is not the one quarantine installed (chains or rules changed since %s); left in place",
				QuarantineTable, id, st.Time.Format(time.RFC3339))
		default:
			// Present and as recorded, or present without a record: the
			// name is riposte's, written by a quarantine that could not
			// record it.
			if err := deleteTable(c); err != nil {
				return actions.Result{}, err
			}
			detail["removed"] = "inet " + QuarantineTable
			if had {
				parts = append(parts, "network restored (nftables table "+QuarantineTable+" removed)")
			} else {
				parts = append(parts, "network restored (removed an unrecorded nftables table "+QuarantineTable+")")
			}
		}
	} else if had {
		parts = append(parts, "not running ("+stateOf(t)+"); its network namespace went with the quarantine (record cleared)")
	}
	if had {
		if err := r.removeState(t.Namespace, t.ID); err != nil {
			return actions.Result{}, err
		}
	}
	res, err := r.unpause(ctx, t)
	if err != nil {
		return actions.Result{}, fmt.Errorf("%s; unpause: %w", joinNotes(parts, "network released"), err)
	}
	_, unpaused := res.Detail["via"] // set only when it thawed something
	if unpaused {
		parts = append(parts, res.Note)
	}
	detail["unpaused"] = unpaused
	if len(parts) == 0 {
		parts = append(parts, "nothing to release (not quarantined, not paused)")
	}
	return actions.Result{Note: joinNotes(parts, ""), Detail: detail}, nil
}

func joinNotes(parts []string, empty string) string {
	if len(parts) == 0 {
		return empty
	}
	out := parts[0]
	for _, p := range parts[1:] {
		out += "; " + p
	}
	return out
}

func (r *Responder) allowStrings() []string {
	out := make([]string, len(r.allow))
	for i, p := range r.allow {
		out[i] = p.String()
	}
	return out
}

// parseAllow parses the quarantine allow-list.
func parseAllow(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	var errs []error
	for i, s := range list {
		p, err := netip.ParsePrefix(s)
		if err != nil && !strings.Contains(s, "%") { // a zone has no place in a filter
			if a, aerr := netip.ParseAddr(s); aerr == nil {
				p, err = a.Prefix(a.BitLen())
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("quarantine.allow[%d]: want a CIDR prefix or an address, got %q", i, s))
			continue
		}
		if p.Addr().Is4In6() {
			errs = append(errs, fmt.Errorf("quarantine.allow[%d]: want a plain IPv4 or IPv6 prefix, got %q", i, s))
			continue
		}
		out = append(out, p.Masked())
	}
	return out, errors.Join(errs...)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
