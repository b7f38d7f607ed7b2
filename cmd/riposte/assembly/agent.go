package assembly

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/riposte-sec/riposte/cmd/riposte/assembly/integrations"
	"github.com/riposte-sec/riposte/detector"
	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/agent"
	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/config"
	"github.com/riposte-sec/riposte/responders/capture"
)

// AgentTokenEnv holds the agent's bearer token when no token file is given.
const AgentTokenEnv = "RIPOSTE_AGENT_TOKEN"

// AgentOptions are `riposte agent`'s flags.
type AgentOptions struct {
	Config   string // riposte.yaml: detector rules, docker/containerd/capture sections, guardrails
	Data     string // spool and action ledger; evidence of the node's actions
	Node     string
	Replicas []string
	// TokenFile holds the bearer token (scope agent); "" reads AgentTokenEnv.
	TokenFile string
	// CAFile is trusted besides the system's roots (a replica's
	// self-signed certificate); CertFile and KeyFile are the agent's
	// client certificate for replicas that require one.
	CAFile, CertFile, KeyFile string
	// Detector runs the eBPF detector (root); Input reads Falco JSON alerts,
	// one per line, from a file or "-" (stdin) besides or instead.
	Detector bool
	Input    string
	SpoolMax int
	// DryRun: the node's actions say what they would do and do nothing.
	DryRun bool
	// MetricsListen serves /metrics on this address ("" none).
	MetricsListen string
}

// RunAgent runs `riposte agent` until ctx ends: the node's alerts (its
// detector, its input) are spooled and forwarded to the replicas. ready,
// when not nil, is called once alerts are taken.
func RunAgent(ctx context.Context, o AgentOptions, stdin io.Reader, log *slog.Logger, ready func(node string)) error {
	cfg, err := LoadConfig(o.Config, Overrides{Data: o.Data, DryRun: o.DryRun})
	if err != nil {
		return err
	}
	if o.Node == "" {
		if o.Node, err = os.Hostname(); err != nil {
			return fmt.Errorf("name the node: %w (pass --node)", err)
		}
	}
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	token, err := agentToken(o.TokenFile)
	if err != nil {
		return err
	}
	client, err := agentHTTPClient(o.CAFile, o.CertFile, o.KeyFile)
	if err != nil {
		return err
	}
	replicas, err := agent.NewReplicas(o.Replicas, token, client)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	log = log.With("node", o.Node)

	// The node's integrations: docker (always), containerd and capture
	// when configured; the detector shares docker's client and asks
	// containerd about the containers Docker does not know.
	var dcfg detector.Config
	if err := config.Decode(cfg.File, "detector", &cfg.Detector, &dcfg); err != nil {
		return err
	}
	for i, r := range dcfg.Rules {
		dcfg.Rules[i] = cfg.Resolve(r)
	}
	dcfg.Enabled, dcfg.Hostname = o.Detector, o.Node
	host := &App{Config: cfg, Log: log, Registry: reg}
	// A background capture's end goes to the agent, built below, which
	// reports it to a replica.
	var ag *agent.Agent
	var env *integrations.Env
	env = &integrations.Env{Logger: log, Data: cfg.Data,
		CaptureFinished: func(f capture.Finished) {
			if ag == nil {
				return
			}
			ev := agent.CaptureEnd{CaptureID: f.CaptureID, Key: f.Request.Key, Action: f.Request.Action, Actor: f.Request.Actor,
				AlertID: f.Request.Alert.ID, Incident: f.Request.Incident, Container: f.Request.Container, Result: f.Result}
			if f.Err != nil {
				ev.Error = f.Err.Error()
			}
			ag.CaptureEnded(ev)
		},
		Events: func() (capture.Events, error) {
			if err := host.startDetector(dcfg, env, log); err != nil || host.Detector == nil {
				return nil, err
			}
			return host.Detector, nil
		}}
	in, err := BuildIntegrations(&cfg, env)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := host.startDetector(dcfg, env, log); err != nil {
		return err
	}
	det := host.Detector
	ag, err = agent.New(agent.Config{Node: o.Node, Data: cfg.Data, SpoolMax: o.SpoolMax},
		agent.Deps{Replicas: replicas, Runners: nodeRunners(in.Runners, cfg.DryRun || cfg.Engine.DryRun, o.Node), Logger: log.With("component", "agent"), Registerer: reg})
	if err != nil {
		return err
	}
	if o.MetricsListen != "" {
		stop, err := serveAgentMetrics(o.MetricsListen, reg, log)
		if err != nil {
			return err
		}
		defer stop()
	}

	runCtx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRun()
	agentDone := make(chan error, 1)
	go func() { agentDone <- ag.Run(runCtx) }()

	var sources sync.WaitGroup
	var srcErr error
	var errMu sync.Mutex
	fail := func(err error) {
		errMu.Lock()
		srcErr = errors.Join(srcErr, err)
		errMu.Unlock()
	}
	srcCtx, stopSources := context.WithCancel(ctx)
	defer stopSources()
	if det != nil {
		sources.Go(func() {
			if err := det.Run(srcCtx, ag.Emit); err != nil {
				fail(fmt.Errorf("detector: %w", err))
				stopSources()
			}
		})
		select {
		case <-det.Ready():
			log.Info("detector attached", "rules", len(det.Rules().Rules()))
		case <-srcCtx.Done():
		}
	}
	if o.Input != "" {
		r := stdin
		if o.Input != "-" {
			f, err := os.Open(o.Input)
			if err != nil {
				stopSources()
				sources.Wait()
				stopRun()
				<-agentDone
				return fmt.Errorf("open input: %w", err)
			}
			defer f.Close()
			r = f
		}
		// Not waited for at the end: a read of stdin does not end with
		// the context. What it reads after the end is not emitted.
		go func() {
			if err := readAlerts(srcCtx, r, ag.Emit, log); err != nil {
				fail(err)
			}
		}()
	}
	if det == nil && o.Input == "" {
		log.Warn("no alerts to forward: the detector is off and no --input is given; taking actions only")
	}
	if srcCtx.Err() == nil {
		log.Info("riposte agent running", "replicas", len(o.Replicas), "detector", det != nil, "input", o.Input,
			"data", cfg.Data, "spooled", ag.Spooled())
		if ready != nil {
			ready(o.Node)
		}
	}
	// The agent runs until stopped, also after its input ended (what it
	// read is still to be forwarded, and actions come).
	<-srcCtx.Done()
	sources.Wait()
	stopRun()
	err = <-agentDone
	log.Info("riposte agent stopped", "spooled", ag.Spooled())
	return errors.Join(srcErr, err)
}

