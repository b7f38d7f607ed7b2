package containerd_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/google/nftables"
	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/cgroupctl/cgroupctltest"
	"github.com/riposte-sec/riposte/internal/testutil"
	ctrd "github.com/riposte-sec/riposte/responders/containerd"
	"github.com/riposte-sec/riposte/responders/containerd/containerdtest"
)

// Addresses on the test's veth: the container's end and the peer
// namespace's two (TEST-NET-1, never routed; both ends are in namespaces
// the test made or the container's own).
const (
	ctrAddr   = "192.0.2.2"
	peerAddr  = "192.0.2.1"
	otherAddr = "192.0.2.3" // the peer's second address, outside the allow-list
)

// inNetns runs f on a thread switched into ns. The thread goes back to
// the test's namespace afterwards; if it cannot, it is left locked, and
// Go ends it with the goroutine.
func inNetns(ns netns.NsHandle, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			errc <- err
			return
		}
		ferr := f()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// wired is a container's network namespace joined by a veth pair to a
// namespace the test made, with a listener on each side.
type wired struct {
	peer    netns.NsHandle
	ctr     netns.NsHandle
	peerLn  net.Listener // in the peer namespace, on peerAddr and otherAddr
	ctrPort int          // a listener in the container's namespace, on every address
	got     chan string  // what the peer's listener received, one line per connection
}

