package capture

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"golang.org/x/sys/unix"

	"github.com/riposte-sec/riposte/detector/event"
	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/responders/capture/capfile"
)

// File names in a capture directory.
const (
	SyscallsFile = "syscalls.jsonl.gz" // package capfile's format
	NetworkFile  = "network.pcapng"
	ManifestName = "manifest.json" // written last; its SHA-256 is Result.SHA256
)

const (
	dirTimeForm = "20060102T150405.000Z"
	// sysTrailerRoom is kept out of the budget for the syscall file's
	// trailer, its last flush and the gzip footer.
	sysTrailerRoom = 8 << 10
	// drainIdle and drainMax bound how long the syscall recorder keeps
	// reading after the capture is told to stop, for the events still in
	// the detector's pipeline (the container's last exits).
	drainIdle = 150 * time.Millisecond
	drainMax  = time.Second
	// rcvbuf is each packet socket's receive buffer.
	rcvbuf = 8 << 20
)

// session is one capture of one container.
type session struct {
	c        *Capture
	req      actions.Request
	p        params
	info     container.InspectResponse
	id       string // capture id
	name     string // container name
	dir      string
	started  time.Time
	endsAt   time.Time
	budget   *budget
	header   capfile.Header
	stopCh   chan struct{}
	stopOnce sync.Once
	reason   string // why it stopped; set once, before stopCh closes
	done     chan struct{}
	result   actions.Result // final, once done is closed
	err      error

	notes []string

	// syscalls
	events      <-chan event.Event
	unsubscribe func()
	lostBefore  capfile.Lost
	sysFile     *evidenceFile
	sysw        *capfile.Writer

	// network
	socks   []*ifaceSock
	netFile *evidenceFile
	pcap    *pcapWriter
}

func newSession(c *Capture, req actions.Request, info container.InspectResponse, p params) *session {
	now := time.Now().UTC()
	name := strings.TrimPrefix(info.Name, "/")
	incident := actions.PathSegment(req.Incident, "manual")
	base := filepath.Join(c.cfg.EvidenceDir, incident, shortID(info.ID))
	s := &session{c: c, req: req, p: p, info: info, name: name, started: now, endsAt: now.Add(p.duration),
		stopCh: make(chan struct{}), done: make(chan struct{}), notes: append([]string(nil), p.notes...)}
	stamp := "capture-" + now.Format(dirTimeForm)
	s.dir = filepath.Join(base, stamp)
	s.id = shortID(info.ID) + "-" + now.Format(dirTimeForm)
	for i := 2; ; i++ {
		if _, err := os.Lstat(s.dir); errors.Is(err, fs.ErrNotExist) {
			break
		}
		s.dir = filepath.Join(base, fmt.Sprintf("%s-%d", stamp, i))
		s.id = fmt.Sprintf("%s-%s-%d", shortID(info.ID), now.Format(dirTimeForm), i)
	}
	return s
}

func (s *session) containerLabel() string {
	return fmt.Sprintf("%s (%s)", s.name, shortID(s.info.ID))
}

// start creates the directory and the files, subscribes to the detector,
// writes the state header and opens the packet sockets. Nothing runs yet;
// run records. On error the caller calls abort.
func (s *session) start() (actions.Result, error) {
	if err := os.MkdirAll(filepath.Dir(s.dir), 0o750); err != nil {
		return actions.Result{}, fmt.Errorf("create evidence directory: %w", err)
	}
	if err := os.Mkdir(s.dir, 0o750); err != nil {
		return actions.Result{}, fmt.Errorf("create capture directory: %w", err)
	}
	reserve := int64(0)
	if s.p.syscalls {
		reserve += sysTrailerRoom
	}
	pid := s.info.State.Pid
	if s.p.network {
		socks, skipped, err := openNetns(s.c.procRoot, pid, rcvbuf)
		switch {
		case errors.Is(err, errHostNetwork):
			s.notes = append(s.notes, err.Error())
		case err != nil:
			return actions.Result{}, err
		case len(socks) == 0:
			s.notes = append(s.notes, "the container has no interface that is up: no network capture")
		default:
			s.socks = socks
			reserve += int64(len(socks)) * isbRoom
		}
		for _, sk := range skipped {
			s.notes = append(s.notes, "interface "+sk+" not recorded")
		}
	}
	s.budget = &budget{limit: s.p.maxBytes - reserve}
	s.header = s.makeHeader()

	if s.p.syscalls {
		// Subscribe before reading /proc, so that nothing falls between
		// the state header and the first event.
		if lc, ok := s.c.deps.Events.(LossCounter); ok {
			s.lostBefore = lostOf(lc)
		}
		s.events, s.unsubscribe = s.c.deps.Events.Subscribe(s.info.ID, s.c.cfg.EventBuffer)
		f, err := createEvidence(s.dir, SyscallsFile)
		if err != nil {
			return actions.Result{}, err
		}
		s.sysFile = f
		// Records are admitted against their uncompressed size until a
		// flush settles the budget; flushing every 1/32 of the cap keeps
		// that pessimism from stopping the pcap early under a small cap.
		flushEvery := int(min(max(s.p.maxBytes/32, 4<<10), 256<<10))
		w, err := capfile.NewWriter(f, s.header, capfile.WriterOptions{Reserve: s.budget.take, Release: s.budget.give, FlushEvery: flushEvery})
		if err != nil {
			return actions.Result{}, fmt.Errorf("write %s: %w", SyscallsFile, err)
		}
		s.sysw = w
		if err := s.writeState(); err != nil {
			return actions.Result{}, err
		}
	}
	if len(s.socks) > 0 {
		f, err := createEvidence(s.dir, NetworkFile)
		if err != nil {
			return actions.Result{}, err
		}
		s.netFile = f
		pw, err := newPcapWriter(f, s.socks, s.pcapMeta(), s.budget, s.started)
		if err != nil {
			return actions.Result{}, fmt.Errorf("write %s: %w", NetworkFile, err)
		}
		s.pcap = pw
	}
	if s.sysw == nil && s.pcap == nil {
		return actions.Result{}, errors.New("nothing to capture: " + strings.Join(s.notes, "; "))
	}
	return s.startResult(), nil
}

