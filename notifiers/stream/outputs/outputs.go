package outputs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/riposte-sec/riposte/internal/store"
	"github.com/riposte-sec/riposte/notifiers/file"
	"github.com/riposte-sec/riposte/notifiers/program"
	"github.com/riposte-sec/riposte/notifiers/stream"
	"github.com/riposte-sec/riposte/notifiers/syslog"
)

// Deps are what the outputs need; every field is optional.
type Deps struct {
	// Logger; nil discards. Each output logs with an "output" attribute.
	Logger *slog.Logger
	// LookupEnv reads the variables program outputs pass on; nil:
	// os.LookupEnv.
	LookupEnv program.LookupEnv
}

// Output is one opened output.
type Output struct {
	Name   string
	Type   string
	Filter stream.Filter
	stream.Output
}

// Set is the opened outputs, in config order.
type Set struct {
	outs   []*Output
	byName map[string]*Output
}

// New validates cfg and opens every output (a file output opens its file,
// a program output finds its program; syslog connects on first use). On
// error, what was opened is closed.
func New(cfg Config, deps Deps) (*Set, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Set{byName: map[string]*Output{}}
	for i, o := range cfg.Outputs {
		l := log.With("output", o.Name)
		var out stream.Output
		var err error
		switch o.Type() {
		case "syslog":
			out, err = syslog.New(*o.Syslog, syslog.Deps{Logger: l})
		case "file":
			out, err = file.New(*o.File, file.Deps{Logger: l})
		case "program":
			out, err = program.New(*o.Program, program.Deps{Logger: l, LookupEnv: deps.LookupEnv})
		}
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("stream: outputs[%d] (%s): %w", i, o.Name, err)
		}
		op := &Output{Name: o.Name, Type: o.Type(), Filter: o.Filter, Output: out}
		s.outs = append(s.outs, op)
		s.byName[o.Name] = op
	}
	return s, nil
}

// Outputs lists the outputs in config order.
func (s *Set) Outputs() []*Output { return append([]*Output(nil), s.outs...) }

// Lookup finds an output by name.
func (s *Set) Lookup(name string) (*Output, bool) {
	o, ok := s.byName[name]
	return o, ok
}

// Route returns the outputs whose filter passes r.
func (s *Set) Route(r stream.Record) []*Output {
	var out []*Output
	for _, o := range s.outs {
		if o.Filter.Match(r) {
			out = append(out, o)
		}
	}
	return out
}

// MessageKey is the outbox key of r for the output called name:
// "stream/<name>/<kind>/<id>".
func MessageKey(name string, r stream.Record) string {
	return MessageKind + "/" + name + "/" + r.Key()
}

// Messages returns one outbox message per output that takes r (none when no
// filter passes it). The payload is r as JSON.
func (s *Set) Messages(r stream.Record) ([]store.Message, error) {
	routes := s.Route(r)
	if len(routes) == 0 {
		return nil, nil
	}
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("queue record %s: %w", r.Key(), err)
	}
	payload, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("queue record %s: %w", r.Key(), err)
	}
	msgs := make([]store.Message, len(routes))
	for i, o := range routes {
		msgs[i] = store.Message{Key: MessageKey(o.Name, r), Kind: MessageKind, Target: o.Name, Incident: r.Incident, Payload: payload}
	}
	return msgs, nil
}

// Deliver writes one outbox message to its output and returns the detail
// for the journal entry that records the delivery (notification.sent or
// notification.failed): {"stream": output name, "output": type, "record":
// record key, "kind", "type"} plus, for programs, the run's result
// (program.Result.Detail). Errors keep the outputs' classification
// (actions.IsRetryable); a message that cannot be decoded, or names an
// output that is no longer configured, is permanent.
func (s *Set) Deliver(ctx context.Context, m store.Message) (map[string]any, error) {
	detail := map[string]any{stream.DeliveryDetailKey: m.Target}
	if m.Kind != MessageKind {
		return detail, fmt.Errorf("deliver %s: not a stream message (kind %q)", m.Key, m.Kind)
	}
	o, ok := s.byName[m.Target]
	if !ok {
		return detail, fmt.Errorf("deliver %s: no stream output named %q", m.Key, m.Target)
	}
	detail["output"] = o.Type
	var r stream.Record
	if err := json.Unmarshal(m.Payload, &r); err != nil {
		return detail, fmt.Errorf("deliver %s: decode record: %w", m.Key, err)
	}
	detail["record"], detail["kind"], detail["type"] = r.Key(), string(r.Kind), r.Type
	if p, ok := o.Output.(*program.Program); ok {
		res, err := p.Run(ctx, r)
		if res.PID != 0 || err == nil {
			for k, v := range res.Detail() {
				detail[k] = v
			}
		}
		return detail, err
	}
	return detail, o.Write(ctx, r)
}

// Close closes every output and returns their errors joined.
func (s *Set) Close() error {
	var errs []error
	for _, o := range s.outs {
		if err := o.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close stream output %s: %w", o.Name, err))
		}
	}
	return errors.Join(errs...)
}
