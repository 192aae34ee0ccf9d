package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/internal/heroku"
	"github.com/rekeyhq/rekey/internal/seal"
	"github.com/rekeyhq/rekey/internal/secret"
	"github.com/rekeyhq/rekey/internal/store"
)

// withKeys returns the cli's environment with REKEY_ENCRYPTION_KEYS set to keys.
func (c *cli) withKeys(keys ...[]byte) *environ {
	env := c.env()
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = base64.StdEncoding.EncodeToString(k)
	}
	base := env.lookup
	env.lookup = func(k string) (string, bool) {
		if k == "REKEY_ENCRYPTION_KEYS" {
			return strings.Join(parts, ","), true
		}
		return base(k)
	}
	return env
}

// TestKeysStatusAndReseal retires the test key: status before, reseal
// under a new first key, status after, and the new key alone opens every
// value.
func TestKeysStatusAndReseal(t *testing.T) {
	ctx := context.Background()
	c := newCLI(t)
	for _, id := range c.register(t, 3) {
		if err := c.st.SaveToken(ctx, id, heroku.Token{AccessToken: secret.New("a-" + id),
			RefreshToken: secret.New("r-" + id), ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	newKey := bytes.Repeat([]byte{10}, seal.KeySize)
	oldID, newID := keyIDOf(t, testKey), keyIDOf(t, newKey)

	if err := runCommand(ctx, c.withKeys(newKey, testKey), "keys", "status"); err != nil {
		t.Fatal(err)
	}
	out := c.stdout.String()
	for _, want := range []string{"3 sealed values", "key 1  " + newID + " (seals) 0 values",
		"key 2  " + oldID, "3 values are still under an older key"} {
		if !strings.Contains(out, want) {
			t.Errorf("status before reseal lacks %q:\n%s", want, out)
		}
	}
	c.stdout.Reset()
	if err := runCommand(ctx, c.withKeys(newKey, testKey), "keys", "reseal"); err != nil {
		t.Fatalf("reseal: %v\n%s", err, c.stderr.String())
	}
	if !strings.Contains(c.stdout.String(), "3 resealed") || !strings.Contains(c.stderr.String(), "resealing:") {
		t.Errorf("reseal output: %s / %s", c.stdout.String(), c.stderr.String())
	}
	c.stdout.Reset()
	if err := runCommand(ctx, c.withKeys(newKey), "keys", "status", "--json"); err != nil {
		t.Fatal(err)
	}
	var st struct {
		Keys []struct {
			ID     string `json:"id"`
			Values int64  `json:"values"`
		} `json:"keys"`
		UnreadableTotal int64 `json:"unreadable_total"`
	}
	if err := json.Unmarshal(c.stdout.Bytes(), &st); err != nil || len(st.Keys) != 1 || st.Keys[0].Values != 3 ||
		st.Keys[0].ID != newID || st.UnreadableTotal != 0 {
		t.Fatalf("status --json after reseal = %s (%v)", c.stdout.String(), err)
	}
	if strings.Contains(c.stdout.String(), "a-inst") || strings.Contains(c.stderr.String(), "a-inst") {
		t.Fatal("a token reached the output")
	}
}

func TestKeysStatusNamesADroppedKey(t *testing.T) {
	ctx := context.Background()
	c := newCLI(t)
	id := c.register(t, 1)[0]
	if err := c.st.SaveToken(ctx, id, heroku.Token{AccessToken: secret.New("a"), RefreshToken: secret.New("r")}); err != nil {
		t.Fatal(err)
	}
	err := runCommand(ctx, c.withKeys(bytes.Repeat([]byte{11}, seal.KeySize)), "keys", "status")
	if !errors.Is(err, errUnreadable) {
		t.Fatalf("status with the key dropped = %v, want errUnreadable", err)
	}
	want := "1 sealed under key " + keyIDOf(t, testKey) + ", which REKEY_ENCRYPTION_KEYS does not hold"
	if !strings.Contains(c.stdout.String(), want) {
		t.Fatalf("status lacks %q:\n%s", want, c.stdout.String())
	}
	if err := runCommand(ctx, c.env(), "keys", "rotate"); !isUsage(err) {
		t.Fatalf("keys rotate = %v, want a usage error", err)
	}
}

func keyIDOf(t *testing.T, k []byte) string {
	t.Helper()
	s, err := seal.New(k)
	if err != nil {
		t.Fatal(err)
	}
	return s.KeyIDs()[0]
}

func TestKeysStatusPrintout(t *testing.T) {
	var b bytes.Buffer
	writeKeysText(&b, store.SealedStatus{KeyIDs: []string{"aaaa1111", "bbbb2222"}, ByKey: []int64{5, 2},
		Unreadable: map[string]int64{"cccc3333": 1, "aaaa1111": 1}, Values: 9, Keys: 4}, nil)
	t.Log("\n" + b.String())
	for _, want := range []string{"key 1  aaaa1111 (seals) 5 values", "key 2  bbbb2222", "cannot be opened  2 values",
		"1 sealed under key aaaa1111, key 1, yet they do not open", "1 sealed under key cccc3333, which REKEY_ENCRYPTION_KEYS does not hold",
		"2 values are still under an older key"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status lacks %q", want)
		}
	}
}

// reseal refuses while a running process, the real `rekey scheduler` here,
// still seals under the old key: it could not open what reseal writes.
// Nothing is resealed, and the refusal names the process. Once the
// process stopped (its announcement withdrawn) reseal runs; --force runs
// it anyway.
func TestKeysResealRefusesWhileAProcessSealsUnderAnotherKey(t *testing.T) {
	ctx := context.Background()
	c := newCLI(t)
	for _, id := range c.register(t, 2) {
		if err := c.st.SaveToken(ctx, id, heroku.Token{AccessToken: secret.New("a-" + id),
			RefreshToken: secret.New("r-" + id), ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	newKey := bytes.Repeat([]byte{12}, seal.KeySize)
	oldID, newID := keyIDOf(t, testKey), keyIDOf(t, newKey)
	indexed := func(_, stderr string) bool { return strings.Contains(stderr, "schedule_indexed") }
	clock, _, _ := startRekey(t, c.vars(), indexed, "scheduler") // REKEY_ENCRYPTION_KEYS: the old key alone
	host, _ := os.Hostname()
	name := fmt.Sprintf("scheduler on %s pid %d", host, clock.Process.Pid)
	c.waitFor(t, "the scheduler to announce its keys", func() bool {
		rings, err := c.st.Keyrings(ctx)
		return err == nil && len(rings) == 1 && strings.HasPrefix(rings[0].Process, name+" #")
	})

	c.stdout.Reset()
	if err := runCommand(ctx, c.withKeys(newKey, testKey), "keys", "status"); err != nil {
		t.Fatal(err)
	}
	if want := "1 process running:\n  " + name + " #"; !strings.Contains(c.stdout.String(), want) ||
		!strings.Contains(c.stdout.String(), " seals under "+oldID+" (key 2), holds 1 key\n") {
		t.Errorf("status does not show the scheduler sealing under key 2:\n%s", c.stdout.String())
	}
	c.stdout.Reset()
	c.stderr.Reset()
	err := runCommand(ctx, c.withKeys(newKey, testKey), "keys", "reseal")
	if !errors.Is(err, errProcessKeys) {
		t.Fatalf("reseal beside a process on the old key = %v, want errProcessKeys", err)
	}
	for _, want := range []string{name + " #", "(seals under key " + oldID + " and cannot open key " + newID + ")", "--force"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal lacks %q: %v", want, err)
		}
	}
	st, err := c.st.SealedStatus(ctx, 0)
	if err != nil || st.ByKey[0] != 2 {
		t.Fatalf("after the refusal %+v (%v), want both values still under the old key", st, err)
	}

	if code := signalAndWait(t, clock, syscall.SIGTERM); code != 0 {
		t.Fatalf("scheduler exited %d on SIGTERM", code)
	}
	if rings, err := c.st.Keyrings(ctx); err != nil || len(rings) != 0 {
		t.Fatalf("after the scheduler stopped: keyrings %+v (%v), want its announcement withdrawn", rings, err)
	}
	if err := runCommand(ctx, c.withKeys(newKey, testKey), "keys", "reseal"); err != nil {
		t.Fatalf("reseal with no process on the old key: %v\n%s", err, c.stderr.String())
	}
	if !strings.Contains(c.stdout.String(), "2 resealed") ||
		!strings.Contains(c.stderr.String(), "no running process announces its keys") {
		t.Errorf("reseal output: %s / %s", c.stdout.String(), c.stderr.String())
	}
}

// --force reseals beside a process that seals under another key, and says
// so; a process already on the new key first lets reseal run without it.
func TestKeysResealForce(t *testing.T) {
	ctx := context.Background()
	c := newCLI(t)
	c.register(t, 1)
	newKey := bytes.Repeat([]byte{13}, seal.KeySize)
	if err := c.st.AnnounceKeyring(ctx, "worker.1 #aaaaaa", time.Minute); err != nil { // the old key alone
		t.Fatal(err)
	}
	c.stderr.Reset()
	if err := runCommand(ctx, c.withKeys(newKey, testKey), "keys", "reseal", "--force"); err != nil {
		t.Fatalf("reseal --force: %v", err)
	}
	if want := "resealing anyway (--force), although not every running process seals under key " + keyIDOf(t, newKey) +
		": worker.1 #aaaaaa (seals under key " + keyIDOf(t, testKey); !strings.Contains(c.stderr.String(), want) {
		t.Errorf("stderr lacks %q:\n%s", want, c.stderr.String())
	}

	sealer, err := seal.New(newKey, testKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.New(c.r.Client, sealer).AnnounceKeyring(ctx, "worker.1 #aaaaaa", time.Minute); err != nil {
		t.Fatal(err)
	}
	c.stderr.Reset()
	if err := runCommand(ctx, c.withKeys(newKey, testKey), "keys", "reseal"); err != nil {
		t.Fatalf("reseal with every process on the new key: %v", err)
	}
	if want := "1 process running, every one sealing under key " + keyIDOf(t, newKey); !strings.Contains(c.stderr.String(), want) {
		t.Errorf("stderr lacks %q:\n%s", want, c.stderr.String())
	}
}

// The operator's own list the wrong way round (OLD,NEW while every process
// runs NEW,OLD) is named as such, rather than blamed on the processes.
func TestKeysResealNamesAReversedList(t *testing.T) {
	ctx := context.Background()
	c := newCLI(t)
	newKey := c.fleetOnANewKey(t, "web.1 #aaaaaa", "worker.1 #bbbbbb")
	err := runCommand(ctx, c.withKeys(testKey, newKey), "keys", "reseal")
	want := "Every running process seals under key " + keyIDOf(t, newKey) + ", which REKEY_ENCRYPTION_KEYS here lists as key 2"
	if !errors.Is(err, errProcessKeys) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "wrong way round") {
		t.Fatalf("reseal with the list reversed = %v, want a refusal containing %q", err, want)
	}
}

// A shell whose REKEY_ENCRYPTION_KEYS is out of date (OLD, while every
// process runs NEW,OLD) is told so, and not offered --force, which would
// reseal the fleet's values back under the old key.
func TestKeysResealNamesAStaleList(t *testing.T) {
	ctx := context.Background()
	c := newCLI(t)
	newKey := c.fleetOnANewKey(t, "web.1 #aaaaaa")
	err := runCommand(ctx, c.withKeys(testKey), "keys", "reseal")
	want := "Every running process seals under key " + keyIDOf(t, newKey) + ", which REKEY_ENCRYPTION_KEYS here does not hold"
	if !errors.Is(err, errProcessKeys) || !strings.Contains(err.Error(), want) ||
		!strings.Contains(err.Error(), "heroku config:get REKEY_ENCRYPTION_KEYS") || strings.Contains(err.Error(), "--force") {
		t.Fatalf("reseal with a stale list = %v, want a refusal containing %q and no --force", err, want)
	}
}

// fleetOnANewKey announces processes running NEW,OLD (OLD being testKey)
// and returns NEW.
func (c *cli) fleetOnANewKey(t *testing.T, processes ...string) []byte {
	t.Helper()
	newKey := bytes.Repeat([]byte{14}, seal.KeySize)
	sealer, err := seal.New(newKey, testKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range processes {
		if err := store.New(c.r.Client, sealer).AnnounceKeyring(context.Background(), p, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	return newKey
}

// startsAProcess is a store whose Reseal sees a process on the old keys
// start while it runs.
type startsAProcess struct {
	*store.Store
	old *store.Store
}

func (s startsAProcess) Reseal(ctx context.Context, progress func(store.ResealResult)) (store.ResealResult, error) {
	if err := s.old.AnnounceKeyring(ctx, "worker.2 #cccccc", time.Minute); err != nil {
		return store.ResealResult{}, err
	}
	return s.Store.Reseal(ctx, progress)
}

// A process that starts on the old key while reseal runs seals under it
// what it writes since: reseal reports it and fails.
func TestKeysResealReportsAProcessThatStartedMeanwhile(t *testing.T) {
	ctx := context.Background()
	c := newCLI(t)
	c.register(t, 1)
	sealer, err := seal.New(bytes.Repeat([]byte{15}, seal.KeySize), testKey)
	if err != nil {
		t.Fatal(err)
	}
	src := startsAProcess{Store: store.New(c.r.Client, sealer), old: c.st}
	var stdout, stderr bytes.Buffer
	err = resealKeys(ctx, src, &stdout, &stderr, false)
	if !errors.Is(err, errProcessKeys) || !strings.Contains(err.Error(), "since reseal started: worker.2 #cccccc (seals under key "+keyIDOf(t, testKey)) {
		t.Fatalf("reseal = %v, want it to report worker.2, started on the old key meanwhile", err)
	}
	if !strings.Contains(stdout.String(), "resealed under key 1") {
		t.Errorf("stdout lacks the counts: %s", stdout.String())
	}
}

// A process that still seals under the old key after the reseal (one left
// out of the restart, started again with the old list) writes what it
// seals from then on under that key: status does not say the old key can
// be dropped, and fails naming the process, so a script does not drop it
// on its word.
func TestKeysStatusDoesNotClearAKeyARunningProcessSealsUnder(t *testing.T) {
	ctx := context.Background()
	c := newCLI(t)
	for _, id := range c.register(t, 2) {
		if err := c.st.SaveToken(ctx, id, heroku.Token{AccessToken: secret.New("a-" + id),
			RefreshToken: secret.New("r-" + id), ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	newKey := bytes.Repeat([]byte{16}, seal.KeySize)
	if err := runCommand(ctx, c.withKeys(newKey, testKey), "keys", "reseal"); err != nil {
		t.Fatalf("reseal: %v\n%s", err, c.stderr.String())
	}
	indexed := func(_, stderr string) bool { return strings.Contains(stderr, "schedule_indexed") }
	clock, _, _ := startRekey(t, c.vars(), indexed, "scheduler") // REKEY_ENCRYPTION_KEYS: the old key alone
	defer signalAndWait(t, clock, syscall.SIGTERM)
	c.waitFor(t, "the scheduler to announce its keys", func() bool {
		rings, err := c.st.Keyrings(ctx)
		return err == nil && len(rings) == 1
	})

	c.stdout.Reset()
	err := runCommand(ctx, c.withKeys(newKey, testKey), "keys", "status")
	if !errors.Is(err, errProcessKeys) || !strings.Contains(err.Error(), "seals under key "+keyIDOf(t, testKey)) {
		t.Errorf("status beside a process sealing under the old key = %v, want errProcessKeys naming it", err)
	}
	if out := c.stdout.String(); strings.Contains(out, "can be dropped") ||
		!strings.Contains(out, "every value is under key 1, but 1 running process still seals under another key: restart it") {
		t.Errorf("status clears the old key while a process seals under it:\n%s", c.stdout.String())
	}
	c.stdout.Reset()
	if err := runCommand(ctx, c.withKeys(newKey, testKey), "keys", "status", "--json"); !errors.Is(err, errProcessKeys) {
		t.Errorf("status --json beside a process sealing under the old key = %v, want errProcessKeys", err)
	}
}
