package outputs

import (
	"errors"
	"fmt"
	"regexp"

	"github.com/riposte-sec/riposte/notifiers/file"
	"github.com/riposte-sec/riposte/notifiers/program"
	"github.com/riposte-sec/riposte/notifiers/stream"
	"github.com/riposte-sec/riposte/notifiers/syslog"
)

// MessageKind is store.Message.Kind of stream deliveries.
const MessageKind = "stream"

// Config is the `stream:` section.
type Config struct {
	Outputs []OutputConfig `yaml:"outputs"`
}

// OutputConfig is one output: a name, a filter, and exactly one of syslog,
// file and program.
type OutputConfig struct {
	Name          string `yaml:"name"`
	stream.Filter `yaml:",inline"`
	Syslog        *syslog.Config  `yaml:"syslog"`
	File          *file.Config    `yaml:"file"`
	Program       *program.Config `yaml:"program"`
}

// Type is "syslog", "file" or "program" ("" when none is set).
func (o OutputConfig) Type() string {
	switch {
	case o.Syslog != nil:
		return "syslog"
	case o.File != nil:
		return "file"
	case o.Program != nil:
		return "program"
	}
	return ""
}

var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// Validate checks every output and collects every problem, each prefixed
// with the output it is about: "stream: outputs[1] (archive): file config:
// path: missing".
func (c Config) Validate() error {
	var errs []error
	seen := map[string]bool{}
	files := map[string]string{}
	for i, o := range c.Outputs {
		where := fmt.Sprintf("outputs[%d]", i)
		if o.Name != "" {
			where = fmt.Sprintf("outputs[%d] (%s)", i, o.Name)
		}
		add := func(err error) { errs = append(errs, fmt.Errorf("%s: %w", where, err)) }
		switch {
		case o.Name == "":
			add(errors.New("name: missing"))
		case !namePattern.MatchString(o.Name):
			add(errors.New("name: want lowercase letters, digits, - and _"))
		case seen[o.Name]:
			add(errors.New("name: used twice"))
		}
		seen[o.Name] = true
		n := 0
		for _, set := range []bool{o.Syslog != nil, o.File != nil, o.Program != nil} {
			if set {
				n++
			}
		}
		if n != 1 {
			add(errors.New("set exactly one of syslog, file and program"))
		}
		if err := o.Filter.Validate(); err != nil {
			add(err)
		}
		if o.Syslog != nil {
			if err := o.Syslog.Validate(); err != nil {
				add(err)
			}
		}
		if o.File != nil {
			if err := o.File.Validate(); err != nil {
				add(err)
			} else if other, ok := files[o.File.Path]; ok {
				add(fmt.Errorf("file config: path: %s is also written by output %s", o.File.Path, other))
			} else {
				files[o.File.Path] = o.Name
			}
		}
		if o.Program != nil {
			if err := o.Program.Validate(); err != nil {
				add(err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stream: %w", err)
	}
	return nil
}
