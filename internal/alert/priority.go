package alert

import (
	"fmt"
	"strings"
)

// Priority is Falco's alert priority. Values grow with severity, so
// Warning > Notice, and "at least Warning" reads p >= PriorityWarning everywhere
// (playbook match, expressions, code).
type Priority int

// Priorities, least severe first.
const (
	PriorityDebug Priority = iota
	PriorityInformational
	PriorityNotice
	PriorityWarning
	PriorityError
	PriorityCritical
	PriorityAlert
	PriorityEmergency
)

var priorityNames = [...]string{
	PriorityDebug:         "Debug",
	PriorityInformational: "Informational",
	PriorityNotice:        "Notice",
	PriorityWarning:       "Warning",
	PriorityError:         "Error",
	PriorityCritical:      "Critical",
	PriorityAlert:         "Alert",
	PriorityEmergency:     "Emergency",
}

// Priorities lists every priority, most severe first, as Falco documents them.
func Priorities() []Priority {
	return []Priority{PriorityEmergency, PriorityAlert, PriorityCritical, PriorityError, PriorityWarning, PriorityNotice, PriorityInformational, PriorityDebug}
}

// String returns Falco's spelling of the priority ("Warning").
func (p Priority) String() string {
	if p < PriorityDebug || p > PriorityEmergency {
		return fmt.Sprintf("Priority(%d)", int(p))
	}
	return priorityNames[p]
}

// ParsePriority accepts Falco's names case-insensitively, plus "info".
func ParsePriority(s string) (Priority, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "emergency":
		return PriorityEmergency, nil
	case "alert":
		return PriorityAlert, nil
	case "critical":
		return PriorityCritical, nil
	case "error":
		return PriorityError, nil
	case "warning":
		return PriorityWarning, nil
	case "notice":
		return PriorityNotice, nil
	case "informational", "info":
		return PriorityInformational, nil
	case "debug":
		return PriorityDebug, nil
	}
	return 0, fmt.Errorf("unknown priority %q (want one of Emergency, Alert, Critical, Error, Warning, Notice, Informational, Debug)", s)
}

// MarshalText writes Falco's spelling.
func (p Priority) MarshalText() ([]byte, error) {
	if p < PriorityDebug || p > PriorityEmergency {
		return nil, fmt.Errorf("marshal priority: invalid value %d", int(p))
	}
	return []byte(p.String()), nil
}

// UnmarshalText parses a priority name, case-insensitively.
func (p *Priority) UnmarshalText(b []byte) error {
	v, err := ParsePriority(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}
