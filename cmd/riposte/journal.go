package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/riposte-sec/riposte/cmd/riposte/assembly"
	"github.com/riposte-sec/riposte/internal/anchor"
	"github.com/riposte-sec/riposte/internal/store"
)

// defaultDataDir is where `riposte serve` keeps its data unless told.
const defaultDataDir = "riposte-data"

func newJournalCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "journal",
		Short: "Read and verify the incident-response journal",
		Long: `The journal is the hash-chained record of everything riposte did: alerts received,
playbooks matched, actions planned, run, skipped or held, approvals. It lives in the
SQLite file <data>/riposte.db; both commands open it read-only and work while the
server runs.`,
	}
	cmd.AddCommand(newJournalShowCmd(), newJournalVerifyCmd())
	return cmd
}

func newJournalShowCmd() *cobra.Command {
	var (
		data     string
		storeURL string
		output   string
		alertID  string
		since    string
		types    []string
	)
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Print journal entries",
		Long: `Print journal entries, oldest first: a table, or with --output json one JSON object per
line ({seq, time, type, alert_id, playbook, action, actor, detail, sha256, prev_hash, hash}).

--since takes an RFC 3339 time (2025-03-01T12:00:00Z), a date (2025-03-01, midnight UTC)
or a duration back from now (90m, 2h, 7d).

Exit status: 0 done, 2 bad input.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return withCode(exitBadInput, fmt.Errorf("--output: want text or json, got %q", output))
			}
			from, err := parseSince(since, time.Now())
			if err != nil {
				return withCode(exitBadInput, err)
			}
			f := store.Filter{AlertID: alertID, Since: from}
			for _, t := range types {
				if !store.EntryType(t).Known() {
					return withCode(exitBadInput, fmt.Errorf("--type: unknown entry type %q (want one of %s)", t, entryTypeList()))
				}
				f.Types = append(f.Types, store.EntryType(t))
			}
			s, closer, err := openJournal(cmd.Context(), storeURL, data)
			if err != nil {
				return err
			}
			defer closer.Close()
			out := cmd.OutOrStdout()
			if output == "json" {
				err = showJSON(cmd.Context(), out, s, f)
			} else {
				err = showText(cmd.Context(), out, s, f)
			}
			if err != nil {
				return withCode(exitFailed, fmt.Errorf("journal show: %w", err))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&data, "data", defaultDataDir, "data directory (holds riposte.db)")
	storeFlag(cmd.Flags(), &storeURL)
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json (one entry per line)")
	cmd.Flags().StringVar(&alertID, "alert", "", "only entries about this alert id")
	cmd.Flags().StringVar(&since, "since", "", "only entries at or after: RFC 3339 time, date, or duration ago (2h, 7d)")
	cmd.Flags().StringArrayVar(&types, "type", nil, "only entries of this type (repeatable), e.g. action.succeeded")
	_ = cmd.RegisterFlagCompletionFunc("type", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		var names []string
		for _, t := range store.EntryTypes() {
			names = append(names, string(t))
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	})
	return cmd
}

// entryTypeList is every journal entry type, comma separated.
func entryTypeList() string {
	var names []string
	for _, t := range store.EntryTypes() {
		names = append(names, string(t))
	}
	return strings.Join(names, ", ")
}

func newJournalVerifyCmd() *cobra.Command {
	var (
		data       string
		storeURL   string
		output     string
		anchorFile string
		publicKey  string
		expectHead string
	)
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check the journal's hash chain",
		Long: `Recompute every entry's hash and check the chain: any entry edited, removed or
reordered, and a cut tail, is reported by seq. An empty journal in a store that holds
alerts, incidents or action runs fails: it was emptied. On success it prints the head
(last seq and hash): keep it somewhere else.

A chain rewritten as a whole, or cut and its head row updated, is consistent on its
own; what catches it is a copy of the head kept elsewhere:
  --anchor FILE          the checkpoints riposte serve signs and appends to
                         journal.anchor.file (one JSON per line); each must match
  --public-key KEY       pin the key checkpoints must be signed with (64 hex digits
                         or a PEM PUBLIC KEY file); default: each line's own key
  --expect-head SEQ:HASH a head printed by an earlier verify (or GET /v1/journal/head)

Exit status: 0 the journal is intact, 1 it is not (the message names the first bad
entry), 2 bad input.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return withCode(exitBadInput, fmt.Errorf("--output: want text or json, got %q", output))
			}
			s, closer, err := openJournal(cmd.Context(), storeURL, data)
			if err != nil {
				return err
			}
			defer closer.Close()
			rep, err := s.Verify(cmd.Context())
			if err != nil {
				return withCode(exitFailed, fmt.Errorf("journal verify: %w", err))
			}
			// The chain first; what it cannot see only when it is intact.
			var problem string
			if rep.OK() {
				if problem, err = checkAnchored(cmd.Context(), s, rep, anchorFile, publicKey, expectHead); err != nil {
					return err
				}
			}
			out := cmd.OutOrStdout()
			if output == "json" {
				enc := json.NewEncoder(out)
				doc := struct {
					store.Report
					// Anchor is what the anchors, the expected head or the
					// empty-journal check found.
					Anchor string `json:"anchor_problem,omitempty"`
				}{rep, problem}
				if err := enc.Encode(doc); err != nil {
					return withCode(exitFailed, err)
				}
			}
			if !rep.OK() {
				return withCode(exitFailed, fmt.Errorf("journal verify: %s", rep.Problem.Message))
			}
			if problem != "" {
				return withCode(exitFailed, fmt.Errorf("journal verify: %s", problem))
			}
			if output == "text" {
				fmt.Fprintf(out, "journal ok: %d entries, head seq %d hash %s\n", rep.Entries, rep.Head.Seq, rep.Head.Hash)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&data, "data", defaultDataDir, "data directory (holds riposte.db)")
	storeFlag(cmd.Flags(), &storeURL)
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json (the report)")
	cmd.Flags().StringVar(&anchorFile, "anchor", "", "anchor file of signed checkpoints (journal.anchor.file) to check the journal against")
	cmd.Flags().StringVar(&publicKey, "public-key", "", "checkpoints must be signed by this ed25519 key: 64 hex digits or a PEM file")
	cmd.Flags().StringVar(&expectHead, "expect-head", "", "SEQ:HASH the journal must still hold (a head recorded earlier)")
	return cmd
}

