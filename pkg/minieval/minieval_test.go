package minieval

import (
	"testing"
)

// The filters read answers as lm_eval's gsm8k does, and the emulated answers to the
// bundled questions score what Expected says.
func TestFilters(t *testing.T) {
	for _, c := range []struct{ in, strict, flex string }{
		{"So 3 + 4 = 7.\n#### 7", "7", "7"},
		{"It costs $1,250.", "[invalid]", "1250"},
		{"#### -12.5 and then 3", "-12.5", "3"},
		{"no number", "[invalid]", "[invalid]"},
	} {
		if s, f := extractStrict(c.in), extractFlexible(c.in); s != c.strict || f != c.flex {
			t.Errorf("%q: strict %q flexible %q, want %q %q", c.in, s, f, c.strict, c.flex)
		}
	}
	if len(Questions) != 40 {
		t.Fatalf("%d questions", len(Questions))
	}
	for _, q := range Questions {
		a, ok := Answer("Question: earlier one\nAnswer: 1\n\n" + Prompt(q))
		if !ok || a != q.answer {
			t.Fatalf("no answer to %q", q.Text)
		}
	}
	if _, ok := Answer("Question: something else\nAnswer:"); ok {
		t.Error("answered a question outside the set")
	}
	flex, strict := Expected()
	if flex != 0.95 || strict != 0.9 {
		t.Errorf("expected scores %v %v, want 0.95 and 0.9", flex, strict)
	}
}
