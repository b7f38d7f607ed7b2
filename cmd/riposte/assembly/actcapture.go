package assembly

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"go.yaml.in/yaml/v3"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/config"
	"github.com/riposte-sec/riposte/internal/engine"
	"github.com/riposte-sec/riposte/responders/capture"
)

// actCapture runs capture.start when no server holds the data directory:
// like tcpdump, it runs the detector in this process for the capture's
// duration, waits for the capture to end (ctx ending stops it early,
// cleanly), journals its end and returns the final Result with the
// files' hashes. The detector's alerts are not acted on here.
func actCapture(ctx context.Context, cfg config.Config, req ActRequest) (actions.Result, string, error) {
	how := "directly, with an in-process detector (no server running on " + cfg.Data + ")"
	if w, ok := req.With["wait"]; ok {
		if b, err := strconv.ParseBool(fmt.Sprint(w)); err != nil || !b {
			return actions.Result{}, how, errors.New("capture.start: wait=false needs a running riposte serve (its detector records the capture); without one, act records until the capture ends")
		}
	}
	cfg.Detector = detectorEnabled(cfg.Detector)
	app, err := buildForAct(cfg)
	if err != nil {
		return actions.Result{}, how, err
	}
	defer app.Close()
	if app.Detector == nil {
		return actions.Result{}, how, errors.New("capture.start: the detector could not be built")
	}
	// The detector and the action outlive ctx: ctx ending stops the
	// capture, which then ends cleanly (sealed, its end journaled).
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- app.Detector.Run(runCtx, func(alert.Alert) {}) }()
	select {
	case <-app.Detector.Ready():
	case err := <-runErr:
		return actions.Result{}, how, fmt.Errorf("capture.start: start the detector: %w", err)
	case <-ctx.Done():
		return actions.Result{}, how, ctx.Err()
	}
	cp, ok := app.Integrations.Built["capture"].Value.(*capture.Capture)
	if !ok {
		return actions.Result{}, how, errors.New("capture.start: the capture integration was not built")
	}
	params := make(actions.Params, len(req.With)+1)
	for k, v := range req.With {
		params[k] = v
	}
	params["wait"] = "true"
	acted := make(chan struct{})
	defer close(acted)
	go func() {
		select {
		case <-ctx.Done():
			// Not yet started: Stop finds nothing and the capture runs
			// its course; act's caller has been told by ctx.
			_, _ = cp.Stop(runCtx, req.Container)
		case <-acted:
		}
	}()
	res, err := app.Engine.Act(runCtx, engine.Manual{Action: capture.ActionStart, Container: req.Container, Incident: req.Incident,
		Params: params, Actor: "cli:" + OSUser(), Override: req.OverrideBlastRadius, Report: true})
	return res, how, err
}

// detectorEnabled is the detector's config section with enabled: true.
func detectorEnabled(n yaml.Node) yaml.Node {
	on := []*yaml.Node{{Kind: yaml.ScalarNode, Tag: "!!str", Value: "enabled"}, {Kind: yaml.ScalarNode, Tag: "!!bool", Value: "true"}}
	if n.Kind != yaml.MappingNode {
		return yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: on}
	}
	out := n
	out.Content = nil
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value != "enabled" {
			out.Content = append(out.Content, n.Content[i], n.Content[i+1])
		}
	}
	out.Content = append(out.Content, on...)
	return out
}
