package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/rekeyhq/rekey/internal/registry"
	"github.com/rekeyhq/rekey/internal/store"
)

func runInstances(ctx context.Context, env *environ, args []string) error {
	if len(args) != 2 || (args[0] != "import" && args[0] != "show") {
		fmt.Fprintln(env.stderr, "usage: rekey instances import FILE|-   (JSON lines, one instance each)\n       rekey instances show ID")
		return errUsage
	}
	a, err := openProducer(ctx, env, "instances")
	if err != nil {
		return err
	}
	defer a.Close()
	if args[0] == "show" {
		return showInstance(ctx, env, a, args[1])
	}
	return importInstances(ctx, env, a, args[1])
}

// importInstances registers one instance per JSON line, reporting each bad
// line by number; it fails when any line failed.
func importInstances(ctx context.Context, env *environ, a *app, path string) error {
	r, err := openInput(env, path)
	if err != nil {
		return err
	}
	defer r.Close()
	hc, err := a.heroku(nil, nil)
	if err != nil {
		return err
	}
	reg := a.registry(hc)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	ok, bad := 0, 0
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var in registry.Input
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			fmt.Fprintf(env.stderr, "line %d: not a JSON instance: %v\n", n, err)
			bad++
			continue
		}
		if err := reg.Put(ctx, in); err != nil {
			fmt.Fprintf(env.stderr, "line %d (%s): %v\n", n, in.ID, err)
			bad++
			continue
		}
		ok++
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	fmt.Fprintf(env.stdout, "%d instances registered, %d lines refused\n", ok, bad)
	if bad > 0 {
		return fmt.Errorf("%d lines refused", bad)
	}
	return nil
}

func openInput(env *environ, path string) (io.ReadCloser, error) {
	if path == "-" {
		return io.NopCloser(env.stdin), nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// instanceView is what `rekey instances show` prints: the instance, its
// credentials waiting for revocation and its recent audit events.
type instanceView struct {
	store.Instance
	Previous []store.Revocation `json:"previous"`
	Events   []store.Event      `json:"events"`
	// Holds are the previous credentials whose revocation waits because
	// they are still in use (rekey holds).
	Holds []store.Hold `json:"holds"`
}

func showInstance(ctx context.Context, env *environ, a *app, id string) error {
	in, err := a.store.Instance(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("instance %s is not registered", id)
	}
	if err != nil {
		return err
	}
	v := instanceView{Instance: in}
	if v.Previous, err = a.store.Previous(ctx, id); err != nil {
		return err
	}
	if v.Events, err = a.store.Events(ctx, id, 20); err != nil {
		return err
	}
	if v.Holds, err = a.store.InstanceHolds(ctx, id); err != nil {
		return err
	}
	enc := json.NewEncoder(env.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
