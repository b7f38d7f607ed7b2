package capture

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"golang.org/x/sys/unix"

	"github.com/riposte-sec/riposte/detector"
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
			s.lostBefore = lostOf(lc.Stats())
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

// sysSummary is how the syscall file ended.
type sysSummary struct {
	evidence  actions.Evidence
	events    uint64
	reason    string
	truncated bool
	lost      capfile.Lost
	err       error
}

// recordSyscalls writes events until the capture stops, the size cap is
// reached or the detector closes the subscription, then the trailer.
func (s *session) recordSyscalls() (sum sysSummary) {
	w := s.sysw
	flush := time.NewTicker(time.Second)
	defer flush.Stop()
	write := func(ev *event.Event) bool {
		err := w.Event(ev)
		switch {
		case err == nil:
			return true
		case errors.Is(err, capfile.ErrLimit):
			s.stop(capfile.ReasonMaxBytes)
			sum.truncated = true
		default:
			sum.err = err
			s.stop(capfile.ReasonError)
		}
		return false
	}
	if s.stopped() && s.reason == capfile.ReasonMaxBytes {
		sum.truncated = true // the state header alone filled the cap
	}
loop:
	for !sum.truncated && sum.err == nil {
		select {
		case ev, ok := <-s.events:
			if !ok {
				sum.reason = capfile.ReasonDetectorStopped
				break loop
			}
			if !write(&ev) {
				break loop
			}
		case <-flush.C:
			if err := w.Flush(); err != nil {
				sum.err = err
				s.stop(capfile.ReasonError)
			}
		case <-s.stopCh:
			if s.reason != capfile.ReasonMaxBytes && s.reason != capfile.ReasonError {
				s.drain(write)
			} else if s.reason == capfile.ReasonMaxBytes {
				sum.truncated = true
			}
			break loop
		}
	}
	s.unsubscribe()
	if sum.reason == "" {
		<-s.stopCh // set by write or by whoever stopped the capture
		sum.reason = s.reason
	}
	if lc, ok := s.c.deps.Events.(LossCounter); ok {
		sum.lost = lostSince(lostOf(lc.Stats()), s.lostBefore)
	}
	tr := capfile.Trailer{Ended: time.Now().UTC(), Reason: sum.reason, Truncated: sum.truncated, Lost: sum.lost}
	if sum.err != nil {
		tr.Reason, tr.Error = capfile.ReasonError, sum.err.Error()
	}
	sum.events = w.Events()
	if err := w.Close(tr); err != nil && sum.err == nil {
		sum.err = err
	}
	ev, err := s.sysFile.seal()
	if err != nil && sum.err == nil {
		sum.err = err
	}
	sum.evidence = ev
	return sum
}

// drain keeps writing the events the detector still delivers after the
// capture was told to stop — the container's last events are often still
// in flight — until one happened after the stop, none came for drainIdle,
// or drainMax passed.
func (s *session) drain(write func(*event.Event) bool) {
	stopAt := time.Now()
	deadline := time.NewTimer(drainMax)
	defer deadline.Stop()
	idle := time.NewTimer(drainIdle)
	defer idle.Stop()
	for {
		select {
		case ev, ok := <-s.events:
			if !ok || ev.Time.After(stopAt) || !write(&ev) {
				return
			}
			if !idle.Stop() {
				<-idle.C
			}
			idle.Reset(drainIdle)
		case <-idle.C:
			return
		case <-deadline.C:
			return
		}
	}
}

// lostOf reads the detector's loss counters.
func lostOf(st detector.Stats) capfile.Lost {
	l := capfile.Lost{Queue: st.QueueDrops, Subscriber: st.SubscriberDrops}
	for _, n := range st.KernelDrops {
		l.Kernel += n
	}
	return l
}

// lostSince is how much the counters grew since before.
func lostSince(now, before capfile.Lost) capfile.Lost {
	sub := func(a, b uint64) uint64 {
		if a < b {
			return 0
		}
		return a - b
	}
	return capfile.Lost{Kernel: sub(now.Kernel, before.Kernel), Queue: sub(now.Queue, before.Queue), Subscriber: sub(now.Subscriber, before.Subscriber)}
}

// netSummary is how the pcapng file ended.
type netSummary struct {
	evidence   actions.Evidence
	packets    uint64
	notWritten uint64
	ifaces     []ManifestInterface
	truncated  bool
	err        error
}

