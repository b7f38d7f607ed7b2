package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"

	"github.com/riposte-sec/riposte/internal/actions"
)

// QuarantineState is what container.quarantine records about a container so
// that container.release can put it back: one JSON file per container in
// <data_dir>/docker/quarantine/<full id>.json, written atomically.
type QuarantineState struct {
	Version   int            `json:"version"`
	Container string         `json:"container"` // full id
	Name      string         `json:"name"`
	Time      time.Time      `json:"time"`
	Actor     string         `json:"actor,omitempty"`
	Incident  string         `json:"incident,omitempty"`
	Networks  []SavedNetwork `json:"networks"`
}

// SavedNetwork is one network the container was disconnected from, with the
// settings release reconnects it with.
type SavedNetwork struct {
	Name string `json:"name"`
	ID   string `json:"id"`
	// Aliases are the user-given DNS aliases (the automatic short-id alias
	// is left out; Docker adds it again).
	Aliases []string `json:"aliases,omitempty"`
	// IPAMConfig holds addresses the user pinned (--ip, --ip6); release
	// asks for them again.
	IPAMConfig *network.EndpointIPAMConfig `json:"ipam_config,omitempty"`
	Links      []string                    `json:"links,omitempty"`
	DriverOpts map[string]string           `json:"driver_opts,omitempty"`
	// The addresses the container had, for the record. Dynamic addresses
	// are allocated afresh on release and may differ.
	IPv4       string `json:"ipv4,omitempty"`
	IPv6       string `json:"ipv6,omitempty"`
	MacAddress string `json:"mac_address,omitempty"`
}

func (s SavedNetwork) describe() map[string]any {
	d := map[string]any{"name": s.Name, "id": s.ID}
	if len(s.Aliases) > 0 {
		d["aliases"] = s.Aliases
	}
	if s.IPv4 != "" {
		d["ipv4"] = s.IPv4
	}
	if s.IPv6 != "" {
		d["ipv6"] = s.IPv6
	}
	if s.IPAMConfig != nil {
		d["pinned"] = true
	}
	return d
}

func (r *Responder) quarantineDir() string {
	return filepath.Join(r.cfg.DataDir, "docker", "quarantine")
}

func (r *Responder) statePath(id string) string {
	return filepath.Join(r.quarantineDir(), id+".json")
}

// QuarantineState returns what quarantine recorded about the container with
// full id id; ok is false when it is not quarantined.
func (r *Responder) QuarantineState(id string) (st QuarantineState, ok bool, err error) {
	b, err := os.ReadFile(r.statePath(id))
	if errors.Is(err, fs.ErrNotExist) {
		return QuarantineState{}, false, nil
	}
	if err != nil {
		return QuarantineState{}, false, fmt.Errorf("read quarantine state: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return QuarantineState{}, false, fmt.Errorf("read quarantine state %s: %w", r.statePath(id), err)
	}
	return st, true, nil
}

func (r *Responder) saveState(st QuarantineState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode quarantine state: %w", err)
	}
	if err := writeFileAtomic(r.statePath(st.Container), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("save quarantine state: %w", err)
	}
	return nil
}

func (r *Responder) removeState(id string) error {
	if err := os.Remove(r.statePath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove quarantine state: %w", err)
	}
	return syncDir(r.quarantineDir())
}

