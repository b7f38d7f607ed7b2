package assembly

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/riposte-sec/riposte/cmd/riposte/assembly/integrations"
	"github.com/riposte-sec/riposte/detector"
	"github.com/riposte-sec/riposte/detector/containers"
	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/anchor"
	"github.com/riposte-sec/riposte/internal/config"
	"github.com/riposte-sec/riposte/internal/engine"
	"github.com/riposte-sec/riposte/internal/metrics"
	"github.com/riposte-sec/riposte/internal/server"
	"github.com/riposte-sec/riposte/internal/silence"
	"github.com/riposte-sec/riposte/internal/store"
	"github.com/riposte-sec/riposte/playbooks"
	"github.com/riposte-sec/riposte/responders/capture"
)

// Overrides are the command-line flags that take precedence over the
// config file. Zero values leave the file's setting.
type Overrides struct {
	Listen    string
	Data      string
	Store     string // store URL (postgres://...); "" keeps the config's
	Playbooks []string
	Token     string
	DryRun    bool
}

// LoadConfig reads the config file (or the defaults when path is "") and
// applies the overrides.
func LoadConfig(path string, o Overrides) (config.Config, error) {
	cfg := config.Defaults()
	if path != "" {
		var err error
		if cfg, err = config.Load(path); err != nil {
			return config.Config{}, err
		}
	}
	if o.Listen != "" {
		cfg.Listen = o.Listen
	}
	if o.Data != "" {
		cfg.Data = o.Data
	}
	if o.Store != "" {
		cfg.Store.URL = o.Store
	}
	if len(o.Playbooks) > 0 {
		cfg.Playbooks = o.Playbooks
	}
	if o.DryRun {
		cfg.DryRun = true
	}
	cfg.Engine.DryRun = cfg.Engine.DryRun || cfg.DryRun
	return cfg, nil
}

// NewLogger builds the process logger from the config.
func NewLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// App is a wired riposte.
type App struct {
	Config       config.Config
	Log          *slog.Logger
	Store        Store
	Playbooks    *playbooks.Set
	Engine       *engine.Engine
	Integrations *Integrations
	// Detector is the eBPF sensor when detector.enabled; nil otherwise.
	Detector *detector.Detector
	Metrics  *metrics.Metrics
	Registry *prometheus.Registry
	// Silences mute matching alerts' actions (silences.go).
	Silences *silence.Cache

	// detectorQueued counts the detector's alerts emitted but not yet
	// stored, so that `riposte ci` does not write its report while some
	// are still on their way to the inbox.
	detectorQueued atomic.Int64
	// serveCtx is Serve's context: long-lived streams (riposte top) end
	// with it instead of holding up the drain.
	serveCtx context.Context
	// router serves node agents and, with cluster.route_container_actions,
	// sends container actions to them.
	router *nodeRouter
}

// Build opens the store, loads the playbooks and builds the integrations
// and the engine. Every playbook action must have an integration (or the
// configuration says dry_run), else Build fails naming what to configure.
func Build(cfg config.Config, log *slog.Logger) (*App, error) {
	if len(cfg.Playbooks) == 0 {
		return nil, errors.New("no playbooks: set playbooks in the config or pass --playbooks PATH")
	}
	set, err := playbooks.Load(integrations.Catalog(), cfg.Playbooks...)
	if err != nil {
		return nil, fmt.Errorf("load playbooks: %w", err)
	}
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	return buildCore(cfg, log, set)
}

// buildCore builds the store, the integrations and the engine; set nil
// means no playbooks (a hand-run action).
func buildCore(cfg config.Config, log *slog.Logger, set *playbooks.Set) (_ *App, err error) {
	return buildCoreWith(cfg, log, set, nil)
}