// recordNetwork reads every interface's socket until the capture stops and
// writes the packets, then the statistics blocks.
func (s *session) recordNetwork() (sum netSummary) {
	pkts := make(chan packet, 1024)
	readErrs := make([]error, len(s.socks))
	var rwg sync.WaitGroup
	for i, sk := range s.socks {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			readErrs[i] = sk.read(s.stopCh, s.c.cfg.Snaplen, pkts)
		}()
	}
	go func() { rwg.Wait(); close(pkts) }()
	for p := range pkts {
		if sum.err != nil || sum.truncated {
			continue // keep draining so that the readers can end
		}
		ok, err := s.pcap.write(p)
		switch {
		case err != nil:
			sum.err = err
			s.stop(capfile.ReasonError)
		case !ok:
			sum.truncated = true
			s.stop(capfile.ReasonMaxBytes)
		}
	}
	<-s.stopCh
	reason := s.reason
	if sum.err != nil {
		reason = capfile.ReasonError
	}
	if reason == capfile.ReasonMaxBytes {
		sum.truncated = true
	}
	sum.notWritten = s.pcap.notWritten
	end := time.Now().UTC()
	ends := make([]ifaceEnd, len(s.socks))
	for i, sk := range s.socks {
		recv, drop := sk.stats()
		sk.close()
		comment := fmt.Sprintf("riposte: capture ended, reason=%s", reason)
		if sum.truncated {
			comment += fmt.Sprintf(", truncated at max_bytes=%d", s.p.maxBytes)
		}
		if readErrs[i] != nil {
			comment += ", interface stopped early: " + readErrs[i].Error()
		}
		ends[i] = ifaceEnd{received: recv, dropped: drop, comment: comment}
		mi := ManifestInterface{Name: sk.name, MAC: sk.mac, Addrs: sk.addrs, LinkType: sk.linkType.String(),
			Packets: s.pcap.written[sk.pcapID], Received: recv, KernelDropped: drop}
		if readErrs[i] != nil {
			mi.Error = readErrs[i].Error()
		}
		sum.ifaces = append(sum.ifaces, mi)
	}
	if err := s.pcap.close(end, ends); err != nil && sum.err == nil {
		sum.err = err
	}
	sum.packets = s.pcap.packets()
	ev, err := s.netFile.seal()
	if err != nil && sum.err == nil {
		sum.err = err
	}
	sum.evidence = ev
	return sum
}

// Manifest is manifest.json, the last file of a capture directory: the
// SHA-256 and size of every other file and how the capture ended. Its own
// SHA-256 is Result.SHA256, which the journal records.
type Manifest struct {
	Version   int               `json:"version"`
	CaptureID string            `json:"capture_id"`
	Container capfile.Container `json:"container"`
	Incident  string            `json:"incident,omitempty"`
	Alert     string            `json:"alert,omitempty"`
	Rule      string            `json:"rule,omitempty"`
	Actor     string            `json:"actor,omitempty"`
	Hostname  string            `json:"hostname,omitempty"`
	Started   time.Time         `json:"started"`
	Ended     time.Time         `json:"ended"`
	Duration  time.Duration     `json:"duration_ns"`
	MaxBytes  int64             `json:"max_bytes"`
	Reason    string            `json:"reason"`
	Truncated bool              `json:"truncated"`
	Bytes     int64             `json:"bytes"` // the files' total, the manifest excluded
	Files     []ManifestFile    `json:"files"`
	Notes     []string          `json:"notes,omitempty"`
}

// ManifestFile is one file of a capture.
type ManifestFile struct {
	Name       string              `json:"name"`
	SHA256     string              `json:"sha256"`
	Size       int64               `json:"size"`
	Format     string              `json:"format"`
	Reason     string              `json:"reason,omitempty"`
	Truncated  bool                `json:"truncated"`
	Events     uint64              `json:"events,omitempty"`
	Lost       *capfile.Lost       `json:"lost,omitempty"`
	Packets    uint64              `json:"packets,omitempty"`
	NotWritten uint64              `json:"packets_not_written,omitempty"` // refused by the size cap
	Interfaces []ManifestInterface `json:"interfaces,omitempty"`
	Error      string              `json:"error,omitempty"`
}

// ManifestInterface is one interface of the network capture.
type ManifestInterface struct {
	Name          string   `json:"name"`
	MAC           string   `json:"mac,omitempty"`
	Addrs         []string `json:"addrs,omitempty"`
	LinkType      string   `json:"link_type"`
	Packets       uint64   `json:"packets"`        // written
	Received      uint64   `json:"received"`       // reached the socket (kernel count)
	KernelDropped uint64   `json:"kernel_dropped"` // socket buffer full (kernel count)
	Error         string   `json:"error,omitempty"`
}

