package pgtest

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestStart starts a server, makes two databases and queries one.
func TestStart(t *testing.T) {
	var sh Shared
	defer sh.Stop()
	srv := sh.Get(t)
	u1, u2 := sh.Database(t), sh.Database(t)
	if u1 == u2 {
		t.Fatalf("one database handed out twice: %s", u1)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, u2)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var v string
	if err := conn.QueryRow(ctx, "SHOW server_version_num").Scan(&v); err != nil || v < "150000" {
		t.Fatalf("server version %s, %v", v, err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE t (v int); INSERT INTO t VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	for _, crash := range []bool{true, false} {
		if err := srv.Restart(crash); err != nil {
			t.Fatal(err)
		}
		c, err := pgx.Connect(ctx, u2)
		if err != nil {
			t.Fatal(err)
		}
		var n int
		err = c.QueryRow(ctx, "SELECT v FROM t").Scan(&n)
		c.Close(ctx)
		if err != nil || n != 42 {
			t.Fatalf("after restart (crash %v): %d, %v", crash, n, err)
		}
	}
	srv.Stop()
	srv.Stop()
	if _, err := pgx.Connect(ctx, u1); err == nil {
		t.Fatal("connected after Stop")
	}
}
