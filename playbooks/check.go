package playbooks

import (
	"errors"
	"fmt"

	"github.com/riposte-sec/riposte/internal/actions"
)

// CheckParams calls check for every action of every playbook with its
// literal `with` values (a template is known only once an alert renders it)
// and returns the failures as LoadErrors naming the file, line, playbook and
// action, joined. Serve uses it for parameters only the configuration can
// judge, such as a webhook endpoint's name.
func (s *Set) CheckParams(check func(action string, with actions.Params) error) error {
	var errs []error
	for _, b := range s.books {
		for i, a := range b.Actions {
			with := actions.Params{}
			for name, v := range a.With {
				if v.Template == nil {
					with[name] = v.Literal
				}
			}
			if err := check(a.Do, with); err != nil {
				errs = append(errs, &LoadError{File: b.File, Line: a.Line, Playbook: b.Name, Field: fmt.Sprintf("actions[%d]", i), Msg: err.Error()})
			}
		}
	}
	return errors.Join(errs...)
}