// writeState writes the state header: processes, then sockets. A state
// larger than the size cap ends the capture at once (max_bytes).
func (s *session) writeState() error {
	st := readState(s.c.procRoot, s.info.ID, s.info.State.Pid)
	s.notes = append(s.notes, st.notes...)
	for _, p := range st.procs {
		if err := s.sysw.Process(p); err != nil {
			return s.stateErr(err)
		}
	}
	for _, sk := range st.sockets {
		if err := s.sysw.Socket(sk); err != nil {
			return s.stateErr(err)
		}
	}
	if err := s.sysw.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", SyscallsFile, err)
	}
	return nil
}

func (s *session) stateErr(err error) error {
	if errors.Is(err, capfile.ErrLimit) {
		s.stop(capfile.ReasonMaxBytes)
		return nil
	}
	return fmt.Errorf("write the state header: %w", err)
}

func (s *session) makeHeader() capfile.Header {
	info := s.info
	c := capfile.Container{ID: info.ID, Name: s.name, ImageID: info.Image, PID: info.State.Pid}
	if info.Config != nil {
		c.Image = info.Config.Image
		c.Labels = info.Config.Labels
	}
	if info.NetworkSettings != nil {
		names := make([]string, 0, len(info.NetworkSettings.Networks))
		for n := range info.NetworkSettings.Networks {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			ep := info.NetworkSettings.Networks[n]
			if ep == nil {
				continue
			}
			c.Networks = append(c.Networks, capfile.Network{Name: n, IP: ep.IPAddress, IPv6: ep.GlobalIPv6Address, Gateway: ep.Gateway, MAC: ep.MacAddress})
		}
	}
	return capfile.Header{CaptureID: s.id, Started: s.started, Hostname: s.c.hostname, Container: c,
		Incident: s.req.Incident, Alert: s.req.Alert.ID, Rule: s.req.Alert.Rule, Actor: s.req.Actor,
		Duration: s.p.duration, MaxBytes: s.p.maxBytes, EndsAt: s.endsAt}
}