// buildCoreWith is buildCore with a detector that already runs in this
// process (riposte top's): captures record from it instead of a second
// one. The caller keeps running it; Close does not stop it.
func buildCoreWith(cfg config.Config, log *slog.Logger, set *playbooks.Set, det *detector.Detector) (_ *App, err error) {
	if set == nil {
		if set, err = playbooks.Parse(integrations.Catalog()); err != nil {
			return nil, err
		}
	}
	a := &App{Config: cfg, Log: log, Playbooks: set, Registry: prometheus.NewRegistry(), Detector: det}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	a.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a.Metrics = metrics.New(a.Registry)
	a.Store, err = OpenStore(context.Background(), cfg.Store.URL, cfg.Data, store.Options{IncidentWindow: cfg.Store.IncidentWindow, ClockSkew: cfg.Store.ClockSkew, Logger: log.With("component", "store")})
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	var dcfg detector.Config
	if err := config.Decode(cfg.File, "detector", &cfg.Detector, &dcfg); err != nil {
		return nil, err
	}
	for i, r := range dcfg.Rules {
		dcfg.Rules[i] = cfg.Resolve(r)
	}
	if cfg.Engine.DryRun {
		dcfg.Enforce.DryRun = true // the global dry run holds in the kernel too
	}
	var env *integrations.Env
	env = &integrations.Env{Logger: log, Data: cfg.Data, KV: a.Store, Replays: a.Store, Dispatcher: dispatcher{a},
		Events: func() (capture.Events, error) {
			if err := a.startDetector(dcfg, env, log); err != nil || a.Detector == nil {
				return nil, err
			}
			return a.Detector, nil
		},
		CaptureFinished: a.captureFinished}
	a.Integrations, err = BuildIntegrations(&cfg, env)
	if err != nil {
		return nil, err
	}
	if err := a.startDetector(dcfg, env, log); err != nil {
		return nil, err
	}
	if err := a.routeNodeActions(); err != nil {
		return nil, err
	}
	if err := Missing(set, a.Integrations.Runners); err != nil && !cfg.Engine.DryRun {
		return nil, fmt.Errorf("the playbooks use actions riposte cannot run with this config:\n%w", err)
	}
	if err := CheckParams(set, &cfg); err != nil {
		return nil, fmt.Errorf("the playbooks do not fit this config:\n%w", err)
	}
	a.Silences = silence.NewCache(a.Store, 0, nil, log.With("component", "silences"))
	deps := engine.Deps{
		Store: a.Store, Playbooks: set, Catalog: integrations.Catalog(), Runners: a.Integrations.Runners,
		Updates: a.Integrations.Updates, Approvals: a.Integrations.Approvals, Stream: a.Integrations.Stream,
		Silences: a.Silences, Throttle: a.Integrations.Throttle,
		Logger: log.With("component", "engine"), Metrics: a.Metrics,
	}
	a.Engine, err = engine.New(cfg.Engine, deps)
	if err != nil {
		return nil, err
	}
	return a, nil
}

// startDetector builds the detector once, when the config enables it; it
// shares the docker integration's API client for enrichment, and asks the
// containerd integration, when configured, about the containers Docker
// does not know. Captures ask for it while they are built (they record
// from its event stream).
func (a *App) startDetector(dcfg detector.Config, env *integrations.Env, log *slog.Logger) (err error) {
	if a.Detector != nil || !dcfg.Enabled {
		return nil
	}
	d, _ := env.Value("docker").(integrations.Docker)
	var resolvers []containers.Resolver
	if c, ok := env.Value("containerd").(integrations.Containerd); ok {
		resolvers = append(resolvers, c)
	}
	deps := detector.Deps{Logger: log.With("component", "detector"), Docker: d.Client, Resolvers: resolvers, Registerer: a.Registry}
	if d.Responder != nil {
		deps.Protected = d.Responder.Protected // in-kernel enforcement arms only what this says is not protected
	}
	a.Detector, err = detector.New(dcfg, deps)
	if err != nil {
		a.Detector = nil
		return fmt.Errorf("detector: %w", err)
	}
	return nil
}

func (a *App) captureFinished(f capture.Finished) {
	e := store.Entry{Type: store.CaptureFinished, Action: f.Request.Action, Actor: f.Request.Actor, AlertID: f.Request.Alert.ID,
		SHA256: f.Result.SHA256, Detail: map[string]any{"capture": f.CaptureID, "incident": f.Request.Incident,
			"container": f.Request.Container, "note": f.Result.Note, "evidence": f.Result.Evidence, "key": f.Request.Key}}
	if p, ok := strings.CutPrefix(f.Request.Actor, "playbook:"); ok {
		e.Playbook = p
	}
	if f.Err != nil {
		e.Detail["error"] = f.Err.Error()
	}
	if _, err := a.Store.Append(context.Background(), e); err != nil {
		a.Log.Error("journal capture end", "capture", f.CaptureID, "err", err)
	}
}

