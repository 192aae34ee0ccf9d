package bench

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// Row is one measured figure of a report, with the target it is held to.
type Row struct {
	Metric  string
	Value   string
	Target  string
	Verdict string // "ok", "MISSED" or "" when there is no target
	Comment string
}

// Check returns "ok" when ok holds, else "MISSED".
func Check(ok bool) string {
	if ok {
		return "ok"
	}
	return "MISSED"
}

// Report is a table of figures measured in one run, and the machine it ran on.
type Report struct {
	Title   string
	Machine []string
	Setup   []string
	Rows    []Row
}

// Add appends a row.
func (r *Report) Add(row Row) { r.Rows = append(r.Rows, row) }

// String renders the report as a plain-text table.
func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n", r.Title)
	for _, s := range append(r.Machine, r.Setup...) {
		fmt.Fprintf(&b, "  %s\n", s)
	}
	b.WriteString("\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "metric\tmeasured\ttarget\t\tnotes")
	fmt.Fprintln(tw, "------\t--------\t------\t\t-----")
	for _, row := range r.Rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", row.Metric, row.Value, row.Target, row.Verdict, row.Comment)
	}
	_ = tw.Flush()
	return b.String()
}

// Machine describes this machine, the toolchain and the Redis server, one
// fact a line.
func Machine(redisVersion string) []string {
	host, _ := os.Hostname()
	return []string{
		fmt.Sprintf("date:   %s", time.Now().UTC().Format(time.RFC3339)),
		fmt.Sprintf("cpu:    %d x %s, %s, host %s", runtime.NumCPU(), cpuModel(), uname(), host),
		fmt.Sprintf("go:     %s %s/%s", runtime.Version(), runtime.GOOS, runtime.GOARCH),
		fmt.Sprintf("redis:  redis-server %s", redisVersion),
	}
}

// uname is the machine's hardware name, as `uname -m` prints it.
func uname() string {
	var u syscall.Utsname
	if err := syscall.Uname(&u); err != nil {
		return runtime.GOARCH
	}
	var b strings.Builder
	for _, c := range u.Machine {
		if c == 0 {
			break
		}
		b.WriteByte(byte(c))
	}
	return b.String()
}

// cpuModel is the first "model name" of /proc/cpuinfo.
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}