// saved turns the container's current endpoints into SavedNetworks, sorted
// by name.
func saved(info container.InspectResponse) []SavedNetwork {
	if info.NetworkSettings == nil {
		return nil
	}
	short := shortID(info.ID)
	var out []SavedNetwork
	for name, ep := range info.NetworkSettings.Networks {
		if ep == nil {
			continue
		}
		s := SavedNetwork{
			Name: name, ID: ep.NetworkID, Links: ep.Links, DriverOpts: ep.DriverOpts,
			IPv4: ep.IPAddress, IPv6: ep.GlobalIPv6Address, MacAddress: ep.MacAddress,
		}
		for _, a := range ep.Aliases {
			if a != short && a != info.ID {
				s.Aliases = append(s.Aliases, a)
			}
		}
		if c := ep.IPAMConfig; c != nil && (c.IPv4Address != "" || c.IPv6Address != "" || len(c.LinkLocalIPs) > 0) {
			s.IPAMConfig = c
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func names(ns []SavedNetwork) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.Name
	}
	return out
}

// quarantine disconnects the container from every network. The state file
// is written before the first disconnect, so a crash half-way leaves what
// release needs; running quarantine again finishes the job.
func (r *Responder) quarantine(ctx context.Context, req actions.Request, c target) (actions.Result, error) {
	info, err := r.reinspect(ctx, c) // under the container lock now
	if err != nil {
		return actions.Result{}, err
	}
	mode := container.NetworkMode("")
	if info.HostConfig != nil {
		mode = info.HostConfig.NetworkMode
	}
	switch {
	case mode.IsHost():
		return actions.Result{}, errors.New("it shares the host's network (network mode host): disconnecting is impossible; pause or stop it instead")
	case mode.IsContainer():
		return actions.Result{}, fmt.Errorf("it shares the network of container %s (network mode %s): quarantine that container, or pause or stop this one", mode.ConnectedContainer(), mode)
	}
	current := saved(info)
	if mode.IsNone() || slices.Equal(names(current), []string{"none"}) {
		return actions.Result{Note: "already isolated (network mode none)"}, nil
	}
	prev, had, err := r.QuarantineState(c.id)
	if err != nil {
		return actions.Result{}, err
	}
	if len(current) == 0 {
		if had {
			return actions.Result{Note: fmt.Sprintf("already quarantined (disconnected from %s)", strings.Join(names(prev.Networks), ", ")),
				Detail: map[string]any{"networks": describeAll(prev.Networks)}}, nil
		}
		return actions.Result{Note: "already isolated (no networks)"}, nil
	}
	// Merge with an earlier, interrupted quarantine: keep what it recorded
	// for networks that are gone now, take the current settings otherwise.
	all := current
	for _, p := range prev.Networks {
		if !slices.Contains(names(current), p.Name) {
			all = append(all, p)
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Name < all[j].Name })
	st := QuarantineState{
		Version: 1, Container: c.id, Name: c.name, Time: time.Now().UTC(),
		Actor: req.Actor, Incident: req.Incident, Networks: all,
	}
	if err := r.saveState(st); err != nil {
		return actions.Result{}, err
	}
	var errs []error
	for _, n := range current {
		err := r.call(ctx, "disconnect from network "+n.Name, r.cfg.Timeouts.API, func(ctx context.Context) error {
			return r.api.NetworkDisconnect(ctx, n.ID, c.id, false)
		})
		if err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return actions.Result{}, fmt.Errorf("%w (state kept in %s; run quarantine again to finish, or release)", err, r.statePath(c.id))
	}
	after, err := r.reinspect(ctx, c)
	if err != nil {
		return actions.Result{}, err
	}
	if left := saved(after); len(left) > 0 {
		return actions.Result{}, fmt.Errorf("still connected to %s after disconnecting", strings.Join(names(left), ", "))
	}
	return actions.Result{
		Note:   fmt.Sprintf("disconnected from %s", strings.Join(names(current), ", ")),
		Detail: map[string]any{"networks": describeAll(current), "state": r.statePath(c.id)},
	}, nil
}

func describeAll(ns []SavedNetwork) []map[string]any {
	out := make([]map[string]any, len(ns))
	for i, n := range ns {
		out[i] = n.describe()
	}
	return out
}

// release reconnects what quarantine recorded and unpauses the container.
func (r *Responder) release(ctx context.Context, _ actions.Request, c target) (actions.Result, error) {
	info, err := r.reinspect(ctx, c)
	if err != nil {
		return actions.Result{}, err
	}
	st, had, err := r.QuarantineState(c.id)
	if err != nil {
		return actions.Result{}, err
	}
	var done, gone []string
	if had {
		connected := names(saved(info))
		var errs []error
		var left []SavedNetwork
		for _, n := range st.Networks {
			if slices.Contains(connected, n.Name) {
				continue // reconnected by an earlier, interrupted release, or by hand
			}
			ok, err := r.reconnect(ctx, c, n)
			switch {
			case err != nil:
				errs = append(errs, err)
				left = append(left, n)
			case !ok:
				gone = append(gone, n.Name)
			default:
				done = append(done, n.Name)
			}
		}
		if err := errors.Join(errs...); err != nil {
			st.Networks = left
			if serr := r.saveState(st); serr != nil {
				err = errors.Join(err, serr)
			}
			return actions.Result{}, fmt.Errorf("%w (still to reconnect: %s)", err, strings.Join(names(left), ", "))
		}
	}
	unpaused := false
	if paused(info) {
		err := r.call(ctx, "unpause", r.cfg.Timeouts.API, func(ctx context.Context) error { return r.api.ContainerUnpause(ctx, c.id) })
		if err != nil && !cerrdefs.IsConflict(err) {
			return actions.Result{}, err
		}
		unpaused = err == nil
	} else if running(info) {
		// Frozen by the freezer path, which the daemon does not see.
		_, thawed, err := r.thaw(ctx, target{ref: c.ref, id: c.id, name: c.name, info: info})
		if err != nil {
			return actions.Result{}, err
		}
		unpaused = thawed
	}
	if had {
		if err := r.removeState(c.id); err != nil {
			return actions.Result{}, err
		}
	}
	var parts []string
	if had && len(done) == 0 && len(gone) == 0 {
		parts = append(parts, "networks already reconnected (quarantine record cleared)")
	}
	if len(done) > 0 {
		parts = append(parts, "reconnected "+strings.Join(done, ", "))
	}
	if len(gone) > 0 {
		parts = append(parts, "network "+strings.Join(gone, ", ")+" no longer exists, not reconnected")
	}
	if unpaused {
		parts = append(parts, "unpaused")
	}
	if len(parts) == 0 {
		parts = append(parts, "nothing to release (not quarantined, not paused)")
	}
	detail := map[string]any{"reconnected": done, "unpaused": unpaused}
	if len(gone) > 0 {
		detail["gone"] = gone
	}
	return actions.Result{Note: strings.Join(parts, "; "), Detail: detail}, nil
}

// reconnect connects c to n again with its recorded settings; ok is false
// when the network no longer exists (by id, then by name).
func (r *Responder) reconnect(ctx context.Context, c target, n SavedNetwork) (ok bool, err error) {
	ep := &network.EndpointSettings{IPAMConfig: n.IPAMConfig, Links: n.Links, DriverOpts: n.DriverOpts}
	if n.Name != "bridge" { // the default bridge takes no aliases
		ep.Aliases = n.Aliases
	}
	for _, ref := range []string{n.ID, n.Name} {
		if ref == "" {
			continue
		}
		err = r.call(ctx, "reconnect network "+n.Name, r.cfg.Timeouts.API, func(ctx context.Context) error {
			return r.api.NetworkConnect(ctx, ref, c.id, ep)
		})
		if err == nil {
			return true, nil
		}
		if !cerrdefs.IsNotFound(err) {
			return false, err
		}
	}
	return false, nil
}