func wire(t *testing.T, pid uint32) *wired {
	t.Helper()
	w := &wired{got: make(chan string, 16)}
	var err error
	if w.ctr, err = netns.GetFromPid(int(pid)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.ctr.Close() })
	// A new namespace, made on a thread of its own; the handle keeps it
	// (and the veth pair in it) alive until the test ends.
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		w.peer, err = netns.New()
		if err != nil {
			errc <- err
			return
		}
		if err := netns.Set(orig); err != nil {
			errc <- err
			return
		}
		runtime.UnlockOSThread()
		errc <- nil
	}()
	if err := <-errc; err != nil {
		t.Fatalf("make a network namespace: %v", err)
	}
	t.Cleanup(func() { w.peer.Close() })

	suffix := strings.TrimPrefix(testutil.UniqueName("x"), "x-")
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "rqc" + suffix}, PeerName: "rqp" + suffix}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatalf("add veth pair: %v", err)
	}
	for name, ns := range map[string]netns.NsHandle{"rqc" + suffix: w.ctr, "rqp" + suffix: w.peer} {
		l, err := netlink.LinkByName(name)
		if err == nil {
			err = netlink.LinkSetNsFd(l, int(ns))
		}
		if err != nil {
			_ = netlink.LinkDel(veth)
			t.Fatalf("move %s: %v", name, err)
		}
	}
	setup := func(ns netns.NsHandle, name string, addrs ...string) {
		h, err := netlink.NewHandleAt(ns)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		for _, n := range []string{name, "lo"} {
			l, err := h.LinkByName(n)
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range addrs {
				if n == "lo" {
					break
				}
				addr, _ := netlink.ParseAddr(a + "/24")
				if err := h.AddrAdd(l, addr); err != nil {
					t.Fatalf("address %s on %s: %v", a, n, err)
				}
			}
			if err := h.LinkSetUp(l); err != nil {
				t.Fatalf("up %s: %v", n, err)
			}
		}
	}
	setup(w.ctr, "rqc"+suffix, ctrAddr)
	setup(w.peer, "rqp"+suffix, peerAddr, otherAddr)
	t.Cleanup(func() {
		// The pair goes with either namespace; delete it now in case the
		// container's outlives the test's cleanup order.
		if h, err := netlink.NewHandleAt(w.peer); err == nil {
			if l, err := h.LinkByName("rqp" + suffix); err == nil {
				_ = h.LinkDel(l)
			}
			h.Close()
		}
	})

	if err := inNetns(w.peer, func() (err error) { w.peerLn, err = net.Listen("tcp", ":0"); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.peerLn.Close() })
	go func() {
		for {
			c, err := w.peerLn.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				b, _ := io.ReadAll(c)
				w.got <- strings.TrimSpace(string(b))
			}()
		}
	}()
	var ctrLn net.Listener
	if err := inNetns(w.ctr, func() (err error) { ctrLn, err = net.Listen("tcp", ":0"); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctrLn.Close() })
	w.ctrPort = ctrLn.Addr().(*net.TCPAddr).Port
	go func() {
		for {
			c, err := ctrLn.Accept()
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	return w
}

func (w *wired) peerPort() int { return w.peerLn.Addr().(*net.TCPAddr).Port }

// fromContainer has the container's own process (busybox nc, exec'd in
// the task) send a token to addr:port; it reports whether the connection
// was made, checked on the listener's side when it was.
func (w *wired) fromContainer(t *testing.T, ctx context.Context, task containerd.Task, addr string, port int) bool {
	t.Helper()
	token := testutil.UniqueName("token")
	code := execCode(t, ctx, task, "sh", "-c", fmt.Sprintf("echo %s | nc -w 2 %s %d", token, addr, port))
	if code != 0 {
		return false
	}
	if port != w.peerPort() {
		return true
	}
	select {
	case got := <-w.got:
		if got != token {
			t.Fatalf("the listener got %q, want %q", got, token)
		}
		return true
	case <-time.After(5 * time.Second):
		t.Fatalf("nc in the container exited 0 but the listener got nothing")
		return false
	}
}

// toContainer dials the listener in the container's namespace from the
// peer namespace, from the local address from.
func (w *wired) toContainer(t *testing.T, from string) bool {
	t.Helper()
	var ok bool
	err := inNetns(w.peer, func() error {
		d := net.Dialer{Timeout: time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		c, err := d.Dial("tcp", net.JoinHostPort(ctrAddr, strconv.Itoa(w.ctrPort)))
		if err == nil {
			ok = true
			c.Close()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// tables lists the nftables tables in ns, read by the test itself.
func tables(t *testing.T, ns netns.NsHandle) []string {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		t.Fatal(err)
	}
	ts, err := c.ListTables()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, x := range ts {
		out = append(out, x.Name)
	}
	return out
}

func execCode(t *testing.T, ctx context.Context, task containerd.Task, args ...string) int {
	t.Helper()
	spec, err := task.Spec(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pspec := *spec.Process
	pspec.Args = args
	p, err := task.Exec(ctx, "exec-"+testutil.UniqueName("x"), &pspec, cio.NullIO)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Delete(context.WithoutCancel(ctx))
	ch, err := p.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case st := <-ch:
		return int(st.ExitCode())
	case <-time.After(15 * time.Second):
		t.Fatalf("exec %v did not finish in 15s", args)
		return -1
	}
}

// TestIntegrationQuarantineRelease: a container made directly through
// containerd, joined by a veth pair to a namespace the test made, reaches
// a listener there and is reached from there; quarantined, it can do
// neither but still talks over loopback; quarantined again, nothing
// changes; released, both work again and riposte's table is gone. With an
// allow-list, the allowed peer address still works both ways and the
// peer's other address does not.
func TestIntegrationQuarantineRelease(t *testing.T) {
	e := setup(t)
	id := cgroupctltest.RandomID(t)
	_, task := containerdtest.Run(t, e.cli, e.ctx, e.img, id, criLabels)
	w := wire(t, task.Pid())

	if !w.fromContainer(t, e.ctx, task, peerAddr, w.peerPort()) || !w.toContainer(t, peerAddr) {
		t.Fatal("no connectivity before quarantine")
	}

	res, err := e.run(t, "containerd.quarantine", id, nil)
	if err != nil || !strings.HasPrefix(res.Note, "network isolated") || res.Detail["pod_name"] != "api-7d9f" {
		t.Fatalf("quarantine: %+v, %v", res, err)
	}
	if w.fromContainer(t, e.ctx, task, peerAddr, w.peerPort()) {
		t.Fatal("the quarantined container still reaches the peer")
	}
	if w.toContainer(t, peerAddr) {
		t.Fatal("the peer still reaches the quarantined container")
	}
	if !w.fromContainer(t, e.ctx, task, "127.0.0.1", w.ctrPort) {
		t.Fatal("loopback broken by quarantine")
	}
	st, ok, err := e.r.QuarantineState(e.ns, id)
	if err != nil || !ok || st.Table != ctrd.QuarantineTable || st.Pid != int(task.Pid()) || st.Actor != "test" || st.Incident != "inc-1" {
		t.Fatalf("quarantine state: %+v, %v, %v", st, ok, err)
	}

	if res, err := e.run(t, "containerd.quarantine", id, nil); err != nil || !strings.HasPrefix(res.Note, "already quarantined") {
		t.Fatalf("quarantine again: %+v, %v", res, err)
	}
	if got := tables(t, w.ctr); strings.Join(got, ",") != ctrd.QuarantineTable {
		t.Fatalf("tables after quarantining twice: %v", got)
	}

	res, err = e.run(t, "containerd.release", id, nil)
	if err != nil || res.Note != "network restored (nftables table "+ctrd.QuarantineTable+" removed)" {
		t.Fatalf("release: %+v, %v", res, err)
	}
	if got := tables(t, w.ctr); len(got) != 0 {
		t.Fatalf("tables after release: %v", got)
	}
	if _, err := os.Stat(filepath.Join(e.dir, "containerd", "quarantine", e.ns, id+".json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("quarantine record after release: %v", err)
	}
	if !w.fromContainer(t, e.ctx, task, peerAddr, w.peerPort()) || !w.toContainer(t, peerAddr) {
		t.Fatal("no connectivity after release")
	}
	if res, err := e.run(t, "containerd.release", id, nil); err != nil || res.Note != "nothing to release (not quarantined, not paused)" {
		t.Fatalf("release again: %+v, %v", res, err)
	}

	// Release also thaws a paused container, as container.release does.
	if _, err := e.run(t, "containerd.pause", id, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := e.run(t, "containerd.quarantine", id, nil); err != nil {
		t.Fatalf("quarantine a paused container: %v", err)
	}
	res, err = e.run(t, "containerd.release", id, nil)
	if err != nil || res.Detail["unpaused"] != true || status(t, e.ctx, task) != containerd.Running {
		t.Fatalf("release of a paused, quarantined container: %+v, %v", res, err)
	}

	allowing, err := ctrd.New(ctrd.Config{Namespaces: []string{e.ns}, DataDir: e.dir,
		Quarantine: ctrd.QuarantineConfig{Allow: []string{peerAddr + "/32"}}}, ctrd.Deps{Client: e.cli})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := allowing.Run(context.Background(), actions.Request{Action: "containerd.quarantine", Container: id}); err != nil {
		t.Fatal(err)
	}
	if !w.fromContainer(t, e.ctx, task, peerAddr, w.peerPort()) || !w.toContainer(t, peerAddr) {
		t.Fatal("the allowed address is cut off")
	}
	if w.fromContainer(t, e.ctx, task, otherAddr, w.peerPort()) || w.toContainer(t, otherAddr) {
		t.Fatal("an address outside the allow-list gets through")
	}
	if _, err := allowing.Run(context.Background(), actions.Request{Action: "containerd.release", Container: id}); err != nil {
		t.Fatal(err)
	}
	if !w.toContainer(t, otherAddr) {
		t.Fatal("no connectivity after the second release")
	}
}

// TestIntegrationQuarantineProtected: a protected container is refused
// before riposte enters its network namespace: no table, no record, and it
// keeps its network.
func TestIntegrationQuarantineProtected(t *testing.T) {
	e := setup(t)
	id := cgroupctltest.RandomID(t)
	_, task := containerdtest.Run(t, e.cli, e.ctx, e.img, id, map[string]string{"riposte.protect": "true"})
	w := wire(t, task.Pid())
	_, err := e.run(t, "containerd.quarantine", id, nil)
	if !errors.Is(err, actions.ErrProtected) {
		t.Fatalf("quarantine of a protected container: %v", err)
	}
	if got := tables(t, w.ctr); len(got) != 0 {
		t.Fatalf("tables in a protected container's namespace: %v", got)
	}
	if _, ok, err := e.r.QuarantineState(e.ns, id); ok || err != nil {
		t.Fatalf("a quarantine record for a protected container: %v, %v", ok, err)
	}
	if !w.fromContainer(t, e.ctx, task, peerAddr, w.peerPort()) || !w.toContainer(t, peerAddr) {
		t.Fatal("a protected container lost its network")
	}
}

// TestIntegrationQuarantineHostNetwork: a container in the host's network
// namespace is refused (isolating it would isolate the node), and no table
// is installed there.
func TestIntegrationQuarantineHostNetwork(t *testing.T) {
	e := setup(t)
	id := cgroupctltest.RandomID(t)
	containerdtest.RunSpec(t, e.cli, e.ctx, e.img, id, nil, []oci.SpecOpts{oci.WithHostNamespace(specs.NetworkNamespace)})
	_, err := e.run(t, "containerd.quarantine", id, nil)
	if err == nil || !strings.Contains(err.Error(), "shares the host's network namespace") {
		t.Fatalf("quarantine of a host-network container: %v", err)
	}
	host, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	for _, name := range tables(t, host) {
		if name == ctrd.QuarantineTable {
			t.Fatal("a quarantine table in the host's network namespace")
		}
	}
}
