package store

import (
	"context"
	"testing"

	"github.com/riposte-sec/riposte/internal/alert"
)

// TestAcceptConflict: a uuid already in the inbox, sent again with other
// content, is refused (Conflict) and journaled with the refused alert;
// the stored alert is unchanged. The same content again stays a plain
// duplicate, in another call and within one call.
func TestAcceptConflict(t *testing.T) {
	s := openTest(t, Options{})
	ctx := context.Background()
	orig := testAlert("a-1")
	forged := testAlert("a-1")
	forged.OutputFields["container.id"] = "ffffffffffff"
	forged.Output = "benign"
	for _, tc := range []struct {
		name     string
		alerts   []alert.Alert
		dup, con []bool
	}{
		{"new", []alert.Alert{orig}, []bool{false}, []bool{false}},
		{"same content", []alert.Alert{testAlert("a-1")}, []bool{true}, []bool{false}},
		{"other content", []alert.Alert{forged}, []bool{true}, []bool{true}},
		{"both in one call", []alert.Alert{testAlert("a-2"), testAlert("a-2"), func() alert.Alert { a := testAlert("a-2"); a.Rule = "x"; return a }()},
			[]bool{false, true, true}, []bool{false, false, true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Accept(ctx, tc.alerts)
			if err != nil {
				t.Fatal(err)
			}
			for i, a := range got {
				if a.Duplicate != tc.dup[i] || a.Conflict != tc.con[i] {
					t.Errorf("accepted[%d] = %+v, want duplicate=%v conflict=%v", i, a, tc.dup[i], tc.con[i])
				}
			}
		})
	}
	var raw string
	if err := s.rdb.QueryRowContext(ctx, `SELECT raw FROM inbox WHERE id = 'a-1'`).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	want, _ := orig.MarshalJSON()
	if raw != string(want) {
		t.Errorf("stored alert changed:\n%s\nwant\n%s", raw, want)
	}
	var conflicts []Entry
	for _, e := range entriesOf(t, s, AlertDuplicate) {
		if e.Detail["conflict"] != nil {
			conflicts = append(conflicts, e)
		}
	}
	if len(conflicts) != 2 {
		t.Fatalf("%d conflict entries, want 2", len(conflicts))
	}
	c := conflicts[0]
	refused, _ := c.Detail["refused"].(map[string]any)
	if c.AlertID != "a-1" || refused["output"] != "benign" || c.Detail["stored_sha256"] == c.Detail["refused_sha256"] {
		t.Errorf("conflict entry %+v", c)
	}
	mustVerify(t, s)
}
