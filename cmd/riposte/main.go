// Command riposte answers container security incidents: it takes alerts from
// its eBPF detector or from Falco by webhook, matches playbooks and runs
// responder actions, journaling every step.
//
// This package is the cobra command tree only; the wiring lives in internal/.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// Exit codes shared by every command.
const (
	exitOK       = 0
	exitFailed   = 1 // the command ran and the answer is "no" (an --expect not met, verify found tampering)
	exitBadInput = 2 // bad flags, files or input, or a command not built yet
)

// exitError carries an exit code through cobra's error return.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// withCode attaches an exit code to err; a nil err exits silently with code.
func withCode(code int, err error) error { return &exitError{code: code, err: err} }

func main() {
	root := newRootCmd()
	err := root.Execute()
	if err == nil {
		return
	}
	code := exitBadInput
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
		err = ee.err
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "riposte:", err)
	}
	os.Exit(code)
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "riposte",
		Short:         "Answer container security incidents in milliseconds",
		Long:          "riposte takes alerts from its eBPF detector or from Falco/Falcosidekick by webhook, matches them against playbooks and runs responder actions (notify, snapshot, capture, pause, quarantine, kill), recording every step in a hash-chained incident-response journal.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newServeCmd(),
		newDetectCmd(),
		newPlaybookCmd(),
		newJournalCmd(),
		newActCmd(),
		newSilenceCmd(),
		newTopCmd(),
		newActionsCmd(),
		newCaptureCmd(),
		newCICmd(),
		newAgentCmd(),
		newVersionCmd(),
	)
	return root
}
