package fleet_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rekeyhq/rekey/internal/fleet"
	"github.com/rekeyhq/rekey/internal/ratelimit"
)

func TestReadIDs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		in        string
		wantLines []fleet.Line
		wantProbs []string
	}{
		{"plain ids", "a\n  b  \n", []fleet.Line{{1, "a"}, {2, "b"}}, nil},
		{"blank lines and comments", "\n# all of them\na\n\n   # indented\nb", []fleet.Line{{3, "a"}, {6, "b"}}, nil},
		{"json objects", `{"instance_id":"a"}` + "\n" + `{"id":"b","app":"x"}` + "\n" + `{"instance_id":"c","id":"d"}`,
			[]fleet.Line{{1, "a"}, {2, "b"}, {3, "c"}}, nil},
		{"malformed", "a b\n{\"name\":\"x\"}\n{nope\n{\"id\":3}\n" + strings.Repeat("x", 200), nil, []string{
			`line 1: "a b" is not a valid instance id`,
			`line 2: JSON object has no "instance_id" or "id"`,
			`line 3: not a JSON object with "instance_id" or "id"`,
			`line 4: not a JSON object with "instance_id" or "id"`,
			`line 5: "` + strings.Repeat("x", 64) + `..." is not a valid instance id`,
		}},
		{"a key twice, or in two cases", `{"instance_id":"a","instance_id":"b"}` + "\n" + `{"id":"a","ID":"b"}` + "\n" +
			`{"instance_id":"c","id":"d","name":"x","name":"y"}`, []fleet.Line{{3, "c"}}, []string{
			`line 1: JSON object names "instance_id" or "id" more than once (in any case): name the instance once`,
			`line 2: JSON object names "instance_id" or "id" more than once (in any case): name the instance once`,
		}},
		{"crlf", "a\r\nb\r\n", []fleet.Line{{1, "a"}, {2, "b"}}, nil},
		{"byte order mark", "\ufeffa\r\nb\r\n", []fleet.Line{{1, "a"}, {2, "b"}}, nil},
		{"byte order mark before json", "\ufeff" + `{"instance_id":"a"}`, []fleet.Line{{1, "a"}}, nil},
		{"byte order mark later", "a\n\ufeffb", []fleet.Line{{1, "a"}}, []string{`line 2: "\ufeffb" is not a valid instance id`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			lines, probs, err := fleet.ReadIDs(strings.NewReader(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(lines, tt.wantLines) {
				t.Errorf("lines = %v, want %v", lines, tt.wantLines)
			}
			if len(probs) != len(tt.wantProbs) {
				t.Fatalf("problems = %v, want %v", probs, tt.wantProbs)
			}
			for i, p := range probs {
				if !strings.HasPrefix(p.String(), tt.wantProbs[i]) || p.Kind != fleet.ProblemMalformed {
					t.Errorf("problem %d = %q (%s), want %q", i, p, p.Kind, tt.wantProbs[i])
				}
			}
		})
	}
}

func TestScreen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.register(t, 3)
	if err := f.st.Deprovision(ctx, instanceID(2)); err != nil {
		t.Fatal(err)
	}
	lines := []fleet.Line{{1, instanceID(0)}, {3, "ghost"}, {4, instanceID(1)}, {5, instanceID(2)}, {7, instanceID(0)}, {8, "ghost"}}
	ids, probs, err := fleet.Screen(ctx, f.st, lines)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{instanceID(0), instanceID(1)}; !reflect.DeepEqual(ids, want) {
		t.Errorf("ids = %v, want %v", ids, want)
	}
	var got []string
	for _, p := range probs {
		got = append(got, p.String())
	}
	want := []string{"line 3: unknown instance ghost", "line 5: deprovisioned instance inst-00002",
		"line 7: duplicate of line 1", "line 8: duplicate of line 3"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("problems = %q, want %q", got, want)
	}
}

// TestEstimateMatchesLimiter keeps the plan's arithmetic in step with the
// limiter it predicts.
func TestEstimateMatchesLimiter(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:0"}) // never dialled
	defer rdb.Close()
	for _, perHour := range []int{1, 360, 1000, 4000, 4500, 100_000} {
		lim, err := ratelimit.New(rdb, ratelimit.Params{PerHour: perHour})
		if err != nil {
			t.Fatal(err)
		}
		for _, calls := range []int{0, 1, 9, 10, 11, 10_000} {
			if got, want := fleet.Estimate(calls, perHour), lim.Estimate(calls); got != want {
				t.Errorf("Estimate(%d, %d) = %s, limiter says %s", calls, perHour, got, want)
			}
		}
		_ = lim.Close()
	}
	if got := fleet.Estimate(10_000, 4000); got != 8991900*time.Millisecond {
		t.Errorf("10,000 calls at 4000/h: %s", got)
	}
}

func TestRotateRefusesOrSkipsGone(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		skipGone bool
		wantErr  bool
		want     fleet.Result
	}{
		{"refused whole", false, true, fleet.Result{}},
		{"gone left out", true, false, fleet.Result{Enqueued: 2, Gone: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			f := newFixture(t)
			f.register(t, 3)
			if err := f.st.Deprovision(ctx, instanceID(2)); err != nil {
				t.Fatal(err)
			}
			ids := []string{instanceID(0), "ghost", instanceID(1), instanceID(2), instanceID(0)}
			res, err := fleet.NewProducer(f.st, f.queue).Rotate(ctx, fleet.Request{InstanceIDs: ids, SkipGone: tt.skipGone})
			var unknown *fleet.UnknownError
			if tt.wantErr != (err != nil) || tt.wantErr && !errors.As(err, &unknown) {
				t.Fatalf("err = %v", err)
			}
			if res.Enqueued != tt.want.Enqueued || res.Gone != tt.want.Gone || res.Joined != 0 || res.Skipped != 0 {
				t.Errorf("result %+v, want %+v", res, tt.want)
			}
			if tt.wantErr {
				if n := f.r.Client.Exists(ctx, "asynq:{default}:pending").Val(); n != 0 {
					t.Error("a refused request enqueued tasks")
				}
				return
			}
			b, err := f.st.Batch(ctx, res.BatchID)
			if err != nil {
				t.Fatal(err)
			}
			if b.Total != 2 || b.Enqueued != 2 || b.InFlight != 2 {
				t.Errorf("batch %+v", b)
			}
		})
	}
}

func TestRotateJoinsAndSkips(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	ids := f.register(t, 250) // more than one claim chunk
	p := fleet.NewProducer(f.st, f.queue)
	first, err := p.Rotate(ctx, fleet.Request{InstanceIDs: ids[:120], Queue: "bulk"})
	if err != nil {
		t.Fatal(err)
	}
	second, err := p.Rotate(ctx, fleet.Request{InstanceIDs: ids, Queue: "bulk"})
	if err != nil {
		t.Fatal(err)
	}
	if first.Enqueued != 120 || second.Enqueued != 130 || second.Joined != 120 {
		t.Errorf("first %d enqueued; second %d enqueued, %d joined", first.Enqueued, second.Enqueued, second.Joined)
	}
	joined := map[string]string{}
	for _, it := range first.Items {
		joined[it.InstanceID] = it.RotationID
	}
	for _, it := range second.Items {
		if it.Status == "joined" && joined[it.InstanceID] != it.RotationID {
			t.Errorf("%s joined %s, want %s", it.InstanceID, it.RotationID, joined[it.InstanceID])
		}
	}
	if n := f.r.Client.LLen(ctx, "asynq:{bulk}:pending").Val(); n != 250 {
		t.Errorf("%d tasks pending, want 250", n)
	}
}
