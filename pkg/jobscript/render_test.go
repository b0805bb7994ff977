package jobscript

import (
	"path/filepath"
	"testing"

	"github.com/disaggbench/disaggbench/pkg/config"
)

const quickPerf = quickstart + "/test_configs/disagg/perf/tinyllama-1.1b_1k128_ctx1_gen2_tep1_bs8_eplb0_mtp0_ccb-NIXL.yaml"

// clearEnv unsets the environment overrides the planner honours, so that a developer's
// or CI's settings do not change what is rendered.
func clearEnv(t *testing.T) {
	for _, k := range config.HonouredEnv {
		t.Setenv(k, "")
	}
}

func BenchmarkRender(b *testing.B) {
	for _, p := range []string{goldenConfigs[0], goldenConfigs[1], quickPerf} {
		tc := loadTest(b, p)
		b.Run(filepath.Base(p), func(b *testing.B) {
			o := goldenOptions(tc)
			o.Tools = "/opt/disaggbench/planner"
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Render(tc, o); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
