package fleet

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/rekeyhq/rekey/internal/jsonkey"
	"github.com/rekeyhq/rekey/internal/store"
)

// Line is one instance id of an id list, with the number of the line it
// came from (counting from 1).
type Line struct {
	N  int
	ID string
}

// Problem kinds, as Problem.Kind reports them.
const (
	ProblemMalformed     = "malformed"
	ProblemUnknown       = "unknown"
	ProblemDeprovisioned = "deprovisioned"
	ProblemDuplicate     = "duplicate"
)

// Problem is a line of an id list that cannot be rotated.
type Problem struct {
	Line int
	// Kind is ProblemMalformed, ProblemUnknown, ProblemDeprovisioned or
	// ProblemDuplicate.
	Kind string
	// Msg says what is wrong, without the line number.
	Msg string
}

// String returns "line 7: unknown instance a0de...".
func (p Problem) String() string { return fmt.Sprintf("line %d: %s", p.Line, p.Msg) }

// maxLine is the longest line an id list may have.
const maxLine = 64 << 10

// byteOrderMark is U+FEFF in UTF-8, which Windows editors and Excel write
// at the start of a file they save as UTF-8.
const byteOrderMark = "\ufeff"

// SkipBOM returns a reader of r without the byte order mark r starts
// with, if any, so that the first line of a file saved on Windows reads as
// it shows in an editor.
func SkipBOM(r io.Reader) io.Reader {
	br := bufio.NewReader(r)
	if b, err := br.Peek(len(byteOrderMark)); err == nil && string(b) == byteOrderMark {
		_, _ = br.Discard(len(byteOrderMark))
	}
	return br
}

// ReadIDs reads an id list: each line is an instance id, or a JSON object
// naming one as "instance_id" or "id" (other fields are ignored, so the
// output of other tools can be fed in). Blank lines and lines starting
// with '#' are skipped, and so is a byte order mark at its start (SkipBOM).
// It returns the usable lines and a Problem for each malformed one; the
// error is for a failed read.
func ReadIDs(r io.Reader) ([]Line, []Problem, error) {
	sc := bufio.NewScanner(SkipBOM(r))
	sc.Buffer(make([]byte, 4096), maxLine)
	var lines []Line
	var problems []Problem
	n := 1
	for ; sc.Scan(); n++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		id, msg := parseLine(text)
		if msg != "" {
			problems = append(problems, Problem{Line: n, Kind: ProblemMalformed, Msg: msg})
			continue
		}
		lines = append(lines, Line{N: n, ID: id})
	}
	if err := sc.Err(); errors.Is(err, bufio.ErrTooLong) {
		return nil, nil, fmt.Errorf("read id list: line %d is longer than %d KiB, which no line naming an id is", n, maxLine>>10)
	} else if err != nil {
		return nil, nil, fmt.Errorf("read id list: %w", err)
	}
	return lines, problems, nil
}

// parseLine returns the id a line names, or why it names none.
func parseLine(text string) (id, problem string) {
	if strings.HasPrefix(text, "{") {
		// encoding/json keeps the last of a repeated key, matched without
		// case: {"instance_id":"a","instance_id":"b"} would rotate b, where
		// other readers of the same line see a.
		if !jsonkey.OnceEach([]byte(text), "instance_id", "id") {
			return "", "JSON object names \"instance_id\" or \"id\" more than once (in any case): name the instance once"
		}
		var obj struct {
			InstanceID *string `json:"instance_id"`
			ID         *string `json:"id"`
		}
		if err := json.Unmarshal([]byte(text), &obj); err != nil {
			return "", "not a JSON object with \"instance_id\" or \"id\": " + err.Error()
		}
		switch {
		case obj.InstanceID != nil:
			id = *obj.InstanceID
		case obj.ID != nil:
			id = *obj.ID
		default:
			return "", "JSON object has no \"instance_id\" or \"id\""
		}
	} else {
		id = text
	}
	if !store.ValidID(id) {
		return "", fmt.Sprintf("%q is not a valid instance id", clip(id))
	}
	return id, ""
}

// Screen checks lines against the store, with one round trip per thousand
// lines. It returns the ids that can be rotated, in order, each once, and a
// Problem for every unknown, deprovisioned or repeated one.
func Screen(ctx context.Context, st *store.Store, lines []Line) ([]string, []Problem, error) {
	first := make(map[string]int, len(lines))
	var problems []Problem
	unique := make([]Line, 0, len(lines))
	for _, l := range lines {
		if n, dup := first[l.ID]; dup {
			problems = append(problems, Problem{Line: l.N, Kind: ProblemDuplicate, Msg: fmt.Sprintf("duplicate of line %d", n)})
			continue
		}
		first[l.ID] = l.N
		unique = append(unique, l)
	}
	ids := make([]string, 0, len(unique))
	for start := 0; start < len(unique); start += checkPage {
		page := unique[start:min(start+checkPage, len(unique))]
		ins, err := st.Instances(ctx, lineIDs(page))
		if err != nil {
			return nil, nil, err
		}
		for i, in := range ins {
			switch {
			case in.RegisteredAt.IsZero():
				problems = append(problems, Problem{Line: page[i].N, Kind: ProblemUnknown, Msg: "unknown instance " + in.ID})
			case in.Deprovisioned():
				problems = append(problems, Problem{Line: page[i].N, Kind: ProblemDeprovisioned, Msg: "deprovisioned instance " + in.ID})
			default:
				ids = append(ids, in.ID)
			}
		}
	}
	SortProblems(problems)
	return ids, problems, nil
}

// SortProblems orders problems by line.
func SortProblems(ps []Problem) {
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].Line < ps[j].Line })
}

func lineIDs(lines []Line) []string {
	ids := make([]string, len(lines))
	for i, l := range lines {
		ids[i] = l.ID
	}
	return ids
}

// clip shortens a bad value quoted back in a message.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
