package program

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Config is the `program:` block of one stream output.
//
//	program:
//	  argv: ["mail", "-s", "riposte alert", "soc@example.com"]   # never run through a shell
//	  timeout: 30s            # then the program's process group is killed
//	  max_concurrent: 4       # programs of this output running at once
//	  env: [PATH, LANG]       # variables passed through from riposte's environment (default: PATH)
//	  # dir: /                # working directory
//	  # permanent_exit_codes: [64, 65]   # exit codes not worth retrying
type Config struct {
	// Argv is the program and its arguments, exactly as exec'd: argv[0]
	// is looked up in riposte's PATH when it has no slash. Nothing is
	// substituted into it: the record arrives on standard input.
	Argv    []string      `yaml:"argv"`
	Timeout time.Duration `yaml:"timeout"`
	// MaxConcurrent caps the programs of this output running at once;
	// more Writes wait (and give up when their context ends).
	MaxConcurrent int `yaml:"max_concurrent"`
	// Env names the variables of riposte's environment the program gets
	// (a secret such as a webhook URL travels this way, never in argv).
	// Unset: PATH only. An empty list: none. RIPOSTE_KIND, RIPOSTE_TYPE
	// and RIPOSTE_PRIORITY are always set.
	Env []string `yaml:"env"`
	Dir string   `yaml:"dir"`
	// PermanentExitCodes are exit statuses that mean "this record will
	// never go through" (sysexits' EX_DATAERR 65, say): such a failure is
	// not retried. Every other failure is.
	PermanentExitCodes []int `yaml:"permanent_exit_codes"`
}

// Defaults.
const (
	DefaultTimeout       = 30 * time.Second
	DefaultMaxConcurrent = 4
	maxMaxConcurrent     = 256
	// StderrLimit is how much of the program's standard error is kept.
	StderrLimit = 4 << 10
)

// defaultEnv is what the program gets when env is unset.
var defaultEnv = []string{"PATH"}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (c Config) withDefaults() Config {
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxConcurrent == 0 {
		c.MaxConcurrent = DefaultMaxConcurrent
	}
	if c.Env == nil {
		c.Env = defaultEnv
	}
	return c
}

// Validate checks the block and collects every problem. It does not look
// for the program: New does.
func (c Config) Validate() error {
	var errs []error
	if len(c.Argv) == 0 || c.Argv[0] == "" {
		errs = append(errs, errors.New("argv: missing (the program and its arguments, as a list)"))
	}
	for i, a := range c.Argv {
		if strings.ContainsRune(a, 0) {
			errs = append(errs, fmt.Errorf("argv[%d]: contains NUL", i))
		}
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout: must not be negative, got %s", c.Timeout))
	}
	if c.MaxConcurrent < 0 || c.MaxConcurrent > maxMaxConcurrent {
		errs = append(errs, fmt.Errorf("max_concurrent: want 1 to %d, got %d", maxMaxConcurrent, c.MaxConcurrent))
	}
	seen := map[string]bool{}
	for i, name := range c.Env {
		switch {
		case !envName.MatchString(name):
			errs = append(errs, fmt.Errorf("env[%d]: %q is not a variable name", i, name))
		case strings.HasPrefix(name, "RIPOSTE_"):
			errs = append(errs, fmt.Errorf("env[%d]: %s: RIPOSTE_ variables are set by riposte", i, name))
		case seen[name]:
			errs = append(errs, fmt.Errorf("env[%d]: %s listed twice", i, name))
		}
		seen[name] = true
	}
	if c.Dir != "" && !filepath.IsAbs(c.Dir) {
		errs = append(errs, fmt.Errorf("dir: want an absolute path, got %q", c.Dir))
	}
	for i, code := range c.PermanentExitCodes {
		if code < 1 || code > 255 {
			errs = append(errs, fmt.Errorf("permanent_exit_codes[%d]: want 1 to 255, got %d", i, code))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("program config: %w", err)
	}
	return nil
}
