package assembly

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/riposte-sec/riposte/cmd/riposte/assembly/integrations"
	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/config"
	"github.com/riposte-sec/riposte/internal/engine"
	"github.com/riposte-sec/riposte/internal/store"
	"github.com/riposte-sec/riposte/internal/store/postgres"
	"github.com/riposte-sec/riposte/playbooks"
	"github.com/riposte-sec/riposte/responders/docker"
)

// ExitIncidents is riposte ci's exit status when the run had incidents,
// whatever the command's own status was.
const ExitIncidents = 86

// CIPlaybook is what `riposte ci` runs when no playbooks are given: any
// container alert of Warning or above during the job is snapshot, cut off
// the network and frozen for inspection.
const CIPlaybook = `
- playbook: ci-guard
  description: A container misbehaved during the CI job - keep evidence, cut it off, freeze it.
  match:
    priority: ">=warning"
    when: 'container.id != "" && container.id != "host"'
  continue: false
  actions:
    - do: container.snapshot
      with: {logs: 500, export: true}
      on_error: continue
    - do: container.quarantine
      on_error: continue
    - do: container.pause
`

// ciPodPlaybook is what `riposte ci --namespace NS` runs when no playbooks
// are given: any alert of Warning or above about a pod of NS (Falco's
// k8s.ns.name, or the detector's from the CRI labels) gets its evidence
// collected, the pod isolated and marked. ns is a checked DNS label.
func ciPodPlaybook(ns string) string {
	return fmt.Sprintf(`
- playbook: ci-guard-pods
  description: A pod of the CI namespace misbehaved during the job - keep evidence, isolate it, mark it.
  match:
    priority: ">=warning"
    when: 'fields["k8s.ns.name"] == %q'
  continue: false
  actions:
    - do: pod.evidence
      on_error: continue
    - do: pod.isolate
      on_error: continue
    - do: pod.label
      with: {labels: ["riposte-ci=contained"]}
`, ns)
}

// CIIntakeEnv names the environment variable that gives the command the
// intake URL in namespace mode, to point Falco or Falcosidekick at.
const CIIntakeEnv = "RIPOSTE_CI_INTAKE"

// CIOptions configure a guarded CI run.
type CIOptions struct {
	Command []string
	// Namespace switches to cluster mode: alerts come in on the HTTP intake
	// (Falco's http_output, Falcosidekick, riposte's detector when enabled)
	// and the pods of this namespace are contained through the Kubernetes
	// API; the command's environment has CIIntakeEnv.
	Namespace string
	// Report, when set, is the path prefix of the JSON and JUnit reports
	// (<prefix>.json, <prefix>.xml); a .json or .xml suffix is dropped.
	Report string
	// Release undoes containment at the end (default: leave the offending
	// containers quarantined and paused for inspection).
	Release bool
	// Grace is how long to keep watching after the command ends, for
	// events still on their way. Default 2s.
	Grace  time.Duration
	Stdout io.Writer
	Stderr io.Writer
}

// CIReport is the outcome of a guarded run.
type CIReport struct {
	Command   []string     `json:"command"`
	ExitCode  int          `json:"command_exit_code"`
	Started   time.Time    `json:"started"`
	Finished  time.Time    `json:"finished"`
	Namespace string       `json:"namespace,omitempty"`
	Incidents []CIIncident `json:"incidents"`
	Released  bool         `json:"released"`
	DataDir   string       `json:"data_dir"`
	// Store is the PostgreSQL URL (password redacted) when the journal is
	// there rather than in DataDir.
	Store      string `json:"store,omitempty"`
	RiposteErr string `json:"riposte_error,omitempty"`
}

// CIIncident is one incident of the run with what riposte did about it.
type CIIncident struct {
	ID          string     `json:"id"`
	Rule        string     `json:"rule"`
	Priority    string     `json:"priority"`
	ContainerID string     `json:"container_id"`
	Container   string     `json:"container"`
	Image       string     `json:"image"`
	Namespace   string     `json:"namespace,omitempty"` // the pod's, in namespace mode
	Pod         string     `json:"pod,omitempty"`
	Alerts      int        `json:"alerts"`
	Actions     []CIAction `json:"actions"`
}