// checkAnchored checks what the chain alone cannot: an emptied journal,
// and the anchors and expected head given. It returns the problem found;
// the error is for bad flags and failures to read.
func checkAnchored(ctx context.Context, s store.Journal, rep store.Report, anchorFile, publicKey, expectHead string) (string, error) {
	if ac, ok := s.(store.ActivityCounter); ok && rep.Entries == 0 {
		act, err := ac.Activity(ctx)
		if err != nil {
			return "", withCode(exitFailed, fmt.Errorf("journal verify: %w", err))
		}
		if act.Any() {
			return fmt.Sprintf("the journal is empty but the store holds %d alerts, %d incidents and %d action runs: it was emptied",
				act.Alerts, act.Incidents, act.ActionRuns), nil
		}
	}
	var pinned ed25519.PublicKey
	if publicKey != "" {
		text := []byte(publicKey)
		if b, err := os.ReadFile(publicKey); err == nil {
			text = b
		}
		k, err := anchor.ParsePublicKey(text)
		if err != nil {
			return "", withCode(exitBadInput, fmt.Errorf("--public-key: %w", err))
		}
		pinned = k
	}
	if anchorFile != "" {
		f, err := os.Open(anchorFile)
		if err != nil {
			return "", withCode(exitBadInput, fmt.Errorf("--anchor: %w", err))
		}
		cps, err := anchor.Read(f)
		f.Close()
		if err != nil {
			return "", withCode(exitBadInput, fmt.Errorf("--anchor %s: %w", anchorFile, err))
		}
		if len(cps) == 0 {
			return "", withCode(exitBadInput, fmt.Errorf("--anchor %s: no checkpoint in the file", anchorFile))
		}
		if p, err := anchor.Check(ctx, s, cps, pinned); err != nil {
			return "", withCode(exitFailed, fmt.Errorf("journal verify: %w", err))
		} else if p != "" {
			return p, nil
		}
	}
	if expectHead != "" {
		seqText, hash, ok := strings.Cut(expectHead, ":")
		seq, err := strconv.ParseInt(seqText, 10, 64)
		if !ok || err != nil || seq <= 0 || len(hash) != 64 {
			return "", withCode(exitBadInput, fmt.Errorf("--expect-head %q: want SEQ:HASH (a positive seq, 64 hex digits)", clipFlag(expectHead)))
		}
		head, err := s.Head(ctx)
		if err != nil {
			return "", withCode(exitFailed, fmt.Errorf("journal verify: %w", err))
		}
		if p := anchor.Expect(ctx, s, head, seq, strings.ToLower(hash)); p != "" {
			return "--expect-head: " + p, nil
		}
	}
	return "", nil
}