// readAlerts emits the alerts of r: Falco JSON, one per line (an array or a
// stream of objects also decodes). A line that does not decode is logged
// and skipped: it never was an alert.
func readAlerts(ctx context.Context, r io.Reader, emit func(alert.Alert), log *slog.Logger) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	line := 0
	for sc.Scan() {
		line++
		if ctx.Err() != nil {
			return nil
		}
		b := sc.Bytes()
		if len(strings.TrimSpace(string(b))) == 0 {
			continue
		}
		alerts, err := alert.Decode(b)
		if err != nil {
			log.Error("input: skip a line that is no alert", "line", line, "err", err)
			continue
		}
		if ctx.Err() != nil {
			return nil
		}
		for _, a := range alerts {
			emit(a)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read input: %w", err)
	}
	return nil
}

// agentToken reads the token from file (again on every call: a rotated
// file takes effect) or from AgentTokenEnv.
func agentToken(file string) (func() (string, error), error) {
	if file == "" {
		t := strings.TrimSpace(os.Getenv(AgentTokenEnv))
		if t == "" {
			return nil, fmt.Errorf("no agent token: pass --token-file or set %s (a token of scope agent in the replicas' auth.tokens)", AgentTokenEnv)
		}
		return func() (string, error) { return t, nil }, nil
	}
	read := func() (string, error) {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("read token file: %w", err)
		}
		t := strings.TrimSpace(string(b))
		if t == "" {
			return "", fmt.Errorf("read token file %s: it is empty", file)
		}
		return t, nil
	}
	if _, err := read(); err != nil {
		return nil, err
	}
	return read, nil
}

// agentHTTPClient trusts caFile besides the system's roots, like `riposte
// act` trusts the server's certificate, and presents a client certificate
// when one is given.
func agentHTTPClient(caFile, certFile, keyFile string) (*http.Client, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		roots, err := x509.SystemCertPool()
		if err != nil {
			roots = x509.NewCertPool()
		}
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read --ca-file: %w", err)
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("read --ca-file %s: no PEM certificate in it", caFile)
		}
		tc.RootCAs = roots
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("client certificate: give both --cert-file and --key-file")
	}
	if certFile != "" {
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("load client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{c}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	tr.ResponseHeaderTimeout = 0 // the action poll waits long
	return &http.Client{Transport: tr}, nil
}

func serveAgentMetrics(addr string, reg *prometheus.Registry, log *slog.Logger) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for metrics on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	return func() { srv.Close() }, nil
}

// nodeRunners are the runners of the container actions this node can run
// (the docker, containerd and capture integrations it has); in dry run
// they say what they would do and do nothing.
func nodeRunners(all map[string]actions.Runner, dry bool, node string) map[string]actions.Runner {
	out := map[string]actions.Runner{}
	for _, s := range integrations.Specs() {
		r, ok := all[s.Name]
		if !ok || !s.Container || s.Notification {
			continue
		}
		if dry {
			r = actions.RunnerFunc(func(_ context.Context, req actions.Request) (actions.Result, error) {
				return actions.Result{Note: fmt.Sprintf("dry run on node %s: %s of %s not executed", node, req.Action, req.Container)}, nil
			})
		}
		out[s.Name] = r
	}
	return out
}