// runDetector feeds the detector's alerts to the engine: emit never
// blocks the sensor (a full queue drops, counted), and a submitter stores
// what is queued in batches, so that a burst shares commits. When the
// detector stops, what is queued is still stored.
func (a *App) runDetector(ctx context.Context) error {
	queue := make(chan alert.Alert, 4096)
	dropped := a.Metrics.AlertsRejected.WithLabelValues("detector_queue_full")
	done := make(chan struct{})
	go func() {
		defer close(done)
		batch := make([]alert.Alert, 0, 256)
		for first := range queue {
			batch = append(batch[:0], first)
		more:
			for len(batch) < cap(batch) {
				select {
				case x, ok := <-queue:
					if !ok {
						break more
					}
					batch = append(batch, x)
				default:
					break more
				}
			}
			if _, err := a.Engine.Submit(context.WithoutCancel(ctx), batch, "detector"); err != nil {
				a.Log.Error("store detector alerts", "alerts", len(batch), "err", err)
			}
			a.detectorQueued.Add(-int64(len(batch)))
		}
	}()
	err := a.Detector.Run(ctx, func(x alert.Alert) {
		a.detectorQueued.Add(1)
		select {
		case queue <- x:
		default:
			a.detectorQueued.Add(-1)
			dropped.Inc()
		}
	})
	close(queue) // Run has returned: emit is not called any more
	<-done
	return err
}

// Close releases the integrations, then the store.
func (a *App) Close() error {
	var errs []error
	if a.Integrations != nil {
		errs = append(errs, a.Integrations.Close())
	}
	if a.Store != nil {
		errs = append(errs, a.Store.Close())
	}
	return errors.Join(errs...)
}

// inbox is the HTTP server's intake: the engine stores the alerts and has
// them processed.
type inbox struct{ a *App }

func (i inbox) Accept(ctx context.Context, alerts []alert.Alert) ([]server.Accepted, error) {
	acc, err := i.a.Engine.Accept(ctx, alerts)
	if err != nil {
		return nil, err
	}
	out := make([]server.Accepted, len(acc))
	for k, x := range acc {
		out[k] = server.Accepted{ID: x.ID, Duplicate: x.Duplicate, Conflict: x.Conflict}
	}
	return out, nil
}

// ServeInfo is written to <data>/serve.json while serve runs, so that
// `riposte act` can reach the running server.
type ServeInfo struct {
	PID     int       `json:"pid"`
	Listen  string    `json:"listen"`
	Started time.Time `json:"started"`
	// TLS: the listener answers https only.
	TLS bool `json:"tls,omitempty"`
	// Socket is the local unix socket ("" when off).
	Socket string `json:"socket,omitempty"`
}

// ServeInfoPath is where ServeInfo lives.
func ServeInfoPath(data string) string { return filepath.Join(data, "serve.json") }

