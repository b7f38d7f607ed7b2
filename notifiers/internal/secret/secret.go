package secret

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// LookupEnv reads an environment variable; os.LookupEnv in production, a map
// in tests.
type LookupEnv func(name string) (string, bool)

// Source says where one secret comes from: the name of an environment
// variable or the path of a file. What names the secret in messages is the
// configuration key, never the value.
type Source struct {
	// What the secret is, for messages: "slack bot token".
	What string
	// EnvKey and FileKey are the configuration keys ("token_env",
	// "token_file"), for messages.
	EnvKey, FileKey string
	// Env and File are the configured values; at most one may be set.
	Env, File string
}

// Set reports whether the source names a variable or a file.
func (s Source) Set() bool { return s.Env != "" || s.File != "" }

// Check reports a source that names both a variable and a file. It does not
// read either.
func (s Source) Check() error {
	if s.Env != "" && s.File != "" {
		return fmt.Errorf("%s: set %s or %s, not both", s.What, s.EnvKey, s.FileKey)
	}
	return nil
}

// Load returns the secret, trimmed of surrounding white space (files usually
// end with a newline). An unset source, an unset or empty variable and an
// unreadable or empty file are errors that name the variable or the file.
func (s Source) Load(lookup LookupEnv) (string, error) {
	if err := s.Check(); err != nil {
		return "", err
	}
	if lookup == nil {
		lookup = os.LookupEnv
	}
	switch {
	case s.Env != "":
		v, ok := lookup(s.Env)
		if !ok {
			return "", fmt.Errorf("%s: environment variable %s (%s) is not set", s.What, s.Env, s.EnvKey)
		}
		v = strings.TrimSpace(v)
		if v == "" {
			return "", fmt.Errorf("%s: environment variable %s (%s) is empty", s.What, s.Env, s.EnvKey)
		}
		return v, nil
	case s.File != "":
		b, err := os.ReadFile(s.File)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return "", fmt.Errorf("%s: read %s %s: %w", s.What, s.FileKey, s.File, err)
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			return "", fmt.Errorf("%s: file %s (%s) is empty", s.What, s.File, s.FileKey)
		}
		return v, nil
	}
	return "", fmt.Errorf("%s: not configured: set %s or %s", s.What, s.EnvKey, s.FileKey)
}

// Redactor replaces known secret values in text.
type Redactor struct {
	r *strings.Replacer
}

// minLen is the shortest value the redactor replaces; shorter values would
// blank out ordinary words.
const minLen = 6

// NewRedactor returns a redactor for the given values; empty and very short
// values are ignored.
func NewRedactor(values ...string) Redactor {
	var pairs []string
	for _, v := range values {
		if len(v) >= minLen {
			pairs = append(pairs, v, "[redacted]")
		}
	}
	if len(pairs) == 0 {
		return Redactor{}
	}
	return Redactor{r: strings.NewReplacer(pairs...)}
}

// String returns s with every secret replaced by "[redacted]".
func (r Redactor) String(s string) string {
	if r.r == nil {
		return s
	}
	return r.r.Replace(s)
}

// Error returns err unchanged when its text holds no secret, and otherwise an
// error with the same chain (errors.Is and errors.As still work) whose text
// has the secrets replaced.
func (r Redactor) Error(err error) error {
	if err == nil || r.r == nil {
		return err
	}
	msg := err.Error()
	clean := r.r.Replace(msg)
	if clean == msg {
		return err
	}
	return redacted{msg: clean, err: err}
}

type redacted struct {
	msg string
	err error
}

func (e redacted) Error() string { return e.msg }
func (e redacted) Unwrap() error { return e.err }
