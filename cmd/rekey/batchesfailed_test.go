package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rekeyhq/rekey/internal/store"
)

// After a wave, the operator lists the instances whose rotation failed,
// grouped by failure code, and feeds that list, as printed, to
// `rekey rotate --from`, which rotates exactly those again; --code keeps one
// cause's failures, --json an array.
func TestBatchesFailedListsWhatToRotateAgain(t *testing.T) {
	ctx := context.Background()
	c := newCLI(t)
	id, ids := startBatch(t, c, 5)
	failTwoPushesAndAMint(ctx, t, c, ids)

	if err := c.run(t, "batches", "failed", id); err != nil {
		t.Fatalf("%v\n%s", err, c.stderr)
	}
	pushed := []string{ids[1], ids[2]}
	slices.Sort(pushed)
	want := strings.Join(append([]string{"# mint:issuer_422 (1)", ids[4], "# push:not_found (2)"}, pushed...), "\n") + "\n"
	if got := c.stdout.String(); got != want {
		t.Fatalf("batches failed printed\n%s\nwant\n%s", got, want)
	}
	list := filepath.Join(t.TempDir(), "failed")
	if err := os.WriteFile(list, c.stdout.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.run(t, "rotate", "--from", list, "--confirm"); err != nil {
		t.Fatalf("rotate --from the failed list: %v\n%s", err, c.stderr)
	}
	again, err := c.st.Batch(ctx, batchID(t, c.stdout.String()))
	if err != nil || again.Total != 3 || again.Enqueued != 3 {
		t.Fatalf("the batch rotating the failed list again: %+v, %v; want its 3 instances enqueued", again, err)
	}
	for _, i := range []string{ids[1], ids[2], ids[4]} {
		if in, _ := c.st.Instance(ctx, i); in.InFlight == "" {
			t.Errorf("%s, which failed, is not rotating again", i)
		}
	}
	if in, _ := c.st.Instance(ctx, ids[0]); in.InFlight != "" {
		t.Errorf("%s, which succeeded, is rotating again", ids[0])
	}

	if err := c.run(t, "batches", "failed", id, "--code", "push:not_found"); err != nil {
		t.Fatal(err)
	}
	if got := c.stdout.String(); strings.Contains(got, ids[4]) || !strings.Contains(got, pushed[0]) {
		t.Errorf("--code push:not_found printed\n%s", got)
	}
	if err := c.run(t, "batches", "failed", id, "--json"); err != nil {
		t.Fatal(err)
	}
	var failed []store.FailedInstance
	if err := json.Unmarshal(c.stdout.Bytes(), &failed); err != nil || len(failed) != 3 ||
		failed[0] != (store.FailedInstance{InstanceID: ids[4], Code: "mint:issuer_422"}) {
		t.Errorf("--json printed %s (%v); want 3 entries, the mint failure first", c.stdout, err)
	}
	if err := c.run(t, "batches", "failed", id, "--code", "nope"); err != nil || c.stdout.String() != "" ||
		!strings.Contains(c.stderr.String(), "no failed rotation of batch "+id+" is listed with code nope") ||
		// A mistyped code is told from a batch without such failures.
		!strings.Contains(c.stderr.String(), "its failures' codes: mint:issuer_422, push:not_found") {
		t.Errorf("--code nope: %v, stdout %q, stderr %q", err, c.stdout, c.stderr)
	}
	if err := c.run(t, "batches", "failed", "bat_nope"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("an unknown batch: %v, want not found", err)
	}
}

// A batch whose failures a worker of an earlier rekey version recorded (a
// wave that ran across the upgrade, or one from before it) counts failures
// the list does not hold: the operator is told how many, by code, rather
// than read an empty or short list as all that failed.
func TestBatchesFailedSaysWhatTheListDoesNotHold(t *testing.T) {
	ctx := context.Background()
	c := newCLI(t)
	id, ids := startBatch(t, c, 4)
	c.complete(t, ids, map[string]bool{ids[0]: true, ids[1]: true, ids[2]: true})
	// ids[0]'s failure was recorded before the list was kept.
	if err := c.r.Client.HDel(ctx, "rekey:batch:"+id+":failed", ids[0]).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.run(t, "batches", "failed", id); err != nil {
		t.Fatalf("%v\n%s", err, c.stderr)
	}
	if got := c.stderr.String(); !strings.Contains(got, "1 failed rotation") || !strings.Contains(got, "push:not_found") ||
		!strings.Contains(got, "not listed") {
		t.Errorf("stderr %q; want it to say 1 failed rotation (push:not_found) is not listed", got)
	}
	if got := c.stdout.String(); strings.Contains(got, ids[0]) || !strings.Contains(got, "# push:not_found (2)") {
		t.Errorf("stdout %q", got)
	}

	// None listed at all: not "no failed rotation".
	if err := c.r.Client.Del(ctx, "rekey:batch:"+id+":failed").Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.run(t, "batches", "failed", id); err != nil {
		t.Fatalf("%v\n%s", err, c.stderr)
	}
	if got := c.stderr.String(); strings.Contains(got, "no failed rotation") || !strings.Contains(got, "3 failed rotations") {
		t.Errorf("stderr %q; want it to say the batch's 3 failed rotations are not listed", got)
	}
	// --code keeps the note to those codes.
	if err := c.run(t, "batches", "failed", id, "--code", "mint:other"); err != nil {
		t.Fatalf("%v\n%s", err, c.stderr)
	}
	if got := c.stderr.String(); !strings.Contains(got, "no failed rotation") || strings.Contains(got, "not listed") {
		t.Errorf("--code mint:other: stderr %q; want only that none is listed", got)
	}
}

// During an incident the operator runs `rotate --all` while a wave is in
// flight: the new batch joins the wave's rotations. Its failed list is
// what the operator rotates again, so it must hold the failures of the
// rotations it joined too, with their code, each instance once, beside
// those of its own rotations; the output is read as before (--json adds
// "joined": true to a joined rotation's entry).
func TestBatchesFailedListsTheRotationsItJoined(t *testing.T) {
	ctx := context.Background()
	c := newCLI(t)
	first, ids := startBatch(t, c, 4)
	ids = c.register(t, 5) // ids[4] is new: the second batch starts its rotation
	if err := c.run(t, "rotate", "--all", "--confirm", "--reason", "incident"); err != nil {
		t.Fatalf("rotate: %v\n%s", err, c.stderr)
	}
	if !strings.Contains(c.stdout.String(), "4 joined") {
		t.Fatalf("the second rotate --all joined no rotation in flight: %s", c.stdout)
	}
	second := batchID(t, c.stdout.String())
	failTwoPushesAndAMint(ctx, t, c, ids)

	if err := c.run(t, "batches", "failed", second); err != nil {
		t.Fatalf("%v\n%s", err, c.stderr)
	}
	joined := []string{ids[1], ids[2]}
	slices.Sort(joined)
	want := strings.Join(append([]string{"# mint:issuer_422 (1)", ids[4], "# push:not_found (2)"}, joined...), "\n") + "\n"
	if got := c.stdout.String(); got != want || c.stderr.String() != "" {
		t.Fatalf("batches failed of the batch that joined the wave printed\n%s\nwant\n%s\nstderr: %s", got, want, c.stderr)
	}
	if err := c.run(t, "batches", "failed", second, "--code", "push:not_found"); err != nil {
		t.Fatal(err)
	}
	if got := c.stdout.String(); got != "# push:not_found (2)\n"+strings.Join(joined, "\n")+"\n" {
		t.Errorf("--code push:not_found printed\n%s", got)
	}
	if err := c.run(t, "batches", "failed", second, "--json"); err != nil {
		t.Fatal(err)
	}
	var failed []map[string]any
	if err := json.Unmarshal(c.stdout.Bytes(), &failed); err != nil || len(failed) != 3 {
		t.Fatalf("--json printed %s (%v); want 3 entries", c.stdout, err)
	}
	for i, w := range []map[string]any{
		{"instance_id": ids[4], "code": "mint:issuer_422"},
		{"instance_id": joined[0], "code": "push:not_found", "joined": true},
		{"instance_id": joined[1], "code": "push:not_found", "joined": true},
	} {
		if len(failed[i]) != len(w) {
			t.Errorf("--json entry %d: %v, want %v", i, failed[i], w)
			continue
		}
		for k, v := range w {
			if failed[i][k] != v {
				t.Errorf("--json entry %d: %v, want %v", i, failed[i], w)
			}
		}
	}
	// The wave's own batch lists its own failures, as before, and not the
	// rotation the second batch started.
	if err := c.run(t, "batches", "failed", first); err != nil {
		t.Fatalf("%v\n%s", err, c.stderr)
	}
	if got := c.stdout.String(); got != "# push:not_found (2)\n"+strings.Join(joined, "\n")+"\n" {
		t.Errorf("batches failed of the wave printed\n%s", got)
	}
	// The counts stay each batch's own: the joined failures count in the wave's.
	if b, err := c.st.Batch(ctx, second); err != nil || b.Failed != 1 {
		t.Errorf("the second batch: %+v, %v; want 1 failed", b, err)
	}

	// Rotating the list again rotates every failure, the joined ones too.
	if err := c.run(t, "batches", "failed", second); err != nil {
		t.Fatal(err)
	}
	list := filepath.Join(t.TempDir(), "failed")
	if err := os.WriteFile(list, c.stdout.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.run(t, "rotate", "--from", list, "--confirm"); err != nil {
		t.Fatalf("rotate --from the failed list: %v\n%s", err, c.stderr)
	}
	for _, i := range []string{ids[1], ids[2], ids[4]} {
		if in, _ := c.st.Instance(ctx, i); in.InFlight == "" {
			t.Errorf("%s, which failed, is not rotating again", i)
		}
	}
}

// failTwoPushesAndAMint ends the rotations in flight of ids, five
// instances: the first four's promoted, but ids[1]'s and ids[2]'s failed
// with push:not_found, and ids[4]'s failed with mint:issuer_422.
func failTwoPushesAndAMint(ctx context.Context, t *testing.T, c *cli, ids []string) {
	t.Helper()
	c.complete(t, ids[:4], map[string]bool{ids[1]: true, ids[2]: true})
	in, err := c.st.Instance(ctx, ids[4])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.st.Fail(ctx, ids[4], in.InFlight, "mint:issuer_422", "issuer mint: status 422"); err != nil {
		t.Fatal(err)
	}
}
