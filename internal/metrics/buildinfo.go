package metrics

import (
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

var descBuildInfo = prometheus.NewDesc("rekey_build_info",
	"Always 1; its labels say which build of rekey serves: module version, VCS revision and Go version.",
	[]string{"version", "revision", "goversion"}, nil)

// buildInfo reads the running binary's version and commit, "unknown" where
// the build did not record them (go test, or a build outside a checkout).
func buildInfo() (version, revision, goversion string) {
	version, revision, goversion = "unknown", "unknown", runtime.Version()
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return
	}
	if v := bi.Main.Version; v != "" {
		version = v
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && s.Value != "" {
			revision = s.Value
		}
	}
	return
}

// buildInfoMetric is rekey_build_info for this binary.
func buildInfoMetric() prometheus.Metric {
	v, r, g := buildInfo()
	return prometheus.MustNewConstMetric(descBuildInfo, prometheus.GaugeValue, 1, v, r, g)
}
