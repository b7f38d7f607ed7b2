package playbooks

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/riposte-sec/riposte/internal/alert"
)

// Report is what `riposte playbook test` prints for one alert.
type Report struct {
	Alert alert.Alert `json:"alert"`
	// Pod is the Kubernetes pod the alert is about (k8s.ns.name,
	// k8s.pod.name), which the pod.* actions act on by default.
	Pod     *ReportPod      `json:"pod,omitempty"`
	Matched []ReportMatch   `json:"matched"`
	Skipped []ReportSkipped `json:"skipped"`

	plans []Plan
}

// ReportPod names a pod in a Report.
type ReportPod struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	UID       string `json:"uid,omitempty"`
}

// ReportMatch is a matched playbook in a Report.
type ReportMatch struct {
	Playbook string         `json:"playbook"`
	Actions  []ReportAction `json:"actions"`
}

// ReportAction is an action that will run (its `if` held).
type ReportAction struct {
	Do    string         `json:"do"`
	With  map[string]any `json:"with"`
	Error string         `json:"error,omitempty"`
}

// ReportSkipped is a playbook that did not match.
type ReportSkipped struct {
	Playbook string `json:"playbook"`
	Reason   string `json:"reason"`
}

// Test explains what the set would do with the alert.
func (s *Set) Test(a alert.Alert) *Report {
	matched, skipped := s.Explain(&a)
	r := &Report{Alert: a, Matched: []ReportMatch{}, Skipped: []ReportSkipped{}, plans: matched}
	if ns, name := a.Field("k8s.ns.name"), a.Field("k8s.pod.name"); ns != "" && name != "" {
		r.Pod = &ReportPod{Namespace: ns, Name: name, UID: a.Field("k8s.pod.uid")}
	}
	for _, p := range matched {
		m := ReportMatch{Playbook: p.Playbook.Name, Actions: []ReportAction{}}
		for _, pa := range p.Actions {
			if pa.Skip != "" {
				continue
			}
			ra := ReportAction{Do: pa.Do, With: map[string]any(pa.With)}
			if pa.Err != nil {
				ra.Error = pa.Err.Error()
			}
			m.Actions = append(m.Actions, ra)
		}
		r.Matched = append(r.Matched, m)
	}
	for _, sk := range skipped {
		r.Skipped = append(r.Skipped, ReportSkipped{Playbook: sk.Playbook.Name, Reason: sk.Reason})
	}
	return r
}

// Matches reports whether the named playbook matched, and if not, why.
func (r *Report) Matches(name string) (bool, string) {
	for _, m := range r.Matched {
		if m.Playbook == name {
			return true, ""
		}
	}
	for _, s := range r.Skipped {
		if s.Playbook == name {
			return false, s.Reason
		}
	}
	return false, "no playbook has that name"
}

// WriteJSON writes the report as one JSON document.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(r)
}

// WriteText writes a human-readable plan.
func (r *Report) WriteText(w io.Writer) error {
	ew := &errWriter{w: w}
	a := &r.Alert
	ew.printf("Alert %s\n", a.ID)
	ew.printf("  rule      %s\n", a.Rule)
	ew.printf("  priority  %s\n", a.Priority)
	if a.Source != "" || a.Hostname != "" {
		ew.printf("  source    %s on %s\n", orDash(a.Source), orDash(a.Hostname))
	}
	if c := a.Container(); c.ID != "" {
		if c.ID == alert.HostContainerID {
			ew.printf("  container none (host)\n")
		} else {
			img := c.Image
			if c.Tag != "" {
				img += ":" + c.Tag
			}
			ew.printf("  container %s (%s) image %s\n", orDash(c.Name), c.ID, orDash(img))
		}
	}
	if p := r.Pod; p != nil {
		uid := ""
		if p.UID != "" {
			uid = " (uid " + p.UID + ")"
		}
		ew.printf("  pod       %s/%s%s\n", p.Namespace, p.Name, uid)
	}
	ew.printf("\n")
	if len(r.plans) == 0 {
		ew.printf("No playbook matched.\n")
	} else {
		ew.printf("Matched, in order:\n")
	}
	for i, p := range r.plans {
		b := p.Playbook
		var flags []string
		if b.DryRun {
			flags = append(flags, "dry run")
		}
		if !b.Continue {
			flags = append(flags, "continue: false")
		}
		extra := ""
		if len(flags) > 0 {
			extra = "  [" + strings.Join(flags, ", ") + "]"
		}
		ew.printf("  %d. %s  (%s:%d)%s\n", i+1, b.Name, b.File, b.Line, extra)
		n := 0
		for _, pa := range p.Actions {
			if pa.Skip != "" {
				ew.printf("       -  %s  skipped: %s\n", pa.Do, pa.Skip)
				continue
			}
			n++
			ew.printf("       %d. %s%s\n", n, pa.Do, formatWith(pa.With))
			if pa.Action.Gated && b.Approval != nil {
				ew.printf("          waits for approval by %s (timeout %s, then %s)\n",
					strings.Join(b.Approval.Approvers, ", "), b.Approval.Timeout, b.Approval.OnTimeout)
			}
			if pa.Action.OnError == ErrorContinue {
				ew.printf("          on error: continue\n")
			}
			if pa.Err != nil {
				ew.printf("          error: %v\n", pa.Err)
			}
		}
	}
	if len(r.Skipped) > 0 {
		ew.printf("\nNot matched:\n")
		for _, s := range r.Skipped {
			ew.printf("  - %s: %s\n", s.Playbook, s.Reason)
		}
	}
	return ew.err
}

func formatWith(with map[string]any) string {
	if len(with) == 0 {
		return ""
	}
	keys := make([]string, 0, len(with))
	for k := range with {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "  %s=%s", k, jsonText(with[k]))
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}

func jsonText(v any) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSuffix(b.String(), "\n")
}