// clipFlag keeps an echoed flag value short.
func clipFlag(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

func openJournal(ctx context.Context, storeURL, data string) (store.Journal, io.Closer, error) {
	if storeURL != "" {
		s, err := assembly.OpenStore(ctx, storeURL, "", store.Options{ReadOnly: true})
		if err != nil {
			return nil, nil, withCode(exitBadInput, fmt.Errorf("%w (is --store the servers' database?)", err))
		}
		return s, s, nil
	}
	if data == "" {
		return nil, nil, withCode(exitBadInput, errors.New("--data: empty"))
	}
	s, err := store.Open(store.PathIn(data), store.Options{ReadOnly: true})
	if err != nil {
		return nil, nil, withCode(exitBadInput, fmt.Errorf("%w (is --data %s the server's data directory?)", err, data))
	}
	return s, s, nil
}

// storeFlag adds --store, the PostgreSQL URL that replaces the SQLite file
// of --data (default $RIPOSTE_STORE).
func storeFlag(f *pflag.FlagSet, p *string) {
	f.StringVar(p, "store", os.Getenv(assembly.StoreEnv),
		"PostgreSQL store URL, postgres://... (cluster mode; default $"+assembly.StoreEnv+", else the SQLite file in --data)")
}

func showJSON(ctx context.Context, out io.Writer, s store.Journal, f store.Filter) error {
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	for e, err := range s.Scan(ctx, f) {
		if err != nil {
			return err
		}
		if err := enc.Encode(e); err != nil {
			return err
		}
	}
	return nil
}

// textFlushEvery bounds what the table buffers: columns are aligned per
// block of this many rows.
const textFlushEvery = 500

func showText(ctx context.Context, out io.Writer, s store.Journal, f store.Filter) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME (UTC)\tTYPE\tALERT\tPLAYBOOK\tACTION\tACTOR\tDETAIL")
	// Detail as readable JSON: no \u003c for "<" (the stored text has them).
	var buf bytes.Buffer
	detailEnc := json.NewEncoder(&buf)
	detailEnc.SetEscapeHTML(false)
	n := 0
	for e, err := range s.Scan(ctx, f) {
		if err != nil {
			return err
		}
		buf.Reset()
		if err := detailEnc.Encode(e.Detail); err != nil {
			return err
		}
		d := strings.TrimSpace(buf.String())
		if d == "{}" || d == "null" {
			d = ""
		}
		if e.SHA256 != "" {
			d = strings.TrimSpace("sha256:" + e.SHA256[:12] + " " + d)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Seq, e.Time.UTC().Format("2006-01-02 15:04:05.000"),
			e.Type, cell(e.AlertID, 36), cell(e.Playbook, 32), cell(e.Action, 24), cell(e.Actor, 32), cell(d, 100))
		n++
		if n%textFlushEvery == 0 {
			if err := tw.Flush(); err != nil {
				return err
			}
		}
	}
	if n == 0 {
		fmt.Fprintln(tw, "(no entries)")
	}
	return tw.Flush()
}

// cell makes a value fit a table cell: "-" when empty, tabs and newlines
// as spaces, at most max runes.
func cell(s string, max int) string {
	if s == "" {
		return "-"
	}
	s = strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
	if utf8.RuneCountInString(s) > max {
		r := []rune(s)
		return string(r[:max-1]) + "…"
	}
	return s
}

// parseSince reads --since: an RFC 3339 time, a date (midnight UTC) or a
// duration back from now ("90m", "2h", "7d", "1d12h").
func parseSince(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	want := "want an RFC 3339 time (2025-03-01T12:00:00Z), a date (2025-03-01) or a duration back from now (90m, 2h, 7d)"
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	if _, err := time.Parse("2006-01-02T15:04:05", s); err == nil {
		return time.Time{}, fmt.Errorf("--since %q: the time has no zone: add Z (UTC) or an offset such as +02:00", s)
	}
	if strings.Trim(s, "0123456789") == "" {
		return time.Time{}, fmt.Errorf("--since %q: a duration needs a unit (%sm, %sh, %sd)", s, s, s, s)
	}
	if d, ok, err := parseAgo(s); ok {
		if err != nil {
			return time.Time{}, fmt.Errorf("--since %q: %v", s, err)
		}
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("--since %q: %s", s, want)
}

// parseAgo reads a non-negative duration with an optional leading days
// part: "7d", "1d12h", "90m". ok is false when s does not look like a
// duration at all.
func parseAgo(s string) (d time.Duration, ok bool, err error) {
	if s == "" || (s[0] != '-' && s[0] != '+' && (s[0] < '0' || s[0] > '9')) {
		return 0, false, nil
	}
	rest := s
	var days int64
	if i := strings.IndexByte(s, 'd'); i > 0 {
		n, perr := strconv.ParseInt(s[:i], 10, 64)
		if perr != nil {
			return 0, false, nil
		}
		if n < 0 {
			return 0, true, errors.New("a duration back from now cannot be negative")
		}
		if n > 100*365 {
			return 0, true, errors.New("more than 100 years back")
		}
		days, rest = n, s[i+1:]
	}
	if rest != "" {
		if d, err = time.ParseDuration(rest); err != nil {
			return 0, false, nil
		}
	}
	if d < 0 || strings.HasPrefix(rest, "-") {
		return 0, true, errors.New("a duration back from now cannot be negative")
	}
	total := time.Duration(days)*24*time.Hour + d
	if total < d {
		return 0, true, errors.New("too far back")
	}
	return total, true, nil
}