// Serve runs the HTTP server and the engine until ctx ends. ready, when not
// nil, receives the listening address once the server accepts requests.
// token is the unnamed intake token ("": only auth.tokens and HMAC).
func (a *App) Serve(ctx context.Context, token string, ready func(addr string)) error {
	hmacSecret, err := a.Config.HMACSecret()
	if err != nil {
		return err
	}
	a.serveCtx = ctx
	scfg := server.Config{Tokens: nonEmpty(token), HMACSecret: hmacSecret, MaxBody: a.Config.Auth.MaxBody, MaxInFlight: a.Config.Auth.MaxInFlight,
		SocketUsers: a.Config.Auth.SocketUsers}
	if scfg.MetricsTokens, scfg.Credentials, err = readCredentials(a.Config); err != nil {
		return err
	}
	var certs *server.TLSReloader
	if t := a.Config.TLS; t.Enabled() {
		certs, err = server.NewTLSReloader(server.TLSFiles{CertFile: t.CertFile, KeyFile: t.KeyFile,
			ClientCAFile: t.ClientCAFile, ClientAuth: t.ClientAuth}, a.Log.With("component", "tls"))
		if err != nil {
			return err
		}
		scfg.TLS = certs.Config()
	}
	srv, err := server.New(scfg,
		server.Deps{
			Inbox: inbox{a}, Logger: a.Log.With("component", "http"), Metrics: a.Metrics, Gatherer: a.Registry,
			Ready: a.ready, Routes: a.routes(), Scoped: a.scoped(),
		})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", a.Config.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", a.Config.Listen, err)
	}
	sock, err := listenSocket(a.Config.SocketPath(), a.Config.Auth.SocketGroup)
	if err != nil && a.Config.Auth.Socket == "" {
		// The default place (a long data path, a file system without
		// sockets): serve without it; act then needs an operator token.
		a.Log.Warn("local socket off", "err", err)
		sock, err = nil, nil
	}
	if err != nil {
		ln.Close()
		return err
	}
	si := ServeInfo{PID: os.Getpid(), Listen: ln.Addr().String(), Started: time.Now().UTC(), TLS: certs != nil}
	if sock != nil {
		si.Socket = sock.Addr().String()
		defer os.Remove(si.Socket)
	}
	info, _ := json.Marshal(si)
	if err := os.WriteFile(ServeInfoPath(a.Config.Data), info, 0o600); err != nil {
		ln.Close()
		if sock != nil {
			sock.Close()
		}
		return fmt.Errorf("write serve info: %w", err)
	}
	defer os.Remove(ServeInfoPath(a.Config.Data))

	anchors, err := a.anchorWriter()
	if err != nil {
		ln.Close()
		if sock != nil {
			sock.Close()
		}
		return err
	}
	startPprof(a.Log)
	engCtx, stopEngine := context.WithCancel(context.WithoutCancel(ctx))
	defer stopEngine()
	engDone := make(chan error, 1)
	go func() { engDone <- a.Engine.Run(engCtx) }()
	go a.watchQueues(engCtx)
	go prune(engCtx, a.Store, pruneEvery, a.Log.With("component", "prune"))
	go a.Silences.Run(engCtx, silenceCheck)
	if anchors != nil {
		go anchors.Run(engCtx, a.anchorInterval())
	}
	// One SIGHUP reloads the credentials and the certificates.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	certHup := make(chan os.Signal, 1)
	go a.watchHUP(engCtx, hup, srv.Keys(), token, certHup)
	if certs != nil {
		go certs.Watch(engCtx, certHup, 5*time.Second)
	}
	for name, run := range a.Integrations.Background {
		go func() {
			if err := run(engCtx); err != nil && engCtx.Err() == nil {
				a.Log.Error("integration stopped", "integration", name, "err", err)
			}
		}()
	}

	detErr := make(chan error, 1)
	if a.Detector != nil {
		go func() { detErr <- a.runDetector(engCtx) }()
		select {
		case <-a.Detector.Ready():
			a.Log.Info("detector attached", "rules", len(a.Detector.Rules().Rules()))
		case err := <-detErr:
			ln.Close()
			if sock != nil {
				sock.Close()
			}
			stopEngine()
			<-engDone
			return fmt.Errorf("start detector: %w", err)
		}
	} else {
		detErr <- nil
	}
	if ready != nil {
		ready(ln.Addr().String())
	}
	a.Log.Info("riposte serving", "listen", ln.Addr().String(), "tls", certs != nil, "socket", si.Socket, "data", a.Config.Data, "playbooks", len(a.Playbooks.Playbooks()),
		"dry_run", a.Config.Engine.DryRun)
	// HTTP first: stop taking alerts, drain requests in flight (their
	// alerts are durable once answered), then let the engine finish the
	// alerts it holds.
	sockErr := make(chan error, 1)
	if sock != nil {
		go func() { sockErr <- srv.Serve(ctx, sock) }()
	} else {
		sockErr <- nil
	}
	httpErr := errors.Join(srv.Serve(ctx, ln), <-sockErr)
	stopEngine()
	engErr := <-engDone
	detectorErr := <-detErr
	if anchors != nil {
		// After the engine's last entry: the head at shutdown is anchored.
		if c, ok, err := anchors.Checkpoint(context.Background()); err != nil {
			a.Log.Error("write journal checkpoint at shutdown", "err", err)
		} else if ok {
			a.Log.Info("journal checkpoint", "seq", c.Seq, "hash", c.Hash)
		}
	}
	a.Log.Info("riposte stopped")
	return errors.Join(httpErr, engErr, detectorErr)
}

func (a *App) ready(ctx context.Context) error {
	if err := a.Engine.Ready(ctx); err != nil {
		return err
	}
	if _, err := a.Store.Head(ctx); err != nil {
		// /readyz is unauthenticated: SQLite's text stays in the log.
		a.Log.Debug("readiness: read journal head", "err", err)
		return errors.New("store not readable")
	}
	return nil
}