// CIAction is one step taken for an incident.
type CIAction struct {
	Action string `json:"action"`
	Status string `json:"status"`
	Detail string `json:"detail,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
}

// RunCI starts the detector and the engine, runs the command, contains
// what misbehaves while it runs, and reports. The returned code is the
// command's when there was no incident, ExitIncidents otherwise.
func RunCI(ctx context.Context, cfg config.Config, opts CIOptions) (*CIReport, int, error) {
	if len(opts.Command) == 0 {
		return nil, 0, errors.New("no command: give it after --, as in riposte ci [flags] -- CMD [ARGS]")
	}
	if opts.Grace <= 0 {
		opts.Grace = 2 * time.Second
	}
	if ns := opts.Namespace; ns != "" {
		if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
			return nil, 0, fmt.Errorf("--namespace %q: not a namespace name: %s", ns, strings.Join(msgs, "; "))
		}
	}
	var set *playbooks.Set
	var err error
	switch {
	case len(cfg.Playbooks) > 0:
		set, err = playbooks.Load(integrations.Catalog(), cfg.Playbooks...)
	case opts.Namespace != "":
		set, err = playbooks.Parse(integrations.Catalog(), playbooks.Source{Name: "built-in ci-guard-pods", Data: []byte(ciPodPlaybook(opts.Namespace))})
	default:
		set, err = playbooks.Parse(integrations.Catalog(), playbooks.Source{Name: "built-in ci-guard", Data: []byte(CIPlaybook)})
	}
	if err != nil {
		return nil, 0, fmt.Errorf("load playbooks: %w", err)
	}
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return nil, 0, fmt.Errorf("create data directory: %w", err)
	}
	cfg.Notifiers.Fallback = config.FallbackLog // a CI job has nobody to page
	log := NewLogger(cfg, opts.Stderr)
	a, err := buildCore(cfg, log, set)
	if err != nil {
		return nil, 0, err
	}
	defer a.Close()
	if a.Detector == nil && opts.Namespace == "" {
		return nil, 0, errors.New("riposte ci needs the detector: set detector.enabled: true in the config (the default without --config)")
	}
	if _, ok := a.Integrations.Runners["pod.isolate"]; opts.Namespace != "" && !ok {
		return nil, 0, errors.New("riposte ci --namespace needs the Kubernetes responder: add a kubernetes section to the config (the default without --config)")
	}
	head, err := a.Store.Head(ctx)
	if err != nil {
		return nil, 0, err
	}
	rep := &CIReport{Command: opts.Command, Started: time.Now().UTC(), DataDir: cfg.Data, Namespace: opts.Namespace, Incidents: []CIIncident{}}
	if cfg.Store.URL != "" {
		rep.Store = postgres.Redact(cfg.Store.URL)
	}

	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	cmd := exec.CommandContext(ctx, opts.Command[0], opts.Command[1:]...)
	var wait func() error
	if opts.Namespace != "" {
		// The HTTP intake takes the alerts; Serve runs the engine (and the
		// detector when the config enables it).
		token, _, _, err := cfg.Token()
		if err != nil {
			return nil, 0, err
		}
		addrc, srvDone := make(chan string, 1), make(chan error, 1)
		go func() { srvDone <- a.Serve(runCtx, token, func(addr string) { addrc <- addr }) }()
		select {
		case addr := <-addrc:
			intake := "http://" + addr + "/v1/alerts"
			fmt.Fprintf(opts.Stderr, "riposte ci: alerts for namespace %s to %s (%s in the command's environment)\n", opts.Namespace, intake, CIIntakeEnv)
			cmd.Env = append(os.Environ(), CIIntakeEnv+"="+intake)
		case err := <-srvDone:
			return nil, 0, fmt.Errorf("start intake: %w", err)
		}
		wait = func() error { return <-srvDone }
	} else {
		engDone := make(chan error, 1)
		go func() { engDone <- a.Engine.Run(runCtx) }()
		detDone := make(chan error, 1)
		go func() { detDone <- a.runDetector(runCtx) }()
		select {
		case <-a.Detector.Ready():
		case err := <-detDone:
			stop()
			<-engDone
			return nil, 0, fmt.Errorf("start detector: %w", err)
		}
		wait = func() error { return errors.Join(<-detDone, <-engDone) }
	}

	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, opts.Stdout, opts.Stderr
	runErr := cmd.Run()
	rep.ExitCode = exitCode(runErr)
	if runErr != nil && rep.ExitCode < 0 {
		rep.RiposteErr = "run command: " + runErr.Error()
		rep.ExitCode = 127
	}
	// Events of the last moments are still on their way.
	time.Sleep(opts.Grace)
	a.waitIdle(ctx, 2*time.Minute)
	stop()
	if err := wait(); err != nil {
		rep.RiposteErr = strings.TrimPrefix(rep.RiposteErr+"; "+err.Error(), "; ")
	}
	rep.Finished = time.Now().UTC()
	if err := a.collect(ctx, head.Seq, rep); err != nil {
		return rep, 0, err
	}
	if opts.Release {
		a.releaseAll(ctx, rep)
	}
	code := rep.ExitCode
	if len(rep.Incidents) > 0 {
		code = ExitIncidents
	}
	return rep, code, nil
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ee.ExitCode() >= 0 {
			return ee.ExitCode()
		}
		return 128 + 9 // killed by a signal
	}
	return -1
}

// waitIdle waits until the inbox is empty and no alert is in flight.
func (a *App) waitIdle(ctx context.Context, max time.Duration) {
	deadline := time.Now().Add(max)
	for time.Now().Before(deadline) {
		st, err := a.Store.Stats(ctx)
		if err == nil && st.InboxPending+st.InboxProcessing == 0 && a.Engine.InFlight() == 0 && a.detectorQueued.Load() == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	a.Log.Warn("engine still busy when the report was written")
}

// collect builds the report from the journal entries after seq.
func (a *App) collect(ctx context.Context, after int64, rep *CIReport) error {
	byID := map[string]*CIIncident{}
	var order []string
	alertIncident := map[string]string{}
	alertPriority := map[string]alert.Priority{}
	// incidentOf is the report's incident of an alert's action; nil when
	// the alert has none.
	incidentOf := func(alertID string) (*CIIncident, error) {
		inc := alertIncident[alertID]
		if inc == "" {
			return nil, nil
		}
		ci := byID[inc]
		if ci == nil {
			info, err := a.Store.GetIncident(ctx, inc)
			if err != nil {
				return nil, err
			}
			ci = &CIIncident{ID: inc, Rule: info.Rule, ContainerID: info.ContainerID, Alerts: info.Alerts}
			byID[inc] = ci
			order = append(order, inc)
		}
		if p, ok := alertPriority[alertID]; ok {
			if cur, err := alert.ParsePriority(ci.Priority); err != nil || p > cur {
				ci.Priority = p.String()
			}
		}
		return ci, nil
	}
	for e, err := range a.Store.Scan(ctx, store.Filter{AfterSeq: after}) {
		if err != nil {
			return err
		}
		switch e.Type {
		case store.AlertReceived:
			if p, err := alert.ParsePriority(str(e.Detail["priority"])); err == nil {
				alertPriority[e.AlertID] = p
			}
		case store.PlaybookMatched, store.ActionPlanned:
			if inc := str(e.Detail["incident"]); inc != "" {
				alertIncident[e.AlertID] = inc
			}
			if _, ok := e.Detail[store.PlanDetail]; !ok {
				continue
			}
			// A dry-run playbook: its plan is this one entry.
			plan, err := store.PlannedActions([]store.Entry{e})
			if err != nil {
				return err
			}
			ci, err := incidentOf(e.AlertID)
			if err != nil {
				return err
			}
			if ci == nil {
				continue
			}
			for _, p := range plan {
				ci.Actions = append(ci.Actions, CIAction{Action: p.Action, Status: p.Decision, Detail: p.Reason})
			}
		case store.ActionSucceeded, store.ActionFailed, store.ActionBlockedProtected, store.ActionSkippedDryRun,
			store.ActionHeldForApproval, store.ActionSkipped, store.ActionQueued:
			ci, err := incidentOf(e.AlertID)
			if err != nil {
				return err
			}
			if ci == nil {
				continue
			}
			if ns, pod := str(e.Detail["namespace"]), str(e.Detail["pod"]); ns != "" && pod != "" {
				ci.Namespace, ci.Pod = ns, pod
			}
			detail := firstNonEmpty(str(e.Detail["note"]), str(e.Detail["error"]), str(e.Detail["reason"]))
			ci.Actions = append(ci.Actions, CIAction{Action: e.Action, Status: strings.TrimPrefix(string(e.Type), "action."), Detail: detail, SHA256: e.SHA256})
		}
	}
	for _, id := range order {
		ci := byID[id]
		if ci.Pod != "" {
			rep.Incidents = append(rep.Incidents, *ci)
			continue
		}
		if info, err := a.Integrations.Docker.Client.ContainerInspect(ctx, ci.ContainerID); err == nil {
			ci.Container = strings.TrimPrefix(info.Name, "/")
			if info.Config != nil {
				ci.Image = info.Config.Image
			}
		}
		rep.Incidents = append(rep.Incidents, *ci)
	}
	return nil
}

func (a *App) releaseAll(ctx context.Context, rep *CIReport) {
	for _, inc := range rep.Incidents {
		if inc.Pod != "" {
			pod := inc.Namespace + "/" + inc.Pod
			if _, err := a.Engine.Act(ctx, engine.Manual{Action: "pod.release", Params: actions.Params{"pod": pod}, Incident: inc.ID, Actor: "riposte ci --release"}); err != nil {
				a.Log.Warn("release after ci run", "pod", pod, "err", err)
			}
			continue
		}
		if inc.ContainerID == "" || inc.ContainerID == alert.HostContainerID {
			continue
		}
		if _, err := a.Engine.Act(ctx, engine.Manual{Action: docker.ActionRelease, Container: inc.ContainerID, Incident: inc.ID, Actor: "riposte ci --release"}); err != nil {
			a.Log.Warn("release after ci run", "container", inc.ContainerID, "err", err)
		}
	}
	rep.Released = true
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

// name is what the report calls the incident's subject: the pod
// NAMESPACE/NAME in namespace mode, else the container.
func (in CIIncident) name() string {
	if in.Pod != "" {
		return "pod " + in.Namespace + "/" + in.Pod
	}
	return firstNonEmpty(in.Container, in.ContainerID)
}

// WriteText prints the human summary.
func (r *CIReport) WriteText(w io.Writer) {
	fmt.Fprintf(w, "\nriposte ci: %q exited %d after %s\n", strings.Join(r.Command, " "), r.ExitCode, r.Finished.Sub(r.Started).Round(time.Millisecond))
	if len(r.Incidents) == 0 {
		fmt.Fprintln(w, "riposte ci: no security incident during the run")
	} else {
		fmt.Fprintf(w, "riposte ci: %d security incident(s) during the run - failing the job (exit %d)\n", len(r.Incidents), ExitIncidents)
	}
	for _, in := range r.Incidents {
		name := in.name()
		fmt.Fprintf(w, "  - %s: %s (%s) in %s [%s], %d alert(s)\n", in.ID, in.Rule, firstNonEmpty(in.Priority, "?"), name, firstNonEmpty(in.Image, "?"), in.Alerts)
		for _, a := range in.Actions {
			line := fmt.Sprintf("      %-22s %s", a.Action, a.Status)
			if a.Detail != "" {
				line += ": " + a.Detail
			}
			if a.SHA256 != "" {
				line += " (sha256 " + a.SHA256[:16] + "…)"
			}
			fmt.Fprintln(w, line)
		}
	}
	if len(r.Incidents) > 0 {
		switch {
		case r.Released:
			fmt.Fprintln(w, "riposte ci: containers and pods released (--release)")
		case r.Namespace != "":
			fmt.Fprintln(w, "riposte ci: offending pods stay isolated for inspection (riposte act pod.release --pod NAMESPACE/NAME to undo)")
		default:
			fmt.Fprintln(w, "riposte ci: offending containers stay quarantined and paused for inspection (riposte act container.release --container ID to undo)")
		}
		if r.Store != "" {
			fmt.Fprintf(w, "riposte ci: evidence in %s, journal in %s (riposte journal show --store URL)\n", r.DataDir, r.Store)
		} else {
			fmt.Fprintf(w, "riposte ci: evidence and journal in %s (riposte journal show --data %s)\n", r.DataDir, r.DataDir)
		}
	}
	if r.RiposteErr != "" {
		fmt.Fprintf(w, "riposte ci: warning: %s\n", r.RiposteErr)
	}
}

// WriteFiles writes <prefix>.json and <prefix>.xml (JUnit).
func (r *CIReport) WriteFiles(prefix string) ([]string, error) {
	prefix = strings.TrimSuffix(strings.TrimSuffix(prefix, ".json"), ".xml")
	if dir := filepath.Dir(prefix); dir != "." {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(prefix+".json", append(js, '\n'), 0o644); err != nil {
		return nil, err
	}
	x, err := r.junit()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(prefix+".xml", x, 0o644); err != nil {
		return nil, err
	}
	return []string{prefix + ".json", prefix + ".xml"}, nil
}

type junitSuites struct {
	XMLName xml.Name     `xml:"testsuites"`
	Suites  []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Time     string      `xml:"time,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Failure   *junitFailure `xml:"failure,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

func (r *CIReport) junit() ([]byte, error) {
	s := junitSuite{Name: "riposte ci", Time: fmt.Sprintf("%.3f", r.Finished.Sub(r.Started).Seconds())}
	if len(r.Incidents) == 0 {
		s.Cases = append(s.Cases, junitCase{Name: "no security incident during " + strings.Join(r.Command, " "), Classname: "riposte.ci"})
	}
	for _, in := range r.Incidents {
		var b strings.Builder
		for _, a := range in.Actions {
			fmt.Fprintf(&b, "%s %s %s %s\n", a.Action, a.Status, a.Detail, a.SHA256)
		}
		s.Cases = append(s.Cases, junitCase{
			Name: in.Rule + " in " + in.name(), Classname: "riposte.ci.incident",
			Failure: &junitFailure{Message: fmt.Sprintf("%s: %s (%s)", in.ID, in.Rule, in.Priority), Type: "security-incident", Text: b.String()},
		})
		s.Failures++
	}
	s.Tests = len(s.Cases)
	out, err := xml.MarshalIndent(junitSuites{Suites: []junitSuite{s}}, "", "  ")
	if err != nil {
		return nil, err
	}
	return append([]byte(xml.Header), append(out, '\n')...), nil
}