// seal writes the manifest and builds the final result.
func (s *session) seal(sys sysSummary, nets netSummary) (actions.Result, error) {
	m := Manifest{Version: 1, CaptureID: s.id, Container: s.header.Container, Incident: s.req.Incident, Alert: s.req.Alert.ID,
		Rule: s.req.Alert.Rule, Actor: s.req.Actor, Hostname: s.c.hostname, Started: s.started, Ended: time.Now().UTC(),
		Duration: s.p.duration, MaxBytes: s.p.maxBytes, Reason: s.reason, Notes: s.notes}
	var evidence []actions.Evidence
	var errs []string
	if s.sysw != nil {
		f := ManifestFile{Name: SyscallsFile, SHA256: sys.evidence.SHA256, Size: sys.evidence.Size, Format: fmt.Sprintf("%s v%d (gzip, JSON lines)", capfile.Format, capfile.Version),
			Reason: sys.reason, Truncated: sys.truncated, Events: sys.events}
		if sys.lost != (capfile.Lost{}) {
			f.Lost = &sys.lost
		}
		if sys.err != nil {
			f.Error = sys.err.Error()
			errs = append(errs, "syscalls: "+f.Error)
		}
		m.Files = append(m.Files, f)
		evidence = append(evidence, sys.evidence)
		m.Truncated = m.Truncated || sys.truncated
	}
	if s.pcap != nil {
		f := ManifestFile{Name: NetworkFile, SHA256: nets.evidence.SHA256, Size: nets.evidence.Size, Format: "pcapng",
			Reason: s.reason, Truncated: nets.truncated, Packets: nets.packets, NotWritten: nets.notWritten, Interfaces: nets.ifaces}
		if nets.err != nil {
			f.Error = nets.err.Error()
			f.Reason = capfile.ReasonError
			errs = append(errs, "network: "+f.Error)
		}
		m.Files = append(m.Files, f)
		evidence = append(evidence, nets.evidence)
		m.Truncated = m.Truncated || nets.truncated
	}
	for _, f := range m.Files {
		m.Bytes += f.Size
	}
	body, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return actions.Result{}, fmt.Errorf("seal capture %s: %w", s.id, err)
	}
	body = append(body, '\n')
	mf, err := createEvidence(s.dir, ManifestName)
	if err != nil {
		return actions.Result{}, fmt.Errorf("seal capture %s: %w", s.id, err)
	}
	if _, err := mf.Write(body); err != nil {
		mf.f.Close()
		return actions.Result{}, fmt.Errorf("seal capture %s: write manifest: %w", s.id, err)
	}
	mev, err := mf.seal()
	if err != nil {
		return actions.Result{}, fmt.Errorf("seal capture %s: %w", s.id, err)
	}
	if err := syncDir(s.dir); err != nil {
		return actions.Result{}, fmt.Errorf("seal capture %s: %w", s.id, err)
	}
	evidence = append(evidence, mev)

	parts := []string{}
	if s.sysw != nil {
		parts = append(parts, fmt.Sprintf("%d events", sys.events))
	}
	if s.pcap != nil {
		parts = append(parts, fmt.Sprintf("%d packets", nets.packets))
	}
	note := fmt.Sprintf("capture of %s ended (%s): %s, %s, in %s", s.containerLabel(), s.reason, strings.Join(parts, ", "), humanBytes(m.Bytes), s.dir)
	if m.Truncated {
		note += "; truncated at max_bytes"
	}
	if len(errs) > 0 {
		note += "; errors: " + strings.Join(errs, "; ")
	}
	d := map[string]any{"capture_id": s.id, "dir": s.dir, "manifest": mev.Path, "reason": s.reason, "truncated": m.Truncated,
		"bytes": m.Bytes, "container_id": s.info.ID, "container_name": s.name}
	if s.sysw != nil {
		d["events"] = sys.events
		d["lost"] = sys.lost
	}
	if s.pcap != nil {
		d["packets"] = nets.packets
	}
	if len(s.notes) > 0 {
		d["notes"] = s.notes
	}
	return actions.Result{Note: note, SHA256: mev.SHA256, Evidence: evidence, Detail: d}, nil
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1fKiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// budget is the size cap shared by a capture's files.
type budget struct {
	mu          sync.Mutex
	used, limit int64
}

// take reserves n bytes; false when they do not fit.
func (b *budget) take(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.limit {
		return false
	}
	b.used += n
	return true
}

// give returns n reserved bytes that were not used.
func (b *budget) give(n int64) {
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
}

// force counts n bytes already written.
func (b *budget) force(n int64) {
	b.mu.Lock()
	b.used += n
	b.mu.Unlock()
}

// evidenceFile is a file of a capture, hashed as it is written.
type evidenceFile struct {
	f    *os.File
	h    hash.Hash
	n    int64
	path string
}

func createEvidence(dir, name string) (*evidenceFile, error) {
	p := filepath.Join(dir, name)
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", name, err)
	}
	return &evidenceFile{f: f, h: sha256.New(), path: p}, nil
}

func (e *evidenceFile) Write(p []byte) (int, error) {
	n, err := e.f.Write(p)
	e.h.Write(p[:n])
	e.n += int64(n)
	return n, err
}

// seal fsyncs and closes the file and returns its hash.
func (e *evidenceFile) seal() (actions.Evidence, error) {
	ev := actions.Evidence{Path: e.path, SHA256: hex.EncodeToString(e.h.Sum(nil)), Size: e.n}
	err := e.f.Sync()
	if cerr := e.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return ev, fmt.Errorf("close %s: %w", filepath.Base(e.path), err)
	}
	return ev, nil
}

// syncDir makes the files created in dir durable.
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