func (s *session) pcapMeta() pcapMeta {
	h := s.header
	image := h.Container.Image
	incident := orNone(h.Incident)
	var uts unix.Utsname
	osName := "Linux"
	if unix.Uname(&uts) == nil {
		osName = "Linux " + unix.ByteSliceToString(uts.Release[:])
	}
	return pcapMeta{
		sectionComment: fmt.Sprintf("riposte capture %s of container %s (%s), image %s, incident %s, on %s, started %s",
			s.id, s.name, h.Container.ID, image, incident, s.c.hostname, s.started.Format(time.RFC3339Nano)),
		describe: fmt.Sprintf("container %s (%s), image %s, network namespace of pid %d", s.name, shortID(h.Container.ID), image, h.Container.PID),
		ifaceComment: fmt.Sprintf("riposte capture_id=%s container_id=%s container_name=%s image=%s incident=%s",
			s.id, h.Container.ID, s.name, image, incident),
		snaplen: s.c.cfg.Snaplen,
		osName:  osName,
	}
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// files lists the capture's files (without the manifest).
func (s *session) files() []string {
	var out []string
	if s.sysFile != nil {
		out = append(out, s.sysFile.path)
	}
	if s.netFile != nil {
		out = append(out, s.netFile.path)
	}
	return out
}

func (s *session) what() string {
	switch {
	case s.sysw != nil && s.pcap != nil:
		return "syscalls and network"
	case s.sysw != nil:
		return "syscalls"
	}
	return "network"
}

func (s *session) ifaceNames() []string {
	var out []string
	for _, sk := range s.socks {
		out = append(out, sk.name)
	}
	return out
}

func (s *session) startResult() actions.Result {
	what := s.what()
	if len(s.socks) > 0 {
		what += " (" + strings.Join(s.ifaceNames(), ", ") + ")"
	}
	d := map[string]any{
		"capture_id": s.id, "dir": s.dir, "files": s.files(), "manifest": filepath.Join(s.dir, ManifestName),
		"ends_at": s.endsAt.Format(time.RFC3339Nano), "max_bytes": s.p.maxBytes, "background": !s.p.wait,
		"container_id": s.info.ID, "container_name": s.name,
	}
	if len(s.socks) > 0 {
		d["interfaces"] = s.ifaceNames()
	}
	if len(s.notes) > 0 {
		d["notes"] = s.notes
	}
	return actions.Result{
		Note: fmt.Sprintf("capture started: %s of %s until %s or %s, in %s", what, s.containerLabel(),
			s.endsAt.Format(time.RFC3339), ByteSize(s.p.maxBytes), s.dir),
		Detail: d,
	}
}

func (s *session) alreadyRunning() actions.Result {
	return actions.Result{
		Note: fmt.Sprintf("capture already running, ends at %s (capture %s in %s)", s.endsAt.Format(time.RFC3339), s.id, s.dir),
		Detail: map[string]any{"already_running": true, "capture_id": s.id, "dir": s.dir, "ends_at": s.endsAt.Format(time.RFC3339Nano),
			"container_id": s.info.ID, "container_name": s.name},
	}
}

// stop ends the capture; the first reason wins.
func (s *session) stop(reason string) {
	s.stopOnce.Do(func() {
		s.reason = reason
		close(s.stopCh)
	})
}

func (s *session) stopped() bool {
	select {
	case <-s.stopCh:
		return true
	default:
		return false
	}
}

// wait waits for the final result; ctx ending stops the capture and still
// waits for its files to be sealed.
func (s *session) wait(ctx context.Context) (actions.Result, error) {
	select {
	case <-s.done:
	case <-ctx.Done():
		s.stop(capfile.ReasonStopped)
		<-s.done
	}
	return s.result, s.err
}

// abort undoes a start that failed: nothing of it is kept.
func (s *session) abort(err error) {
	s.err = err
	if s.unsubscribe != nil {
		s.unsubscribe()
	}
	for _, sk := range s.socks {
		sk.close()
	}
	for _, f := range []*evidenceFile{s.sysFile, s.netFile} {
		if f != nil {
			f.f.Close()
		}
	}
	os.RemoveAll(s.dir)
	// The container's and the incident's directories, when this made them
	// and nothing else is in them.
	os.Remove(filepath.Dir(s.dir))
	os.Remove(filepath.Dir(filepath.Dir(s.dir)))
	close(s.done)
}

// run records until the capture ends, then seals the directory.
func (s *session) run() {
	defer close(s.done)
	defer s.c.unlist(s) // runs first: off the list before waiters wake
	var wg sync.WaitGroup
	var sys sysSummary
	var nets netSummary
	if s.sysw != nil {
		wg.Add(1)
		go func() { defer wg.Done(); sys = s.recordSyscalls() }()
	}
	if s.pcap != nil {
		wg.Add(1)
		go func() { defer wg.Done(); nets = s.recordNetwork() }()
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	s.watch(finished)
	<-finished
	s.result, s.err = s.seal(sys, nets)
	if s.err != nil {
		s.c.log.Error("capture could not be sealed", "capture", s.id, "dir", s.dir, "err", s.err)
		return
	}
	s.c.log.Info("capture ended", "capture", s.id, "container", s.name, "reason", s.reason, "note", s.result.Note)
}

// watch stops the capture when its time is up, its container's main
// process ends, or the responder closes; it returns when the recorders are
// done.
func (s *session) watch(finished <-chan struct{}) {
	timer := time.NewTimer(time.Until(s.endsAt))
	defer timer.Stop()
	exited := watchExit(s.info.State.Pid, s.stopCh)
	for {
		select {
		case <-timer.C:
			s.stop(capfile.ReasonDuration)
		case <-exited:
			exited = nil
			s.stop(capfile.ReasonContainerExited)
		case <-s.c.ctx.Done():
			s.stop(capfile.ReasonStopped)
		case <-finished:
			// Every recorder ended on its own (detector gone, errors).
			s.stop(capfile.ReasonDetectorStopped)
			return
		case <-s.stopCh:
			return
		}
	}
}

// watchExit returns a channel closed when pid exits (pidfd; polling /proc
// where pidfd_open is missing). It gives up when stop closes.
func watchExit(pid int, stop <-chan struct{}) <-chan struct{} {
	ch := make(chan struct{})
	fd, err := unix.PidfdOpen(pid, 0)
	go func() {
		if err == nil {
			defer unix.Close(fd)
		}
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err == nil {
				n, perr := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 200)
				if perr == nil && n > 0 {
					close(ch)
					return
				}
				continue
			}
			if _, serr := os.Stat(fmt.Sprintf("/proc/%d", pid)); serr != nil {
				close(ch)
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	return ch
}
