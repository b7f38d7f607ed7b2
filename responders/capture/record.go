package capture

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/riposte-sec/riposte/detector/event"
	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/responders/capture/capfile"
)

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
		sum.lost = lostSince(lostOf(lc), s.lostBefore)
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
func lostOf(lc LossCounter) capfile.Lost {
	var l capfile.Lost
	l.Queue, l.Subscriber, l.Kernel = lc.Losses()
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
