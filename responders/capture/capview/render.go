package capview

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/riposte-sec/riposte/detector/event"
	"github.com/riposte-sec/riposte/detector/rules"
	"github.com/riposte-sec/riposte/responders/capture/capfile"
)

// View selects what Render prints.
type View string

// Views.
const (
	Events      View = ""            // every event, one line each
	Procs       View = "procs"       // the process tree with command lines
	Connections View = "connections" // new connections: connect and accept, with addresses
	SpyUsers    View = "spy-users"   // commands run from interactive shells
	Files       View = "files"       // files opened, with flags, and changes to the file tree
)

// Views lists the named views.
func Views() []View { return []View{Procs, Connections, SpyUsers, Files} }

// ParseView parses a --view value; "" and "events" are Events.
func ParseView(s string) (View, error) {
	switch v := View(s); v {
	case Events, "events":
		return Events, nil
	case Procs, Connections, SpyUsers, Files:
		return v, nil
	}
	return "", fmt.Errorf("unknown view %q (want procs, connections, spy-users or files)", s)
}

// Output is the output format.
type Output string

// Outputs.
const (
	Text Output = "text"
	JSON Output = "json"
)

// ParseOutput parses an --output value; "" is Text.
func ParseOutput(s string) (Output, error) {
	switch o := Output(s); o {
	case "", Text:
		return Text, nil
	case JSON:
		return JSON, nil
	}
	return "", fmt.Errorf("unknown output %q (want json or text)", s)
}

// Options say what Render prints.
type Options struct {
	// Filter keeps the events it matches (rules.CompileFilter); nil keeps
	// every event. In the views it selects rows: the connections, files
	// and commands shown, and for procs the processes with at least one
	// matching event (and their ancestors, to keep the tree).
	Filter *rules.Filter
	Output Output
	View   View
}

// Summary is what Render saw.
type Summary struct {
	Header  capfile.Header
	Trailer *capfile.Trailer // nil for an incomplete file
	Events  uint64           // events read
	Matched uint64           // events the filter kept
}

// Render reads every record of r and prints opts.View in opts.Output on w.
// The events view is streamed; the others are printed as rows are found,
// procs at the end. When the file is incomplete (capfile.ErrIncomplete),
// everything read is printed and the error is returned; any other read
// error or a filter that fails on an event stops Render with that error.
func Render(w io.Writer, r *capfile.Reader, opts Options) (Summary, error) {
	if opts.Output == "" {
		opts.Output = Text
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	sum := Summary{Header: r.Header()}
	var v viewer
	switch opts.View {
	case Events:
		v = &eventsView{json: opts.Output == JSON, filtered: opts.Filter != nil}
	case Procs:
		v = &procsView{json: opts.Output == JSON, filtered: opts.Filter != nil}
	case Connections:
		v = &connView{json: opts.Output == JSON}
	case SpyUsers:
		v = &spyView{json: opts.Output == JSON}
	case Files:
		v = &filesView{json: opts.Output == JSON}
	default:
		return sum, fmt.Errorf("render capture: unknown view %q", opts.View)
	}
	out := &printer{w: bw}
	v.start(out, sum.Header)
	t := newTable()
	var readErr error
	for out.err == nil {
		rec, err := r.Next()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				readErr = err
			}
			break
		}
		switch rec.Kind {
		case capfile.KindProcess:
			t.addState(rec.Process)
			v.state(out, &rec)
		case capfile.KindSocket:
			v.state(out, &rec)
		case capfile.KindEvent:
			sum.Events++
			ev := rec.Event
			match := true
			if opts.Filter != nil {
				ok, err := opts.Filter.Match(ev)
				if err != nil {
					return sum, fmt.Errorf("event %d: %w", sum.Events, err)
				}
				match = ok
			}
			if match {
				sum.Matched++
			}
			v.event(out, t, sum.Events, ev, match)
			t.apply(ev, match)
		}
	}
	sum.Trailer = r.Trailer()
	if out.err == nil && (readErr == nil || errors.Is(readErr, capfile.ErrIncomplete)) {
		v.end(out, t, sum.Trailer)
	}
	if err := bw.Flush(); err != nil && out.err == nil {
		out.err = err
	}
	if out.err != nil {
		return sum, fmt.Errorf("write output: %w", out.err)
	}
	return sum, readErr
}

// viewer is one view: called with the header, every state record, every
// event (match says whether the filter kept it; the table holds the process
// state before the event is applied), and at the end.
type viewer interface {
	start(p *printer, h capfile.Header)
	state(p *printer, rec *capfile.Record)
	event(p *printer, t *table, num uint64, ev *event.Event, match bool)
	end(p *printer, t *table, tr *capfile.Trailer)
}

// printer remembers the first write error.
type printer struct {
	w   *bufio.Writer
	err error
}

func (p *printer) line(s string) {
	if p.err != nil {
		return
	}
	if _, err := p.w.WriteString(s); err != nil {
		p.err = err
		return
	}
	p.err = p.w.WriteByte('\n')
}

func (p *printer) json(v any) {
	if p.err != nil {
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		p.err = err
		return
	}
	p.line(string(b))
}

// eventsView prints every kept event. Text: the header and state as
// comment lines (the state only without a filter), events, the trailer.
// JSON: one event per line, exactly as the detector encodes it.
type eventsView struct{ json, filtered bool }

func (v *eventsView) start(p *printer, h capfile.Header) {
	if !v.json {
		for _, l := range HeaderLines(h) {
			p.line(l)
		}
	}
}

func (v *eventsView) state(p *printer, rec *capfile.Record) {
	if v.json || v.filtered {
		return
	}
	switch rec.Kind {
	case capfile.KindProcess:
		p.line(ProcessLine(rec.Process))
	case capfile.KindSocket:
		p.line(SocketLine(rec.Socket))
	}
}

func (v *eventsView) event(p *printer, _ *table, num uint64, ev *event.Event, match bool) {
	if !match {
		return
	}
	if v.json {
		p.json(ev)
		return
	}
	p.line(EventLine(num, ev))
}

func (v *eventsView) end(p *printer, _ *table, tr *capfile.Trailer) {
	if v.json {
		return
	}
	if tr != nil {
		p.line(TrailerLine(tr))
	} else {
		p.line("# no trailer: the capture file is incomplete")
	}
}
