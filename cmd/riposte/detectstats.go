package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/riposte-sec/riposte/detector"
)

// detectStats is the JSON shape of one stats line of `riposte detect`.
type detectStats struct {
	Stats                string            `json:"stats"` // "periodic" or "final"
	Events               uint64            `json:"events"`
	KernelFiltered       uint64            `json:"kernel_filtered"`
	KernelFilteredByType map[string]uint64 `json:"kernel_filtered_by_type"`
	KernelDropped        uint64            `json:"kernel_dropped"`
	KernelDroppedByType  map[string]uint64 `json:"kernel_dropped_by_type"`
	QueueDropped         uint64            `json:"queue_dropped"`
	SubscriberDropped    uint64            `json:"subscriber_dropped"`
	DecodeErrors         uint64            `json:"decode_errors"`
	RuleErrors           uint64            `json:"rule_errors"`
	Alerts               uint64            `json:"alerts"`
	AlertsByRule         map[string]uint64 `json:"alerts_by_rule"`
}

// formatStats renders s as one line (newline included): a JSON object with
// asJSON, else "stats: key=value ..." with one fired="rule"=n per rule
// that fired, sorted by rule name. Kernel drops are summed in the text
// line; the JSON object also has them, and the events the kernel filtered
// on purpose, per event type.
func formatStats(s detector.Stats, final, asJSON bool) ([]byte, error) {
	var kernel uint64
	for _, n := range s.KernelDrops {
		kernel += n
	}
	kind := "periodic"
	if final {
		kind = "final"
	}
	if asJSON {
		byType, byRule := s.KernelDrops, s.AlertsByRule
		if byType == nil {
			byType = map[string]uint64{}
		}
		if byRule == nil {
			byRule = map[string]uint64{}
		}
		filteredByType := s.KernelFilteredByType
		if filteredByType == nil {
			filteredByType = map[string]uint64{}
		}
		b, err := json.Marshal(detectStats{
			Stats: kind, Events: s.Events, KernelFiltered: s.KernelFiltered, KernelFilteredByType: filteredByType, KernelDropped: kernel,
			KernelDroppedByType: byType, QueueDropped: s.QueueDrops, SubscriberDropped: s.SubscriberDrops,
			DecodeErrors: s.DecodeErrors, RuleErrors: s.RuleErrors, Alerts: s.Alerts, AlertsByRule: byRule,
		})
		if err != nil {
			return nil, fmt.Errorf("encode detector stats: %w", err)
		}
		return append(b, '\n'), nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "stats: %s events=%d kernel_filtered=%d kernel_dropped=%d queue_dropped=%d subscriber_dropped=%d decode_errors=%d rule_errors=%d alerts=%d",
		kind, s.Events, s.KernelFiltered, kernel, s.QueueDrops, s.SubscriberDrops, s.DecodeErrors, s.RuleErrors, s.Alerts)
	for _, rule := range slices.Sorted(maps.Keys(s.AlertsByRule)) {
		fmt.Fprintf(&b, " fired=%s=%d", strconv.Quote(rule), s.AlertsByRule[rule])
	}
	b.WriteByte('\n')
	return []byte(b.String()), nil
}

// statsPrinter writes the detector's counters to w, one line at a time.
type statsPrinter struct {
	mu   sync.Mutex
	w    io.Writer
	json bool
	d    interface{ Stats() detector.Stats }
}

func (p *statsPrinter) print(final bool) error {
	line, err := formatStats(p.d.Stats(), final, p.json)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := p.w.Write(line); err != nil {
		return fmt.Errorf("write detector stats: %w", err)
	}
	return nil
}

// every prints a periodic line each interval once ready is closed, until
// ctx ends.
func (p *statsPrinter) every(ctx context.Context, ready <-chan struct{}, interval time.Duration) {
	select {
	case <-ready:
	case <-ctx.Done():
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			_ = p.print(false)
		case <-ctx.Done():
			return
		}
	}
}