// watchQueues exports queue depths.
func (a *App) watchQueues(ctx context.Context) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st, err := a.Store.Stats(ctx)
		if err != nil {
			continue
		}
		a.Metrics.QueueDepth.WithLabelValues("inbox").Set(float64(st.InboxPending + st.InboxProcessing))
		a.Metrics.QueueDepth.WithLabelValues("outbox").Set(float64(st.OutboxPending))
		a.Metrics.QueueDepth.WithLabelValues("approvals").Set(float64(st.ApprovalsPending))
	}
}

// readCredentials reads metrics.token_file and auth.tokens.
func readCredentials(cfg config.Config) (metricsTokens []string, creds []server.Credential, err error) {
	mt, err := cfg.MetricsToken()
	if err != nil {
		return nil, nil, err
	}
	if mt != "" {
		metricsTokens = []string{mt}
	}
	named, err := cfg.ReadTokens()
	if err != nil {
		return nil, nil, err
	}
	for _, t := range named {
		creds = append(creds, server.Credential{Name: t.Name, Scope: server.Scope(t.Scope), Token: t.Token, Node: t.Node})
	}
	return metricsTokens, creds, nil
}

// watchHUP reloads the credentials on each SIGHUP (the config file's
// auth.tokens, auth.socket_users and metrics.token_file, and every token
// file again) and
// passes the signal on to the certificate reloader. A failed reload is
// logged without any token and keeps the credentials in force.
func (a *App) watchHUP(ctx context.Context, hup <-chan os.Signal, keys *server.Keyring, token string, next chan<- os.Signal) {
	for {
		select {
		case <-ctx.Done():
			return
		case sig := <-hup:
			if err := a.reloadCredentials(keys, token); err != nil {
				a.Log.Error("reload credentials; keeping the previous ones", "err", err)
			} else {
				a.Log.Info("credentials reloaded")
			}
			select {
			case next <- sig:
			default:
			}
		}
	}
}

func (a *App) reloadCredentials(keys *server.Keyring, token string) error {
	cfg := a.Config
	if cfg.File != "" {
		fresh, err := config.Load(cfg.File)
		if err != nil {
			return err
		}
		cfg.Auth.Tokens, cfg.Metrics, cfg.Auth.SocketUsers = fresh.Auth.Tokens, fresh.Metrics, fresh.Auth.SocketUsers
	}
	mt, creds, err := readCredentials(cfg)
	if err != nil {
		return err
	}
	if err := keys.Set(server.LegacyCredentials(nonEmpty(token), mt, creds)); err != nil {
		return err
	}
	keys.SetSocketUsers(cfg.Auth.SocketUsers)
	return nil
}

// nonEmpty is []string{s}, or nil for "".
func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// listenSocket opens the local unix socket at path (nil when path is "").
// A socket file left by a crashed server is replaced; any other file there
// is an error. Mode 0660: the file's group (group, when not "") may
// connect, and the server checks each peer's user.
func listenSocket(path, group string) (*net.UnixListener, error) {
	if path == "" {
		return nil, nil
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("listen on socket %s: a file that is not a socket is in the way", path)
		}
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("listen on socket %s: another server answers on it", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("listen on socket %s: remove stale socket: %w", path, err)
		}
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen on socket %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(false) // removed by Serve, after the serve info
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("listen on socket %s: %w", path, err)
	}
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("listen on socket %s: auth.socket_group: %w", path, err)
		}
		gid, _ := strconv.Atoi(g.Gid)
		if err := os.Chown(path, -1, gid); err != nil {
			ln.Close()
			return nil, fmt.Errorf("listen on socket %s: auth.socket_group: %w", path, err)
		}
	}
	return ln, nil
}

// anchorWriter builds the journal's checkpoint writer (nil when
// journal.anchor.off), creating the key on first start.
func (a *App) anchorWriter() (*anchor.Writer, error) {
	ac := a.Config.Journal.Anchor
	if ac.Off {
		return nil, nil
	}
	key, created, err := anchor.LoadOrCreateKey(a.Config.AnchorKeyFile())
	if err != nil {
		return nil, err
	}
	if created {
		a.Log.Info("journal anchor key created", "key_file", a.Config.AnchorKeyFile(),
			"public_key", hex.EncodeToString(key.Public().(ed25519.PublicKey)))
	}
	return anchor.NewWriter(key, a.Store, a.Config.AnchorFile(), ac.Every, a.Log.With("component", "anchor")), nil
}

func (a *App) anchorInterval() time.Duration {
	if d := a.Config.Journal.Anchor.Interval; d > 0 {
		return d
	}
	return 10 * time.Second
}
